// Red team of the device features (PROTOCOL.md §4.5, §7.6, §12): attacks the earlier adversarial
// files did not try. Each test names its attacker: a hostile relay, a hostile peer, a stolen or
// unlinked device of mine, an anonymous stranger.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Proposal } from "ts-mls";
import { MlsKind } from "../../src/gen/securechat/v1/chat.js";
import { generateKeyPackage, type MlsGroup, type PendingCommit } from "../../src/protocol/mls/index.js";
import { FakeDs } from "../helpers/fake-ds.js";
import { DeviceWorld, hostileGroup as hostileGroupOf, keyOf, leafKeys, linesIn, sendHostileCommit as sendHostileCommitAs, sendLine, textsIn, type Device } from "../helpers/mls-devices.js";
import { waitUntil as waitFor } from "../helpers/wait.js";

const waitUntil = <T>(fn: () => T | undefined | false | Promise<T | undefined | false>, what: string, ms = 90_000): Promise<T> => waitFor(fn, what, ms);

let root: string;
let w: DeviceWorld;
let ds: FakeDs;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "sc-dev-redteam-"));
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

describe("a stolen device, unlinked, with a relay that still lets it in", () => {
  it("commits the removal of my LISTED devices from a DM (to stay the only 'alice' bob writes to): bob refuses it and keeps alice's listed laptop in the DM", { timeout: 240_000 }, async () => {
    const laptop = await w.device("alice", "laptop");
    const desktop = await w.device("alice", "desktop");
    const bob = await w.device("bob", "bobpc");
    await w.publish("alice", [laptop, desktop]);
    await w.publish("bob", [bob]);
    for (const d of [laptop, desktop, bob]) await w.start(d);
    const dm = "dm:alice:bob";
    send(bob, dm, "hi");
    await waitUntil(() => textsIn(desktop, dm).includes("bob: hi") && textsIn(laptop, dm).includes("bob: hi"), "both of alice's devices read bob");
    await waitUntil(() => leafKeys(bob, dm).length === 3, "three leaves in the DM");
    await w.settle();
    // alice's laptop unlinks the desktop (stolen) and goes offline before its heal runs.
    await laptop.engine.idle();
    laptop.engine.close();
    ds.disconnect("alice", laptop.entry.deviceId);
    await w.publish("alice", [laptop]);
    await bob.directory.refresh(["alice"]);
    expect(bob.directory.known("alice")?.devices.map((d) => d.name)).toEqual(["laptop"]);
    // The thief's client: a commit removing the laptop's leaf (alice's listed device).
    const g = await hostileGroup(desktop, dm);
    const leaf = g.members().find((m) => m.username === "alice" && Buffer.from(m.signatureKey).toString("hex") === keyOf(laptop))!.leafIndex;
    const hostile = g as unknown as { commit(p: Proposal[], withWelcome: boolean): Promise<PendingCommit> };
    await sendHostileCommit(desktop, await hostile.commit([{ proposalType: "remove", remove: { removed: leaf } }], false));
    await waitUntil(() => linesIn(bob, dm).some((l) => l.kind === "refused-device" && l.users[0] === "alice") || !leafKeys(bob, dm).includes(keyOf(laptop)), "bob judges the unlinked device's commit");
    expect(leafKeys(bob, dm)).toContain(keyOf(laptop));
    expect(linesIn(bob, dm).some((l) => l.kind === "refused-device" && l.users[0] === "alice")).toBe(true);
    expect(linesIn(bob, dm).some((l) => l.kind === "device-removed" || l.kind === "removed")).toBe(false);
  });
});

describe("a stolen device, unlinked, writing to a peer before the heal removed it", () => {
  it("its message in the DM (the relay naming it as alice's device, or as her laptop) is refused by bob, never shown as alice's", { timeout: 240_000 }, async () => {
    const laptop = await w.device("alice", "laptop");
    const desktop = await w.device("alice", "desktop");
    const bob = await w.device("bob", "bobpc");
    await w.publish("alice", [laptop, desktop]);
    await w.publish("bob", [bob]);
    for (const d of [laptop, desktop, bob]) await w.start(d);
    const dm = "dm:alice:bob";
    send(bob, dm, "hi");
    await waitUntil(() => textsIn(desktop, dm).includes("bob: hi") && leafKeys(bob, dm).length === 3, "the DM with both of alice's devices");
    await w.settle();
    await laptop.engine.idle();
    laptop.engine.close();
    ds.disconnect("alice", laptop.entry.deviceId);
    await w.publish("alice", [laptop]); // the desktop is unlinked; the laptop is offline: no heal yet
    await bob.directory.refresh(["alice"]);
    const g = await hostileGroup(desktop, dm);
    for (const [i, claimed] of [desktop.entry.deviceId, laptop.entry.deviceId].entries()) {
      const app = new TextEncoder().encode(JSON.stringify({ id: `${i}`.padStart(32, "0"), kind: "text", text: `send the code ${i}`, sentAt: w.now }));
      ds.inject("bob", dm, { kind: MlsKind.MLS_KIND_APPLICATION, groupId: Buffer.from(g.groupId), sender: "alice", mls: Buffer.from(await g.encrypt(app)), ratchetTree: Buffer.alloc(0), epoch: Number(g.epoch), senderDevice: claimed });
    }
    await waitUntil(() => bob.events.filter((e) => e.type === "refused" && e.conversationId === dm).length >= 2, "bob refuses both");
    expect(textsIn(bob, dm).some((t) => t.includes("send the code"))).toBe(false);
  });
});

