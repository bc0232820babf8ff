// The UI's one reducer: session events, local notices, input editing and conversation
// switching. Pure (time comes in on the actions), total over its action union, and it never
// throws on odd input: an event for an unknown conversation opens it, one with an invalid
// conversation id lands in the current conversation.
import type { ChatMessage, NoticeLevel, PeerView, RoomView, SessionEvent, SessionSnapshot, VerifyInfo } from "../../client/types.js";
import { mentions } from "./attention.js";
import { LOBBY_ID, describeConversation } from "./conversations.js";
import { EMPTY_INPUT, backspace, deleteForward, insertText, moveCursor, type CursorMove } from "./input-buffer.js";
import { emptyConversation, type Conversation, type Entry, type TuiState } from "./state.js";

/** A notice to show at start (e.g. "created new keys in ~/.config/secure-chat"). */
export interface StartupNotice {
  readonly level: NoticeLevel;
  readonly text: string;
}

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
  | { readonly type: "input-clear" }
  /** Opens a conversation (DM, room) if needed; `focus` makes it current. */
  | { readonly type: "open-conversation"; readonly id: string; readonly focus: boolean }
  | { readonly type: "cycle-conversation"; readonly delta: 1 | -1 }
  | { readonly type: "close-conversation"; readonly id: string }
  /** A failed message of mine was sent again (as a new message): /retry moves on to older ones. */
  | { readonly type: "message-retried"; readonly conversationId: string; readonly id: string }
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
    conversations: { ...state.conversations, [id]: emptyConversation(id, ref.kind, ref.title, ref.peer) },
    order: [...state.order, id],
  };
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
function append(state: TuiState, id: string | undefined, build: (seq: number) => Entry): TuiState {
  const t = target(state, id);
  const seq = t.state.nextSeq;
  const next = updateConversation(t.state, t.id, (c) => ({ ...c, entries: [...c.entries, build(seq)] }));
  return { ...next, nextSeq: seq + 1 };
}

function focus(state: TuiState, id: string): TuiState {
  if (state.conversations[id] === undefined) return state;
  const focused = state.current === id ? state : { ...state, current: id };
  return updateConversation(focused, id, (c) => (c.unread === 0 && c.highlights === 0 ? c : { ...c, unread: 0, highlights: 0 }));
}

