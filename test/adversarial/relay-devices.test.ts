// Hostile peers against the relay's devices (PROTOCOL.md §4.5, §9.1): lists the user did not
// sign, rolled back or for someone else, a primary that is not the identity key, devices that
// are not listed or prove with the wrong key, an unlinked device (its live session, its queue,
// its KeyPackages), a KeyPackage for another device's MLS key, and a device claiming a name.
import { status as GrpcStatus } from "@grpc/grpc-js";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { DeviceList, ErrorCode } from "../../src/gen/securechat/v1/chat.js";
import { sign } from "node:crypto";
import { deviceListBytes, signDeviceList, toWireDeviceList } from "../../src/protocol/devices.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import {
  connectDevice, deviceAddress, deviceListOf, ed25519Pair, makeLinkedDevice, openDevice, primaryEntry, publishDeviceList,
  publishDeviceListOk,
} from "../helpers/device-session.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { ask, makeKeyPackage, mlsPerson, must, type MlsPerson } from "../helpers/mls-ds.js";
import { connectV2, queuedRows, sendMlsAccepted, storedMlsRefs, takeMls, waitForEmptyQueue } from "../helpers/mls-queues.js";
import { liveGroup } from "../helpers/mls-raw-groups.js";
import type { RawSession } from "../helpers/raw-session.js";
import { TestRelay } from "../helpers/relay-harness.js";

const PRIMARY_ID = "00000000000000aa";

let alice: PrivateIdentity;
let bob: PrivateIdentity;
let carol: PrivateIdentity;
let mallory: PrivateIdentity;
let relay: TestRelay;
let pa: MlsPerson;

beforeAll(async () => {
  [alice, bob, carol, mallory] = await Promise.all([fixtureIdentity("alice"), fixtureIdentity("bob"), fixtureIdentity("carol"), fixtureIdentity("mallory")]);
  pa = await mlsPerson(alice);
});

afterEach(async () => {
  await relay?.cleanup();
});

async function refusedList(s: RawSession, list: Parameters<typeof publishDeviceList>[1]): Promise<string> {
  const r = await publishDeviceList(s, list);
  if (r.ok) throw new Error("the relay kept the list");
  expect(r.value.code).toBe(ErrorCode.ERROR_CODE_BAD_DEVICE_LIST);
  return r.value.detail;
}

