// The conversations slice of the reducer: the scrollback of each conversation (appending lines,
// receiving messages, their delivery states, older history in front), unread counts and the
// unread ruler, scrolling, and opening, switching, closing and clearing conversations. The other
// slices append their lines through `append` and `receiveMessage` here. Pure, like the reducer.
import type { ChatMessage, NoticeLevel, SessionEvent, VerifyInfo } from "../../client/types.js";
import { assertNever } from "./assert-never.js";
import { mentions } from "./attention.js";
import { moveScroll, usernameColumnWidth, type ScrollLayout, type ScrollMove } from "./scroll.js";
import {
  LIST_CHUNK, emptyList, listAppend, listDropChunks, listFindLastIndex, listFrom, listGet, listLast, listSet, listToArray, type ChunkedList,
} from "./chunked-list.js";
import { LOBBY_ID, describeConversation } from "./conversations.js";
import { EMPTY_INPUT } from "./input-buffer.js";
import { notifyLevel, withClosed } from "./settings.js";
import { emptyConversation, messageKey, sameMessage, type Conversation, type Entry, type TuiState } from "./state.js";

/** The scrollback pane, as the screen last drew it (scrolling moves by its rows). */
export interface Viewport {
  readonly width: number;
  readonly height: number;
  /** How many rows an entry takes in this pane (view/scrollback-window.ts's `scrollLayout`). */
  readonly layout: ScrollLayout;
}

/** The actions of this slice (see `Action` in reducer.ts). */
export type ConversationAction =
  /** A line from the UI itself: command output, usage errors, send failures. */
  | { readonly type: "notice"; readonly level: NoticeLevel; readonly text: string; readonly atMs: number; readonly conversationId?: string }
  | { readonly type: "verify-info"; readonly info: VerifyInfo; readonly atMs: number; readonly conversationId?: string }
  | { readonly type: "scroll"; readonly move: ScrollMove; readonly viewport: Viewport }
  /** Opens a conversation (DM, room) if needed; `focus` makes it current. */
  | { readonly type: "open-conversation"; readonly id: string; readonly focus: boolean }
  /** Alt-1..9: the conversation at that 0-based place in the bar. */
  | { readonly type: "focus-index"; readonly index: number }
  | { readonly type: "cycle-conversation"; readonly delta: 1 | -1 }
  /** Alt-A: the next conversation with something addressed to me, else with unread messages. */
  | { readonly type: "next-active" }
  | { readonly type: "close-conversation"; readonly id: string }
  /** /clear: forget a conversation's scrollback (on this screen only). */
  | { readonly type: "clear-conversation"; readonly id: string }
  /** A failed message of mine was sent again (as a new message): /retry moves on to older ones. */
  | { readonly type: "message-retried"; readonly conversationId: string; readonly id: string }
  /** Older kept messages of a conversation, oldest first (scrolling past the top, reopening); `done`: none older. */
  | { readonly type: "older-history"; readonly conversationId: string; readonly messages: readonly ChatMessage[]; readonly done: boolean };

// --- what is kept in memory --------------------------------------------------------------------
// Everything here grows from what peers send, so each part is bounded: a lobby flooder at the
// relay's rate (20 messages/s of 64 KiB, PROTOCOL.md §13.3) must not grow every reader's chat-tui
// without end. The state db keeps the newest 500 of each conversation (§10.4); the screen keeps
// more, for this session's scrolling back, and drops its oldest lines beyond these bounds.

/**
 * Entries (messages and every other line) kept in memory per conversation. 4,096: weechat's
 * default for a buffer, eight times what the state db keeps, hours of a busy room; at ~100
 * characters a line, under half a megabyte. Dropped a chunk of the list (256) at a time, so a
 * conversation holds between 3,841 and 4,096 entries once it reached the bound.
 */
export const ENTRIES_KEPT = 4_096;

/**
 * Characters of text (messages and notices) kept in memory per conversation: 8 Mi UTF-16 code
 * units (8 to 16 MiB as V8 strings). Ordinary lines never reach it before ENTRIES_KEPT (4,096
 * lines of 2 KiB would). Checked each time a chunk of the list (256 entries) begins, and the
 * newest 256 entries always stay (a screenful and more, whatever their size): so a flood of the
 * largest messages (64 KiB, the relay's default) keeps 256 to 511 of them, at most 32 Mi
 * characters, instead of 4,096 (256 Mi).
 */
export const TEXT_KEPT = 8 * 1024 * 1024;

