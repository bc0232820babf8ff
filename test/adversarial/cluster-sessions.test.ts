// A hostile or broken client against a SERVICE of relays on one PostgreSQL (issue 14), and a
// relay that dies under its users: one device connecting to two relays at once, a device
// flapping between relays, a relay killed (no farewell) while one of its users reconnects
// elsewhere, a device unlinked on one relay while it holds a session on another, and changes
// made through one relay while another's listener was down (its events lost). Each ends with one
// session per device service-wide, presence that matches the sessions on every relay, the kept
// device list and binding served everywhere, and other users undisturbed.
import { status as GrpcStatus } from "@grpc/grpc-js";
import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { generateKeyPairSync } from "node:crypto";
import { identityFromPrivateKeys, type PrivateIdentity } from "../../src/protocol/keys.js";
import { announceUserChange } from "../../src/server/cluster-store-open.js";
import { PgRelays } from "../helpers/cluster-pg-relays.js";
import { deviceListOf, makeLinkedDevice, openDevice, connectDevice, publishDeviceListOk } from "../helpers/device-session.js";
import { fixtureIdentity, fixtureKeys } from "../helpers/identities.js";
import { mlsPerson } from "../helpers/mls-ds.js";
import { cutListener } from "../helpers/pg-bus.js";
import { freshDatabase, pgQuery, type TestDatabase } from "../helpers/pg.js";
import type { RawSession } from "../helpers/raw-session.js";
import { createAndAdd, joinFromQueue, openAll, publishKeyPackage } from "../helpers/cluster-mls.js";
import { expectNoDelivery, sendMlsAccepted, takeMls } from "../helpers/mls-queues.js";
import type { TestRelay } from "../helpers/relay-harness.js";
import { waitUntil } from "../helpers/wait.js";

let db: TestDatabase;
let alice: PrivateIdentity;
let bob: PrivateIdentity;
let carol: PrivateIdentity;
let dave: PrivateIdentity;
let relays: PgRelays | undefined;

beforeAll(async () => {
  db = await freshDatabase();
  [alice, bob, carol, dave] = await Promise.all([fixtureIdentity("alice"), fixtureIdentity("bob"), fixtureIdentity("carol"), fixtureIdentity("dave")]);
});
afterEach(async () => {
  await relays?.cleanup();
  relays = undefined;
  // Each test starts with nobody bound and no device lists (the database is the file's).
  await sql("TRUNCATE users, queue, envelopes, accepted, device_lists, device_seen, mls_key_packages CASCADE");
});
afterAll(async () => {
  await db.drop();
});

const sql = (text: string, params: unknown[] = []): Promise<pg.QueryResult> => pgQuery(db.url, text, params);

async function presenceRows(address: string): Promise<string[]> {
  return (await sql("SELECT instance_id FROM presence WHERE address = $1", [address])).rows.map((r) => r.instance_id as string);
}

/**
 * Whether `s` saw `username` go offline after it had seen them online. (A first binding may reach
 * another relay before the user's presence does: an "offline" entry then, before any online one.)
 */
function wentOffline(s: RawSession, username: string): boolean {
  const seen = s.presenceLog.filter((e) => e.username === username).map((e) => e.online);
  const first = seen.indexOf(true);
  if (first < 0) throw new Error(`${username} was never seen online`);
  return seen.slice(first).includes(false);
}

/** Relays (other than `home`) whose bus holds `address` as online elsewhere. */
function remoteViews(g: PgRelays, username: string, address: string): number {
  return g.members.filter((m) => !m.dead && m.cluster.remoteAddresses(username)?.has(address) === true).length;
}

