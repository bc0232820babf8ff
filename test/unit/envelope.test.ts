// Seal/open round trips, the known-answer vectors of the signed-bytes encoding, and one
// negative test per attack in protocol.md. Expected KAT values were computed by an independent
// Python implementation of PROTOCOL.md §3 (hashlib + pyca/cryptography for Ed25519).
import { createPrivateKey } from "node:crypto";
import { beforeAll, describe, expect, it } from "vitest";
import {
  chainHasGap, encodeHeader, envelopeHash, headerHash, keyCommitment, MAX_AGE_MS, openEnvelope, padBody,
  sealEnvelope, signedBytes, SUITE_V1, unpadBody, validateEnvelopeShape, verifyEnvelopeSignature, wrapLabel,
  ZERO_HASH, type EnvelopeHeader, type OpenContext, type SealedEnvelope, type SenderKeyLookup,
} from "../../src/protocol/envelope.js";
import { isProtocolError, type ProtocolErrorCode } from "../../src/protocol/errors.js";
import type { PrivateIdentity, PublicIdentity } from "../../src/protocol/keys.js";
import { parseConversationId } from "../../src/protocol/names.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { flip, forgeEnvelope, resign } from "../helpers/forge.js";

let alice: PrivateIdentity;
let bob: PrivateIdentity;
let carol: PrivateIdentity;
let mallory: PrivateIdentity;
let aliceNewKeys: PrivateIdentity; // mallory's keys under alice's name: a key change
const NOW = 1_767_225_600_000; // 2026-01-01T00:00:00Z

beforeAll(async () => {
  [alice, bob, carol, mallory, aliceNewKeys] = await Promise.all([
    fixtureIdentity("alice"), fixtureIdentity("bob"), fixtureIdentity("carol"), fixtureIdentity("mallory"),
    fixtureIdentity("mallory", "alice"),
  ]);
});

function pinsOf(...ids: PublicIdentity[]): (u: string) => SenderKeyLookup {
  const m = new Map(ids.map((i) => [i.username, i]));
  return (u) => {
    const i = m.get(u);
    return i ? { kind: "pinned", sigKey: i.sigKey, sigFpr: i.sigFpr } : { kind: "unknown" };
  };
}

function ctxFor(me: PrivateIdentity, deliveredInto: string, over: Partial<OpenContext> = {}): OpenContext {
  return {
    me, deliveredInto, nowMs: NOW, senderKey: pinsOf(alice, bob, carol, mallory), seen: () => false, ...over,
  };
}

function dm(text = "hi bob", over: Partial<Parameters<typeof sealEnvelope>[0]> = {}): SealedEnvelope {
  return sealEnvelope({
    sender: alice, conversationId: "dm:alice:bob", recipients: [bob], body: { kind: "text", text },
    prev: ZERO_HASH, sentAtMs: NOW, ...over,
  }).envelope;
}

function expectRefused(fn: () => unknown, code?: ProtocolErrorCode): void {
  try {
    fn();
  } catch (e) {
    expect(isProtocolError(e), `expected a ProtocolError, got ${String(e)}`).toBe(true);
    if (code !== undefined) expect((e as { code: string }).code).toBe(code);
    return;
  }
  throw new Error("expected the envelope to be refused, but it opened");
}

function withHeader(e: SealedEnvelope, h: Partial<EnvelopeHeader>): SealedEnvelope {
  return { ...e, header: { ...e.header, ...h } };
}

