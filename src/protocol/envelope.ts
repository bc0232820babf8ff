// The sealed envelope (PROTOCOL.md "Envelope", "Seal", "Open"). Pure: node:crypto only.
//
// Seal: pad the body; draw a fresh 32-byte content key K; commit to K; encrypt once with
// AES-256-GCM (AAD = the encoded header); wrap K once per recipient with RSA-OAEP-SHA-256 whose
// label binds the wrap to the header and that recipient; sign the header, content and wraps
// hashes with Ed25519.
// Open: the ten checks of PROTOCOL.md "Open", in that order. Every refusal is a ProtocolError
// whose code names the failed check; the caller shows users one generic line and logs the code.
import { randomBytes, type KeyObject } from "node:crypto";
import { bytesEqual, decodeUtf8Strict } from "./bytes.js";
import { encodeFields, hashFields, sha256 } from "./encoding.js";
import { ProtocolError } from "./errors.js";
import { FINGERPRINT_BYTES, type PrivateIdentity } from "./keys.js";
import { isValidUsername, parseConversationId, type Conversation } from "./names.js";
import {
  aesGcmDecrypt, aesGcmEncrypt, ed25519Sign, ed25519Verify, ed25519VerifyAsync, hmacSha256, rsaOaepUnwrap, rsaOaepWrap,
} from "./primitives.js";
import { sanitizeText } from "./sanitize.js";

/** The only suite of protocol v1. No negotiation: anything else is refused (Open step 1). */
export const SUITE_V1 = "securechat/v1/rsa-oaep-sha256+aes-256-gcm+ed25519";

export const MESSAGE_ID_BYTES = 16;
export const IV_BYTES = 12;
export const TAG_BYTES = 16;
export const CONTENT_KEY_BYTES = 32;
export const HASH_BYTES = 32;
export const SIGNATURE_BYTES = 64;
export const PAD_BLOCK = 256;
/** RSA-OAEP output is the modulus size: 2048..8192 bits. */
export const WRAP_MIN_BYTES = 256;
export const WRAP_MAX_BYTES = 1024;
/** Open step 6: a timestamp more than this far in the future is refused. */
export const MAX_FUTURE_SKEW_MS = 5 * 60 * 1000;
/** Open step 6: the longest a client accepts an envelope after it was sent (and keeps seen ids). */
export const MAX_AGE_MS = 30 * 24 * 60 * 60 * 1000;
export const ZERO_HASH: Buffer = Buffer.alloc(HASH_BYTES);

export interface RecipientRef {
  readonly username: string;
  /** SHA-256 of the recipient's RSA SPKI. */
  readonly encFpr: Buffer;
}

export interface EnvelopeHeader {
  readonly suite: string;
  readonly conversationId: string;
  readonly messageId: Buffer;
  readonly sender: string;
  readonly senderSigFpr: Buffer;
  readonly sentAtMs: number;
  readonly prev: Buffer;
  readonly iv: Buffer;
  readonly recipients: readonly RecipientRef[];
  readonly keyCommitment: Buffer;
}

export interface KeyWrap {
  readonly username: string;
  readonly wrappedKey: Buffer;
}

export interface SealedEnvelope {
  readonly header: EnvelopeHeader;
  readonly ciphertext: Buffer;
  readonly tag: Buffer;
  readonly wraps: readonly KeyWrap[];
  readonly signature: Buffer;
}

/**
 * What a message says. "action" is /me; "topic" sets a room's topic (/topic); "away" is an
 * automatic reply to a DM while its recipient is away (/away), never answered automatically.
 */
export type BodyKind = "text" | "action" | "topic" | "away";
export interface MessageBody {
  readonly kind: BodyKind;
  readonly text: string;
}

const BODY_KIND_BYTE: Record<BodyKind, number> = { text: 0x01, action: 0x02, topic: 0x03, away: 0x04 };

// ---------------------------------------------------------------------------------------------
// Encodings (PROTOCOL.md "Encoding"): every hash and signature input is built here, from fields.
// ---------------------------------------------------------------------------------------------

/** The header's canonical bytes; also the AES-GCM associated data. */
export function encodeHeader(h: EnvelopeHeader): Buffer {
  const recipientFields = h.recipients.flatMap((r) => [r.username, r.encFpr]);
  return encodeFields("securechat/v1/header", [
    h.suite, h.conversationId, h.messageId, h.sender, h.senderSigFpr, { u64: h.sentAtMs }, h.prev, h.iv,
    { u32: h.recipients.length }, ...recipientFields, h.keyCommitment,
  ]);
}

export function headerHash(h: EnvelopeHeader): Buffer {
  return sha256(encodeHeader(h));
}

