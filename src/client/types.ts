// The client session as the UI sees it. The TUI depends only on this interface (tests use a
// fake); src/client/chat-client.ts implements it over grpc-js.
import type { ClientError, ReconnectStart, SessionEnd } from "./errors.js";
import type { LinkOutcome } from "./linking.js";

export type ConnectionStatus =
  | { readonly state: "connecting"; readonly attempt: number }
  | { readonly state: "connected"; readonly sinceMs: number }
  /**
   * `reason` is the client's plain sentence for `cause` (what the UI words with its own hints;
   * absent only where a status is made up without a cause, as in tests of the UI).
   */
  | { readonly state: "reconnecting"; readonly attempt: number; readonly retryAtMs: number; readonly reason: string; readonly cause?: SessionEnd }
  /** Will not retry by itself (e.g. replaced by another session, bad key): reason and cause say why. */
  | { readonly state: "failed"; readonly reason: string; readonly cause?: SessionEnd }
  | { readonly state: "closed" };

export type PeerTrust = "unverified" | "verified" | "key-changed";

export interface PeerView {
  readonly username: string;
  readonly online: boolean;
  readonly trust: PeerTrust;
  /** True for the local user's own entry. */
  readonly you: boolean;
}

export interface RoomView {
  readonly room: string;
  readonly members: readonly string[];
}

export type MessageState = "pending" | "accepted" | "failed";
/** "topic": a room topic set with /topic; "away": an automatic reply while its sender is away. */
export type MessageKind = "text" | "action" | "topic" | "away";

/** A kept message named by its sender and its id (an id is unique per sender only, PROTOCOL.md §11.1). */
export interface MessageRef {
  readonly id: string;
  readonly from: string;
}

export interface ChatMessage {
  /**
   * Hex of the 16-byte message id. Unique per sender in a conversation only (PROTOCOL.md §11.1:
   * any member may send a message carrying another member's id): the UI keys on (sender, id).
   */
  readonly id: string;
  readonly conversationId: string;
  readonly from: string;
  readonly kind: MessageKind;
  /** Already sanitised for the terminal (may contain \n and \t). */
  readonly text: string;
  /** The sender's claimed time (signed, but the sender's clock). */
  readonly sentAtMs: number;
  readonly receivedAtMs: number;
  /**
   * Incoming: when the relay accepted the envelope, by the relay's clock (unsigned; absent from
   * older relays). The screen shows it where it differs from sentAtMs by more than a minute.
   */
  readonly relayAtMs?: number;
  readonly own: boolean;
  /**
   * Own messages sent from another device of mine (PROTOCOL.md §4.5, §11): that device's name, as
   * my verified device list names it. Absent for messages sent from this device and for peers'.
   */
  readonly device?: string;
  /** Own messages only. */
  readonly state?: MessageState;
  readonly failure?: string;
  /** Why it failed, as data (kept in the history, so the UI can word it after a restart too). */
  readonly error?: ClientError;
  /** Own messages: recipients who were offline and will get it later. */
  readonly queuedFor?: readonly string[];
  /** A message before this one from the same sender in this conversation may be missing. */
  readonly gap?: boolean;
  /**
   * Incoming room messages: members of the room (as this client knows it) the sender left out of
   * the signed recipients (e.g. one whose key change the sender has not decided on).
   */
  readonly notFor?: readonly string[];
}

export type NoticeLevel = "info" | "warn" | "error";

/**
 * What a notice is about, as data, for the notices a UI may word with its own hints; the
 * notice's `text` is the client's plain sentence for it (no UI commands).
 */
export type NoticeAbout =
  /** A lobby message reached nobody: nobody else was online (or known online, while disconnected). */
  | { readonly kind: "nobody-online"; readonly connected: boolean }
  /** A room or lobby message left out these members: their keys changed and no decision was made. */
  | { readonly kind: "not-sent-to"; readonly usernames: readonly string[] }
  /** A member of this room changed keys (`again`: while a change was still pending). */
  | { readonly kind: "room-key-changed"; readonly username: string; readonly again: boolean }
  /** The session ended for a reason worth saying in the conversation (stopped for good, or a taken name). */
  | { readonly kind: "session-ended"; readonly cause: SessionEnd };

