// The three primitives of suite v1 with exactly the parameters PROTOCOL.md §2, Appendix A.2 fixes, in one
// place: seal/open use these functions and the Wycheproof vectors test these functions.
import {
  constants, createCipheriv, createDecipheriv, hash, privateDecrypt, publicEncrypt, sign, verify, type KeyObject,
} from "node:crypto";

export const AES_KEY_BYTES = 32;
export const GCM_IV_BYTES = 12;
export const GCM_TAG_BYTES = 16;

function bytes(name: string, b: unknown, len?: number): asserts b is Uint8Array {
  if (!(b instanceof Uint8Array)) throw new TypeError(`${name} must be bytes`);
  if (len !== undefined && b.length !== len) throw new RangeError(`${name} must be ${len} bytes, not ${b.length}`);
}

/**
 * AES-256-GCM encryption (NIST SP 800-38D) with a 96-bit IV and a 128-bit tag.
 * The caller guarantees the IV is never reused under one key (v1 draws a fresh key per message).
 */
export function aesGcmEncrypt(key: Uint8Array, iv: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): { ciphertext: Buffer; tag: Buffer } {
  bytes("key", key, AES_KEY_BYTES);
  bytes("iv", iv, GCM_IV_BYTES);
  bytes("aad", aad);
  bytes("plaintext", plaintext);
  const cipher = createCipheriv("aes-256-gcm", key, iv, { authTagLength: GCM_TAG_BYTES });
  cipher.setAAD(aad);
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return { ciphertext, tag: cipher.getAuthTag() };
}

/**
 * AES-256-GCM decryption. The tag must be exactly 16 bytes (Node would otherwise accept a
 * truncated tag, SP 800-38D §5.2.1.2), and no plaintext is returned unless it verifies.
 * Throws on any failure.
 */
export function aesGcmDecrypt(key: Uint8Array, iv: Uint8Array, aad: Uint8Array, ciphertext: Uint8Array, tag: Uint8Array): Buffer {
  bytes("key", key, AES_KEY_BYTES);
  bytes("iv", iv, GCM_IV_BYTES);
  bytes("aad", aad);
  bytes("ciphertext", ciphertext);
  bytes("tag", tag, GCM_TAG_BYTES);
  const decipher = createDecipheriv("aes-256-gcm", key, iv, { authTagLength: GCM_TAG_BYTES });
  decipher.setAAD(aad);
  decipher.setAuthTag(tag);
  const head = decipher.update(ciphertext);
  const tail = decipher.final(); // throws on a bad tag: `head` is discarded with the exception
  return Buffer.concat([head, tail]);
}

/**
 * RSAES-OAEP encryption (RFC 8017 §7.1) with SHA-256 and MGF1-SHA-256 (Node's `oaepHash` sets
 * the OAEP digest, and OpenSSL's MGF1 digest follows it) and the given label.
 */
export function rsaOaepWrap(publicKey: KeyObject, label: Uint8Array, data: Uint8Array): Buffer {
  bytes("label", label);
  bytes("data", data);
  return publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256", oaepLabel: label }, data);
}

/**
 * RSAES-OAEP decryption (RFC 8017 §7.1.2), same parameters. Never PKCS#1 v1.5. Throws on any
 * failure (wrong key, wrong label, malformed padding) without saying which.
 */
export function rsaOaepUnwrap(privateKey: KeyObject, label: Uint8Array, wrapped: Uint8Array): Buffer {
  bytes("label", label);
  bytes("wrapped", wrapped);
  return privateDecrypt({ key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256", oaepLabel: label }, wrapped);
}

/** Ed25519 signature (RFC 8032 §5.1.6, pure Ed25519: no prehash, no context). */
export function ed25519Sign(privateKey: KeyObject, message: Uint8Array): Buffer {
  bytes("message", message);
  return sign(null, message, privateKey);
}

/**
 * Ed25519 verification on libuv's thread pool (same check as ed25519Verify): a relay verifying
 * every envelope keeps its event loop free for I/O. Resolves false, never rejects, for a bad or
 * malformed signature.
 */
export function ed25519VerifyAsync(publicKey: KeyObject, message: Uint8Array, signature: Uint8Array): Promise<boolean> {
  bytes("message", message);
  if (!(signature instanceof Uint8Array) || signature.length !== 64) return Promise.resolve(false);
  return new Promise((resolve) => {
    verify(null, message, publicKey, signature, (err, ok) => resolve(err === null && ok));
  });
}

/** Ed25519 verification (RFC 8032 §5.1.7). False (never a throw) for a malformed signature. */
export function ed25519Verify(publicKey: KeyObject, message: Uint8Array, signature: Uint8Array): boolean {
  bytes("message", message);
  if (!(signature instanceof Uint8Array) || signature.length !== 64) return false;
  return verify(null, message, publicKey, signature);
}

const SHA256_BLOCK = 64;
const IPAD = Buffer.alloc(SHA256_BLOCK, 0x36);
const OPAD = Buffer.alloc(SHA256_BLOCK, 0x5c);

/**
 * HMAC-SHA-256 (RFC 2104 §2) for keys up to one block (64 bytes), computed with two one-shot
 * SHA-256 calls: node's createHmac builds a key object per call, which cost more than the rest
 * of a seal. Same output as createHmac (checked against RFC 4231 vectors and createHmac).
 */
export function hmacSha256(key: Uint8Array, data: Uint8Array): Buffer {
  bytes("key", key);
  bytes("data", data);
  if (key.length > SHA256_BLOCK) throw new RangeError("hmacSha256 takes keys of at most 64 bytes");
  const k0 = Buffer.alloc(SHA256_BLOCK);
  k0.set(key);
  const inner = Buffer.allocUnsafe(SHA256_BLOCK + data.length);
  const outer = Buffer.allocUnsafe(SHA256_BLOCK + 32);
  for (let i = 0; i < SHA256_BLOCK; i++) {
    inner[i] = k0[i]! ^ IPAD[i]!;
    outer[i] = k0[i]! ^ OPAD[i]!;
  }
  inner.set(data, SHA256_BLOCK);
  outer.set(hash("sha256", inner, "buffer"), SHA256_BLOCK);
  k0.fill(0);
  inner.fill(0, 0, SHA256_BLOCK);
  return hash("sha256", outer, "buffer");
}
