// The own list's upkeep at each connect (PROTOCOL.md §4.5) against a scripted relay: the first
// list, a changed MLS key, a relay that lost the newest list, the relay's view of this device.
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { VerifiedDeviceDirectory } from "../../src/client/device-directory.js";
import { primaryIdentity } from "../../src/client/local-identity.js";
import type { DsResult } from "../../src/client/mls/ds-api.js";
import { defaultDeviceName, OwnDevices } from "../../src/client/own-devices.js";
import type { SessionEvent } from "../../src/client/types.js";
import { Welcome } from "../../src/gen/securechat/v1/chat.js";
import type { SignedDeviceList } from "../../src/protocol/devices.js";
import { nullLogger } from "../../src/protocol/log.js";
import { fixtureIdentity } from "../helpers/identities.js";

async function setup(host = "build-box.example.org") {
  const alice = await fixtureIdentity("alice");
  const local = primaryIdentity(alice);
  const relay: { kept: SignedDeviceList | undefined; published: number[] } = { kept: undefined, published: [] };
  const ds = {
    fetchDeviceLists: (): Promise<DsResult<{ lists: readonly SignedDeviceList[]; seen: [] }>> => Promise.resolve({ ok: true, lists: relay.kept ? [relay.kept] : [], seen: [] }),
    publishDeviceList: (l: SignedDeviceList): Promise<DsResult<{ list: SignedDeviceList }>> => {
      if (relay.kept !== undefined && l.version <= relay.kept.version) return Promise.resolve({ ok: false, code: "BAD_DEVICE_LIST", detail: "not newer" });
      relay.kept = l;
      relay.published.push(l.version);
      return Promise.resolve({ ok: true, list: l });
    },
  };
  const directory = new VerifiedDeviceDirectory({ self: { username: "alice", deviceId: "", name: "", primary: true, mlsSignatureKey: new Uint8Array(0) }, ds, pinOf: () => ({ state: "pinned", identitySpki: alice.sigSpki }) });
  let mlsKey: Uint8Array = randomBytes(32);
  const events: SessionEvent[] = [];
  const stops: string[] = [];
  const own = new OwnDevices({
    local, directory, ds, mlsSignatureKey: () => Promise.resolve(mlsKey), clock: () => 1_000, log: nullLogger,
    emit: (e) => events.push(e), stopForGood: (s) => stops.push(s), hostName: () => host,
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
});
