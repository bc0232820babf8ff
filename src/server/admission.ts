// PROTOCOL.md §13: the checks every SendEnvelope passes before the relay stores it, in the
// spec's order. Each failure is a Refusal naming its reason; the session goes on. The relay
// reads only the header (it routes by it) and verifies the signature; it never sees content.
import { Envelope, ErrorCode } from "../gen/securechat/v1/chat.js";
import { bytesEqual } from "../protocol/bytes.js";
import { envelopeFromWire } from "../protocol/codec.js";
import { isProtocolError } from "../protocol/errors.js";
import { SUITE_V1, validateEnvelopeShape, verifyEnvelopeSignature, type SealedEnvelope } from "../protocol/envelope.js";
import { shapeLimitsOf } from "../protocol/limits.js";
import type { Conversation } from "../protocol/names.js";
import type { Directory, DirectoryUser } from "./directory.js";
import { envelopeRefusalOf, Refusal } from "./errors.js";
import { MAX_FUTURE_SKEW_MS, type RelayLimits } from "./limits.js";
import type { QueueUsage, RelayStore } from "./store.js";

export interface AdmissionContext {
  /** The session's user, as bound. */
  readonly user: DirectoryUser;
  readonly directory: Directory;
  readonly store: RelayStore;
  readonly isOnline: (username: string) => boolean;
  /** Lobby recipients a lobby envelope is stored for: online, or seen within the grace (§9). */
  readonly inLobby: (username: string) => boolean;
  /** This user accepted this id before, or it waits for its commit: a resend. */
  readonly isResend: (messageId: Buffer) => boolean;
  /**
   * A recipient's queue (stored, plus what waits for the next commit): in all, and what this
   * session's user has in it.
   */
  readonly queueUsage: (username: string) => QueueUsage;
  readonly limits: RelayLimits;
  /** The relay's clock now (sent_at_ms is checked against it). */
  readonly nowMs: number;
}

export type Admission =
  /** A resend of an id accepted before (or waiting for its commit): answer as the first copy, store nothing. */
  | { readonly kind: "duplicate"; readonly envelope: SealedEnvelope }
  | {
      readonly kind: "accept";
      readonly envelope: SealedEnvelope;
      /** The envelope as it came on the wire: what is stored and delivered. */
      readonly wire: Envelope;
      /** `wire` encoded: the bytes stored (and counted against the queue caps). */
      readonly bytes: Uint8Array;
      readonly conversation: Conversation;
      /** Who gets a queue row: every recipient but the sender. */
      readonly rows: readonly string[];
      /** Rows for recipients who are offline now (DMs and rooms): they get it on reconnect. */
      readonly queuedFor: readonly string[];
    };

/** A duration in the largest unit that keeps it at 2 or more: "90 seconds", "3 hours", "30 days". */
function duration(ms: number): string {
  for (const [unit, size] of [["days", 86_400_000], ["hours", 3_600_000], ["minutes", 60_000]] as const) {
    if (ms >= 2 * size) return `${Math.floor(ms / size)} ${unit}`;
  }
  return `${Math.floor(ms / 1000)} seconds`;
}
/** A byte count for people: "512 bytes", "12 KiB", "3.5 MiB". */
function byteSize(bytes: number): string {
  if (bytes >= 1024 * 1024) return `${Math.round((bytes / (1024 * 1024)) * 10) / 10} MiB`;
  if (bytes >= 1024) return `${Math.round(bytes / 1024)} KiB`;
  return `${bytes} bytes`;
}

const refuse = (code: ErrorCode, detail: string): never => {
  throw new Refusal(code, detail);
};

/** An envelope past the checks that need no state and no signature (admission's first half). */
export interface Prechecked {
  readonly wire: Envelope;
  readonly envelope: SealedEnvelope;
  readonly conversation: Conversation;
}

/** Runs §9's checks on one envelope. Throws Refusal; returns what to store. */
export function admitEnvelope(w: Envelope | undefined, ctx: AdmissionContext): Admission {
  const pre = precheckEnvelope(w, ctx);
  if (!verifyEnvelopeSignature(pre.envelope, ctx.user.sigKey)) refuse(ErrorCode.ERROR_CODE_BAD_ENVELOPE, "the envelope's signature does not verify");
  return completeAdmission(pre, ctx);
}

/**
 * §9's checks up to the signature: shape with the relay's limits, suite, and that the sender is
 * the session's user with its bound key. The caller then verifies the signature (the relay does
 * it on the thread pool) and runs completeAdmission, in frame order.
 */
