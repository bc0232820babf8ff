// Identity keys (PROTOCOL.md §4.2): an Ed25519 signing key that vouches for an RSA
// encryption key, fingerprints, and the session's proof of possession. Pure: no files.
import { createPrivateKey, createPublicKey, generateKeyPair, type KeyObject } from "node:crypto";
import { promisify } from "node:util";
import { encodeFields, hashFields, sha256 } from "./encoding.js";
import { ProtocolError } from "./errors.js";
import { assertUsername, checkUsername } from "./names.js";
import { ed25519Sign, ed25519Verify } from "./primitives.js";

const generateKeyPairAsync = promisify(generateKeyPair);

export const RSA_BITS_DEFAULT = 3072;
/** Peers' RSA keys below this are refused (PROTOCOL.md §4.2). */
export const RSA_BITS_MIN = 2048;
/** Larger keys are refused too: they only cost the relay and peers CPU. */
export const RSA_BITS_MAX = 8192;
export const RSA_PUBLIC_EXPONENT = 65537n;
export const FINGERPRINT_BYTES = 32;

/** A user's public identity as carried in Hello and the directory, parsed and checked. */
export interface PublicIdentity {
  readonly username: string;
  /** DER SubjectPublicKeyInfo of the Ed25519 signing key. */
  readonly sigSpki: Buffer;
  /** DER SubjectPublicKeyInfo of the RSA encryption key. */
  readonly encSpki: Buffer;
  /** Ed25519 signature over the key binding. */
  readonly encKeySig: Buffer;
  readonly sigKey: KeyObject;
  readonly encKey: KeyObject;
  /** SHA-256(sigSpki). */
  readonly sigFpr: Buffer;
  /** SHA-256(encSpki). */
  readonly encFpr: Buffer;
}

export interface PrivateIdentity extends PublicIdentity {
  readonly sigPrivate: KeyObject;
  readonly encPrivate: KeyObject;
}

/** Key fingerprint: SHA-256 over the DER SubjectPublicKeyInfo (PROTOCOL.md §4.2). */
export function fingerprint(spki: Uint8Array): Buffer {
  if (!(spki instanceof Uint8Array) || spki.length === 0) throw new TypeError("spki must be non-empty bytes");
  return sha256(spki);
}

export const KEY_TAG_BYTES = 8;

/**
 * A short tag of a user's two keys, carried in light directory entries so clients notice a key
 * change without receiving every user's keys. A hint only: all security checks use fingerprints.
 */
export function keyTag(sigFpr: Uint8Array, encFpr: Uint8Array): Buffer {
  return hashFields("securechat/v1/key-tag", [sigFpr, encFpr]).subarray(0, KEY_TAG_BYTES);
}

/** The bytes the signing key signs to vouch for the encryption key. */
export function keyBindingBytes(username: string, encSpki: Uint8Array): Buffer {
  assertUsername(username);
  return encodeFields("securechat/v1/key-binding", [username, encSpki]);
}

function importSpki(der: Uint8Array, what: string): KeyObject {
  if (!(der instanceof Uint8Array) || der.length === 0 || der.length > 2048) {
    throw new ProtocolError("bad-key", `${what} key is missing or has an implausible size`);
  }
  let key: KeyObject;
  try {
    key = createPublicKey({ key: Buffer.from(der), format: "der", type: "spki" });
  } catch (e) {
    throw new ProtocolError("bad-key", `${what} key is not a valid SubjectPublicKeyInfo`, { cause: e });
  }
  // Only the canonical DER of a key is accepted, so one key has exactly one fingerprint.
  const canonical = key.export({ format: "der", type: "spki" });
  if (!canonical.equals(Buffer.from(der))) {
    throw new ProtocolError("bad-key", `${what} key is not canonically encoded`);
  }
  return key;
}

/** Parses an Ed25519 signing key from SPKI DER. */
export function importSigningKey(spki: Uint8Array): KeyObject {
  const key = importSpki(spki, "signing");
  if (key.asymmetricKeyType !== "ed25519") {
    throw new ProtocolError("bad-key", `signing key must be Ed25519, not ${key.asymmetricKeyType ?? "unknown"}`);
  }
  return key;
}

