// The fuzzers' mutator (test/helpers/fuzz-protobuf.ts) does what they rely on: an untouched
// frame survives parse + serialise byte for byte, a mutation inside an envelope leaves the outer
// frame parseable with its lengths fixed up, and the framing breakers do break the framing.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { SessionRequest, SessionResponse } from "../../src/gen/securechat/v1/chat.js";
import { envelopeToWire } from "../../src/protocol/codec.js";
import { sealEnvelope, ZERO_HASH } from "../../src/protocol/envelope.js";
import { fuzzSeed, mutate, mutationArb, parseWire, serializeWire, WT_LEN } from "../helpers/fuzz-protobuf.js";
import { fixtureIdentity } from "../helpers/identities.js";

async function sendFrame(): Promise<Uint8Array> {
  const [alice, bob] = await Promise.all([fixtureIdentity("alice"), fixtureIdentity("bob")]);
  const { envelope } = sealEnvelope({ sender: alice, conversationId: "dm:alice:bob", recipients: [bob], body: { kind: "text", text: "hi" }, prev: ZERO_HASH, sentAtMs: 1_767_225_600_000 });
  return SessionRequest.encode({ frame: { $case: "send", value: { envelope: envelopeToWire(envelope) } } }).finish();
}

describe("the wire mutator", () => {
  it("parses and writes back real frames byte for byte", async () => {
    const frames = [
      await sendFrame(),
      SessionRequest.encode({ frame: { $case: "ack", value: { seqs: [1, 300, 2 ** 40] } } }).finish(),
      SessionResponse.encode({ frame: { $case: "roomEvent", value: { room: "#ops", kind: 1, username: "bob", members: ["alice", "bob"], atMs: 5 } } }).finish(),
    ];
    for (const f of frames) {
      const tree = parseWire(f);
      expect(tree).toBeDefined();
      expect(Buffer.from(serializeWire(tree!)).equals(Buffer.from(f))).toBe(true);
    }
  });

  it("keeps the outer frame parseable for field-level changes deep inside, fixing every length", async () => {
    const frame = await sendFrame();
    // Node 0 is the SendEnvelope, 1 the Envelope, 2 its header, 3 the header's suite.
    const suite = "securechat/v1/rsa-oaep-sha256+aes-256-gcm+ed25519";
    const cases = [
      [{ kind: "remove", node: 3 }, ""], // proto3: a missing string is empty
      [{ kind: "duplicate", node: 3 }, suite], // proto3: the last value wins
      [{ kind: "replace-bytes", node: 3, bytes: new TextEncoder().encode("x".repeat(300)) }, "x".repeat(300)],
      [{ kind: "long-tag", node: 3, bytes: 5 }, suite], // an over-long tag varint still parses
      [{ kind: "field-number", node: 3, field: 15 }, ""], // an unknown field is skipped
    ] as const;
    for (const [m, expected] of cases) {
      const req = SessionRequest.decode(mutate(frame, m));
      const header = req.frame?.$case === "send" ? req.frame.value.envelope?.header : undefined;
      expect(header?.suite, m.kind).toBe(expected);
      expect(header?.conversationId, m.kind).toBe("dm:alice:bob");
    }
  });

  it("breaks the framing with lying lengths and group bombs", async () => {
    const frame = await sendFrame();
    expect(() => SessionRequest.decode(mutate(frame, { kind: "huge-length", node: 0, length: 0xffff_ffffn }))).toThrow();
    expect(() => SessionRequest.decode(mutate(frame, { kind: "group-bomb", at: 0, depth: 5000, field: 12 }))).toThrow();
  });

  it("always yields bytes, whatever it is given", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), mutationArb, (bytes, m) => {
        const out = mutate(bytes, m);
        expect(out).toBeInstanceOf(Uint8Array);
        const tree = parseWire(out);
        if (tree !== undefined && tree.every((n) => n.wireType !== WT_LEN || n.lengthOverride === undefined)) {
          expect(Buffer.from(serializeWire(tree)).equals(Buffer.from(out))).toBe(true);
        }
      }),
      { seed: fuzzSeed(0x5eed_0001), numRuns: 300 },
    );
  });
});