/**
 * Conversations open at once. Each stranger's DM and each room someone adds me to opens one, so
 * their number follows what peers do; beyond it, the quietest one (the one whose newest line is
 * oldest; never the lobby nor the one on screen) is closed as /close would: its history stays
 * kept, and its next message (or the user) opens it again. 256 is far more than anyone follows.
 */
export const OPEN_CONVERSATIONS_KEPT = 256;

/** Characters of text an entry holds (what TEXT_KEPT counts). */
function textSize(e: Entry): number {
  return e.kind === "message" ? e.message.text.length : e.kind === "notice" ? e.text.length : 0;
}

function chunkText(chunk: readonly Entry[]): number {
  let n = 0;
  for (const e of chunk) n += textSize(e);
  return n;
}

/**
 * The conversation within ENTRIES_KEPT and TEXT_KEPT: its oldest chunks of entries dropped if
 * needed. What indexes entries follows: a scrolled view stays on the same entries (on the oldest
 * kept when its own were dropped) and counts what arrived since as before; the unread ruler is a
 * seq, so it stays after the same entry (and goes with it when that entry is dropped: everything
 * left is unread); and no older page is read from disk any more (what the screen dropped is older
 * than the kept history's start, and reading it again would bring back lines in the wrong place).
 * `always`: check the text now (after a page was put in front), not only when a chunk begins.
 */
function bounded(c: Conversation, always = false): Conversation {
  const { entries } = c;
  const chunks = entries.chunks;
  let drop = entries.length > ENTRIES_KEPT ? Math.ceil((entries.length - ENTRIES_KEPT) / LIST_CHUNK) : 0;
  if (always || drop > 0 || entries.length % LIST_CHUNK === 1) {
    let text = 0;
    for (let k = drop; k < chunks.length; k++) text += chunkText(chunks[k]!);
    // The newest LIST_CHUNK entries always stay, whatever their text.
    while (text > TEXT_KEPT && entries.length - (drop + 1) * LIST_CHUNK >= LIST_CHUNK) text -= chunkText(chunks[drop++]!);
  }
  if (drop === 0) return c;
  const kept = listDropChunks(entries, drop);
  const dropped = entries.length - kept.length;
  const { scroll: position, ...rest } = c;
  const scroll = position === undefined
    ? undefined
    : position.top >= dropped
      ? { top: position.top - dropped, skip: position.skip, seen: Math.max(0, position.seen - dropped) }
      : { top: 0, skip: 0, seen: Math.max(0, position.seen - dropped) };
  return { ...rest, entries: kept, olderDone: true, ...(scroll === undefined ? {} : { scroll }) };
}

// --- conversations -------------------------------------------------------------------------

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

