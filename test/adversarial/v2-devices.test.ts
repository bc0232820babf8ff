// Hostile members and a hostile relay against one leaf per device (PROTOCOL.md §4.5, §7, §12):
// - a member adds a leaf for alice vouched by alice's identity key but NOT in her device list
//   (her unlinked device's key): refused by every member;
// - the relay serves bob an old list of alice, so he adds fewer of her devices: her devices heal;
// - a member who is not the room's creator removes one of alice's listed devices: refused.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { generateKeyPackage, type MlsGroup, type PendingCommit } from "../../src/protocol/mls/index.js";
import type { Proposal } from "ts-mls";
import { FakeDs } from "../helpers/fake-ds.js";
import { DeviceWorld, hostileGroup as hostileGroupOf, keyOf, leafKeys, linesIn, sendHostileCommit as sendHostileCommitAs, sendLine, textsIn, type Device } from "../helpers/mls-devices.js";
import { waitUntil as waitFor } from "../helpers/wait.js";

const waitUntil = <T>(fn: () => T | undefined | false | Promise<T | undefined | false>, what: string, ms = 90_000): Promise<T> => waitFor(fn, what, ms);

let root: string;
let w: DeviceWorld;
let ds: FakeDs;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "sc-mls-dev-adv-"));
  ds = new FakeDs();
  w = new DeviceWorld(ds, root);
});
afterEach(() => {
  w.close();
  rmSync(root, { recursive: true, force: true });
});

const send = sendLine;
const hostileGroup = (d: Device, conv: string): Promise<MlsGroup> => hostileGroupOf(ds, d, conv);
const sendHostileCommit = (d: Device, p: PendingCommit, added: string[] = []): Promise<void> => sendHostileCommitAs(ds, d, p, added);

/** #ops created by bob (its creator), with alice's laptop and desktop and mallory in it. */
async function room(): Promise<{ laptop: Device; desktop: Device; bob: Device; mallory: Device }> {
  const laptop = await w.device("alice", "laptop");
  const desktop = await w.device("alice", "desktop");
  const bob = await w.device("bob", "bobpc");
  const mallory = await w.device("mallory", "mpc");
  await w.publish("alice", [laptop, desktop]);
  await w.publish("bob", [bob]);
  await w.publish("mallory", [mallory]);
  for (const d of [laptop, desktop, bob, mallory]) await w.start(d);
  expect((await bob.engine.joinRoom("#ops")).ok).toBe(true);
  expect((await laptop.engine.joinRoom("#ops")).ok).toBe(true);
  await waitUntil(() => leafKeys(bob, "#ops").includes(keyOf(desktop)), "alice's desktop added by her laptop's self-heal");
  expect((await mallory.engine.joinRoom("#ops")).ok).toBe(true);
  await waitUntil(() => [laptop, desktop, bob].every((d) => leafKeys(d, "#ops").length === 4), "four leaves everywhere");
  await w.settle();
  return { laptop, desktop, bob, mallory };
}

