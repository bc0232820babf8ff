// Linking a new device end to end through a real relay (PROTOCOL.md §4.6): alice's primary (a
// v2 ChatClient, /link) and a new device (newDeviceSide) meet over the Link rendezvous. Checks
// the files (0600), the list v+1 kept at the relay naming the device, the credential, that the
// linked device then gets a session of its own; and that a "no", a wrong code, or a mismatch
// writes nothing.
import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Welcome } from "../../src/gen/securechat/v1/chat.js";
import { ChatClient } from "../../src/client/chat-client.js";
import { KnownRelays } from "../../src/client/known-relays.js";
import { ClientStateStore } from "../../src/client/state-store.js";
import { TrustStore } from "../../src/client/trust-store.js";
import { readLinkedDevice } from "../../src/client/linked-device.js";
import { LinkError, newDeviceSide, type LinkRelay, type NewDeviceLinked } from "../../src/client/linking.js";
import { linkedIdentity, storeKeyOf, mlsStoreOptions } from "../../src/client/local-identity.js";
import { MlsKeyStore } from "../../src/client/mls-store.js";
import { RelayConnection } from "../../src/client/relay-connection.js";
import { SendPacer } from "../../src/client/pacer.js";
import { verifyDeviceList } from "../../src/protocol/devices.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { nullLogger } from "../../src/protocol/log.js";
import { verifyCredential } from "../../src/protocol/mls/index.js";
import { TestClient } from "../helpers/client-harness.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { TestRelay } from "../helpers/relay-harness.js";
import { waitUntil } from "../helpers/wait.js";

let alice: PrivateIdentity;
let relay: TestRelay;
let newDir: string;
let primary: TestClient;

beforeAll(async () => {
  alice = await fixtureIdentity("alice");
});
beforeEach(async () => {
  relay = await TestRelay.start();
  newDir = mkdtempSync(join(tmpdir(), "sc-link-new-"));
  primary = await TestClient.start(alice, 0, { server: relay.address });
  // The primary's own list (v1, itself) is published by its connect-time upkeep.
  await waitUntil(() => primary.client.ownDeviceList(), "alice's own device list");
});
afterEach(async () => {
  await primary.close();
  await relay.cleanup();
  rmSync(newDir, { recursive: true, force: true });
});

function relayOf(): LinkRelay {
  return { address: relay.address, transport: { kind: "pinned", pins: KnownRelays.inMemory() } };
}

/** The new device's side, its code and SAS as they are shown. */
function startNewDevice(extra: { signal?: AbortSignal } = {}) {
  const shown: { code?: string; sas?: string } = {};
  const done: Promise<NewDeviceLinked> = newDeviceSide({
    relay: relayOf(), username: "alice", deviceName: "desktop", keyDir: newDir,
    onCode: (c) => { shown.code = c; }, onSas: (s) => { shown.sas = s; }, ...extra,
  });
  done.catch(() => {});
  return { shown, done, code: () => waitUntil(() => shown.code, "the code shown") };
}

async function relayList() {
  const r = await primary.client["mls"]!.ds.fetchDeviceLists!(["alice"]);
  if (!r.ok) throw new Error(r.detail);
  return r.lists.find((l) => l.username === "alice");
}