export function precheckEnvelope(w: Envelope | undefined, ctx: Pick<AdmissionContext, "user" | "limits">): Prechecked {
  const { user, limits } = ctx;
  const me = user.username;

  // Shape, with the relay's own limits. The recipient count is checked first so that an
  // oversized list is reported as such rather than as a generic size error.
  if (w === undefined) throw new Refusal(ErrorCode.ERROR_CODE_BAD_ENVELOPE, "malformed envelope: envelope or its header is missing");
  let envelope: SealedEnvelope;
  let conversation: Conversation;
  try {
    envelope = envelopeFromWire(w);
    const n = envelope.header.recipients.length;
    if (n > limits.maxRecipients) {
      refuse(ErrorCode.ERROR_CODE_TOO_MANY_RECIPIENTS, `this message has ${n} recipients, more than this relay's limit of ${limits.maxRecipients}`);
    }
    conversation = validateEnvelopeShape(envelope, shapeLimitsOf(limits));
  } catch (e) {
    if (isProtocolError(e, "too-large")) {
      // The relay sees only the padded ciphertext; the limit users know is the text's.
      refuse(ErrorCode.ERROR_CODE_TEXT_TOO_LARGE,
        `message too large: this relay takes at most ${limits.maxTextBytes} bytes of text per message (this one's encrypted body is ${w.ciphertext.length} bytes)`);
    }
    throw envelopeRefusalOf(e);
  }
  const h = envelope.header;

  // The suite is exactly v1: no negotiation, no downgrade.
  if (h.suite !== SUITE_V1) refuse(ErrorCode.ERROR_CODE_BAD_ENVELOPE, `unsupported suite '${h.suite.slice(0, 64)}'`);

  // The sender is the session's user, with the key bound to that name.
  if (h.sender !== me) refuse(ErrorCode.ERROR_CODE_FORGED_SENDER, `the envelope claims sender '${h.sender}' but this session is '${me}'`);
  if (!bytesEqual(h.senderSigFpr, user.record.sigFpr)) {
    refuse(ErrorCode.ERROR_CODE_FORGED_SENDER, `the envelope names a signing key that is not the one bound to '${me}'`);
  }
  return { wire: w, envelope, conversation };
}

/**
 * §9's checks after the signature verified: resends, recipients, the conversation's rules and
 * queue caps. Runs in frame order (it reads what earlier envelopes left pending).
 */
export function completeAdmission(pre: Prechecked, ctx: AdmissionContext): Admission {
  const { limits } = ctx;
  const me = ctx.user.username;
  const { envelope, conversation, wire: w } = pre;
  const h = envelope.header;

  // A resend of an accepted id (the client retries after a reconnect): accepted once, stored once.
  // (session.ts answers most resends before any limit; this catches the rest.)
  if (ctx.isResend(h.messageId)) return { kind: "duplicate", envelope };

  // The sender's clock is close enough to the relay's: not from the future, not older than the
  // retention (it would be purged before delivery, and recipients refuse it: §7.3 step 6).
  const ahead = h.sentAtMs - ctx.nowMs;
  if (ahead > MAX_FUTURE_SKEW_MS) {
    refuse(ErrorCode.ERROR_CODE_BAD_TIMESTAMP,
      `the message is dated ${duration(ahead)} ahead of the relay's clock (at most ${duration(MAX_FUTURE_SKEW_MS)} are allowed); check this computer's clock`);
  }
  if (-ahead > limits.retentionMs) {
    refuse(ErrorCode.ERROR_CODE_BAD_TIMESTAMP,
      `the message is dated ${duration(-ahead)} before the relay's clock, older than the ${duration(limits.retentionMs)} this relay keeps messages (this computer's clock is wrong, or the message waited too long to be sent)`);
  }

  // Every recipient is bound, was sealed to under its current key, and got a wrap of exactly
  // its RSA modulus' length (an RSA-OAEP ciphertext always is: RFC 8017 §7.1.1). The shape
  // check allows 256-1024 bytes for any key; a longer wrap is bytes the relay would store for
  // nothing.
  h.recipients.forEach((r, i) => {
    const bound = ctx.directory.get(r.username);
    if (bound === undefined) refuse(ErrorCode.ERROR_CODE_UNKNOWN_RECIPIENT, `no user '${r.username}' is known to this relay`);
    else if (!bytesEqual(r.encFpr, bound.record.encFpr)) {
      refuse(ErrorCode.ERROR_CODE_STALE_RECIPIENT_KEY,
        `the message was encrypted to a key that '${r.username}' no longer has on this relay; refresh the directory and check their safety number`);
    } else {
      const got = envelope.wraps[i]?.wrappedKey.length ?? 0;
      if (got !== bound.wrapBytes) {
        refuse(ErrorCode.ERROR_CODE_BAD_ENVELOPE,
          `the key wrap for '${r.username}' is ${got} bytes, but an RSA-OAEP wrap for their ${bound.wrapBytes * 8}-bit key is exactly ${bound.wrapBytes} bytes`);
      }
    }
  });

  // The conversation's rules.
  const others = h.recipients.map((r) => r.username).filter((u) => u !== me);
  let rows: string[];
  switch (conversation.kind) {
    case "dm":
      // The shape check already made the recipients exactly the DM's two members, and the
      // sender is me; this keeps the rule explicit should either check ever change.
      if (!conversation.members.includes(me)) refuse(ErrorCode.ERROR_CODE_BAD_RECIPIENTS, `${conversation.id} is not a conversation of '${me}'`);
      rows = others;
      break;
    case "room": {
      if (!ctx.store.isMember(conversation.room, me)) refuse(ErrorCode.ERROR_CODE_NOT_A_MEMBER, `you are not a member of ${conversation.room}`);
      // Every recipient is a member. A sender may leave members out: a client seals to the
      // others while one member's key change waits for its user's decision (PROTOCOL.md §13);
      // the recipients are signed, so every reader can see who was left out.
      const members = new Set(ctx.store.roomMembers(conversation.room));
      const stranger = h.recipients.find((r) => !members.has(r.username));
      if (stranger !== undefined) {
        refuse(ErrorCode.ERROR_CODE_BAD_RECIPIENTS, `'${stranger.username}' is not a member of ${conversation.room} (membership may have changed: refresh it)`);
      }
      rows = others;
      break;
    }
    case "lobby":
      // The lobby is for whoever is here: rows only for recipients online now, or seen online
      // within the grace period (a reconnect, a relay restart: lobby-audience.ts). Naming offline
      // users (any bound name) once made the relay keep lobby messages for them for 30 days:
      // a disk flood with throwaway recipients (issue 9). An offline recipient is skipped, not
      // refused: the sender sealed to those online when it sent, and some may have left since.
      rows = others.filter((u) => ctx.inLobby(u));
      break;
    default: {
      const unreachable: never = conversation;
      throw new Error(`unknown conversation kind ${String(unreachable)}`);
    }
  }

  const bytes = Envelope.encode(w).finish();
  checkQueueCaps(rows, bytes.length, ctx);

  const queuedFor = rows.filter((u) => !ctx.isOnline(u));
  return { kind: "accept", envelope, wire: w, bytes, conversation, rows, queuedFor };
}

