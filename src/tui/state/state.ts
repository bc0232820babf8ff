// The whole UI state: one value, changed only by the reducer. Messages live per conversation
// (in a chunked list, so a conversation of 100,000 messages appends cheaply), each with its own
// scroll position and unread ruler; the input line has its history per conversation, and a
// half-typed line stays with the conversation it was typed in.
import type { ChatMessage, ConnectionStatus, MembershipLine, NoticeLevel, PeerView, RoomView, VerifyInfo } from "../../client/types.js";
import { emptyList, type ChunkedList } from "./chunked-list.js";
import { LOBBY_ID, type ConversationKind } from "./conversations.js";
import type { InputBuffer } from "./input-buffer.js";
import type { UiSettings } from "./settings.js";

/** One item in a conversation's scrollback. `seq` is unique in the whole state and grows. */
export type Entry =
  /** `retried`: a failed message of mine that /retry has sent again as a new message. */
  | { readonly kind: "message"; readonly seq: number; readonly message: ChatMessage; readonly retried?: true }
  | { readonly kind: "notice"; readonly seq: number; readonly atMs: number; readonly level: NoticeLevel; readonly text: string }
  /** An envelope that failed verification and was dropped. */
  | { readonly kind: "refused"; readonly seq: number; readonly atMs: number; readonly from: string }
  /**
   * A peer's keys changed: the new key is refused until the user decides, the conversations go on
   * with the key pinned before (protocol v2; `held` counts what a v1 session held). `replaced`: a
   * pending change replaced by yet another key; `discarded`: messages held under the replaced key, dropped.
   */
  | {
      readonly kind: "key-change"; readonly seq: number; readonly atMs: number; readonly username: string; readonly held: number;
      readonly inRoom?: boolean; readonly replaced?: boolean; readonly discarded?: number;
    }
  /**
   * Someone joined or left a room; `members` is kept for my own joins ("you joined #ops — members: …").
   * `quiet`: that person had not spoken here recently (the smart filter hides the line).
   */
  | {
      readonly kind: "room-event"; readonly seq: number; readonly atMs: number;
      readonly room: string; readonly username: string; readonly change: "joined" | "left";
      readonly members?: readonly string[]; readonly quiet?: true;
    }
  /**
   * Protocol v2: a membership change of the conversation's group, as the session reported it
   * (worded by src/tui/commands/membership-text.ts when drawn). `quiet` as for room events (joins
   * and leaves of someone who had not spoken here recently).
   */
  | {
      readonly kind: "membership"; readonly seq: number; readonly atMs: number;
      readonly conversationId: string; readonly line: MembershipLine; readonly quiet?: true;
    }
  /** Someone came online or went offline (in the lobby); `quiet` as for room events. */
  | {
      readonly kind: "presence"; readonly seq: number; readonly atMs: number;
      readonly username: string; readonly change: "online" | "offline"; readonly quiet?: true;
    }
  /** The answer to /verify: the safety number and what to do with it. */
  | { readonly kind: "verify"; readonly seq: number; readonly atMs: number; readonly info: VerifyInfo };

/**
 * Where a conversation is scrolled to, anchored at the top of the view: new messages arrive
 * below and never move it. `top` is an entry index, `skip` how many of that entry's rows are
 * above the view.
 */
export interface ScrollPosition {
  readonly top: number;
  readonly skip: number;
  /** How many entries the conversation had when the user scrolled up (the rest arrived since). */
  readonly seen: number;
}

export interface Conversation {
  readonly id: string;
  readonly kind: ConversationKind;
  /** "lobby", "#ops", "@bob". */
  readonly title: string;
  readonly peer?: string;
  readonly entries: ChunkedList<Entry>;
  /** Incoming messages since the user last looked at this conversation. */
  readonly unread: number;
  /** Of those, the ones addressed to me: DMs, mentions of my name, key changes. */
  readonly highlights: number;
  /** The seq of the newest entry when the user last left: the unread ruler goes after it. */
  readonly readMarker?: number;
  /** Undefined while following the newest messages. */
  readonly scroll?: ScrollPosition;
  /** The nick column's width in this conversation (its own speakers and me, 4..12 cells). */
  readonly nickWidth: number;
  /**
   * The room's topic: the topic message received last (/topic); `atMs` is its sender's claimed
   * time, shown only (PROTOCOL.md §11), never used to choose between topics.
   */
  readonly topic?: { readonly text: string; readonly by: string; readonly atMs: number };
  /** No older kept history to load (scrolling past the top has read it all). */
  readonly olderDone?: true;
}

