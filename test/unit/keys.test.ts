import { createHash, createPublicKey, generateKeyPairSync, randomBytes, sign } from "node:crypto";
import { beforeAll, describe, expect, it } from "vitest";
import { isProtocolError } from "../../src/protocol/errors.js";
import {
  importPublicIdentity, keyBindingBytes, PLAINTEXT_CHANNEL_BINDING, proofBytes, signProof, tlsChannelBinding, verifyProof,
  type PrivateIdentity,
} from "../../src/protocol/keys.js";

/**
 * PROTOCOL.md §15, computed by an independent implementation (Python hashlib): relay_id 07x16,
 * nonce 09x32, username alice, sig_spki 0bx44, enc_spki 0cx20, certificate DER 30 82.
 */
const PROOF_VECTOR = {
  binding: "9df0692e6d29b2a40631cd75ea0ce46206374edcb7a7950ce3180025c7088a00",
  proofBytesSha256: "c47975fac5085c38f3e04493f3739affec5a7c5b73f5812dcbb6424693770933",
};

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}
import { fixtureIdentity, fixtureKeys } from "../helpers/identities.js";

let alice: PrivateIdentity;
let mallory: PrivateIdentity;
beforeAll(async () => {
  alice = await fixtureIdentity("alice");
  mallory = await fixtureIdentity("mallory");
});

function spki(k: Parameters<typeof createPublicKey>[0]): Buffer {
  return createPublicKey(k).export({ format: "der", type: "spki" });
}

function presented(encPrivate: Parameters<typeof createPublicKey>[0], username = "alice") {
  const encSpki = spki(encPrivate);
  return { username, sigSpki: alice.sigSpki, encSpki, encKeySig: sign(null, keyBindingBytes(username, encSpki), alice.sigPrivate) };
}

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (isProtocolError(e)) return `${e.code}: ${e.message}`;
    throw e;
  }
  return "accepted";
}

describe("peer key checks (PROTOCOL.md Identity)", () => {
  it("accepts a well-formed identity and computes fingerprints", () => {
    const id = importPublicIdentity(alice);
    expect(id.sigFpr.length).toBe(32);
    expect(id.encFpr.equals(alice.encFpr)).toBe(true);
  });

  it("refuses an RSA key below 2048 bits", () => {
    const [, weak] = fixtureKeys("weak");
    expect(refusal(() => importPublicIdentity(presented(weak!)))).toMatch(/^bad-key: RSA key of 1024 bits is too weak/);
  });

  it("accepts 2048 bits (the floor)", () => {
    const [, small] = fixtureKeys("small");
    expect(refusal(() => importPublicIdentity(presented(small!)))).toBe("accepted");
  });

  it("refuses a public exponent other than 65537", () => {
    const [e3] = fixtureKeys("rsa-e3");
    expect(refusal(() => importPublicIdentity(presented(e3!)))).toMatch(/^bad-key: RSA public exponent must be 65537/);
  });

  it("refuses keys of the wrong type in either slot", () => {
    const ec = generateKeyPairSync("ec", { namedCurve: "P-256" });
    expect(refusal(() => importPublicIdentity(presented(ec.privateKey)))).toMatch(/^bad-key: encryption key must be RSA/);
    expect(refusal(() => importPublicIdentity({ ...alice, sigSpki: alice.encSpki }))).toMatch(/^bad-key: signing key must be Ed25519/);
    const pss = generateKeyPairSync("rsa-pss", { modulusLength: 2048 });
    expect(refusal(() => importPublicIdentity(presented(pss.privateKey)))).toMatch(/^bad-key: encryption key must be RSA, not rsa-pss/);
  });

  it("refuses garbage and non-canonical encodings", () => {
    expect(refusal(() => importPublicIdentity({ ...alice, encSpki: randomBytes(300) }))).toMatch(/^bad-key/);
    expect(refusal(() => importPublicIdentity({ ...alice, encSpki: Buffer.concat([alice.encSpki, Buffer.from([0])]) }))).toMatch(/^bad-key/);
    expect(refusal(() => importPublicIdentity({ ...alice, encSpki: Buffer.alloc(0) }))).toMatch(/^bad-key/);
  });

  it("refuses an encryption key the signing key did not vouch for (relay swaps the RSA key)", () => {
    expect(refusal(() => importPublicIdentity({ ...alice, encSpki: mallory.encSpki }))).toMatch(/^bad-key-binding/);
    // A binding made for another username does not transfer.
    const forBob = sign(null, keyBindingBytes("bob", alice.encSpki), alice.sigPrivate);
    expect(refusal(() => importPublicIdentity({ ...alice, encKeySig: forBob }))).toMatch(/^bad-key-binding/);
  });

  it("refuses a username outside the policy", () => {
    expect(refusal(() => importPublicIdentity({ ...alice, username: "../alice" }))).toMatch(/^malformed/);
  });
});

