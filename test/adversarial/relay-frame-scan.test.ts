// Regression (found while bounding the MLS structures, mls-shape.ts): SessionRequest.decode built
// one object per element of every repeated field before any count check, so a PublishKeyPackages
// of 330,000 empty one_time entries (a 660 KB frame, far under the rate limit) held the relay's
// event loop ~450 ms, for everyone. PROTOCOL.md §13.3: the relay counts a request's elements on
// the wire first (src/server/frame-scan.ts) and refuses a count over its limit with the later
// check's own code and sentence, to the request's id, without decoding it; the session goes on.
// Asserted: the answer, that SessionRequest.decode never saw the hostile frame, that the session
// still answers a Ping, and that honest maximal requests pass. Times are printed (never asserted):
// the relay's round trip with the old path (the scan bypassed: decode, then the later check) and
// with the scan, and the decode and the scan alone.
import { status as GrpcStatus } from "@grpc/grpc-js";
import { afterEach, describe, expect, it, vi } from "vitest";
import { ErrorCode, SendStatus, SessionRequest } from "../../src/gen/securechat/v1/chat.js";
import { MAX_DEVICES } from "../../src/protocol/devices.js";
import { MAX_HINT_NAMES } from "../../src/server/commit-checks.js";
import { DEFAULT_RELAY_LIMITS, MAX_ACK_SEQS, PRE_AUTH_MAX_FRAME_BYTES } from "../../src/server/limits.js";
import { MAX_CLAIM_USERS, MAX_ONE_TIME_KEY_PACKAGES } from "../../src/server/mls-key-packages.js";
import * as scan from "../../src/server/frame-scan.js";
import { emptyEntries, lenField, packedOnes, requestFrame, varintField } from "../helpers/hostile-frames.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { realExternalCommit } from "../helpers/mls-hostile-shapes.js";
import type { RawSession } from "../helpers/raw-session.js";
import { TestRelay } from "../helpers/relay-harness.js";
import { waitUntil } from "../helpers/wait.js";

/** The old path, for comparison: the scan bypassed (decode, then the later checks). */
const bypass = vi.hoisted(() => ({ on: false }));
vi.mock("../../src/server/frame-scan.js", async (importOriginal) => {
  const orig = await importOriginal<typeof import("../../src/server/frame-scan.js")>();
  return { ...orig, scanRequest: (...a: Parameters<typeof orig.scanRequest>) => (bypass.on ? undefined : orig.scanRequest(...a)) };
});

const N = 330_000;
const MAX_RECIPIENTS = DEFAULT_RELAY_LIMITS.maxRecipients;
const text = (s: string): Buffer => Buffer.from(s, "utf8");
/** `n` distinct valid usernames as repeated string field `field`. */
const names = (n: number, prefix = "u", field = 2): Buffer => Buffer.concat(Array.from({ length: n }, (_, i) => lenField(field, text(`${prefix}${i}`))));

let relay: TestRelay | undefined;
afterEach(async () => {
  bypass.on = false;
  vi.restoreAllMocks();
  await relay?.cleanup();
  relay = undefined;
});

type Answer = { readonly code: ErrorCode; readonly detail: string; readonly requestId: number; readonly kind: string };

/** The answer to the request `requestId` (a RequestError, CommitResult or SendResult), and the round trip in ms. */
async function answerTo(s: RawSession, bytes: Uint8Array, requestId: number, messageId?: Buffer): Promise<{ answer: Answer; ms: number }> {
  const t0 = performance.now();
  s.writeRaw(bytes);
  const f = await waitUntil(() => {
    if (s.isEnded) throw new Error("the session ended");
    const i = s.inbox.findIndex((x) =>
      (x.$case === "error" || x.$case === "commitResult" || x.$case === "keyList" || x.$case === "keyPackageList" || x.$case === "deviceListResult" || x.$case === "keyPackageStatus")
        && x.value.requestId === requestId || x.$case === "sendResult" && messageId !== undefined && Buffer.from(x.value.messageId).equals(messageId));
    return i < 0 ? undefined : s.inbox.splice(i, 1)[0]!;
  }, `the answer to request ${requestId}`, 20_000, 2);
  const ms = performance.now() - t0;
  switch (f.$case) {
    case "error":
    case "commitResult":
      return { answer: { code: f.value.code, detail: f.value.detail, requestId: f.value.requestId, kind: f.$case }, ms };
    case "sendResult":
      expect(f.value.status).toBe(SendStatus.SEND_STATUS_REFUSED);
      return { answer: { code: f.value.code, detail: f.value.detail, requestId, kind: f.$case }, ms };
    default:
      return { answer: { code: ErrorCode.ERROR_CODE_UNSPECIFIED, detail: "", requestId: "requestId" in f.value ? f.value.requestId : -1, kind: f.$case }, ms };
  }
}

