// The sealed envelope (PROTOCOL.md Appendix A, Appendix A.2, Appendix A.3). Pure: node:crypto only.
//
// Seal: pad the body; draw a fresh 32-byte content key K; commit to K; encrypt once with
// AES-256-GCM (AAD = the encoded header); wrap K once per recipient with RSA-OAEP-SHA-256 whose
// label binds the wrap to the header and that recipient; sign the header, content and wraps
// hashes with Ed25519.
// Open: the ten checks of PROTOCOL.md Appendix A.3, in that order. Every refusal is a ProtocolError
// whose code names the failed check; the caller shows users one generic line and logs the code.
//
// The format (constants, types, encodings, padding, shape checks) is in envelope-format.ts,
// re-exported here so every importer keeps one module to import from.
import { randomBytes, type KeyObject } from "node:crypto";
import { bytesEqual } from "./bytes.js";
import { sha256 } from "./encoding.js";
import { ProtocolError } from "./errors.js";
import type { PrivateIdentity } from "./keys.js";
import { parseConversationId, type Conversation } from "./names.js";
import { aesGcmDecrypt, aesGcmEncrypt, ed25519Sign, ed25519Verify, rsaOaepUnwrap, rsaOaepWrap } from "./primitives.js";
import { sanitizeText } from "./sanitize.js";
import {
  CONTENT_KEY_BYTES, DEFAULT_SHAPE_LIMITS, HASH_BYTES, IV_BYTES, MAX_AGE_MS, MAX_FUTURE_SKEW_MS, MESSAGE_ID_BYTES, SUITE_V1, ZERO_HASH,
  encodeHeader, envelopeHash, isBytes, keyCommitment, padBody, signedBytes, unpadBody, validateEnvelopeShape, wrapLabel,
  type EnvelopeHeader, type KeyWrap, type MessageBody, type SealedEnvelope, type ShapeLimits,
} from "./envelope-format.js";

export * from "./envelope-format.js";

// ---------------------------------------------------------------------------------------------
// Seal
// ---------------------------------------------------------------------------------------------

export interface SealRecipient {
  readonly username: string;
  readonly encKey: KeyObject;
  readonly encFpr: Buffer;
}

export interface SealInput {
  readonly sender: PrivateIdentity;
  readonly conversationId: string;
  /** Everyone who may read it. The sender is added when missing. */
  readonly recipients: readonly SealRecipient[];
  readonly body: MessageBody;
  /** envelopeHash of the sender's previous envelope in this conversation, or ZERO_HASH. */
  readonly prev: Uint8Array;
  readonly sentAtMs: number;
  /** Normally random; fixed only by tests. */
  readonly messageId?: Uint8Array;
  readonly limits?: ShapeLimits;
}

export interface Sealed {
  readonly envelope: SealedEnvelope;
  readonly hash: Buffer;
}

