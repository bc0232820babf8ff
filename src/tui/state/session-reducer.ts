// The session slice of the reducer: the connection, who is online (presence lines), the users
// list and its trust marks (key changes), rooms and their members, and the UI settings (notify
// levels, filters, highlights, away, sidebar, mouse, quitting). Lines it shows go into the
// conversations through the conversations slice. Pure, like the reducer.
import type { MembershipEvent, MembershipLine, PeerView, RoomView, SessionEvent, SessionSnapshot } from "../../client/types.js";
import { isValidUsername } from "../../protocol/names.js";
import { assertNever } from "./assert-never.js";
import { inBatch, listFindLastIndex, listGet, listSet } from "./chunked-list.js";
import { LOBBY_ID, describeConversation } from "./conversations.js";
import { STATE_SEARCH_LIMIT, append, appendBefore, readElsewhere, receiveMessage, updateMessageState } from "./conversations-reducer.js";
import { ensureConversation, target, updateConversation } from "./open-conversations.js";
import {
  SMART_WINDOW_MS, withFilter, withNotify,
  type NotifyLevel, type PresenceFilter, type UiSettings,
} from "./settings.js";
import { entryTime, type Conversation, type Entry, type TuiState } from "./state.js";

/** The actions of this slice (see `Action` in reducer.ts). */
export type SessionAction =
  /** Every session event, stamped with the local time it arrived. */
  | { readonly type: "session"; readonly event: SessionEvent; readonly atMs: number }
  /** Several session events at once (a burst is folded in one render). */
  | { readonly type: "session-batch"; readonly events: readonly { readonly event: SessionEvent; readonly atMs: number }[] }
  /** The session's state as a whole (at start). */
  | { readonly type: "snapshot"; readonly snapshot: SessionSnapshot }
  /** Protocol v2: the lobby group's members, read from the session after a change of them. */
  | { readonly type: "lobby-members"; readonly members: readonly string[] }
  /** The relay in use changed (a client with several relays moved to another): the status row names it. */
  | { readonly type: "server-label"; readonly label: string }
  /**
   * Alt-U: hide the users sidebar if it is `shown`, else show it. Showing it where the terminal
   * is wide enough anyway goes back to automatic (it hides again when the terminal narrows).
   */
  | { readonly type: "toggle-sidebar"; readonly shown: boolean; readonly automatic: boolean }
  | { readonly type: "set-mouse"; readonly on: boolean }
  /** /notify, /mute: how loud a conversation is. */
  | { readonly type: "set-notify"; readonly conversationId: string; readonly level: NotifyLevel }
  /** /filter: which presence lines a conversation shows. */
  | { readonly type: "set-filter"; readonly conversationId: string; readonly filter: PresenceFilter }
  /** /highlight add|remove: an extra word that counts as a mention of me. */
  | { readonly type: "highlight"; readonly op: "add" | "remove"; readonly word: string }
  /** /away [text]: away with that automatic reply, or back (undefined). */
  | { readonly type: "set-away"; readonly text?: string }
  | { readonly type: "quitting" };

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
    // A message by when it arrived here: its `sentAtMs` is the sender's clock, shown only
    // (PROTOCOL.md §11), and a claimed time far back would end the look back early.
    if ((e.kind === "message" ? e.message.receivedAtMs : entryTime(e)) < since) return false;
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

/**
 * A room's member list after a membership change (PROTOCOL.md §7), and whether I am still
 * in it: the room leaves my list when I left or was removed, and joins it when I created,
 * joined or was added. Names that are not usernames are left out (the session checks them; the
 * sidebar does not rely on it).
 */
function roomsAfter(rooms: readonly RoomView[], room: string, line: MembershipLine, me: string): readonly RoomView[] {
  const known = rooms.find((r) => r.room === room);
  const members = new Set(known?.members ?? []);
  const users = line.users.filter(isValidUsername);
  const by = isValidUsername(line.by) ? [line.by] : [];
  switch (line.kind) {
    case "created":
    case "joined":
      by.forEach((u) => members.add(u));
      break;
    case "added":
      [...by, ...users].forEach((u) => members.add(u));
      break;
    case "removed":
      users.forEach((u) => members.delete(u));
      break;
    case "left":
      by.forEach((u) => members.delete(u));
      break;
    case "refused":
    case "device-added":
    case "device-removed":
    case "refused-device":
      return rooms;
  }
  if (!members.has(me)) return known === undefined ? rooms : rooms.filter((r) => r.room !== room);
  const view: RoomView = { room, members: [...members].sort() };
  return known === undefined ? [...rooms, view] : rooms.map((r) => (r.room === room ? view : r));
}

/** How many of a conversation's last entries are my own lines still pending (not yet sent). */
function waitingForGroup(c: Conversation | undefined): number {
  if (c === undefined) return 0;
  let n = 0;
  for (let i = c.entries.length - 1; i >= 0 && n < STATE_SEARCH_LIMIT; i--, n++) {
    const e = listGet(c.entries, i);
    if (e?.kind !== "message" || !e.message.own || e.message.state !== "pending") break;
  }
  return n;
}

