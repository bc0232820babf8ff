// MLS credentials bound to a secure-chat identity (proto/PROTOCOL.md §4.4).
//
// Each client has its own MLS signature key: a fresh Ed25519 key, NOT the identity key of
// `<username>_key.pem`. The identity key vouches for it once:
//
//   identity_sig = Ed25519.sign(identity key, enc("securechat/v1/mls-leaf-key", suite, username, sig_spki, mls_sig_pub))
//
// and the MLS credential (type basic) carries, as its `identity` bytes:
//
//   enc("securechat/v1/mls-credential", username, sig_spki, identity_sig)
//
// A member's leaf is accepted only when that signature verifies for the leaf's signature key
// (and the caller's trust hook accepts the identity key: pins, TOFU, §6 of PROTOCOL.md). So the
// relay cannot put a leaf with someone else's name in a group, and an identity key change shows
// as a key change exactly as in v1. Why a separate key: the key file's key then never signs MLS
// traffic (no cross-protocol use), and one identity can later certify one leaf key per device.
import { createPublicKey, type KeyObject } from "node:crypto";
import type { AuthenticationService, Credential } from "ts-mls";
import { encodeFields } from "../encoding.js";
import { fingerprint, importSigningKey } from "../keys.js";
import { checkUsername } from "../names.js";
import { ed25519Sign, ed25519Verify } from "../primitives.js";
import { MlsProtocolError } from "./errors.js";
import { decodeFields } from "./fields.js";
import { MLS_SUITE } from "./suite.js";

export const CREDENTIAL_LABEL = "securechat/v1/mls-credential";
export const LEAF_KEY_LABEL = "securechat/v1/mls-leaf-key";
export const MLS_SIGNATURE_KEY_BYTES = 32;
const ED25519_SIGNATURE_BYTES = 64;
/** Largest credential identity accepted (an Ed25519 SPKI is 44 bytes; room for the name and labels). */
export const CREDENTIAL_MAX_BYTES = 256;

/** What a verified credential says: who, and with which identity key. */
export interface VerifiedIdentity {
  readonly username: string;
  /** DER SPKI of the user's Ed25519 identity key (the one in `<username>_key.pem`). */
  readonly identitySpki: Buffer;
  /** SHA-256(identitySpki): the `sig_fpr` pinned in v1's known_peers (PROTOCOL.md §4.2). */
  readonly identityFpr: Buffer;
}

/** The caller's decision about an identity key (TOFU pins live above this layer). */
export type TrustHook = (identity: VerifiedIdentity) => boolean;

/** The bytes the identity key signs to vouch for an MLS signature key. */
export function leafKeyBindingBytes(username: string, identitySpki: Uint8Array, mlsSignaturePublicKey: Uint8Array): Buffer {
  return encodeFields(LEAF_KEY_LABEL, [MLS_SUITE, username, identitySpki, mlsSignaturePublicKey]);
}

/** Builds the credential of `username` for an MLS signature key, signed by the identity key. */
export function makeCredential(username: string, identityPrivate: KeyObject, mlsSignaturePublicKey: Uint8Array): { credential: Credential; identitySig: Buffer; identitySpki: Buffer } {
  const nameCheck = checkUsername(username);
  if (!nameCheck.ok) throw new MlsProtocolError("bad-argument", nameCheck.reason);
  if (identityPrivate?.type !== "private" || identityPrivate.asymmetricKeyType !== "ed25519") {
    throw new MlsProtocolError("bad-argument", "the identity key must be an Ed25519 private key");
  }
  if (!(mlsSignaturePublicKey instanceof Uint8Array) || mlsSignaturePublicKey.length !== MLS_SIGNATURE_KEY_BYTES) {
    throw new MlsProtocolError("bad-argument", `the MLS signature key must be ${MLS_SIGNATURE_KEY_BYTES} bytes`);
  }
  const identitySpki = createPublicKey(identityPrivate).export({ format: "der", type: "spki" });
  const identitySig = ed25519Sign(identityPrivate, leafKeyBindingBytes(username, identitySpki, mlsSignaturePublicKey));
  const identity = encodeFields(CREDENTIAL_LABEL, [username, identitySpki, identitySig]);
  return { credential: { credentialType: "basic", identity: new Uint8Array(identity) }, identitySig, identitySpki };
}

