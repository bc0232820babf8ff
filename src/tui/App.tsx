// The chat screen: it only composes. State and effects live in the hooks, layout and text in
// pure view functions, drawing in the components.
import { Box, useWindowSize } from "ink";
import { useMemo, useRef } from "react";
import type { ChatMessage, ChatSession } from "../client/types.js";
import type { Logger } from "../protocol/log.js";
import { ConversationHeader } from "./components/ConversationHeader.js";
import { InputLine } from "./components/InputLine.js";
import { Scrollback } from "./components/Scrollback.js";
import { Sidebar } from "./components/Sidebar.js";
import { StatusLine } from "./components/StatusLine.js";
import { useChatSession } from "./hooks/useChatSession.js";
import { useClock } from "./hooks/useClock.js";
import { useCommands } from "./hooks/useCommands.js";
import { useKeyboard, type KeyContext } from "./hooks/useKeyboard.js";
import { useMouseWheel } from "./hooks/useMouseWheel.js";
import { useQuit } from "./hooks/useQuit.js";
import type { StartupNotice } from "./state/reducer.js";
import { currentConversation } from "./state/state.js";
import { headerRow, promptOf } from "./view/header-row.js";
import { inputView, maxInputRows } from "./view/input-view.js";
import { computeLayout, sidebarShown } from "./view/layout.js";
import { pasteQuestionRows } from "./view/paste-rows.js";
import { scrollbackContext } from "./view/scrollback-window.js";

export interface AppProps {
  readonly session: ChatSession;
  readonly clock: () => number;
  readonly bell: () => void;
  readonly logger: Logger;
  readonly notices?: readonly StartupNotice[];
  readonly pending?: readonly ChatMessage[];
  /** Mouse wheel scrolling from the start (/mouse toggles it). */
  readonly mouse?: boolean;
  readonly signal?: AbortSignal;
}

export function App({ session, clock, bell, logger, notices, pending, mouse, signal }: AppProps) {
  const { columns, rows } = useWindowSize();
  const { state, getState, dispatch } = useChatSession({
    session, clock, bell, ...(notices ? { notices } : {}), ...(pending ? { pending } : {}), ...(mouse !== undefined ? { mouse } : {}),
  });
  const nowMs = useClock({ clock, active: state.connection.state === "reconnecting" });
  const quit = useQuit({ session, dispatch, logger, ...(signal ? { signal } : {}) });
  const { submit, run } = useCommands({ session, getState, dispatch, clock, logger, quit });

  const conversation = currentConversation(state);
  const prompt = promptOf(state, conversation);
  const maxRows = maxInputRows(rows);
  const input = useMemo(() => inputView(prompt.text, state.input, Math.max(1, columns), maxRows), [prompt.text, state.input, columns, maxRows]);
  const question = state.pendingPaste ? pasteQuestionRows(state.pendingPaste, conversation.title, Math.max(1, columns), maxRows) : undefined;
  const layout = computeLayout(columns, rows, { inputRows: question?.length ?? input.rows.length, sidebar: state.sidebar });
  const context = useMemo(() => scrollbackContext({ me: state.me, peers: state.peers }, layout.scrollbackWidth), [state.me, state.peers, layout.scrollbackWidth]);

  // Keys act on the screen as last drawn (scrolling moves by the pane's rows).
  const keyContext = useRef<KeyContext>({ viewport: { width: 1, height: 0 }, sidebarShown: false, sidebarAutomatic: false });
  keyContext.current = {
    viewport: { width: layout.scrollbackWidth, height: layout.bodyHeight },
    sidebarShown: layout.sidebarWidth > 0,
    sidebarAutomatic: sidebarShown(layout.columns, undefined),
  };
  useKeyboard({ getState, getContext: () => keyContext.current, dispatch, submit, run, quit });
  useMouseWheel(state.mouse, (rows) => {
    if (!getState().pendingPaste) dispatch({ type: "scroll", move: { rows }, viewport: keyContext.current.viewport });
  });

  return (
    <Box flexDirection="column" width={layout.columns} height={layout.rows}>
      <StatusLine state={state} nowMs={nowMs} width={layout.columns} />
      {layout.headerHeight > 0 ? <ConversationHeader row={headerRow(state, conversation, layout.columns)} width={layout.columns} /> : null}
      <Box flexDirection="row" height={layout.bodyHeight} gap={layout.sidebarWidth > 0 ? 1 : 0}>
        <Scrollback conversation={conversation} context={context} height={layout.bodyHeight} />
        {layout.sidebarWidth > 0 ? (
          <Sidebar peers={state.peers} me={state.me} width={layout.sidebarWidth} height={layout.bodyHeight} />
        ) : null}
      </Box>
      <InputLine view={input} question={question} blocked={prompt.blocked} width={layout.columns} height={layout.inputHeight} top={layout.rows - layout.inputHeight} leaving={state.quitting} />
    </Box>
  );
}
