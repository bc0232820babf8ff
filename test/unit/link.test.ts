// Linking's pure part (PROTOCOL.md §4.6): the code, rendezvous, link key and SAS as known
// answers, and one negative test per thing a hostile relay or a code-thief could try.
import { generateKeyPairSync } from "node:crypto";
import { describe, expect, it } from "vitest";
import { newDeviceId, signDeviceList, type DeviceEntry, type SignedDeviceList } from "../../src/protocol/devices.js";
import {
  DECLINE_PLAINTEXT, decodeHello, decodeOffer, decodeStepThree, encodeBundle, encodeHello, encodeOffer, fitLinkPins, formatLinkCode, LINK_MAX_PAYLOAD_BYTES, linkKey, linkSas, LinkStep,
  newLinkCode, openLinkMessage, parseLinkCode, rendezvousOf, sealLinkMessage, verifyBundle, type LinkHello, type LinkOffer,
} from "../../src/protocol/link.js";
import { fixtureIdentity } from "../helpers/identities.js";

const FIXED_CODE = Buffer.from("00112233445566778899", "hex");
const spki = (k: { export(o: { format: "der"; type: "spki" }): Buffer }): Buffer => k.export({ format: "der", type: "spki" });

async function world() {
  const alice = await fixtureIdentity("alice");
  const device = generateKeyPairSync("ed25519");
  const offer: LinkOffer = { username: "alice", deviceId: "8899aabbccddeeff", name: "desktop", deviceSpki: spki(device.publicKey), mlsSignatureKey: Buffer.alloc(32, 7) };
  const hello: LinkHello = { username: "alice", identitySpki: alice.sigSpki, encSpki: alice.encSpki, encKeySig: alice.encKeySig };
  const primary: DeviceEntry = { deviceId: "00112233445566aa", name: "laptop", authSpki: alice.sigSpki, mlsSignatureKey: Buffer.alloc(32, 1), addedAtMs: 1, primary: true };
  const added: DeviceEntry = { deviceId: offer.deviceId, name: offer.name, authSpki: offer.deviceSpki, mlsSignatureKey: offer.mlsSignatureKey, addedAtMs: 2, primary: false };
  const list = signDeviceList({ username: "alice", version: 2, issuedAtMs: 3, devices: [primary, added] }, alice.sigPrivate, alice.sigSpki);
  return { alice, device, offer, hello, primary, added, list };
}

describe("the link code (PROTOCOL.md §4.6)", () => {
  it("formats 10 bytes as 16 Crockford characters and parses them back", () => {
    expect(formatLinkCode(FIXED_CODE)).toBe("008J-4CT4-ANK7-F24S");
    for (let i = 0; i < 50; i++) {
      const c = newLinkCode();
      const shown = formatLinkCode(c);
      expect(shown).toMatch(/^[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){3}$/);
      const back = parseLinkCode(shown);
      expect(back.ok && back.code.equals(c)).toBe(true);
    }
  });

  it("is tolerant of case, spaces, dashes and Crockford's look-alikes", () => {
    for (const typed of ["008j-4ct4-ank7-f24s", " 008J4CT4 ANK7F24S ", "oo8j-4ct4-ank7-f24s", "008J 4CT4-ANK7 F24S"]) {
      const p = parseLinkCode(typed);
      expect(p.ok && p.code.equals(FIXED_CODE), typed).toBe(true);
    }
    const withI = parseLinkCode("I08J-4CT4-ANK7-F24S");
    const withL = parseLinkCode("l08J-4CT4-ANK7-F24S");
    const with1 = parseLinkCode("108J-4CT4-ANK7-F24S");
    expect(withI.ok && withL.ok && with1.ok && withI.code.equals(with1.code) && withL.code.equals(with1.code)).toBe(true);
  });

  it("says what is wrong with a wrong length or character", () => {
    expect(parseLinkCode("0049-08HM-8NB7")).toEqual({ ok: false, reason: expect.stringMatching(/has 16 characters, this has 12/) });
    expect(parseLinkCode("0049-08HM-8NB7-F26SX")).toEqual({ ok: false, reason: expect.stringMatching(/this has 17/) });
    expect(parseLinkCode("0049-08HM-8NB7-F2US")).toEqual({ ok: false, reason: expect.stringMatching(/'U' cannot be in a link code/) });
    expect(parseLinkCode("0049-08HM-8NB7-F2\u001bS")).toEqual({ ok: false, reason: expect.stringMatching(/^a character cannot be/) });
    expect(parseLinkCode("")).toEqual({ ok: false, reason: expect.stringMatching(/a link code is needed/) });
  });

  // Known answers computed apart from this code (Python hashlib/hmac, RFC 5869 by hand).
  it("derives the rendezvous, K and the SAS (known answers)", () => {
    expect(rendezvousOf(FIXED_CODE).toString("hex")).toBe("f131910b61bf978b794f51ad71442d8e");
    expect(linkKey(FIXED_CODE).toString("hex")).toBe("04ebfcadc0fa7bf746b93af38e5d99dcb417f0a47a605030d848ec9eb3c267f6");
    expect(linkSas(linkKey(FIXED_CODE), Buffer.from("offer"), Buffer.from("hello"))).toBe("999 415");
    expect(rendezvousOf(FIXED_CODE)).toHaveLength(16);
    // The rendezvous says nothing about K: a different derivation.
    expect(linkKey(FIXED_CODE).subarray(0, 16).equals(rendezvousOf(FIXED_CODE))).toBe(false);
  });
});

