// The whole UI state: one value, changed only by the reducer. Messages live per conversation,
// so switching, unread counts and (later) per-conversation scrollback need no re-filtering.
import type { ChatMessage, ConnectionStatus, NoticeLevel, PeerView, RoomView, VerifyInfo } from "../../client/types.js";
import { LOBBY_ID, type ConversationKind } from "./conversations.js";
import type { InputBuffer } from "./input-buffer.js";

/** One item in a conversation's scrollback. `seq` is unique in the whole state (React keys). */
export type Entry =
  /** `retried`: a failed message of mine that /retry has sent again as a new message. */
  | { readonly kind: "message"; readonly seq: number; readonly message: ChatMessage; readonly retried?: true }
  | { readonly kind: "notice"; readonly seq: number; readonly atMs: number; readonly level: NoticeLevel; readonly text: string }
  /** An envelope that failed verification and was dropped. */
  | { readonly kind: "refused"; readonly seq: number; readonly atMs: number; readonly from: string }
  /** A peer's keys changed: their messages are held, sending to them is blocked. */
  | { readonly kind: "key-change"; readonly seq: number; readonly atMs: number; readonly username: string; readonly held: number }
  | {
      readonly kind: "room-event"; readonly seq: number; readonly atMs: number;
      readonly room: string; readonly username: string; readonly change: "joined" | "left";
    }
  /** The answer to /verify: the safety number and what to do with it. */
  | { readonly kind: "verify"; readonly seq: number; readonly atMs: number; readonly info: VerifyInfo };

export interface Conversation {
  readonly id: string;
  readonly kind: ConversationKind;
  /** "lobby", "#ops", "@bob". */
  readonly title: string;
  readonly peer?: string;
  readonly entries: readonly Entry[];
  /** Incoming messages since the user last looked at this conversation. */
  readonly unread: number;
  /** Of those, the ones addressed to me: DMs, mentions of my name, key changes. */
  readonly highlights: number;
}

export interface TuiState {
  readonly me: string;
  readonly serverLabel: string;
  readonly connection: ConnectionStatus;
  readonly peers: readonly PeerView[];
  readonly rooms: readonly RoomView[];
  readonly conversations: Readonly<Record<string, Conversation>>;
  /** Open conversations in bar order; the lobby is always first and never closed. */
  readonly order: readonly string[];
  readonly current: string;
  readonly input: InputBuffer;
  /** The user asked to leave; the session is closing. */
  readonly quitting: boolean;
  readonly nextSeq: number;
}

export function emptyConversation(id: string, kind: ConversationKind, title: string, peer?: string): Conversation {
  const base = { id, kind, title, entries: [], unread: 0, highlights: 0 };
  return peer === undefined ? base : { ...base, peer };
}

export function currentConversation(state: TuiState): Conversation {
  // The reducer keeps `current` pointing at an open conversation; the lobby always exists.
  return state.conversations[state.current] ?? state.conversations[LOBBY_ID] ?? emptyConversation(LOBBY_ID, "lobby", LOBBY_ID);
}
