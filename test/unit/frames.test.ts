// The relay's hand-written DeliverBatch encoder (src/server/frames.ts) makes exactly the bytes a
// protobuf writer makes, for any items, and a real client decodes them.
import { BinaryWriter } from "@bufbuild/protobuf/wire";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Envelope, ErrorCode, MlsDelivery, MlsKind, SendStatus, SessionRequest, SessionResponse, type SendResult } from "../../src/gen/securechat/v1/chat.js";
import { envelopeToWire } from "../../src/protocol/codec.js";
import { decodeSessionRequest, encodeDeliverBatch, encodeMlsDelivery, encodeResponse, encodeSendResult, frameScanBoundsFor, RefusedRequest, type RequestFrame } from "../../src/server/frames.js";
import { countFrame } from "../../src/server/frame-scan.js";
import { DEFAULT_RELAY_LIMITS } from "../../src/server/limits.js";

const bounds = frameScanBoundsFor(DEFAULT_RELAY_LIMITS);

/** The relay's decode of a frame none of whose counts is over a limit (frame-scan.ts). */
function decodeRequest(bytes: Uint8Array): RequestFrame {
  const f = decodeSessionRequest(bytes, bounds);
  if (f instanceof RefusedRequest) throw new Error(`refused by the scan: ${f.refusal.message}`);
  return f;
}
import type { QueuedItem } from "../../src/server/store.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { seal } from "../helpers/raw-session.js";

/** The same frame through @bufbuild/protobuf's general writer (what the relay used before). */
function reference(items: readonly QueuedItem[]): Buffer {
  const w = new BinaryWriter();
  w.uint32((3 << 3) | 2).fork();
  for (const item of items) {
    w.uint32((1 << 3) | 2).fork();
    w.uint32(1 << 3).uint64(item.seq);
    w.uint32((2 << 3) | 2).string(item.conversationId);
    w.uint32((3 << 3) | 2).bytes(item.envelope);
    if (item.relayTimeMs !== undefined && item.relayTimeMs > 0) w.uint32(4 << 3).uint64(item.relayTimeMs);
    w.join();
  }
  w.join();
  return Buffer.from(w.finish());
}

const anyItem: fc.Arbitrary<QueuedItem> = fc.record({
  seq: fc.oneof(fc.integer({ min: 0, max: 300 }), fc.constant(Number.MAX_SAFE_INTEGER), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER })),
  conversationId: fc.string({ unit: "grapheme", maxLength: 80 }),
  envelope: fc.oneof(fc.uint8Array({ maxLength: 300 }), fc.integer({ min: 0, max: 70_000 }).map((n) => new Uint8Array(n).fill(7))).map((b) => Buffer.from(b)),
  relayTimeMs: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), fc.constant(1_767_225_600_000)),
});

describe("encodeDeliverBatch", () => {
  it("equals the general protobuf writer's bytes for any items", () => {
    fc.assert(fc.property(fc.array(anyItem, { maxLength: 8 }), (items) => {
      expect(encodeDeliverBatch(items).equals(reference(items))).toBe(true);
    }), { numRuns: 300 });
  });

  it("decodes as the client decodes it, envelope byte for byte", async () => {
    const [alice, bob] = await Promise.all([fixtureIdentity("alice"), fixtureIdentity("bob")]);
    const wire = Buffer.from(Envelope.encode(envelopeToWire(seal(alice, "dm:alice:bob", [bob], "hello"))).finish());
    const frame = encodeDeliverBatch([{ seq: 2 ** 40, conversationId: "dm:alice:bob", envelope: wire, relayTimeMs: 1_767_225_600_123 }, { seq: 7, conversationId: "#ops", envelope: wire }]);
    const decoded = SessionResponse.decode(frame).frame;
    expect(decoded?.$case).toBe("deliver");
    if (decoded?.$case !== "deliver") return;
    expect(decoded.value.items.map((i) => [i.seq, i.conversationId, i.relayTimeMs])).toEqual([[2 ** 40, "dm:alice:bob", 1_767_225_600_123], [7, "#ops", 0]]);
    expect(Buffer.from(Envelope.encode(decoded.value.items[0]!.envelope!).finish()).equals(wire)).toBe(true);
  });

  it("splices an MLS payload as Delivery.mls (field 5), byte for byte, as ts-proto encodes it", () => {
    const mls = Buffer.from(MlsDelivery.encode({ kind: MlsKind.MLS_KIND_COMMIT, groupId: Buffer.from("g"), sender: "alice", mls: Buffer.from([1, 2, 3]), ratchetTree: Buffer.alloc(0), epoch: 7, senderDevice: "" }).finish());
    const items: QueuedItem[] = [
      { seq: 3, conversationId: "#ops", envelope: mls, payload: "mls", relayTimeMs: 1_767_225_600_123 },
      { seq: 4, conversationId: "#ops", envelope: Buffer.alloc(0) },
    ];
    const frame = encodeDeliverBatch(items);
    const expected = SessionResponse.encode({ frame: { $case: "deliver", value: { items: [
      { seq: 3, conversationId: "#ops", envelope: undefined, mls: MlsDelivery.decode(mls), relayTimeMs: 1_767_225_600_123 },
      { seq: 4, conversationId: "#ops", envelope: Envelope.decode(Buffer.alloc(0)), mls: undefined, relayTimeMs: 0 },
    ] } } }).finish();
    expect(frame.equals(Buffer.from(expected))).toBe(true);
    const decoded = SessionResponse.decode(frame).frame;
    if (decoded?.$case !== "deliver") throw new Error("not a DeliverBatch");
    expect(decoded.value.items[0]!.envelope).toBeUndefined();
    expect(decoded.value.items[0]!.mls).toMatchObject({ kind: MlsKind.MLS_KIND_COMMIT, sender: "alice", epoch: 7 });
    expect(decoded.value.items[1]!.mls).toBeUndefined();
  });

  it("refuses a seq that is not a non-negative safe integer", () => {
    for (const seq of [-1, 1.5, 2 ** 53]) {
      expect(() => encodeDeliverBatch([{ seq, conversationId: "lobby", envelope: Buffer.alloc(1) }])).toThrow(RangeError);
    }
  });
});

