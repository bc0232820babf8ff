// DeviceDirectory (PROTOCOL.md §4.5) against a scripted Delivery Service that serves whatever the
// test (the hostile relay) wants: lists it forged, older lists, lists of another identity.
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { DatabaseSync } from "node:sqlite";
import { describe, expect, it } from "vitest";
import type { DeviceSeen } from "../../src/gen/securechat/v1/chat.js";
import { DeviceListsUnanswered } from "../../src/client/devices-api.js";
import { memoryDeviceListPins, SealedDeviceListPins, VerifiedDeviceDirectory, type DeviceListPins, type PinnedIdentity } from "../../src/client/device-directory.js";
import type { DsResult } from "../../src/client/mls/ds-api.js";
import { newDeviceId, signDeviceList, type DeviceEntry, type SignedDeviceList } from "../../src/protocol/devices.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { fixtureIdentity } from "../helpers/identities.js";

function device(primary: boolean, authSpki: Buffer, name: string): DeviceEntry {
  return { deviceId: newDeviceId(), name, authSpki, mlsSignatureKey: randomBytes(32), addedAtMs: 1_000, primary };
}

function linkedKey(): Buffer {
  return generateKeyPairSync("ed25519").publicKey.export({ format: "der", type: "spki" });
}

function list(id: PrivateIdentity, version: number, devices: DeviceEntry[]): SignedDeviceList {
  return signDeviceList({ username: id.username, version, issuedAtMs: 5_000 + version, devices }, id.sigPrivate, id.sigSpki);
}

/** A relay that answers FetchDeviceLists with `serve` (the test changes it at will). */
function scriptedDs(): { serve: SignedDeviceList[]; seen: DeviceSeen[]; asked: string[][]; down: boolean; fetchDeviceLists: (u: readonly string[]) => Promise<DsResult<{ lists: readonly SignedDeviceList[]; seen: readonly DeviceSeen[] }>> } {
  const ds = {
    serve: [] as SignedDeviceList[],
    seen: [] as DeviceSeen[],
    asked: [] as string[][],
    /** Not connected: every fetch fails as the client's DS transport fails it. */
    down: false,
    fetchDeviceLists: (u: readonly string[]): Promise<DsResult<{ lists: readonly SignedDeviceList[]; seen: readonly DeviceSeen[] }>> => {
      ds.asked.push([...u]);
      if (ds.down) return Promise.resolve({ ok: false as const, code: "NOT_CONNECTED", detail: "not connected to the relay" });
      return Promise.resolve({ ok: true as const, lists: ds.serve, seen: ds.seen });
    },
  };
  return ds;
}

async function world() {
  const alice = await fixtureIdentity("alice");
  const bob = await fixtureIdentity("bob");
  const mallory = await fixtureIdentity("mallory", "bob");
  const pins = new Map<string, PinnedIdentity>([["alice", { state: "pinned", identitySpki: alice.sigSpki }], ["bob", { state: "pinned", identitySpki: bob.sigSpki }]]);
  return { alice, bob, mallory, pins };
}

function directory(w: Awaited<ReturnType<typeof world>>, ds: ReturnType<typeof scriptedDs>, pinStore: DeviceListPins = memoryDeviceListPins()) {
  const dir = new VerifiedDeviceDirectory({
    self: { username: "alice", deviceId: "", name: "laptop", primary: true, mlsSignatureKey: randomBytes(32) },
    ds, pinOf: (u) => w.pins.get(u) ?? { state: "unknown" }, pins: pinStore,
  });
  const refused: string[] = [];
  const changes: string[] = [];
  dir.onRefused((u, reason) => refused.push(`${u}: ${reason}`));
  dir.onChange((u, l, prev) => changes.push(`${u} v${prev?.version ?? 0}->v${l.version}`));
  return { dir, refused, changes };
}

