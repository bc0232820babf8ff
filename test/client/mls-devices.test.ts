// One leaf per device in the protocol v2 engine (src/client/mls/devices.ts, policy.ts;
// PROTOCOL.md §4.5, §7) over the in-memory Delivery Service with per-device queues
// (test/helpers/fake-ds.ts): alice with two devices and bob, in a DM and a room; a third device
// added by the self-heal after a list change; an unlinked device removed from every group in one
// pass and unable to open what follows; an EPOCH_TAKEN during a heal; /leave on one device.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { healPlan } from "../../src/client/mls/devices.js";
import { deviceRemovalAllowed, leaveCommitRank, lobbyJanitor, unlistedLeaf } from "../../src/client/mls/policy.js";
import type { MembershipChange, MlsMember } from "../../src/protocol/mls/index.js";
import { MlsKind } from "../../src/gen/securechat/v1/chat.js";
import type { MlsQueued } from "../../src/client/mls/ds-api.js";
import { membershipText } from "../../src/tui/commands/membership-text.js";
import { FakeDs } from "../helpers/fake-ds.js";
import { DeviceWorld, keyOf, leafKeys, linesIn, textsIn, type Device } from "../helpers/mls-devices.js";
import { describeClientError } from "../../src/client/errors.js";
import { waitUntil as waitFor } from "../helpers/wait.js";

/** MLS work is CPU-heavy on a shared machine: conditions get a long deadline. */
const waitUntil = <T>(fn: () => T | undefined | false | Promise<T | undefined | false>, what: string, ms = 90_000): Promise<T> => waitFor(fn, what, ms);

let root: string;
let w: DeviceWorld;
let ds: FakeDs;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "sc-mls-dev-"));
  ds = new FakeDs();
  w = new DeviceWorld(ds, root);
});
afterEach(() => {
  w.close();
  rmSync(root, { recursive: true, force: true });
});

const DM = "dm:alice:bob";

function send(d: Device, conv: string, text: string): void {
  const r = d.engine.send(conv, text);
  if (!r.ok) throw new Error(`send failed: ${JSON.stringify(r.error)}`);
}

async function reads(d: Device, conv: string, line: string): Promise<void> {
  await waitUntil(() => textsIn(d, conv).includes(line), `${d.user.name}/${d.entry.name} to read "${line}" in ${conv}`, 60_000);
}

/** alice (laptop primary + desktop linked) and bob (one device), lists published, engines started. */
async function aliceTwoAndBob(): Promise<{ laptop: Device; desktop: Device; bob: Device }> {
  const laptop = await w.device("alice", "laptop");
  const desktop = await w.device("alice", "desktop");
  const bob = await w.device("bob", "bobpc");
  await w.publish("alice", [laptop, desktop]);
  await w.publish("bob", [bob]);
  for (const d of [laptop, desktop, bob]) await w.start(d);
  return { laptop, desktop, bob };
}