describe("a hostile relay hiding a user's device list, with a hostile member", () => {
  it("mallory adds alice's UNLINKED device to #ops while the relay serves bob no list of alice (a first contact): bob refuses a second leaf of a user with no list", { timeout: 240_000 }, async () => {
    const laptop = await w.device("alice", "laptop");
    const desktop = await w.device("alice", "desktop");
    const bob = await w.device("bob", "bobpc");
    const mallory = await w.device("mallory", "mpc");
    await w.publish("alice", [laptop, desktop]);
    await w.publish("alice", [laptop]); // the desktop (stolen) is unlinked
    await w.publish("bob", [bob]);
    await w.publish("mallory", [mallory]);
    // The relay never shows bob alice's list: to him she looks like a user from before devices.
    const relay = ds as unknown as { fetchDeviceLists(viewer: string, users: readonly string[]): { ok: true; lists: { username: string }[]; seen: [] } };
    const honest = relay.fetchDeviceLists.bind(ds);
    relay.fetchDeviceLists = (viewer, users) => {
      const r = honest(viewer, users);
      return viewer === "bob" ? { ...r, lists: r.lists.filter((l) => l.username !== "alice") } : r;
    };
    for (const d of [laptop, bob, mallory]) await w.start(d);
    expect(bob.directory.known("alice")).toBeUndefined();
    expect((await bob.engine.joinRoom("#ops")).ok).toBe(true);
    expect((await laptop.engine.joinRoom("#ops")).ok).toBe(true);
    expect((await mallory.engine.joinRoom("#ops")).ok).toBe(true);
    await waitUntil(() => [laptop, bob].every((d) => leafKeys(d, "#ops").length === 3), "three leaves everywhere");
    await w.settle();
    // mallory's own client adds a leaf of the unlinked desktop (a KeyPackage its thief made).
    const g = await hostileGroup(mallory, "#ops");
    const kp = await generateKeyPackage(await desktop.store.loadOrCreateClient());
    const p = await g.addMembers([kp.keyPackage]);
    const r = await ds.api("mallory", mallory.entry.deviceId).sendCommit({ commit: p.commit, groupInfo: p.groupInfo, added: ["alice"], removed: [], ...(p.welcome !== undefined ? { welcome: p.welcome } : {}), ...(p.ratchetTree !== undefined ? { ratchetTree: p.ratchetTree } : {}) });
    expect(r.ok).toBe(true);
    await waitUntil(() => linesIn(bob, "#ops").some((l) => l.kind === "refused-device" && l.by === "mallory") || leafKeys(bob, "#ops").includes(keyOf(desktop)), "bob judges mallory's commit");
    expect(leafKeys(bob, "#ops")).not.toContain(keyOf(desktop));
    expect(linesIn(bob, "#ops").some((l) => l.kind === "refused-device" && l.by === "mallory" && l.users[0] === "alice")).toBe(true);
  });
});

describe("a hostile relay hiding a user's device list, alone", () => {
  it("serves bob no list of alice and two KeyPackages of hers (her laptop's and her UNLINKED desktop's): bob's new DM takes neither, so the desktop never reads him", { timeout: 240_000 }, async () => {
    const laptop = await w.device("alice", "laptop");
    const desktop = await w.device("alice", "desktop");
    const bob = await w.device("bob", "bobpc");
    await w.publish("alice", [laptop, desktop]);
    await w.publish("alice", [laptop]); // the desktop (stolen) is unlinked
    await w.publish("bob", [bob]);
    const stolen = await generateKeyPackage(await desktop.store.loadOrCreateClient());
    const relay = ds as unknown as {
      fetchDeviceLists(viewer: string, users: readonly string[]): { ok: true; lists: { username: string }[]; seen: [] };
      claim(user: string, from: string, users: readonly string[], ids?: readonly string[]): { ok: boolean; entries: { username: string; deviceId: string; keyPackage: Uint8Array; lastResort: boolean }[]; missing: string[] };
    };
    const honestFetch = relay.fetchDeviceLists.bind(ds);
    relay.fetchDeviceLists = (viewer, users) => {
      const r = honestFetch(viewer, users);
      return viewer === "bob" ? { ...r, lists: r.lists.filter((l) => l.username !== "alice") } : r;
    };
    const honestClaim = relay.claim.bind(ds);
    relay.claim = (user, from, users, ids) => {
      const r = honestClaim(user, from, users, ids);
      if (user !== "bob" || !r.ok || !users.includes("alice")) return r;
      return { ...r, entries: [...r.entries, { username: "alice", deviceId: desktop.entry.deviceId, keyPackage: stolen.keyPackage, lastResort: false }], missing: r.missing.filter((u) => u !== "alice") };
    };
    for (const d of [laptop, bob]) await w.start(d);
    expect(bob.directory.known("alice")).toBeUndefined();
    const dm = "dm:alice:bob";
    bob.engine.send(dm, "for alice's devices only");
    await waitUntil(() => bob.events.some((e) => e.type === "notice" && e.text.includes("alice")) || leafKeys(bob, dm).includes(keyOf(desktop)), "bob's DM is made or refused");
    await w.settle();
    expect(leafKeys(bob, dm)).not.toContain(keyOf(desktop));
    // Never added at all (not added and healed out later by alice's laptop: it would have read bob's first message).
    expect(linesIn(bob, dm).some((l) => l.kind === "device-removed" || l.kind === "device-added")).toBe(false);
    expect(bob.events.some((e) => e.type === "notice" && e.text.includes("KeyPackages for alice"))).toBe(true);
  });
});