describe("one device, several relays", () => {
  it("connecting to two relays at once: at most one session survives, and presence on every relay and in the table matches it", { timeout: 60_000 }, async () => {
    relays = await PgRelays.start(db.url, 3);
    const g = relays;
    const watcher = await g.connect(2, bob);
    for (let round = 0; round < 5; round++) {
      const [s0, s1] = await Promise.all([g.connect(0, alice), g.connect(1, alice)]);
      // Both handshakes succeeded; the relays then settle who keeps the device. Wait until what
      // the sessions and the table say agrees, then once more after a marker that went through
      // the bus behind every event the relays had sent by then.
      const agreed = async (): Promise<boolean> => {
        const live = [s0, s1].filter((s) => !s.isEnded);
        if (live.length > 1) return false;
        const ids = live.map((s) => g.members[s === s0 ? 0 : 1]!.cluster.instanceId);
        const rows = await presenceRows("alice");
        return rows.join() === ids.join();
      };
      await waitUntil(agreed, `round ${round}: at most one session, and alice's presence row names its relay`);
      await g.busBarrier();
      await waitUntil(agreed, `round ${round}: still so after the barrier`);
      const live = [s0, s1].filter((s) => !s.isEnded);
      expect(live.length).toBeLessThanOrEqual(1);
      // The watcher on relay 2 sees alice as the sessions say, and relay 2's bus agrees.
      await watcher.nextPresence("alice", live.length === 1);
      // Every relay but the survivor's holds alice as online elsewhere; with none, no relay does.
      await waitUntil(() => remoteViews(g, "alice", "alice") === (live.length === 1 ? 2 : 0), `round ${round}: every relay's view of alice`);
      for (const s of live) s.close();
      await watcher.nextPresence("alice", false);
      await waitUntil(async () => (await presenceRows("alice")).length === 0, `round ${round}: alice's presence row gone`);
    }
    expect(watcher.isEnded).toBe(false);
  });

  it("flapping between relays: each connect ends the last session, one pump delivers each message once, others are undisturbed", { timeout: 60_000 }, async () => {
    relays = await PgRelays.start(db.url, 3);
    const g = relays;
    const [pa, pc] = [await mlsPerson(alice), await mlsPerson(carol)];
    const watcher = await g.connect(2, bob);
    const sender = await g.connect(2, carol);
    let last: RawSession = await g.connect(0, alice);
    await publishKeyPackage(last, pa);
    for (let i = 1; i <= 12; i++) {
      const s = await g.connect(i % 2, alice);
      const ended = await last.status();
      expect([ended.code, ended.errorCode]).toEqual([GrpcStatus.ABORTED, "ERROR_CODE_SESSION_REPLACED"]);
      last = s;
    }
    // Exactly one session for alice in the whole service, on the relay she connected to last.
    await waitUntil(() => g.members[0]!.relay.stats().online === 1 && g.members[1]!.relay.stats().online === 0, "one alice session service-wide, on relay 0");
    await g.busBarrier();
    expect(await presenceRows("alice")).toEqual([g.members[0]!.cluster.instanceId]);
    expect(remoteViews(g, "alice", "alice")).toBe(2);
    // What carol sends her (a Welcome, then a message) arrives once, through the one pump that serves her.
    const gc = await createAndAdd(sender, pc, "dm:alice:carol", ["alice"]);
    const ga = await joinFromQueue(last, pa);
    await sendMlsAccepted(sender, await gc.encrypt(Buffer.from("once")));
    expect(await openAll(ga, await takeMls(last, 1))).toEqual(["once"]);
    await expectNoDelivery(last);
    // The other users' sessions never ended, and bob never saw alice go offline while she flapped.
    expect(watcher.isEnded || sender.isEnded).toBe(false);
    expect(wentOffline(watcher, "alice")).toBe(false);
    // She leaves: offline for everyone, on every relay (none keeps her as online elsewhere).
    const onZero = await g.connect(0, dave);
    expect(onZero.welcome.directory.find((e) => e.username === "alice")?.online).toBe(true);
    last.close();
    await watcher.nextPresence("alice", false);
    await onZero.nextPresence("alice", false);
    await waitUntil(() => remoteViews(g, "alice", "alice") === 0, "no relay holds alice as online elsewhere");
    expect(await presenceRows("alice")).toEqual([]);
  });
});

describe("a relay that dies", () => {
  it("its users go offline everywhere once it is expired; one who reconnected elsewhere meanwhile is not announced offline", { timeout: 60_000 }, async () => {
    relays = await PgRelays.start(db.url, 3);
    const g = relays;
    const watcher = await g.connect(1, bob);
    await g.connect(0, alice);
    let carolOn0 = await g.connect(0, carol);
    await watcher.nextPresence("alice", true);
    await watcher.nextPresence("carol", true);
    void carolOn0;
    await g.kill(0);
    // carol reconnects to relay 2 before relay 0 is taken for dead; alice does not come back.
    carolOn0 = await g.connect(2, carol);
    await waitUntil(async () => (await presenceRows("carol")).join() === g.members[2]!.cluster.instanceId, "carol's row is relay 2's");
    await watcher.nextPresence("alice", false, 10_000);
    await waitUntil(async () => (await presenceRows("alice")).length === 0, "alice's row expired");
    // Everyone live agrees: alice offline, carol online, and bob never saw carol go.
    await waitUntil(() => g.members[2]!.cluster.remoteAddresses("alice") === undefined, "relay 2 has alice offline");
    expect((await watcher.lookupKeys(["alice", "carol"])).map((e) => [e.username, e.online])).toEqual([["alice", false], ["carol", true]]);
    expect(wentOffline(watcher, "carol")).toBe(false);
    expect(carolOn0.isEnded).toBe(false);
  });
});