describe("known-answer vectors (PROTOCOL.md Test vectors)", () => {
  const header: EnvelopeHeader = {
    suite: SUITE_V1,
    conversationId: "dm:alice:bob",
    messageId: Buffer.from([...Array(16).keys()]),
    sender: "alice",
    senderSigFpr: Buffer.alloc(32, 0x11),
    sentAtMs: NOW,
    prev: Buffer.alloc(32),
    iv: Buffer.alloc(12, 0x22),
    recipients: [
      { username: "alice", encFpr: Buffer.alloc(32, 0x33) },
      { username: "bob", encFpr: Buffer.alloc(32, 0x44) },
    ],
    keyCommitment: Buffer.alloc(32, 0x55),
  };
  const body = {
    header,
    ciphertext: Buffer.alloc(256, 0x66),
    tag: Buffer.alloc(16, 0x77),
    wraps: [{ username: "alice", wrappedKey: Buffer.alloc(384, 0x88) }, { username: "bob", wrappedKey: Buffer.alloc(384, 0x99) }],
  };

  it("encodes the header", () => {
    const bytes = encodeHeader(header);
    expect(bytes.length).toBe(354);
    expect(bytes.subarray(0, 24).toString("hex")).toBe("00000014" + Buffer.from("securechat/v1/header").toString("hex"));
    expect(headerHash(header).toString("hex")).toBe("7fde2cce61fff3554860a737162a1e0c1ae1652cbc8f824ff5be3006d385ada1");
  });

  it("builds the signed bytes", () => {
    expect(signedBytes(body).toString("hex")).toBe(
      "00000011736563757265636861742f76312f6d7367" +
      "000000207fde2cce61fff3554860a737162a1e0c1ae1652cbc8f824ff5be3006d385ada1" +
      "00000020b6e665e43e83e468fb38c3fe5a60677bc07052a763baed41556ed0cf84b59cb8" +
      "000000203f3fab952866829d9ec55f74f877821073350c1365d9d20951e705afedc50712",
    );
  });

  it("builds the wrap label and the key commitment", () => {
    expect(wrapLabel(headerHash(header), "bob", Buffer.alloc(32, 0x44)).toString("hex")).toBe(
      "00000012736563757265636861742f76312f77726170" +
      "000000207fde2cce61fff3554860a737162a1e0c1ae1652cbc8f824ff5be3006d385ada1" +
      "00000003626f62" + "00000020" + "44".repeat(32),
    );
    expect(keyCommitment(Buffer.alloc(32, 0xaa), header.messageId).toString("hex"))
      .toBe("0e0cafd29956cac6acb98ab9fcca4617e72020f8d95dbe4a0fd1cb44153d85fc");
  });

  it("signs them with Ed25519 exactly as an independent implementation does", async () => {
    const { sign } = await import("node:crypto");
    const seed = Buffer.alloc(32, 0x01);
    const key = createPrivateKey({ key: Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), seed]), format: "der", type: "pkcs8" });
    expect(sign(null, signedBytes(body), key).toString("hex")).toBe(
      "175d5cd2fd8a8bceab484ef29f7fc5d45f96bf026f72459d4faa855771dcd941" +
      "2da888d09164f68d2f4daa94da96757641cf9c394acd5874a208935c883ba102",
    );
  });
});