export type SessionEvent =
  | { readonly type: "connection"; readonly status: ConnectionStatus }
  /** The whole directory (after welcome). */
  | { readonly type: "directory"; readonly peers: readonly PeerView[] }
  /** One peer was added or changed (presence, trust). */
  | { readonly type: "peer"; readonly peer: PeerView }
  /** The rooms I belong to (after welcome, join, leave). */
  | { readonly type: "rooms"; readonly rooms: readonly RoomView[] }
  | {
      readonly type: "room-event"; readonly room: string; readonly kind: "joined" | "left";
      readonly username: string; readonly members: readonly string[]; readonly atMs: number;
    }
  /** A new message: incoming, or my own as soon as I send it (state "pending"). */
  | { readonly type: "message"; readonly message: ChatMessage }
  /** The delivery state of one of my messages changed. */
  | {
      readonly type: "message-state"; readonly conversationId: string; readonly id: string;
      readonly state: MessageState; readonly failure?: string; readonly queuedFor?: readonly string[];
      /** Why it failed, as data (`failure` is the client's plain sentence for it, the one kept in the history). */
      readonly error?: ClientError;
    }
  /**
   * A peer's keys changed (the relay shows another identity key for them). Protocol v2: the new
   * key is refused until /trust or /accept (PROTOCOL.md §4.4, §6) and conversations go on with the
   * key pinned before; `held` is 0. (A v1 session held their messages and blocked sending.)
   * `replaced`: a pending change was replaced by yet another key (a fresh warning);
   * `discarded`: messages a v1 session held under the replaced key, which can never be shown.
   */
  | {
      readonly type: "key-change"; readonly username: string; readonly conversationId: string; readonly held: number;
      readonly replaced?: boolean; readonly discarded?: number;
    }
  /**
   * My user read conversation `conversationId` up to the message (`from`, `id`) on another of my
   * devices (a read marker, PROTOCOL.md §11.3): what came before it is no longer unread here.
   */
  | { readonly type: "read"; readonly conversationId: string; readonly from: string; readonly id: string }
  /** An envelope could not be verified and was dropped (reason is logged, not shown). */
  | { readonly type: "refused"; readonly conversationId: string; readonly from: string }
  /**
   * The relay welcomed the session and everything it had queued for me has been opened: `count`
   * messages were shown. `reconnect` is false for the first connection of this run.
   */
  | { readonly type: "caught-up"; readonly count: number; readonly reconnect: boolean }
  /**
   * Protocol v2: the membership of a conversation's MLS group changed by a commit every member
   * processed (PROTOCOL.md §7), shown as a line naming who made it. `refused`: a commit
   * refused by policy (e.g. someone not the creator removing a member); nothing changed.
   */
  | { readonly type: "membership"; readonly conversationId: string; readonly line: MembershipLine }
  /** Anything else worth a line, optionally in one conversation (else the current one). */
  | { readonly type: "notice"; readonly level: NoticeLevel; readonly text: string; readonly conversationId?: string; readonly about?: NoticeAbout };

/** A membership line as the session reports it (and as the kept history gives it back). */
export type MembershipEvent = Extract<SessionEvent, { type: "membership" }>;

/**
 * What the screen shows again at start, oldest first: kept messages (my unsent ones pending)
 * and, in place among them, the kept membership lines of v2 conversations.
 */
export type BacklogItem = ChatMessage | MembershipEvent;