describe("proof of possession (PROTOCOL.md Session)", () => {
  const relayId = Buffer.alloc(16, 7);
  const nonce = Buffer.alloc(32, 9);

  const binding = tlsChannelBinding(Buffer.from("a relay certificate"));

  it("verifies for the right challenge only", () => {
    const proof = signProof(alice, relayId, nonce, binding);
    expect(verifyProof(alice, relayId, nonce, binding, proof)).toBe(true);
    expect(verifyProof(alice, Buffer.alloc(16, 8), nonce, binding, proof)).toBe(false); // another relay
    expect(verifyProof(alice, relayId, Buffer.alloc(32, 1), binding, proof)).toBe(false); // an old nonce
    expect(verifyProof({ ...alice, username: "alicia" }, relayId, nonce, binding, proof)).toBe(false);
    expect(verifyProof(alice, relayId, nonce, binding, signProof(mallory, relayId, nonce, binding))).toBe(false);
    expect(verifyProof(alice, relayId, nonce, binding, proof.subarray(1))).toBe(false);
  });

  it("binds the relay certificate the client saw (a man in the middle's certificate, or plaintext, does not verify)", () => {
    const proof = signProof(alice, relayId, nonce, binding);
    expect(verifyProof(alice, relayId, nonce, tlsChannelBinding(Buffer.from("another certificate")), proof)).toBe(false);
    expect(verifyProof(alice, relayId, nonce, PLAINTEXT_CHANNEL_BINDING, proof)).toBe(false);
    const plain = signProof(alice, relayId, nonce, PLAINTEXT_CHANNEL_BINDING);
    expect(verifyProof(alice, relayId, nonce, PLAINTEXT_CHANNEL_BINDING, plain)).toBe(true);
    expect(verifyProof(alice, relayId, nonce, binding, plain)).toBe(false);
    expect(() => signProof(alice, relayId, nonce, Buffer.alloc(31))).toThrow(/channel binding/);
  });

  it("matches the known-answer vector of PROTOCOL.md §15", () => {
    // Independent of the code under test: enc() written out by hand.
    const certificate = Buffer.from("3082", "hex");
    const expectBinding = createHash("sha256").update(certificate).digest();
    expect(tlsChannelBinding(certificate)).toEqual(expectBinding);
    const field = (b: Buffer): Buffer => Buffer.concat([u32(b.length), b]);
    const manual = Buffer.concat([
      field(Buffer.from("securechat/v1/proof")), field(relayId), field(nonce), field(Buffer.from("alice")),
      field(alice.sigSpki), field(alice.encSpki), field(expectBinding),
    ]);
    const bytes = proofBytes({ relayId, nonce, username: "alice", sigSpki: alice.sigSpki, encSpki: alice.encSpki, channelBinding: expectBinding });
    expect(bytes).toEqual(manual);
    expect(expectBinding.toString("hex")).toBe(PROOF_VECTOR.binding);
    expect(createHash("sha256").update(proofBytes({
      relayId, nonce, username: "alice", sigSpki: Buffer.alloc(44, 0x0b), encSpki: Buffer.alloc(20, 0x0c), channelBinding: expectBinding,
    })).digest("hex")).toBe(PROOF_VECTOR.proofBytesSha256);
  });
});