describe("seal and open", () => {
  it("round-trips a DM for both members and a room message for everyone", () => {
    const e = dm("hello bob 🔐");
    const opened = openEnvelope(e, ctxFor(bob, "dm:alice:bob"));
    expect(opened.body).toEqual({ kind: "text", text: "hello bob 🔐" });
    expect(opened.header.sender).toBe("alice");
    expect(opened.hash.equals(envelopeHash(e))).toBe(true);

    const room = sealEnvelope({
      sender: alice, conversationId: "#ops", recipients: [bob, carol], body: { kind: "action", text: "waves" },
      prev: ZERO_HASH, sentAtMs: NOW,
    }).envelope;
    expect(room.header.recipients.map((r) => r.username)).toEqual(["alice", "bob", "carol"]);
    expect(room.wraps.length).toBe(3);
    for (const me of [bob, carol]) expect(openEnvelope(room, ctxFor(me, "#ops")).body).toEqual({ kind: "action", text: "waves" });
  });

  it("carries a room topic and a DM away reply, and refuses either kind anywhere else (§11)", () => {
    const topic = sealEnvelope({
      sender: alice, conversationId: "#ops", recipients: [bob], body: { kind: "topic", text: "deploy friday" }, prev: ZERO_HASH, sentAtMs: NOW,
    }).envelope;
    expect(openEnvelope(topic, ctxFor(bob, "#ops")).body).toEqual({ kind: "topic", text: "deploy friday" });
    expect(openEnvelope(dm("back at 3", { body: { kind: "away", text: "back at 3" } }), ctxFor(bob, "dm:alice:bob")).body.kind).toBe("away");
    // A topic in a DM or the lobby, an away reply in a room or the lobby: refused as a bad body.
    expectRefused(() => openEnvelope(dm("t", { body: { kind: "topic", text: "t" } }), ctxFor(bob, "dm:alice:bob")), "bad-body");
    for (const [kind, conversationId] of [["topic", "lobby"], ["away", "#ops"], ["away", "lobby"]] as const) {
      const e = sealEnvelope({ sender: alice, conversationId, recipients: [bob], body: { kind, text: "x" }, prev: ZERO_HASH, sentAtMs: NOW }).envelope;
      expectRefused(() => openEnvelope(e, ctxFor(bob, conversationId)), "bad-body");
    }
  });

  it("encrypts one ciphertext for all recipients, padded to 256 bytes", () => {
    const e = sealEnvelope({
      sender: alice, conversationId: "lobby", recipients: [bob, carol, mallory], body: { kind: "text", text: "x".repeat(300) },
      prev: ZERO_HASH, sentAtMs: NOW,
    }).envelope;
    expect(e.ciphertext.length).toBe(512);
    expect(e.wraps.every((w) => w.wrappedKey.length === 384)).toBe(true);
  });

  it("sanitises the opened text (escape and bidi sequences)", () => {
    const e = dm("\x1b[2J\x1b]0;owned\x07\u202eevil\u200b");
    const text = openEnvelope(e, ctxFor(bob, "dm:alice:bob")).body.text;
    expect(text).not.toMatch(/[\x1b\x07\u202e\u200b]/);
    expect(text).toContain("[2J");
  });

  it("refuses to seal to two different keys for one name and bad inputs", () => {
    expectRefused(() => sealEnvelope({
      sender: alice, conversationId: "lobby", recipients: [bob, { ...mallory, username: "bob" }],
      body: { kind: "text", text: "x" }, prev: ZERO_HASH, sentAtMs: NOW,
    }), "malformed");
    expectRefused(() => dm("x", { conversationId: "dm:bob:alice" }), "malformed");
    expectRefused(() => dm("x", { prev: Buffer.alloc(3) }), "malformed");
    expectRefused(() => dm("x", { conversationId: "dm:alice:bob", recipients: [carol] }), "malformed");
  });
});

