// Several devices per user at a real relay (PROTOCOL.md §4.5, §8.3): alice's primary (her
// identity key) and a linked device (its own device key and MLS key, listed in alice's signed
// device list), and bob. Group traffic reaches every device of every member but the sending one
// (so the sender's other device too), each device has its own durable queue (across a relay
// restart), a new session replaces only the same device's, presence flips on the first and last
// device, KeyPackages are claimed one per device, and the relay reports each device's last seen.
//
// The MLS groups here are real (ts-mls through src/protocol/mls), made by alice's primary and
// bob. The linked device is not a leaf of them (the multi-leaf engine is the client's, branch
// mls-devices): the relay routes by its membership hint and the framing only, so what this file
// checks is that the device gets exactly the bytes, in order, with the right sender device.
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { join } from "node:path";
import { ErrorCode, MlsKind } from "../../src/gen/securechat/v1/chat.js";
import type { RelayLimits } from "../../src/server/limits.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { MlsGroup } from "../../src/protocol/mls/index.js";
import { openStore } from "../../src/server/store.js";
import {
  connectDevice, deviceAddress, deviceListOf, fetchDeviceLists, makeLinkedDevice, publishDeviceListOk, type LinkedDevice,
} from "../helpers/device-session.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { lookupOf, makeKeyPackage, mlsPerson, must, sendCommit, type MlsPerson } from "../helpers/mls-ds.js";
import { connectV2, expectNoDelivery, queuedRows, sendMlsAccepted, takeMls, waitForEmptyQueue } from "../helpers/mls-queues.js";
import { liveGroup } from "../helpers/mls-raw-groups.js";
import type { RawSession } from "../helpers/raw-session.js";
import { TestRelay } from "../helpers/relay-harness.js";
import { waitUntil } from "../helpers/wait.js";

const PRIMARY_ID = "00000000000000aa";

let alice: PrivateIdentity;
let bob: PrivateIdentity;
let relay: TestRelay;

beforeAll(async () => {
  [alice, bob] = await Promise.all([fixtureIdentity("alice"), fixtureIdentity("bob")]);
});

afterEach(async () => {
  await relay?.cleanup();
});

interface World {
  pa: MlsPerson;
  desktop: LinkedDevice;
  a1: RawSession;
  a2: RawSession & { welcome: { deviceId: string; deviceListVersion: number; queued: number } };
  b: RawSession;
}

/** alice's primary publishes v1 (itself and `desktop`); the desktop and bob connect. */
async function world(limits?: Partial<RelayLimits>): Promise<World> {
  relay = await TestRelay.start(limits === undefined ? undefined : { limits });
  const pa = await mlsPerson(alice);
  const desktop = await makeLinkedDevice(alice, "desktop");
  const a1 = await connectV2(relay, alice);
  expect(a1.welcome).toMatchObject({ deviceId: "", deviceListVersion: 0 });
  const kept = await publishDeviceListOk(a1, deviceListOf(alice, pa, [desktop], 1, PRIMARY_ID));
  expect(kept.lists.map((l) => [l.username, l.version, l.devices.length])).toEqual([["alice", 1, 2]]);
  const a2 = await connectDevice(relay, alice, desktop);
  expect(a2.welcome).toMatchObject({ username: "alice", deviceId: desktop.deviceId, deviceListVersion: 1, queued: 0 });
  const b = await connectV2(relay, bob);
  return { pa, desktop, a1, a2, b };
}

