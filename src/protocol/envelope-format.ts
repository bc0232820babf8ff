// The sealed envelope's format (PROTOCOL.md Appendix A, §3, Appendix A.2): its constants and
// types, the canonical encodings every hash and signature input is built from, the body padding,
// the shape checks any party (relay or client) can run without keys, and the signature check.
// Sealing and opening are in envelope.ts, which re-exports all of this. Pure.
import type { KeyObject } from "node:crypto";
import { decodeUtf8Strict } from "./bytes.js";
import { encodeFields, hashFields, sha256 } from "./encoding.js";
import { ProtocolError } from "./errors.js";
import { FINGERPRINT_BYTES } from "./keys.js";
import { isValidUsername, parseConversationId, type Conversation } from "./names.js";
import { ed25519Verify, ed25519VerifyAsync, hmacSha256 } from "./primitives.js";

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
// Encodings (PROTOCOL.md §3): every hash and signature input is built here, from fields.
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
 * The bytes the sender signs (PROTOCOL.md Appendix A.2). hHash may be passed when the caller
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
// Padding (PROTOCOL.md Appendix A.2): u32be(len) || kind || UTF-8 text || zeros to a multiple of 256.
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

/** True for a Buffer (of exactly `len` bytes, when given). */
export function isBytes(b: unknown, len?: number): b is Buffer {
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