describe("a hostile relay: tampering with each field is refused (Open steps 1-8)", () => {
  const cases: Array<[string, (e: SealedEnvelope) => SealedEnvelope, ProtocolErrorCode]> = [
    ["suite", (e) => withHeader(e, { suite: "securechat/v0/rsa-pkcs1+aes-128-cbc" }), "bad-suite"],
    ["message id", (e) => withHeader(e, { messageId: flip(e.header.messageId) }), "bad-signature"],
    ["sender fingerprint", (e) => withHeader(e, { senderSigFpr: flip(e.header.senderSigFpr) }), "key-changed"],
    ["sent_at", (e) => withHeader(e, { sentAtMs: e.header.sentAtMs - 1 }), "bad-signature"],
    ["prev", (e) => withHeader(e, { prev: flip(e.header.prev) }), "bad-signature"],
    ["iv", (e) => withHeader(e, { iv: flip(e.header.iv) }), "bad-signature"],
    ["the sender's recipient fingerprint", (e) => withHeader(e, {
      recipients: e.header.recipients.map((r) => (r.username === "alice" ? { ...r, encFpr: flip(r.encFpr) } : r)),
    }), "bad-signature"],
    ["my recipient fingerprint", (e) => withHeader(e, {
      recipients: e.header.recipients.map((r) => (r.username === "bob" ? { ...r, encFpr: flip(r.encFpr) } : r)),
    }), "not-recipient"],
    ["key commitment", (e) => withHeader(e, { keyCommitment: flip(e.header.keyCommitment) }), "bad-signature"],
    ["ciphertext", (e) => ({ ...e, ciphertext: flip(e.ciphertext, 100) }), "bad-signature"],
    ["tag", (e) => ({ ...e, tag: flip(e.tag, 15, 7) }), "bad-signature"],
    ["a wrap", (e) => ({ ...e, wraps: e.wraps.map((w) => (w.username === "bob" ? { ...w, wrappedKey: flip(w.wrappedKey, 200) } : w)) }), "bad-signature"],
    ["swapped wraps", (e) => ({
      ...e, wraps: [{ username: "alice", wrappedKey: e.wraps[1]!.wrappedKey }, { username: "bob", wrappedKey: e.wraps[0]!.wrappedKey }],
    }), "bad-signature"],
    ["the signature", (e) => ({ ...e, signature: flip(e.signature, 10) }), "bad-signature"],
  ];

  it.each(cases)("tampered %s", (_name, tamper, code) => {
    const e = dm();
    expect(() => openEnvelope(e, ctxFor(bob, "dm:alice:bob"))).not.toThrow();
    expectRefused(() => openEnvelope(tamper(e), ctxFor(bob, "dm:alice:bob")), code);
  });

  it("refuses a truncated tag even though GCM could check a shorter one", () => {
    const e = dm();
    expectRefused(() => openEnvelope({ ...e, tag: e.tag.subarray(0, 12) }, ctxFor(bob, "dm:alice:bob")), "malformed");
  });

  it("refuses re-addressing into another conversation (wrong conversation)", () => {
    const e = dm();
    expectRefused(() => openEnvelope(e, ctxFor(bob, "lobby")), "wrong-conversation");
    const room = sealEnvelope({ sender: alice, conversationId: "#ops", recipients: [bob], body: { kind: "text", text: "x" }, prev: ZERO_HASH, sentAtMs: NOW }).envelope;
    // The relay rewrites the header's conversation to deliver an #ops message into #dev.
    expectRefused(() => openEnvelope(withHeader(room, { conversationId: "#dev" }), ctxFor(bob, "#dev")), "bad-signature");
    expectRefused(() => openEnvelope(room, ctxFor(bob, "#dev")), "wrong-conversation");
  });

  it("refuses delivery to someone who is not a recipient", () => {
    const room = sealEnvelope({ sender: alice, conversationId: "#ops", recipients: [bob], body: { kind: "text", text: "x" }, prev: ZERO_HASH, sentAtMs: NOW }).envelope;
    expectRefused(() => openEnvelope(room, ctxFor(carol, "#ops")), "not-recipient");
    // A DM between alice and bob handed to carol.
    expectRefused(() => openEnvelope(dm(), ctxFor(carol, "dm:alice:bob")), "wrong-conversation");
  });

  it("refuses an envelope sealed to my previous encryption key", () => {
    const bobRekeyed = { ...bob, encFpr: carol.encFpr, encPrivate: carol.encPrivate };
    expectRefused(() => openEnvelope(dm(), ctxFor(bobRekeyed, "dm:alice:bob")), "not-recipient");
  });

  it("refuses a replay of an envelope already opened", () => {
    const e = dm();
    const seen = new Set<string>();
    const ctx = ctxFor(bob, "dm:alice:bob", { seen: (id) => seen.has(id.toString("hex")) });
    const opened = openEnvelope(e, ctx);
    seen.add(opened.header.messageId.toString("hex"));
    expectRefused(() => openEnvelope(e, ctx), "replay");
  });

  it("refuses a reflection of my own envelope", () => {
    expectRefused(() => openEnvelope(dm(), ctxFor(alice, "dm:alice:bob")), "reflection");
  });

  it("refuses timestamps more than 5 minutes ahead and older than retention", () => {
    expectRefused(() => openEnvelope(dm("x", { sentAtMs: NOW + 5 * 60_000 + 1 }), ctxFor(bob, "dm:alice:bob")), "future-timestamp");
    expect(() => openEnvelope(dm("x", { sentAtMs: NOW + 4 * 60_000 }), ctxFor(bob, "dm:alice:bob"))).not.toThrow();
    expectRefused(() => openEnvelope(dm("x", { sentAtMs: NOW - MAX_AGE_MS - 1 }), ctxFor(bob, "dm:alice:bob")), "expired");
    expectRefused(() => openEnvelope(dm("x", { sentAtMs: NOW - 2 * 86_400_000 }), ctxFor(bob, "dm:alice:bob", { maxAgeMs: 86_400_000 })), "expired");
  });

  it("refuses a changed sender key until it is trusted (key substitution)", () => {
    // The relay hands out other keys for alice and forwards envelopes signed by them.
    const e = sealEnvelope({ sender: aliceNewKeys, conversationId: "dm:alice:bob", recipients: [bob], body: { kind: "text", text: "it's me, really" }, prev: ZERO_HASH, sentAtMs: NOW }).envelope;
    expectRefused(() => openEnvelope(e, ctxFor(bob, "dm:alice:bob")), "key-changed");
    // Pretending the fingerprint is still the pinned one does not help: the signature fails.
    expectRefused(() => openEnvelope(withHeader(e, { senderSigFpr: alice.sigFpr }), ctxFor(bob, "dm:alice:bob")), "bad-signature");
    // Once bob trusts the new key, it opens.
    expect(openEnvelope(e, ctxFor(bob, "dm:alice:bob", { senderKey: pinsOf(aliceNewKeys) })).body.text).toBe("it's me, really");
  });

  it("refuses an unknown sender", () => {
    expectRefused(() => openEnvelope(dm(), ctxFor(bob, "dm:alice:bob", { senderKey: pinsOf(bob) })), "unknown-sender");
  });

  it("refuses a forged sender name (mallory signs as alice)", () => {
    const forged = forgeEnvelope({ sender: { ...mallory, username: "alice" }, conversationId: "dm:alice:bob", recipients: [alice, bob], sentAtMs: NOW });
    expectRefused(() => openEnvelope(forged, ctxFor(bob, "dm:alice:bob")), "key-changed");
    const forged2 = withHeader(forged, { senderSigFpr: alice.sigFpr });
    expectRefused(() => openEnvelope(forged2, ctxFor(bob, "dm:alice:bob")), "bad-signature");
  });
});

