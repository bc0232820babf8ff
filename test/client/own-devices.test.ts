// The own list's upkeep at each connect (PROTOCOL.md §4.5) against a scripted relay: the first
// list, a changed MLS key, a relay that lost the newest list, the relay's view of this device.
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { VerifiedDeviceDirectory } from "../../src/client/device-directory.js";
import { primaryIdentity } from "../../src/client/local-identity.js";
import type { DsResult } from "../../src/client/mls/ds-api.js";
import { defaultDeviceName, OwnDevices } from "../../src/client/own-devices.js";
import type { SessionEvent } from "../../src/client/types.js";
import { Welcome } from "../../src/gen/securechat/v1/chat.js";
import { signDeviceList, type SignedDeviceList } from "../../src/protocol/devices.js";
import { nullLogger } from "../../src/protocol/log.js";
import { fixtureIdentity } from "../helpers/identities.js";

async function setup(host = "build-box.example.org", primaryName?: string) {
  const alice = await fixtureIdentity("alice");
  const local = primaryIdentity(alice);
  // `loseAnswers`: the next publishes are kept (or refused) as usual, but their answer is lost.
  const relay: { kept: SignedDeviceList | undefined; published: number[]; loseAnswers: number } = { kept: undefined, published: [], loseAnswers: 0 };
  const answer = (r: DsResult<{ list: SignedDeviceList }>): Promise<DsResult<{ list: SignedDeviceList }>> => {
    if (relay.loseAnswers <= 0) return Promise.resolve(r);
    relay.loseAnswers--;
    return Promise.resolve({ ok: false, code: "CONNECTION_LOST", detail: "the connection to the relay was lost" });
  };
  const ds = {
    fetchDeviceLists: (): Promise<DsResult<{ lists: readonly SignedDeviceList[]; seen: [] }>> => Promise.resolve({ ok: true, lists: relay.kept ? [relay.kept] : [], seen: [] }),
    publishDeviceList: (l: SignedDeviceList): Promise<DsResult<{ list: SignedDeviceList }>> => {
      // As the relay: the kept list again, byte for byte, is answered as kept.
      if (relay.kept !== undefined && l.version === relay.kept.version && l.signature.equals(relay.kept.signature)) return answer({ ok: true, list: l });
      if (relay.kept !== undefined && l.version <= relay.kept.version) return answer({ ok: false, code: "BAD_DEVICE_LIST", detail: "not newer" });
      relay.kept = l;
      relay.published.push(l.version);
      return answer({ ok: true, list: l });
    },
  };
  const directory = new VerifiedDeviceDirectory({ self: { username: "alice", deviceId: "", name: "", primary: true, mlsSignatureKey: new Uint8Array(0) }, ds, pinOf: () => ({ state: "pinned", identitySpki: alice.sigSpki }) });
  let mlsKey: Uint8Array = randomBytes(32);
  const events: SessionEvent[] = [];
  const stops: string[] = [];
  const own = new OwnDevices({
    local, directory, ds, mlsSignatureKey: () => Promise.resolve(mlsKey), clock: () => 1_000, log: nullLogger,
    emit: (e) => events.push(e), stopForGood: (s) => stops.push(s), hostName: () => host,
    ...(primaryName === undefined ? {} : { primaryName }),
  });
  const welcome = (o: Partial<Welcome> = {}) => Welcome.fromPartial({ deviceListVersion: relay.kept?.version ?? 0, deviceId: relay.kept?.devices[0]?.deviceId ?? "", ...o });
  return { alice, relay, directory, own, welcome, events, stops, setKey: (k: Uint8Array) => (mlsKey = k) };
}

