// The relay's wire pre-scan (src/server/frame-scan.ts) against the decoder it runs before
// (PROTOCOL.md §13.3): for random valid SessionRequests, encoded with the generated code, the
// scan's counts of every repeated field equal the decoded arrays' lengths and its case is the
// decoded one; for those frames mutated on the wire (bit flips, duplicated, removed and re-typed
// fields, huge lengths, group bombs…), whenever ts-proto still decodes them, the scan reached
// their end and counted the same. So the scan's bounds are the decoded request's, element for
// element, whatever the bytes: a frame cannot hold more than the scan saw.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { SessionRequest } from "../../src/gen/securechat/v1/chat.js";
import { countFrame, frameScanBoundsFor, scanRequest } from "../../src/server/frame-scan.js";
import { DEFAULT_RELAY_LIMITS } from "../../src/server/limits.js";
import { fuzzParams, fuzzSeed, mutationArb, applyMutations, describeMutation, writeVarint } from "../helpers/fuzz-protobuf.js";

type RequestFrame = NonNullable<SessionRequest["frame"]>;

const SEED = fuzzSeed(0x5ca7_0001);
const bounds = frameScanBoundsFor(DEFAULT_RELAY_LIMITS);

const str = fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom("", "alice", "é🔐"));
const bin = fc.uint8Array({ maxLength: 24 }).map((b) => Buffer.from(b));
const u32 = fc.oneof(fc.nat({ max: 300 }), fc.constant(0xffff_ffff), fc.nat());
const u64 = fc.oneof(fc.nat({ max: 300 }), fc.maxSafeNat());
/** Lengths around the small and the relay's bounds, never so long that a run gets slow. */
const many = <T>(a: fc.Arbitrary<T>, max = 40): fc.Arbitrary<T[]> => fc.array(a, { maxLength: max });

const device = fc.record({ deviceId: str, name: str, authSpki: bin, mlsSignatureKey: bin, addedAtMs: u64, primary: fc.boolean() });
const header = fc.record({
  suite: str, conversationId: str, messageId: bin, sender: str, senderSigFpr: bin, sentAtMs: u64, prev: bin, iv: bin,
  recipients: many(fc.record({ username: str, encFpr: bin })), keyCommitment: bin,
});
const envelope = fc.record({ header: fc.option(header, { nil: undefined }), ciphertext: bin, tag: bin, wraps: many(fc.record({ username: str, wrappedKey: bin })), signature: bin });