/** OAEP label of one recipient's wrap: binds the wrap to this header and this recipient. */
export function wrapLabel(hHash: Uint8Array, username: string, encFpr: Uint8Array): Buffer {
  return encodeFields("securechat/v1/wrap", [hHash, username, encFpr]);
}

/** Commitment to the content key, so every recipient provably decrypts with the same key. */
export function keyCommitment(contentKey: Uint8Array, messageId: Uint8Array): Buffer {
  return hmacSha256(contentKey, encodeFields("securechat/v1/key-commitment", [messageId]));
}

export function contentHash(ciphertext: Uint8Array, tag: Uint8Array): Buffer {
  return hashFields("securechat/v1/content", [ciphertext, tag]);
}

export function wrapsHash(wraps: readonly KeyWrap[]): Buffer {
  return hashFields("securechat/v1/wraps", [{ u32: wraps.length }, ...wraps.flatMap((w) => [w.username, w.wrappedKey])]);
}

/**
 * The bytes the sender signs (PROTOCOL.md "Signature"). hHash may be passed when the caller
 * already has headerHash(e.header).
 */
export function signedBytes(e: Pick<SealedEnvelope, "header" | "ciphertext" | "tag" | "wraps">, hHash: Uint8Array = headerHash(e.header)): Buffer {
  return encodeFields("securechat/v1/msg", [hHash, contentHash(e.ciphertext, e.tag), wrapsHash(e.wraps)]);
}

/** The envelope's identity in the sender's chain: what the next envelope's prev holds. */
export function envelopeHash(e: SealedEnvelope, signed: Uint8Array = signedBytes(e)): Buffer {
  return hashFields("securechat/v1/envelope", [signed, e.signature]);
}

// ---------------------------------------------------------------------------------------------
// Padding (PROTOCOL.md "Body"): u32be(len) || kind || UTF-8 text || zeros to a multiple of 256.
// ---------------------------------------------------------------------------------------------

export function padBody(body: MessageBody): Buffer {
  const kind = BODY_KIND_BYTE[body.kind];
  if (kind === undefined) throw new TypeError(`unknown body kind: ${String(body.kind)}`);
  if (typeof body.text !== "string") throw new TypeError("body text must be a string");
  if (!body.text.isWellFormed()) throw new ProtocolError("bad-utf8", "body text contains lone surrogates");
  const text = Buffer.from(body.text, "utf8");
  const inner = 1 + text.length;
  const total = Math.max(PAD_BLOCK, Math.ceil((4 + inner) / PAD_BLOCK) * PAD_BLOCK);
  const out = Buffer.alloc(total);
  out.writeUInt32BE(inner, 0);
  out[4] = kind;
  text.copy(out, 5);
  return out;
}

/** Reverses padBody, strictly: exact length, zero padding, known kind, valid UTF-8. */
export function unpadBody(padded: Uint8Array): MessageBody {
  if (padded.length < PAD_BLOCK || padded.length % PAD_BLOCK !== 0) {
    throw new ProtocolError("bad-padding", "padded body is not a positive multiple of 256 bytes");
  }
  const buf = Buffer.from(padded.buffer, padded.byteOffset, padded.length);
  const inner = buf.readUInt32BE(0);
  if (inner < 1 || 4 + inner > buf.length) throw new ProtocolError("bad-padding", "body length prefix out of range");
  if (buf.length - (4 + inner) >= PAD_BLOCK) throw new ProtocolError("bad-padding", "more padding than one block");
  for (let i = 4 + inner; i < buf.length; i++) {
    if (buf[i] !== 0) throw new ProtocolError("bad-padding", "padding is not all zeros");
  }
  const kindByte = buf[4];
  const kind = (Object.keys(BODY_KIND_BYTE) as BodyKind[]).find((k) => BODY_KIND_BYTE[k] === kindByte);
  if (kind === undefined) throw new ProtocolError("bad-body", `unknown body kind 0x${(kindByte ?? 0).toString(16)}`);
  let text: string;
  try {
    text = decodeUtf8Strict(buf.subarray(5, 4 + inner));
  } catch (e) {
    throw new ProtocolError("bad-utf8", "body is not valid UTF-8", { cause: e });
  }
  return { kind, text };
}

// ---------------------------------------------------------------------------------------------
// Shape: checks any party (relay or client) can run without keys.
// ---------------------------------------------------------------------------------------------

export interface ShapeLimits {
  readonly maxRecipients: number;
  /** Largest ciphertext accepted (the padded body). */
  readonly maxCiphertextBytes: number;
}

export const DEFAULT_SHAPE_LIMITS: ShapeLimits = { maxRecipients: 500, maxCiphertextBytes: 64 * 1024 + PAD_BLOCK };

function need(cond: boolean, message: string): asserts cond {
  if (!cond) throw new ProtocolError("malformed", message);
}