describe("a hostile sender: validly signed but broken envelopes (Open steps 7-8)", () => {
  const base = () => ({ sender: alice, conversationId: "#ops", recipients: [alice, bob, carol] as PublicIdentity[], sentAtMs: NOW });

  it("refuses a PKCS#1 v1.5 wrap", () => {
    expectRefused(() => openEnvelope(forgeEnvelope({ ...base(), pkcs1Wrap: true }), ctxFor(bob, "#ops")), "unwrap-failed");
  });

  it("refuses a wrap made with another recipient's label", () => {
    const e = forgeEnvelope({ ...base(), labelFor: (u, honest) => (u === "bob" ? Buffer.from("securechat/v1/wrap-for-carol") : honest) });
    expectRefused(() => openEnvelope(e, ctxFor(bob, "#ops")), "unwrap-failed");
    expect(openEnvelope(e, ctxFor(carol, "#ops")).body.text).toBe("hello");
  });

  it("refuses a content key that is not 32 bytes", () => {
    const e = forgeEnvelope({ ...base(), contentKeyFor: (u, k) => (u === "bob" ? k.subarray(0, 16) : k) });
    expectRefused(() => openEnvelope(e, ctxFor(bob, "#ops")), "unwrap-failed");
  });

  it("refuses a different content key per recipient (key commitment)", () => {
    // Without the commitment, bob could be shown different words than carol.
    const e = forgeEnvelope({ ...base(), contentKeyFor: (u, k) => (u === "bob" ? flip(k) : k) });
    expectRefused(() => openEnvelope(e, ctxFor(bob, "#ops")), "commitment-mismatch");
    expect(() => openEnvelope(e, ctxFor(carol, "#ops"))).not.toThrow();
  });

  it("refuses content encrypted without the header as associated data", () => {
    const e = forgeEnvelope({ ...base(), aad: () => Buffer.alloc(0) });
    expectRefused(() => openEnvelope(e, ctxFor(bob, "#ops")), "decrypt-failed");
  });

  it("refuses bad padding, invalid UTF-8 and unknown body kinds", () => {
    const good = padBody({ kind: "text", text: "ok" });
    const nonzero = Buffer.from(good); nonzero[200] = 1;
    const longPrefix = Buffer.from(good); longPrefix.writeUInt32BE(1000, 0);
    const badUtf8 = Buffer.from(good); badUtf8[5] = 0xc3; badUtf8[6] = 0x28; // invalid 2-byte sequence
    const overlong = Buffer.from(good); overlong.writeUInt32BE(3, 0); overlong[5] = 0xc0; overlong[6] = 0xaf; // overlong '/'
    const kind = Buffer.from(good); kind[4] = 0x7f;
    const extraBlock = Buffer.concat([good, Buffer.alloc(256)]);
    const cases: Array<[Buffer, ProtocolErrorCode]> = [
      [nonzero, "bad-padding"], [longPrefix, "bad-padding"], [badUtf8, "bad-utf8"], [overlong, "bad-utf8"],
      [kind, "bad-body"], [extraBlock, "bad-padding"],
    ];
    for (const [plaintext, code] of cases) {
      expectRefused(() => openEnvelope(forgeEnvelope({ ...base(), plaintext }), ctxFor(bob, "#ops")), code);
    }
  });

  it("refuses a suite other than v1 even when validly signed (no downgrade)", () => {
    expectRefused(() => openEnvelope(forgeEnvelope({ ...base(), suite: "securechat/v1/none" }), ctxFor(bob, "#ops")), "bad-suite");
  });

  it("refuses a DM that names a third party as recipient", () => {
    const e = forgeEnvelope({ sender: alice, conversationId: "dm:alice:bob", recipients: [alice, bob, carol], sentAtMs: NOW });
    expectRefused(() => openEnvelope(e, ctxFor(bob, "dm:alice:bob")), "malformed");
  });
});