describe("device lists and bindings changed through another relay", () => {
  it("a device unlinked through relay A loses its session on relay B, and cannot come back on relay C", { timeout: 60_000 }, async () => {
    relays = await PgRelays.start(db.url, 3);
    const g = relays;
    const on = (i: number) => ({ open: () => g.open(i) }) as unknown as TestRelay;
    const primary = await g.connect(0, alice);
    const laptop = await mlsPerson(alice);
    const desktop = await makeLinkedDevice(alice, "desktop");
    await publishDeviceListOk(primary, deviceListOf(alice, laptop, [desktop], 1));
    const d = await connectDevice(on(1), alice, desktop);
    expect(d.welcome.deviceId).toBe(desktop.deviceId);
    await publishDeviceListOk(primary, deviceListOf(alice, laptop, [], 2));
    const ended = await d.status();
    expect([ended.code, ended.details]).toEqual([GrpcStatus.PERMISSION_DENIED, "this device was unlinked by alice's primary device"]);
    const again = await openDevice(on(2), alice, desktop);
    const refused = await again.status();
    expect(refused.code).toBe(GrpcStatus.PERMISSION_DENIED);
    expect(primary.isEnded).toBe(false);
  });

  it("a device unlinked through relay A while relay B's listener was down (the event lost) still loses its session on B at B's resync, and B refuses it after", { timeout: 60_000 }, async () => {
    relays = await PgRelays.start(db.url, 2);
    const g = relays;
    const primary = await g.connect(0, alice);
    const laptop = await mlsPerson(alice);
    const desktop = await makeLinkedDevice(alice, "desktop");
    await publishDeviceListOk(primary, deviceListOf(alice, laptop, [desktop], 1));
    const d = await connectDevice({ open: () => g.open(1) } as unknown as TestRelay, alice, desktop);
    // Relay 1's listening connection is cut; the unlink is published while it is not listening.
    const b = g.members[1]!;
    await cutListener(db.url, b.cluster.instanceId);
    await waitUntil(() => !b.cluster.healthy, "relay 1's bus down");
    await publishDeviceListOk(primary, deviceListOf(alice, laptop, [], 2));
    await waitUntil(() => b.logs.some((l) => l.event === "cluster.resync"), "relay 1 resynced", 10_000);
    const ended = await d.status();
    expect([ended.code, ended.details]).toEqual([GrpcStatus.PERMISSION_DENIED, "this device was unlinked by alice's primary device"]);
    const again = await openDevice({ open: () => g.open(1) } as unknown as TestRelay, alice, desktop);
    expect([(await again.status()).code, (await again.status()).errorCode]).toEqual([GrpcStatus.PERMISSION_DENIED, "ERROR_CODE_DEVICE_UNKNOWN"]);
  });

  // §8.2, found by a red-team review: `chat-relay users release --store` reached the running
  // relays, but the released key's live session on another relay went on writing under the name.
  it("a name released through the store (chat-relay users release --store): the old key's session on relay B ends at once", { timeout: 60_000 }, async () => {
    relays = await PgRelays.start(db.url, 2);
    const g = relays;
    const squatter = identityFromPrivateKeys("alice", generateKeyPairSync("ed25519").privateKey, fixtureKeys("alice")[1]!);
    const m = await g.connect(1, squatter);
    expect(g.members[0]!.store.releaseUser("alice")).toBe(true);
    expect(await announceUserChange(db.url, "alice")).toBe(true);
    const ended = await m.status();
    expect([ended.code, ended.details]).toEqual([GrpcStatus.PERMISSION_DENIED, "the name 'alice' was released by this relay's operator: this key no longer owns it"]);
    // The real alice binds the name through relay A and publishes her list.
    const primary = await g.connect(0, alice);
    await publishDeviceListOk(primary, deviceListOf(alice, await mlsPerson(alice), [], 1));
  });

  it("a name released and bound to a new key through relay A while relay B's listener was down: after B's resync, B serves the new key", { timeout: 60_000 }, async () => {
    relays = await PgRelays.start(db.url, 2);
    const g = relays;
    const eye = await g.connect(1, bob);
    const old = await g.connect(0, carol);
    old.close();
    expect(Buffer.from((await eye.lookupKeys(["carol"]))[0]!.sigSpki).equals(carol.sigSpki)).toBe(true);
    const b = g.members[1]!;
    await cutListener(db.url, b.cluster.instanceId);
    await waitUntil(() => !b.cluster.healthy, "relay 1's bus down");
    // The operator releases the name (chat-relay users release), and a new key claims it on relay 0.
    expect(g.members[0]!.store.releaseUser("carol")).toBe(true);
    const newcomer = identityFromPrivateKeys("carol", generateKeyPairSync("ed25519").privateKey, fixtureKeys("carol")[1]!);
    await g.connect(0, newcomer);
    await waitUntil(() => b.logs.some((l) => l.event === "cluster.resync"), "relay 1 resynced", 10_000);
    // (Asked at most five times a second: lookups are rate-limited.)
    let asked = 9_000;
    await waitUntil(async () => Buffer.from((await eye.lookupKeys(["carol"], asked++))[0]?.sigSpki ?? []).equals(newcomer.sigSpki), "relay 1 serves carol's new key", 10_000, 200);
  });
});
