// The UI's one reducer: session events, local notices, input editing (with history, completion
// and paste), scrolling, and conversation switching. Pure (time comes in on the actions, the
// pane size on scroll actions), total over its action union, and it never throws on odd input:
// an event for an unknown conversation opens it, one with an invalid conversation id lands in
// the current conversation.
import type { ChatMessage, NoticeLevel, PeerView, RoomView, SessionEvent, SessionSnapshot, VerifyInfo } from "../../client/types.js";
import { mentions } from "./attention.js";
import { moveScroll, usernameColumnWidth, type ScrollLayout, type ScrollMove } from "./scroll.js";
import { emptyList, inBatch, listAppend, listFindLastIndex, listFrom, listGet, listLast, listSet, listToArray, type ChunkedList } from "./chunked-list.js";
import { COMMAND_NAMES } from "./commands.js";
import { applyCompletion, findCompletions, type CompletionSources } from "./completion.js";
import { LOBBY_ID, describeConversation } from "./conversations.js";
import { pasteSize } from "./paste.js";
import {
  EMPTY_INPUT, backspace, cleanInsert, deleteForward, insertText, kill, moveCursor, onEdgeLine,
  type CursorMove, type InputBuffer, type Kill,
} from "./input-buffer.js";
import {
  DEFAULT_SETTINGS, SMART_WINDOW_MS, notifyLevel, withClosed, withFilter, withNotify,
  type NotifyLevel, type PresenceFilter, type UiSettings,
} from "./settings.js";
import { emptyConversation, entryTime, type Conversation, type Entry, type TuiState } from "./state.js";

/** A notice to show at start (e.g. "created new keys in ~/.config/secure-chat"). */
export interface StartupNotice {
  readonly level: NoticeLevel;
  readonly text: string;
}

/** The scrollback pane, as the screen last drew it (scrolling moves by its rows). */
export interface Viewport {
  readonly width: number;
  readonly height: number;
  /** How many rows an entry takes in this pane (view/scrollback-window.ts's `scrollLayout`). */
  readonly layout: ScrollLayout;
}

/** Lines kept in each conversation's input history. */
export const HISTORY_LIMIT = 500;

export type Action =
  /** Every session event, stamped with the local time it arrived. */
  | { readonly type: "session"; readonly event: SessionEvent; readonly atMs: number }
  /** Several session events at once (a burst is folded in one render). */
  | { readonly type: "session-batch"; readonly events: readonly { readonly event: SessionEvent; readonly atMs: number }[] }
  /** The session's state as a whole (at start). */
  | { readonly type: "snapshot"; readonly snapshot: SessionSnapshot }
  /** A line from the UI itself: command output, usage errors, send failures. */
  | { readonly type: "notice"; readonly level: NoticeLevel; readonly text: string; readonly atMs: number; readonly conversationId?: string }
  | { readonly type: "verify-info"; readonly info: VerifyInfo; readonly atMs: number; readonly conversationId?: string }
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
  | { readonly type: "paste-answer"; readonly answer: "insert" | "drop" }
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
  /**
   * Alt-U: hide the users sidebar if it is `shown`, else show it. Showing it where the terminal
   * is wide enough anyway goes back to automatic (it hides again when the terminal narrows).
   */
  | { readonly type: "toggle-sidebar"; readonly shown: boolean; readonly automatic: boolean }
  | { readonly type: "set-mouse"; readonly on: boolean }
  /** A failed message of mine was sent again (as a new message): /retry moves on to older ones. */
  | { readonly type: "message-retried"; readonly conversationId: string; readonly id: string }
  /** Older kept messages of a conversation, oldest first (scrolling past the top, reopening); `done`: none older. */
  | { readonly type: "older-history"; readonly conversationId: string; readonly messages: readonly ChatMessage[]; readonly done: boolean }
  /** /notify, /mute: how loud a conversation is. */
  | { readonly type: "set-notify"; readonly conversationId: string; readonly level: NotifyLevel }
  /** /filter: which presence lines a conversation shows. */
  | { readonly type: "set-filter"; readonly conversationId: string; readonly filter: PresenceFilter }
  /** /highlight add|remove: an extra word that counts as a mention of me. */
  | { readonly type: "highlight"; readonly op: "add" | "remove"; readonly word: string }
  /** /away [text]: away with that automatic reply, or back (undefined). */
  | { readonly type: "set-away"; readonly text?: string }
  | { readonly type: "quitting" };

