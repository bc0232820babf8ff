// What the screen looks like for a state and a terminal size: the current conversation, its
// prompt and input box (or the large-paste question in its place), how the rows and columns are
// shared out, and the scrollback's layout context. Keys read `keys.current` to act on the screen
// as last drawn (scrolling moves by the pane's rows; Alt-U knows whether the sidebar shows).
import { useMemo, useRef, type RefObject } from "react";
import { currentConversation, type Conversation, type TuiState } from "../state/state.js";
import { promptOf } from "../view/header-row.js";
import { inputView, maxInputRows, type InputView } from "../view/input-view.js";
import { computeLayout, sidebarShown, type Layout } from "../view/layout.js";
import { pasteQuestionRows } from "../view/paste-rows.js";
import type { Row } from "../view/row.js";
import { scrollbackContext, scrollLayout, type WindowContext } from "../view/scrollback-window.js";
import type { KeyContext } from "../input/keymap.js";

export interface Screen {
  readonly conversation: Conversation;
  readonly blocked: boolean;
  readonly input: InputView;
  /** The large-paste question, shown instead of the input. */
  readonly question: readonly Row[] | undefined;
  readonly layout: Layout;
  readonly context: WindowContext;
  readonly keys: RefObject<KeyContext>;
}

export function useScreen(state: TuiState, columns: number, rows: number): Screen {
  const conversation = currentConversation(state);
  const prompt = promptOf(state, conversation);
  const maxRows = maxInputRows(rows);
  const width = Math.max(1, columns);
  const input = useMemo(() => inputView(prompt.text, state.input, width, maxRows), [prompt.text, state.input, width, maxRows]);
  const question = state.pendingPaste ? pasteQuestionRows(state.pendingPaste, conversation.title, width, maxRows) : undefined;
  const layout = computeLayout(columns, rows, { inputRows: question?.length ?? input.rows.length, sidebar: state.sidebar });
  // Per conversation: its own nick column, presence filter and my highlight words.
  const { settings } = state;
  const nickWidth = conversation.nickWidth;
  const conversationId = conversation.id;
  const context = useMemo(
    () => scrollbackContext({ me: state.me, settings }, layout.scrollbackWidth, { id: conversationId, nickWidth }),
    [state.me, settings, conversationId, nickWidth, layout.scrollbackWidth],
  );
  const keys = useRef<KeyContext>({ viewport: { width: 1, height: 0, layout: scrollLayout }, sidebarShown: false, sidebarAutomatic: false });
  keys.current = {
    viewport: { width: layout.scrollbackWidth, height: layout.bodyHeight, layout: scrollLayout },
    sidebarShown: layout.sidebarWidth > 0,
    sidebarAutomatic: sidebarShown(layout.columns, undefined),
  };
  return { conversation, blocked: prompt.blocked, input, question, layout, context, keys };
}