/** One membership change of a v2 conversation, as data; the UI words it. */
export interface MembershipLine {
  /**
   * created: `by` created the conversation; joined: `by` joined (external commit); added: `by`
   * added `users`; removed: `by` removed `users`; left: `by` left; refused: `by` tried to
   * remove `users` but only `creator` may. device-added / device-removed: `by` added or removed
   * a device (`device`, its name) of their own user `users[0]`, who keeps another device in the
   * conversation (PROTOCOL.md §4.5); refused-device: `by` put in a device of `users[0]` (`device`)
   * that is not in their device list, and it was refused.
   */
  readonly kind: "created" | "joined" | "added" | "removed" | "left" | "refused" | "device-added" | "device-removed" | "refused-device";
  /** The device's name (device-added, device-removed, refused-device). */
  readonly device?: string;
  /** device-added: the device added is this one (another device of mine brought it in). */
  readonly thisDevice?: boolean;
  readonly by: string;
  readonly users: readonly string[];
  /** The room's creator (the one who may remove others), when known. */
  readonly creator?: string;
  readonly atMs: number;
}

/** A failure is a ClientError (src/client/errors.ts): a kind and its data; the UI writes the sentence. */
export type Outcome<T = undefined> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: ClientError };

export interface VerifyInfo {
  readonly username: string;
  readonly trust: PeerTrust;
  /** 12 groups of 5 digits, the same on both sides. */
  readonly safetyNumber: string;
  /** With a pending key change: the safety number of the new keys. */
  readonly pendingSafetyNumber?: string;
  /**
   * What `/trust <user> …` must name to accept the keys shown (the pending ones when there is a
   * change): the first groups of the peer's half of that safety number.
   */
  readonly confirmGroups: readonly string[];
}

/** What /trust or /accept did: the keys now pinned for `username`, and the held messages released. */
export interface TrustResult {
  readonly username: string;
  /** true: trusted after comparing (/trust); false: accepted without comparing (/accept). */
  readonly verified: boolean;
  /** A pending key change was decided (held messages were released). */
  readonly keyChange: boolean;
  /** Held messages shown, in the order sent, and those discarded (not signed by the accepted key, or no longer valid). */
  readonly shown: number;
  readonly discarded: number;
}

export interface RoomListing {
  readonly joined: readonly RoomView[];
  readonly all: readonly { readonly room: string; readonly memberCount: number }[];
}

export interface SessionSnapshot {
  readonly connection: ConnectionStatus;
  readonly peers: readonly PeerView[];
  readonly rooms: readonly RoomView[];
}