function assertNever(value: never): never {
  throw new Error(`unhandled action: ${JSON.stringify(value)}`);
}

// --- conversations -------------------------------------------------------------------------

/** Returns the state with conversation `id` open (created at the end of the bar if new). */
function ensureConversation(state: TuiState, id: string): TuiState {
  if (state.conversations[id] !== undefined) return state;
  const ref = describeConversation(id, state.me);
  if (ref === undefined) return state;
  return {
    ...state,
    conversations: { ...state.conversations, [id]: emptyConversation(id, ref.kind, ref.title, ref.peer, usernameColumnWidth([state.me])) },
    order: [...state.order, id],
    // Open again (a new message, or the user): a restart shows it again too.
    settings: withClosed(state.settings, id, false),
  };
}

/** The nick column after `name` spoke in a conversation (it only grows, within 4..12 cells). */
function widerNick(width: number, name: string): number {
  // Usernames are ASCII (one cell per character): most messages need no measuring at all.
  return name.length <= width ? width : Math.max(width, usernameColumnWidth([name]));
}

/** Where a line for `id` goes: that conversation if the id is valid, else the current one. */
function target(state: TuiState, id: string | undefined): { state: TuiState; id: string } {
  if (id === undefined) return { state, id: state.current };
  const opened = ensureConversation(state, id);
  return opened.conversations[id] === undefined ? { state, id: state.current } : { state: opened, id };
}

function updateConversation(state: TuiState, id: string, update: (c: Conversation) => Conversation): TuiState {
  const conversation = state.conversations[id];
  if (conversation === undefined) return state;
  const updated = update(conversation);
  return updated === conversation ? state : { ...state, conversations: { ...state.conversations, [id]: updated } };
}

/** Appends an entry (built with the next sequence number) to conversation `id`. */
/**
 * Appends an entry to a conversation. `quiet` entries (notices, room events, verify blocks) are
 * not news: when nothing is below the unread ruler yet, the ruler moves past them, so it never
 * stands above only the answers to my own commands.
 */
function append(state: TuiState, id: string | undefined, build: (seq: number) => Entry, quiet = false): TuiState {
  const t = target(state, id);
  const seq = t.state.nextSeq;
  const next = updateConversation(t.state, t.id, (c) => {
    const atEnd = quiet && c.readMarker !== undefined && c.readMarker === listLast(c.entries)?.seq;
    return { ...c, entries: listAppend(c.entries, build(seq)), ...(atEnd ? { readMarker: seq } : {}) };
  });
  return { ...next, nextSeq: seq + 1 };
}