/**
 * Protocol v2: one membership change, as a line naming who made it (drawn by the view with
 * membership-text.ts), and the room's members in the sidebar. A line for no valid conversation
 * is dropped (it would mislead anywhere else).
 */
function membership(state: TuiState, event: Extract<SessionEvent, { type: "membership" }>): TuiState {
  const { conversationId: id, line } = event;
  const ref = describeConversation(id, state.me);
  if (ref === undefined) return state;
  const me = state.me;
  const next = ref.kind === "room" ? { ...state, rooms: roomsAfter(state.rooms, id, line, me) } : state;
  // The lobby: who comes and goes is already said by the presence lines (joining the lobby group
  // is coming online), and removing long-gone members is housekeeping. Only a refused change shows.
  if (ref.kind === "lobby" && line.kind !== "refused") return next;
  const aboutMe = ref.kind === "dm" || line.by === me || line.users.includes(me);
  // A closed conversation is not opened again for others' changes (a refused one excepted: someone
  // tried what only the creator may), nor for my own leave.
  const opens = (aboutMe || line.kind === "refused") && !(line.kind === "left" && line.by === me);
  if (state.conversations[id] === undefined && !opens) return next;
  const comings = line.kind === "joined" || line.kind === "left";
  const quiet = comings && line.by !== me && !spokeRecently(state.conversations[id], line.by, line.atMs);
  const build = (seq: number): Entry => ({
    kind: "membership", seq, atMs: line.atMs, conversationId: id, line, ...(quiet ? { quiet: true as const } : {}),
  });
  // A DM's start ("you started this conversation") is reported once its group is made, which my
  // first lines waited for: shown above those, as it happened.
  const waiting = ref.kind === "dm" && line.kind === "added" ? waitingForGroup(next.conversations[id]) : 0;
  let after = appendBefore(next, id, waiting, build, line.kind !== "refused");
  // Someone else adding or removing me, or a refused change, must not hide in another conversation.
  // A DM's lines are its start ("bob started this conversation") and devices coming and going:
  // never counts of their own (the DM's first message is the news; counting both showed (2!)).
  const forMe = ref.kind !== "dm" && line.by !== me && line.users.includes(me) && (line.kind === "added" || line.kind === "removed");
  if ((forMe || line.kind === "refused") && after.current !== id) {
    after = updateConversation(after, id, (c) => ({ ...c, highlights: c.highlights + 1 }));
  }
  return after;
}

/**
 * A membership line kept from an earlier run (the backlog), in place among the kept messages: a
 * line like the live one, but history: the sidebar's members come from the session's snapshot,
 * and nothing is highlighted. The lobby shows only refused changes, as live.
 */
export function keptMembership(state: TuiState, event: MembershipEvent): TuiState {
  const { conversationId: id, line } = event;
  const ref = describeConversation(id, state.me);
  if (ref === undefined || (ref.kind === "lobby" && line.kind !== "refused")) return state;
  const comings = line.kind === "joined" || line.kind === "left";
  const quiet = comings && line.by !== state.me && !spokeRecently(state.conversations[id], line.by, line.atMs);
  return append(state, id, (seq) => ({
    kind: "membership", seq, atMs: line.atMs, conversationId: id, line, ...(quiet ? { quiet: true as const } : {}),
  }), true);
}

function sessionEvent(state: TuiState, event: SessionEvent, atMs: number): TuiState {
  switch (event.type) {
    case "connection": {
      // Without a session nobody's presence is known: shown offline (no lines) until the next
      // Welcome's directory says who is online again, as the sidebar of an IRC client empties.
      const lost = state.connection.state === "connected" && event.status.state !== "connected";
      const peers = lost ? state.peers.map((p) => (p.online && !p.you && p.username !== state.me ? { ...p, online: false } : p)) : state.peers;
      return withSelf({ ...state, connection: event.status, peers });
    }
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
    case "read":
      return readElsewhere(state, event.conversationId, event.from, event.id);
    case "key-change":
      return keyChange(state, event, atMs);
    case "refused":
      return append(state, event.conversationId, (seq) => ({ kind: "refused", seq, atMs, from: event.from }));
    case "membership":
      return membership(state, event);
    case "notice":
      return append(state, event.conversationId, (seq) => ({ kind: "notice", seq, atMs, level: event.level, text: event.text }), true);
    default:
      return assertNever(event);
  }
}

export function reduceSession(state: TuiState, action: SessionAction): TuiState {
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
    case "lobby-members":
      return { ...state, lobbyMembers: action.members };
    case "server-label":
      return action.label === state.serverLabel ? state : { ...state, serverLabel: action.label };
    case "toggle-sidebar": {
      if (action.shown) return { ...state, sidebar: false };
      if (!action.automatic) return { ...state, sidebar: true };
      const { sidebar: _choice, ...automatic } = state;
      return automatic;
    }
    case "set-mouse":
      return state.mouse === action.on ? state : { ...state, mouse: action.on };
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