/**
 * Checks a credential against the MLS signature key of its leaf (PROTOCOL.md §4.4
 * ): well-formed, a valid username, a canonical Ed25519 identity key, and the identity
 * signature over (suite, username, identity key, leaf key). Throws MlsProtocolError("bad-credential").
 */
export function verifyCredential(credential: Credential, mlsSignaturePublicKey: Uint8Array): VerifiedIdentity {
  if (credential?.credentialType !== "basic") throw new MlsProtocolError("bad-credential", "credential must be of type basic");
  const raw = credential.identity;
  if (!(raw instanceof Uint8Array) || raw.length > CREDENTIAL_MAX_BYTES) throw new MlsProtocolError("bad-credential", "credential identity is missing or too large");
  if (!(mlsSignaturePublicKey instanceof Uint8Array) || mlsSignaturePublicKey.length !== MLS_SIGNATURE_KEY_BYTES) {
    throw new MlsProtocolError("bad-credential", `leaf signature key must be ${MLS_SIGNATURE_KEY_BYTES} bytes`);
  }
  let fields: Buffer[];
  try {
    fields = decodeFields(raw, CREDENTIAL_LABEL, 3, "credential");
  } catch (e) {
    throw new MlsProtocolError("bad-credential", `credential does not parse: ${(e as Error).message}`, { cause: e });
  }
  const [nameBytes, identitySpki, identitySig] = fields as [Buffer, Buffer, Buffer];
  const username = nameBytes.toString("utf8");
  const nameCheck = checkUsername(username);
  if (!nameCheck.ok || !Buffer.from(username, "utf8").equals(nameBytes)) throw new MlsProtocolError("bad-credential", `credential names an invalid username: ${nameCheck.ok ? "not UTF-8" : nameCheck.reason}`);
  let identityKey: KeyObject;
  try {
    identityKey = importSigningKey(identitySpki);
  } catch (e) {
    throw new MlsProtocolError("bad-credential", `credential of '${username}' carries an invalid identity key`, { cause: e });
  }
  if (identitySig.length !== ED25519_SIGNATURE_BYTES || !ed25519Verify(identityKey, leafKeyBindingBytes(username, identitySpki, mlsSignaturePublicKey), identitySig)) {
    throw new MlsProtocolError("bad-credential", `the identity key of '${username}' does not vouch for this MLS signature key`);
  }
  return { username, identitySpki: Buffer.from(identitySpki), identityFpr: fingerprint(identitySpki) };
}

/**
 * The ts-mls AuthenticationService of secure-chat: verifyCredential, then the caller's trust
 * hook. ts-mls only learns true/false, so the reason of the last refusal is kept for the error
 * the wrapper throws.
 */
export class CredentialChecker implements AuthenticationService {
  lastRefusal: MlsProtocolError | undefined;
  constructor(private readonly trust: TrustHook | undefined) {}

  async validateCredential(credential: Credential, signaturePublicKey: Uint8Array): Promise<boolean> {
    try {
      const id = verifyCredential(credential, signaturePublicKey);
      if (this.trust !== undefined && !this.trust(id)) {
        this.lastRefusal = new MlsProtocolError("untrusted-identity", `the identity key of '${id.username}' was refused (it is not the pinned one)`);
        return false;
      }
      return true;
    } catch (e) {
      this.lastRefusal = e instanceof MlsProtocolError ? e : new MlsProtocolError("bad-credential", "credential check failed", { cause: e });
      return false;
    }
  }

  /** Whether the caller's trust hook accepts this (already verified) identity. */
  trusts(id: VerifiedIdentity): boolean {
    return this.trust === undefined || this.trust(id);
  }

  /** The last refusal, cleared. */
  takeRefusal(): MlsProtocolError | undefined {
    const r = this.lastRefusal;
    this.lastRefusal = undefined;
    return r;
  }
}
