// One user's MLS client (proto/PROTOCOL.md §4.4, §8.1): the MLS
// signature key vouched for by the identity key, and KeyPackages (one-time and last-resort).
// Pure: bytes in, bytes out; the caller stores them (encrypted at rest, PROTOCOL.md §10.4).
import { createPublicKey, type KeyObject } from "node:crypto";
import {
  decodeMlsMessage, defaultCapabilities, encodeMlsMessage, generateKeyPackageWithKey,
  type Credential, type KeyPackage, type MLSMessage, type PrivateKeyPackage,
} from "ts-mls";
import { makeKeyPackageRef } from "ts-mls/keyPackage.js";
import { encodeFields } from "../encoding.js";
import { MlsProtocolError } from "./errors.js";
import { ROOM_CREATOR_EXTENSION } from "./creator.js";
import { makeCredential, MLS_SIGNATURE_KEY_BYTES, verifyCredential, type VerifiedIdentity } from "./credential.js";
import { decodeFields } from "./fields.js";
import { CLIENT_SHAPE_BOUNDS, walkMlsShape } from "./shape.js";
import { KEY_PACKAGE_LIFETIME_S, KEY_PACKAGE_SKEW_S, LAST_RESORT_LIFETIME_S, MLS_MAX_MESSAGE_BYTES, MLS_SUITE, suiteImpl } from "./suite.js";

/** The identity a client is made from: the username and the Ed25519 key of `<username>_key.pem`. */
export interface IdentityKey {
  readonly username: string;
  readonly sigPrivate: KeyObject;
}

export interface MlsClient {
  readonly username: string;
  readonly identity: VerifiedIdentity;
  readonly credential: Credential;
  readonly signaturePublicKey: Uint8Array;
  /** PKCS#8 or raw Ed25519 private key, as ts-mls's WebCrypto signer takes it. */
  readonly signaturePrivateKey: Uint8Array;
}

const CLIENT_LABEL = "securechat/v1/mls-client";
/** Extension type of draft-ietf-mls-extensions' last_resort KeyPackage marker. */
export const LAST_RESORT_EXTENSION = 0x000a;

function checkIdentityKey(id: IdentityKey): void {
  if (id === null || typeof id !== "object") throw new MlsProtocolError("bad-argument", "an identity (username and Ed25519 private key) is needed");
  if (id.sigPrivate?.type !== "private" || id.sigPrivate.asymmetricKeyType !== "ed25519") {
    throw new MlsProtocolError("bad-argument", "the identity key must be an Ed25519 private key");
  }
}

function fromParts(username: string, credential: Credential, signaturePublicKey: Uint8Array, signaturePrivateKey: Uint8Array): MlsClient {
  const identity = verifyCredential(credential, signaturePublicKey);
  if (identity.username !== username) throw new MlsProtocolError("bad-credential", "credential names another user");
  return { username, identity, credential, signaturePublicKey, signaturePrivateKey };
}

/** Creates a client: a fresh MLS signature key and its credential signed by the identity key. */
export async function createMlsClient(id: IdentityKey): Promise<MlsClient> {
  checkIdentityKey(id);
  const impl = await suiteImpl();
  const kp = await impl.signature.keygen();
  const { credential } = makeCredential(id.username, id.sigPrivate, kp.publicKey);
  return fromParts(id.username, credential, kp.publicKey, kp.signKey);
}

/**
 * A fresh MLS signature key pair for a device being linked (PROTOCOL.md §4.6): the new device
 * keeps the private key and sends the public one; the primary vouches for it (makeCredential).
 */
export async function generateMlsSignatureKey(): Promise<{ readonly publicKey: Uint8Array; readonly privateKey: Uint8Array }> {
  const impl = await suiteImpl();
  const kp = await impl.signature.keygen();
  return { publicKey: kp.publicKey, privateKey: kp.signKey };
}

/**
 * A linked device's client (PROTOCOL.md §4.6): its own signature key with the credential the
 * primary made for it. The credential must verify for the key and name `username`.
 */
