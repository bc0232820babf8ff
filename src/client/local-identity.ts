// Who this client is and how it proves it (PROTOCOL.md §4.5, §9.1, §10.4). Two kinds:
// - the PRIMARY device holds `<username>_key.pem`: the identity key proves it to the relay (the
//   §9.1 proof), seals its local stores and alone signs device lists;
// - a LINKED device holds `<username>_device.pem` and `<username>_device.json` (linked-device.ts):
//   its own Ed25519 device key proves it (Hello.device_spki + the device proof of §4.5) and seals
//   its local stores; it knows only the PUBLIC halves of the user's identity keys, so it has no
//   RSA private key and cannot sign a device list.
// Protocol v2 needs nothing more. The protocol v1 parts left in the tree (inbox/outbox v1) take a
// PrivateIdentity; `privateView` gives a linked device one whose `encPrivate` throws a sentence
// when touched, and ChatClient refuses to run a linked device without v2 and drops v1 deliveries.
import { createPublicKey, type KeyObject } from "node:crypto";
import { signDeviceProof, type SignedDeviceList } from "../protocol/devices.js";
import { importPublicIdentity, signProof, type PrivateIdentity, type PublicIdentity } from "../protocol/keys.js";
import type { IdentityKey } from "../protocol/mls/index.js";
import type { LinkedDevice } from "./linked-device.js";

interface Common {
  readonly username: string;
  /** The user's public identity (identity key, encryption key, binding): the same on every device. */
  readonly user: PublicIdentity;
  /** This device's private key: what proves it and what seals its local stores (at-rest, state, MLS store). */
  readonly localKey: KeyObject;
}

export interface PrimaryIdentity extends Common {
  readonly kind: "primary";
  readonly identity: PrivateIdentity;
}

export interface LinkedIdentity extends Common {
  readonly kind: "linked";
  readonly deviceId: string;
  readonly deviceName: string;
  /** The device key's SPKI (Hello.device_spki, the list's auth_spki). */
  readonly deviceSpki: Buffer;
  readonly linkedAtMs: number;
  /** The device list the linking delivered (the floor of my own list, PROTOCOL.md §4.6); absent in older records. */
  readonly linkList?: SignedDeviceList;
}

export type LocalIdentity = PrimaryIdentity | LinkedIdentity;

export function primaryIdentity(identity: PrivateIdentity): PrimaryIdentity {
  return { kind: "primary", username: identity.username, user: identity, localKey: identity.sigPrivate, identity };
}

/** A linked device from its files (readLinkedDevice); the record's identity keys are checked again. */
export function linkedIdentity(device: LinkedDevice): LinkedIdentity {
  const r = device.record;
  const user = importPublicIdentity({ username: r.username, sigSpki: r.identitySpki, encSpki: r.encSpki, encKeySig: r.encKeySig });
  if (device.deviceKey?.type !== "private" || device.deviceKey.asymmetricKeyType !== "ed25519") throw new TypeError("the device key must be an Ed25519 private key");
  const deviceSpki = createPublicKey(device.deviceKey).export({ format: "der", type: "spki" });
  if (deviceSpki.equals(user.sigSpki)) throw new TypeError("a linked device's key must not be the identity key");
  return { kind: "linked", username: r.username, user, localKey: device.deviceKey, deviceId: r.deviceId, deviceName: r.name, deviceSpki, linkedAtMs: r.linkedAtMs, ...(r.linkList === undefined ? {} : { linkList: r.linkList }) };
}

/** A ChatClient's `identity` option: a primary's PrivateIdentity (as before devices) or a LocalIdentity. */
export function asLocalIdentity(x: PrivateIdentity | LocalIdentity): LocalIdentity {
  return "kind" in x && (x.kind === "primary" || x.kind === "linked") ? x : primaryIdentity(x as PrivateIdentity);
}

/** Hello.device_spki (§4.5): empty for the primary, the device key's SPKI for a linked device. */
export function helloDeviceSpki(me: LocalIdentity): Buffer {
  return me.kind === "linked" ? me.deviceSpki : Buffer.alloc(0);
}

/** The Proof for this challenge (§9.1; a linked device: the device proof of §4.5). */
export function proveSession(me: LocalIdentity, relayId: Uint8Array, nonce: Uint8Array, channelBinding: Uint8Array): Buffer {
  if (me.kind === "primary") return signProof(me.identity, relayId, nonce, channelBinding);
  return signDeviceProof(me.localKey, { relayId, nonce, username: me.username, identitySpki: me.user.sigSpki, deviceSpki: me.deviceSpki, channelBinding });
}

/** What the MLS key store and engine are opened with: this device's key seals them (§10.4). */
export function storeKeyOf(me: LocalIdentity): IdentityKey {
  return { username: me.username, sigPrivate: me.localKey };
}

/** MlsKeyStore.open's options: a linked device's store is vouched for by the identity key. */
export function mlsStoreOptions(me: LocalIdentity): { readonly linkedTo?: Uint8Array } {
  return me.kind === "linked" ? { linkedTo: me.user.sigSpki } : {};
}

/**
 * The PrivateIdentity the older parts take (key directory, trust decisions, v1 inbox/outbox,
 * at-rest ciphers). The primary's is itself. A linked device's has the user's public keys,
 * `sigPrivate` = the device key (what those parts seal with at rest; nothing on the v2 path
 * signs with it as the identity), and an `encPrivate` that throws: only protocol v1 opens with it.
 */
export function privateView(me: LocalIdentity): PrivateIdentity {
  if (me.kind === "primary") return me.identity;
  const u = me.user;
  const view = {
    username: u.username, sigSpki: u.sigSpki, encSpki: u.encSpki, encKeySig: u.encKeySig, sigKey: u.sigKey, encKey: u.encKey, sigFpr: u.sigFpr, encFpr: u.encFpr,
    sigPrivate: me.localKey,
  };
  Object.defineProperty(view, "encPrivate", {
    enumerable: false,
    get(): never {
      throw new Error(`this linked device of ${u.username} has no RSA private key: protocol v1 messages cannot be opened on it`);
    },
  });
  return view as unknown as PrivateIdentity;
}
