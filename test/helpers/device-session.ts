// Several devices of one user at a real relay (PROTOCOL.md §4.5), over raw v2 sessions:
//
//   const alice = await fixtureIdentity("alice");
//   const primary = await connectV2(relay, alice);                 // the primary: as before
//   const laptop = await mlsPerson(alice);                         // the primary's MLS client
//   const desktop = await makeLinkedDevice(alice, "desktop");      // a device key + MLS client
//   const list = deviceListOf(alice, laptop, [desktop], 1);        // signed by alice's identity key
//   await publishDeviceListOk(primary, list);
//   const d = await connectDevice(relay, alice, desktop);          // Hello.device_spki + device proof
//   d.welcome.deviceId === desktop.deviceId
//
// A linked device holds its own Ed25519 device key (what it proves with) and its own MLS
// signature key, vouched for by the identity key in its credential (makeCredential), exactly as
// linking makes them (§4.6); only the public half of the identity is on it. For the relay's
// tests the identity's private key is at hand to sign lists; a real linked device never has it.
import { generateKeyPairSync, type KeyObject } from "node:crypto";
import type { DeviceSeen, Hello, Welcome } from "../../src/gen/securechat/v1/chat.js";
import {
  newDeviceId, signDeviceList, signDeviceProof, toWireDeviceList, type DeviceEntry, type SignedDeviceList,
} from "../../src/protocol/devices.js";
import type { PrivateIdentity, PublicIdentity } from "../../src/protocol/keys.js";
import { generateMlsSignatureKey, makeCredential, mlsClientFromCredential, type MlsClient } from "../../src/protocol/mls/index.js";
import type { MlsPerson } from "./mls-ds.js";
import type { RawSession, ResponseOf } from "./raw-session.js";
import type { TestRelay } from "./relay-harness.js";
import { waitUntil } from "./wait.js";

export interface LinkedDevice {
  readonly username: string;
  readonly deviceId: string;
  readonly name: string;
  /** The device key (Hello.device_spki's private half): what the device proves with. */
  readonly deviceKey: KeyObject;
  readonly deviceSpki: Buffer;
  /** The device's MLS client: its own signature key, its credential signed by the identity key. */
  readonly mls: MlsClient;
  /** An MlsPerson over `mls` (for makeKeyPackage in mls-ds.ts). */
  readonly person: MlsPerson;
}

/** A fresh Ed25519 key pair: the private key and the SPKI (DER) of the public one. */
export function ed25519Pair(): { readonly privateKey: KeyObject; readonly spki: Buffer } {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  return { privateKey, spki: publicKey.export({ type: "spki", format: "der" }) };
}

/** A device as linking makes it (§4.6): a device key, an MLS signature key and its credential. */
export async function makeLinkedDevice(id: PrivateIdentity, name = "desktop"): Promise<LinkedDevice> {
  const { privateKey, spki } = ed25519Pair();
  const sig = await generateMlsSignatureKey();
  const { credential } = makeCredential(id.username, id.sigPrivate, sig.publicKey);
  const mls = mlsClientFromCredential(id.username, credential, sig.publicKey, sig.privateKey);
  return { username: id.username, deviceId: newDeviceId(), name, deviceKey: privateKey, deviceSpki: spki, mls, person: { username: id.username, client: mls, keyPackages: new Map() } };
}

/** The primary's entry: the identity key proves it; `mls` is its MLS client (mlsPerson(id)). */
export function primaryEntry(id: PrivateIdentity, mls: Pick<MlsPerson, "client">, deviceId = "00000000000000aa", name = "laptop"): DeviceEntry {
  return { deviceId, name, authSpki: Buffer.from(id.sigSpki), mlsSignatureKey: Buffer.from(mls.client.signaturePublicKey), addedAtMs: 1, primary: true };
}

export function linkedEntry(d: LinkedDevice): DeviceEntry {
  return { deviceId: d.deviceId, name: d.name, authSpki: d.deviceSpki, mlsSignatureKey: Buffer.from(d.mls.signaturePublicKey), addedAtMs: 2, primary: false };
}

/** A list of the primary and these linked devices, version `version`, signed by the identity key. */
export function deviceListOf(id: PrivateIdentity, primary: Pick<MlsPerson, "client">, linked: readonly LinkedDevice[], version: number, primaryId?: string): SignedDeviceList {
  return signDeviceList({
    username: id.username, version, issuedAtMs: Date.now(),
    devices: [primaryEntry(id, primary, primaryId), ...linked.map(linkedEntry)],
  }, id.sigPrivate, id.sigSpki);
}