function isBytes(b: unknown, len?: number): b is Buffer {
  return b instanceof Uint8Array && (len === undefined || b.length === len);
}

/**
 * Structural validation of an envelope: sizes, the recipient list (sorted, unique, valid
 * names, includes the sender), wraps in recipient order, and that a DM's recipients are exactly
 * its two members. Throws ProtocolError("malformed" | "too-large").
 */
export function validateEnvelopeShape(e: SealedEnvelope, limits: ShapeLimits = DEFAULT_SHAPE_LIMITS): Conversation {
  const h = e.header;
  need(typeof h === "object" && h !== null, "envelope has no header");
  need(typeof h.suite === "string" && h.suite.length > 0 && h.suite.length <= 128, "suite missing or too long");
  const conv = parseConversationId(h.conversationId);
  need(conv !== undefined, "conversation id is not lobby, #room or dm:<a>:<b>");
  need(isBytes(h.messageId, MESSAGE_ID_BYTES), `message id must be ${MESSAGE_ID_BYTES} bytes`);
  need(isValidUsername(h.sender), "sender is not a valid username");
  need(isBytes(h.senderSigFpr, FINGERPRINT_BYTES), "sender fingerprint must be 32 bytes");
  need(Number.isSafeInteger(h.sentAtMs) && h.sentAtMs > 0, "sent_at_ms must be a positive integer");
  need(isBytes(h.prev, HASH_BYTES), "prev must be 32 bytes");
  need(isBytes(h.iv, IV_BYTES), `iv must be ${IV_BYTES} bytes`);
  need(isBytes(h.keyCommitment, HASH_BYTES), "key commitment must be 32 bytes");
  need(Array.isArray(h.recipients) && h.recipients.length > 0, "no recipients");
  if (h.recipients.length > limits.maxRecipients) {
    throw new ProtocolError("too-large", `${h.recipients.length} recipients (limit ${limits.maxRecipients})`);
  }
  let previous = "";
  for (const r of h.recipients) {
    need(isValidUsername(r.username), "a recipient is not a valid username");
    need(r.username > previous, "recipients must be sorted by username without duplicates");
    need(isBytes(r.encFpr, FINGERPRINT_BYTES), "recipient fingerprint must be 32 bytes");
    previous = r.username;
  }
  need(h.recipients.some((r) => r.username === h.sender), "the sender must be one of the recipients");
  if (conv.kind === "dm") {
    need(h.recipients.length === 2 && h.recipients[0]!.username === conv.members[0] && h.recipients[1]!.username === conv.members[1],
      "a direct message's recipients must be exactly its two members");
  }
  need(Array.isArray(e.wraps) && e.wraps.length === h.recipients.length, "one wrap per recipient is required");
  e.wraps.forEach((w, i) => {
    need(w.username === h.recipients[i]!.username, "wraps must follow the recipients' order");
    need(isBytes(w.wrappedKey) && w.wrappedKey.length >= WRAP_MIN_BYTES && w.wrappedKey.length <= WRAP_MAX_BYTES,
      "wrapped key has an impossible size");
  });
  need(isBytes(e.ciphertext) && e.ciphertext.length >= PAD_BLOCK && e.ciphertext.length % PAD_BLOCK === 0,
    "ciphertext must be a positive multiple of 256 bytes");
  if (e.ciphertext.length > limits.maxCiphertextBytes) {
    throw new ProtocolError("too-large", `ciphertext of ${e.ciphertext.length} bytes (limit ${limits.maxCiphertextBytes})`);
  }
  need(isBytes(e.tag, TAG_BYTES), `tag must be ${TAG_BYTES} bytes`);
  need(isBytes(e.signature, SIGNATURE_BYTES), `signature must be ${SIGNATURE_BYTES} bytes`);
  return conv;
}

/** Verifies the sender's signature (Open step 5; the relay runs it too). */
export function verifyEnvelopeSignature(e: SealedEnvelope, senderSigKey: KeyObject): boolean {
  return ed25519Verify(senderSigKey, signedBytes(e), e.signature);
}

/** verifyEnvelopeSignature on the thread pool (the relay verifies off its event loop). */
export function verifyEnvelopeSignatureAsync(e: SealedEnvelope, senderSigKey: KeyObject): Promise<boolean> {
  return ed25519VerifyAsync(senderSigKey, signedBytes(e), e.signature);
}

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

/** Seals a message for its recipients (PROTOCOL.md "Seal"). */
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
 * Opens an envelope addressed to ctx.me, running the checks of PROTOCOL.md "Open" in order.
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
  // A topic belongs to a room and an away reply to a DM (PROTOCOL.md §7.2 step 1): elsewhere the
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
