// Several devices per user for the protocol v2 engine's tests (PROTOCOL.md §4.5) over the
// in-memory Delivery Service (fake-ds.ts): a user's identity key, a primary device (its MLS
// client made by the store) and linked devices (own device key, own MLS key vouched for by the
// identity key, store opened with linkedTo + putClient, as linking leaves it), signed versioned
// device lists published through the primary, and a DeviceDirectory double that verifies and
// pins lists per viewing device, as src/client/device-directory.ts does.
import { createHash, generateKeyPairSync, type KeyObject } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach } from "vitest";
import { MlsConversations } from "../../src/client/mls/conversations.js";
import type { DsApi } from "../../src/client/mls/ds-api.js";
import { DeviceListsUnanswered, type DeviceDirectory, type DeviceLastSeen, type RefreshOptions, type ThisDevice } from "../../src/client/devices-api.js";
import { MlsKeyStore } from "../../src/client/mls-store.js";
import type { MembershipLine, SessionEvent } from "../../src/client/types.js";
import { newDeviceId, signDeviceList, verifyDeviceList, type DeviceEntry, type SignedDeviceList, type VerifiedDeviceList } from "../../src/protocol/devices.js";
import { jsonLineLogger, nullLogger } from "../../src/protocol/log.js";
import { generateMlsSignatureKey, makeCredential, mlsClientFromCredential, type MlsGroup, type PendingCommit } from "../../src/protocol/mls/index.js";
import type { Proposal } from "ts-mls";
import { MlsKind } from "../../src/gen/securechat/v1/chat.js";
import { encodeRoomCreator, ROOM_CREATOR_EXTENSION } from "../../src/protocol/mls/creator.js";
import { FakeDs } from "./fake-ds.js";
import { waitUntil } from "./wait.js";
import { TestContent } from "./mls-content-double.js";

/** A user: the identity key (on the primary) and the devices made so far. */
export interface DeviceUser {
  readonly name: string;
  readonly identity: KeyObject;
  readonly identitySpki: Buffer;
  readonly devices: Device[];
  /** The list last published (version grows by one per publish). */
  list: SignedDeviceList | undefined;
}

export interface Device {
  readonly user: DeviceUser;
  readonly entry: DeviceEntry;
  readonly store: MlsKeyStore;
  readonly directory: TestDirectory;
  readonly content: TestContent;
  readonly events: SessionEvent[];
  engine: MlsConversations;
  /** Its key (identity key for the primary) and store path, to open its state again. */
  readonly key: KeyObject;
  readonly path: string;
}

/** The DeviceDirectory double: verified lists per user, pinned by highest version, from the relay double. */
export class TestDirectory implements DeviceDirectory {
  private readonly kept = new Map<string, VerifiedDeviceList>();
  private readonly changeListeners = new Set<(u: string, l: VerifiedDeviceList, p: VerifiedDeviceList | undefined) => void>();
  private readonly refusedListeners = new Set<(u: string, reason: string) => void>();
  readonly refusals: string[] = [];

  constructor(readonly self: ThisDevice, private readonly ds: DsApi, private readonly identityOf: (username: string) => Buffer | undefined) {}

  known(username: string): VerifiedDeviceList | undefined {
    return this.kept.get(username);
  }

  /** When set, the relay does not answer fetches (this code: NOT_CONNECTED, ...), as when offline. */
  unanswered: string | undefined;

  async refresh(usernames: readonly string[], o: RefreshOptions = {}): Promise<ReadonlyMap<string, VerifiedDeviceList>> {
    // As the real directory: an unanswered fetch leaves what is kept, and rejects only when asked to.
    const r = this.unanswered !== undefined ? { ok: false as const, code: this.unanswered, detail: "not answered" } : await this.ds.fetchDeviceLists(usernames);
    if (!r.ok) {
      if (o.mustAnswer === true) throw new DeviceListsUnanswered(r.code);
      return new Map(usernames.flatMap((u) => { const k = this.kept.get(u); return k === undefined ? [] : [[u, k] as const]; }));
    }
    for (const l of r.lists) {
      const spki = this.identityOf(l.username);
      if (spki === undefined || !usernames.includes(l.username)) continue;
      let v: VerifiedDeviceList;
      try {
        v = verifyDeviceList(l, l.username, spki);
      } catch (e) {
        this.refused(l.username, (e as Error).message);
        continue;
      }
      const before = this.kept.get(l.username);
      if (before !== undefined && v.version < before.version) { this.refused(l.username, `the relay served an older device list of ${l.username} (v${v.version} < v${before.version})`); continue; }
      if (before !== undefined && v.version === before.version) continue;
      this.kept.set(l.username, v);
      for (const f of this.changeListeners) f(l.username, v, before);
    }
    return new Map(usernames.flatMap((u) => { const k = this.kept.get(u); return k === undefined ? [] : [[u, k] as const]; }));
  }