describe("encodeMlsDelivery", () => {
  const anyText = fc.oneof(fc.constant(""), fc.string({ unit: "grapheme", maxLength: 40 }), fc.string({ unit: "binary", maxLength: 20 }));
  const anyBytes = fc.oneof(fc.uint8Array({ maxLength: 200 }), fc.integer({ min: 0, max: 70_000 }).map((n) => new Uint8Array(n).fill(3))).map((b) => Buffer.from(b));
  const anyDelivery = fc.record({
    kind: fc.oneof(fc.constantFrom(0, 1, 2, 3, 4), fc.integer({ min: 0, max: 0x7fffffff })),
    groupId: anyBytes, sender: anyText, mls: anyBytes, ratchetTree: anyBytes,
    epoch: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER })),
    senderDevice: anyText,
  });

  it("equals ts-proto's MlsDelivery.encode for any fields (defaults left out)", () => {
    fc.assert(fc.property(anyDelivery, (d) => {
      const ours = encodeMlsDelivery(d);
      expect(ours.equals(Buffer.from(MlsDelivery.encode(d).finish()))).toBe(true);
      expect(MlsDelivery.decode(ours)).toMatchObject({ kind: d.kind, sender: d.sender, epoch: d.epoch, senderDevice: d.senderDevice });
    }), { numRuns: 300 });
  });

  it("takes the optional fields as their defaults, and copies the MLS bytes", () => {
    const mls = Buffer.from([9, 8, 7]);
    const ours = encodeMlsDelivery({ kind: MlsKind.MLS_KIND_APPLICATION, groupId: Buffer.from("g"), sender: "alice", mls });
    const theirs = MlsDelivery.encode({ kind: MlsKind.MLS_KIND_APPLICATION, groupId: Buffer.from("g"), sender: "alice", mls, ratchetTree: Buffer.alloc(0), epoch: 0, senderDevice: "" }).finish();
    expect(ours.equals(Buffer.from(theirs))).toBe(true);
    mls[0] = 0;
    expect(MlsDelivery.decode(ours).mls[0]).toBe(9);
  });

  it("refuses a kind or epoch it cannot write as ts-proto does", () => {
    for (const kind of [-1, 1.5, 2 ** 31]) expect(() => encodeMlsDelivery({ kind, groupId: Buffer.alloc(1), sender: "a", mls: Buffer.alloc(1) })).toThrow(RangeError);
    for (const epoch of [-1, 0.5, 2 ** 53]) expect(() => encodeMlsDelivery({ kind: 1, groupId: Buffer.alloc(1), sender: "a", mls: Buffer.alloc(1), epoch })).toThrow(RangeError);
  });
});