let nextRequestId = 50_000;

/** PublishDeviceList: the relay's answer (the kept list) or its RequestError. */
export async function publishDeviceList(s: RawSession, list: SignedDeviceList): Promise<{ ok: true; value: ResponseOf<"deviceListResult"> } | { ok: false; value: ResponseOf<"error"> }> {
  const requestId = nextRequestId++;
  s.write({ $case: "publishDeviceList", value: { requestId, list: toWireDeviceList(list) } });
  return answer(s, requestId, "PublishDeviceList");
}

export async function publishDeviceListOk(s: RawSession, list: SignedDeviceList): Promise<ResponseOf<"deviceListResult">> {
  const r = await publishDeviceList(s, list);
  if (!r.ok) throw new Error(`PublishDeviceList refused: ${r.value.detail}`);
  return r.value;
}

/** FetchDeviceLists: the kept lists and DeviceSeen of these users. */
export async function fetchDeviceLists(s: RawSession, usernames: readonly string[]): Promise<{ lists: SignedDeviceList[]; seen: DeviceSeen[] }> {
  const requestId = nextRequestId++;
  s.write({ $case: "fetchDeviceLists", value: { requestId, usernames: [...usernames] } });
  const r = await answer(s, requestId, "FetchDeviceLists");
  if (!r.ok) throw new Error(`FetchDeviceLists refused: ${r.value.detail}`);
  return { lists: r.value.lists.map((l) => ({ ...l, signature: Buffer.from(l.signature), devices: l.devices.map((d) => ({ ...d, authSpki: Buffer.from(d.authSpki), mlsSignatureKey: Buffer.from(d.mlsSignatureKey) })) })), seen: r.value.seen };
}

async function answer(s: RawSession, requestId: number, what: string): Promise<{ ok: true; value: ResponseOf<"deviceListResult"> } | { ok: false; value: ResponseOf<"error"> }> {
  const f = await waitUntil(() => {
    if (s.isEnded) throw new Error(`the stream ended while waiting for the answer to ${what}`);
    const i = s.inbox.findIndex((x) => (x.$case === "deviceListResult" || x.$case === "error") && x.value.requestId === requestId);
    return i < 0 ? undefined : s.inbox.splice(i, 1)[0]!;
  }, `the answer to ${what}`, 10_000, 5);
  return f.$case === "error" ? { ok: false, value: f.value } : { ok: true, value: f.value as ResponseOf<"deviceListResult"> };
}

export interface DeviceHelloOptions {
  /** Signs the proof (default: the device key). */
  readonly proofKey?: KeyObject;
  /** Hello fields on top (e.g. another device_spki). */
  readonly hello?: Partial<Hello>;
}

/**
 * Opens a session AS A LINKED DEVICE: Hello with the user's public identity keys and
 * device_spki, then the device proof (signDeviceProof) over the relay's challenge. Does not wait
 * for the Welcome: for refusals, read `s.ended`; else use connectDevice.
 */
export async function openDevice(relay: TestRelay, id: Pick<PublicIdentity, "username" | "sigSpki" | "encSpki" | "encKeySig">, device: Pick<LinkedDevice, "deviceKey" | "deviceSpki">, options: DeviceHelloOptions = {}): Promise<RawSession> {
  const s = relay.open();
  const hello: Partial<Hello> = { protocolVersion: 2, deviceSpki: device.deviceSpki, ...options.hello };
  s.hello(id, hello);
  const challenge = await s.next("challenge");
  const signature = signDeviceProof(options.proofKey ?? device.deviceKey, {
    relayId: challenge.relayId, nonce: challenge.nonce, username: id.username, identitySpki: id.sigSpki,
    deviceSpki: hello.deviceSpki ?? device.deviceSpki, channelBinding: s.channelBinding,
  });
  s.write({ $case: "proof", value: { signature } });
  return s;
}

/** A linked device's session through its Welcome. */
export async function connectDevice(relay: TestRelay, id: Pick<PublicIdentity, "username" | "sigSpki" | "encSpki" | "encKeySig">, device: Pick<LinkedDevice, "deviceKey" | "deviceSpki">, options: DeviceHelloOptions = {}): Promise<RawSession & { welcome: Welcome }> {
  const s = await openDevice(relay, id, device, options);
  const welcome = await s.next("welcome");
  return Object.assign(s, { welcome });
}

/** The queue address of a linked device (§4.5): `username/device_id`. */
export function deviceAddress(d: Pick<LinkedDevice, "username" | "deviceId">): string {
  return `${d.username}/${d.deviceId}`;
}