export interface ChatSession {
  /** My username. */
  readonly me: string;
  /** host:port of the relay, for the status line. */
  readonly serverLabel: string;
  /** Receives every event from now on; returns the unsubscribe function. */
  subscribe(listener: (event: SessionEvent) => void): () => void;
  snapshot(): SessionSnapshot;
  /**
   * Seals and sends text to a conversation ("lobby", "#room", "dm:a:b"). On success the message
   * was emitted as a "message" event in state pending; errors are ClientErrors (e.g.
   * { kind: "key-changed", username: "bob" }).
   */
  send(conversationId: string, text: string, kind?: MessageKind): Outcome<{ readonly id: string }>;
  /** Protocol v2 rooms: the creator removes a member (/kick); every member sees the line. */
  kick?(room: string, username: string): Promise<Outcome>;
  /** Protocol v2 rooms: a member adds someone (/invite) from one of their KeyPackages. */
  invite?(room: string, username: string): Promise<Outcome>;
  /**
   * Protocol v2 rooms: a member adds several users at once (/invite a b c), as few commits as fit
   * a relay frame; nobody is added when one of them cannot be (already in the room, no KeyPackage).
   */
  inviteMany?(room: string, usernames: readonly string[]): Promise<Outcome<{ readonly commits: number }>>;
  /** My devices (PROTOCOL.md §4.5), refreshed from the relay (/devices). Protocol v2 only. */
  devices?(): Promise<Outcome<DeviceView[]>>;
  /**
   * Unlinks one of my devices by name or id prefix (/unlink; the primary only; `check`: only the
   * refusals, nothing published, for the question before the user confirms): a new device list
   * without it is signed and published, and the device is removed from every conversation.
   */
  unlink?(which: string, o?: { readonly check?: boolean }): Promise<Outcome<{ readonly name: string; readonly deviceId: string; readonly version: number }>>;
  /**
   * The user read this conversation up to this message (the newest shown, from someone else):
   * tells my other devices, so their unread counts follow (PROTOCOL.md §11.3). Cheap to call on
   * every change: the session sends at most one marker per conversation every few seconds, none
   * for the lobby, none without another device of mine in the conversation. Optional.
   */
  markRead?(conversationId: string, message: { readonly from: string; readonly id: string }): void;
  /** Sends a failed message again (as a new message with the same text). */
  retry(conversationId: string, id: string): Outcome<{ readonly id: string }>;
  joinRoom(room: string): Promise<Outcome<RoomView>>;
  leaveRoom(room: string): Promise<Outcome>;
  listRooms(): Promise<Outcome<RoomListing>>;
  members(room: string): Promise<Outcome<readonly string[]>>;
  /** My own key fingerprints, formatted for reading aloud. */
  fingerprint(): string;
  verifyInfo(username: string): Outcome<VerifyInfo>;
  /** verifyInfo, after fetching the user's keys from the relay when none are pinned yet (/verify). */
  verify(username: string): Promise<Outcome<VerifyInfo>>;
  /**
   * Marks a peer verified after the user compared safety numbers: `groups` are the digits the
   * user typed (VerifyInfo.confirmGroups, or the whole number); refused when they do not name
   * the keys pending (or pinned) now. Accepts a pending key change (v2: the new key may join
   * conversations from then on; a v1 session also released the messages it held).
   */
  trust(username: string, groups: readonly string[]): Outcome<TrustResult>;
  /** Continues with a peer's new keys without comparing them (marked not verified); as trust() for the rest. */
  acceptNewKeys(username: string): Outcome<TrustResult>;
  /** Forgets a conversation's kept history on this machine (/clear); the relay keeps none. */
  forgetHistory(conversationId: string): void;
  close(): Promise<void>;
  // Optional: a session without them (history off, a test double) simply lacks the feature.
  /** Connects now instead of after the backoff (/reconnect); says what it did. */
  reconnectNow?(): Outcome<ReconnectStart>;
  /** Kept messages of a conversation just before message `before` (the newest when undefined), oldest first. */
  olderHistory?(conversationId: string, before: MessageRef | undefined, limit: number): readonly ChatMessage[];
  /** Every kept message (all conversations) containing the text, oldest first. */
  searchHistory?(text: string): readonly ChatMessage[];
  /**
   * Away (/away): while set, a DM from someone gets one automatic, end-to-end encrypted reply
   * (kind "away") with this text per person; undefined is back. Nothing is sent to the relay
   * in the clear.
   */
  setAway?(text: string | undefined): void;
  /**
   * /link CODE (PROTOCOL.md §4.6): links the new device showing CODE, after `confirm` (the user
   * compares the digits on both screens). Only the primary device can; the outcome is one sentence.
   */
  linkDevice?(code: string, confirm: (sas: string, deviceName: string) => Promise<boolean>, signal?: AbortSignal): Promise<LinkOutcome>;
  /** A small named UI setting kept on this machine (JSON text), and writing it. */
  loadSetting?(name: string): string | undefined;
  saveSetting?(name: string, value: string): void;
}

/** The DM conversation id between me and a peer (same rule as src/protocol/names.ts). */
export function dmIdFor(me: string, peer: string): string {
  return me < peer ? `dm:${me}:${peer}` : `dm:${peer}:${me}`;
}

/** One of my devices, as /devices shows it (PROTOCOL.md §4.5). */
export interface DeviceView {
  readonly deviceId: string;
  readonly name: string;
  readonly primary: boolean;
  /** The device this client runs as. */
  readonly thisDevice: boolean;
  readonly online: boolean;
  /** ms since the Unix epoch; 0: never seen by this relay. */
  readonly lastSeenMs: number;
  readonly addedAtMs: number;
}