describe("encodeSendResult", () => {
  const anyText = fc.oneof(fc.constant(""), fc.string({ unit: "grapheme", maxLength: 300 }), fc.string({ unit: "binary", maxLength: 20 }));
  const anyResult: fc.Arbitrary<SendResult> = fc.record({
    messageId: fc.uint8Array({ maxLength: 80 }).map((b) => Buffer.from(b)),
    status: fc.oneof(fc.constantFrom(SendStatus.SEND_STATUS_UNSPECIFIED, SendStatus.SEND_STATUS_ACCEPTED, SendStatus.SEND_STATUS_REFUSED), fc.integer({ min: -1, max: 0x7fffffff })),
    code: fc.oneof(fc.constantFrom(ErrorCode.ERROR_CODE_UNSPECIFIED, ErrorCode.ERROR_CODE_NOT_A_MEMBER, ErrorCode.ERROR_CODE_BAD_MLS_MESSAGE), fc.integer({ min: -1, max: 0x7fffffff })),
    detail: anyText,
    queuedFor: fc.array(anyText, { maxLength: 5 }),
  });

  it("equals ts-proto's SessionResponse{send_result} encoding for any result, and decodes back", () => {
    fc.assert(fc.property(anyResult, (r) => {
      const ours = encodeSendResult(r);
      expect(ours.equals(encodeResponse({ $case: "sendResult", value: r }))).toBe(true);
      const back = SessionResponse.decode(ours).frame;
      expect(back?.$case).toBe("sendResult");
    }), { numRuns: 500 });
  });

  it("writes an accepted answer with its offline recipients as the client reads it", () => {
    const r: SendResult = { messageId: Buffer.alloc(16, 7), status: SendStatus.SEND_STATUS_ACCEPTED, code: ErrorCode.ERROR_CODE_UNSPECIFIED, detail: "", queuedFor: ["bob", "", "carol"] };
    const back = SessionResponse.decode(encodeSendResult(r)).frame;
    if (back?.$case !== "sendResult") throw new Error("not a SendResult");
    expect(back.value).toEqual(r);
  });
});

describe("decodeRequest", () => {
  /** What ts-proto makes of the bytes: the frame, or that it throws (the session then ends). */
  function reference(bytes: Uint8Array): unknown {
    try {
      return SessionRequest.decode(bytes).frame ?? "no frame";
    } catch {
      return "throws";
    }
  }
  function ours(bytes: Uint8Array): unknown {
    try {
      return decodeRequest(bytes);
    } catch {
      return "throws";
    }
  }
  const sendMls = (mls: Uint8Array): Buffer => Buffer.from(SessionRequest.encode({ frame: { $case: "sendMls", value: { mls: Buffer.from(mls) } } }).finish());
  const anyMls = fc.oneof(fc.uint8Array({ maxLength: 200 }), fc.integer({ min: 0, max: 300_000 }).map((n) => new Uint8Array(n).fill(9)));

  it("reads a SendMls as ts-proto does, its MLS bytes a view into the frame", () => {
    fc.assert(fc.property(anyMls, (mls) => {
      const frame = sendMls(mls);
      const got = decodeRequest(frame);
      expect(got).toEqual(reference(frame));
      if (got.$case !== "sendMls") throw new Error("not a SendMls");
      expect(Buffer.from(got.value.mls).equals(Buffer.from(mls))).toBe(true);
      if (mls.length > 0) expect(got.value.mls.buffer).toBe(frame.buffer);
    }), { numRuns: 200 });
  });

  it("agrees with ts-proto on mutated and spliced SendMls frames and on other frames", () => {
    const other = Buffer.from(SessionRequest.encode({ frame: { $case: "ack", value: { seqs: [1, 2, 300] } } }).finish());
    const base = fc.oneof(anyMls.map(sendMls), fc.constant(other), fc.constant(sendMls(new Uint8Array(0))));
    fc.assert(fc.property(base, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom("set", "insert", "remove", "append")), { maxLength: 3 }), (b, edits) => {
      let m = Buffer.from(b);
      for (const [pos, value, op] of edits) {
        const at = pos % Math.min(m.length + 1, 12); // the tags and lengths are in front
        if (op === "set" && at < m.length) m[at] = value;
        else if (op === "insert") m = Buffer.concat([m.subarray(0, at), Buffer.from([value]), m.subarray(at)]);
        else if (op === "remove" && at < m.length) m = Buffer.concat([m.subarray(0, at), m.subarray(at + 1)]);
        else if (op === "append") m = Buffer.concat([m, Buffer.from([value])]);
      }
      const want = reference(m);
      // A frame of more fields than the largest honest one of its kind (+ STEP_SLACK) is refused
      // before ts-proto sees it (frame-scan.ts, PROTOCOL.md §13.3): e.g. a SendMls length cut
      // short, its 300 KB of MLS bytes then read as 30,000 unknown fields.
      const c = countFrame(m);
      if (c.steps > bounds.maxSteps[c.frameCase]!) expect(ours(m)).toBe("throws");
      else expect(ours(m)).toEqual(want === "no frame" ? "throws" : want);
    }), { numRuns: 3000 });
  });

  it("takes a two-field SendMls, or a length written with extra bytes, through ts-proto with the same result", () => {
    const mls = Buffer.from([1, 2, 3]);
    const twice = Buffer.from([0x8a, 0x01, 10, 0x0a, 3, 9, 9, 9, 0x0a, 3, 1, 2, 3]); // the last mls wins
    expect(decodeRequest(twice)).toEqual({ $case: "sendMls", value: { mls } });
    const loose = Buffer.from([0x8a, 0x01, 0x85, 0x00, 0x0a, 3, 1, 2, 3]); // outer length 5 in two bytes
    expect(decodeRequest(loose)).toEqual(reference(loose));
  });
});