describe("healPlan, leaveCommitRank, lobbyJanitor (pure, by leaf)", () => {
  const k = (n: number): Buffer => Buffer.alloc(32, n);
  const list = { username: "alice", version: 2, issuedAtMs: 0, devices: [1, 2, 3].map((n) => ({ deviceId: `${n}`.repeat(16), name: `d${n}`, authSpki: k(100 + n), mlsSignatureKey: k(n), addedAtMs: 0, primary: n === 1 })) };
  const members = [
    { username: "bob", leafIndex: 0, signatureKey: k(9) },
    { username: "alice", leafIndex: 1, signatureKey: k(4) }, // unlinked: not in the list
    { username: "alice", leafIndex: 2, signatureKey: k(2) },
    { username: "alice", leafIndex: 3, signatureKey: k(1) },
  ];

  it("the lowest LISTED leaf of mine commits, the primary's when there are leaves to remove; listed devices without a leaf are added, my unlisted leaves removed", () => {
    const at2 = healPlan(members, 2, "alice", list);
    expect(at2.add.map((d) => d.name)).toEqual(["d3"]);
    expect(at2.remove).toEqual([1]);
    // An unlisted leaf to remove: the primary (d1, leaf 3) commits (§7.6 (f): a peer served an
    // old list still takes its removal), not the lowest listed leaf.
    expect(at2.committer).toBe(false);
    expect(healPlan(members, 3, "alice", list).committer).toBe(true);
    // Nothing to remove: the lowest listed leaf commits the adds.
    const listedOnly = members.filter((m) => m.leafIndex !== 1);
    expect(healPlan(listedOnly, 2, "alice", list)).toMatchObject({ committer: true, remove: [] });
    expect(healPlan(listedOnly, 3, "alice", list).committer).toBe(false);
    // The unlinked device itself never commits (it is not in the list).
    expect(healPlan(members, 1, "alice", list)).toEqual({ committer: false, add: [], remove: [] });
  });

  it("a leave is committed by leaf order, the leaving leaf excluded (not every leaf of its user); the lobby janitor is one leaf", () => {
    expect(leaveCommitRank(members, 2, 2)).toBeUndefined();
    expect(leaveCommitRank(members, 2, 0)).toBe(0);
    expect(leaveCommitRank(members, 2, 3)).toBe(2);
    expect(lobbyJanitor(members.slice(1), () => true, 3)).toBe(1);
    expect(lobbyJanitor(members.slice(1), () => false, 3)).toBe(3);
  });

  it("policy: a leaf put in must be listed (a user without a list is one device); unlisted leaves may be removed, and my own stale ones, but no listed device by another (nor by my own other device while others are in)", () => {
    const fpr = (n: number): Buffer => Buffer.alloc(32, n);
    const m = (username: string, key: number, leafIndex = -1): MlsMember => ({ username, identitySpki: Buffer.alloc(0), identityFpr: fpr(username === "alice" ? 1 : 2), leafIndex, signatureKey: k(key) });
    const lists = (u: string) => (u === "alice" ? list : undefined);
    const change = (committer: MlsMember, added: MlsMember[], removed: MlsMember[] = [], external = false): MembershipChange => ({ committer, added, removed, left: [], external });
    expect(unlistedLeaf(change(m("bob", 9, 0), [m("alice", 3)]), lists)).toBeUndefined();
    expect(unlistedLeaf(change(m("bob", 9, 0), [m("alice", 4)]), lists)?.username).toBe("alice");
    expect(unlistedLeaf(change(m("alice", 4), [], [], true), lists)?.username).toBe("alice"); // an unlinked device joining by external commit
    expect(unlistedLeaf(change(m("bob", 9, 0), [m("carol", 7)]), lists)).toBeUndefined(); // carol has no list: one device
    const inDm = [m("bob", 9, 0), m("alice", 2, 2), m("alice", 1, 3), m("alice", 3, 4)];
    // Another LISTED device of mine, by a LINKED device of mine (d2, d3), with bob in the group:
    // refused (a stolen device the relay still shows bob as listed must not cut alice's real
    // devices out, §4.5); with nobody else in: allowed; by my primary (d1): allowed (its /leave).
    expect(deviceRemovalAllowed(change(m("alice", 2, 2), [], [m("alice", 3, 4)]), m("alice", 3, 4), lists, inDm)).toBe(false);
    expect(deviceRemovalAllowed(change(m("alice", 2, 2), [], [m("alice", 3, 4)]), m("alice", 3, 4), lists, inDm.slice(1))).toBe(true);
    expect(deviceRemovalAllowed(change(m("alice", 1, 3), [], [m("alice", 2, 2)]), m("alice", 2, 2), lists, inDm)).toBe(true);
    // A second leaf of a key that stays (my lost state's old leaf): allowed.
    const stale = m("alice", 2, 5);
    expect(deviceRemovalAllowed(change(m("alice", 2, 2), [], [stale]), stale, lists, [...inDm, stale])).toBe(true);
    // A user without a list is one device: another leaf of theirs is stale.
    expect(deviceRemovalAllowed(change(m("carol", 7, 6), [], [m("carol", 6, 7)]), m("carol", 6, 7), lists, [m("carol", 7, 6), m("carol", 6, 7), m("bob", 9, 0)])).toBe(true);
    expect(deviceRemovalAllowed(change(m("bob", 9, 0), []), m("alice", 4, 1), lists)).toBe(true); // not in alice's list
    expect(deviceRemovalAllowed(change(m("bob", 9, 0), []), m("alice", 2, 2), lists)).toBe(false); // alice's listed device, by a stranger
  });

  it("device lines read as people say them", () => {
    expect(membershipText({ kind: "device-added", by: "alice", users: ["alice"], device: "desktop", atMs: 0 }, "#ops", "bob")).toBe("alice added a device: desktop");
    // On the device added itself (brought in by my other device), not "you added a device".
    expect(membershipText({ kind: "device-added", by: "alice", users: ["alice"], device: "desktop", thisDevice: true, atMs: 0 }, "#ops", "alice")).toBe("this device (desktop) was added here: it reads what is sent from now on");
    expect(membershipText({ kind: "device-removed", by: "alice", users: ["alice"], device: "desktop", atMs: 0 }, DM, "bob")).toBe("alice removed a device: desktop");
  });
});