/** Seals a message for its recipients (PROTOCOL.md Appendix A.2). */
export function sealEnvelope(input: SealInput): Sealed {
  const { sender } = input;
  const conv = parseConversationId(input.conversationId);
  if (conv === undefined) throw new ProtocolError("malformed", `invalid conversation id: ${input.conversationId}`);
  if (!isBytes(input.prev, HASH_BYTES)) throw new ProtocolError("malformed", "prev must be 32 bytes");
  if (!Number.isSafeInteger(input.sentAtMs) || input.sentAtMs <= 0) throw new ProtocolError("malformed", "sentAtMs must be a positive integer");
  // One draw from the CSPRNG for the message id, the content key and the IV.
  const random = randomBytes(MESSAGE_ID_BYTES + CONTENT_KEY_BYTES + IV_BYTES);
  const messageId = Buffer.from(input.messageId ?? random.subarray(0, MESSAGE_ID_BYTES));
  if (messageId.length !== MESSAGE_ID_BYTES) throw new ProtocolError("malformed", "message id must be 16 bytes");

  const byName = new Map<string, SealRecipient>();
  for (const r of input.recipients) {
    const seen = byName.get(r.username);
    if (seen !== undefined && !seen.encFpr.equals(r.encFpr)) {
      throw new ProtocolError("malformed", `two different keys given for recipient ${r.username}`);
    }
    byName.set(r.username, r);
  }
  byName.set(sender.username, { username: sender.username, encKey: sender.encKey, encFpr: sender.encFpr });
  const recipients = [...byName.values()].sort((a, b) => (a.username < b.username ? -1 : a.username > b.username ? 1 : 0));

  const padded = padBody(input.body);
  const contentKey = random.subarray(MESSAGE_ID_BYTES, MESSAGE_ID_BYTES + CONTENT_KEY_BYTES);
  const iv = Buffer.from(random.subarray(MESSAGE_ID_BYTES + CONTENT_KEY_BYTES));
  const header: EnvelopeHeader = {
    suite: SUITE_V1,
    conversationId: input.conversationId,
    messageId,
    sender: sender.username,
    senderSigFpr: sender.sigFpr,
    sentAtMs: input.sentAtMs,
    prev: Buffer.from(input.prev),
    iv,
    recipients: recipients.map((r) => ({ username: r.username, encFpr: Buffer.from(r.encFpr) })),
    keyCommitment: keyCommitment(contentKey, messageId),
  };
  const headerBytes = encodeHeader(header);
  const { ciphertext, tag } = aesGcmEncrypt(contentKey, iv, headerBytes, padded);
  const hHash = sha256(headerBytes);
  const wraps: KeyWrap[] = recipients.map((r) => ({
    username: r.username,
    wrappedKey: rsaOaepWrap(r.encKey, wrapLabel(hHash, r.username, r.encFpr), contentKey),
  }));
  contentKey.fill(0);
  const unsigned = { header, ciphertext, tag, wraps };
  const toSign = signedBytes(unsigned, hHash);
  const signature = ed25519Sign(sender.sigPrivate, toSign);
  const envelope: SealedEnvelope = { ...unsigned, signature };
  validateEnvelopeShape(envelope, input.limits ?? DEFAULT_SHAPE_LIMITS);
  return { envelope, hash: envelopeHash(envelope, toSign) };
}

// ---------------------------------------------------------------------------------------------
// Open
// ---------------------------------------------------------------------------------------------

/** The sender's pinned signing key, as the client's trust store has it (Open step 4). */
export type SenderKeyLookup =
  | { readonly kind: "pinned"; readonly sigKey: KeyObject; readonly sigFpr: Buffer }
  | { readonly kind: "unknown" };

export interface OpenContext {
  readonly me: PrivateIdentity;
  /** The conversation the relay says it delivers this envelope into. */
  readonly deliveredInto: string;
  readonly nowMs: number;
  /** Envelopes older than this are refused; the client keeps seen ids at least this long. */
  readonly maxAgeMs?: number;
  readonly senderKey: (username: string) => SenderKeyLookup;
  /** Whether this sender's id was seen: ids are chosen by senders, so they are unique per sender only. */
  readonly seen: (messageId: Buffer, sender: string) => boolean;
  readonly limits?: ShapeLimits;
}

export interface OpenedEnvelope {
  readonly header: EnvelopeHeader;
  readonly conversation: Conversation;
  /** The body with text sanitised for the terminal (step 10). */
  readonly body: MessageBody;
  /** envelopeHash: the next envelope from this sender in this conversation should name it as prev. */
  readonly hash: Buffer;
}

function fail(code: ConstructorParameters<typeof ProtocolError>[0], message: string, cause?: unknown): never {
  throw new ProtocolError(code, message, cause === undefined ? undefined : { cause });
}

/**
 * Opens an envelope addressed to ctx.me, running the checks of PROTOCOL.md Appendix A.3 in order.
 * Step 9 (recording the id and the chain) is the caller's, with the returned hash and header.
 */