describe("shape validation (shared by relay and client)", () => {
  it("accepts an honest envelope and reports its conversation", () => {
    expect(validateEnvelopeShape(dm()).kind).toBe("dm");
    expect(verifyEnvelopeSignature(dm(), alice.sigKey)).toBe(true);
    expect(verifyEnvelopeSignature(dm(), mallory.sigKey)).toBe(false);
  });

  it.each<[string, (e: SealedEnvelope) => SealedEnvelope]>([
    ["unsorted recipients", (e) => withHeader(e, { recipients: [...e.header.recipients].reverse() })],
    ["duplicate recipients", (e) => withHeader(e, { recipients: [e.header.recipients[0]!, e.header.recipients[0]!] })],
    ["a wrap missing", (e) => ({ ...e, wraps: e.wraps.slice(0, 1) })],
    ["wraps in the wrong order", (e) => ({ ...e, wraps: [...e.wraps].reverse() })],
    ["a 15-byte message id", (e) => withHeader(e, { messageId: e.header.messageId.subarray(1) })],
    ["a bad conversation id", (e) => withHeader(e, { conversationId: "dm:../../etc" })],
    ["a sender outside the recipients", (e) => withHeader(e, { sender: "carol" })],
    ["an invalid sender name", (e) => withHeader(e, { sender: "Alice\u202e" })],
    ["ciphertext not padded", (e) => ({ ...e, ciphertext: e.ciphertext.subarray(1) })],
    ["a short signature", (e) => ({ ...e, signature: e.signature.subarray(1) })],
    ["a zero timestamp", (e) => withHeader(e, { sentAtMs: 0 })],
  ])("refuses %s", (_n, mutate) => {
    expectRefused(() => validateEnvelopeShape(mutate(dm())), "malformed");
  });

  it("refuses too many recipients and too much ciphertext", () => {
    const e = sealEnvelope({ sender: alice, conversationId: "lobby", recipients: [bob, carol], body: { kind: "text", text: "x".repeat(1000) }, prev: ZERO_HASH, sentAtMs: NOW }).envelope;
    expectRefused(() => validateEnvelopeShape(e, { maxRecipients: 2, maxCiphertextBytes: 4096 }), "too-large");
    expectRefused(() => validateEnvelopeShape(e, { maxRecipients: 10, maxCiphertextBytes: 512 }), "too-large");
  });
});

