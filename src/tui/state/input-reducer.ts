// The input slice of the reducer: the edit line (typing, moving, killing), its history per
// conversation (Up / Down), Tab completion, bracketed paste (and the question for a large one),
// and the "(draft)" marks of a half-typed line restored on arriving. Pure, like the reducer.
import { assertNever } from "./assert-never.js";
import { listGet } from "./chunked-list.js";
import { COMMAND_NAMES } from "./commands.js";
import { applyCompletion, findCompletions, type CompletionSources } from "./completion.js";
import { updateConversation, withoutKey } from "./open-conversations.js";
import { pasteSize } from "./paste.js";
import {
  EMPTY_INPUT, backspace, cleanInsert, deleteForward, insertText, kill, moveCursor, onEdgeLine,
  type CursorMove, type InputBuffer, type Kill,
} from "./input-buffer.js";
import type { TuiState } from "./state.js";

/** Lines kept in each conversation's input history. */
export const HISTORY_LIMIT = 500;

/** The actions of this slice (see `Action` in reducer.ts). */
export type InputAction =
  | { readonly type: "input-insert"; readonly text: string }
  | { readonly type: "input-backspace" }
  | { readonly type: "input-delete" }
  | { readonly type: "input-move"; readonly move: CursorMove }
  | { readonly type: "input-kill"; readonly kill: Kill }
  /** Up / Down: between the lines of a multi-line input, else through the history. */
  | { readonly type: "input-up" }
  | { readonly type: "input-down" }
  /** Tab (1) / Shift-Tab (-1). */
  | { readonly type: "complete"; readonly direction: 1 | -1 }
  /** A line typed in `conversationId` was carried out: into the history, out of the input. */
  | { readonly type: "input-submitted"; readonly conversationId: string; readonly text: string }
  /** A bracketed paste: inserted, or held for a yes/no when it is large. */
  | { readonly type: "paste"; readonly text: string }
  | { readonly type: "paste-answer"; readonly answer: "insert" | "drop" };

// --- the input line ------------------------------------------------------------------------

/** The input after an edit: history browsing stays, a Tab cycle ends. */
function edit(state: TuiState, input: InputBuffer): TuiState {
  if (input === state.input && state.completion === undefined) return state;
  const { completion: _completion, ...rest } = state;
  return { ...rest, input };
}

function recallHistory(state: TuiState, direction: "older" | "newer"): TuiState {
  const history = state.history[state.current] ?? [];
  const { recall: _recall, completion: _completion, ...rest } = state;
  if (direction === "older") {
    const index = state.recall === undefined ? 0 : state.recall.index + 1;
    const line = history[history.length - 1 - index];
    if (line === undefined) return state;
    return { ...rest, input: { text: line, cursor: line.length }, recall: { index, draft: state.recall?.draft ?? state.input } };
  }
  if (state.recall === undefined) return state;
  const index = state.recall.index - 1;
  if (index < 0) return { ...rest, input: state.recall.draft };
  const line = history[history.length - 1 - index] ?? "";
  return { ...rest, input: { text: line, cursor: line.length }, recall: { index, draft: state.recall.draft } };
}

function upDown(state: TuiState, edge: "up" | "down"): TuiState {
  if (!onEdgeLine(state.input, edge)) return edit(state, moveCursor(state.input, edge));
  return recallHistory(state, edge === "up" ? "older" : "newer");
}

/** Names Tab offers, from what the state knows. */
export function completionSources(state: TuiState): CompletionSources {
  const speakers: string[] = [];
  const entries = state.conversations[state.current]?.entries;
  if (entries !== undefined) {
    for (let i = entries.length - 1; i >= 0 && i >= entries.length - 200; i--) {
      const e = listGet(entries, i);
      if (e?.kind === "message" && !e.message.own && !speakers.includes(e.message.from)) speakers.push(e.message.from);
    }
  }
  const rooms = new Set([...state.rooms.map((r) => r.room), ...state.order.filter((id) => id.startsWith("#"))]);
  return {
    commands: COMMAND_NAMES,
    users: state.peers.filter((p) => p.username !== state.me).map((p) => p.username),
    members: state.rooms.find((r) => r.room === state.current)?.members.filter((m) => m !== state.me) ?? [],
    recentSpeakers: speakers,
    rooms: [...rooms],
    conversations: state.order.flatMap((id) => {
      const title = state.conversations[id]?.title;
      return title === undefined ? [] : [title];
    }),
  };
}