const frameArb: fc.Arbitrary<RequestFrame> = fc.oneof(
  fc.record({ $case: fc.constant("hello" as const), value: fc.record({ username: str, sigSpki: bin, encSpki: bin, encKeySig: bin, clientVersion: str, protocolVersion: u32, deviceSpki: bin }) }),
  fc.record({ $case: fc.constant("proof" as const), value: fc.record({ signature: bin }) }),
  fc.record({ $case: fc.constant("send" as const), value: fc.record({ envelope: fc.option(envelope, { nil: undefined }) }) }),
  fc.record({ $case: fc.constant("ack" as const), value: fc.record({ seqs: fc.oneof(many(u64), fc.array(fc.nat({ max: 127 }), { minLength: 2040, maxLength: 2060 })) }) }),
  fc.record({ $case: fc.constant("joinRoom" as const), value: fc.record({ requestId: u32, room: str }) }),
  fc.record({ $case: fc.constant("listRooms" as const), value: fc.record({ requestId: u32 }) }),
  fc.record({ $case: fc.constant("ping" as const), value: fc.record({ nonce: u64 }) }),
  fc.record({ $case: fc.constant("lookupKeys" as const), value: fc.record({ requestId: u32, usernames: fc.oneof(many(str), fc.array(fc.constant("a"), { minLength: 495, maxLength: 505 })) }) }),
  fc.record({ $case: fc.constant("publishKeyPackages" as const), value: fc.record({ requestId: u32, oneTime: fc.oneof(many(bin), fc.array(bin, { minLength: 98, maxLength: 103 })), lastResort: bin }) }),
  fc.record({ $case: fc.constant("claimKeyPackages" as const), value: fc.record({ requestId: u32, usernames: many(str, 110), deviceIds: many(str, 20) }) }),
  fc.record({ $case: fc.constant("publishGroupInfo" as const), value: fc.record({ requestId: u32, groupInfo: bin }) }),
  fc.record({ $case: fc.constant("fetchGroupInfo" as const), value: fc.record({ requestId: u32, groupId: bin, conversationId: str }) }),
  fc.record({ $case: fc.constant("sendCommit" as const), value: fc.record({ requestId: u32, commit: bin, groupInfo: bin, added: many(str, 600), removed: many(str, 600), welcome: bin, ratchetTree: bin }) }),
  fc.record({ $case: fc.constant("fetchCommits" as const), value: fc.record({ requestId: u32, groupId: bin, fromEpoch: u64 }) }),
  fc.record({ $case: fc.constant("sendMls" as const), value: fc.record({ mls: bin }) }),
  fc.record({ $case: fc.constant("recreateRoom" as const), value: fc.record({ requestId: u32, groupInfo: bin }) }),
  fc.record({ $case: fc.constant("publishDeviceList" as const), value: fc.record({ requestId: u32, list: fc.option(fc.record({ username: str, version: u64, issuedAtMs: u64, devices: many(device, 20), signature: bin }), { nil: undefined }) }) }),
  fc.record({ $case: fc.constant("fetchDeviceLists" as const), value: fc.record({ requestId: u32, usernames: many(str, 60) }) }),
);

/** The decoded frame's repeated fields, named as countFrame names them. */
function decodedCounts(f: RequestFrame | undefined): Record<string, number> {
  switch (f?.$case) {
    case "send": return { "send.envelope.header.recipients": f.value.envelope?.header?.recipients.length ?? 0, "send.envelope.wraps": f.value.envelope?.wraps.length ?? 0 };
    case "ack": return { "ack.seqs": f.value.seqs.length };
    case "lookupKeys": return { "lookupKeys.usernames": f.value.usernames.length };
    case "publishKeyPackages": return { "publishKeyPackages.oneTime": f.value.oneTime.length };
    case "claimKeyPackages": return { "claimKeyPackages.usernames": f.value.usernames.length, "claimKeyPackages.deviceIds": f.value.deviceIds.length };
    case "sendCommit": return { "sendCommit.added": f.value.added.length, "sendCommit.removed": f.value.removed.length };
    case "publishDeviceList": return { "publishDeviceList.list.devices": f.value.list?.devices.length ?? 0 };
    case "fetchDeviceLists": return { "fetchDeviceLists.usernames": f.value.usernames.length };
    default: return {};
  }
}

const CASE_NUMBERS: Record<RequestFrame["$case"], number> = {
  hello: 1, proof: 2, send: 3, ack: 4, joinRoom: 5, leaveRoom: 6, listRooms: 7, listMembers: 8, ping: 9, lookupKeys: 10, publishKeyPackages: 11,
  claimKeyPackages: 12, publishGroupInfo: 13, fetchGroupInfo: 14, sendCommit: 15, fetchCommits: 16, sendMls: 17, recreateRoom: 18, publishDeviceList: 19, fetchDeviceLists: 20,
};

const requestIdOf = (f: RequestFrame): number => ("requestId" in f.value ? f.value.requestId : 0);