export function mlsClientFromCredential(username: string, credential: Credential, signaturePublicKey: Uint8Array, signaturePrivateKey: Uint8Array): MlsClient {
  if (!(signaturePrivateKey instanceof Uint8Array) || signaturePrivateKey.length === 0) throw new MlsProtocolError("bad-argument", "the MLS signature private key is missing");
  return fromParts(username, credential, signaturePublicKey, signaturePrivateKey);
}

/** Serialises the client (it holds the MLS signature private key: store it encrypted at rest). */
export function serializeMlsClient(client: MlsClient): Uint8Array {
  if (client?.credential?.credentialType !== "basic") throw new MlsProtocolError("bad-argument", "not an MlsClient");
  return new Uint8Array(encodeFields(CLIENT_LABEL, [client.username, client.credential.identity, client.signaturePublicKey, client.signaturePrivateKey]));
}

/**
 * Restores a client and checks that its credential is vouched for by THIS identity key (a state
 * file from another key, or a tampered one, is refused rather than used).
 */
export function restoreMlsClient(bytes: Uint8Array, id: IdentityKey, identitySpki?: Uint8Array): MlsClient {
  checkIdentityKey(id);
  let f: Buffer[];
  try {
    f = decodeFields(bytes, CLIENT_LABEL, 4, "MLS client state");
  } catch (e) {
    throw new MlsProtocolError("bad-state", (e as Error).message, { cause: e });
  }
  const [name, identity, pub, priv] = f as [Buffer, Buffer, Buffer, Buffer];
  const username = name.toString("utf8");
  if (username !== id.username) throw new MlsProtocolError("bad-state", `MLS client state belongs to '${username}', not '${id.username}'`);
  const credential: Credential = { credentialType: "basic", identity: new Uint8Array(identity) };
  let client: MlsClient;
  try {
    client = fromParts(username, credential, new Uint8Array(pub), new Uint8Array(priv));
  } catch (e) {
    throw new MlsProtocolError("bad-state", `MLS client state does not verify: ${(e as Error).message}`, { cause: e });
  }
  // A linked device (PROTOCOL.md §4.5) holds its own key, not the identity key: the caller names the identity key.
  const mySpki = identitySpki !== undefined ? Buffer.from(identitySpki) : createPublicKey(id.sigPrivate).export({ format: "der", type: "spki" });
  if (!client.identity.identitySpki.equals(mySpki)) throw new MlsProtocolError("bad-state", "MLS client state was vouched for by another identity key");
  return client;
}

/** A generated KeyPackage: the public part for the relay, the private part for the caller's store. */
export interface GeneratedKeyPackage {
  /** MLSMessage(mls_key_package) to upload. */
  readonly keyPackage: Uint8Array;
  /** KeyPackageRef (RFC 9420 §5.2): how Welcomes name it. */
  readonly ref: Uint8Array;
  readonly lastResort: boolean;
  /** Unix seconds after which the relay drops it and members refuse it. */
  readonly notAfter: number;
  /** Serialised private keys (init + HPKE leaf key) and the package: keep until used, then delete. */
  readonly stored: Uint8Array;
}

const STORED_KP_LABEL = "securechat/v1/mls-key-package";

/**
 * Generates a KeyPackage (PROTOCOL.md §8.1). One-time packages are used by exactly
 * one Welcome and then deleted; the last-resort one is kept for when the relay has no one-time
 * package left, and is replaced by a fresh one after each use.
 */