describe("hostile device lists (PublishDeviceList)", () => {
  it("a list not signed by the bound identity key, an older one, another user's, and one whose primary is not the identity key are refused; the kept one stays", async () => {
    relay = await TestRelay.start();
    const a = await connectV2(relay, alice);
    const desktop = await makeLinkedDevice(alice);
    const v2 = deviceListOf(alice, pa, [desktop], 2, PRIMARY_ID);
    await publishDeviceListOk(a, v2);

    // Forged: alice's list body, signed by mallory (a relay or peer cannot sign for alice).
    const forged = { ...deviceListOf(alice, pa, [desktop, await makeLinkedDevice(alice, "evil")], 3, PRIMARY_ID) };
    const malSigned = sign(null, deviceListBytes(forged, alice.sigSpki), mallory.sigPrivate);
    expect(await refusedList(a, { ...forged, signature: malSigned })).toMatch(/^bad signature: the list is not signed by alice's identity key$/);
    // A bit flipped in a signed list.
    const flipped = Buffer.from(forged.signature);
    flipped[5]! ^= 1;
    expect(await refusedList(a, { ...forged, signature: flipped })).toMatch(/^bad signature/);

    // Rollback: an old (validly signed) version, and the same version again.
    expect(await refusedList(a, deviceListOf(alice, pa, [], 1, PRIMARY_ID))).toContain("(v1 <= v2)");
    expect(await refusedList(a, deviceListOf(alice, pa, [], 2, PRIMARY_ID))).toContain("(v2 <= v2)");
    // The kept list again, byte for byte (its answer was lost): answered as kept, nothing changes;
    // the same list with one byte of its signature changed is no resend.
    const again = await publishDeviceListOk(a, v2);
    expect(again.lists.map((l) => [l.username, l.version, l.devices.length])).toEqual([["alice", 2, 2]]);
    expect(relay.events("devices.publish_duplicate")).toHaveLength(1);
    expect(relay.events("devices.published").filter((l) => l["user"] === "alice")).toHaveLength(1);
    const touched = Buffer.from(v2.signature);
    touched[0]! ^= 1;
    expect(await refusedList(a, { ...v2, signature: touched })).toMatch(/^bad signature/);

    // bob publishes alice's valid list (newer), and his own name on a list alice signed.
    const b = await connectV2(relay, bob);
    expect(await refusedList(b, deviceListOf(alice, pa, [], 5, PRIMARY_ID))).toMatch(/for 'alice', not for you \(bob\)/);
    const aliceSignedForBob = signDeviceList({ username: "bob", version: 9, issuedAtMs: 1, devices: [primaryEntry(alice, pa)] }, alice.sigPrivate, alice.sigSpki);
    expect(await refusedList(b, aliceSignedForBob)).toMatch(/^malformed list: the primary device's key is not the identity key$|^bad signature/);

    // A primary whose auth key is not the identity key (mallory's), signed by alice: the body
    // rule refuses it before any signature (signDeviceList itself refuses to make it, so the
    // wire list is made by hand).
    const wire = toWireDeviceList(v2);
    const badPrimary = { ...v2, version: 7, devices: v2.devices.map((d) => (d.primary ? { ...d, authSpki: Buffer.from(mallory.sigSpki) } : d)), signature: Buffer.alloc(64, 1) };
    expect(wire.devices.length).toBe(2);
    expect(await refusedList(a, badPrimary)).toBe("malformed list: the primary device's key is not the identity key");
    // Two primaries, none, or no device at all.
    expect(await refusedList(a, { ...v2, version: 8, devices: [], signature: Buffer.alloc(64, 1) })).toBe("malformed list: it lists no device");

    // Nothing of that changed what the relay keeps and routes by.
    const b2 = await connectV2(relay, bob);
    b2.write({ $case: "fetchDeviceLists", value: { requestId: 4, usernames: ["alice"] } });
    const kept = await b2.next("deviceListResult", (r) => r.requestId === 4);
    expect(kept.lists.map((l) => [l.version, l.devices.length])).toEqual([[2, 2]]);
    expect(Buffer.from(kept.lists[0]!.signature).equals(v2.signature)).toBe(true);
    // The sessions go on after each refusal (one sentence each, no disconnect).
    await a.barrier();
  });

  // §8.2 "Releasing a name", found by a red-team review: the released key's live session kept
  // storing a device list (v1000) and KeyPackages under the name, so the new owner's lists were
  // refused as "not newer" and claimers got the old key's KeyPackages.
  it("a name released beside the live relay: the old key's session ends at its next write, and the new owner publishes her list", async () => {
    relay = await TestRelay.start();
    const squatter = await fixtureIdentity("mallory", "alice");
    const pm = await mlsPerson(squatter);
    const m = await connectV2(relay, squatter);
    await publishDeviceListOk(m, deviceListOf(squatter, pm, [], 1, PRIMARY_ID));
    expect(relay.releaseUser("alice")).toBe(true);
    // Its next write: the session ends, nothing is stored.
    m.write({ $case: "publishDeviceList", value: { requestId: 7, list: toWireDeviceList(deviceListOf(squatter, pm, [], 1000, PRIMARY_ID)) } });
    const ended = await m.status();
    expect([ended.code, ended.details]).toEqual([GrpcStatus.PERMISSION_DENIED, "the name 'alice' was released by this relay's operator: this key no longer owns it"]);
    expect(relay.events("devices.published").filter((l) => l["user"] === "alice" && l["version"] === 1000)).toHaveLength(0);
    // The real alice binds the name and keeps her first list.
    const a = await connectV2(relay, alice);
    const kept = await publishDeviceListOk(a, deviceListOf(alice, pa, [], 1, PRIMARY_ID));
    expect(kept.lists.map((l) => [l.username, l.version])).toEqual([["alice", 1]]);
  });

  it("a list kept through another relay of the cluster that this one has not heard of yet: its resend is answered as kept, another list of that version refused", async () => {
    relay = await TestRelay.start();
    const a = await connectV2(relay, alice);
    const desktop = await makeLinkedDevice(alice);
    await publishDeviceListOk(a, deviceListOf(alice, pa, [], 1, PRIMARY_ID));
    // Version 2 is kept through another writer (another relay); this relay's cache still has 1.
    const v2 = deviceListOf(alice, pa, [desktop], 2, PRIMARY_ID);
    const bytes = DeviceList.encode(toWireDeviceList(v2)).finish();
    expect(relay.besideRelay((s) => s.replaceDeviceList({ username: "alice", version: 2, list: bytes, keyPackagesOf: [], dropped: [] }))).toBe(true);
    // The primary's answer was lost and it came back here: the same list again.
    const again = await publishDeviceListOk(a, v2);
    expect(again.lists.map((l) => [l.username, l.version, l.devices.length])).toEqual([["alice", 2, 2]]);
    expect(relay.events("devices.publish_duplicate")).toHaveLength(1);
    expect(relay.events("devices.published").filter((l) => l["user"] === "alice")).toHaveLength(1);
    // A list of version 2 that is not the kept one (another body, properly signed) is not newer.
    expect(await refusedList(a, deviceListOf(alice, pa, [], 2, PRIMARY_ID))).toContain("the relay keeps version 2 of alice's list, and this one is version 2 (v2 <= v2)");
    // Routing follows the kept list: the desktop is a device of alice here now.
    const b = await connectV2(relay, bob);
    b.write({ $case: "fetchDeviceLists", value: { requestId: 5, usernames: ["alice"] } });
    const kept = await b.next("deviceListResult", (r) => r.requestId === 5);
    expect(kept.lists.map((l) => [l.version, l.devices.length])).toEqual([[2, 2]]);
  });
});

describe("hostile devices in the handshake (§9.1)", () => {
  it("a device key not in the list ends with DEVICE_UNKNOWN and one sentence; so does the primary's key as a device key", async () => {
    relay = await TestRelay.start();
    const a = await connectV2(relay, alice);
    const desktop = await makeLinkedDevice(alice);
    await publishDeviceListOk(a, deviceListOf(alice, pa, [desktop], 1, PRIMARY_ID));
    const stranger = await makeLinkedDevice(alice, "stranger");
    const s = await openDevice(relay, alice, stranger);
    const end = await s.ended;
    expect(end.errorCode).toBe("ERROR_CODE_DEVICE_UNKNOWN");
    expect(end.details).toBe("this device is not linked to alice (never linked, or unlinked): run chat-tui alice --link");
    // device_spki = the identity key (the primary's auth key): the primary proves without device_spki.
    const p = await openDevice(relay, alice, { deviceKey: alice.sigPrivate, deviceSpki: Buffer.from(alice.sigSpki) });
    expect((await p.ended).errorCode).toBe("ERROR_CODE_DEVICE_UNKNOWN");
    await a.barrier();
  });

  it("a device proof signed by another key than the device key is PROOF_INVALID (the identity key's proof too)", async () => {
    relay = await TestRelay.start();
    const a = await connectV2(relay, alice);
    const desktop = await makeLinkedDevice(alice);
    await publishDeviceListOk(a, deviceListOf(alice, pa, [desktop], 1, PRIMARY_ID));
    for (const key of [ed25519Pair().privateKey, alice.sigPrivate]) {
      const s = await openDevice(relay, alice, desktop, { proofKey: key });
      const end = await s.ended;
      expect(end.errorCode).toBe("ERROR_CODE_PROOF_INVALID");
    }
    // The real device key still gets in.
    const ok = await connectDevice(relay, alice, desktop);
    expect(ok.welcome.deviceId).toBe(desktop.deviceId);
  });

  it("a device claiming another user's name, or a name under other keys, or a name not bound, gets no session and binds nothing", async () => {
    relay = await TestRelay.start();
    const a = await connectV2(relay, alice);
    const desktop = await makeLinkedDevice(alice);
    await publishDeviceListOk(a, deviceListOf(alice, pa, [desktop], 1, PRIMARY_ID));
    await connectV2(relay, bob);
    // alice's listed device says it is bob's (with bob's public keys): not in bob's list.
    const asBob = await openDevice(relay, bob, desktop);
    expect((await asBob.ended).errorCode).toBe("ERROR_CODE_DEVICE_UNKNOWN");
    // alice's name with mallory's identity keys: the name is bound to other keys.
    const malAlice = await openDevice(relay, { ...mallory, username: "alice" }, desktop);
    expect((await malAlice.ended).errorCode).toBe("ERROR_CODE_USERNAME_TAKEN");
    // carol's name, never bound, with carol's keys: a linked device never registers a name.
    const asCarol = await openDevice(relay, carol, desktop);
    expect((await asCarol.ended).errorCode).toBe("ERROR_CODE_DEVICE_UNKNOWN");
    const c = await connectV2(relay, carol); // the name is still free for carol's primary
    expect(c.welcome.username).toBe("carol");
    expect(relay.events("user.bound").map((l) => l.user)).toEqual(["alice", "bob", "carol"]);
  });
});

describe("unlinking and KeyPackages per device", () => {
  it("an unlinked device: its live session ends (DEVICE_UNKNOWN), its queue and KeyPackages go (envelope refcounts right), and it cannot come back", async () => {
    relay = await TestRelay.start();
    const a1 = await connectV2(relay, alice);
    const desktop = await makeLinkedDevice(alice, "desktop");
    const phone = await makeLinkedDevice(alice, "phone");
    await publishDeviceListOk(a1, deviceListOf(alice, pa, [desktop, phone], 1, PRIMARY_ID));
    const d = await connectDevice(relay, alice, desktop);
    const ph = await connectDevice(relay, alice, phone);
    await must(ph, { $case: "publishKeyPackages", value: { requestId: 0, oneTime: [await makeKeyPackage(phone.person)], lastResort: await makeKeyPackage(phone.person, true) } }, "keyPackageStatus");
    const b = await connectV2(relay, bob);
    const g = await liveGroup(relay, a1, [alice, bob], "#ops", { bob: b });
    await takeMls(d, 1);
    await takeMls(ph, 1);
    await waitForEmptyQueue(relay, deviceAddress(phone));
    await relay.disconnect(ph, "alice");
    // Two messages wait for the phone (offline); the primary and the desktop read theirs.
    for (const t of ["one", "two"]) await sendMlsAccepted(b, await g.say("bob", t));
    await takeMls(a1, 2);
    await takeMls(d, 2);
    await waitForEmptyQueue(relay, "alice");
    await waitForEmptyQueue(relay, deviceAddress(desktop));
    expect(queuedRows(relay, deviceAddress(phone))).toBe(2);
    expect(storedMlsRefs(relay).slice(-2)).toEqual([1, 1]); // only the phone's rows hold them now

    // alice's primary unlinks both linked devices.
    await publishDeviceListOk(a1, deviceListOf(alice, pa, [], 2, PRIMARY_ID));
    const end = await d.ended;
    expect(end.errorCode).toBe("ERROR_CODE_DEVICE_UNKNOWN");
    expect(end.details).toBe("this device was unlinked by alice's primary device");
    expect(queuedRows(relay, deviceAddress(phone))).toBe(0);
    expect(storedMlsRefs(relay).slice(-2)).toEqual([]); // the envelopes nobody waits for are gone
    // Its KeyPackages are gone: bob gets none of the phone's.
    const c = await ask(b, { $case: "claimKeyPackages", value: { requestId: 0, usernames: ["alice"], deviceIds: [] } }, "keyPackageList");
    expect(c.ok && c.value).toMatchObject({ entries: [], missing: ["alice"] });
    // New traffic goes to the primary only.
    await sendMlsAccepted(b, await g.say("bob", "three"));
    await takeMls(a1, 1);
    expect(queuedRows(relay, deviceAddress(phone)) + queuedRows(relay, deviceAddress(desktop))).toBe(0);
    // Neither comes back.
    for (const dev of [desktop, phone]) {
      const s = await openDevice(relay, alice, dev);
      expect((await s.ended).errorCode).toBe("ERROR_CODE_DEVICE_UNKNOWN");
    }
    await a1.barrier();
  });

  it("a device publishing a KeyPackage of another device's MLS key (or of a key not listed) is refused with BAD_MLS_MESSAGE", async () => {
    relay = await TestRelay.start();
    const a1 = await connectV2(relay, alice);
    const desktop = await makeLinkedDevice(alice, "desktop");
    await publishDeviceListOk(a1, deviceListOf(alice, pa, [desktop], 1, PRIMARY_ID));
    const d = await connectDevice(relay, alice, desktop);
    // The desktop uploads the primary's KeyPackage (validly made by alice's primary MLS client).
    const stolen = await ask(d, { $case: "publishKeyPackages", value: { requestId: 0, oneTime: [await makeKeyPackage(pa)], lastResort: Buffer.alloc(0) } }, "keyPackageStatus");
    expect(stolen.ok).toBe(false);
    expect(!stolen.ok && stolen.value).toMatchObject({ code: ErrorCode.ERROR_CODE_BAD_MLS_MESSAGE });
    expect(!stolen.ok && stolen.value.detail).toBe("one-time KeyPackage #1 is signed with another MLS key than this device's (desktop) in your device list; a device publishes only its own KeyPackages");
    // The primary uploads the desktop's; and an unlisted MLS key vouched for by alice's identity key.
    const other = await ask(a1, { $case: "publishKeyPackages", value: { requestId: 0, oneTime: [], lastResort: await makeKeyPackage(desktop.person, true) } }, "keyPackageStatus");
    expect(!other.ok && other.value.code).toBe(ErrorCode.ERROR_CODE_BAD_MLS_MESSAGE);
    const unlisted = await mlsPerson(alice);
    const u = await ask(a1, { $case: "publishKeyPackages", value: { requestId: 0, oneTime: [await makeKeyPackage(unlisted)], lastResort: Buffer.alloc(0) } }, "keyPackageStatus");
    expect(!u.ok && u.value.code).toBe(ErrorCode.ERROR_CODE_BAD_MLS_MESSAGE);
    // Nothing was stored: bob claims nothing of alice's.
    const b = await connectV2(relay, bob);
    const c = await ask(b, { $case: "claimKeyPackages", value: { requestId: 0, usernames: ["alice"], deviceIds: [] } }, "keyPackageList");
    expect(c.ok && c.value.missing).toEqual(["alice"]);
    // Each its own: accepted.
    await must(d, { $case: "publishKeyPackages", value: { requestId: 0, oneTime: [await makeKeyPackage(desktop.person)], lastResort: Buffer.alloc(0) } }, "keyPackageStatus");
    await must(a1, { $case: "publishKeyPackages", value: { requestId: 0, oneTime: [await makeKeyPackage(pa)], lastResort: Buffer.alloc(0) } }, "keyPackageStatus");
  });

  it("the first list drops the primary's KeyPackages made for another MLS key than the one it lists", async () => {
    relay = await TestRelay.start();
    const a1 = await connectV2(relay, alice);
    const old = await mlsPerson(alice); // an MLS key the list will not name
    await must(a1, { $case: "publishKeyPackages", value: { requestId: 0, oneTime: [await makeKeyPackage(old), await makeKeyPackage(pa)], lastResort: await makeKeyPackage(old, true) } }, "keyPackageStatus");
    await publishDeviceListOk(a1, deviceListOf(alice, pa, [], 1, PRIMARY_ID));
    const b = await connectV2(relay, bob);
    const first = await must(b, { $case: "claimKeyPackages", value: { requestId: 0, usernames: ["alice"], deviceIds: [] } }, "keyPackageList");
    expect(first.entries.map((e) => [e.deviceId, e.lastResort])).toEqual([[PRIMARY_ID, false]]);
    const second = await must(b, { $case: "claimKeyPackages", value: { requestId: 0, usernames: ["alice"], deviceIds: [] } }, "keyPackageList");
    expect(second).toMatchObject({ entries: [], missing: ["alice"] });
  });
});