function withoutKey<T>(record: Readonly<Record<string, T>>, key: string): Readonly<Record<string, T>> {
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

/** Opens the rooms I am in, except those the user closed (rooms stay joined when closed). */
function openRooms(state: TuiState, rooms: readonly RoomView[]): TuiState {
  return rooms.reduce((s, r) => (s.settings.closed.includes(r.room) ? s : ensureConversation(s, r.room)), state);
}

// --- session events ------------------------------------------------------------------------

function upsertPeer(peers: readonly PeerView[], peer: PeerView): readonly PeerView[] {
  const i = peers.findIndex((p) => p.username === peer.username);
  if (i === -1) return [...peers, peer];
  const next = [...peers];
  next[i] = peer;
  return next;
}

/**
 * My own entry in the user list always exists and is online exactly while the connection is up:
 * that is the truth about my presence, whatever a directory snapshot taken mid-handshake says.
 */
function withSelf(state: TuiState): TuiState {
  const online = state.connection.state === "connected";
  const i = state.peers.findIndex((p) => p.username === state.me);
  const current = state.peers[i];
  if (current !== undefined && current.online === online && current.you) return state;
  const self: PeerView = current ? { ...current, online, you: true } : { username: state.me, online, trust: "verified", you: true };
  const peers = current ? state.peers.map((p, j) => (j === i ? self : p)) : [self, ...state.peers];
  return { ...state, peers };
}

function receiveMessage(state: TuiState, message: ChatMessage, o: { backlog?: boolean } = {}): TuiState {
  const t = target(state, message.conversationId);
  const seq = t.state.nextSeq;
  // What was already seen in an earlier run is history, not news; a muted conversation counts nothing.
  const level = notifyLevel(t.state.settings, t.id);
  const unseen = !message.own && o.backlog !== true && t.id !== t.state.current && level !== "none";
  const highlighted = unseen && message.kind !== "topic" && (t.id.startsWith("dm:") || mentions(message.text, state.me, state.settings.highlights));
  const counted = unseen && (level === "all" || highlighted);
  const next = updateConversation(t.state, t.id, (c) => {
    const updated: Conversation = {
      ...c,
      entries: listAppend(c.entries, { kind: "message", seq, message }),
      unread: counted ? c.unread + 1 : c.unread,
      highlights: highlighted ? c.highlights + 1 : c.highlights,
      nickWidth: widerNick(c.nickWidth, message.from),
      // The newest topic wins, also when an older one is delivered late (a queue after a reconnect).
      ...(message.kind === "topic" && (c.topic === undefined || message.sentAtMs >= c.topic.atMs) ? { topic: topicOf(message) } : {}),
    };
    if (!message.own) return updated;
    // Writing means what came before was read: the unread ruler moves below my own message.
    const read = updated.readMarker === undefined ? updated : { ...updated, readMarker: seq };
    // Sending is the end of reading history: my own message brings the view back down.
    if (read.scroll === undefined) return read;
    const { scroll: _scroll, ...following } = read;
    return following;
  });
  return { ...next, nextSeq: seq + 1 };
}

function topicOf(m: ChatMessage): NonNullable<Conversation["topic"]> {
  return { text: m.text, by: m.from, atMs: m.sentAtMs };
}

/**
 * Whether `username` spoke in the conversation within SMART_WINDOW_MS before `atMs` (the smart
 * filter shows presence lines only for them). Looks back through the newest entries only.
 */
function spokeRecently(c: Conversation | undefined, username: string, atMs: number): boolean {
  if (c === undefined) return false;
  const since = atMs - SMART_WINDOW_MS;
  for (let i = c.entries.length - 1, looked = 0; i >= 0 && looked < 2_000; i--, looked++) {
    const e = listGet(c.entries, i);
    if (e === undefined) continue;
    if (entryTime(e) < since) return false;
    if (e.kind === "message" && e.message.from === username) return true;
  }
  return false;
}

/** "bob came online" / "bob went offline", in the lobby. */
function presenceLine(state: TuiState, username: string, change: "online" | "offline", atMs: number): TuiState {
  const quiet = !spokeRecently(state.conversations[LOBBY_ID], username, atMs);
  return append(state, LOBBY_ID, (seq) => ({ kind: "presence", seq, atMs, username, change, ...(quiet ? { quiet: true as const } : {}) }), true);
}

/** After a (re)connection: how many queued messages came in, in the lobby. */
function caughtUp(state: TuiState, count: number, reconnect: boolean, atMs: number): TuiState {
  if (!reconnect && count === 0) return state;
  const n = `${count} message${count === 1 ? "" : "s"}`;
  const text = reconnect
    ? count === 0 ? "reconnected, nothing missed" : `reconnected, ${n} caught up`
    : `${n} arrived while you were away`;
  return append(state, LOBBY_ID, (seq) => ({ kind: "notice", seq, atMs, level: "info", text }), true);
}

/** Recent messages are at the end: look at the newest ones only. */
const STATE_SEARCH_LIMIT = 10_000;

function replaceMessage(entries: ChunkedList<Entry>, id: string, update: (entry: Extract<Entry, { kind: "message" }>) => Entry): ChunkedList<Entry> {
  const i = listFindLastIndex(entries, (e) => e.kind === "message" && e.message.id === id, STATE_SEARCH_LIMIT);
  const entry = listGet(entries, i);
  if (entry?.kind !== "message") return entries;
  const updated = update(entry);
  return updated === entry ? entries : listSet(entries, i, updated);
}

function updateMessageState(state: TuiState, event: Extract<SessionEvent, { type: "message-state" }>): TuiState {
  return updateConversation(state, event.conversationId, (c) => {
    const entries = replaceMessage(c.entries, event.id, (entry) => {
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

function keyChange(state: TuiState, event: Extract<SessionEvent, { type: "key-change" }>, atMs: number): TuiState {
  // The same change again (a message of theirs held since): the warning already shown says how
  // many are held now, instead of a second warning.
  const known = state.peers.find((p) => p.username === event.username)?.trust === "key-changed";
  const here = state.conversations[event.conversationId];
  // A pending key replaced by yet another is always a fresh warning.
  if (known && here !== undefined && event.replaced !== true) {
    const i = listFindLastIndex(here.entries, (e) => e.kind === "key-change" && e.username === event.username, STATE_SEARCH_LIMIT);
    const shown = listGet(here.entries, i);
    if (shown?.kind === "key-change") {
      if (shown.held === event.held) return state;
      return updateConversation(state, event.conversationId, (c) => ({ ...c, entries: listSet(c.entries, i, { ...shown, held: event.held }) }));
    }
  }
  // Mark the peer at once, so the sidebar shows it even before the session's peer event.
  const peers = state.peers.map((p) => (p.username === event.username ? { ...p, trust: "key-changed" as const } : p));
  let next = append({ ...state, peers }, event.conversationId, (seq) => ({
    kind: "key-change", seq, atMs, username: event.username, held: event.held,
    ...(event.conversationId.startsWith("#") ? { inRoom: true } : {}),
    ...(event.replaced === true ? { replaced: true, discarded: event.discarded ?? 0 } : {}),
  }));
  const t = target(state, event.conversationId);
  if (t.id !== next.current) {
    next = updateConversation(next, t.id, (c) => ({ ...c, highlights: c.highlights + 1 }));
    // The warning must not hide in a conversation the user is not looking at.
    const where = next.conversations[t.id]?.title ?? event.conversationId;
    next = append(next, next.current, (seq) => ({
      kind: "notice", seq, atMs, level: "warn",
      text: `${event.username}'s keys changed${event.replaced === true ? " AGAIN" : ""} — see ${where}: /verify ${event.username} shows the safety number and the exact /trust command`,
    }));
  }
  return next;
}

function roomEvent(state: TuiState, event: Extract<SessionEvent, { type: "room-event" }>): TuiState {
  const mine = event.username === state.me;
  let rooms = state.rooms.map((r) => (r.room === event.room ? { room: r.room, members: event.members } : r));
  if (mine) {
    if (event.kind === "left") rooms = rooms.filter((r) => r.room !== event.room);
    else if (!rooms.some((r) => r.room === event.room)) rooms = [...rooms, { room: event.room, members: event.members }];
  }
  // My own leave confirmed after /leave closed the room: do not open it again just to say so;
  // nor a room the user closed just because someone else came or went.
  if (state.conversations[event.room] === undefined && (!mine || event.kind === "left")) {
    return { ...state, rooms };
  }
  const quiet = !mine && !spokeRecently(state.conversations[event.room], event.username, event.atMs);
  // My own join is one line that names the members ("you joined #ops — members: alice, bob").
  return append({ ...state, rooms }, event.room, (seq) => ({
    kind: "room-event", seq, atMs: event.atMs, room: event.room, username: event.username, change: event.kind,
    ...(mine && event.kind === "joined" ? { members: event.members } : {}),
    ...(quiet ? { quiet: true as const } : {}),
  }), true);
}

function sessionEvent(state: TuiState, event: SessionEvent, atMs: number): TuiState {
  switch (event.type) {
    case "connection":
      return withSelf({ ...state, connection: event.status });
    case "directory": {
      // The whole list again (a reconnect): who was online and is not any more went offline
      // meanwhile. (Who came meanwhile gets no line: at start everyone would "come online".)
      const now = new Set(event.peers.filter((p) => p.online).map((p) => p.username));
      const gone = state.peers.filter((p) => p.online && !p.you && p.username !== state.me && !now.has(p.username));
      return gone.reduce((s, p) => presenceLine(s, p.username, "offline", atMs), withSelf({ ...state, peers: event.peers }));
    }
    case "peer": {
      const before = state.peers.find((p) => p.username === event.peer.username);
      const next = withSelf({ ...state, peers: upsertPeer(state.peers, event.peer) });
      if (event.peer.you || event.peer.username === state.me || (before?.online ?? false) === event.peer.online) return next;
      return presenceLine(next, event.peer.username, event.peer.online ? "online" : "offline", atMs);
    }
    case "caught-up":
      return caughtUp(state, event.count, event.reconnect, atMs);
    case "rooms":
      return openRooms({ ...state, rooms: event.rooms }, event.rooms);
    case "room-event":
      return roomEvent(state, event);
    case "message":
      return receiveMessage(state, event.message);
    case "message-state":
      return updateMessageState(state, event);
    case "key-change":
      return keyChange(state, event, atMs);
    case "refused":
      return append(state, event.conversationId, (seq) => ({ kind: "refused", seq, atMs, from: event.from }));
    case "notice":
      return append(state, event.conversationId, (seq) => ({ kind: "notice", seq, atMs, level: event.level, text: event.text }), true);
    default:
      return assertNever(event);
  }
}

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

// --- the reducer ---------------------------------------------------------------------------

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
  // The page may overlap what is shown (the backlog at start): only the ids not shown yet.
  const shown = new Set<string>();
  for (let i = 0; i < c.entries.length && i < messages.length + 1_000; i++) {
    const e = listGet(c.entries, i);
    if (e?.kind === "message") shown.add(e.message.id);
  }
  const fresh = messages.filter((m) => m.conversationId === id && !shown.has(m.id));
  if (fresh.length === 0) return updateConversation(state, id, (x) => (x.olderDone ? x : { ...x, olderDone: true }));
  const first = state.olderSeq - fresh.length + 1;
  const older: Entry[] = fresh.map((message, i) => ({ kind: "message", seq: first + i, message }));
  const topic = [...fresh].reverse().find((m) => m.kind === "topic");
  const next = updateConversation(state, id, (x) => {
    const { olderDone: _done, ...rest } = x;
    return {
      ...rest,
      entries: listFrom([...older, ...listToArray(x.entries)]),
      nickWidth: fresh.reduce((w, m) => widerNick(w, m.from), x.nickWidth),
      // The view stays where it was: the scroll position counts entries from the top.
      ...(x.scroll === undefined ? {} : { scroll: { top: x.scroll.top + fresh.length, skip: x.scroll.skip, seen: x.scroll.seen + fresh.length } }),
      ...(x.topic === undefined && topic !== undefined ? { topic: topicOf(topic) } : {}),
      ...(done ? { olderDone: true as const } : {}),
    };
  });
  return { ...next, olderSeq: first - 1 };
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

export function reducer(state: TuiState, action: Action): TuiState {
  let next = reduce(state, action);
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

function reduce(state: TuiState, action: Action): TuiState {
  switch (action.type) {
    case "session":
      return sessionEvent(state, action.event, action.atMs);
    case "session-batch":
      return inBatch(() => action.events.reduce((s, e) => sessionEvent(s, e.event, e.atMs), state));
    case "snapshot":
      return openRooms(
        withSelf({ ...state, connection: action.snapshot.connection, peers: action.snapshot.peers, rooms: action.snapshot.rooms }),
        action.snapshot.rooms,
      );
    case "notice":
      return append(state, action.conversationId, (seq) => ({ kind: "notice", seq, atMs: action.atMs, level: action.level, text: action.text }), true);
    case "verify-info":
      return append(state, action.conversationId, (seq) => ({ kind: "verify", seq, atMs: action.atMs, info: action.info }), true);
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
    case "toggle-sidebar": {
      if (action.shown) return { ...state, sidebar: false };
      if (!action.automatic) return { ...state, sidebar: true };
      const { sidebar: _choice, ...automatic } = state;
      return automatic;
    }
    case "set-mouse":
      return state.mouse === action.on ? state : { ...state, mouse: action.on };
    case "message-retried":
      return updateConversation(state, action.conversationId, (c) => {
        const entries = replaceMessage(c.entries, action.id, (entry) => (entry.retried ? entry : { ...entry, retried: true }));
        return entries === c.entries ? c : { ...c, entries };
      });
    case "older-history":
      return prependOlder(state, action.conversationId, action.messages, action.done);
    case "set-notify":
      return withSettings(state, withNotify(state.settings, action.conversationId, action.level));
    case "set-filter":
      return withSettings(state, withFilter(state.settings, action.conversationId, action.filter));
    case "highlight": {
      const has = state.settings.highlights.includes(action.word);
      if (action.op === "add" ? has : !has) return state;
      const highlights = action.op === "add" ? [...state.settings.highlights, action.word] : state.settings.highlights.filter((w) => w !== action.word);
      return withSettings(state, { ...state.settings, highlights });
    }
    case "set-away": {
      if (action.text === undefined) {
        if (state.away === undefined) return state;
        const { away: _away, ...back } = state;
        return back;
      }
      return state.away === action.text ? state : { ...state, away: action.text };
    }
    case "quitting":
      return state.quitting ? state : { ...state, quitting: true };
    default:
      return assertNever(action);
  }
}

function withSettings(state: TuiState, settings: UiSettings): TuiState {
  return settings === state.settings ? state : { ...state, settings };
}

export interface InitialStateOptions {
  readonly me: string;
  readonly serverLabel: string;
  readonly snapshot: SessionSnapshot;
  /** Shown in the lobby, in order. */
  readonly notices?: readonly StartupNotice[];
  /** Messages from earlier runs (the kept history, my unsent ones as pending): not unread. */
  readonly backlog?: readonly ChatMessage[];
  /** Mouse wheel scrolling from the start. */
  readonly mouse?: boolean;
  /** The kept settings (notify levels, filters, highlights, closed conversations). */
  readonly settings?: UiSettings;
  readonly atMs: number;
}

/** The state at start: the session's snapshot, the backlog, then startup notices in the lobby. */
export function createInitialState(options: InitialStateOptions): TuiState {
  const { me, serverLabel, snapshot, atMs } = options;
  const base: TuiState = {
    me,
    serverLabel,
    connection: snapshot.connection,
    peers: [],
    rooms: [],
    conversations: { [LOBBY_ID]: emptyConversation(LOBBY_ID, "lobby", LOBBY_ID, undefined, usernameColumnWidth([me])) },
    order: [LOBBY_ID],
    current: LOBBY_ID,
    input: EMPTY_INPUT,
    drafts: {},
    history: {},
    mouse: options.mouse ?? false,
    quitting: false,
    nextSeq: 1,
    olderSeq: 0,
    settings: options.settings ?? DEFAULT_SETTINGS,
  };
  const withSnapshot = reducer(base, { type: "snapshot", snapshot });
  // A conversation the user closed stays closed at start (my unsent messages still show).
  const closed = new Set(base.settings.closed);
  const backlog = (options.backlog ?? []).filter((m) => !closed.has(m.conversationId) || (m.own && m.state === "pending"));
  const backlogged = backlog.reduce((s, message) => receiveMessage(s, message, { backlog: true }), withSnapshot);
  // The user left each conversation when they quit: what arrives now goes below the unread ruler.
  const withBacklog = Object.keys(backlogged.conversations).reduce((s, id) => {
    const last = listLast(s.conversations[id]!.entries)?.seq;
    return last === undefined ? s : updateConversation(s, id, (c) => ({ ...c, readMarker: last }));
  }, backlogged);
  return (options.notices ?? []).reduce(
    (s, n) => reducer(s, { type: "notice", level: n.level, text: n.text, atMs, conversationId: LOBBY_ID }), withBacklog);
}
