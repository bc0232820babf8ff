// The signed device list and the device proof (PROTOCOL.md §4.5): known-answer bytes, and one
// negative test per thing a hostile relay or peer could try with a list it cannot sign.
import { generateKeyPairSync } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  checkDeviceName, deviceListBytes, deviceProofBytes, fromWireDeviceList, signDeviceList, signDeviceProof, toWireDeviceList,
  verifyDeviceList, verifyDeviceProof, type DeviceEntry, type DeviceListBody,
} from "../../src/protocol/devices.js";
import { sha256 } from "../../src/protocol/encoding.js";
import { fixtureIdentity } from "../helpers/identities.js";

const spki = (k: { export(o: { format: "der"; type: "spki" }): Buffer }): Buffer => k.export({ format: "der", type: "spki" });

async function setup(): Promise<{ body: DeviceListBody; alice: Awaited<ReturnType<typeof fixtureIdentity>>; laptopKey: ReturnType<typeof generateKeyPairSync> }> {
  const alice = await fixtureIdentity("alice");
  const bob = await fixtureIdentity("bob");
  const primary: DeviceEntry = { deviceId: "00112233445566aa", name: "laptop", authSpki: alice.sigSpki, mlsSignatureKey: Buffer.alloc(32, 1), addedAtMs: 1_700_000_000_000, primary: true };
  // A fixed second key (bob's fixture key stands in for a device key) keeps the bytes known.
  const desktop: DeviceEntry = { deviceId: "8899aabbccddeeff", name: "desktop", authSpki: bob.sigSpki, mlsSignatureKey: Buffer.alloc(32, 2), addedAtMs: 1_700_000_100_000, primary: false };
  return { body: { username: "alice", version: 2, issuedAtMs: 1_700_000_200_000, devices: [primary, desktop] }, alice, laptopKey: generateKeyPairSync("ed25519") };
}