describe("alice on two devices, bob on one", () => {
  it("a DM and a room hold both of alice's devices; bob's messages reach both; a third device is added by the self-heal after a list change; an unlinked device is removed from every group in one pass and cannot open what follows", { timeout: 240_000 }, async () => {
    const { laptop, desktop, bob } = await aliceTwoAndBob();
    // DM: bob's first message adds a leaf per device of alice.
    send(bob, DM, "hi alice");
    await reads(laptop, DM, "bob: hi alice");
    await reads(desktop, DM, "bob: hi alice");
    expect(leafKeys(bob, DM)).toEqual([keyOf(laptop), keyOf(desktop), keyOf(bob)].sort());
    // Room: laptop creates it (its self-heal adds desktop), bob joins by external commit.
    expect((await laptop.engine.joinRoom("#ops")).ok).toBe(true);
    await waitUntil(() => leafKeys(desktop, "#ops").length === 2, "desktop added to #ops by laptop's self-heal");
    expect((await bob.engine.joinRoom("#ops")).ok).toBe(true);
    await waitUntil(() => [laptop, desktop].every((d) => leafKeys(d, "#ops").length === 3), "bob in #ops on both of alice's devices");
    expect([...bob.engine.members("#ops") ?? []].sort()).toEqual(["alice", "bob"]); // users, not leaves
    send(bob, "#ops", "standup");
    await reads(laptop, "#ops", "bob: standup");
    await reads(desktop, "#ops", "bob: standup");
    send(desktop, "#ops", "from the desktop");
    await reads(bob, "#ops", "alice: from the desktop");

    // A third device is linked: alice's primary publishes v2; each device takes the list (the
    // directory's update); the device with the lowest leaf adds it everywhere.
    const phone = await w.device("alice", "phone");
    const desktopClaims = (): number => [...ds.claimedFrom].filter(([a]) => a.includes(desktop.entry.deviceId)).reduce((n, [, c]) => n + c, 0);
    const desktopClaimedBefore = desktopClaims();
    await w.publish("alice", [laptop, desktop, phone]);
    await w.start(phone);
    await Promise.all([laptop, desktop, bob].map((d) => d.directory.refresh(["alice"])));
    await waitUntil(() => phone.engine.conversations().includes(DM) && phone.engine.conversations().includes("#ops"), "phone welcomed into the DM and #ops");
    await w.settle();
    for (const conv of [DM, "#ops"]) {
      await waitUntil(() => leafKeys(bob, conv).includes(keyOf(phone)), `bob sees phone in ${conv}`);
      expect(linesIn(bob, conv).some((l) => l.kind === "device-added" && l.device === "phone" && l.users[0] === "alice")).toBe(true);
    }
    expect(ds.epochTaken).toBe(0); // one committer per group: no race between alice's devices
    // The heal claimed the phone's KeyPackages only, never the desktop's (ClaimKeyPackages.device_ids).
    expect(desktopClaims()).toBe(desktopClaimedBefore);
    send(bob, DM, "three devices");
    for (const d of [laptop, desktop, phone]) await reads(d, DM, "bob: three devices");

    // Unlink the desktop: v3 without it; the laptop's heal removes its leaves from every group.
    const captured: MlsQueued[] = [];
    ds.intercept = (to, q) => { if (to.startsWith("alice") && q.item.kind === MlsKind.MLS_KIND_APPLICATION) captured.push(q); return q; };
    const desktopClient = await desktop.store.loadOrCreateClient();
    const epochs = { dm: ds.groupOf(DM)!.epoch, ops: ds.groupOf("#ops")!.epoch };
    await w.publish("alice", [laptop, phone]);
    await Promise.all([laptop, phone, bob].map((d) => d.directory.refresh(["alice"])));
    for (const conv of [DM, "#ops"]) await waitUntil(() => !leafKeys(bob, conv).includes(keyOf(desktop)) && !leafKeys(phone, conv).includes(keyOf(desktop)), `desktop out of ${conv}`);
    // One commit per group (one pass), each showing the device line.
    expect(ds.groupOf(DM)!.epoch).toBe(epochs.dm + 1);
    expect(ds.groupOf("#ops")!.epoch).toBe(epochs.ops + 1);
    expect(linesIn(bob, "#ops").some((l) => l.kind === "device-removed" && l.device === "desktop")).toBe(true);
    send(bob, "#ops", "after the unlink");
    await reads(laptop, "#ops", "bob: after the unlink");
    await reads(phone, "#ops", "bob: after the unlink");
    // The removed device's own state (its store as it kept it) cannot open what follows.
    const msg = await waitUntil(() => captured.find((q) => q.conversationId === "#ops"), "bob's message captured");
    const { MlsGroup } = await import("../../src/protocol/mls/index.js");
    desktop.engine.close();
    const kept = desktop.store.loadGroup(desktopClient, "#ops", {});
    expect(kept).toBeDefined();
    if (!(kept instanceof MlsGroup)) throw new Error("no kept group");
    await expect(kept.process(msg.item.mls)).rejects.toThrow();
    expect(ds.waiting("alice", desktop.entry.deviceId)).toHaveLength(0); // the relay keeps no queue for it
  });

  // An old GroupInfo (a hostile relay's, from before alice unlinked her desktop) would let the
  // unlinked desktop read what a newcomer sends next: the join is refused (§4.5, §7.6 (e)).
  it("a GroupInfo holding a device its user unlinked since: a newcomer's join is refused, and succeeds from the present one", { timeout: 240_000 }, async () => {
    const { laptop, desktop } = await aliceTwoAndBob();
    expect((await laptop.engine.joinRoom("#ops")).ok).toBe(true);
    await waitUntil(() => leafKeys(desktop, "#ops").length === 2, "desktop added to #ops by laptop's self-heal");
    await waitUntil(() => ds.groupOf("#ops")!.groupInfoEpoch === ds.groupOf("#ops")!.epoch, "the GroupInfo with the desktop published");
    const old = ds.groupOf("#ops")!.groupInfo;
    await w.publish("alice", [laptop]);
    await laptop.directory.refresh(["alice"]);
    await waitUntil(() => !leafKeys(laptop, "#ops").includes(keyOf(desktop)), "desktop out of #ops");

    const carol = await w.device("carol", "carolpc");
    await w.publish("carol", [carol]);
    await w.start(carol);
    ds.groupInfoServed.set("#ops", old);
    const r = await carol.engine.joinRoom("#ops");
    expect(r.ok).toBe(false);
    if (!r.ok) expect(describeClientError(r.error)).toBe("the relay offered a state of #ops holding a device of alice that is not in their device list (an unlinked device?); nothing was joined");
    expect(carol.engine.conversations()).not.toContain("#ops");
    ds.groupInfoServed.delete("#ops");
    expect((await carol.engine.joinRoom("#ops")).ok).toBe(true);
    send(carol, "#ops", "hello");
    await reads(laptop, "#ops", "carol: hello");
  });

  it("a device linked before it published any KeyPackage is added once it has (the heal tries again; no other trigger)", { timeout: 180_000 }, async () => {
    const { laptop, desktop, bob } = await aliceTwoAndBob();
    send(bob, DM, "hi alice");
    await reads(desktop, DM, "bob: hi alice");
    await w.settle();
    // As linking does it: the primary publishes the list naming the new device and takes it at
    // once; the new device connects (and publishes its KeyPackages) only afterwards.
    const phone = await w.device("alice", "phone");
    await w.publish("alice", [laptop, desktop, phone]);
    await Promise.all([laptop, desktop, bob].map((d) => d.directory.refresh(["alice"])));
    await w.settle();
    expect(leafKeys(bob, DM)).not.toContain(keyOf(phone)); // nothing to add it with yet
    await w.start(phone);
    await waitUntil(() => leafKeys(bob, DM).includes(keyOf(phone)), "phone added to the DM once its KeyPackages are on the relay", 30_000);
    expect(linesIn(bob, DM).some((l) => l.kind === "device-added" && l.device === "phone")).toBe(true);
    send(bob, DM, "now on three");
    await reads(phone, DM, "bob: now on three");
  });

  it("EPOCH_TAKEN while healing: the committer processes the winner and heals again", { timeout: 180_000 }, async () => {
    const { laptop, desktop, bob } = await aliceTwoAndBob();
    expect((await laptop.engine.joinRoom("#ops")).ok).toBe(true);
    await waitUntil(() => leafKeys(desktop, "#ops").length === 2, "desktop in #ops");
    expect((await bob.engine.joinRoom("#ops")).ok).toBe(true);
    await waitUntil(() => leafKeys(laptop, "#ops").length === 3, "bob in #ops");
    await w.settle();
    // The laptop does not hear of the desktop's commit before it heals: its heal commit is for a taken epoch.
    ds.disconnect("alice", laptop.entry.deviceId);
    const phone = await w.device("alice", "phone");
    await w.publish("alice", [laptop, desktop, phone]);
    await w.start(phone);
    await desktop.directory.refresh(["alice"]); // the desktop is not the committer: it only takes the list
    const carol = await w.device("carol", "carolpc");
    await w.publish("carol", [carol]);
    await w.start(carol);
    await desktop.directory.refresh(["carol"]);
    expect((await desktop.engine.invite("#ops", "carol")).ok).toBe(true);
    const taken = ds.epochTaken;
    await laptop.directory.refresh(["alice", "carol"]);
    await waitUntil(() => leafKeys(bob, "#ops").includes(keyOf(phone)), "phone added after the lost epoch");
    expect(ds.epochTaken).toBeGreaterThan(taken);
    ds.connect("alice", laptop.engine, laptop.entry.deviceId);
    await w.settle();
    for (const d of [laptop, desktop, phone, bob, carol]) await waitUntil(() => leafKeys(d, "#ops").length === 5, `${d.entry.name} sees five leaves`);
    send(carol, "#ops", "hello all");
    for (const d of [laptop, desktop, phone, bob]) await reads(d, "#ops", "carol: hello all");
  });

  it("/leave on my primary takes every device of mine out of the room; on a linked device only that device", { timeout: 180_000 }, async () => {
    const { laptop, desktop, bob } = await aliceTwoAndBob();
    expect((await bob.engine.joinRoom("#ops")).ok).toBe(true);
    expect((await laptop.engine.joinRoom("#ops")).ok).toBe(true);
    await waitUntil(() => leafKeys(bob, "#ops").length === 3, "both alice devices in #ops");
    await w.settle();
    // The linked desktop: only itself (no linked device may commit my other listed devices out,
    // §7.6 (f)); alice stays a member by her laptop, and the relay's hint keeps her.
    expect((await desktop.engine.leaveRoom("#ops")).ok).toBe(true);
    await waitUntil(() => leafKeys(bob, "#ops").length === 2, "the desktop's leaf gone for bob");
    expect(leafKeys(bob, "#ops")).toEqual([keyOf(laptop), keyOf(bob)].sort());
    expect([...bob.engine.members("#ops") ?? []].sort()).toEqual(["alice", "bob"]);
    expect(desktop.events.some((e) => e.type === "notice" && /you left #ops on this device only/.test(e.text))).toBe(true);
    send(laptop, "#ops", "still here");
    await reads(bob, "#ops", "alice: still here");
    await w.settle();
    // The primary: every device of mine (here only itself is left) out.
    expect((await laptop.engine.leaveRoom("#ops")).ok).toBe(true);
    await waitUntil(() => bob.engine.members("#ops")?.join() === "bob", "alice gone from #ops for bob");
    expect(linesIn(laptop, "#ops").some((l) => l.kind === "left")).toBe(true);
  });

  it("/leave on my primary takes my linked devices out with it", { timeout: 180_000 }, async () => {
    const { laptop, desktop, bob } = await aliceTwoAndBob();
    expect((await bob.engine.joinRoom("#ops")).ok).toBe(true);
    expect((await laptop.engine.joinRoom("#ops")).ok).toBe(true);
    await waitUntil(() => leafKeys(bob, "#ops").length === 3, "both alice devices in #ops");
    await w.settle();
    expect((await laptop.engine.leaveRoom("#ops")).ok).toBe(true);
    await waitUntil(() => bob.engine.members("#ops")?.join() === "bob", "alice gone from #ops for bob");
    await waitUntil(() => !desktop.engine.conversations().includes("#ops"), "desktop out of #ops");
  });
});
