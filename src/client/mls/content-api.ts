// What the protocol v2 conversation engine (src/client/mls/conversations.ts) needs from the
// content layer (src/client/mls/content.ts): the application data of PROTOCOL.md §11 around
// each text (per-sender chain, last-seen hashes, message ids), drop detection, and the update
// policy of §10. The engine owns the MLS groups; the content layer owns what is inside a message.
// Both sides code against this file; it holds types only.
import type { AppKind } from "../../protocol/mls/index.js";

export interface SealedContent {
  /** The application data to encrypt (MlsGroup.encrypt pads it). */
  readonly app: Uint8Array;
  /** 16 random bytes, the message's id (hex of it is ChatMessage.id). */
  readonly messageId: Buffer;
  readonly sentAtMs: number;
}

export interface OpenedContent {
  readonly messageId: Buffer;
  readonly kind: AppKind;
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
  /** The relay ACCEPTED my message (its loss can now be detected). */
  accepted(conversationId: string, messageId: Buffer): void;
  /**
   * Decodes and checks a peer's application data (strict codec; conversation, sender, chain) and
   * records it as seen. Throws MlsProtocolError on malformed data (the message is refused).
   */
  open(conversationId: string, groupId: Uint8Array, sender: string, app: Uint8Array): { readonly content: OpenedContent; readonly own: OwnDeliveryChange };
  /** The group's members changed (the chain of a departed member is forgotten; a new one starts fresh). */
  membersChanged(conversationId: string, members: readonly string[]): void;
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
