// Property-based tests (fast-check): for any text and recipient set, open(seal(x)) = sanitise(x);
// any flipped bit is refused; the sanitiser is idempotent and leaves no control characters; the
// safety number is symmetric.
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { Envelope as WireEnvelope } from "../../src/gen/securechat/v1/chat.js";
import { envelopeFromWire, envelopeToWire } from "../../src/protocol/codec.js";
import { openEnvelope, padBody, sealEnvelope, unpadBody, ZERO_HASH, type MessageBody, type SenderKeyLookup } from "../../src/protocol/envelope.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { isSafeText, sanitizeText } from "../../src/protocol/sanitize.js";
import { displayableFingerprint } from "../../src/protocol/safety-number.js";
import { fixtureIdentity } from "../helpers/identities.js";

let people: PrivateIdentity[];
const NOW = 1_767_225_600_000;

beforeAll(async () => {
  people = await Promise.all((["alice", "bob", "carol", "dave", "mallory"] as const).map((n) => fixtureIdentity(n)));
});

const pinned = (u: string): SenderKeyLookup => {
  const p = people.find((x) => x.username === u);
  return p ? { kind: "pinned", sigKey: p.sigKey, sigFpr: p.sigFpr } : { kind: "unknown" };
};

// Text from every corner of Unicode, including controls, ESC, bidi and astral characters.
const anyText = fc.oneof(
  fc.string({ unit: "binary", maxLength: 300 }),
  fc.string({ unit: fc.constantFrom("\x1b", "[", "2", "J", "\u202e", "\u200b", "\n", "\t", "\r", "\u0085", "a", "é", "🔐", "\u0000"), maxLength: 60 }),
).filter((s) => s.isWellFormed());

describe("seal/open properties", () => {
  it("open(seal(x)) returns x, sanitised, to every recipient", () => {
    fc.assert(
      fc.property(
        anyText,
        fc.constantFrom<MessageBody["kind"]>("text", "action"),
        fc.subarray([1, 2, 3, 4], { minLength: 1 }),
        fc.constantFrom("lobby", "#ops"),
        (text, kind, idx, conversationId) => {
          const sender = people[0]!;
          const recipients = idx.map((i) => people[i]!);
          const { envelope } = sealEnvelope({ sender, conversationId, recipients, body: { kind, text }, prev: ZERO_HASH, sentAtMs: NOW });
          for (const me of recipients) {
            const opened = openEnvelope(envelope, { me, deliveredInto: conversationId, nowMs: NOW, senderKey: pinned, seen: () => false });
            expect(opened.body).toEqual({ kind, text: sanitizeText(text) });
          }
        },
      ),
      { numRuns: 40 },
    );
  });

  it("flipping any bit of any field of the envelope is refused", () => {
    const sender = people[0]!;
    const bob = people[1]!;
    const { envelope } = sealEnvelope({ sender, conversationId: "dm:alice:bob", recipients: [bob], body: { kind: "text", text: "flip me" }, prev: ZERO_HASH, sentAtMs: NOW });
    // Every byte string of the envelope, addressed by a path, so any bit of any field can flip.
    const h = envelope.header;
    const fields: Array<[string, Buffer, (b: Buffer) => typeof envelope]> = [
      ["message_id", h.messageId, (b) => ({ ...envelope, header: { ...h, messageId: b } })],
      ["sender_sig_fpr", h.senderSigFpr, (b) => ({ ...envelope, header: { ...h, senderSigFpr: b } })],
      ["prev", h.prev, (b) => ({ ...envelope, header: { ...h, prev: b } })],
      ["iv", h.iv, (b) => ({ ...envelope, header: { ...h, iv: b } })],
      ["key_commitment", h.keyCommitment, (b) => ({ ...envelope, header: { ...h, keyCommitment: b } })],
      ["suite", Buffer.from(h.suite), (b) => ({ ...envelope, header: { ...h, suite: b.toString("latin1") } })],
      ["conversation_id", Buffer.from(h.conversationId), (b) => ({ ...envelope, header: { ...h, conversationId: b.toString("latin1") } })],
      ["sender", Buffer.from(h.sender), (b) => ({ ...envelope, header: { ...h, sender: b.toString("latin1") } })],
      ...h.recipients.map((r, i): [string, Buffer, (b: Buffer) => typeof envelope] => [`recipient ${i} fpr`, r.encFpr, (b) => ({
        ...envelope, header: { ...h, recipients: h.recipients.map((x, j) => (j === i ? { ...x, encFpr: b } : x)) },
      })]),
      ["ciphertext", envelope.ciphertext, (b) => ({ ...envelope, ciphertext: b })],
      ["tag", envelope.tag, (b) => ({ ...envelope, tag: b })],
      ...envelope.wraps.map((w, i): [string, Buffer, (b: Buffer) => typeof envelope] => [`wrap ${i}`, w.wrappedKey, (b) => ({
        ...envelope, wraps: envelope.wraps.map((x, j) => (j === i ? { ...x, wrappedKey: b } : x)),
      })]),
      ["signature", envelope.signature, (b) => ({ ...envelope, signature: b })],
    ];
    fc.assert(
      fc.property(fc.integer({ min: 0, max: fields.length - 1 }), fc.nat(), fc.integer({ min: 0, max: 7 }), (f, at, bit) => {
        const [, bytes, rebuild] = fields[f]!;
        const bad = Buffer.from(bytes);
        bad[at % bad.length]! ^= 1 << bit;
        expect(() => openEnvelope(rebuild(bad), { me: bob, deliveredInto: "dm:alice:bob", nowMs: NOW, senderKey: pinned, seen: () => false })).toThrow();
      }),
      { numRuns: 400 },
    );
  });

  it("a flipped bit in the wire bytes is refused, or decodes to the very same envelope", () => {
    // Protobuf framing is malleable (e.g. a sub-message length one short whose last field still
    // parses): such bytes are the same message, since signatures cover the parsed fields.
    const sender = people[0]!;
    const bob = people[1]!;
    const { envelope } = sealEnvelope({ sender, conversationId: "dm:alice:bob", recipients: [bob], body: { kind: "text", text: "flip me" }, prev: ZERO_HASH, sentAtMs: NOW });
    const wire = Buffer.from(WireEnvelope.encode(envelopeToWire(envelope)).finish());
    const canonical = JSON.stringify(WireEnvelope.toJSON(WireEnvelope.decode(wire)));
    fc.assert(
      fc.property(fc.integer({ min: 0, max: wire.length - 1 }), fc.integer({ min: 0, max: 7 }), (pos, bit) => {
        const bad = Buffer.from(wire);
        bad[pos]! ^= 1 << bit;
        let decoded: WireEnvelope;
        try {
          decoded = WireEnvelope.decode(bad);
          const e = envelopeFromWire(decoded);
          openEnvelope(e, { me: bob, deliveredInto: "dm:alice:bob", nowMs: NOW, senderKey: pinned, seen: () => false });
        } catch {
          return; // refused
        }
        expect(JSON.stringify(WireEnvelope.toJSON(decoded))).toBe(canonical);
      }),
      { numRuns: 400 },
    );
  });

  it("padding round-trips any body and always hides the length to 256 bytes", () => {
    fc.assert(
      fc.property(anyText, fc.constantFrom<MessageBody["kind"]>("text", "action"), (text, kind) => {
        const padded = padBody({ kind, text });
        expect(padded.length % 256).toBe(0);
        expect(unpadBody(padded)).toEqual({ kind, text });
      }),
    );
  });
});