describe("several devices of one user at the relay", () => {
  it("a group is capped in devices too (max_group_devices): an add that passes it is refused with a sentence, and the group goes on", async () => {
    const { pa, desktop, a1, a2, b } = await world({ maxGroupDevices: 2 });
    const pb = await mlsPerson(bob);
    await must(a1, { $case: "publishKeyPackages", value: { requestId: 0, oneTime: [await makeKeyPackage(pa)], lastResort: Buffer.alloc(0) } }, "keyPackageStatus");
    await must(a2, { $case: "publishKeyPackages", value: { requestId: 0, oneTime: [await makeKeyPackage(desktop.person)], lastResort: Buffer.alloc(0) } }, "keyPackageStatus");
    const g = await MlsGroup.create(pb.client, "#plans");
    await must(b, { $case: "publishGroupInfo", value: { requestId: 0, groupInfo: Buffer.from(await g.groupInfo()) } }, "groupInfoResult");
    const kps = await must(b, { $case: "claimKeyPackages", value: { requestId: 0, usernames: ["alice"], deviceIds: [] } }, "keyPackageList");
    expect(kps.entries).toHaveLength(2);
    // bob + alice's two devices: 3 leaves, over the cap of 2 (users: 2, under max_recipients).
    const add = await g.addMembers(kps.entries.map((e) => e.keyPackage), { expectUsernames: ["alice", "alice"] });
    expect(await sendCommit(b, add.commit, undefined, { added: ["alice"], welcome: add.welcome, ratchetTree: add.ratchetTree })).toMatchObject({
      accepted: false, code: ErrorCode.ERROR_CODE_TOO_MANY_RECIPIENTS, detail: "#plans would have 3 devices (of 2 members); this relay allows at most 2 in one group",
    });
    g.discardCommit();
    expect((await sendCommit(b, (await g.selfUpdate()).commit)).accepted).toBe(true);
  });

  it("group traffic reaches both of alice's devices, and what one device sends reaches her other one, with its sender device", async () => {
    const { desktop, a1, a2, b } = await world();
    const g = await liveGroup(relay, a1, [alice, bob], "dm:alice:bob", { bob: b });
    // The add commit went to every device of the members before it but the sending one: the desktop.
    const [commit] = await takeMls(a2, 1);
    expect([commit!.mls.kind, commit!.mls.sender, commit!.mls.senderDevice]).toEqual([MlsKind.MLS_KIND_COMMIT, "alice", PRIMARY_ID]);

    // bob -> both of alice's devices, the same bytes.
    const fromBob = await g.say("bob", "hi both");
    expect((await sendMlsAccepted(b, fromBob)).queuedFor).toEqual([]);
    const [x1] = await takeMls(a1, 1);
    const [x2] = await takeMls(a2, 1);
    for (const x of [x1!, x2!]) {
      expect([x.mls.kind, x.mls.sender, x.mls.senderDevice]).toEqual([MlsKind.MLS_KIND_APPLICATION, "bob", ""]);
      expect(Buffer.from(x.mls.mls).equals(Buffer.from(fromBob))).toBe(true);
    }
    expect(await g.read("alice", x1!.mls.mls)).toEqual({ from: "bob", text: "hi both" });

    // alice's primary -> bob and her desktop; not back to the primary.
    const fromLaptop = await g.say("alice", "from the laptop");
    await sendMlsAccepted(a1, fromLaptop);
    const [y2] = await takeMls(a2, 1);
    const [yb] = await takeMls(b, 1);
    expect([y2!.mls.sender, y2!.mls.senderDevice, yb!.mls.senderDevice]).toEqual(["alice", PRIMARY_ID, PRIMARY_ID]);
    expect(Buffer.from(y2!.mls.mls).equals(Buffer.from(fromLaptop))).toBe(true);
    expect(await g.read("bob", yb!.mls.mls)).toEqual({ from: "alice", text: "from the laptop" });
    await expectNoDelivery(a1);

    // The desktop sends (bytes of alice's group state: the relay routes by the hint) -> the
    // primary and bob, marked as the desktop's; never back to the desktop.
    const fromDesktop = await g.say("alice", "from the desktop");
    expect((await sendMlsAccepted(a2, fromDesktop)).queuedFor).toEqual([]);
    const [z1] = await takeMls(a1, 1);
    const [zb] = await takeMls(b, 1);
    expect([z1!.mls.sender, z1!.mls.senderDevice, zb!.mls.senderDevice]).toEqual(["alice", desktop.deviceId, desktop.deviceId]);
    expect(Buffer.from(z1!.mls.mls).equals(Buffer.from(fromDesktop))).toBe(true);
    expect(await g.read("bob", zb!.mls.mls)).toEqual({ from: "alice", text: "from the desktop" });
    await expectNoDelivery(a2);
  });

  it("each device has its own queue, and it survives a relay restart", async () => {
    const { desktop, a1, a2, b } = await world();
    const g = await liveGroup(relay, a1, [alice, bob], "#ops", { bob: b });
    await takeMls(a2, 1); // the add commit
    await waitForEmptyQueue(relay, deviceAddress(desktop));
    await relay.disconnect(a2, "alice");

    const sent = [await g.say("bob", "one"), await g.say("bob", "two")];
    for (const m of sent) expect((await sendMlsAccepted(b, m)).queuedFor).toEqual([]); // alice is online (her primary)
    // The primary reads them live; the desktop's queue keeps them.
    expect((await takeMls(a1, 2)).map((x) => Buffer.from(x.mls.mls).equals(Buffer.from(sent[0]!)) || Buffer.from(x.mls.mls).equals(Buffer.from(sent[1]!)))).toEqual([true, true]);
    await waitForEmptyQueue(relay, "alice");
    expect(queuedRows(relay, deviceAddress(desktop))).toBe(2);

    await relay.restart();
    const d = await connectDevice(relay, alice, desktop);
    expect(d.welcome).toMatchObject({ deviceId: desktop.deviceId, deviceListVersion: 1, queued: 2 });
    const got = await takeMls(d, 2);
    expect(got.map((x) => Buffer.from(x.mls.mls))).toEqual(sent.map((m) => Buffer.from(m)));
    await waitForEmptyQueue(relay, deviceAddress(desktop));
    const p = await connectV2(relay, alice);
    expect(p.welcome).toMatchObject({ deviceId: PRIMARY_ID, deviceListVersion: 1, queued: 0 });
    await expectNoDelivery(p);
  });

  it("a new session replaces only the same device's session; the other device's stays", async () => {
    const { desktop, a1, a2 } = await world();
    const again = await connectDevice(relay, alice, desktop);
    const ended = await a2.ended;
    expect(ended.errorCode).toBe("ERROR_CODE_SESSION_REPLACED");
    await a1.barrier(); // the primary's session is untouched
    const p2 = await connectV2(relay, alice);
    expect((await a1.ended).errorCode).toBe("ERROR_CODE_SESSION_REPLACED");
    await again.barrier(); // the desktop's newer session is untouched
    await p2.barrier();
  });

  it("alice is online while any of her devices is: presence flips on the first and the last device only", async () => {
    relay = await TestRelay.start();
    const pa = await mlsPerson(alice);
    const desktop = await makeLinkedDevice(alice);
    const b = await connectV2(relay, bob);
    const a1 = await connectV2(relay, alice);
    await b.nextPresence("alice", true);
    await publishDeviceListOk(a1, deviceListOf(alice, pa, [desktop], 1, PRIMARY_ID));
    // Everyone learns the new list version from the directory.
    await waitUntil(() => b.presence.get("alice")?.deviceListVersion === 1 || undefined, "bob sees alice's list version 1");
    const a2 = await connectDevice(relay, alice, desktop);
    await relay.disconnect(a1, "alice");
    // The primary left, the desktop stays: the next directory entry about alice (a new list
    // version, published by the desktop) still says online, and no offline entry came before.
    await publishDeviceListOk(a2, deviceListOf(alice, pa, [desktop], 2, PRIMARY_ID));
    await waitUntil(() => b.presence.get("alice")?.deviceListVersion === 2 || undefined, "bob sees alice's list version 2");
    expect(b.presence.get("alice")?.online).toBe(true);
    expect(b.sawPresence("alice", false)).toBe(false);
    await relay.disconnect(a2, "alice");
    await b.nextPresence("alice", false);
  });

  it("max_sessions counts sessions: a second device takes a slot", async () => {
    relay = await TestRelay.start({ limits: { maxSessions: 2 } });
    const pa = await mlsPerson(alice);
    const desktop = await makeLinkedDevice(alice);
    const a1 = await connectV2(relay, alice);
    await publishDeviceListOk(a1, deviceListOf(alice, pa, [desktop], 1, PRIMARY_ID));
    const a2 = await connectDevice(relay, alice, desktop);
    const b = relay.open();
    await b.handshake(bob, undefined, { protocolVersion: 2 }).catch(() => undefined);
    expect((await b.ended).errorCode).toBe("ERROR_CODE_TOO_MANY_SESSIONS");
    // Replacing a device's own session takes no new slot.
    await connectDevice(relay, alice, desktop);
    expect((await a2.ended).errorCode).toBe("ERROR_CODE_SESSION_REPLACED");
  });

  it("claims: one KeyPackage per device (one-time first, then each device's last resort); a Welcome reaches every device of the added user", async () => {
    const { pa, desktop, a1, a2, b } = await world();
    const pb = await mlsPerson(bob);
    await must(a1, { $case: "publishKeyPackages", value: { requestId: 0, oneTime: [await makeKeyPackage(pa)], lastResort: Buffer.alloc(0) } }, "keyPackageStatus");
    const st = await must(a2, { $case: "publishKeyPackages", value: { requestId: 0, oneTime: [await makeKeyPackage(desktop.person)], lastResort: await makeKeyPackage(desktop.person, true) } }, "keyPackageStatus");
    // Per device: the desktop's own counts, not alice's.
    expect(st).toMatchObject({ oneTimeLeft: 1, lastResortPresent: true });

    // A claim naming devices takes only theirs (a device healing its own leaves, §4.5): the
    // primary's one-time package stays for the claim below.
    const onlyDesktop = await must(b, { $case: "claimKeyPackages", value: { requestId: 0, usernames: ["alice"], deviceIds: [desktop.deviceId] } }, "keyPackageList");
    expect(onlyDesktop.entries.map((e) => [e.deviceId, e.lastResort])).toEqual([[desktop.deviceId, false]]);
    await must(a2, { $case: "publishKeyPackages", value: { requestId: 0, oneTime: [await makeKeyPackage(desktop.person)], lastResort: Buffer.alloc(0) } }, "keyPackageStatus");
    const first = await must(b, { $case: "claimKeyPackages", value: { requestId: 0, usernames: ["alice"], deviceIds: [] } }, "keyPackageList");
    expect(first.missing).toEqual([]);
    expect(first.entries.map((e) => [e.username, e.deviceId, e.lastResort]).sort()).toEqual([["alice", PRIMARY_ID, false], ["alice", desktop.deviceId, false]].sort());
    // The primary has none left; the desktop its last resort: alice is not missing.
    const second = await must(b, { $case: "claimKeyPackages", value: { requestId: 0, usernames: ["alice"], deviceIds: [] } }, "keyPackageList");
    expect(second.entries.map((e) => [e.deviceId, e.lastResort])).toEqual([[desktop.deviceId, true]]);
    expect(second.missing).toEqual([]);
    // alice's own devices may claim each other's (to add them to her groups), never their own.
    const own = await must(a1, { $case: "claimKeyPackages", value: { requestId: 0, usernames: ["alice"], deviceIds: [] } }, "keyPackageList");
    expect(own.entries.map((e) => e.deviceId)).toEqual([desktop.deviceId]);
    const ownDesktop = await must(a2, { $case: "claimKeyPackages", value: { requestId: 0, usernames: ["alice"], deviceIds: [] } }, "keyPackageList");
    expect(ownDesktop).toMatchObject({ entries: [], missing: ["alice"] });

    // bob makes a room and adds alice (her primary's KeyPackage): the Welcome is queued for both
    // of her devices; the primary joins with it.
    const g = await MlsGroup.create(pb.client, "#plans");
    await must(b, { $case: "publishGroupInfo", value: { requestId: 0, groupInfo: Buffer.from(await g.groupInfo()) } }, "groupInfoResult");
    const primaryKp = first.entries.find((e) => e.deviceId === PRIMARY_ID)!;
    const add = await g.addMembers([primaryKp.keyPackage], { expectUsernames: ["alice"] });
    expect(await sendCommit(b, add.commit, undefined, { added: ["alice"], welcome: add.welcome, ratchetTree: add.ratchetTree })).toMatchObject({ accepted: true });
    const [w1] = await takeMls(a1, 1);
    const [w2] = await takeMls(a2, 1);
    expect([w1!.mls.kind, w2!.mls.kind]).toEqual([MlsKind.MLS_KIND_WELCOME, MlsKind.MLS_KIND_WELCOME]);
    expect(Buffer.from(w2!.mls.mls).equals(Buffer.from(w1!.mls.mls))).toBe(true);
    const joined = await MlsGroup.joinFromWelcome(pa.client, w1!.mls.mls, w1!.mls.ratchetTree, lookupOf(pa));
    expect(joined.group.conversation.id).toBe("#plans");
  });

  it("FetchDeviceLists: the kept lists (unknown names and users without a list left out) and each device's last seen", async () => {
    const { desktop, a2, b } = await world();
    const t0 = Date.now();
    let r = await fetchDeviceLists(b, ["alice", "bob", "nobody"]);
    expect(r.lists.map((l) => l.username)).toEqual(["alice"]);
    expect(r.seen.map((s) => [s.deviceId, s.online])).toEqual([[PRIMARY_ID, true], [desktop.deviceId, true]]);
    await relay.disconnect(a2, "alice");
    const t1 = Date.now();
    r = await fetchDeviceLists(b, ["alice"]);
    const seen = r.seen.find((s) => s.deviceId === desktop.deviceId)!;
    expect(seen.online).toBe(false);
    expect(seen.lastSeenMs).toBeGreaterThanOrEqual(t0 - 5000);
    expect(seen.lastSeenMs).toBeLessThanOrEqual(t1);
    // Written to the database (cheaply, in a batch): still known after a restart.
    await relay.restart();
    const b2 = await connectV2(relay, bob);
    const after = (await fetchDeviceLists(b2, ["alice"])).seen.find((s) => s.deviceId === desktop.deviceId)!;
    expect(after).toMatchObject({ online: false, lastSeenMs: seen.lastSeenMs });
    // Too many names: one sentence.
    b2.write({ $case: "fetchDeviceLists", value: { requestId: 9, usernames: Array.from({ length: 501 }, (_, i) => `u${i}`) } });
    const err = await b2.next("error", (e) => e.requestId === 9);
    expect(err.code).toBe(ErrorCode.ERROR_CODE_BAD_FRAME);
  });

  it("the lobby goes to the devices online only (each device its own audience)", async () => {
    relay = await TestRelay.start({ limits: { lobbyGraceMs: 0 } });
    const pa = await mlsPerson(alice);
    const desktop = await makeLinkedDevice(alice);
    const a1 = await connectV2(relay, alice);
    await publishDeviceListOk(a1, deviceListOf(alice, pa, [desktop], 1, PRIMARY_ID));
    const b = await connectV2(relay, bob);
    const g = await liveGroup(relay, b, [bob, alice], "lobby", { alice: a1 });
    // The desktop was never online: the lobby's add commit and messages are not kept for it.
    await sendMlsAccepted(b, await g.say("bob", "hello lobby"));
    const [m] = await takeMls(a1, 1);
    expect(m!.conversationId).toBe("lobby");
    expect(queuedRows(relay, `alice/${desktop.deviceId}`)).toBe(0);
    // Online, it gets the next one.
    const a2 = await connectDevice(relay, alice, desktop);
    await sendMlsAccepted(b, await g.say("bob", "again"));
    const [m2] = await takeMls(a2, 1);
    expect([m2!.conversationId, m2!.mls.sender]).toEqual(["lobby", "bob"]);
    await takeMls(a1, 1);
  });

  it("an operator's release of the name drops its device list and its devices' queues with the rest", async () => {
    const { desktop, a1, a2, b } = await world();
    const g = await liveGroup(relay, a1, [alice, bob], "#ops", { bob: b });
    await takeMls(a2, 1);
    await waitForEmptyQueue(relay, deviceAddress(desktop));
    await relay.disconnect(a2, "alice");
    await sendMlsAccepted(b, await g.say("bob", "for the desktop"));
    await takeMls(a1, 1);
    expect(queuedRows(relay, deviceAddress(desktop))).toBe(1);
    const dataDir = relay.dataDir;
    await relay.stop();
    const store = openStore(join(dataDir, "relay.db"));
    try {
      expect(store.releaseUser("alice")).toBe(true);
      expect(store.devices.list("alice")).toBeUndefined();
    } finally {
      store.close();
    }
    expect(queuedRows(relay, deviceAddress(desktop))).toBe(0);
  });

  it("a database from before devices opens without loss: KeyPackages and queues stay the primary's", async () => {
    relay = await TestRelay.start();
    const dataDir = relay.dataDir;
    const a = await connectV2(relay, alice);
    const pa = await mlsPerson(alice);
    await must(a, { $case: "publishKeyPackages", value: { requestId: 0, oneTime: [await makeKeyPackage(pa)], lastResort: await makeKeyPackage(pa, true) } }, "keyPackageStatus");
    await relay.stop();
    // Make it the schema of before devices: no address column, the last-resort index per user,
    // no device tables.
    const { DatabaseSync } = await import("node:sqlite");
    const db = new DatabaseSync(join(dataDir, "relay.db"));
    db.exec(`DROP INDEX mls_last_resort_per_address; DROP INDEX mls_key_packages_by_address;
      ALTER TABLE mls_key_packages DROP COLUMN address;
      CREATE UNIQUE INDEX mls_last_resort_per_user ON mls_key_packages (username) WHERE last_resort = 1;
      DROP TABLE device_lists; DROP TABLE device_seen;`);
    expect((db.prepare("SELECT COUNT(*) AS n FROM mls_key_packages").get() as { n: number }).n).toBe(2);
    db.close();

    const store = openStore(join(dataDir, "relay.db"));
    try {
      expect(store.mls.keyPackageCounts("alice")).toEqual({ oneTime: 1, lastResort: true });
      expect(store.devices.list("alice")).toBeUndefined();
    } finally {
      store.close();
    }
    await relay.restart();
    const b = await connectV2(relay, bob);
    const c = await must(b, { $case: "claimKeyPackages", value: { requestId: 0, usernames: ["alice"], deviceIds: [] } }, "keyPackageList");
    expect(c.entries.map((e) => [e.username, e.deviceId, e.lastResort])).toEqual([["alice", "", false]]);
  });
});