describe("own device list upkeep (PROTOCOL.md §4.5)", () => {
  it("publishes version 1 naming the primary after the host at the first connect, then nothing more", async () => {
    const t = await setup();
    await t.own.upkeep(t.welcome());
    expect(t.relay.published).toEqual([1]);
    expect(t.relay.kept?.devices.map((d) => [d.name, d.primary])).toEqual([["build-box", true]]);
    expect(t.directory.known("alice")?.version).toBe(1);
    await t.own.upkeep(t.welcome());
    expect(t.relay.published).toEqual([1]);
    expect(t.directory.self.deviceId).toBe(t.relay.kept?.devices[0]?.deviceId);
  });

  it("names the primary as chosen (--device-name): in its first list, and by version + 1 when the kept list names it otherwise", async () => {
    const t = await setup("build-box", "laptop");
    await t.own.upkeep(t.welcome());
    expect(t.relay.kept?.devices.map((d) => d.name)).toEqual(["laptop"]);
    // Started before without a name: the host's name is kept at the relay, then renamed.
    const u = await setup("build-box");
    await u.own.upkeep(u.welcome());
    expect(u.relay.kept?.devices.map((d) => d.name)).toEqual(["build-box"]);
    const renamed = new OwnDevices({ ...(u.own as unknown as { o: ConstructorParameters<typeof OwnDevices>[0] }).o, primaryName: "laptop" });
    await renamed.upkeep(u.welcome());
    expect(u.relay.published).toEqual([1, 2]);
    expect(u.relay.kept?.devices.map((d) => [d.name, d.primary])).toEqual([["laptop", true]]);
    await renamed.upkeep(u.welcome());
    expect(u.relay.published).toEqual([1, 2]); // already so: nothing more
  });

  it("a new list whose answer was lost is sent again, the same bytes: kept once, and the command says it was done", async () => {
    const t = await setup("build-box");
    await t.own.upkeep(t.welcome());
    const desktop = { deviceId: "00000000000000d1", name: "desktop", authSpki: generateKeyPairSync("ed25519").publicKey.export({ format: "der", type: "spki" }), mlsSignatureKey: randomBytes(32), addedAtMs: 1, primary: false };
    t.relay.loseAnswers = 2;
    const added = await t.own.addDevice(desktop);
    expect(added.ok && added.value.devices.map((d) => d.name)).toEqual(["build-box", "desktop"]);
    expect(t.relay.published).toEqual([1, 2]);
    expect(t.relay.loseAnswers).toBe(0);
    // Before, the lost answer was reported as a refusal, and doing it again was refused as not newer.
    t.relay.loseAnswers = 1;
    const gone = await t.own.unlink("desktop", { check: false });
    expect(gone.ok).toBe(true);
    expect(t.relay.kept?.devices.map((d) => d.name)).toEqual(["build-box"]);
    expect(t.relay.published).toEqual([1, 2, 3]);
  });

  it("keeps the primary's name when another device of mine already has the name asked for", async () => {
    const t = await setup("build-box");
    await t.own.upkeep(t.welcome());
    const v1 = t.relay.kept!;
    const desktop = { deviceId: "00000000000000d1", name: "laptop", authSpki: generateKeyPairSync("ed25519").publicKey.export({ format: "der", type: "spki" }), mlsSignatureKey: randomBytes(32), addedAtMs: 1, primary: false };
    const v2 = signDeviceList({ username: "alice", version: 2, issuedAtMs: 2, devices: [...v1.devices, desktop] }, t.alice.sigPrivate, t.alice.sigSpki);
    expect((await t.own["o"].ds.publishDeviceList!(v2)).ok).toBe(true);
    const renamed = new OwnDevices({ ...(t.own as unknown as { o: ConstructorParameters<typeof OwnDevices>[0] }).o, primaryName: "laptop" });
    await renamed.upkeep(t.welcome());
    expect(t.relay.kept?.version).toBe(2);
    expect(t.events.some((e) => e.type === "notice" && e.text.includes("keeps the name 'build-box'"))).toBe(true);
  });

  it("names the device 'primary' when the host name is not a valid device name", () => {
    expect(defaultDeviceName("\u001b[31m")).toBe("primary");
    expect(defaultDeviceName("")).toBe("primary");
    expect(defaultDeviceName("laptop.local")).toBe("laptop");
  });

  it("publishes version + 1 when its MLS key changed, and the newest list again to a relay that lost it", async () => {
    const t = await setup();
    await t.own.upkeep(t.welcome());
    const key = randomBytes(32);
    t.setKey(key);
    await t.own.upkeep(t.welcome());
    expect(t.relay.published).toEqual([1, 2]);
    expect(t.relay.kept?.devices[0]?.mlsSignatureKey.equals(key)).toBe(true);
    // The relay restored from an older backup: it keeps v1 and says so in Welcome.
    const newest = t.relay.kept!;
    t.relay.kept = undefined;
    t.relay.published.length = 0;
    await t.own.upkeep(t.welcome({ deviceListVersion: 0, deviceId: "" }));
    const keptNow = (): SignedDeviceList | undefined => t.relay.kept;
    expect(keptNow()?.version).toBe(newest.version);
    expect(t.relay.published).toEqual([2]); // the same list again, not a new version
    expect(t.directory.known("alice")?.version).toBe(2);
  });

  it("says so when the relay takes this session for another device", async () => {
    const t = await setup();
    await t.own.upkeep(t.welcome());
    await t.own.upkeep(t.welcome({ deviceId: "0123456789abcdef" }));
    expect(t.events.flatMap((e) => (e.type === "notice" ? [e.text] : []))).toEqual([
      `the relay took this session for another device of alice (0123456789abcdef, this one is ${t.relay.kept!.devices[0]!.deviceId})`,
    ]);
  });

  it("/unlink refuses an ambiguous id prefix, an unknown name, the primary; unlinks by name and fires onChange", async () => {
    const t = await setup();
    await t.own.upkeep(t.welcome());
    const dev = (id: string, name: string) => ({ deviceId: id, name, authSpki: generateKeyPairSync("ed25519").publicKey.export({ format: "der", type: "spki" }), mlsSignatureKey: randomBytes(32), addedAtMs: 5, primary: false });
    expect((await t.own.addDevice(dev("abcd000000000001", "desktop"))).ok).toBe(true);
    expect((await t.own.addDevice(dev("abcd000000000002", "phone"))).ok).toBe(true);
    const sentence = async (q: string): Promise<string> => {
      const r = await t.own.unlink(q);
      return r.ok ? "ok" : r.error.kind === "device" ? r.error.detail : r.error.kind;
    };
    expect(await sentence("abcd")).toBe("'abcd' names 2 devices: say which by more of its id (desktop abcd000000000001, phone abcd000000000002)");
    expect(await sentence("tablet")).toBe("no device of yours is called 'tablet'");
    // A device NAMED like the start of another's id names both: never the name's alone (review round 4).
    expect((await t.own.addDevice(dev("bcde000000000004", "abcd0000"))).ok).toBe(true);
    expect(await sentence("abcd0000")).toBe("'abcd0000' names 3 devices: say which by more of its id (abcd0000 bcde000000000004, desktop abcd000000000001, phone abcd000000000002)");
    expect(await sentence("bcde")).toBe("ok");
    expect(await sentence("build-box")).toBe("this is this device (the primary): it cannot unlink itself");
    expect((await t.own.addDevice(dev("ffff000000000003", "phone"))).ok).toBe(false);
    const changes: string[] = [];
    t.directory.onChange((u, l, prev) => changes.push(`${u} v${prev?.version}->v${l.version}: ${l.devices.map((d) => d.name).join(",")}`));
    expect(await sentence("phone")).toBe("ok");
    expect(changes).toEqual(["alice v5->v6: build-box,desktop"]);
    expect(t.relay.kept?.version).toBe(6);
  });
});