describe("linking a device through a real relay (PROTOCOL.md §4.6)", () => {
  it("hands the primary's pins of contacts to the new device: same keys, verified marks kept, a pending change as the key pinned", async () => {
    const bob = await fixtureIdentity("bob");
    const carol = await fixtureIdentity("carol");
    const dave = await fixtureIdentity("dave");
    const pins = (primary.client as unknown as { trustStore: TrustStore }).trustStore;
    pins.observe(bob);
    pins.trust("bob");
    pins.observe(carol);
    pins.observe(dave);
    const forged = await fixtureIdentity("mallory", "dave");
    pins.observe(forged); // a change of dave's key awaiting a decision: dave goes with the key pinned, not this one
    const fresh = startNewDevice();
    const code = await fresh.code();
    const outcome = await primary.client.linkDevice(code, async () => {
      await waitUntil(() => fresh.shown.sas, "the new device's SAS");
      return true;
    });
    expect(outcome).toMatchObject({ ok: true });
    const linked = await fresh.done;
    expect(linked.pinned).toBe(3);
    const theirs = await TrustStore.open(join(newDir, "alice_known_peers.json"));
    expect(theirs.get("bob")).toMatchObject({ verified: true });
    expect(theirs.get("bob")!.identity.sigSpki.equals(bob.sigSpki)).toBe(true);
    expect(theirs.get("carol")).toMatchObject({ verified: false });
    // Dave with his pinned key and nothing pending: the relay's key for him is a change there too.
    expect(theirs.get("dave")!.identity.sigSpki.equals(dave.sigSpki)).toBe(true);
    expect(theirs.get("dave")!.pending).toBeUndefined();
    expect(theirs.observe(forged)).toBe("key-changed");
    expect(statSync(join(newDir, "alice_known_peers.json")).mode & 0o777).toBe(0o600);
  });

  it("links: same SAS on both screens, files 0600, list v+1 at the relay, credential verifies, the device connects", async () => {
    const fresh = startNewDevice();
    const code = await fresh.code();
    expect(code).toMatch(/^[0-9A-Z]{4}(-[0-9A-Z]{4}){3}$/);
    let asked: { sas: string; name: string } | undefined;
    // Typed as people type: lower case, without dashes.
    const outcome = await primary.client.linkDevice(code.toLowerCase().replace(/-/g, " "), async (sas, name) => {
      asked = { sas, name };
      await waitUntil(() => fresh.shown.sas, "the new device's SAS");
      return true;
    });
    expect(outcome).toMatchObject({ ok: true, name: "desktop", version: 2, confirmed: true });
    const linked = await fresh.done;
    expect(asked!.name).toBe("desktop");
    expect(asked!.sas).toMatch(/^\d{3} \d{3}$/);
    expect(fresh.shown.sas).toBe(asked!.sas);

    // Files: the device key, its record, its MLS store; all 0600, nothing else left.
    expect(readdirSync(newDir).sort()).toEqual(["alice_device.json", "alice_device.pem", "alice_mls.db"]);
    for (const f of readdirSync(newDir)) expect(statSync(join(newDir, f)).mode & 0o777, f).toBe(0o600);

    // The relay keeps v2 (v1 was this primary alone, published at its connect) naming the device.
    const kept = verifyDeviceList((await relayList())!, "alice", alice.sigSpki);
    expect(kept.version).toBe(2);
    expect(kept.devices.map((d) => [d.name, d.primary])).toEqual([[expect.any(String), true], ["desktop", false]]);
    expect(linked.list.version).toBe(2);

    // The MLS client opens with the device key, vouched for by alice's identity key.
    const device = readLinkedDevice(newDir, "alice")!;
    expect(device.record.deviceId).toBe(linked.deviceId);
    // The linking's list is kept with the record: the floor of this device's own list (§4.6).
    expect(device.record.linkList?.version).toBe(2);
    expect(device.record.linkList?.devices.some((d) => d.deviceId === linked.deviceId)).toBe(true);
    const me = linkedIdentity(device);
    const store = MlsKeyStore.open(join(newDir, "alice_mls.db"), storeKeyOf(me), mlsStoreOptions(me));
    const client = await store.loadOrCreateClient();
    store.close();
    expect(verifyCredential(client.credential, client.signaturePublicKey).identitySpki.equals(alice.sigSpki)).toBe(true);
    expect(kept.devices[1]!.mlsSignatureKey.equals(Buffer.from(client.signaturePublicKey))).toBe(true);

    // The linked device gets a session of its own (device Hello with its device proof).
    let welcome: Welcome | undefined;
    const conn = new RelayConnection({
      identity: me, server: relay.address, transport: { kind: "pinned", pins: KnownRelays.inMemory() }, keepalive: undefined, reconnect: false,
      beforeConnect: undefined, clock: Date.now, random: Math.random, log: nullLogger, pacer: new SendPacer(Date.now), protocolVersion: 2,
      hooks: { welcomed: (w) => { welcome = w; }, connected: () => {}, frame: async () => {}, ended: () => {}, emit: () => {} },
    });
    conn.start();
    try {
      await conn.waitConnected(15_000);
      expect(welcome?.deviceId).toBe(linked.deviceId);
    } finally {
      await conn.close();
    }

    // As a ChatClient, the linked device may not link others: it names the primary.
    const linkedStore = MlsKeyStore.open(join(newDir, "alice_mls.db"), storeKeyOf(me), mlsStoreOptions(me));
    const desktop = new ChatClient({
      identity: me, server: relay.address, trust: await TrustStore.open(join(newDir, "alice_known_peers.json")), state: ClientStateStore.open(":memory:"),
      reconnect: false, transport: { kind: "pinned", pins: KnownRelays.inMemory() }, v2: { store: linkedStore },
    });
    desktop.start();
    try {
      await desktop.waitConnected(15_000);
      const primaryName = kept.devices[0]!.name;
      expect(await desktop.linkDevice("ABCD-EFGH-JKMN-PQRS", async () => true)).toEqual({ ok: false, reason: `only your primary device (${primaryName}) can link devices` });
    } finally {
      await desktop.close();
    }
  });

  it("writes nothing and publishes nothing when the user answers no", async () => {
    const fresh = startNewDevice();
    const code = await fresh.code();
    const outcome = await primary.client.linkDevice(code, async () => false);
    expect(outcome).toEqual({ ok: false, reason: "desktop was not linked (you answered no)" });
    await expect(fresh.done).rejects.toThrow(/did not confirm the digits .*nothing was linked/);
    expect(readdirSync(newDir)).toEqual([]);
    // The device was never added to the list.
    expect((await relayList())?.devices.map((d) => d.name)).not.toContain("desktop");
  });

  it("says so clearly for a wrong code, a mistyped one, and cancels cleanly", async () => {
    const fresh = startNewDevice();
    const code = await fresh.code();
    const wrong = (code[0] === "0" ? "1" : "0") + code.slice(1);
    const outcome = await primary.client.linkDevice(wrong, async () => true);
    expect(outcome).toEqual({ ok: false, reason: "no device is waiting with this code: check the code, and that the new device still shows it" });
    expect(await primary.client.linkDevice("ABCD-EFGH", async () => true)).toEqual({ ok: false, reason: expect.stringMatching(/^a link code has 16 characters, this has 8/) });
    expect(await primary.client.linkDevice("ABCD-EFGH-JKMN-PQRU", async () => true)).toEqual({ ok: false, reason: expect.stringMatching(/^'U' cannot be in a link code/) });
    expect(readdirSync(newDir)).toEqual([]);
    // The new device is still waiting; cancelling it ends cleanly.
    const abort = new AbortController();
    const second = startNewDevice({ signal: abort.signal });
    await second.code();
    abort.abort();
    await expect(second.done).rejects.toThrow(LinkError);
    await expect(second.done).rejects.toThrow(/cancelled/);
    void fresh;
  });

  it("refuses to link a machine that already is a linked device, saying how to link it again after an unlink", async () => {
    const { writeFileSync } = await import("node:fs");
    writeFileSync(join(newDir, "alice_device.pem"), "x", { mode: 0o600 });
    writeFileSync(join(newDir, "alice_device.json"), "{}", { mode: 0o600 });
    const done = newDeviceSide({ relay: relayOf(), username: "alice", deviceName: "desktop", keyDir: newDir, onCode: () => {}, onSas: () => {} });
    await expect(done).rejects.toThrow(/already is a linked device of alice/);
    await expect(done).rejects.toThrow(/if it was unlinked, move \S+alice_device\.pem, \S+alice_device\.json and \S+alice_mls\.db away, then link again/);
  });

  it("shows no code while the relay cannot be reached: the code is shown once the rendezvous is on a live connection", async () => {
    // Plaintext: no TLS first contact to fail first; port 1 refuses connections.
    const shown: string[] = [];
    const done = newDeviceSide({
      relay: { address: "127.0.0.1:1", transport: { kind: "plaintext" } }, username: "alice", deviceName: "desktop", keyDir: newDir,
      onCode: (c) => shown.push(c), onSas: () => {},
    });
    await expect(done).rejects.toThrow(/cannot reach the relay at 127\.0\.0\.1:1/);
    expect(shown).toEqual([]);
  });

  it("refuses to link into a directory that already holds a key file of the user", async () => {
    const { writeFileSync } = await import("node:fs");
    writeFileSync(join(newDir, "alice_key.pem"), "x", { mode: 0o600 });
    await expect(newDeviceSide({ relay: relayOf(), username: "alice", deviceName: "desktop", keyDir: newDir, onCode: () => {}, onSas: () => {} }))
      .rejects.toThrow(/already is alice's primary device/);
  });
});