  lastSeen(): ReadonlyMap<string, DeviceLastSeen> {
    return new Map();
  }

  onChange(listener: (u: string, l: VerifiedDeviceList, p: VerifiedDeviceList | undefined) => void): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  onRefused(listener: (u: string, reason: string) => void): () => void {
    this.refusedListeners.add(listener);
    return () => this.refusedListeners.delete(listener);
  }

  private refused(u: string, reason: string): void {
    this.refusals.push(reason);
    for (const f of this.refusedListeners) f(u, reason);
  }
}

/** Everyone of one test: users by name, their devices, one relay double, one clock. */
export class DeviceWorld {
  readonly users = new Map<string, DeviceUser>();
  readonly all: Device[] = [];
  now = Date.now();

  constructor(readonly ds: FakeDs, readonly root: string) {}

  user(name: string): DeviceUser {
    let u = this.users.get(name);
    if (u === undefined) {
      const { privateKey, publicKey } = generateKeyPairSync("ed25519");
      u = { name, identity: privateKey, identitySpki: publicKey.export({ format: "der", type: "spki" }), devices: [], list: undefined };
      this.users.set(name, u);
    }
    return u;
  }

  /** A device of `name` (the first is the primary), its list entry, store and engine (not started). */
  async device(name: string, deviceName: string): Promise<Device> {
    const u = this.user(name);
    const primary = u.devices.length === 0;
    const deviceId = newDeviceId();
    let key: KeyObject;
    let store: MlsKeyStore;
    let mlsKey: Uint8Array;
    let authSpki: Buffer;
    const path = join(this.root, `${name}-${deviceId}_mls.db`);
    if (primary) {
      key = u.identity;
      store = MlsKeyStore.open(path, { username: name, sigPrivate: key });
      mlsKey = (await store.loadOrCreateClient()).signaturePublicKey;
      authSpki = u.identitySpki;
    } else {
      const kp = generateKeyPairSync("ed25519");
      key = kp.privateKey;
      authSpki = kp.publicKey.export({ format: "der", type: "spki" });
      store = MlsKeyStore.open(path, { username: name, sigPrivate: key }, { linkedTo: u.identitySpki });
      const sig = await generateMlsSignatureKey();
      const { credential } = makeCredential(name, u.identity, sig.publicKey);
      store.putClient(mlsClientFromCredential(name, credential, sig.publicKey, sig.privateKey));
      mlsKey = sig.publicKey;
    }
    const entry: DeviceEntry = { deviceId, name: deviceName, authSpki, mlsSignatureKey: Buffer.from(mlsKey), addedAtMs: this.now, primary };
    const self: ThisDevice = { username: name, deviceId, name: deviceName, primary, mlsSignatureKey: mlsKey };
    const directory = new TestDirectory(self, this.ds.api(name, deviceId), (n) => this.users.get(n)?.identitySpki);
    const content = new TestContent();
    const events: SessionEvent[] = [];
    const d: Device = { user: u, entry, store, directory, content, events, key, path, engine: undefined as unknown as MlsConversations };
    d.engine = this.engine(d);
    u.devices.push(d);
    this.all.push(d);
    return d;
  }

  engine(d: Device): MlsConversations {
    const name = d.user.name;
    return new MlsConversations({
      me: name, identity: { username: name, sigPrivate: d.key }, store: d.store, ds: this.ds.api(name, d.entry.deviceId), content: d.content,
      devices: d.directory, clock: () => this.now,
      logger: process.env["MLS_DEBUG"] ? jsonLineLogger((l) => process.stderr.write(`${name}/${d.entry.name} ${l}`), "debug") : nullLogger,
      emit: (e) => d.events.push(e),
    });
  }