/** Median ms of `fn` (printed, never asserted). */
function median(fn: () => unknown, n = 5): number {
  const xs: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    try { fn(); } catch { /* a refusal: its time is what is measured */ }
    xs.push(performance.now() - t0);
  }
  return xs.sort((a, b) => a - b)[Math.floor(n / 2)]!;
}

const bounds = scan.frameScanBoundsFor(DEFAULT_RELAY_LIMITS);
/** The scan itself (not the mock above), for its times. */
const realScan = await vi.importActual<typeof import("../../src/server/frame-scan.js")>("../../src/server/frame-scan.js");

describe("request frames: counted on the wire before the decode (PROTOCOL.md §13.3)", () => {
  it("a hostile frame of each request type with a repeated field is refused undecoded, as its check refuses it; the session goes on", { timeout: 120_000 }, async () => {
    // The relay's clock moves only when the test says: each request gets a full bucket (§13.2).
    let now = Date.now();
    relay = await TestRelay.start({ logLevel: "warn", clock: () => now });
    const mallory = await fixtureIdentity("mallory");
    const m = await relay.connect(mallory);
    const commit = await realExternalCommit(mallory);
    const messageId = Buffer.alloc(16, 0x42);
    const cases: Array<{ name: string; bytes: Buffer; requestId: number; messageId?: Buffer; code: ErrorCode; detail: string; kind: string; sameBefore?: boolean }> = [
      { name: "LookupKeys usernames", requestId: 101, bytes: requestFrame(10, varintField(1, 101), emptyEntries(2, N)),
        code: ErrorCode.ERROR_CODE_BAD_FRAME, detail: `a key lookup may name at most ${MAX_RECIPIENTS} users, not ${N}`, kind: "error" },
      { name: "PublishKeyPackages one_time", requestId: 102, bytes: requestFrame(11, varintField(1, 102), emptyEntries(2, N)),
        code: ErrorCode.ERROR_CODE_MLS_LIMIT, detail: `at most ${MAX_ONE_TIME_KEY_PACKAGES} one-time KeyPackages per request, not ${N}`, kind: "error" },
      { name: "ClaimKeyPackages usernames", requestId: 103, bytes: requestFrame(12, varintField(1, 103), emptyEntries(2, N)),
        code: ErrorCode.ERROR_CODE_MLS_LIMIT, detail: `one claim may name at most ${MAX_CLAIM_USERS} users, not ${N}`, kind: "error" },
      { name: "ClaimKeyPackages device_ids", requestId: 104, bytes: requestFrame(12, varintField(1, 104), lenField(2, text("alice")), emptyEntries(3, N)),
        code: ErrorCode.ERROR_CODE_BAD_FRAME, detail: `ClaimKeyPackages names more than ${MAX_DEVICES} devices`, kind: "error" },
      // A real commit, so the old path reaches its hint check too.
      { name: "SendCommit added", requestId: 105, bytes: requestFrame(15, varintField(1, 105), lenField(2, commit), emptyEntries(4, N)),
        code: ErrorCode.ERROR_CODE_MLS_LIMIT, detail: `a commit may name at most ${MAX_HINT_NAMES} added and removed users`, kind: "commitResult" },
      { name: "SendCommit added + removed", requestId: 106, bytes: requestFrame(15, varintField(1, 106), lenField(2, commit), names(600, "a", 4), emptyEntries(5, 401)),
        code: ErrorCode.ERROR_CODE_MLS_LIMIT, detail: `a commit may name at most ${MAX_HINT_NAMES} added and removed users`, kind: "commitResult" },
      { name: "PublishDeviceList devices", requestId: 107,
        bytes: requestFrame(19, varintField(1, 107), lenField(2, Buffer.concat([lenField(1, text("mallory")), varintField(2, 1), emptyEntries(4, N)]))),
        code: ErrorCode.ERROR_CODE_BAD_DEVICE_LIST, detail: `malformed list: it lists more than ${MAX_DEVICES} devices`, kind: "error" },
      // Distinct names: the old check counted distinct ones (330,000 empty names were one name to it).
      { name: "FetchDeviceLists usernames", requestId: 108, bytes: requestFrame(20, varintField(1, 108), names(MAX_RECIPIENTS + 1)),
        code: ErrorCode.ERROR_CODE_BAD_FRAME, detail: `a device list fetch may name at most ${MAX_RECIPIENTS} users, not ${MAX_RECIPIENTS + 1}`, kind: "error" },
      { name: "FetchDeviceLists usernames (330,000 copies of one)", requestId: 109, bytes: requestFrame(20, varintField(1, 109), emptyEntries(2, N)), sameBefore: false,
        code: ErrorCode.ERROR_CODE_BAD_FRAME, detail: `a device list fetch may name at most ${MAX_RECIPIENTS} users, not ${N}`, kind: "error" },
      { name: "SendEnvelope recipients (protocol v1)", requestId: 0, messageId,
        bytes: requestFrame(3, lenField(1, lenField(1, Buffer.concat([lenField(3, messageId), emptyEntries(9, N)])))),
        code: ErrorCode.ERROR_CODE_BAD_FRAME, detail: "this session speaks protocol v2: send MLS messages with SendMls; SendEnvelope is protocol v1", kind: "sendResult" },
      { name: "SendEnvelope wraps (protocol v1)", requestId: 0, messageId,
        bytes: requestFrame(3, lenField(1, Buffer.concat([lenField(1, lenField(3, messageId)), emptyEntries(4, N)]))),
        code: ErrorCode.ERROR_CODE_BAD_FRAME, detail: "this session speaks protocol v2: send MLS messages with SendMls; SendEnvelope is protocol v1", kind: "sendResult" },
    ];
    const decode = vi.spyOn(SessionRequest, "decode");
    // After: refused by the scan, never decoded; the session goes on (a Ping is answered).
    const afterMs: number[] = [];
    for (const c of cases) {
      expect(c.bytes.length, c.name).toBeLessThan(DEFAULT_RELAY_LIMITS.maxFrameBytes);
      now += 60_000;
      decode.mockClear();
      const after = await answerTo(m, c.bytes, c.requestId, c.messageId);
      expect(after.answer, c.name).toEqual({ code: c.code, detail: c.detail, requestId: c.requestId, kind: c.kind });
      expect(decode.mock.calls.some(([b]) => b instanceof Uint8Array && b.length === c.bytes.length), `${c.name}: decoded`).toBe(false);
      await m.barrier();
      afterMs.push(after.ms);
    }
    // Before: the scan bypassed, the relay decodes the frame, then its check refuses it: the same
    // answer (but where noted), at the decode's cost. Run after all the others, so the garbage
    // the decodes leave is not collected during them.
    bypass.on = true;
    const lines: string[] = [];
    for (const [i, c] of cases.entries()) {
      now += 60_000;
      const before = await answerTo(m, c.bytes, c.requestId, c.messageId);
      if (c.sameBefore !== false) expect(before.answer, `${c.name}: the old path's answer`).toEqual({ code: c.code, detail: c.detail, requestId: c.requestId, kind: c.kind });
      const decodeMs = median(() => SessionRequest.decode(c.bytes), 3);
      const scanMs = median(() => realScan.scanRequest(c.bytes, bounds), 7);
      lines.push(`${c.name}: ${c.bytes.length} B; relay round trip ${before.ms.toFixed(1)} ms before (decoded), ${afterMs[i]!.toFixed(1)} ms after; SessionRequest.decode ${decodeMs.toFixed(1)} ms, the scan ${scanMs.toFixed(2)} ms`);
    }
    bypass.on = false;
    console.log(lines.join("\n"));
  });

  it("an Ack of too many seqs still ends the session as before, undecoded", async () => {
    relay = await TestRelay.start({ logLevel: "warn" });
    const m = await relay.connect(await fixtureIdentity("mallory"));
    const decode = vi.spyOn(SessionRequest, "decode");
    const bytes = requestFrame(4, packedOnes(1, 700_000));
    const t0 = performance.now();
    m.writeRaw(bytes);
    const end = await m.ended;
    expect(end).toMatchObject({ code: GrpcStatus.INVALID_ARGUMENT, errorCode: "ERROR_CODE_BAD_FRAME", details: `malformed frame: an Ack carries 700000 seqs (limit ${MAX_ACK_SEQS})` });
    expect(decode.mock.calls.some(([b]) => b instanceof Uint8Array && b.length === bytes.length)).toBe(false);
    console.log(`Ack of 700,000 packed seqs (${bytes.length} B): session ended in ${(performance.now() - t0).toFixed(1)} ms; SessionRequest.decode alone ${median(() => SessionRequest.decode(bytes), 3).toFixed(1)} ms, the scan ${median(() => realScan.scanRequest(bytes, bounds)).toFixed(2)} ms`);
  });

  it("a frame of more fields than the largest honest one of its kind (duplicates, unknown fields) ends the session undecoded", async () => {
    relay = await TestRelay.start({ logLevel: "warn" });
    const decode = vi.spyOn(SessionRequest, "decode");
    const hostile = [
      // 330,000 Pings in one frame (each decoded into an object, the last one kept).
      { name: "330,000 Ping fields", bytes: emptyEntries(9, N), fields: N },
      // A Ping followed by 330,000 unknown fields.
      { name: "a Ping and 330,000 unknown fields", bytes: Buffer.concat([requestFrame(9, varintField(1, 7)), emptyEntries(99, N)]), fields: N + 2 },
      // PublishKeyPackages' request_id, 330,000 times.
      { name: "request_id 330,000 times", bytes: requestFrame(11, Buffer.alloc(2 * N, Buffer.from([0x08, 0x01]))), fields: N + 1 },
    ];
    for (const h of hostile) {
      const m = await relay.connect(await fixtureIdentity("mallory"));
      decode.mockClear();
      m.writeRaw(h.bytes);
      const end = await m.ended;
      expect(end, h.name).toMatchObject({ code: GrpcStatus.INVALID_ARGUMENT, errorCode: "ERROR_CODE_BAD_FRAME" });
      expect(end.details, h.name).toMatch(new RegExp(`^malformed frame: the frame has ${h.fields} fields and elements; the largest honest frame of its kind has \\d+ \\(PROTOCOL\\.md §13\\.3\\)$`));
      expect(decode.mock.calls.some(([b]) => b instanceof Uint8Array && b.length === h.bytes.length), h.name).toBe(false);
      console.log(`${h.name} (${h.bytes.length} B): SessionRequest.decode ${median(() => SessionRequest.decode(h.bytes), 3).toFixed(1)} ms, the scan ${median(() => realScan.scanRequest(h.bytes, bounds)).toFixed(2)} ms`);
    }
    // Another user's session never noticed.
    const alice = await relay.connect(await fixtureIdentity("alice"));
    await alice.barrier();
  });

  it("a frame before the handshake is walked too: a hostile request there ends the stream as out of order, undecoded", async () => {
    relay = await TestRelay.start({ logLevel: "warn" });
    const decode = vi.spyOn(SessionRequest, "decode");
    // The worst a 4 KiB frame holds: ~2,040 empty KeyPackages (~0.6 ms to decode, printed).
    const bytes = requestFrame(11, emptyEntries(2, 2_040));
    expect(bytes.length).toBeLessThanOrEqual(PRE_AUTH_MAX_FRAME_BYTES);
    const s = relay.open();
    s.writeRaw(bytes);
    expect(await s.ended).toMatchObject({ code: GrpcStatus.INVALID_ARGUMENT, errorCode: "ERROR_CODE_BAD_FRAME", details: "the first frame of a session must be Hello" });
    expect(decode.mock.calls.some(([b]) => b instanceof Uint8Array && b.length === bytes.length)).toBe(false);
    for (let i = 0; i < 20; i++) SessionRequest.decode(bytes);
    console.log(`pre-auth PublishKeyPackages of 2,040 empty one_time (${bytes.length} B): SessionRequest.decode ${median(() => SessionRequest.decode(bytes), 9).toFixed(3)} ms, the scan ${median(() => realScan.scanRequest(bytes, bounds), 9).toFixed(3)} ms`);
  });

  it("honest maximal requests pass the scan and are decoded: lookups of max recipients, 100 KeyPackages, 1,000 hint names, full Acks", { timeout: 60_000 }, async () => {
    let now = Date.now();
    relay = await TestRelay.start({ logLevel: "warn", clock: () => now });
    const m = await relay.connect(await fixtureIdentity("mallory"));
    const decode = vi.spyOn(SessionRequest, "decode");
    const ask = async (bytes: Buffer, requestId: number): Promise<Answer> => {
      now += 60_000;
      decode.mockClear();
      const { answer } = await answerTo(m, bytes, requestId);
      expect(decode.mock.calls.some(([b]) => b instanceof Uint8Array && b.length === bytes.length)).toBe(true);
      return answer;
    };
    expect(await ask(requestFrame(10, varintField(1, 1), names(MAX_RECIPIENTS)), 1)).toMatchObject({ kind: "keyList" });
    expect(await ask(requestFrame(20, varintField(1, 2), names(MAX_RECIPIENTS)), 2)).toMatchObject({ kind: "deviceListResult" });
    expect(await ask(requestFrame(12, varintField(1, 3), names(MAX_CLAIM_USERS), Buffer.concat(Array.from({ length: MAX_DEVICES }, (_, i) => lenField(3, text(`${i}`.padStart(16, "0")))))), 3))
      .toMatchObject({ kind: "keyPackageList" });
    // 100 one-time KeyPackages (junk, so the answer shows they were decoded and checked) and a last-resort one.
    const kps = Buffer.concat(Array.from({ length: MAX_ONE_TIME_KEY_PACKAGES }, (_, i) => lenField(2, Buffer.alloc(200, i + 1))));
    expect(await ask(requestFrame(11, varintField(1, 4), kps, lenField(3, Buffer.alloc(200, 7))), 4)).toMatchObject({ kind: "error", code: ErrorCode.ERROR_CODE_BAD_MLS_MESSAGE });
    // 1,000 hint names beside a junk commit: past the scan, refused at the commit's decode.
    expect(await ask(requestFrame(15, varintField(1, 5), lenField(2, Buffer.alloc(64, 1)), names(MAX_HINT_NAMES / 2, "a", 4), names(MAX_HINT_NAMES / 2, "r", 5)), 5))
      .toMatchObject({ kind: "commitResult", code: ErrorCode.ERROR_CODE_BAD_MLS_MESSAGE });
    // 16 devices in a list: past the scan, refused for what they are (empty), not for their number.
    const list = lenField(2, Buffer.concat([lenField(1, text("mallory")), varintField(2, 1), emptyEntries(4, MAX_DEVICES)]));
    const published = await ask(requestFrame(19, varintField(1, 6), list), 6);
    expect(published).toMatchObject({ kind: "error", code: ErrorCode.ERROR_CODE_BAD_DEVICE_LIST });
    expect(published.detail).not.toContain("more than");
    // Acks of MAX_ACK_SEQS seqs, packed and not: taken (no answer), the session goes on.
    m.writeRaw(requestFrame(4, packedOnes(1, MAX_ACK_SEQS)));
    m.writeRaw(requestFrame(4, Buffer.alloc(2 * MAX_ACK_SEQS, Buffer.from([0x08, 0x05]))));
    await m.barrier();
    expect(m.isEnded).toBe(false);
  });
});