/** Walking through earlier lines with Up / Down: how far back, and the line being typed before. */
export interface Recall {
  /** 0 is the newest line of the history. */
  readonly index: number;
  readonly draft: InputBuffer;
}

/** Tab completion in progress: repeated Tab cycles through `candidates`. */
export interface Completion {
  /** Where the completed word starts in the input. */
  readonly start: number;
  readonly candidates: readonly string[];
  readonly index: number;
  /** What follows the candidate (" ", ": "). */
  readonly suffix: string;
}

/** A paste too large to send without asking. */
export interface PendingPaste {
  readonly text: string;
  readonly lines: number;
  readonly bytes: number;
  /** Where it would go. */
  readonly conversationId: string;
}

export interface TuiState {
  readonly me: string;
  readonly serverLabel: string;
  readonly connection: ConnectionStatus;
  readonly peers: readonly PeerView[];
  readonly rooms: readonly RoomView[];
  /**
   * Protocol v2: who is in the lobby's MLS group (PROTOCOL.md §7), as the session last said
   * after a change of it: who reads a lobby line sent now. Undefined in v1 and until I joined it.
   */
  readonly lobbyMembers?: readonly string[];
  readonly conversations: Readonly<Record<string, Conversation>>;
  /** Open conversations in bar order; the lobby is always first and never closed. */
  readonly order: readonly string[];
  readonly current: string;
  /** The line being typed in the current conversation. */
  readonly input: InputBuffer;
  /** The input is a half-typed line restored on arriving, not edited since: shown "(draft)". */
  readonly draftRestored?: true;
  /** A restored draft was set aside in the input history because a command was started over it. */
  readonly draftAside?: true;
  /** /away: the text of the automatic reply while away. */
  readonly away?: string;
  /** Notify levels, presence filters, highlight words, closed conversations (kept across runs). */
  readonly settings: UiSettings;
  /** Half-typed lines of the other conversations, restored on switching back. */
  readonly drafts: Readonly<Record<string, InputBuffer>>;
  /** Lines sent from each conversation, oldest first (Up / Down). */
  readonly history: Readonly<Record<string, readonly string[]>>;
  readonly recall?: Recall;
  readonly completion?: Completion;
  readonly pendingPaste?: PendingPaste;
  /** The user's choice for the users sidebar (Alt-U); undefined: shown when the terminal is wide enough. */
  readonly sidebar?: boolean;
  /** Mouse wheel scrolling (the terminal reports the mouse, so selecting text needs Shift). */
  readonly mouse: boolean;
  /** The user asked to leave; the session is closing. */
  readonly quitting: boolean;
  readonly nextSeq: number;
  /** The seq given to the newest of the older entries loaded next (counts down, below every other). */
  readonly olderSeq: number;
}

export function emptyConversation(id: string, kind: ConversationKind, title: string, peer?: string, nickWidth = 4): Conversation {
  const base = { id, kind, title, entries: emptyList<Entry>(), unread: 0, highlights: 0, nickWidth };
  return peer === undefined ? base : { ...base, peer };
}

export function currentConversation(state: TuiState): Conversation {
  // The reducer keeps `current` pointing at an open conversation; the lobby always exists.
  return state.conversations[state.current] ?? state.conversations[LOBBY_ID] ?? emptyConversation(LOBBY_ID, "lobby", LOBBY_ID);
}

/** The time an entry is shown with (a message: when its sender sent it). */
export function entryTime(entry: Entry): number {
  return entry.kind === "message" ? entry.message.sentAtMs : entry.atMs;
}

/**
 * Whether two messages of one conversation are the same message. The content layer de-duplicates
 * by (sender, message id) (PROTOCOL.md §11.1): a message id is unique per sender only, and every
 * member reads the others' ids, so a member may send a message carrying someone else's id. The
 * sender (and whether it is mine) is part of what a message is: matched by id alone, that
 * message would take the other one's line.
 */
export function sameMessage(a: ChatMessage, b: Pick<ChatMessage, "id" | "from" | "own">): boolean {
  return a.id === b.id && a.from === b.from && a.own === b.own;
}

/**
 * A key naming one message among all shown (conversation, sender, id): what `sameMessage` compares,
 * for sets and maps.
 */
export function messageKey(m: Pick<ChatMessage, "conversationId" | "from" | "id" | "own">): string {
  // Usernames and hex ids never hold a space or a slash.
  return `${m.conversationId} ${m.own ? "own" : "peer"}/${m.from}/${m.id}`;
}
