// A user's devices (proto/PROTOCOL.md §4.5): the signed, versioned device list and a linked
// device's proof of possession. Pure: no files, no network.
//
// The identity key (in <username>_key.pem, on the primary device) signs
//
//   enc("securechat/v1/device-list", username, identity_spki, u64(version), u64(issued_at_ms),
//       u32(n), then for each device in list order:
//       device_id, name, auth_spki, mls_signature_key, u64(added_at_ms), u32(primary ? 1 : 0))
//
// Exactly one device is primary and its auth_spki is the identity key's SPKI; every other device
// proves with its own Ed25519 key (auth_spki). Every device's leaves in every MLS group carry its
// mls_signature_key, vouched for by the identity key in the leaf's credential (§4.4). So:
// - a relay cannot add a device (it cannot sign a list) nor edit one (the signature covers it);
// - it can serve an OLDER signed list (to hide a device added since, or keep an unlinked one):
//   clients keep the highest version they verified per user and refuse a lower one (§4.5).
import { randomBytes, type KeyObject } from "node:crypto";
import type { DeviceList as WireDeviceList } from "../gen/securechat/v1/chat.js";
import { encodeFields, type Field } from "./encoding.js";
import { ProtocolError } from "./errors.js";
import { importSigningKey, RELAY_ID_BYTES, NONCE_BYTES, CHANNEL_BINDING_BYTES } from "./keys.js";
import { checkUsername } from "./names.js";
import { ed25519Sign, ed25519Verify } from "./primitives.js";
import { isSafeText } from "./sanitize.js";

export const DEVICE_LIST_LABEL = "securechat/v1/device-list";
export const DEVICE_PROOF_LABEL = "securechat/v1/device-proof";
/** Most devices one user may have (the relay queues every message once per device). */
export const MAX_DEVICES = 16;
export const DEVICE_NAME_MAX_CHARS = 32;
export const MLS_SIGNATURE_KEY_BYTES = 32;
/** Why a list of more than MAX_DEVICES is malformed (the relay's frame scan, frame-scan.ts, refuses one with it undecoded). */
export const TOO_MANY_DEVICES = `it lists more than ${MAX_DEVICES} devices`;
const ED25519_SIGNATURE_BYTES = 64;
const DEVICE_ID_RE = /^[0-9a-f]{16}$/;

export interface DeviceEntry {
  /** 16 lowercase hex characters, random, unique within the list. */
  readonly deviceId: string;
  readonly name: string;
  /** Ed25519 SPKI the device proves with (the identity key's SPKI for the primary). */
  readonly authSpki: Buffer;
  /** The device's MLS signature public key: its leaves' signature key in every group. */
  readonly mlsSignatureKey: Buffer;
  readonly addedAtMs: number;
  readonly primary: boolean;
}

export interface DeviceListBody {
  readonly username: string;
  readonly version: number;
  readonly issuedAtMs: number;
  readonly devices: readonly DeviceEntry[];
}

export interface SignedDeviceList extends DeviceListBody {
  readonly signature: Buffer;
}

/** A list whose signature and rules verified against the user's identity key. */
export interface VerifiedDeviceList extends SignedDeviceList {
  readonly identitySpki: Buffer;
}

function bad(reason: string): ProtocolError {
  return new ProtocolError("malformed", `device list: ${reason}`);
}

/** A fresh device id: 8 random bytes as 16 lowercase hex characters. */
export function newDeviceId(): string {
  return randomBytes(8).toString("hex");
}

export function isDeviceId(id: unknown): id is string {
  return typeof id === "string" && DEVICE_ID_RE.test(id);
}

/** A device name people see: 1-32 characters, printable (no control or escape sequences). */
export function checkDeviceName(name: unknown): { ok: true } | { ok: false; reason: string } {
  if (typeof name !== "string" || name.length === 0) return { ok: false, reason: "a device name is needed" };
  if ([...name].length > DEVICE_NAME_MAX_CHARS) return { ok: false, reason: `a device name has at most ${DEVICE_NAME_MAX_CHARS} characters` };
  if (!isSafeText(name) || /[\r\n\t]/.test(name) || name.trim() !== name) return { ok: false, reason: "a device name must be printable text without leading or trailing spaces" };
  return { ok: true };
}