describe("DeviceDirectory against a hostile relay (PROTOCOL.md §4.5)", () => {
  it("takes a newer valid list and fires onChange; keeps lastSeen", async () => {
    const w = await world();
    const ds = scriptedDs();
    const { dir, refused, changes } = directory(w, ds);
    const laptop = device(true, w.bob.sigSpki, "laptop");
    ds.serve = [list(w.bob, 1, [laptop])];
    ds.seen = [{ username: "bob", deviceId: laptop.deviceId, online: true, lastSeenMs: 77 }, { username: "zed", deviceId: "x", online: true, lastSeenMs: 1 }];
    const got = await dir.refresh(["bob"]);
    expect(got.get("bob")?.version).toBe(1);
    const desktop = device(false, linkedKey(), "desktop");
    ds.serve = [list(w.bob, 2, [laptop, desktop])];
    await dir.refresh(["bob"]);
    expect(dir.known("bob")?.devices.map((d) => d.name)).toEqual(["laptop", "desktop"]);
    expect(changes).toEqual(["bob v0->v1", "bob v1->v2"]);
    expect(refused).toEqual([]);
    expect(dir.lastSeen("bob").get(laptop.deviceId)).toEqual({ online: true, lastSeenMs: 77 });
    expect(dir.lastSeen("zed").size).toBe(0);
    // The same list again changes nothing.
    await dir.refresh(["bob"]);
    expect(changes.length).toBe(2);
  });

  it("refuses a list with a device the relay added (bad signature)", async () => {
    const w = await world();
    const ds = scriptedDs();
    const { dir, refused, changes } = directory(w, ds);
    const v1 = list(w.bob, 1, [device(true, w.bob.sigSpki, "laptop")]);
    ds.serve = [v1];
    await dir.refresh(["bob"]);
    // The relay appends its own device and bumps the version: it cannot sign, so it reuses the old signature.
    ds.serve = [{ ...v1, version: 2, devices: [...v1.devices, device(false, linkedKey(), "evil")] }];
    await dir.refresh(["bob"]);
    expect(refused).toEqual(["bob: the relay served a device list of bob that bob did not sign"]);
    expect(dir.known("bob")?.version).toBe(1);
    expect(dir.known("bob")?.devices.length).toBe(1);
    expect(changes).toEqual(["bob v0->v1"]);
  });

  it("refuses a list of another identity (signed by a key that is not the pinned one)", async () => {
    const w = await world();
    const ds = scriptedDs();
    const { dir, refused } = directory(w, ds);
    ds.serve = [list(w.mallory, 9, [device(true, w.mallory.sigSpki, "mallory-box")])];
    await dir.refresh(["bob"]);
    expect(refused).toEqual(["bob: the relay served a device list of bob that bob did not sign"]);
    expect(dir.known("bob")).toBeUndefined();
  });

  it("refuses an older list (rollback), and a hidden device, even after a restart", async () => {
    const w = await world();
    const ds = scriptedDs();
    const db = new DatabaseSync(":memory:");
    const aliceKey = w.alice.sigPrivate;
    const pinStore = new SealedDeviceListPins(db, aliceKey);
    const first = directory(w, ds, pinStore);
    const laptop = device(true, w.bob.sigSpki, "laptop");
    const phone = device(false, linkedKey(), "phone");
    const v1 = list(w.bob, 1, [laptop]);
    const v2 = list(w.bob, 2, [laptop, phone]);
    ds.serve = [v2];
    await first.dir.refresh(["bob"]);
    expect(first.dir.known("bob")?.version).toBe(2);
    // The kept list is sealed at rest: no device name in the clear.
    const raw = db.prepare("SELECT sealed FROM device_lists").all() as { sealed: Uint8Array }[];
    expect(Buffer.concat(raw.map((r) => Buffer.from(r.sealed))).includes(Buffer.from("phone"))).toBe(false);

    // A restart: a new directory over the same database.
    const again = directory(w, ds, new SealedDeviceListPins(db, aliceKey));
    expect(again.dir.known("bob")?.version).toBe(2);
    ds.serve = [v1]; // hides the phone by serving the list from before it was linked
    await again.dir.refresh(["bob"]);
    expect(again.refused).toEqual(["bob: the relay served an older device list of bob (v1 < v2)"]);
    expect(again.dir.known("bob")?.devices.map((d) => d.name)).toEqual(["laptop", "phone"]);
    // No list at all is hiding every device.
    ds.serve = [];
    await again.dir.refresh(["bob"]);
    expect(again.refused[1]).toBe("bob: the relay served no device list of bob, though version 2 was seen before");
    // Another device's key cannot open the pins: nothing is taken from them.
    const other = new SealedDeviceListPins(db, generateKeyPairSync("ed25519").privateKey);
    expect(other.load()).toEqual([]);
    expect(again.changes).toEqual([]);
  });

  it("refuses a second, different list under the same version", async () => {
    const w = await world();
    const ds = scriptedDs();
    const { dir, refused } = directory(w, ds);
    const laptop = device(true, w.bob.sigSpki, "laptop");
    ds.serve = [list(w.bob, 3, [laptop])];
    await dir.refresh(["bob"]);
    ds.serve = [list(w.bob, 3, [laptop, device(false, linkedKey(), "other")])];
    await dir.refresh(["bob"]);
    expect(refused).toEqual(["bob: the relay served a second, different device list of bob under version 3"]);
    expect(dir.known("bob")?.devices.length).toBe(1);
  });

  it("takes nothing while a key change is undecided, and pins an unknown user first", async () => {
    const w = await world();
    const ds = scriptedDs();
    w.pins.set("bob", { state: "undecided" });
    const { dir, refused } = directory(w, ds);
    ds.serve = [list(w.bob, 1, [device(true, w.bob.sigSpki, "laptop")])];
    await dir.refresh(["bob"]);
    expect(dir.known("bob")).toBeUndefined();
    expect(refused).toEqual([]);

    const carol = await fixtureIdentity("carol");
    const ensured: string[] = [];
    const dir2 = new VerifiedDeviceDirectory({
      self: { username: "alice", deviceId: "", name: "laptop", primary: true, mlsSignatureKey: randomBytes(32) },
      ds, pinOf: (u) => w.pins.get(u) ?? { state: "unknown" },
      ensurePinned: (names) => {
        ensured.push(...names);
        w.pins.set("carol", { state: "pinned", identitySpki: carol.sigSpki });
        return Promise.resolve();
      },
    });
    ds.serve = [list(carol, 1, [device(true, carol.sigSpki, "c")])];
    await dir2.refresh(["carol"]);
    expect(ensured).toEqual(["carol"]);
    expect(dir2.known("carol")?.version).toBe(1);
  });

  it("forgets a kept list once the user's pinned identity key changed (a new identity starts at v1)", async () => {
    const w = await world();
    const ds = scriptedDs();
    const { dir, refused } = directory(w, ds);
    ds.serve = [list(w.bob, 5, [device(true, w.bob.sigSpki, "laptop")])];
    await dir.refresh(["bob"]);
    w.pins.set("bob", { state: "pinned", identitySpki: w.mallory.sigSpki }); // bob's accepted new key
    expect(dir.known("bob")).toBeUndefined();
    ds.serve = [list(w.mallory, 1, [device(true, w.mallory.sigSpki, "new-laptop")])];
    await dir.refresh(["bob"]);
    expect(dir.known("bob")?.devices[0]?.name).toBe("new-laptop");
    expect(refused).toEqual([]);
  });

  it("an unanswered fetch keeps what is kept; with mustAnswer it rejects instead of looking like \"no list\"", async () => {
    const w = await world();
    const ds = scriptedDs();
    const { dir, refused } = directory(w, ds);
    ds.down = true;
    // Not connected: resolves to what is kept (nothing yet) for callers that only want the newest view...
    expect((await dir.refresh(["bob"])).size).toBe(0);
    // ...and rejects for one that would read "nothing kept" as the relay's "bob has no list" (§8.1).
    await expect(dir.refresh(["bob"], { mustAnswer: true })).rejects.toThrow(DeviceListsUnanswered);
    await expect(dir.refresh(["bob"], { mustAnswer: true })).rejects.toThrow(/NOT_CONNECTED/);
    // Back online, the same call answers: a list, or none when the relay has none (then no rejection).
    ds.down = false;
    expect((await dir.refresh(["bob"], { mustAnswer: true })).size).toBe(0);
    ds.serve = [list(w.bob, 1, [device(true, w.bob.sigSpki, "laptop")])];
    expect((await dir.refresh(["bob"], { mustAnswer: true })).get("bob")?.version).toBe(1);
    // Down again: the kept list stays, and mustAnswer still says the relay did not answer.
    ds.down = true;
    expect((await dir.refresh(["bob"])).get("bob")?.version).toBe(1);
    await expect(dir.refresh(["bob"], { mustAnswer: true })).rejects.toThrow(DeviceListsUnanswered);
    expect(dir.known("bob")?.version).toBe(1);
    expect(refused).toEqual([]);
  });
});