/** The nick column after `name` spoke in a conversation (it only grows, within 4..12 cells). */
function widerNick(width: number, name: string): number {
  // Usernames are ASCII (one cell per character): most messages need no measuring at all.
  return name.length <= width ? width : Math.max(width, usernameColumnWidth([name]));
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

/**
 * Appends an entry to a conversation. `quiet` entries (notices, room events, verify blocks) are
 * not news: when nothing is below the unread ruler yet, the ruler moves past them, so it never
 * stands above only the answers to my own commands.
 */
export function append(state: TuiState, id: string | undefined, build: (seq: number) => Entry, quiet = false): TuiState {
  const t = target(state, id);
  const seq = t.state.nextSeq;
  const next = updateConversation(t.state, t.id, (c) => {
    const atEnd = quiet && c.readMarker !== undefined && c.readMarker === listLast(c.entries)?.seq;
    return bounded({ ...c, entries: listAppend(c.entries, build(seq)), ...(atEnd ? { readMarker: seq } : {}) });
  });
  return { ...next, nextSeq: seq + 1 };
}

/**
 * Like `append`, but the entry goes in before the last `before` entries of the conversation (it
 * happened ahead of them). Seqs keep growing down the list: the entry takes the seq of the first
 * entry it goes before, each of those the next one's, the last a new one; the unread ruler stays
 * after the same entry (`quiet`: as in `append`, past the new one when it stood just above it),
 * and a view scrolled to one of them stays on it.
 */
export function appendBefore(state: TuiState, id: string, before: number, build: (seq: number) => Entry, quiet = false): TuiState {
  const t = target(state, id);
  const c = t.state.conversations[t.id];
  if (c === undefined || before <= 0 || before > c.entries.length) return append(state, id, build, quiet);
  const at = c.entries.length - before;
  const moved: Entry[] = [];
  for (let i = at; i < c.entries.length; i++) moved.push(listGet(c.entries, i)!);
  const seqs = [...moved.map((e) => e.seq), t.state.nextSeq];
  // In place from `at` on (a long conversation is not copied whole): the new entry, then each
  // moved one a place further down with the next seq.
  let entries = listSet(c.entries, at, build(seqs[0]!));
  moved.forEach((e, i) => {
    const shifted = { ...e, seq: seqs[i + 1]! };
    entries = i + 1 < moved.length ? listSet(entries, at + i + 1, shifted) : listAppend(entries, shifted);
  });
  const marker = c.readMarker;
  const above = listGet(c.entries, at - 1)?.seq;
  const k = marker === undefined ? -1 : seqs.indexOf(marker);
  const readMarker = k >= 0 && k < moved.length ? seqs[k + 1] : quiet && marker !== undefined && marker === above ? seqs[0] : marker;
  const scroll = c.scroll !== undefined && c.scroll.top >= at ? { ...c.scroll, top: c.scroll.top + 1 } : c.scroll;
  const next = updateConversation(t.state, t.id, (x) => bounded({
    ...x,
    entries,
    ...(readMarker === undefined ? {} : { readMarker }),
    ...(scroll === undefined ? {} : { scroll }),
  }));
  return { ...next, nextSeq: t.state.nextSeq + 1 };
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
function focus(state: TuiState, id: string): TuiState {
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

/**
 * How far back a live message is looked for among those shown: the kept history is written
 * before the UI hears of a message, so a page read from disk just before (a conversation opened by
 * my /msg, still shorter than the pane) may already hold it.
 */
const SHOWN_SEARCH = 256;

export function receiveMessage(state: TuiState, message: ChatMessage, o: { backlog?: boolean } = {}): TuiState {
  const shown = state.conversations[message.conversationId];
  if (shown !== undefined && (message.own || shown.entries.length <= SHOWN_SEARCH)) {
    const i = listFindLastIndex(shown.entries, (e) => e.kind === "message" && sameMessage(e.message, message), SHOWN_SEARCH);
    const entry = listGet(shown.entries, i);
    // Already on screen (from that page): the live copy replaces it in place, counted once.
    if (entry?.kind === "message") {
      return updateConversation(state, message.conversationId, (c) => ({ ...c, entries: listSet(c.entries, i, { ...entry, message }) }));
    }
  }
  const t = target(state, message.conversationId);
  const seq = t.state.nextSeq;
  // What was already seen in an earlier run is history, not news; a muted conversation counts nothing.
  const level = notifyLevel(t.state.settings, t.id);
  const unseen = !message.own && o.backlog !== true && t.id !== t.state.current && level !== "none";
  const highlighted = unseen && message.kind !== "topic" && (t.id.startsWith("dm:") || mentions(message.text, state.me, state.settings.highlights));
  const counted = unseen && (level === "all" || highlighted);
  const next = updateConversation(t.state, t.id, (c) => bounded(received(c)));
  return { ...next, nextSeq: seq + 1 };

  function received(c: Conversation): Conversation {
    const updated: Conversation = {
      ...c,
      entries: listAppend(c.entries, { kind: "message", seq, message }),
      unread: counted ? c.unread + 1 : c.unread,
      highlights: highlighted ? c.highlights + 1 : c.highlights,
      nickWidth: widerNick(c.nickWidth, message.from),
      // The topic received last wins: the relay delivers a room's messages in the order it
      // accepted them, a queue after a reconnect too. Never by `sentAtMs`: that is the sender's
      // clock, displayed only (PROTOCOL.md §11), and a member claiming a time far ahead would
      // keep their topic against every later one.
      ...(message.kind === "topic" ? { topic: topicOf(message) } : {}),
    };
    if (!message.own) return updated;
    if (message.device !== undefined) {
      // Written on another of my devices: I read what came before there (PROTOCOL.md §11.3);
      // nothing here is unread up to it, and this screen's scrolling is left as it is.
      const readHere = updated.readMarker === undefined ? updated : { ...updated, readMarker: seq };
      return readHere.unread === 0 && readHere.highlights === 0 ? readHere : { ...readHere, unread: 0, highlights: 0 };
    }
    // Writing means what came before was read: the unread ruler moves below my own message.
    const read = updated.readMarker === undefined ? updated : { ...updated, readMarker: seq };
    // Sending is the end of reading history: my own message brings the view back down.
    if (read.scroll === undefined) return read;
    const { scroll: _scroll, ...following } = read;
    return following;
  }
}

/**
 * My user read conversation `id` up to message `messageId` on another device (a read marker,
 * PROTOCOL.md §11.3): what came before it is no longer unread here. The counts keep only what
 * came after it (never grow), and the unread ruler moves down to it. The conversation on screen
 * has nothing unread; a message not shown here (cleared, or not arrived yet) changes nothing.
 */
export function readElsewhere(state: TuiState, id: string, from: string, messageId: string): TuiState {
  if (id === state.current) return state;
  return updateConversation(state, id, (c) => {
    const i = listFindLastIndex(c.entries, (e) => e.kind === "message" && e.message.id === messageId && e.message.from === from, STATE_SEARCH_LIMIT);
    const at = listGet(c.entries, i);
    if (at === undefined) return c;
    const level = notifyLevel(state.settings, id);
    let unread = 0;
    let highlights = 0;
    for (let j = i + 1; j < c.entries.length; j++) {
      const e = listGet(c.entries, j);
      if (e === undefined) continue;
      // Warnings addressed to me (a key change, being added or removed) stay counted.
      if (e.kind === "key-change" || (e.kind === "membership" && e.line.users.includes(state.me))) highlights += 1;
      if (e.kind !== "message" || e.message.own || level === "none") continue;
      const highlighted = e.message.kind !== "topic" && (id.startsWith("dm:") || mentions(e.message.text, state.me, state.settings.highlights));
      if (highlighted) highlights += 1;
      if (level === "all" || (level === "mentions" && highlighted)) unread += 1;
    }
    const next = Math.min(c.unread, unread);
    const nextHighlights = Math.min(c.highlights, highlights);
    const marker = c.readMarker !== undefined && c.readMarker < at.seq ? at.seq : c.readMarker;
    if (next === c.unread && nextHighlights === c.highlights && marker === c.readMarker) return c;
    return { ...c, unread: next, highlights: nextHighlights, ...(marker === undefined ? {} : { readMarker: marker }) };
  });
}

function topicOf(m: ChatMessage): NonNullable<Conversation["topic"]> {
  return { text: m.text, by: m.from, atMs: m.sentAtMs };
}


/** Recent messages are at the end: look at the newest ones only. */
export const STATE_SEARCH_LIMIT = 10_000;

/**
 * Updates one of MY messages sent from this device, by id (its delivery state, /retry): only those
 * get state events. Someone else's message, or one of my other devices', may carry the same id
 * (ids are unique per sender, PROTOCOL.md §11.1) and is never touched.
 */
function replaceOwnMessage(entries: ChunkedList<Entry>, id: string, update: (entry: Extract<Entry, { kind: "message" }>) => Entry): ChunkedList<Entry> {
  const i = listFindLastIndex(entries, (e) => e.kind === "message" && e.message.id === id && e.message.own && e.message.device === undefined, STATE_SEARCH_LIMIT);
  const entry = listGet(entries, i);
  if (entry?.kind !== "message") return entries;
  const updated = update(entry);
  return updated === entry ? entries : listSet(entries, i, updated);
}

export function updateMessageState(state: TuiState, event: Extract<SessionEvent, { type: "message-state" }>): TuiState {
  return updateConversation(state, event.conversationId, (c) => {
    const entries = replaceOwnMessage(c.entries, event.id, (entry) => {
      const { failure: _oldFailure, queuedFor: _oldQueued, ...rest } = entry.message;
      let message: ChatMessage = { ...rest, state: event.state };
      const failure = event.failure ?? (event.state === "failed" ? entry.message.failure : undefined);
      if (failure !== undefined) message = { ...message, failure };
      const queuedFor = event.queuedFor ?? entry.message.queuedFor;
      if (queuedFor !== undefined && event.state !== "failed") message = { ...message, queuedFor };
      return { ...entry, message };
    });
    return entries === c.entries ? c : { ...c, entries };
  });
}

function cycle(state: TuiState, delta: 1 | -1): TuiState {
  const i = state.order.indexOf(state.current);
  const n = state.order.length;
  const id = state.order[(((i + delta) % n) + n) % n];
  return id === undefined ? state : focus(state, id);
}

/** The next conversation after the current one (wrapping) with highlights, else with unread messages. */
function nextActive(state: TuiState): TuiState {
  const start = state.order.indexOf(state.current);
  const after = [...state.order.slice(start + 1), ...state.order.slice(0, Math.max(0, start))];
  const pick = after.find((id) => (state.conversations[id]?.highlights ?? 0) > 0)
    ?? after.find((id) => (state.conversations[id]?.unread ?? 0) > 0);
  return pick === undefined ? state : focus(state, pick);
}

function close(state: TuiState, id: string): TuiState {
  if (id === LOBBY_ID || state.conversations[id] === undefined) return state;
  const i = state.order.indexOf(id);
  const order = state.order.filter((x) => x !== id);
  const { [id]: _closed, ...conversations } = state.conversations;
  const next = { ...state, conversations, order, drafts: withoutKey(state.drafts, id), settings: withClosed(state.settings, id, true) };
  if (state.current !== id) return next;
  // The closed conversation's half-typed line goes with it.
  return arrive(next, order[Math.max(0, i - 1)] ?? LOBBY_ID);
}

function clearConversation(state: TuiState, id: string): TuiState {
  return updateConversation(state, id, (c) => {
    const { scroll: _scroll, readMarker: _marker, ...rest } = c;
    return { ...rest, entries: emptyList<Entry>(), unread: 0, highlights: 0 };
  });
}

function scroll(state: TuiState, move: ScrollMove, viewport: Viewport): TuiState {
  return updateConversation(state, state.current, (c) => {
    const position = moveScroll(c, viewport.layout(state, c, viewport.width), viewport.height, move);
    if (position === undefined) {
      if (c.scroll === undefined) return c;
      const { scroll: _scroll, ...following } = c;
      return following;
    }
    const same = c.scroll !== undefined && c.scroll.top === position.top && c.scroll.skip === position.skip && c.scroll.seen === position.seen;
    return same ? c : { ...c, scroll: position };
  });
}

/** Older messages go in front: their seqs count down below every other, so the unread ruler stays right. */
function prependOlder(state: TuiState, id: string, messages: readonly ChatMessage[], done: boolean): TuiState {
  const c = state.conversations[id];
  if (c === undefined) return state;
  // The page may overlap what is shown (the backlog at start): only the messages not shown yet,
  // by sender and id (another sender's message may carry the same id, PROTOCOL.md §11.1).
  const shown = new Set<string>();
  for (let i = 0; i < c.entries.length && i < messages.length + 1_000; i++) {
    const e = listGet(c.entries, i);
    if (e?.kind === "message") shown.add(messageKey(e.message));
  }
  const fresh = messages.filter((m) => m.conversationId === id && !shown.has(messageKey(m)));
  if (fresh.length === 0) return updateConversation(state, id, (x) => (x.olderDone ? x : { ...x, olderDone: true }));
  const first = state.olderSeq - fresh.length + 1;
  const older: Entry[] = fresh.map((message, i) => ({ kind: "message", seq: first + i, message }));
  const topic = [...fresh].reverse().find((m) => m.kind === "topic");
  const next = updateConversation(state, id, (x) => {
    const { olderDone: _done, ...rest } = x;
    return bounded({
      ...rest,
      entries: listFrom([...older, ...listToArray(x.entries)]),
      nickWidth: fresh.reduce((w, m) => widerNick(w, m.from), x.nickWidth),
      // The view stays where it was: the scroll position counts entries from the top.
      ...(x.scroll === undefined ? {} : { scroll: { top: x.scroll.top + fresh.length, skip: x.scroll.skip, seen: x.scroll.seen + fresh.length } }),
      ...(x.topic === undefined && topic !== undefined ? { topic: topicOf(topic) } : {}),
      ...(done ? { olderDone: true as const } : {}),
    }, true);
  });
  return { ...next, olderSeq: first - 1 };
}

export function reduceConversations(state: TuiState, action: ConversationAction): TuiState {
  switch (action.type) {
    case "notice":
      return append(state, action.conversationId, (seq) => ({ kind: "notice", seq, atMs: action.atMs, level: action.level, text: action.text }), true);
    case "verify-info":
      return append(state, action.conversationId, (seq) => ({ kind: "verify", seq, atMs: action.atMs, info: action.info }), true);
    case "scroll":
      return scroll(state, action.move, action.viewport);
    case "open-conversation": {
      const opened = ensureConversation(state, action.id);
      return action.focus ? focus(opened, action.id) : opened;
    }
    case "focus-index": {
      const id = state.order[action.index];
      return id === undefined ? state : focus(state, id);
    }
    case "cycle-conversation":
      return cycle(state, action.delta);
    case "next-active":
      return nextActive(state);
    case "close-conversation":
      return close(state, action.id);
    case "clear-conversation":
      return clearConversation(state, action.id);
    case "message-retried":
      return updateConversation(state, action.conversationId, (c) => {
        const entries = replaceOwnMessage(c.entries, action.id, (entry) => (entry.retried ? entry : { ...entry, retried: true }));
        return entries === c.entries ? c : { ...c, entries };
      });
    case "older-history":
      return prependOlder(state, action.conversationId, action.messages, action.done);
    default:
      return assertNever(action);
  }
}
