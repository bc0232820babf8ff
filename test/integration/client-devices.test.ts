// The client's devices against a real relay (PROTOCOL.md §4.5): the primary publishes its first
// list at its first connection; a linked device (its own device key and MLS client, as linking
// makes them) connects with the device proof; /devices on both; /unlink from the primary ends
// the linked device for good, and it cannot come back.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { SessionEvent } from "../../src/client/types.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { TestClient } from "../helpers/client-harness.js";
import { linkedDevice as makeLinkedDevice, startPrimary, type DeviceWorld } from "../helpers/device-clients.js";
import { fetchDeviceLists } from "../helpers/device-session.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { connectV2 } from "../helpers/mls-queues.js";
import { TestRelay } from "../helpers/relay-harness.js";
import { waitUntil } from "../helpers/wait.js";

/** Waits: MLS work on a shared 2-core machine. */
const T = 60_000;
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

const failedNotice = (e: SessionEvent): boolean => e.type === "connection" && e.status.state === "failed";

describe("devices of one user at a real relay (PROTOCOL.md §4.5)", () => {
  it("the primary publishes its first list; a linked device connects with its device proof; /unlink stops it for good", async () => {
    const laptop = await primary();
    const first = await waitUntil(() => laptop.client.ownDeviceList(), "the primary's first device list", T);
    expect(first.version).toBe(1);
    expect(first.devices).toHaveLength(1);
    expect(first.devices[0]!.primary).toBe(true);
    // The relay keeps it, and it names the primary's MLS key.
    const probe = await connectV2(relay, await fixtureIdentity("bob"));
    const atRelay = await fetchDeviceLists(probe, ["alice"]);
    expect(atRelay.lists[0]?.version).toBe(1);
    probe.end();

    const desktop = await linkedDevice("desktop");
    const added = await laptop.client.addDevice(desktop.entry);
    expect(added.ok).toBe(true);
    const d = await desktop.start();
    // Its own view: both devices, this one marked, the laptop online.
    const seen = await d.client.devices();
    expect(seen.ok).toBe(true);
    const views = seen.ok ? seen.value : [];
    expect(views.map((v) => [v.name, v.primary, v.thisDevice])).toEqual([[first.devices[0]!.name, true, false], ["desktop", false, true]]);
    expect(views[0]!.online).toBe(true);
    // ThisDevice as the MLS engine sees it, on both; the relay's Welcome named each as itself.
    expect(d.client.deviceDirectory!.self).toMatchObject({ deviceId: desktop.local.deviceId, name: "desktop", primary: false });
    expect(Buffer.from(d.client.deviceDirectory!.self.mlsSignatureKey).equals(desktop.entry.mlsSignatureKey)).toBe(true);
    expect(laptop.client.deviceDirectory!.self).toMatchObject({ deviceId: first.devices[0]!.deviceId, primary: true });
    for (const c of [laptop, d]) expect(c.events.some((e) => e.type === "notice" && /took this session for another device/.test(e.text))).toBe(false);
    // A linked device cannot unlink.
    const refused = await d.client.unlink(first.devices[0]!.name);
    expect(refused.ok ? "" : refused.error.kind === "device" ? refused.error.detail : "").toMatch(/only your primary device/);

    // The primary: ambiguous/unknown/itself refused, then the desktop unlinked.
    const none = await laptop.client.unlink("phone");
    expect(none.ok ? "" : (none.error as { detail: string }).detail).toBe("no device of yours is called 'phone'");
    const self = await laptop.client.unlink(first.devices[0]!.name);
    expect(self.ok ? "" : (self.error as { detail: string }).detail).toMatch(/cannot unlink itself/);
    const changed: number[] = [];
    laptop.client.deviceDirectory!.onChange((u, l) => u === "alice" && changed.push(l.version));
    const un = await laptop.client.unlink(desktop.local.deviceId.slice(0, 6));
    expect(un.ok && un.value.name).toBe("desktop");
    expect(changed).toEqual([3]);
    expect(laptop.client.ownDeviceList()?.devices.map((x) => x.name)).toEqual([first.devices[0]!.name]);

    // The desktop's session ends for good (the relay: DEVICE_UNKNOWN), and a restart is refused.
    const ended = await d.waitFor(failedNotice, "the unlinked device's session failed for good", T);
    expect(ended.type === "connection" && ended.status.state === "failed" ? ended.status.reason : "").toMatch(/unlinked/);
    const again = await desktop.start({ begin: true });
    const refusedAgain = await again.waitFor(failedNotice, "the unlinked device refused at Hello", T);
    expect(refusedAgain.type === "connection" && refusedAgain.status.state === "failed" ? refusedAgain.status.reason : "").toMatch(/not linked to alice/);
  }, 180_000);

  it("the primary's list survives a restart of its client (same device id, no new version)", async () => {
    const laptop = await primary();
    const first = await waitUntil(() => laptop.client.ownDeviceList(), "the first list", T);
    await laptop.close();
    clients.splice(clients.indexOf(laptop), 1);
    const again = await primary();
    const views = await again.client.devices();
    expect(views.ok && views.value.map((v) => [v.deviceId, v.thisDevice])).toEqual([[first.devices[0]!.deviceId, true]]);
    expect(again.client.ownDeviceList()?.version).toBe(1);
  }, 180_000);
});