describe("device list (PROTOCOL.md §4.5)", () => {
  it("signs the bytes of §4.5 (known answer) and verifies", async () => {
    const { body, alice } = await setup();
    const bytes = deviceListBytes(body, alice.sigSpki);
    expect(bytes.subarray(4, 4 + 25).toString()).toBe("securechat/v1/device-list");
    expect(sha256(bytes).toString("hex")).toBe("0d515f173dbed0eeb65ecf30d112598ffe018a501e144557418039509347491d");
    const signed = signDeviceList(body, alice.sigPrivate, alice.sigSpki);
    const ok = verifyDeviceList(fromWireDeviceList(toWireDeviceList(signed)), "alice", alice.sigSpki);
    expect(ok.devices.map((d) => d.name)).toEqual(["laptop", "desktop"]);
  });

  it("refuses a device added by someone without the identity key (a relay adding a device)", async () => {
    const { body, alice, laptopKey } = await setup();
    const signed = signDeviceList(body, alice.sigPrivate, alice.sigSpki);
    const added = { ...signed, devices: [...signed.devices, { deviceId: "0000000000000001", name: "evil", authSpki: spki(laptopKey.publicKey), mlsSignatureKey: Buffer.alloc(32, 9), addedAtMs: 1, primary: false }] };
    expect(() => verifyDeviceList(added, "alice", alice.sigSpki)).toThrow(/not signed by their identity key/);
    const hidden = { ...signed, devices: signed.devices.slice(0, 1) };
    expect(() => verifyDeviceList(hidden, "alice", alice.sigSpki)).toThrow(/not signed/);
    const renamed = { ...signed, devices: signed.devices.map((d) => ({ ...d, name: d.primary ? d.name : "work" })) };
    expect(() => verifyDeviceList(renamed, "alice", alice.sigSpki)).toThrow(/not signed/);
    const bumped = { ...signed, version: 3 };
    expect(() => verifyDeviceList(bumped, "alice", alice.sigSpki)).toThrow(/not signed/);
  });

  it("refuses another user's list, and a list signed by another identity key", async () => {
    const { body, alice } = await setup();
    const mallory = await fixtureIdentity("mallory");
    const signed = signDeviceList(body, alice.sigPrivate, alice.sigSpki);
    expect(() => verifyDeviceList(signed, "bob", alice.sigSpki)).toThrow(/names 'alice', not 'bob'/);
    const forged = { ...body, devices: body.devices.map((d) => (d.primary ? { ...d, authSpki: mallory.sigSpki } : d)) };
    const bySomeoneElse = signDeviceList(forged, mallory.sigPrivate, mallory.sigSpki);
    expect(() => verifyDeviceList(bySomeoneElse, "alice", alice.sigSpki)).toThrow(/primary device's key is not the identity key/);
    expect(() => signDeviceList(body, mallory.sigPrivate, alice.sigSpki)).toThrow(/does not match/);
  });

  it("enforces the body rules", async () => {
    const { body, alice } = await setup();
    const [p, d] = body.devices as [DeviceEntry, DeviceEntry];
    const cases: [Partial<DeviceListBody>, RegExp][] = [
      [{ version: 0 }, /version/],
      [{ devices: [] }, /no device/],
      [{ devices: [p, { ...d, deviceId: p.deviceId }] }, /twice/],
      [{ devices: [p, { ...d, deviceId: "ABC" }] }, /16 lowercase hex/],
      [{ devices: [p, { ...d, primary: true }] }, /primary device's key|exactly one/],
      [{ devices: [{ ...p, primary: false }, d] }, /only the primary|exactly one/],
      [{ devices: [p, { ...d, mlsSignatureKey: p.mlsSignatureKey }] }, /share a key/],
      [{ devices: [p, { ...d, mlsSignatureKey: Buffer.alloc(31) }] }, /32 bytes/],
      [{ devices: [p, { ...d, name: "a\u001b[2Jb" }] }, /printable/],
      [{ devices: [p, { ...d, authSpki: Buffer.from("nope") }] }, /invalid key/],
      [{ devices: Array.from({ length: 17 }, (_, i) => ({ ...d, deviceId: i.toString(16).padStart(16, "0") })) }, /more than 16/],
    ];
    for (const [over, re] of cases) expect(() => deviceListBytes({ ...body, ...over }, alice.sigSpki)).toThrow(re);
  });

  it("checks device names", () => {
    expect(checkDeviceName("laptop").ok).toBe(true);
    expect(checkDeviceName("").ok).toBe(false);
    expect(checkDeviceName("x".repeat(33)).ok).toBe(false);
    expect(checkDeviceName(" lead").ok).toBe(false);
    expect(checkDeviceName("bell\u0007").ok).toBe(false);
  });
});

describe("device proof (PROTOCOL.md §4.5, §9.1)", () => {
  it("verifies only for this challenge, this device and this channel", async () => {
    const { alice } = await setup();
    const dev = generateKeyPairSync("ed25519");
    const input = { relayId: Buffer.alloc(16, 7), nonce: Buffer.alloc(32, 8), username: "alice", identitySpki: alice.sigSpki, deviceSpki: spki(dev.publicKey), channelBinding: Buffer.alloc(0) };
    const sig = signDeviceProof(dev.privateKey, input);
    expect(verifyDeviceProof(input, sig)).toBe(true);
    expect(verifyDeviceProof({ ...input, nonce: Buffer.alloc(32, 9) }, sig)).toBe(false);
    expect(verifyDeviceProof({ ...input, relayId: Buffer.alloc(16, 1) }, sig)).toBe(false);
    expect(verifyDeviceProof({ ...input, username: "bob" }, sig)).toBe(false);
    expect(verifyDeviceProof({ ...input, channelBinding: Buffer.alloc(32, 3) }, sig)).toBe(false);
    expect(verifyDeviceProof({ ...input, deviceSpki: alice.sigSpki }, sig)).toBe(false);
    // The identity key's own proof label is not this one: a device proof is not an identity proof.
    expect(deviceProofBytes(input).subarray(4, 30).toString()).toBe("securechat/v1/device-proof");
  });
});
