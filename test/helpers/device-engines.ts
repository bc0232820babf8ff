// Several devices of one user, each its own MLS conversation engine over its own files, in one
// real MLS room with a peer (PROTOCOL.md §4.5, §11): a minimal relay double that fans each
// application message out to every other device with the relay's sender and sender_device (as
// the relay does per device queue), and a DeviceDirectory double holding the users' signed,
// verified device lists. Local to the content-devices tests: test/helpers/fake-ds.ts routes per
// username only (its per-device routing belongs to the MLS engine's multi-device work).
import { createPublicKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import { join } from "node:path";
import type { DeviceDirectory, DeviceLastSeen, ThisDevice } from "../../src/client/devices-api.js";
import { contentLayerOver } from "../../src/client/mls/content.js";
import { MlsConversations } from "../../src/client/mls/conversations.js";
import type { DsApi, MlsQueued } from "../../src/client/mls/ds-api.js";
import { MlsKeyStore } from "../../src/client/mls-store.js";
import { ClientStateStore } from "../../src/client/state-store.js";
import type { SessionEvent } from "../../src/client/types.js";
import { MlsDelivery, MlsKind } from "../../src/gen/securechat/v1/chat.js";
import { newDeviceId, signDeviceList, verifyDeviceList, type DeviceEntry, type VerifiedDeviceList } from "../../src/protocol/devices.js";
import { nullLogger } from "../../src/protocol/log.js";
import { createMlsClient, generateKeyPackage, MlsGroup, restoreKeyPackage, type MlsClient } from "../../src/protocol/mls/index.js";
import { readFraming } from "../../src/client/mls/framing.js";

const spkiOf = (k: KeyObject): Buffer => Buffer.from(createPublicKey(k).export({ type: "spki", format: "der" }));

export interface TestDevice {
  readonly username: string;
  readonly deviceId: string;
  readonly name: string;
  readonly client: MlsClient;
  readonly store: MlsKeyStore;
  readonly state: ClientStateStore;
  readonly engine: MlsConversations;
  readonly events: SessionEvent[];
  readonly sent: Uint8Array[];
}

/** The relay's view: who gets what (each device but the sender's), and a hook to alter a delivery (hostile relay). */
export class DeviceRelay {
  readonly devices: TestDevice[] = [];
  private seq = 0;
  intercept: ((to: TestDevice, q: MlsQueued) => MlsQueued | undefined) | undefined;

  api(self: () => TestDevice): DsApi {
    const refuse = { ok: false as const, code: "NOT_CONNECTED", detail: "not in this test" };
    return {
      publishKeyPackages: async (oneTime) => ({ ok: true, oneTimeLeft: oneTime.length, lastResortPresent: true }),
      claimKeyPackages: async (names) => ({ ok: true, entries: [], missing: [...names] }),
      publishGroupInfo: async () => refuse,
      fetchGroupInfo: async () => refuse,
      sendCommit: async () => refuse,
      fetchCommits: async () => ({ ok: true, commits: [], currentEpoch: 0, more: false }),
      sendMls: async (mls) => {
        const from = self();
        from.sent.push(mls);
        for (const to of this.devices) {
          if (to === from) continue;
          const groupId = readFraming(mls).groupId;
          const item = MlsDelivery.fromPartial({ kind: MlsKind.MLS_KIND_APPLICATION, groupId: Buffer.from(groupId), sender: from.username, senderDevice: from.deviceId, mls: Buffer.from(mls) });
          this.deliver(to, { seq: ++this.seq, conversationId: ROOM, relayTimeMs: 0, item });
        }
        return { ok: true, queuedFor: [] };
      },
    };
  }

  /** Hands a delivery to a device (through the hostile hook). */
  deliver(to: TestDevice, q: MlsQueued): void {
    const d = this.intercept === undefined ? q : this.intercept(to, q);
    if (d !== undefined) void to.engine.deliver(d);
  }

  async idle(): Promise<void> {
    for (let i = 0; i < 3; i++) for (const d of this.devices) await d.engine.idle();
  }
}

export const ROOM = "#ops";

/** Verified device lists of the test's users, as a client would keep them. */
export class TestDirectory implements DeviceDirectory {
  refreshes = 0;
  constructor(readonly self: ThisDevice, private readonly lists: Map<string, VerifiedDeviceList>, private readonly served: Map<string, VerifiedDeviceList>) {}
  known(username: string): VerifiedDeviceList | undefined { return this.lists.get(username); }
  async refresh(usernames: readonly string[]): Promise<ReadonlyMap<string, VerifiedDeviceList>> {
    this.refreshes += 1;
    for (const u of usernames) {
      const l = this.served.get(u);
      if (l !== undefined && (this.lists.get(u)?.version ?? 0) <= l.version) this.lists.set(u, l);
    }
    return new Map(this.lists);
  }
  lastSeen(): ReadonlyMap<string, DeviceLastSeen> { return new Map(); }
  onChange(): () => void { return () => {}; }
  onRefused(): () => void { return () => {}; }
}

export interface DeviceWorld {
  readonly relay: DeviceRelay;
  readonly laptop: TestDevice;
  readonly desktop: TestDevice;
  readonly bob: TestDevice;
  /** A third device of alice in the room whose key the lists do not name (never linked, or unlinked). */
  readonly stray: TestDevice;
  /** Every user's newest list as the relay serves it (tests may replace one: a refresh takes it). */
  readonly served: Map<string, VerifiedDeviceList>;
  close(): void;
}

function listOf(username: string, identity: KeyObject, devices: DeviceEntry[], version = 1): VerifiedDeviceList {
  const signed = signDeviceList({ username, version, issuedAtMs: 1, devices }, identity, spkiOf(identity));
  return verifyDeviceList(signed, username, spkiOf(identity));
}

/**
 * alice on a laptop (primary) and a desktop (linked), bob, and a stray leaf of alice (a device
 * her list does not name), all in #ops (made in-process: the laptop creates it and adds the
 * others), each device's engine started over its own files in `root`.
 */
export async function deviceWorld(root: string, o: { withoutDirectory?: readonly ("laptop" | "desktop" | "stray" | "bob")[] } = {}): Promise<DeviceWorld> {
  const aliceKey = generateKeyPairSync("ed25519").privateKey;
  const bobKey = generateKeyPairSync("ed25519").privateKey;
  const desktopKey = generateKeyPairSync("ed25519").privateKey;
  const strayKey = generateKeyPairSync("ed25519").privateKey;
  const relay = new DeviceRelay();
  const served = new Map<string, VerifiedDeviceList>();
  type Key = "laptop" | "desktop" | "stray" | "bob";
  // Each device's store: a primary's makes its MLS client from the identity key; a linked one
  // takes the client its linking made (vouched for by the identity key).
  const storeOf = async (key: Key, username: string, storeKey: KeyObject, identity: KeyObject): Promise<{ store: MlsKeyStore; client: MlsClient }> => {
    const primary = storeKey === identity;
    const store = MlsKeyStore.open(join(root, `${key}_mls.db`), { username, sigPrivate: storeKey }, primary ? {} : { linkedTo: spkiOf(identity) });
    if (!primary) store.putClient(await createMlsClient({ username, sigPrivate: identity }));
    return { store, client: await store.loadOrCreateClient() };
  };
  const made = {
    laptop: await storeOf("laptop", "alice", aliceKey, aliceKey),
    desktop: await storeOf("desktop", "alice", desktopKey, aliceKey),
    stray: await storeOf("stray", "alice", strayKey, aliceKey),
    bob: await storeOf("bob", "bob", bobKey, bobKey),
  };
  const ids = { laptop: newDeviceId(), desktop: newDeviceId(), stray: newDeviceId(), bob: newDeviceId() };
  const entry = (id: string, name: string, auth: KeyObject, c: MlsClient, primary: boolean): DeviceEntry =>
    ({ deviceId: id, name, authSpki: spkiOf(auth), mlsSignatureKey: Buffer.from(c.signaturePublicKey), addedAtMs: 1, primary });
  served.set("alice", listOf("alice", aliceKey, [entry(ids.laptop, "laptop", aliceKey, made.laptop.client, true), entry(ids.desktop, "desktop", desktopKey, made.desktop.client, false)]));
  served.set("bob", listOf("bob", bobKey, [entry(ids.bob, "bob-pc", bobKey, made.bob.client, true)]));

  // The room, made in-process: the laptop creates it and adds the others in one commit.
  const creator = await MlsGroup.create(made.laptop.client, ROOM);
  const others: Key[] = ["desktop", "stray", "bob"];
  const kps: { kp: Awaited<ReturnType<typeof generateKeyPackage>>; stored: Awaited<ReturnType<typeof restoreKeyPackage>> }[] = [];
  for (const k of others) {
    const kp = await generateKeyPackage(made[k].client);
    kps.push({ kp, stored: await restoreKeyPackage(made[k].client, kp.stored) });
  }
  const add = await creator.addMembers(kps.map((k) => k.kp.keyPackage));
  creator.confirmCommit();
  made.laptop.store.saveGroup(creator);
  for (let i = 0; i < others.length; i++) {
    const k = others[i]!;
    made[k].store.saveGroup((await MlsGroup.joinFromWelcome(made[k].client, add.welcome!, add.ratchetTree!, () => kps[i]!.stored)).group);
  }

  const make = (key: Key, username: string, name: string, storeKey: KeyObject): TestDevice => {
    const { store, client } = made[key];
    const state = ClientStateStore.open(":memory:");
    const events: SessionEvent[] = [];
    const self: ThisDevice = { username, deviceId: ids[key], name, primary: key === "bob" || key === "laptop", mlsSignatureKey: client.signaturePublicKey };
    const holder: { d?: TestDevice } = {};
    const engine = new MlsConversations({
      me: username, identity: { username, sigPrivate: storeKey }, store, ds: relay.api(() => holder.d!), content: contentLayerOver(state, username),
      clock: Date.now, logger: nullLogger, emit: (e) => events.push(e),
      ...(o.withoutDirectory?.includes(key) === true ? {} : { devices: new TestDirectory(self, new Map(served), served) }),
    });
    const d: TestDevice = { username, deviceId: ids[key], name, client, store, state, engine, events, sent: [] };
    holder.d = d;
    return d;
  };
  const laptop = make("laptop", "alice", "laptop", aliceKey);
  const desktop = make("desktop", "alice", "desktop", desktopKey);
  const stray = make("stray", "alice", "stray", strayKey);
  const bob = make("bob", "bob", "bob-pc", bobKey);
  relay.devices.push(laptop, desktop, stray, bob);
  for (const d of relay.devices) await d.engine.start();
  return { relay, laptop, desktop, bob, stray, served, close: () => { for (const d of relay.devices) { d.engine.close(); d.store.close(); d.state.close(); } } };
}