/** The rules of §4.5 that need no signature: throws ProtocolError("malformed"). */
export function checkDeviceListBody(body: DeviceListBody, identitySpki: Uint8Array): void {
  if (body === null || typeof body !== "object") throw bad("missing");
  const name = checkUsername(body.username);
  if (!name.ok) throw bad(name.reason);
  if (!Number.isSafeInteger(body.version) || body.version < 1) throw bad("the version must be a whole number from 1");
  if (!Number.isSafeInteger(body.issuedAtMs) || body.issuedAtMs < 0) throw bad("issued_at_ms must be a whole number");
  if (!Array.isArray(body.devices) || body.devices.length === 0) throw bad("it lists no device");
  if (body.devices.length > MAX_DEVICES) throw bad(TOO_MANY_DEVICES);
  const ids = new Set<string>();
  const auth = new Set<string>();
  const mls = new Set<string>();
  let primaries = 0;
  for (const d of body.devices) {
    if (!isDeviceId(d.deviceId)) throw bad("a device id must be 16 lowercase hex characters");
    if (ids.has(d.deviceId)) throw bad(`device id ${d.deviceId} is listed twice`);
    ids.add(d.deviceId);
    const n = checkDeviceName(d.name);
    if (!n.ok) throw bad(n.reason);
    if (!(d.authSpki instanceof Uint8Array) || !(d.mlsSignatureKey instanceof Uint8Array)) throw bad("a device's keys are missing");
    try {
      importSigningKey(d.authSpki);
    } catch (e) {
      throw new ProtocolError("malformed", `device list: device ${d.deviceId} has an invalid key`, { cause: e });
    }
    if (d.mlsSignatureKey.length !== MLS_SIGNATURE_KEY_BYTES) throw bad(`device ${d.deviceId}'s MLS signature key must be ${MLS_SIGNATURE_KEY_BYTES} bytes`);
    const a = Buffer.from(d.authSpki).toString("hex");
    const m = Buffer.from(d.mlsSignatureKey).toString("hex");
    if (auth.has(a) || mls.has(m)) throw bad("two devices share a key");
    auth.add(a);
    mls.add(m);
    if (!Number.isSafeInteger(d.addedAtMs) || d.addedAtMs < 0) throw bad("added_at_ms must be a whole number");
    if (d.primary) {
      primaries++;
      if (!Buffer.from(d.authSpki).equals(Buffer.from(identitySpki))) throw bad("the primary device's key is not the identity key");
    } else if (Buffer.from(d.authSpki).equals(Buffer.from(identitySpki))) {
      throw bad("only the primary device proves with the identity key");
    }
  }
  if (primaries !== 1) throw bad("exactly one device must be the primary");
}

/** The signed bytes of §4.5. Checks the body first. */
export function deviceListBytes(body: DeviceListBody, identitySpki: Uint8Array): Buffer {
  checkDeviceListBody(body, identitySpki);
  const fields: Field[] = [body.username, identitySpki, { u64: body.version }, { u64: body.issuedAtMs }, { u32: body.devices.length }];
  for (const d of body.devices) fields.push(d.deviceId, d.name, d.authSpki, d.mlsSignatureKey, { u64: d.addedAtMs }, { u32: d.primary ? 1 : 0 });
  return encodeFields(DEVICE_LIST_LABEL, fields);
}

/** Signs a device list with the identity key (the primary device only). */
export function signDeviceList(body: DeviceListBody, identityPrivate: KeyObject, identitySpki: Uint8Array): SignedDeviceList {
  if (identityPrivate?.type !== "private" || identityPrivate.asymmetricKeyType !== "ed25519") {
    throw new ProtocolError("bad-key", "a device list is signed by the Ed25519 identity key");
  }
  const signature = ed25519Sign(identityPrivate, deviceListBytes(body, identitySpki));
  if (!ed25519Verify(importSigningKey(identitySpki), deviceListBytes(body, identitySpki), signature)) {
    throw new ProtocolError("bad-key", "the identity key does not match the identity SPKI given");
  }
  return { username: body.username, version: body.version, issuedAtMs: body.issuedAtMs, devices: body.devices.map((d) => ({ ...d })), signature };
}

/**
 * Verifies a list against the user's bound identity key (§4.5): the body rules, then the
 * signature. Throws ProtocolError ("malformed" or "bad-signature"). Version pinning (no rollback)
 * is the caller's: it alone knows the highest version it saw.
 */