  /** Signs and publishes `name`'s list of these devices (version + 1) through the relay double. */
  async publish(name: string, devices: readonly Device[]): Promise<SignedDeviceList> {
    const u = this.user(name);
    const list = signDeviceList({ username: name, version: (u.list?.version ?? 0) + 1, issuedAtMs: this.now, devices: devices.map((d) => d.entry) }, u.identity, u.identitySpki);
    const primary = u.devices.find((d) => d.entry.primary)!;
    const r = await this.ds.api(name, primary.entry.deviceId).publishDeviceList(list);
    if (!r.ok) throw new Error(r.detail);
    u.list = list;
    return list;
  }

  async start(d: Device): Promise<void> {
    await d.directory.refresh([...this.users.keys()]);
    await d.engine.start();
    this.ds.connect(d.user.name, d.engine, d.entry.deviceId);
  }

  async settle(): Promise<void> {
    for (let i = 0; i < 3; i++) for (const d of this.all) await d.engine.idle();
  }

  close(): void {
    for (const d of this.all) { d.engine.close(); d.store.close(); }
  }
}

export const linesIn = (d: Device, conv: string): MembershipLine[] =>
  d.events.flatMap((e) => e.type === "membership" && e.conversationId === conv ? [e.line] : []);
export const textsIn = (d: Device, conv: string): string[] =>
  d.events.flatMap((e) => e.type === "message" && e.message.conversationId === conv ? [`${e.message.from}: ${e.message.text}`] : []);
/** The MLS signature keys (hex) of the leaves of `conv` as `d` holds it. */
export const leafKeys = (d: Device, conv: string): string[] =>
  (d.engine.memberIdentities(conv) ?? []).map((m) => Buffer.from((m as { signatureKey: Uint8Array }).signatureKey).toString("hex")).sort();
export const keyOf = (d: Device): string => d.entry.mlsSignatureKey.toString("hex");

/** Sends a line through the device's engine; throws the refusal. */
export function sendLine(d: Device, conv: string, text: string): void {
  const r = d.engine.send(conv, text);
  if (!r.ok) throw new Error(`send failed: ${JSON.stringify(r.error)}`);
}

/** A hostile member's (or a thief's) own client: the device's engine stopped, its kept group of `conv` driven by hand. */
export async function hostileGroup(ds: FakeDs, d: Device, conv: string): Promise<MlsGroup> {
  await d.engine.idle();
  d.engine.close();
  ds.disconnect(d.user.name, d.entry.deviceId);
  const g = d.store.loadGroup(await d.store.loadOrCreateClient(), conv, {});
  if (g === undefined) throw new Error(`${d.user.name} keeps no group of ${conv}`);
  return g;
}

/** Sends a commit made by hand as `d`'s session, with the membership hint `added`. */
export async function sendHostileCommit(ds: FakeDs, d: Device, p: PendingCommit, added: string[] = []): Promise<void> {
  const r = await ds.api(d.user.name, d.entry.deviceId).sendCommit({
    commit: p.commit, groupInfo: p.groupInfo, added, removed: [],
    ...(p.welcome !== undefined ? { welcome: p.welcome } : {}), ...(p.ratchetTree !== undefined ? { ratchetTree: p.ratchetTree } : {}),
  });
  if (!r.ok) throw new Error(`the relay double refused the hostile commit: ${r.detail}`);
}

/**
 * A fresh DeviceWorld for each test of the calling file (its own temp dir and relay double),
 * closed and removed after the test: `const t = deviceWorldEachTest("sc-x-")`, then `t.w` and
 * `t.ds` inside the tests.
 */
export function deviceWorldEachTest(prefix: string): { readonly w: DeviceWorld; readonly ds: FakeDs } {
  let root = "";
  let world: DeviceWorld | undefined;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), prefix));
    world = new DeviceWorld(new FakeDs(), root);
  });
  afterEach(() => {
    world?.close();
    world = undefined;
    rmSync(root, { recursive: true, force: true });
  });
  const current = (): DeviceWorld => {
    if (world === undefined) throw new Error("deviceWorldEachTest: only inside a test");
    return world;
  };
  return { get w() { return current(); }, get ds() { return current().ds; } };
}

/**
 * A hostile relay keeps serving `viewer` the device list `before` of `primary`'s user while the
 * primary, gone offline before its self-heal runs, unlinks every device but `keep` (its new list,
 * version + 1). `viewer` asks, and is served `before`. Returns the new list.
 */
