// A hostile relay against device lists (PROTOCOL.md §4.5, §12): the operator's man in the middle
// (mls-hostile-proxy.ts) in front of the real relay rewrites what FetchDeviceLists answers. It
// cannot add a device to alice's list (it cannot sign), nor roll the list back (an older list, a
// hidden device, a kept unlinked device), not even across a restart of the client; and a linked
// device that learns from a newer list that it was unlinked stops for good, even when the relay
// still lets it in.
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { linkedIdentity } from "../../src/client/local-identity.js";
import { MlsKeyStore } from "../../src/client/mls-store.js";
import type { DeviceList as WireDeviceList } from "../../src/gen/securechat/v1/chat.js";
import { newDeviceId, type DeviceEntry } from "../../src/protocol/devices.js";
import { generateMlsSignatureKey, makeCredential, mlsClientFromCredential } from "../../src/protocol/mls/index.js";
import { TestClient } from "../helpers/client-harness.js";
import { fixtureIdentity } from "../helpers/identities.js";
import type { ResponseFrame } from "../helpers/mls-hostile-proxy.js";
import { cleanupWorlds, loadIdentities, notices, T, world, type World } from "../helpers/v2-hostile-world.js";
import { waitUntil } from "../helpers/wait.js";

beforeAll(loadIdentities);
afterEach(cleanupWorlds);

function entry(name: string): DeviceEntry {
  const spki = generateKeyPairSync("ed25519").publicKey.export({ format: "der", type: "spki" });
  return { deviceId: newDeviceId(), name, authSpki: spki, mlsSignatureKey: randomBytes(32), addedAtMs: Date.now(), primary: false };
}

/** Replaces alice's list in every DeviceListResult the relay sends to `to`. */
function serveToBob(w: World, to: string, rewrite: (alice: WireDeviceList) => WireDeviceList): void {
  w.proxy.onResponse = (user, f: ResponseFrame) => {
    if (user !== to || f.$case !== "deviceListResult") return undefined;
    return [{ ...f, value: { ...f.value, lists: f.value.lists.map((l) => (l.username === "alice" ? rewrite(l) : l)) } }];
  };
}

/** Every version of alice's list the relay answered with, as it came. */
function recordAlice(w: World): Map<number, WireDeviceList> {
  const seen = new Map<number, WireDeviceList>();
  const before = w.proxy.onResponse;
  w.proxy.onResponse = (user, f, s) => {
    if (f.$case === "deviceListResult") for (const l of f.value.lists) if (l.username === "alice") seen.set(l.version, l);
    return before?.(user, f, s);
  };
  return seen;
}

async function aliceList(w: World) {
  return waitUntil(() => w.c["alice"]!.client.ownDeviceList(), "alice's first device list", T);
}

