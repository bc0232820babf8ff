// The chat screen: it only composes. State and effects live in the hooks, layout and text in
// pure view functions, drawing in the components.
import { Box, useWindowSize } from "ink";
import type { ChatMessage, ChatSession } from "../client/types.js";
import type { Logger } from "../protocol/log.js";
import { useChatSession } from "./hooks/useChatSession.js";
import { useClock } from "./hooks/useClock.js";
import { useCommands } from "./hooks/useCommands.js";
import { useKeyboard } from "./hooks/useKeyboard.js";
import { useQuit } from "./hooks/useQuit.js";
import { InputLine } from "./components/InputLine.js";
import { Scrollback } from "./components/Scrollback.js";
import { Sidebar } from "./components/Sidebar.js";
import { StatusLine } from "./components/StatusLine.js";
import { promptFor } from "./state/conversations.js";
import type { StartupNotice } from "./state/reducer.js";
import { currentConversation } from "./state/state.js";
import { computeLayout } from "./view/layout.js";
import { nickColumnWidth } from "./view/scrollback-rows.js";

export interface AppProps {
  readonly session: ChatSession;
  readonly clock: () => number;
  readonly bell: () => void;
  readonly logger: Logger;
  readonly notices?: readonly StartupNotice[];
  readonly pending?: readonly ChatMessage[];
  readonly signal?: AbortSignal;
}

export function App({ session, clock, bell, logger, notices, pending, signal }: AppProps) {
  const { columns, rows } = useWindowSize();
  const { state, getState, dispatch } = useChatSession({ session, clock, bell, ...(notices ? { notices } : {}), ...(pending ? { pending } : {}) });
  const nowMs = useClock({ clock, active: state.connection.state === "reconnecting" });
  const quit = useQuit({ session, dispatch, logger, ...(signal ? { signal } : {}) });
  const submit = useCommands({ session, getState, dispatch, clock, logger, quit });
  useKeyboard({ getState, dispatch, submit, quit });

  const layout = computeLayout(columns, rows);
  const conversation = currentConversation(state);
  return (
    <Box flexDirection="column" width={layout.columns} height={layout.rows}>
      <StatusLine state={state} nowMs={nowMs} width={layout.columns} />
      <Box flexDirection="row" height={layout.bodyHeight} gap={layout.sidebarWidth > 0 ? 1 : 0}>
        <Scrollback
          conversation={conversation}
          me={state.me}
          nickWidth={nickColumnWidth([state.me, ...state.peers.map((p) => p.username)])}
          width={layout.scrollbackWidth}
          height={layout.bodyHeight}
        />
        {layout.sidebarWidth > 0 ? (
          <Sidebar peers={state.peers} me={state.me} width={layout.sidebarWidth} height={layout.bodyHeight} />
        ) : null}
      </Box>
      <InputLine prompt={promptFor(conversation.title)} input={state.input} width={layout.columns} leaving={state.quitting} />
    </Box>
  );
}