describe("sanitiser properties", () => {
  it("is idempotent and leaves no control, escape, zero-width or bidi character", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 200 }), (s) => {
        const once = sanitizeText(s);
        expect(sanitizeText(once)).toBe(once);
        expect(isSafeText(once)).toBe(true);
        for (const ch of once) {
          const cp = ch.codePointAt(0)!;
          const control = (cp < 0x20 && ch !== "\n" && ch !== "\t") || (cp >= 0x7f && cp <= 0x9f);
          const invisible = (cp >= 0x200b && cp <= 0x200f) || (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2060 && cp <= 0x2069) || cp === 0xfeff;
          expect(control || invisible).toBe(false);
        }
      }),
      { numRuns: 500 },
    );
  });

  it("changes nothing in text that was already safe", () => {
    fc.assert(
      fc.property(fc.string({ unit: "grapheme", maxLength: 100 }).filter(isSafeText), (s) => {
        expect(sanitizeText(s)).toBe(s);
      }),
    );
  });
});

describe("safety number properties", () => {
  it("is the same from both sides and depends on every input", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 64 }), fc.string({ minLength: 1, maxLength: 12 }),
        fc.uint8Array({ minLength: 1, maxLength: 64 }), fc.string({ minLength: 1, maxLength: 12 }),
        (ka, ia, kb, ib) => {
          const ab = displayableFingerprint(ka, Buffer.from(ia), kb, Buffer.from(ib), 16);
          const ba = displayableFingerprint(kb, Buffer.from(ib), ka, Buffer.from(ia), 16);
          expect(ab).toBe(ba);
          expect(ab).toMatch(/^\d{60}$/);
        },
      ),
      { numRuns: 200 },
    );
  });
});
