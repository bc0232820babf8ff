// Who the client is and how it proves it (PROTOCOL.md §4.5, §9.1): the primary with its identity
// key, a linked device with its device key and only the public halves of the user's keys.
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { helloDeviceSpki, linkedIdentity, mlsStoreOptions, primaryIdentity, privateView, proveSession, storeKeyOf } from "../../src/client/local-identity.js";
import { newDeviceId, verifyDeviceProof } from "../../src/protocol/devices.js";
import { verifyProof } from "../../src/protocol/keys.js";
import { fixtureIdentity } from "../helpers/identities.js";

const relayId = randomBytes(16);
const nonce = randomBytes(32);
const binding = randomBytes(32);

describe("local identity (PROTOCOL.md §4.5, §9.1)", () => {
  it("the primary proves with its identity key and sends no device key", async () => {
    const alice = await fixtureIdentity("alice");
    const me = primaryIdentity(alice);
    expect(helloDeviceSpki(me).length).toBe(0);
    expect(verifyProof(alice, relayId, nonce, binding, proveSession(me, relayId, nonce, binding))).toBe(true);
    expect(privateView(me)).toBe(alice);
    expect(storeKeyOf(me).sigPrivate).toBe(alice.sigPrivate);
    expect(mlsStoreOptions(me)).toEqual({});
  });

  it("a linked device proves with its device key, seals with it, and has no RSA private key", async () => {
    const alice = await fixtureIdentity("alice");
    const deviceKey = generateKeyPairSync("ed25519").privateKey;
    const me = linkedIdentity({ record: { username: "alice", deviceId: newDeviceId(), name: "desktop", identitySpki: alice.sigSpki, encSpki: alice.encSpki, encKeySig: alice.encKeySig, linkedAtMs: 1 }, deviceKey });
    const spki = helloDeviceSpki(me);
    expect(spki.equals(me.deviceSpki)).toBe(true);
    const proof = proveSession(me, relayId, nonce, binding);
    expect(verifyDeviceProof({ relayId, nonce, username: "alice", identitySpki: alice.sigSpki, deviceSpki: spki, channelBinding: binding }, proof)).toBe(true);
    // Not a proof by the identity key.
    expect(verifyProof(alice, relayId, nonce, binding, proof)).toBe(false);
    expect(storeKeyOf(me).sigPrivate).toBe(deviceKey);
    expect(Buffer.from(mlsStoreOptions(me).linkedTo ?? []).equals(alice.sigSpki)).toBe(true);
    const view = privateView(me);
    expect(view.sigSpki.equals(alice.sigSpki)).toBe(true);
    expect(view.sigPrivate).toBe(deviceKey);
    expect(() => view.encPrivate).toThrow(/has no RSA private key: protocol v1 messages cannot be opened on it/);
  });

  it("refuses the identity key as a device key, and a record whose keys do not bind", async () => {
    const alice = await fixtureIdentity("alice");
    const bob = await fixtureIdentity("bob");
    const record = { username: "alice", deviceId: newDeviceId(), name: "desktop", identitySpki: alice.sigSpki, encSpki: alice.encSpki, encKeySig: alice.encKeySig, linkedAtMs: 1 };
    expect(() => linkedIdentity({ record, deviceKey: alice.sigPrivate })).toThrow(/must not be the identity key/);
    expect(() => linkedIdentity({ record: { ...record, encSpki: bob.encSpki }, deviceKey: generateKeyPairSync("ed25519").privateKey })).toThrow(/does not vouch/);
  });
});
