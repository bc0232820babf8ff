// The conversations slice of the reducer: the scrollback of each conversation (appending lines,
// receiving messages, their delivery states, older history in front), unread counts and the
// unread ruler, scrolling and clearing; opening, switching and closing conversations are its
// actions too, carried out by open-conversations.ts. What a conversation keeps in memory:
// memory-bounds.ts. The other slices append their lines through `append` and `receiveMessage`
// here. Pure, like the reducer.
import type { ChatMessage, NoticeLevel, SessionEvent, VerifyInfo } from "../../client/types.js";
import { assertNever } from "./assert-never.js";
import { mentions } from "./attention.js";
import { moveScroll, usernameColumnWidth, type ScrollLayout, type ScrollMove } from "./scroll.js";
import {
  emptyList, listAppend, listFindLastIndex, listFrom, listGet, listLast, listSet, listToArray, type ChunkedList,
} from "./chunked-list.js";
import { bounded } from "./memory-bounds.js";
import { close, cycle, ensureConversation, focus, nextActive, target, updateConversation } from "./open-conversations.js";
import { notifyLevel } from "./settings.js";
import { messageKey, sameMessage, type Conversation, type Entry, type TuiState } from "./state.js";

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

/** The nick column after `name` spoke in a conversation (it only grows, within 4..12 cells). */
function widerNick(width: number, name: string): number {
  // Usernames are ASCII (one cell per character): most messages need no measuring at all.
  return name.length <= width ? width : Math.max(width, usernameColumnWidth([name]));
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