describe("frame pre-scan: counts equal the decoder's (PROTOCOL.md §13.3)", () => {
  it("random valid SessionRequests: every repeated field counted as decoded, the case and request id read", () => {
    fc.assert(fc.property(frameArb, (frame) => {
      const bytes = SessionRequest.encode({ frame }).finish();
      const decoded = SessionRequest.decode(bytes).frame!;
      const c = countFrame(bytes);
      expect(c.broken).toBe(false);
      expect(c.frameCase).toBe(CASE_NUMBERS[decoded.$case]);
      expect(c.counts).toEqual(decodedCounts(decoded));
      if ("requestId" in decoded.value) expect(c.requestId).toBe(requestIdOf(decoded));
      // Within every bound: the largest honest frame of its kind has at least these steps.
      const within = Object.entries(c.counts).every(([k, n]) => n <= ({
        "ack.seqs": 2048, "lookupKeys.usernames": 500, "publishKeyPackages.oneTime": 100, "claimKeyPackages.usernames": 100, "claimKeyPackages.deviceIds": 16,
        "publishDeviceList.list.devices": 16, "fetchDeviceLists.usernames": 500, "send.envelope.header.recipients": 500, "send.envelope.wraps": 500,
      } as Record<string, number>)[k]! || k.startsWith("sendCommit")) && (c.counts["sendCommit.added"] ?? 0) + (c.counts["sendCommit.removed"] ?? 0) <= 1000;
      if (within) {
        expect(c.steps).toBeLessThanOrEqual(bounds.maxSteps[c.frameCase]!);
        expect(scanRequest(bytes, bounds)).toBeUndefined();
      }
    }), fuzzParams(SEED, 400));
  });

  it("mutated frames: whenever ts-proto decodes them, the scan reached the end and counted the same", () => {
    let decodedOnes = 0;
    fc.assert(fc.property(frameArb, fc.array(mutationArb, { minLength: 1, maxLength: 3 }), (frame, mutations) => {
      const bytes = applyMutations(SessionRequest.encode({ frame }).finish(), mutations);
      let decoded: SessionRequest;
      try {
        decoded = SessionRequest.decode(bytes);
      } catch {
        countFrame(bytes); // never throws, whatever the bytes
        return;
      }
      decodedOnes++;
      const c = countFrame(bytes);
      const how = mutations.map(describeMutation).join(" + ");
      expect(c.broken, how).toBe(false);
      expect(c.frameCase, how).toBe(decoded.frame === undefined ? 0 : CASE_NUMBERS[decoded.frame.$case]);
      expect(c.counts, how).toEqual(decodedCounts(decoded.frame));
      // The request id of a request that has one (a case without one leaves the scan's as it was).
      if (decoded.frame !== undefined && "requestId" in decoded.frame.value) expect(c.requestId, how).toBe(requestIdOf(decoded.frame));
    }), fuzzParams(SEED + 1, 1500));
    // Most mutants still decode: the property was tested, not skipped.
    expect(decodedOnes).toBeGreaterThan(300);
  });

  it("over-long tags and lengths (a field's bytes other than an encoder's) count the same", () => {
    // LookupKeys: field 2 with a 2-byte tag, a 2-byte length, both, and runs of them mixed with 1-byte ones.
    const shapes = [[0x92, 0x00, 0x00], [0x12, 0x80, 0x00], [0x92, 0x00, 0x80, 0x00], [0x12, 0x00], [0x12, 0x01, 0x61]];
    fc.assert(fc.property(fc.array(fc.nat({ max: shapes.length - 1 }), { maxLength: 300 }), (picks) => {
      const body = Buffer.from([0x08, 0x07, ...picks.flatMap((i) => shapes[i]!)]);
      const bytes = Buffer.concat([Buffer.from([0x52]), Buffer.from(writeVarint(BigInt(body.length))), body]);
      const decoded = SessionRequest.decode(bytes).frame!;
      expect(countFrame(bytes).counts).toEqual(decodedCounts(decoded));
    }), fuzzParams(SEED + 3, 300));
  });

  it("random bytes never make the scan throw anything but a refusal or the session's end", () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
      try {
        scanRequest(bytes, bounds);
      } catch (e) {
        expect((e as Error).name).toBe("SessionEnd");
      }
    }), fuzzParams(SEED + 2, 1000));
  });
});
