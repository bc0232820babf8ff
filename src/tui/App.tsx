// The chat screen: it only composes. State and effects live in the hooks, layout and text in
// pure view functions, drawing in the components.
import { Box, useStdout, useWindowSize } from "ink";
import { useCallback, useState } from "react";
import type { BacklogItem, ChatSession } from "../client/types.js";
import type { Logger } from "../protocol/log.js";
import { ConversationHeader } from "./components/ConversationHeader.js";
import { InputLine } from "./components/InputLine.js";
import { Scrollback } from "./components/Scrollback.js";
import { Sidebar } from "./components/Sidebar.js";
import { StatusLine } from "./components/StatusLine.js";
import { useChatSession } from "./hooks/useChatSession.js";
import { useClock } from "./hooks/useClock.js";
import { useCommands } from "./hooks/useCommands.js";
import { useKeyboard } from "./hooks/useKeyboard.js";
import { useMouseWheel } from "./hooks/useMouseWheel.js";
import { useOlderHistory } from "./hooks/useOlderHistory.js";
import { useQuit } from "./hooks/useQuit.js";
import { useScreen } from "./hooks/useScreen.js";
import type { StartupNotice } from "./state/reducer.js";
import { headerRow } from "./view/header-row.js";

export interface AppProps {
  readonly session: ChatSession;
  readonly clock: () => number;
  readonly bell: () => void;
  readonly logger: Logger;
  readonly notices?: readonly StartupNotice[];
  readonly backlog?: readonly BacklogItem[];
  /** Mouse wheel scrolling from the start (/mouse toggles it). */
  readonly mouse?: boolean;
  readonly signal?: AbortSignal;
  /**
   * Ctrl-L: forget what the terminal shows and clear it (runTui passes Ink's instance.clear plus
   * a clear-screen); the App then draws the whole frame again. Without it, the screen is
   * cleared directly.
   */
  readonly clearScreen?: () => void;
}

/** Cursor home, erase the screen (not the scrollback: CSI 3J would lose the user's history). */
export const CLEAR_SCREEN = "\u001b[H\u001b[2J";

export function App({ session, clock, bell, logger, notices, backlog, mouse, signal, clearScreen }: AppProps) {
  const { columns, rows } = useWindowSize();
  const { state, getState, dispatch } = useChatSession({
    session, clock, bell, ...(notices ? { notices } : {}), ...(backlog ? { backlog } : {}), ...(mouse !== undefined ? { mouse } : {}),
  });
  const nowMs = useClock({ clock, active: state.connection.state === "reconnecting" });
  const quit = useQuit({ session, dispatch, logger, ...(signal ? { signal } : {}) });
  const { submit, run } = useCommands({ session, getState, dispatch, clock, logger, quit });
  const screen = useScreen(state, columns, rows);
  const { layout, keys } = screen;
  const { stdout } = useStdout();
  // Bumped by Ctrl-L so React commits and Ink draws the (cleared) frame whole.
  const [, setRepaints] = useState(0);
  const redraw = useCallback(() => {
    if (clearScreen) clearScreen();
    else stdout.write(CLEAR_SCREEN);
    setRepaints((n) => n + 1);
  }, [clearScreen, stdout]);
  const wheel = useCallback((delta: number) => {
    const now = getState();
    if (now.mouse && !now.pendingPaste) dispatch({ type: "scroll", move: { rows: delta }, viewport: keys.current.viewport });
  }, [getState, dispatch, keys]);
  useOlderHistory({ session, conversation: screen.conversation, paneRows: layout.bodyHeight, dispatch, logger });
  useKeyboard({ getState, getContext: () => keys.current, dispatch, submit, run, quit, redraw, wheel });
  useMouseWheel(state.mouse);

  return (
    <Box flexDirection="column" width={layout.columns} height={layout.rows}>
      <StatusLine state={state} nowMs={nowMs} width={layout.columns} />
      {layout.headerHeight > 0 ? <ConversationHeader row={headerRow(state, screen.conversation, layout.columns)} width={layout.columns} /> : null}
      <Box flexDirection="row" height={layout.bodyHeight} gap={layout.sidebarWidth > 0 ? 1 : 0}>
        <Scrollback conversation={screen.conversation} context={screen.context} height={layout.bodyHeight} />
        {layout.sidebarWidth > 0 ? (
          <Sidebar
            peers={state.peers}
            me={state.me}
            kind={screen.conversation.kind}
            room={screen.conversation.id}
            members={state.rooms.find((r) => r.room === screen.conversation.id)?.members}
            peer={screen.conversation.peer}
            width={layout.sidebarWidth}
            height={layout.bodyHeight}
          />
        ) : null}
      </Box>
      <InputLine
        view={screen.input}
        question={screen.question}
        blocked={screen.blocked}
        width={layout.columns}
        height={layout.inputHeight}
        top={layout.rows - layout.inputHeight}
        leaving={state.quitting}
      />
    </Box>
  );
}