export async function unlinkWhileWithheld(w: DeviceWorld, viewer: Device, primary: Device, before: SignedDeviceList, keep: readonly Device[]): Promise<SignedDeviceList> {
  const user = primary.user.name;
  w.ds.serveList = (v: string, u: string) => (v === viewer.user.name && u === user ? before : undefined);
  await primary.engine.idle();
  primary.engine.close();
  w.ds.disconnect(user, primary.entry.deviceId);
  const after = await w.publish(user, keep);
  await viewer.directory.refresh([user]);
  return after;
}

/** A hostile client's commit of these proposals in `g` (MlsGroup.commit is private to honest code). */
export function hostileCommit(g: MlsGroup, proposals: Proposal[], withWelcome = false): Promise<PendingCommit> {
  return (g as unknown as { commit(p: Proposal[], withWelcome: boolean): Promise<PendingCommit> }).commit(proposals, withWelcome);
}

/** A line `text` sealed in `g`'s epoch by `thief`'s device, delivered to `to` in `conv` as its user's (the relay carries it). */
export async function injectLine(w: DeviceWorld, to: Device, conv: string, g: MlsGroup, thief: Device, text: string, id = "7"): Promise<void> {
  const app = new TextEncoder().encode(JSON.stringify({ id: id.padStart(32, "0"), kind: "text", text, sentAt: w.now }));
  w.ds.inject(to.user.name, conv, {
    kind: MlsKind.MLS_KIND_APPLICATION, groupId: Buffer.from(g.groupId), sender: thief.user.name, mls: Buffer.from(await g.encrypt(app)),
    ratchetTree: Buffer.alloc(0), epoch: Number(g.epoch), senderDevice: thief.entry.deviceId,
  });
}

/** alice on her laptop (primary) and desktop, bob on one device, lists published, all started; `before`: alice's list. */
export async function aliceTwoAndBob(w: DeviceWorld): Promise<{ laptop: Device; desktop: Device; bob: Device; before: SignedDeviceList }> {
  const laptop = await w.device("alice", "laptop");
  const desktop = await w.device("alice", "desktop");
  const bob = await w.device("bob", "bobpc");
  const before = await w.publish("alice", [laptop, desktop]);
  await w.publish("bob", [bob]);
  for (const d of [laptop, desktop, bob]) await w.start(d);
  return { laptop, desktop, bob, before };
}

/**
 * One device per user, each list published, all started; the first user creates `room` and the
 * others in `members` join it (all but `outside`, started and left out), until every member holds
 * every member's leaf. Returns the devices by user, in the order given.
 */
export async function oneDeviceEachInRoom(w: DeviceWorld, room: string, members: readonly string[], outside: readonly string[] = []): Promise<Device[]> {
  const devices: Device[] = [];
  for (const u of [...members, ...outside]) devices.push(await w.device(u, `${u}pc`));
  for (const d of devices) await w.publish(d.user.name, [d]);
  for (const d of devices) await w.start(d);
  const inRoom = devices.slice(0, members.length);
  for (const d of inRoom) {
    const r = await d.engine.joinRoom(room);
    if (!r.ok) throw new Error(`${d.user.name} could not join ${room}: ${JSON.stringify(r.error)}`);
  }
  await waitUntil(async () => { await w.settle(); return inRoom.every((d) => leafKeys(d, room).length === inRoom.length); }, `${inRoom.length} leaves everywhere in ${room}`, 90_000);
  await w.settle();
  return devices;
}

/**
 * A proposal a hostile member makes to name `d`'s user the creator of the room `g` is of (its
 * GroupContext's creator extension rewritten): every member refuses a commit carrying it (§7.4).
 */
export function creatorChangeProposal(g: MlsGroup, d: Device): Proposal {
  const fpr = createHash("sha256").update(d.user.identitySpki).digest();
  const state = (g as unknown as { state: { groupContext: { extensions: { extensionType: unknown; extensionData: Uint8Array }[] } } }).state;
  const extensions = state.groupContext.extensions.map((e) => e.extensionType === ROOM_CREATOR_EXTENSION ? { extensionType: e.extensionType, extensionData: encodeRoomCreator({ username: d.user.name, identityFingerprint: fpr }) } : e);
  return { proposalType: "group_context_extensions", groupContextExtensions: { extensions } } as unknown as Proposal;
}