describe("a leaf whose key is not in its user's device list", () => {
  it("a member adds alice's UNLINKED device (its key still vouched for by alice's identity key): every member refuses it", { timeout: 240_000 }, async () => {
    const { laptop, desktop, bob, mallory } = await room();
    // alice unlinks the desktop: her laptop's heal takes its leaf out.
    const desktopClient = await desktop.store.loadOrCreateClient();
    desktop.engine.close();
    ds.disconnect("alice", desktop.entry.deviceId);
    await w.publish("alice", [laptop]);
    await Promise.all([laptop, bob, mallory].map((d) => d.directory.refresh(["alice"])));
    await waitUntil(() => !leafKeys(bob, "#ops").includes(keyOf(desktop)), "desktop out of #ops");
    await w.settle();
    // mallory (a member, hostile) adds a leaf with the unlinked desktop's key and credential.
    const g = await hostileGroup(mallory, "#ops");
    const kp = await generateKeyPackage(desktopClient);
    const before = ds.groupOf("#ops")!.epoch;
    await sendHostileCommit(mallory, await g.addMembers([kp.keyPackage]), ["alice"]);
    expect(ds.groupOf("#ops")!.epoch).toBe(before + 1); // the relay ordered it (it cannot read it)
    for (const d of [laptop, bob]) {
      await waitUntil(() => linesIn(d, "#ops").some((l) => l.kind === "refused-device" && l.by === "mallory" && l.users[0] === "alice"), `${d.user.name}/${d.entry.name} refuses it`);
      expect(leafKeys(d, "#ops")).not.toContain(keyOf(desktop));
      expect(d.events.some((e) => e.type === "notice" && e.text.includes("the relay or a member added a device alice did not link"))).toBe(true);
    }
    // bob, the creator, re-creates #ops without mallory; alice's laptop follows and they talk.
    await waitUntil(() => leafKeys(laptop, "#ops").length === 2 && leafKeys(bob, "#ops").length === 2, "#ops re-created with bob and alice's laptop");
    send(bob, "#ops", "after mallory");
    await waitUntil(() => textsIn(laptop, "#ops").includes("bob: after mallory"), "the laptop reads bob in the new group");
  });

  it("the relay serves bob an OLD list of alice, so he adds only one of her devices: her devices heal, and bob accepts it once he gets her newest list", { timeout: 240_000 }, async () => {
    const laptop = await w.device("alice", "laptop");
    const desktop = await w.device("alice", "desktop");
    const bob = await w.device("bob", "bobpc");
    const v1 = await w.publish("alice", [laptop]);
    await w.publish("alice", [laptop, desktop]);
    await w.publish("bob", [bob]);
    let hostile = true;
    ds.serveList = (viewer, u) => (hostile && viewer === "bob" && u === "alice" ? v1 : undefined);
    for (const d of [laptop, desktop, bob]) await w.start(d);
    expect(bob.directory.known("alice")?.version).toBe(1);
    send(bob, "dm:alice:bob", "hi");
    await waitUntil(() => textsIn(laptop, "dm:alice:bob").includes("bob: hi"), "the laptop reads bob");
    // The desktop's KeyPackage was refused by bob: its key is not in the (old) list he holds.
    expect(bob.events.some((e) => e.type === "notice" && e.text.includes("not in alice's device list"))).toBe(true);
    hostile = false;
    await waitUntil(() => leafKeys(bob, "dm:alice:bob").includes(keyOf(desktop)), "alice's laptop heals the desktop in, and bob accepts it");
    expect(bob.directory.known("alice")?.version).toBe(2);
    send(bob, "dm:alice:bob", "both now");
    await waitUntil(() => textsIn(desktop, "dm:alice:bob").includes("bob: both now"), "the desktop reads bob");
  });
});

describe("removing another user's device", () => {
  it("a member who is not the room's creator removes one of alice's LISTED devices: every member refuses it", { timeout: 240_000 }, async () => {
    const { laptop, desktop, bob, mallory } = await room();
    const g = await hostileGroup(mallory, "#ops");
    const leaf = g.members().find((m) => m.username === "alice" && Buffer.from(m.signatureKey).toString("hex") === keyOf(desktop))!.leafIndex;
    // MlsGroup has no call for this: a hostile client makes the commit itself.
    const hostile = g as unknown as { commit(p: Proposal[], withWelcome: boolean): Promise<PendingCommit> };
    await sendHostileCommit(mallory, await hostile.commit([{ proposalType: "remove", remove: { removed: leaf } }], false), []);
    for (const d of [laptop, desktop, bob]) {
      await waitUntil(() => linesIn(d, "#ops").some((l) => l.kind === "refused" && l.by === "mallory"), `${d.user.name}/${d.entry.name} refuses it`);
      expect(linesIn(d, "#ops").some((l) => (l.kind === "removed" || l.kind === "device-removed") && l.by === "mallory")).toBe(false);
    }
    // bob (the creator) re-creates #ops without mallory; the desktop is in it again (the laptop's self-heal).
    await waitUntil(() => leafKeys(bob, "#ops").includes(keyOf(desktop)) && leafKeys(bob, "#ops").length === 3, "the desktop in the re-created #ops");
    expect(desktop.engine.conversations()).toContain("#ops");
  });
});
