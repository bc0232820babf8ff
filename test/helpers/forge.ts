// Builds envelopes the way a malicious sender or relay would: from the protocol's exported
// building blocks, with one rule broken at a time.
import { constants, createCipheriv, publicEncrypt, randomBytes, sign, type KeyObject } from "node:crypto";
import {
  encodeHeader, keyCommitment, padBody, signedBytes, SUITE_V1, wrapLabel, ZERO_HASH,
  type EnvelopeHeader, type KeyWrap, type MessageBody, type SealedEnvelope,
} from "../../src/protocol/envelope.js";
import { sha256 } from "../../src/protocol/encoding.js";
import type { PrivateIdentity, PublicIdentity } from "../../src/protocol/keys.js";

export interface ForgeOptions {
  sender: PrivateIdentity;
  conversationId: string;
  recipients: readonly PublicIdentity[];
  body?: MessageBody;
  /** Raw plaintext instead of a padded body (bad padding, bad UTF-8, unknown kind). */
  plaintext?: Buffer;
  sentAtMs?: number;
  prev?: Buffer;
  /** A different content key for some recipients (key-commitment attack). */
  contentKeyFor?: (username: string, honestKey: Buffer) => Buffer;
  /** Wrap with PKCS#1 v1.5 instead of OAEP. */
  pkcs1Wrap?: boolean;
  /** Override the OAEP label used for some recipient. */
  labelFor?: (username: string, honestLabel: Buffer) => Buffer;
  /** Associated data the sender (wrongly) uses for GCM. */
  aad?: (headerBytes: Buffer) => Buffer;
  suite?: string;
}

export function forgeEnvelope(o: ForgeOptions): SealedEnvelope {
  const recipients = [...o.recipients].sort((a, b) => (a.username < b.username ? -1 : 1));
  const messageId = randomBytes(16);
  const k = randomBytes(32);
  const header: EnvelopeHeader = {
    suite: o.suite ?? SUITE_V1,
    conversationId: o.conversationId,
    messageId,
    sender: o.sender.username,
    senderSigFpr: o.sender.sigFpr,
    sentAtMs: o.sentAtMs ?? Date.now(),
    prev: o.prev ?? ZERO_HASH,
    iv: randomBytes(12),
    recipients: recipients.map((r) => ({ username: r.username, encFpr: r.encFpr })),
    keyCommitment: keyCommitment(k, messageId),
  };
  const hBytes = encodeHeader(header);
  const cipher = createCipheriv("aes-256-gcm", k, header.iv, { authTagLength: 16 });
  cipher.setAAD(o.aad ? o.aad(hBytes) : hBytes);
  const plaintext = o.plaintext ?? padBody(o.body ?? { kind: "text", text: "hello" });
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  const tag = cipher.getAuthTag();
  const hHash = sha256(hBytes);
  const wraps: KeyWrap[] = recipients.map((r) => {
    const key = o.contentKeyFor ? o.contentKeyFor(r.username, k) : k;
    const honestLabel = wrapLabel(hHash, r.username, r.encFpr);
    const label = o.labelFor ? o.labelFor(r.username, honestLabel) : honestLabel;
    const wrappedKey = o.pkcs1Wrap
      ? publicEncrypt({ key: r.encKey, padding: constants.RSA_PKCS1_PADDING }, key)
      : publicEncrypt({ key: r.encKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256", oaepLabel: label }, key);
    return { username: r.username, wrappedKey };
  });
  const unsigned = { header, ciphertext, tag, wraps };
  return { ...unsigned, signature: sign(null, signedBytes(unsigned), o.sender.sigPrivate) };
}

/** Re-signs a (tampered) envelope with a signing key: what a malicious sender can do. */
export function resign(e: SealedEnvelope, sigPrivate: KeyObject): SealedEnvelope {
  return { ...e, signature: sign(null, signedBytes(e), sigPrivate) };
}

/** Flips one bit of a copy of b. */
export function flip(b: Buffer, index = 0, bit = 0): Buffer {
  const c = Buffer.from(b);
  c[index % c.length]! ^= 1 << bit;
  return c;
}