/**
 * Parses an RSA encryption key and refuses weak ones: below 2048 bits, above 8192 bits,
 * exponent other than 65537, or RSA-PSS-only keys (PROTOCOL.md §4.2).
 */
export function importEncryptionKey(spki: Uint8Array): KeyObject {
  const key = importSpki(spki, "encryption");
  if (key.asymmetricKeyType !== "rsa") {
    throw new ProtocolError("bad-key", `encryption key must be RSA, not ${key.asymmetricKeyType ?? "unknown"}`);
  }
  const d = key.asymmetricKeyDetails;
  const bits = d?.modulusLength ?? 0;
  if (bits < RSA_BITS_MIN) throw new ProtocolError("bad-key", `RSA key of ${bits} bits is too weak (minimum ${RSA_BITS_MIN})`);
  if (bits > RSA_BITS_MAX) throw new ProtocolError("bad-key", `RSA key of ${bits} bits is too large (maximum ${RSA_BITS_MAX})`);
  if (d?.publicExponent !== RSA_PUBLIC_EXPONENT) {
    throw new ProtocolError("bad-key", `RSA public exponent must be 65537, not ${String(d?.publicExponent)}`);
  }
  return key;
}

/** What a peer presents: username, both SPKIs and the binding signature. */
export interface PublicIdentityInput {
  readonly username: string;
  readonly sigSpki: Uint8Array;
  readonly encSpki: Uint8Array;
  readonly encKeySig: Uint8Array;
}

/**
 * Checks a presented identity: username policy, key types and strength, and that the signing
 * key vouches for the encryption key. Throws ProtocolError; never returns a partly checked key.
 */
export function importPublicIdentity(input: PublicIdentityInput): PublicIdentity {
  const nameCheck = checkUsername(input.username);
  if (!nameCheck.ok) throw new ProtocolError("malformed", nameCheck.reason);
  const sigKey = importSigningKey(input.sigSpki);
  const encKey = importEncryptionKey(input.encSpki);
  if (!(input.encKeySig instanceof Uint8Array) || input.encKeySig.length !== 64) {
    throw new ProtocolError("bad-key-binding", "key binding signature must be 64 bytes");
  }
  const ok = ed25519Verify(sigKey, keyBindingBytes(input.username, input.encSpki), input.encKeySig);
  if (!ok) throw new ProtocolError("bad-key-binding", `the signing key of '${input.username}' does not vouch for this encryption key`);
  const sigSpki = Buffer.from(input.sigSpki);
  const encSpki = Buffer.from(input.encSpki);
  return {
    username: input.username,
    sigSpki,
    encSpki,
    encKeySig: Buffer.from(input.encKeySig),
    sigKey,
    encKey,
    sigFpr: fingerprint(sigSpki),
    encFpr: fingerprint(encSpki),
  };
}

/** Builds a private identity from the two private keys (as loaded from the key file). */
export function identityFromPrivateKeys(username: string, sigPrivate: KeyObject, encPrivate: KeyObject): PrivateIdentity {
  assertUsername(username);
  if (sigPrivate.type !== "private" || sigPrivate.asymmetricKeyType !== "ed25519") {
    throw new ProtocolError("bad-key", "the signing key must be an Ed25519 private key");
  }
  if (encPrivate.type !== "private" || encPrivate.asymmetricKeyType !== "rsa") {
    throw new ProtocolError("bad-key", "the encryption key must be an RSA private key");
  }
  const sigSpki = createPublicKey(sigPrivate).export({ format: "der", type: "spki" });
  const encSpki = createPublicKey(encPrivate).export({ format: "der", type: "spki" });
  // Ed25519 is deterministic, so the binding is the same every time it is rebuilt.
  const encKeySig = ed25519Sign(sigPrivate, keyBindingBytes(username, encSpki));
  const pub = importPublicIdentity({ username, sigSpki, encSpki, encKeySig });
  return { ...pub, sigPrivate, encPrivate };
}