function openRooms(state: TuiState, rooms: readonly RoomView[]): TuiState {
  return rooms.reduce((s, r) => ensureConversation(s, r.room), state);
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

function receiveMessage(state: TuiState, message: ChatMessage): TuiState {
  const t = target(state, message.conversationId);
  const seq = t.state.nextSeq;
  const unseen = !message.own && t.id !== t.state.current;
  const highlighted = unseen && (t.id.startsWith("dm:") || mentions(message.text, state.me));
  const next = updateConversation(t.state, t.id, (c) => ({
    ...c,
    entries: [...c.entries, { kind: "message", seq, message }],
    unread: unseen ? c.unread + 1 : c.unread,
    highlights: highlighted ? c.highlights + 1 : c.highlights,
  }));
  return { ...next, nextSeq: seq + 1 };
}

function updateMessageState(state: TuiState, event: Extract<SessionEvent, { type: "message-state" }>): TuiState {
  return updateConversation(state, event.conversationId, (c) => {
    // Recent messages are at the end: search backwards.
    for (let i = c.entries.length - 1; i >= 0; i--) {
      const entry = c.entries[i];
      if (entry?.kind !== "message" || entry.message.id !== event.id) continue;
      const { failure: _oldFailure, queuedFor: _oldQueued, ...rest } = entry.message;
      let message: ChatMessage = { ...rest, state: event.state };
      const failure = event.failure ?? (event.state === "failed" ? entry.message.failure : undefined);
      if (failure !== undefined) message = { ...message, failure };
      const queuedFor = event.queuedFor ?? entry.message.queuedFor;
      if (queuedFor !== undefined && event.state !== "failed") message = { ...message, queuedFor };
      const entries = [...c.entries];
      entries[i] = { ...entry, message };
      return { ...c, entries };
    }
    return c;
  });
}

function keyChange(state: TuiState, event: Extract<SessionEvent, { type: "key-change" }>, atMs: number): TuiState {
  // Mark the peer at once, so the sidebar shows it even before the session's peer event.
  const peers = state.peers.map((p) => (p.username === event.username ? { ...p, trust: "key-changed" as const } : p));
  let next = append({ ...state, peers }, event.conversationId, (seq) => ({
    kind: "key-change", seq, atMs, username: event.username, held: event.held,
  }));
  const t = target(state, event.conversationId);
  if (t.id !== next.current) {
    next = updateConversation(next, t.id, (c) => ({ ...c, highlights: c.highlights + 1 }));
    // The warning must not hide in a conversation the user is not looking at.
    const where = next.conversations[t.id]?.title ?? event.conversationId;
    next = append(next, next.current, (seq) => ({
      kind: "notice", seq, atMs, level: "warn",
      text: `${event.username}'s keys changed — see ${where}: /verify ${event.username}, then /trust ${event.username} if the safety number matches`,
    }));
  }
  return next;
}

function roomEvent(state: TuiState, event: Extract<SessionEvent, { type: "room-event" }>): TuiState {
  let rooms = state.rooms.map((r) => (r.room === event.room ? { room: r.room, members: event.members } : r));
  if (event.username === state.me) {
    if (event.kind === "left") rooms = rooms.filter((r) => r.room !== event.room);
    else if (!rooms.some((r) => r.room === event.room)) rooms = [...rooms, { room: event.room, members: event.members }];
  }
  // My own leave confirmed after /leave closed the room: do not open it again just to say so.
  if (event.username === state.me && event.kind === "left" && state.conversations[event.room] === undefined) {
    return { ...state, rooms };
  }
  return append({ ...state, rooms }, event.room, (seq) => ({
    kind: "room-event", seq, atMs: event.atMs, room: event.room, username: event.username, change: event.kind,
  }));
}

function sessionEvent(state: TuiState, event: SessionEvent, atMs: number): TuiState {
  switch (event.type) {
    case "connection":
      return withSelf({ ...state, connection: event.status });
    case "directory":
      return withSelf({ ...state, peers: event.peers });
    case "peer":
      return withSelf({ ...state, peers: upsertPeer(state.peers, event.peer) });
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
      return append(state, event.conversationId, (seq) => ({ kind: "notice", seq, atMs, level: event.level, text: event.text }));
    default:
      return assertNever(event);
  }
}

// --- the reducer ---------------------------------------------------------------------------

function cycle(state: TuiState, delta: 1 | -1): TuiState {
  const i = state.order.indexOf(state.current);
  const n = state.order.length;
  const id = state.order[(((i + delta) % n) + n) % n];
  return id === undefined ? state : focus(state, id);
}

function close(state: TuiState, id: string): TuiState {
  if (id === LOBBY_ID || state.conversations[id] === undefined) return state;
  const i = state.order.indexOf(id);
  const order = state.order.filter((x) => x !== id);
  const { [id]: _closed, ...conversations } = state.conversations;
  const next = { ...state, conversations, order };
  if (state.current !== id) return next;
  return focus(next, order[Math.max(0, i - 1)] ?? LOBBY_ID);
}

function withInput(state: TuiState, input: TuiState["input"]): TuiState {
  return input === state.input ? state : { ...state, input };
}

export function reducer(state: TuiState, action: Action): TuiState {
  switch (action.type) {
    case "session":
      return sessionEvent(state, action.event, action.atMs);
    case "session-batch":
      return action.events.reduce((s, e) => sessionEvent(s, e.event, e.atMs), state);
    case "snapshot":
      return openRooms(
        withSelf({ ...state, connection: action.snapshot.connection, peers: action.snapshot.peers, rooms: action.snapshot.rooms }),
        action.snapshot.rooms,
      );
    case "notice":
      return append(state, action.conversationId, (seq) => ({ kind: "notice", seq, atMs: action.atMs, level: action.level, text: action.text }));
    case "verify-info":
      return append(state, action.conversationId, (seq) => ({ kind: "verify", seq, atMs: action.atMs, info: action.info }));
    case "input-insert":
      return withInput(state, insertText(state.input, action.text));
    case "input-backspace":
      return withInput(state, backspace(state.input));
    case "input-delete":
      return withInput(state, deleteForward(state.input));
    case "input-move":
      return withInput(state, moveCursor(state.input, action.move));
    case "input-clear":
      return withInput(state, EMPTY_INPUT);
    case "open-conversation": {
      const opened = ensureConversation(state, action.id);
      return action.focus ? focus(opened, action.id) : opened;
    }
    case "cycle-conversation":
      return cycle(state, action.delta);
    case "close-conversation":
      return close(state, action.id);
    case "message-retried":
      return updateConversation(state, action.conversationId, (c) => {
        const i = c.entries.findLastIndex((e) => e.kind === "message" && e.message.id === action.id);
        const entry = c.entries[i];
        if (entry?.kind !== "message" || entry.retried) return c;
        const entries = [...c.entries];
        entries[i] = { ...entry, retried: true };
        return { ...c, entries };
      });
    case "quitting":
      return state.quitting ? state : { ...state, quitting: true };
    default:
      return assertNever(action);
  }
}

export interface InitialStateOptions {
  readonly me: string;
  readonly serverLabel: string;
  readonly snapshot: SessionSnapshot;
  /** Shown in the lobby, in order. */
  readonly notices?: readonly StartupNotice[];
  /** My messages still waiting for the relay from an earlier run (shown as pending). */
  readonly pending?: readonly ChatMessage[];
  readonly atMs: number;
}

/** The state at start: the session's snapshot, startup notices in the lobby, pending messages. */
export function createInitialState(options: InitialStateOptions): TuiState {
  const { me, serverLabel, snapshot, atMs } = options;
  const base: TuiState = {
    me,
    serverLabel,
    connection: snapshot.connection,
    peers: [],
    rooms: [],
    conversations: { [LOBBY_ID]: emptyConversation(LOBBY_ID, "lobby", LOBBY_ID) },
    order: [LOBBY_ID],
    current: LOBBY_ID,
    input: EMPTY_INPUT,
    quitting: false,
    nextSeq: 1,
  };
  const withSnapshot = reducer(base, { type: "snapshot", snapshot });
  const withNotices = (options.notices ?? []).reduce(
    (s, n) => reducer(s, { type: "notice", level: n.level, text: n.text, atMs, conversationId: LOBBY_ID }), withSnapshot);
  return (options.pending ?? []).reduce((s, message) => receiveMessage(s, message), withNotices);
}