/**
 * Each recipient's durable queue has room for `envelopeBytes` more: this sender's share of it
 * first (so a flooder is told about its own share, and others still get through), then the
 * whole queue. Shared by SendEnvelope and SendMls (PROTOCOL.md §8.3). Throws Refusal.
 */
export function checkQueueCaps(rows: readonly string[], envelopeBytes: number, ctx: Pick<AdmissionContext, "queueUsage" | "limits">): void {
  const { limits } = ctx;
  for (const r of rows) {
    const q = ctx.queueUsage(r);
    checkShare(r, q, 1, envelopeBytes, limits);
    if (q.count >= limits.maxQueuePerUser) {
      refuse(ErrorCode.ERROR_CODE_QUEUE_FULL,
        `the queue for '${r}' is full (${limits.maxQueuePerUser} messages wait for delivery, the most this relay keeps); try again once '${r}' has caught up`);
    }
    if (q.bytes + envelopeBytes > limits.maxQueueBytesPerUser) {
      refuse(ErrorCode.ERROR_CODE_QUEUE_FULL,
        `the queue for '${r}' is full (${byteSize(q.bytes)} wait for delivery, and this relay keeps at most ${byteSize(limits.maxQueueBytesPerUser)} per user); try again once '${r}' has caught up`);
    }
  }
}

function checkShare(r: string, q: QueueUsage, rows: number, bytes: number, limits: RelayLimits): void {
  if (q.senderCount + rows > limits.maxQueuePerSender || q.senderBytes + bytes > limits.maxQueueBytesPerSender) {
    refuse(ErrorCode.ERROR_CODE_QUEUE_FULL,
      `you already have ${q.senderCount} messages (${byteSize(q.senderBytes)}) waiting for '${r}', the most one sender may have in a queue on this relay (${limits.maxQueuePerSender} messages, ${byteSize(limits.maxQueueBytesPerSender)}); try again once '${r}' has caught up`);
  }
}

/**
 * A commit's deliveries (PROTOCOL.md §8.3, §13.2): the commit and Welcome rows each recipient
 * device would get (`rows`: per queue address, how many rows and bytes) must fit this sender's
 * share of that queue, like messages; the whole-queue cap is not checked (a queue filled by
 * others must not freeze a group's commits), but the rows count toward it once stored. So one
 * sender can never fill another's queue with commits. Throws Refusal (QUEUE_FULL).
 */
export function checkCommitShare(rows: ReadonlyMap<string, { readonly rows: number; readonly bytes: number }>, ctx: Pick<AdmissionContext, "queueUsage" | "limits">): void {
  for (const [r, add] of rows) checkShare(r, ctx.queueUsage(r), add.rows, add.bytes, ctx.limits);
}
