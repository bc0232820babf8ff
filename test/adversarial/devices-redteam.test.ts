// Red team of the device features (PROTOCOL.md §4.5, §7.6, §12): attacks the earlier adversarial
// files did not try. Each test names its attacker: a hostile relay, a hostile peer, a stolen or
// unlinked device of mine, an anonymous stranger.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Proposal } from "ts-mls";
import type { MlsGroup, PendingCommit } from "../../src/protocol/mls/index.js";
import { FakeDs } from "../helpers/fake-ds.js";
import { DeviceWorld, keyOf, leafKeys, linesIn, textsIn, type Device } from "../helpers/mls-devices.js";
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

function send(d: Device, conv: string, text: string): void {
  const r = d.engine.send(conv, text);
  if (!r.ok) throw new Error(`send failed: ${JSON.stringify(r.error)}`);
}

/** The device's client stopped; its kept group of `conv` driven by hand (a thief's own client). */
async function hostileGroup(d: Device, conv: string): Promise<MlsGroup> {
  await d.engine.idle();
  d.engine.close();
  ds.disconnect(d.user.name, d.entry.deviceId);
  const g = d.store.loadGroup(await d.store.loadOrCreateClient(), conv, {});
  if (g === undefined) throw new Error(`${d.user.name} keeps no group of ${conv}`);
  return g;
}

async function sendHostileCommit(d: Device, p: PendingCommit): Promise<void> {
  const r = await ds.api(d.user.name, d.entry.deviceId).sendCommit({
    commit: p.commit, groupInfo: p.groupInfo, added: [], removed: [],
    ...(p.welcome !== undefined ? { welcome: p.welcome } : {}), ...(p.ratchetTree !== undefined ? { ratchetTree: p.ratchetTree } : {}),
  });
  if (!r.ok) throw new Error(`the relay double refused the hostile commit: ${r.detail}`);
}

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