export async function generateKeyPackage(client: MlsClient, options: { lastResort?: boolean; nowS?: number } = {}): Promise<GeneratedKeyPackage> {
  if (client?.signaturePublicKey?.length !== MLS_SIGNATURE_KEY_BYTES) throw new MlsProtocolError("bad-argument", "not an MlsClient");
  const lastResort = options.lastResort === true;
  const now = options.nowS ?? Math.floor(Date.now() / 1000);
  if (!Number.isSafeInteger(now) || now < 0) throw new MlsProtocolError("bad-argument", "nowS must be a non-negative integer");
  const notAfter = now + (lastResort ? LAST_RESORT_LIFETIME_S : KEY_PACKAGE_LIFETIME_S);
  const impl = await suiteImpl();
  const caps = defaultCapabilities();
  // Every client supports room_creator (a room's GroupContext requires it: PROTOCOL.md §7).
  const capabilities = { ...caps, ciphersuites: [MLS_SUITE], extensions: [...caps.extensions, LAST_RESORT_EXTENSION, ROOM_CREATOR_EXTENSION] };
  const extensions = lastResort ? [{ extensionType: LAST_RESORT_EXTENSION, extensionData: new Uint8Array(0) }] : [];
  const { publicPackage, privatePackage } = await generateKeyPackageWithKey(
    client.credential, capabilities, { notBefore: BigInt(now - KEY_PACKAGE_SKEW_S), notAfter: BigInt(notAfter) }, extensions,
    { signKey: client.signaturePrivateKey, publicKey: client.signaturePublicKey }, impl,
  );
  const keyPackage = encodeMlsMessage({ version: "mls10", wireformat: "mls_key_package", keyPackage: publicPackage });
  const ref = await makeKeyPackageRef(publicPackage, impl.hash);
  const stored = encodeFields(STORED_KP_LABEL, [keyPackage, privatePackage.initPrivateKey, privatePackage.hpkePrivateKey, lastResort ? "last-resort" : "one-time"]);
  return { keyPackage, ref, lastResort, notAfter, stored: new Uint8Array(stored) };
}

/** A stored KeyPackage, restored: what joining from a Welcome needs. */
export interface StoredKeyPackage {
  readonly keyPackage: KeyPackage;
  readonly privateKeys: PrivateKeyPackage;
  readonly ref: Uint8Array;
  readonly lastResort: boolean;
}

/** Restores a stored KeyPackage for this client (the signature key is the client's). */
export async function restoreKeyPackage(client: MlsClient, stored: Uint8Array): Promise<StoredKeyPackage> {
  let f: Buffer[];
  try {
    f = decodeFields(stored, STORED_KP_LABEL, 4, "stored KeyPackage");
  } catch (e) {
    throw new MlsProtocolError("bad-state", (e as Error).message, { cause: e });
  }
  const [kpBytes, initPriv, hpkePriv, kind] = f as [Buffer, Buffer, Buffer, Buffer];
  const keyPackage = decodeKeyPackage(kpBytes);
  if (!Buffer.from(keyPackage.leafNode.signaturePublicKey).equals(Buffer.from(client.signaturePublicKey))) {
    throw new MlsProtocolError("bad-state", "stored KeyPackage belongs to another MLS client");
  }
  const impl = await suiteImpl();
  return {
    keyPackage,
    privateKeys: { initPrivateKey: new Uint8Array(initPriv), hpkePrivateKey: new Uint8Array(hpkePriv), signaturePrivateKey: client.signaturePrivateKey },
    ref: await makeKeyPackageRef(keyPackage, impl.hash),
    lastResort: kind.toString() === "last-resort",
  };
}

/** Overwrites the private keys of a restored KeyPackage (forward secrecy: call once it is used). */
export function destroyKeyPackage(kp: StoredKeyPackage): void {
  kp.privateKeys.initPrivateKey.fill(0);
  kp.privateKeys.hpkePrivateKey.fill(0);
}

/** Decodes an MLSMessage holding a KeyPackage of our suite; throws MlsProtocolError("malformed"|"bad-key-package"). */
export function decodeKeyPackage(bytes: Uint8Array): KeyPackage {
  // §10.1: a claimed KeyPackage is the relay's to choose; its lists are walked before the decode.
  const msg = decodeReceivedMls(bytes, "KeyPackage");
  if (msg.wireformat !== "mls_key_package") throw new MlsProtocolError("malformed", `expected a KeyPackage, got ${msg.wireformat}`);
  if (msg.keyPackage.cipherSuite !== MLS_SUITE) throw new MlsProtocolError("bad-key-package", `KeyPackage uses ${msg.keyPackage.cipherSuite}, not ${MLS_SUITE}`);
  return msg.keyPackage;
}

/**
 * Checks a peer's KeyPackage before adding it (PROTOCOL.md §8.1): our suite, inside
 * its lifetime, credential verifying for its leaf key, and naming the expected user. ts-mls
 * verifies the KeyPackage signature itself when the Add is committed.
 */