describe("padding", () => {
  it("pads to multiples of 256 and round-trips", () => {
    for (const n of [0, 1, 250, 251, 252, 1000]) {
      const p = padBody({ kind: "text", text: "a".repeat(n) });
      expect(p.length % 256).toBe(0);
      expect(unpadBody(p)).toEqual({ kind: "text", text: "a".repeat(n) });
    }
    expect(padBody({ kind: "text", text: "a".repeat(251) }).length).toBe(256);
    expect(padBody({ kind: "text", text: "a".repeat(252) }).length).toBe(512);
  });
});

describe("gap detection (Open step 9)", () => {
  it("flags a missing envelope in a DM and a room, never in the lobby", () => {
    const dmConv = parseConversationId("dm:alice:bob")!;
    const room = parseConversationId("#ops")!;
    const lobby = parseConversationId("lobby")!;
    const h1 = Buffer.alloc(32, 1);
    const h2 = Buffer.alloc(32, 2);
    expect(chainHasGap(dmConv, ZERO_HASH, undefined)).toBe(false);
    expect(chainHasGap(dmConv, h1, undefined)).toBe(true); // the first DM message was dropped
    expect(chainHasGap(dmConv, h1, h1)).toBe(false);
    expect(chainHasGap(dmConv, h2, h1)).toBe(true);
    expect(chainHasGap(room, h1, undefined)).toBe(false); // joined late
    expect(chainHasGap(room, h2, h1)).toBe(true);
    expect(chainHasGap(lobby, h2, h1)).toBe(false);
  });

  it("chains a sender's envelopes through prev", () => {
    const first = sealEnvelope({ sender: alice, conversationId: "dm:alice:bob", recipients: [bob], body: { kind: "text", text: "1" }, prev: ZERO_HASH, sentAtMs: NOW });
    const second = sealEnvelope({ sender: alice, conversationId: "dm:alice:bob", recipients: [bob], body: { kind: "text", text: "2" }, prev: first.hash, sentAtMs: NOW + 1 });
    const o1 = openEnvelope(first.envelope, ctxFor(bob, "dm:alice:bob"));
    const o2 = openEnvelope(second.envelope, ctxFor(bob, "dm:alice:bob"));
    expect(chainHasGap(o2.conversation, o2.header.prev, o1.hash)).toBe(false);
    expect(chainHasGap(o2.conversation, o2.header.prev, undefined)).toBe(true);
  });

  it("a malicious sender cannot re-sign someone else's envelope as its own", () => {
    const e = resign(withHeader(dm(), { sender: "mallory" }), mallory.sigPrivate);
    expectRefused(() => openEnvelope(e, ctxFor(bob, "dm:alice:bob")), "malformed");
  });
});