export function verifyDeviceList(list: SignedDeviceList, username: string, identitySpki: Uint8Array): VerifiedDeviceList {
  if (list === null || typeof list !== "object") throw bad("missing");
  if (list.username !== username) throw bad(`it names '${String(list.username)}', not '${username}'`);
  const bytes = deviceListBytes(list, identitySpki);
  const key = importSigningKey(identitySpki);
  if (!(list.signature instanceof Uint8Array) || list.signature.length !== ED25519_SIGNATURE_BYTES || !ed25519Verify(key, bytes, list.signature)) {
    throw new ProtocolError("bad-signature", `the device list of '${username}' is not signed by their identity key`);
  }
  return { ...list, signature: Buffer.from(list.signature), identitySpki: Buffer.from(identitySpki) };
}

/** The device whose MLS signature key this is, if listed. */
export function deviceBySignatureKey(list: DeviceListBody, mlsSignatureKey: Uint8Array): DeviceEntry | undefined {
  const k = Buffer.from(mlsSignatureKey);
  return list.devices.find((d) => d.mlsSignatureKey.equals(k));
}

export function primaryOf(list: DeviceListBody): DeviceEntry {
  const p = list.devices.find((d) => d.primary);
  if (p === undefined) throw bad("no primary device");
  return p;
}

export function toWireDeviceList(list: SignedDeviceList): WireDeviceList {
  return {
    username: list.username, version: list.version, issuedAtMs: list.issuedAtMs, signature: list.signature,
    devices: list.devices.map((d) => ({ deviceId: d.deviceId, name: d.name, authSpki: d.authSpki, mlsSignatureKey: d.mlsSignatureKey, addedAtMs: d.addedAtMs, primary: d.primary })),
  };
}

/** A wire list as a SignedDeviceList (own copies of the bytes); not verified. */
export function fromWireDeviceList(w: WireDeviceList): SignedDeviceList {
  return {
    username: w.username, version: w.version, issuedAtMs: w.issuedAtMs, signature: Buffer.from(w.signature),
    devices: w.devices.map((d) => ({ deviceId: d.deviceId, name: d.name, authSpki: Buffer.from(d.authSpki), mlsSignatureKey: Buffer.from(d.mlsSignatureKey), addedAtMs: d.addedAtMs, primary: d.primary })),
  };
}

// ---------------------------------------------------------------------------------------------
// A linked device's proof of possession (§9.1 with §4.5): like the identity key's proof, but
// signed by the device's own key and naming it.
// ---------------------------------------------------------------------------------------------

export interface DeviceProofInput {
  readonly relayId: Uint8Array;
  readonly nonce: Uint8Array;
  readonly username: string;
  /** The user's bound identity key (Hello.sig_spki). */
  readonly identitySpki: Uint8Array;
  /** The device's key (Hello.device_spki). */
  readonly deviceSpki: Uint8Array;
  readonly channelBinding: Uint8Array;
}

export function deviceProofBytes(p: DeviceProofInput): Buffer {
  if (p.relayId?.length !== RELAY_ID_BYTES) throw new ProtocolError("malformed", `relay id must be ${RELAY_ID_BYTES} bytes`);
  if (p.nonce?.length !== NONCE_BYTES) throw new ProtocolError("malformed", `challenge nonce must be ${NONCE_BYTES} bytes`);
  if (p.channelBinding.length !== 0 && p.channelBinding.length !== CHANNEL_BINDING_BYTES) {
    throw new ProtocolError("malformed", `channel binding must be empty (plaintext) or ${CHANNEL_BINDING_BYTES} bytes`);
  }
  const name = checkUsername(p.username);
  if (!name.ok) throw new ProtocolError("malformed", name.reason);
  return encodeFields(DEVICE_PROOF_LABEL, [p.relayId, p.nonce, p.username, p.identitySpki, p.deviceSpki, p.channelBinding]);
}

export function signDeviceProof(devicePrivate: KeyObject, p: DeviceProofInput): Buffer {
  if (devicePrivate?.type !== "private" || devicePrivate.asymmetricKeyType !== "ed25519") throw new ProtocolError("bad-key", "a device proves with an Ed25519 key");
  return ed25519Sign(devicePrivate, deviceProofBytes(p));
}

/** True when `signature` is the device key's proof for this challenge over this channel. */
export function verifyDeviceProof(p: DeviceProofInput, signature: Uint8Array): boolean {
  if (!(signature instanceof Uint8Array) || signature.length !== ED25519_SIGNATURE_BYTES) return false;
  let key: KeyObject;
  try {
    key = importSigningKey(p.deviceSpki);
  } catch {
    return false;
  }
  return ed25519Verify(key, deviceProofBytes(p), signature);
}