export function checkKeyPackage(kp: KeyPackage, expectedUsername: string | undefined, nowS: number): VerifiedIdentity {
  if (kp.cipherSuite !== MLS_SUITE) throw new MlsProtocolError("bad-key-package", `KeyPackage uses ${kp.cipherSuite}, not ${MLS_SUITE}`);
  const lt = kp.leafNode.leafNodeSource === "key_package" ? kp.leafNode.lifetime : undefined;
  if (lt === undefined) throw new MlsProtocolError("bad-key-package", "KeyPackage leaf has no lifetime");
  const now = BigInt(nowS);
  if (now < lt.notBefore || now > lt.notAfter) throw new MlsProtocolError("bad-key-package", "KeyPackage is outside its lifetime (expired or not yet valid)");
  if (lt.notAfter - lt.notBefore > BigInt(LAST_RESORT_LIFETIME_S + KEY_PACKAGE_SKEW_S)) throw new MlsProtocolError("bad-key-package", "KeyPackage lifetime is longer than allowed");
  let id: VerifiedIdentity;
  try {
    id = verifyCredential(kp.leafNode.credential, kp.leafNode.signaturePublicKey);
  } catch (e) {
    throw new MlsProtocolError("bad-key-package", `KeyPackage credential refused: ${(e as Error).message}`, { cause: e });
  }
  if (expectedUsername !== undefined && id.username !== expectedUsername) {
    throw new MlsProtocolError("bad-key-package", `KeyPackage is for '${id.username}', not '${expectedUsername}'`);
  }
  return id;
}

/** Whether a KeyPackage carries the last_resort marker. */
export function isLastResort(kp: KeyPackage): boolean {
  return kp.extensions.some((e) => e.extensionType === LAST_RESORT_EXTENSION);
}

/**
 * Decodes an MLSMessage a relay or a peer handed us: its shape walked first (shape.ts, PROTOCOL.md
 * §10.1: no list longer than a default relay's honest groups make, and no PublicMessage but an
 * external join's commit), then decodeMls. Malformed input is one MlsProtocolError("malformed").
 * Every MLS structure a client decodes from someone else comes through here (or decodeTree).
 */
export function decodeReceivedMls(bytes: Uint8Array, what: string): MLSMessage {
  checkSize(bytes, what);
  walkMlsShape(bytes, what, CLIENT_SHAPE_BOUNDS, "client");
  return decodeMls(bytes, what);
}

function checkSize(bytes: Uint8Array, what: string): void {
  if (!(bytes instanceof Uint8Array)) throw new MlsProtocolError("bad-argument", `${what} must be bytes`);
  if (bytes.length === 0 || bytes.length > MLS_MAX_MESSAGE_BYTES) throw new MlsProtocolError("malformed", `${what} is empty or larger than ${MLS_MAX_MESSAGE_BYTES} bytes`);
}

/**
 * Decodes any MLSMessage with the size limit (ts-mls's decode, no trailing bytes, MLS 1.0);
 * malformed input is one MlsProtocolError("malformed"). Its shape is not walked: for bytes the
 * caller walked with its own bounds (the relay's decodeClientMls, src/server/mls-shape.ts) or
 * wrote itself; what came from a relay or a peer goes through decodeReceivedMls.
 */
export function decodeMls(bytes: Uint8Array, what: string): MLSMessage {
  checkSize(bytes, what);
  let decoded: ReturnType<typeof decodeMlsMessage>;
  try {
    decoded = decodeMlsMessage(bytes, 0);
  } catch (e) {
    throw new MlsProtocolError("malformed", `${what} does not decode as an MLS message`, { cause: e });
  }
  if (decoded === undefined) throw new MlsProtocolError("malformed", `${what} does not decode as an MLS message`);
  const [msg, used] = decoded;
  if (used !== bytes.length) throw new MlsProtocolError("malformed", `${what} has ${bytes.length - used} trailing bytes`);
  if (msg.version !== "mls10") throw new MlsProtocolError("malformed", `${what} is not MLS 1.0`);
  return msg;
}
