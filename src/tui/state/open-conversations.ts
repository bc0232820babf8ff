// Which conversations are open (in the bar's order) and which one is on screen: opening one
// (within OPEN_CONVERSATIONS_KEPT, closing the quietest beyond it), where a line for an id goes,
// switching (the unread ruler and the half-typed line parked on leaving, restored on arriving),
// cycling, the next active one, and closing. Part of the conversations slice
// (conversations-reducer.ts), whose actions come here. Pure, like the reducer.
import { emptyList, listAppend, listLast } from "./chunked-list.js";
import { LOBBY_ID, describeConversation } from "./conversations.js";
import { EMPTY_INPUT } from "./input-buffer.js";
import { OPEN_CONVERSATIONS_KEPT, bounded } from "./memory-bounds.js";
import { usernameColumnWidth } from "./scroll.js";
import { withClosed } from "./settings.js";
import { emptyConversation, type Conversation, type Entry, type TuiState } from "./state.js";

/**
 * Returns the state with conversation `id` open (created at the end of the bar if new). Beyond
 * OPEN_CONVERSATIONS_KEPT, the quietest other one is closed, with a line in the lobby saying so.
 */
export function ensureConversation(state: TuiState, id: string): TuiState {
  if (state.conversations[id] !== undefined) return state;
  const ref = describeConversation(id, state.me);
  if (ref === undefined) return state;
  const opened: TuiState = {
    ...state,
    conversations: { ...state.conversations, [id]: emptyConversation(id, ref.kind, ref.title, ref.peer, usernameColumnWidth([state.me])) },
    order: [...state.order, id],
    // Open again (a new message, or the user): a restart shows it again too.
    settings: withClosed(state.settings, id, false),
  };
  return opened.order.length > OPEN_CONVERSATIONS_KEPT ? closeQuietest(opened, id) : opened;
}

/**
 * The local time of the newest line anywhere (a message's arrival, not its sender's claim): the
 * reducer has no clock of its own, and a conversation is opened by a line arriving about now.
 */
function newestTime(state: TuiState): number {
  let newest = 0;
  for (const id of state.order) {
    const e = listLast(state.conversations[id]?.entries ?? emptyList<Entry>());
    if (e !== undefined) newest = Math.max(newest, e.kind === "message" ? e.message.receivedAtMs : e.atMs);
  }
  return newest;
}

/** Closes the open conversation whose newest line is oldest, other than the lobby, the one on screen and `opening`. */
function closeQuietest(state: TuiState, opening: string): TuiState {
  let quietest: string | undefined;
  let oldest = Number.POSITIVE_INFINITY;
  for (const id of state.order) {
    if (id === LOBBY_ID || id === state.current || id === opening) continue;
    // Seqs grow with every line: the smallest newest seq is the longest quiet (an empty one first).
    const last = listLast(state.conversations[id]!.entries)?.seq ?? Number.NEGATIVE_INFINITY;
    if (last < oldest) {
      oldest = last;
      quietest = id;
    }
  }
  if (quietest === undefined) return state;
  const title = state.conversations[quietest]?.title ?? quietest;
  const closed = close(state, quietest);
  const text = `closed ${title}: more than ${OPEN_CONVERSATIONS_KEPT} conversations were open, and it was the quietest (its history is kept; a new message or /query, /join opens it again)`;
  const seq = closed.nextSeq;
  const next = updateConversation(closed, LOBBY_ID, (c) => bounded({ ...c, entries: listAppend(c.entries, { kind: "notice", seq, atMs: newestTime(state), level: "info", text }) }));
  return { ...next, nextSeq: seq + 1 };
}

/** Where a line for `id` goes: that conversation if the id is valid, else the current one. */
export function target(state: TuiState, id: string | undefined): { state: TuiState; id: string } {
  if (id === undefined) return { state, id: state.current };
  const opened = ensureConversation(state, id);
  return opened.conversations[id] === undefined ? { state, id: state.current } : { state: opened, id };
}

export function updateConversation(state: TuiState, id: string, update: (c: Conversation) => Conversation): TuiState {
  const conversation = state.conversations[id];
  if (conversation === undefined) return state;
  const updated = update(conversation);
  return updated === conversation ? state : { ...state, conversations: { ...state.conversations, [id]: updated } };
}

export function withoutKey<T>(record: Readonly<Record<string, T>>, key: string): Readonly<Record<string, T>> {
  if (!(key in record)) return record;
  const { [key]: _gone, ...rest } = record;
  return rest;
}

/** Arriving in `id`: its own half-typed line comes back, its unread counts go. */
function arrive(state: TuiState, id: string): TuiState {
  const { recall: _recall, completion: _completion, pendingPaste: _paste, draftRestored: _restored, ...rest } = state;
  const draft = state.drafts[id];
  const next: TuiState = {
    ...rest, current: id, input: draft ?? EMPTY_INPUT, drafts: withoutKey(state.drafts, id),
    ...(draft !== undefined && draft.text !== "" ? { draftRestored: true as const } : {}),
  };
  return updateConversation(next, id, (c) => (c.unread === 0 && c.highlights === 0 ? c : { ...c, unread: 0, highlights: 0 }));
}

/**
 * Makes `id` current. Leaving a conversation puts the unread ruler after its newest entry and
 * parks the half-typed line there; arriving restores that conversation's own half-typed line.
 */
export function focus(state: TuiState, id: string): TuiState {
  if (state.conversations[id] === undefined) return state;
  if (state.current === id) {
    return updateConversation(state, id, (c) => (c.unread === 0 && c.highlights === 0 ? c : { ...c, unread: 0, highlights: 0 }));
  }
  const leaving = state.current;
  const lastSeq = state.conversations[leaving] ? listLast(state.conversations[leaving].entries)?.seq : undefined;
  const marked = lastSeq === undefined ? state : updateConversation(state, leaving, (c) => ({ ...c, readMarker: lastSeq }));
  const drafts = state.input.text === "" ? withoutKey(state.drafts, leaving) : { ...state.drafts, [leaving]: state.input };
  return arrive({ ...marked, drafts }, id);
}

export function cycle(state: TuiState, delta: 1 | -1): TuiState {
  const i = state.order.indexOf(state.current);
  const n = state.order.length;
  const id = state.order[(((i + delta) % n) + n) % n];
  return id === undefined ? state : focus(state, id);
}

/** The next conversation after the current one (wrapping) with highlights, else with unread messages. */
export function nextActive(state: TuiState): TuiState {
  const start = state.order.indexOf(state.current);
  const after = [...state.order.slice(start + 1), ...state.order.slice(0, Math.max(0, start))];
  const pick = after.find((id) => (state.conversations[id]?.highlights ?? 0) > 0)
    ?? after.find((id) => (state.conversations[id]?.unread ?? 0) > 0);
  return pick === undefined ? state : focus(state, pick);
}

export function close(state: TuiState, id: string): TuiState {
  if (id === LOBBY_ID || state.conversations[id] === undefined) return state;
  const i = state.order.indexOf(id);
  const order = state.order.filter((x) => x !== id);
  const { [id]: _closed, ...conversations } = state.conversations;
  const next = { ...state, conversations, order, drafts: withoutKey(state.drafts, id), settings: withClosed(state.settings, id, true) };
  if (state.current !== id) return next;
  // The closed conversation's half-typed line goes with it.
  return arrive(next, order[Math.max(0, i - 1)] ?? LOBBY_ID);
}
