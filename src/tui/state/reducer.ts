// The UI's one reducer: session events, local notices, input editing (with history, completion
// and paste), scrolling, and conversation switching. Pure (time comes in on the actions, the
// pane size on scroll actions), total over its action union, and it never throws on odd input:
// an event for an unknown conversation opens it, one with an invalid conversation id lands in
// the current conversation.
//
// This file composes three slices, each the reducer for its own actions over the one TuiState:
// input-reducer.ts (the edit line, its history, completion, paste), conversations-reducer.ts
// (scrollback, unread counts and ruler, scrolling, switching: open-conversations.ts) and
// session-reducer.ts (connection, presence, users and trust, rooms, settings).
import type { BacklogItem, NoticeLevel, SessionSnapshot } from "../../client/types.js";
import { assertNever } from "./assert-never.js";
import { listLast } from "./chunked-list.js";
import { LOBBY_ID } from "./conversations.js";
import { reduceConversations, receiveMessage, type ConversationAction } from "./conversations-reducer.js";
import { EMPTY_INPUT } from "./input-buffer.js";
import { reduceInput, settleDraftMarks, type InputAction } from "./input-reducer.js";
import { updateConversation } from "./open-conversations.js";
import { usernameColumnWidth } from "./scroll.js";
import { keptMembership, reduceSession, type SessionAction } from "./session-reducer.js";
import { DEFAULT_SETTINGS, type UiSettings } from "./settings.js";
import { emptyConversation, type TuiState } from "./state.js";

export type { Viewport } from "./conversations-reducer.js";
export { HISTORY_LIMIT, completionSources } from "./input-reducer.js";

/** A notice to show at start (e.g. "created new keys in ~/.config/secure-chat"). */
export interface StartupNotice {
  readonly level: NoticeLevel;
  readonly text: string;
}

/** Every action the UI dispatches (each slice file documents its own). */
export type Action = SessionAction | ConversationAction | InputAction;

export function reducer(state: TuiState, action: Action): TuiState {
  return settleDraftMarks(state, reduce(state, action));
}

function reduce(state: TuiState, action: Action): TuiState {
  switch (action.type) {
    case "session":
    case "session-batch":
    case "snapshot":
    case "lobby-members":
    case "server-label":
    case "toggle-sidebar":
    case "set-mouse":
    case "set-notify":
    case "set-filter":
    case "highlight":
    case "set-away":
    case "quitting":
      return reduceSession(state, action);
    case "notice":
    case "verify-info":
    case "scroll":
    case "open-conversation":
    case "focus-index":
    case "cycle-conversation":
    case "next-active":
    case "close-conversation":
    case "clear-conversation":
    case "message-retried":
    case "older-history":
      return reduceConversations(state, action);
    case "input-insert":
    case "input-backspace":
    case "input-delete":
    case "input-move":
    case "input-kill":
    case "input-up":
    case "input-down":
    case "complete":
    case "input-submitted":
    case "paste":
    case "paste-answer":
      return reduceInput(state, action);
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
  /**
   * Messages from earlier runs (the kept history, my unsent ones as pending), with the kept
   * membership lines in place: not unread.
   */
  readonly backlog?: readonly BacklogItem[];
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
  const backlog = (options.backlog ?? []).filter((m) => !closed.has(m.conversationId) || (!("type" in m) && m.own && m.state === "pending"));
  const backlogged = backlog.reduce((s, item) => ("type" in item ? keptMembership(s, item) : receiveMessage(s, item, { backlog: true })), withSnapshot);
  // The user left each conversation when they quit: what arrives now goes below the unread ruler.
  const withBacklog = Object.keys(backlogged.conversations).reduce((s, id) => {
    const last = listLast(s.conversations[id]!.entries)?.seq;
    return last === undefined ? s : updateConversation(s, id, (c) => ({ ...c, readMarker: last }));
  }, backlogged);
  return (options.notices ?? []).reduce(
    (s, n) => reducer(s, { type: "notice", level: n.level, text: n.text, atMs, conversationId: LOBBY_ID }), withBacklog);
}