describe("sealed link messages", () => {
  it("round-trips OFFER, HELLO and BUNDLE; the new device verifies the bundle", async () => {
    const { offer, hello, list } = await world();
    const k = linkKey(FIXED_CODE);
    const o = openLinkMessage(k, LinkStep.offer, sealLinkMessage(k, LinkStep.offer, encodeOffer(offer)));
    expect(decodeOffer(o)).toEqual(offer);
    const h = openLinkMessage(k, LinkStep.hello, sealLinkMessage(k, LinkStep.hello, encodeHello(hello)));
    expect(decodeHello(h)).toEqual(hello);
    const bob = await fixtureIdentity("bob");
    const pins = [{ username: "bob", sigSpki: bob.sigSpki, encSpki: bob.encSpki, encKeySig: bob.encKeySig, verified: true, pinnedAtMs: 1_700_000_000_000 }];
    const b = decodeStepThree(openLinkMessage(k, LinkStep.bundle, sealLinkMessage(k, LinkStep.bundle, encodeBundle({ identitySig: Buffer.alloc(64, 5), list, pins }))));
    if (b.kind !== "bundle") throw new Error("expected a bundle");
    expect(verifyBundle(b.bundle, offer, hello).version).toBe(2);
    // The primary's pins of contacts come through as sent (PROTOCOL.md §4.6).
    expect(b.bundle.pins).toEqual(pins);
    expect(decodeStepThree(DECLINE_PLAINTEXT)).toEqual({ kind: "declined" });
  });

  it("refuses a tampered payload", () => {
    const k = linkKey(FIXED_CODE);
    const sealed = sealLinkMessage(k, LinkStep.offer, Buffer.from("x"));
    for (const at of [0, 12, 28, sealed.length - 1]) {
      const t = Buffer.from(sealed);
      t[at]! ^= 1;
      expect(() => openLinkMessage(k, LinkStep.offer, t)).toThrow(/does not open with this code/);
    }
    expect(() => openLinkMessage(k, LinkStep.offer, sealed.subarray(0, 20))).toThrow(/impossible size/);
  });

  it("refuses a message replayed at another step", () => {
    const k = linkKey(FIXED_CODE);
    const offerSealed = sealLinkMessage(k, LinkStep.offer, Buffer.from("x"));
    expect(() => openLinkMessage(k, LinkStep.hello, offerSealed)).toThrow(/does not open/);
    expect(() => openLinkMessage(k, LinkStep.bundle, offerSealed)).toThrow(/does not open/);
  });

  it("refuses a message sealed with another code (a wrong code typed)", () => {
    const sealed = sealLinkMessage(linkKey(FIXED_CODE), LinkStep.offer, Buffer.from("x"));
    const other = Buffer.from(FIXED_CODE);
    other[9]! ^= 1;
    expect(() => openLinkMessage(linkKey(other), LinkStep.offer, sealed)).toThrow(/does not open with this code/);
    expect(rendezvousOf(other).equals(rendezvousOf(FIXED_CODE))).toBe(false);
  });

  it("a relay swapping the OFFER: its own does not open; with the code stolen, the SAS differs", async () => {
    const { offer, hello } = await world();
    const k = linkKey(FIXED_CODE);
    // The relay without the code seals under a key of its choosing: nothing opens.
    const relayKey = linkKey(newLinkCode());
    expect(() => openLinkMessage(k, LinkStep.offer, sealLinkMessage(relayKey, LinkStep.offer, encodeOffer(offer)))).toThrow(/does not open/);
    // Someone who saw the code sends an OFFER of their own device: the primary's SAS (over that
    // offer) is not the one the real new device shows (over its own).
    const thief: LinkOffer = { ...offer, deviceId: newDeviceId(), deviceSpki: spki(generateKeyPairSync("ed25519").publicKey), mlsSignatureKey: Buffer.alloc(32, 9) };
    const helloBytes = encodeHello(hello);
    expect(linkSas(k, encodeOffer(thief), helloBytes)).not.toBe(linkSas(k, encodeOffer(offer), helloBytes));
    // Likewise a HELLO of another user's identity changes the SAS the new device shows.
    const mallory = await fixtureIdentity("mallory", "alice");
    const fakeHello = encodeHello({ username: "alice", identitySpki: mallory.sigSpki, encSpki: mallory.encSpki, encKeySig: mallory.encKeySig });
    expect(linkSas(k, encodeOffer(offer), fakeHello)).not.toBe(linkSas(k, encodeOffer(offer), helloBytes));
  });

  it("decodes a BUNDLE's pins strictly, and keeps to the payload budget (verified pins first)", async () => {
    const { list } = await world();
    const bob = await fixtureIdentity("bob");
    const pin = { username: "bob", sigSpki: bob.sigSpki, encSpki: bob.encSpki, encKeySig: bob.encKeySig, verified: false, pinnedAtMs: 5 };
    const two = encodeBundle({ identitySig: Buffer.alloc(64), list, pins: [pin, { ...pin, username: "carol" }] });
    // A count that does not match the fields, a repeated user, a verified flag other than 0/1.
    const countAt = two.indexOf(Buffer.from([0, 0, 0, 4, 0, 0, 0, 2]));
    const wrongCount = Buffer.from(two);
    wrongCount.writeUInt32BE(3, countAt + 4);
    expect(() => decodeStepThree(wrongCount)).toThrow(/announces 3 pins/);
    expect(() => encodeBundle({ identitySig: Buffer.alloc(64), list, pins: [pin, pin] })).toThrow(/invalid or repeated/);
    const flag = encodeBundle({ identitySig: Buffer.alloc(64), list, pins: [pin] });
    const bad = Buffer.from(flag);
    bad.writeUInt32BE(2, flag.length - 8 - 4 - 4);
    expect(() => decodeStepThree(bad)).toThrow(/malformed/);
    // Many pins: what fits the budget goes, verified ones first.
    const many = Array.from({ length: 400 }, (_, i) => ({ ...pin, username: `user${i}`, verified: i === 399, pinnedAtMs: i }));
    const fitted = fitLinkPins(many);
    expect(fitted.length).toBeLessThan(400);
    expect(fitted[0]!.username).toBe("user399");
    expect(encodeBundle({ identitySig: Buffer.alloc(64), list, pins: fitted }).length).toBeLessThan(LINK_MAX_PAYLOAD_BYTES - 1024);
  });

  it("refuses a BUNDLE whose list does not name the new device", async () => {
    const { alice, offer, hello, primary, added } = await world();
    const without = signDeviceList({ username: "alice", version: 2, issuedAtMs: 3, devices: [primary] }, alice.sigPrivate, alice.sigSpki);
    expect(() => verifyBundle({ identitySig: Buffer.alloc(64), list: without, pins: [] }, offer, hello)).toThrow(/does not name this device/);
    const otherKey = signDeviceList({ username: "alice", version: 2, issuedAtMs: 3, devices: [primary, { ...added, mlsSignatureKey: Buffer.alloc(32, 8) }] }, alice.sigPrivate, alice.sigSpki);
    expect(() => verifyBundle({ identitySig: Buffer.alloc(64), list: otherKey, pins: [] }, offer, hello)).toThrow(/other keys or another name/);
  });

  it("refuses a BUNDLE not signed by HELLO's identity key", async () => {
    const { offer, hello, primary, added, list } = await world();
    const mallory = await fixtureIdentity("mallory", "alice");
    const byMallory: SignedDeviceList = signDeviceList({ username: "alice", version: 2, issuedAtMs: 3, devices: [{ ...primary, authSpki: mallory.sigSpki }, added] }, mallory.sigPrivate, mallory.sigSpki);
    expect(() => verifyBundle({ identitySig: Buffer.alloc(64), list: byMallory, pins: [] }, offer, hello)).toThrow(/not alice's/);
    const edited = { ...list, version: 3 };
    expect(() => verifyBundle({ identitySig: Buffer.alloc(64), list: edited, pins: [] }, offer, hello)).toThrow(/not signed by their identity key/);
    expect(() => verifyBundle({ identitySig: Buffer.alloc(64), list, pins: [] }, { ...offer, username: "bob" }, hello)).toThrow(/signed in as 'alice', not 'bob'/);
  });

  it("decodes strictly: wrong label, trailing bytes, bad fields", async () => {
    const { offer, hello } = await world();
    const o = encodeOffer(offer);
    expect(() => decodeOffer(Buffer.concat([o, Buffer.alloc(1)]))).toThrow(/trailing bytes/);
    expect(() => decodeOffer(o.subarray(0, o.length - 1))).toThrow(/truncated/);
    expect(() => decodeHello(o)).toThrow(/expected a hello/);
    expect(() => encodeOffer({ ...offer, name: "bad\u001b[2Jname" })).toThrow(/device name/);
    expect(() => encodeOffer({ ...offer, mlsSignatureKey: Buffer.alloc(31) })).toThrow(/32 bytes/);
    expect(() => encodeHello({ ...hello, encKeySig: Buffer.alloc(64) })).toThrow(/does not vouch/);
    expect(() => decodeStepThree(Buffer.from("junk"))).toThrow(/truncated|expected a bundle/);
  });
});
