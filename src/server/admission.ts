// PROTOCOL.md §9: the checks every SendEnvelope passes before the relay stores it, in the
// spec's order. Each failure is a Refusal naming its reason; the session goes on. The relay
// reads only the header (it routes by it) and verifies the signature; it never sees content.
import { ErrorCode, type Envelope } from "../gen/securechat/v1/chat.js";
import { bytesEqual } from "../protocol/bytes.js";
import { envelopeFromWire } from "../protocol/codec.js";
import { isProtocolError } from "../protocol/errors.js";
import { SUITE_V1, validateEnvelopeShape, verifyEnvelopeSignature, type SealedEnvelope } from "../protocol/envelope.js";
import { shapeLimitsOf } from "../protocol/limits.js";
import type { Conversation } from "../protocol/names.js";
import type { Directory, DirectoryUser } from "./directory.js";
import { envelopeRefusalOf, Refusal } from "./errors.js";
import type { RelayLimits } from "./limits.js";
import type { RelayStore } from "./store.js";

export interface AdmissionContext {
  /** The session's user, as bound. */
  readonly user: DirectoryUser;
  readonly directory: Directory;
  readonly store: RelayStore;
  readonly isOnline: (username: string) => boolean;
  /** This user accepted this id before, or it waits for its commit: a resend. */
  readonly isResend: (messageId: Buffer) => boolean;
  /** Undelivered envelopes for a recipient: stored, plus those waiting for the next commit. */
  readonly queueDepth: (username: string) => number;
  readonly limits: RelayLimits;
}

export type Admission =
  /** A resend of an id accepted before (or waiting for its commit): answer as the first copy, store nothing. */
  | { readonly kind: "duplicate"; readonly envelope: SealedEnvelope }
  | {
      readonly kind: "accept";
      readonly envelope: SealedEnvelope;
      /** The envelope as it came on the wire: what is stored and delivered. */
      readonly wire: Envelope;
      readonly conversation: Conversation;
      /** Who gets a queue row: every recipient but the sender. */
      readonly rows: readonly string[];
      /** Rows for recipients who are offline now (DMs and rooms): they get it on reconnect. */
      readonly queuedFor: readonly string[];
    };

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
  if (ctx.isResend(h.messageId)) return { kind: "duplicate", envelope };

  // Every recipient is bound, and was sealed to under its current key.
  for (const r of h.recipients) {
    const bound = ctx.directory.get(r.username);
    if (bound === undefined) refuse(ErrorCode.ERROR_CODE_UNKNOWN_RECIPIENT, `no user '${r.username}' is known to this relay`);
    else if (!bytesEqual(r.encFpr, bound.record.encFpr)) {
      refuse(ErrorCode.ERROR_CODE_STALE_RECIPIENT_KEY,
        `the message was encrypted to a key that '${r.username}' no longer has on this relay; refresh the directory and check their safety number`);
    }
  }

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
      // others while one member's key change waits for its user's decision (PROTOCOL.md §9);
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
      // The sender sealed the lobby message to the users online when it sent it: each of them
      // gets it, like a room message, even one who is offline by the time it reaches the relay
      // (a resend after a relay restart races the recipients' own reconnects).
      rows = others;
      break;
    default: {
      const unreachable: never = conversation;
      throw new Error(`unknown conversation kind ${String(unreachable)}`);
    }
  }

  // Each recipient's durable queue has room.
  for (const r of rows) {
    if (ctx.queueDepth(r) >= limits.maxQueuePerUser) {
      refuse(ErrorCode.ERROR_CODE_QUEUE_FULL,
        `the queue for '${r}' is full (${limits.maxQueuePerUser} messages wait for delivery, the most this relay keeps); try again once '${r}' has caught up`);
    }
  }

  const queuedFor = rows.filter((u) => !ctx.isOnline(u));
  return { kind: "accept", envelope, wire: w, conversation, rows, queuedFor };
}
