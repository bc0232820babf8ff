// One leaf per device against a real relay (PROTOCOL.md §4.5, §7; src/client/mls/devices.ts):
// alice's laptop (primary) and desktop (linked) and bob. bob's DM reaches both of alice's
// devices; a room alice creates holds both (the laptop's self-heal adds the desktop); /unlink
// takes the desktop out of every group, and bob's next messages reach only the laptop.
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { MlsSession } from "../../src/client/mls/session.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { TestClient } from "../helpers/client-harness.js";
import { linkedDevice as makeLinkedDevice, startPrimary, type DeviceWorld } from "../helpers/device-clients.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { TestRelay } from "../helpers/relay-harness.js";
import { waitUntil } from "../helpers/wait.js";

let alice: PrivateIdentity;
let relay: TestRelay;
let dir: string;
const clients: TestClient[] = [];

beforeAll(async () => {
  alice = await fixtureIdentity("alice");
});
beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "sc-client-devices-"));
  relay = await TestRelay.start();
});
afterEach(async () => {
  for (const c of clients.splice(0)) await c.close();
  await relay.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

const world = (): DeviceWorld => ({ relay, dir, alice, clients });
const primary = async (): Promise<TestClient> => startPrimary(world());
const linkedDevice = async (name: string) => makeLinkedDevice(world(), name);

/** The MLS signature keys (hex) of a conversation's leaves as this client holds it. */
function leaves(c: TestClient, conv: string): string[] {
  const mls = (c.client as unknown as { mls: MlsSession }).mls;
  return (mls.engine.memberIdentities(conv) ?? []).map((m) => Buffer.from(m.signatureKey).toString("hex")).sort();
}

const T = 60_000;

describe("one leaf per device at a real relay", () => {
  it("bob's DM and a room reach both of alice's devices; /unlink takes the desktop out of both", { timeout: 240_000 }, async () => {
    const laptop = await primary();
    await waitUntil(() => laptop.client.ownDeviceList(), "the primary's first device list", T);
    const desktop = await linkedDevice("desktop");
    expect((await laptop.client.addDevice(desktop.entry)).ok).toBe(true);
    const d = await desktop.start();
    const bobId = await fixtureIdentity("bob");
    const bobHome = join(dir, "bob");
    mkdirSync(bobHome, { recursive: true });
    const bob = await TestClient.start(bobId, 0, { server: relay.address, dir: bobHome, statePath: join(bobHome, "bob_state.db") });
    clients.push(bob);
    const deskKey = desktop.entry.mlsSignatureKey.toString("hex");
    const dm = "dm:alice:bob";
    expect(bob.client.send(dm, "hi both").ok).toBe(true);
    await laptop.waitForMessage("hi both", T);
    await d.waitForMessage("hi both", T);
    expect(leaves(bob, dm)).toHaveLength(3);
    expect(leaves(bob, dm)).toContain(deskKey);

    expect((await laptop.client.joinRoom("#ops")).ok).toBe(true);
    await waitUntil(() => leaves(d, "#ops").length === 2, "the desktop added to #ops by the laptop's self-heal", T);
    expect((await bob.client.joinRoom("#ops")).ok).toBe(true);
    await waitUntil(() => leaves(d, "#ops").length === 3 && leaves(laptop, "#ops").length === 3, "bob in #ops on both devices", T);
    expect(bob.client.send("#ops", "standup").ok).toBe(true);
    await laptop.waitForMessage("standup", T);
    await d.waitForMessage("standup", T);

    const un = await laptop.client.unlink("desktop");
    expect(un.ok).toBe(true);
    for (const conv of [dm, "#ops"]) await waitUntil(() => !leaves(bob, conv).includes(deskKey) && leaves(bob, conv).length === 2, `the desktop out of ${conv} at bob`, T);
    expect(bob.client.send("#ops", "after unlink").ok).toBe(true);
    await laptop.waitForMessage("after unlink", T);
    expect(d.messages().some((m) => m.text === "after unlink")).toBe(false);
  });
});