/** Generates a fresh identity: Ed25519 + RSA (3072 bits unless told otherwise). */
export async function generateIdentity(username: string, options: { rsaBits?: number } = {}): Promise<PrivateIdentity> {
  assertUsername(username);
  const bits = options.rsaBits ?? RSA_BITS_DEFAULT;
  if (!Number.isInteger(bits) || bits < RSA_BITS_MIN || bits > RSA_BITS_MAX) {
    throw new RangeError(`RSA key size must be between ${RSA_BITS_MIN} and ${RSA_BITS_MAX} bits`);
  }
  const [sig, enc] = await Promise.all([
    generateKeyPairAsync("ed25519"),
    generateKeyPairAsync("rsa", { modulusLength: bits, publicExponent: Number(RSA_PUBLIC_EXPONENT) }),
  ]);
  return identityFromPrivateKeys(username, sig.privateKey, enc.privateKey);
}

/** Loads a private key from PEM (PKCS#8). */
export function importPrivateKeyPem(pem: string): KeyObject {
  return createPrivateKey({ key: pem, format: "pem" });
}

// ---------------------------------------------------------------------------------------------
// Proof of possession (PROTOCOL.md §9.1 step 3). The relay never asks the client to
// decrypt anything: the signature over the challenge plus the key binding is the proof.
// ---------------------------------------------------------------------------------------------

export const RELAY_ID_BYTES = 16;
export const NONCE_BYTES = 32;
/** Length of a TLS channel binding: SHA-256 of the relay's certificate (PROTOCOL.md §9). */
export const CHANNEL_BINDING_BYTES = 32;
/** The channel binding of a plaintext session (both sides chose --insecure-plaintext): empty. */
export const PLAINTEXT_CHANNEL_BINDING: Buffer = Buffer.alloc(0);

/**
 * The channel binding of a TLS session (PROTOCOL.md §9): SHA-256 of the DER of the relay's leaf
 * certificate, as the client saw it in the handshake and as the relay knows its own. A man in the
 * middle terminating TLS with another certificate makes the two sides compute different values.
 */
export function tlsChannelBinding(certificateDer: Uint8Array): Buffer {
  if (!(certificateDer instanceof Uint8Array) || certificateDer.length === 0) throw new ProtocolError("malformed", "a certificate is needed for a TLS channel binding");
  return sha256(certificateDer);
}

export interface ProofInput {
  readonly relayId: Uint8Array;
  readonly nonce: Uint8Array;
  readonly username: string;
  readonly sigSpki: Uint8Array;
  readonly encSpki: Uint8Array;
  /** tlsChannelBinding(relay certificate), or PLAINTEXT_CHANNEL_BINDING without TLS. */
  readonly channelBinding: Uint8Array;
}

export function proofBytes(p: ProofInput): Buffer {
  if (p.relayId.length !== RELAY_ID_BYTES) throw new ProtocolError("malformed", `relay id must be ${RELAY_ID_BYTES} bytes`);
  if (p.nonce.length !== NONCE_BYTES) throw new ProtocolError("malformed", `challenge nonce must be ${NONCE_BYTES} bytes`);
  if (p.channelBinding.length !== 0 && p.channelBinding.length !== CHANNEL_BINDING_BYTES) {
    throw new ProtocolError("malformed", `channel binding must be empty (plaintext) or ${CHANNEL_BINDING_BYTES} bytes`);
  }
  assertUsername(p.username);
  return encodeFields("securechat/v1/proof", [p.relayId, p.nonce, p.username, p.sigSpki, p.encSpki, p.channelBinding]);
}

export function signProof(identity: PrivateIdentity, relayId: Uint8Array, nonce: Uint8Array, channelBinding: Uint8Array): Buffer {
  const bytes = proofBytes({ relayId, nonce, username: identity.username, sigSpki: identity.sigSpki, encSpki: identity.encSpki, channelBinding });
  return ed25519Sign(identity.sigPrivate, bytes);
}

/** True when signature proves possession of identity's signing key for this challenge over this channel. */
export function verifyProof(identity: Pick<PublicIdentity, "username" | "sigSpki" | "encSpki" | "sigKey">, relayId: Uint8Array, nonce: Uint8Array, channelBinding: Uint8Array, signature: Uint8Array): boolean {
  if (!(signature instanceof Uint8Array) || signature.length !== 64) return false;
  const bytes = proofBytes({ relayId, nonce, username: identity.username, sigSpki: identity.sigSpki, encSpki: identity.encSpki, channelBinding });
  return ed25519Verify(identity.sigKey, bytes, signature);
}