function complete(state: TuiState, direction: 1 | -1): TuiState {
  const running = state.completion;
  if (running !== undefined) {
    const n = running.candidates.length;
    const index = (((running.index + direction) % n) + n) % n;
    const input = applyCompletion(state.input, running.start, state.input.cursor, running.candidates[index] ?? "", running.suffix);
    return { ...state, input, completion: { ...running, index } };
  }
  const match = findCompletions(state.input, completionSources(state));
  if (match === undefined) return state;
  const index = direction === 1 ? 0 : match.candidates.length - 1;
  const input = applyCompletion(state.input, match.start, state.input.cursor, match.candidates[index] ?? "", match.suffix);
  // A single candidate is final: the next Tab starts afresh (e.g. on the command's argument).
  if (match.candidates.length === 1) return edit(state, input);
  return { ...state, input, completion: { start: match.start, candidates: match.candidates, index, suffix: match.suffix } };
}

/**
 * A line was carried out: it joins the history, leaves the input, and the conversation goes back
 * to its newest rows (where the message, or the command's answer, shows).
 */
function submitted(state: TuiState, conversationId: string, text: string): TuiState {
  const previous = state.history[conversationId] ?? [];
  const keep = text.trim() !== "" && previous.at(-1) !== text;
  const history = keep ? { ...state.history, [conversationId]: [...previous, text].slice(-HISTORY_LIMIT) } : state.history;
  const { recall: _recall, completion: _completion, ...rest } = state;
  const cleared: TuiState = conversationId === state.current
    ? { ...rest, history, input: EMPTY_INPUT }
    : { ...rest, history, drafts: withoutKey(state.drafts, conversationId) };
  return updateConversation(cleared, conversationId, (c) => {
    if (c.scroll === undefined) return c;
    const { scroll: _scroll, ...following } = c;
    return following;
  });
}

function paste(state: TuiState, raw: string): TuiState {
  // While a paste waits for its answer, what is pasted next joins it (the rest of a paste that
  // came in pieces), never replacing it or slipping into the line behind the question.
  const pending = state.pendingPaste;
  const text = cleanInsert((pending?.text ?? "") + raw);
  const size = pasteSize(text);
  if (size.large) {
    return { ...state, pendingPaste: { text, lines: size.lines, bytes: size.bytes, conversationId: pending?.conversationId ?? state.current } };
  }
  return edit(state, insertText(state.input, text));
}

function pasteAnswer(state: TuiState, answer: "insert" | "drop"): TuiState {
  const pending = state.pendingPaste;
  if (pending === undefined) return state;
  const { pendingPaste: _paste, ...rest } = state;
  return answer === "drop" ? rest : edit(rest, insertText(state.input, pending.text));
}

/**
 * Typing "/" as the first key in a restored draft starts a command on a clean line: the draft
 * is set aside in the input history (Up brings it back), so a command is never glued to old text.
 */
function setDraftAside(state: TuiState, text: string): TuiState {
  const previous = state.history[state.current] ?? [];
  const history = { ...state.history, [state.current]: [...previous, state.input.text].slice(-HISTORY_LIMIT) };
  const { draftRestored: _restored, recall: _recall, completion: _completion, ...rest } = state;
  // The prompt says where it went ("(↑ draft)") until the line is sent, emptied or recalled.
  return { ...rest, history, input: insertText(EMPTY_INPUT, text), draftAside: true };
}

/** The "(draft)" and "(↑ draft)" marks after any action `state` → `next` (the root reducer runs this last). */
export function settleDraftMarks(state: TuiState, next: TuiState): TuiState {
  // A restored draft stops being "the draft" once it is edited (or sent) in place.
  if (next.draftRestored && state.draftRestored && next.current === state.current && next.input !== state.input) {
    const { draftRestored: _restored, ...edited } = next;
    next = edited;
  }
  if (next.draftAside && state.draftAside && (next.current !== state.current || next.input.text === "" || next.recall !== undefined)) {
    const { draftAside: _aside, ...done } = next;
    next = done;
  }
  return next;
}

export function reduceInput(state: TuiState, action: InputAction): TuiState {
  switch (action.type) {
    case "input-insert":
      if (state.draftRestored && action.text.startsWith("/") && state.input.cursor === state.input.text.length) {
        return setDraftAside(state, action.text);
      }
      return edit(state, insertText(state.input, action.text));
    case "input-backspace":
      return edit(state, backspace(state.input));
    case "input-delete":
      return edit(state, deleteForward(state.input));
    case "input-move":
      return edit(state, moveCursor(state.input, action.move));
    case "input-kill":
      return edit(state, kill(state.input, action.kill));
    case "input-up":
      return upDown(state, "up");
    case "input-down":
      return upDown(state, "down");
    case "complete":
      return complete(state, action.direction);
    case "input-submitted":
      return submitted(state, action.conversationId, action.text);
    case "paste":
      return paste(state, action.text);
    case "paste-answer":
      return pasteAnswer(state, action.answer);
    default:
      return assertNever(action);
  }
}
