// What the protocol v2 conversation engine (src/client/mls/conversations.ts) needs from the
// content layer (src/client/mls/content.ts): the application data of PROTOCOL.md §11 around
// each text (per-sender chain, last-seen hashes, message ids), drop detection, and the update
// policy of §10. The engine owns the MLS groups; the content layer owns what is inside a message.
// Both sides code against this file; it holds types only.
import type { AppDataKind, AppKind, AppReadRef } from "../../protocol/mls/index.js";

/** A member's leaf as the content layer needs it (an MlsMember fits): one record per device (§4.5). */
export interface MemberLeaf {
  readonly username: string;
  /** The leaf's MLS signature key: its device's key in every group. */
  readonly signatureKey: Uint8Array;
}

export interface SealedContent {
  /** The application data to encrypt (MlsGroup.encrypt pads it). */
  readonly app: Uint8Array;
  /** 16 random bytes, the message's id (hex of it is ChatMessage.id). */
  readonly messageId: Buffer;
  readonly sentAtMs: number;
}

export interface OpenedContent {
  readonly messageId: Buffer;
  /** `read`: a read marker (§11.3), never shown; the engine uses one only from my own other devices. */
  readonly kind: AppDataKind;
  /** Kind `read` only: the newest message its sender's user read. */
  readonly read?: AppReadRef;
  /** Sanitised for the terminal (src/protocol/sanitize.ts), as v1 shows text. */
  readonly text: string;
  readonly sentAtMs: number;
  /** A message before this one from the same sender in this conversation is missing (§11 chain). */
  readonly gap: boolean;
  /** This message id was opened before (a redelivery): do not show it again. */
  readonly duplicate: boolean;
  /**
   * §12 fork check (DM only): rooms where the sender's epoch authenticator for an epoch differs
   * from mine for that same epoch and group: the relay forked the room. Absent or empty otherwise.
   */
  readonly forked?: readonly { readonly conversationId: string; readonly epoch: number }[];
}

/** Own messages whose state changed by what peers acknowledged (§11). */
export interface OwnDeliveryChange {
  /** Hex message ids now acknowledged by every member heard from since. */
  readonly confirmed: readonly string[];
  /** Hex message ids lost: peers sent twice after it was accepted without acknowledging it. */
  readonly lost: readonly string[];
}

export interface ContentLayer {
  /**
   * Application data for one message of mine (chain and seen hashes filled in). Throws a ClientError-worthy Error on bad input (text too long).
   * `messageId` (optional, 16 bytes): the id of a message of mine sealed before and not delivered (re-sealed for the group that
   * replaced its group, or after a crash), so its line keeps its id and a copy that did arrive is a duplicate; fresh when omitted.
   */
  seal(conversationId: string, groupId: Uint8Array, kind: AppKind, text: string, nowMs: number, messageId?: Buffer): SealedContent;
  /**
   * §11.3: a read marker naming the newest message I read here, for my other devices (outside
   * every chain). Optional: a layer without it sends none. Never for the lobby.
   */
  sealRead?(conversationId: string, groupId: Uint8Array, read: AppReadRef, nowMs: number): SealedContent;
  /**
   * This client's MLS signature key (§4.5): tells my own leaf (a reflection) from my other
   * devices', and which seen entries are about this device. Optional; idempotent.
   */
  thisDevice?(signatureKey: Uint8Array): void;
  /** The relay ACCEPTED my message (its loss can now be detected). */
  accepted(conversationId: string, messageId: Buffer): void;
  /**
   * Decodes and checks a peer's (or my other device's) application data (strict codec;
   * conversation, sender, chain per sender device: `signatureKey` is the sender leaf's) and
   * records it as seen. Throws MlsProtocolError on malformed data (the message is refused).
   */
  open(conversationId: string, groupId: Uint8Array, sender: string, app: Uint8Array, signatureKey?: Uint8Array): { readonly content: OpenedContent; readonly own: OwnDeliveryChange };
  /**
   * The group's members changed (the chain of a departed member is forgotten; a new one starts
   * fresh): usernames, or the leaves (one per device, §4.5).
   */
  membersChanged(conversationId: string, members: readonly (string | MemberLeaf)[]): void;
  /**
   * This device joined a group with a history before it (another device of mine added it, §4.5):
   * the members' chains began before me (their first message here is no gap). Optional.
   */
  joinedLate?(conversationId: string): void;
  /** §10 update policy: this client should commit an update in this group before its next send. */
  shouldUpdate(conversationId: string, nowMs: number): boolean;
  /** This client's commit in this group was accepted (resets the update policy's counters). */
  committed(conversationId: string, nowMs: number): void;
  /**
   * §12: my group of a room is at this epoch with this epoch authenticator (RFC 9420 §8.7). Recorded
   * (a few epochs per room, memory only) to be told to the room's members in my DMs and compared
   * with what they tell me. Optional: a layer without it neither sends nor checks views.
   */
  epochView?(conversationId: string, groupId: Uint8Array, epoch: number, authenticator: Uint8Array): void;
  /** The conversation was left or I was removed: forget its content state. */
  forget(conversationId: string): void;
  /**
   * Runs fn in one transaction of the layer's store (optional: a layer without one runs fn as it
   * is). The engine opens a message and emits it inside, so the history, kept in the same file,
   * is written with the content layer's rows, atomically (PROTOCOL.md §10.4).
   */
  runAtomically?<T>(fn: () => T): T;
}