export function openEnvelope(e: SealedEnvelope, ctx: OpenContext): OpenedEnvelope {
  const conv = validateEnvelopeShape(e, ctx.limits ?? DEFAULT_SHAPE_LIMITS);
  const h = e.header;
  const me = ctx.me;

  // 1. The suite is exactly v1: no negotiation, no downgrade.
  if (h.suite !== SUITE_V1) fail("bad-suite", `unsupported suite '${h.suite.slice(0, 64)}'`);

  // 2. The conversation is the one the relay delivers into; a DM must be one of mine.
  if (h.conversationId !== ctx.deliveredInto) {
    fail("wrong-conversation", `envelope for ${h.conversationId} delivered into ${ctx.deliveredInto}`);
  }
  if (conv.kind === "dm" && !conv.members.includes(me.username)) {
    fail("wrong-conversation", `direct conversation ${h.conversationId} is not mine`);
  }

  // 3. I am a recipient, with my current encryption key.
  const myIndex = h.recipients.findIndex((r) => r.username === me.username);
  if (myIndex < 0) fail("not-recipient", "I am not among the recipients");
  if (!bytesEqual(h.recipients[myIndex]!.encFpr, me.encFpr)) fail("not-recipient", "sealed to an encryption key that is not my current one");
  // 3a. The relay never hands a sender its own envelope: one coming back is a reflection.
  if (h.sender === me.username) fail("reflection", "my own envelope was delivered back to me");

  // 4. The sender's signing key is the pinned one (otherwise the key-change flow holds it).
  const pinned = ctx.senderKey(h.sender);
  if (pinned.kind === "unknown") fail("unknown-sender", `no key known for sender ${h.sender}`);
  if (!bytesEqual(h.senderSigFpr, pinned.sigFpr)) fail("key-changed", `${h.sender} signed with a key that differs from the pinned one`);

  // 5. The signature verifies, before any RSA decryption. (The header is encoded once here and
  // reused as the AEAD's associated data and for the chain hash.)
  const hBytes = encodeHeader(h);
  const hHash = sha256(hBytes);
  const signed = signedBytes(e, hHash);
  if (!ed25519Verify(pinned.sigKey, signed, e.signature)) fail("bad-signature", "signature does not verify");

  // 6. Fresh: never seen, not from the future, not older than the retention window.
  if (ctx.seen(h.messageId, h.sender)) fail("replay", "message id seen before from this sender");
  if (h.sentAtMs > ctx.nowMs + MAX_FUTURE_SKEW_MS) fail("future-timestamp", "sent more than 5 minutes in the future");
  const maxAge = Math.min(ctx.maxAgeMs ?? MAX_AGE_MS, MAX_AGE_MS);
  if (h.sentAtMs < ctx.nowMs - maxAge) fail("expired", "older than the retention window");

  // 7. Unwrap my slot with the label bound to this header and me; K is 32 bytes; commitment.
  let contentKey: Buffer;
  try {
    contentKey = rsaOaepUnwrap(me.encPrivate, wrapLabel(hHash, me.username, me.encFpr), e.wraps[myIndex]!.wrappedKey);
  } catch (err) {
    fail("unwrap-failed", "my key wrap does not decrypt", err);
  }
  if (contentKey.length !== CONTENT_KEY_BYTES) fail("unwrap-failed", "content key is not 32 bytes");
  if (!bytesEqual(keyCommitment(contentKey, h.messageId), h.keyCommitment)) {
    contentKey.fill(0);
    fail("commitment-mismatch", "content key does not match the header's commitment");
  }

  // 8. AES-256-GCM with a full 16-byte tag; plaintext only after the tag verified; unpad; UTF-8.
  let padded: Buffer;
  try {
    padded = aesGcmDecrypt(contentKey, h.iv, hBytes, e.ciphertext, e.tag);
  } catch (err) {
    fail("decrypt-failed", "content does not authenticate", err);
  } finally {
    contentKey.fill(0);
  }
  const body = unpadBody(padded);
  // A topic belongs to a room and an away reply to a DM (PROTOCOL.md Appendix A.2 step 1): elsewhere the
  // kind is refused, so a sender cannot set a "topic" in the lobby or auto-answer a room.
  if ((body.kind === "topic" && conv.kind !== "room") || (body.kind === "away" && conv.kind !== "dm")) {
    throw new ProtocolError("bad-body", `a ${body.kind} message is not allowed in a ${conv.kind} conversation`);
  }

  // 10. Sanitise for the terminal. (Step 9 is the caller's: record the id, check the chain.)
  return { header: h, conversation: conv, body: { kind: body.kind, text: sanitizeText(body.text) }, hash: envelopeHash(e, signed) };
}

/**
 * Open step 9's gap rule: a gap is flagged in DMs and rooms (not the lobby, whose audience
 * changes) when prev does not name the sender's previous envelope here. In a DM both members
 * are there from the start, so with nothing seen yet prev must be zeros; in a room the reader
 * may have joined late, so only a known previous envelope is compared.
 */
export function chainHasGap(conv: Conversation, prev: Uint8Array, lastSeenFromSender: Uint8Array | undefined): boolean {
  if (conv.kind === "lobby") return false;
  if (lastSeenFromSender === undefined) return conv.kind === "dm" ? !bytesEqual(prev, ZERO_HASH) : false;
  return !bytesEqual(prev, lastSeenFromSender);
}