describe("a hostile relay and device lists (PROTOCOL.md §4.5, §12)", () => {
  it("cannot add a device to alice's list: bob refuses it with one line and keeps the signed one", async () => {
    const w = await world("alice", "bob");
    await aliceList(w);
    const bob = w.c["bob"]!.client;
    await bob.deviceDirectory!.refresh(["alice"]);
    expect(bob.deviceDirectory!.known("alice")?.version).toBe(1);
    // The relay appends its own device and bumps the version; it cannot sign, so the old signature stays.
    const evil = entry("evil");
    serveToBob(w, "bob", (l) => ({ ...l, version: l.version + 1, devices: [...l.devices, { ...evil }] }));
    await bob.deviceDirectory!.refresh(["alice"]);
    await waitUntil(() => notices(w.c["bob"]!).find((n) => n === "the relay served a device list of alice that alice did not sign"), "bob's refusal line", T);
    expect(bob.deviceDirectory!.known("alice")?.version).toBe(1);
    expect(bob.deviceDirectory!.known("alice")?.devices.some((d) => d.name === "evil")).toBe(false);
  });

  it("cannot hide a device (an older list) nor keep an unlinked one, even after bob restarts", async () => {
    const w = await world("alice", "bob");
    const seen = recordAlice(w);
    await aliceList(w);
    const alice = w.c["alice"]!.client;
    await w.c["bob"]!.client.deviceDirectory!.refresh(["alice"]);
    const added = await alice.addDevice(entry("desktop"));
    expect(added.ok).toBe(true);
    await w.c["bob"]!.client.deviceDirectory!.refresh(["alice"]);
    expect(w.c["bob"]!.client.deviceDirectory!.known("alice")?.version).toBe(2);
    expect(seen.has(1) && seen.has(2)).toBe(true);

    // Hiding the desktop: the list from before it was linked, to bob restarted from his files.
    const v1 = seen.get(1)!;
    serveToBob(w, "bob", () => v1);
    const bob = await w.restart("bob");
    expect(bob.client.deviceDirectory!.known("alice")?.version).toBe(2);
    await bob.client.deviceDirectory!.refresh(["alice"]);
    await waitUntil(() => notices(bob).find((n) => n === "the relay served an older device list of alice (v1 < v2)"), "the rollback refused", T);
    expect(bob.client.deviceDirectory!.known("alice")?.devices.map((d) => d.name)).toContain("desktop");

    // Keeping the desktop after its unlink: the list of before (v2) once v3 is known.
    w.proxy.onResponse = undefined;
    const recorded = recordAlice(w);
    const un = await alice.unlink("desktop");
    expect(un.ok).toBe(true);
    await bob.client.deviceDirectory!.refresh(["alice"]);
    expect(bob.client.deviceDirectory!.known("alice")?.version).toBe(3);
    const v2 = seen.get(2)!;
    serveToBob(w, "bob", () => v2);
    await bob.client.deviceDirectory!.refresh(["alice"]);
    await waitUntil(() => notices(bob).find((n) => n === "the relay served an older device list of alice (v2 < v3)"), "the unlinked device's list refused", T);
    expect(bob.client.deviceDirectory!.known("alice")?.devices.map((d) => d.name)).not.toContain("desktop");
    expect(recorded.size).toBeGreaterThan(0);
  });

  it("a linked device the relay still lets in stops for good once a newer signed list drops it", async () => {
    const w = await world("alice");
    await aliceList(w);
    const aliceId = await fixtureIdentity("alice");
    // The desktop as linking leaves it.
    const home = mkdtempSync(join(tmpdir(), "sc-desktop-"));
    mkdirSync(home, { recursive: true });
    const deviceKey = generateKeyPairSync("ed25519").privateKey;
    const sig = await generateMlsSignatureKey();
    const { credential } = makeCredential("alice", aliceId.sigPrivate, sig.publicKey);
    const local = linkedIdentity({ record: { username: "alice", deviceId: newDeviceId(), name: "desktop", identitySpki: aliceId.sigSpki, encSpki: aliceId.encSpki, encKeySig: aliceId.encKeySig, linkedAtMs: Date.now() }, deviceKey });
    const store = MlsKeyStore.open(join(home, "alice_mls.db"), { username: "alice", sigPrivate: deviceKey }, { linkedTo: aliceId.sigSpki });
    store.putClient(mlsClientFromCredential("alice", credential, sig.publicKey, sig.privateKey));
    const alice = w.c["alice"]!.client;
    expect((await alice.addDevice({ deviceId: local.deviceId, name: "desktop", authSpki: local.deviceSpki, mlsSignatureKey: Buffer.from(sig.publicKey), addedAtMs: Date.now(), primary: false })).ok).toBe(true);

    // The relay takes no unlink: alice's PublishDeviceList is swallowed and answered as if kept,
    // so the relay still lists (and lets in) the desktop; but the desktop gets to see the newer list.
    let v3: WireDeviceList | undefined;
    w.proxy.onRequest = (user, f, s) => {
      if (user !== "alice" || f.$case !== "publishDeviceList" || f.value.list === undefined) return undefined;
      v3 = f.value.list;
      s.toClient({ $case: "deviceListResult", value: { requestId: f.value.requestId, lists: [f.value.list], seen: [] } });
      return [];
    };
    expect((await alice.unlink("desktop")).ok).toBe(true);
    expect(v3?.version).toBe(3);
    w.proxy.onResponse = (_user, f) => (f.$case === "deviceListResult" ? [{ ...f, value: { ...f.value, lists: f.value.lists.map((l) => (l.username === "alice" ? v3! : l)) } }] : undefined);

    const desktop = await TestClient.begin(aliceId, 0, { server: w.proxy.address, dir: home, statePath: join(home, "alice_state.db"), transport: { kind: "plaintext" }, identity: local, v2: { store }, reconnect: { initialMs: 10, maxMs: 20 } });
    try {
      const day = new Date(Number(v3!.issuedAtMs)).toISOString().slice(0, 10);
      const sentence = `this device was unlinked from alice on ${day}; its keys are no longer used`;
      await waitUntil(() => desktop.events.find((e) => e.type === "connection" && e.status.state === "failed" && e.status.reason === sentence), "the desktop stopped with the sentence", T);
      expect(notices(desktop)).toContain(sentence);
      // Failed is final: the connection loop has ended (no reconnect, even with a 10 ms backoff).
      expect(desktop.client.snapshot().connection.state).toBe("failed");
      await expect(desktop.client.waitConnected(1_000)).rejects.toThrow(sentence);
    } finally {
      await desktop.close();
      rmSync(home, { recursive: true, force: true });
    }
  });
});
