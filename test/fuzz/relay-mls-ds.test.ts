// Mutated MLS messages through the relay's Delivery Service (PROTOCOL.md §8.2, issue 12
// "decoders fuzzed with mutated MLS messages through the relay"): real KeyPackages, GroupInfos
// and commits made by the wrapper, then bytes flipped, cut, extended or spliced, sent as each DS
// request. Every request is answered (its answer, or a refusal with a known code and a clean
// sentence), the session goes on (the Ping after it is answered), and whatever the relay
// accepts is what its rules allow: a KeyPackage it stores still decodes and names mallory and
// her bound identity key; a commit it accepts is for the group's current epoch.
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode } from "../../src/gen/securechat/v1/chat.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { checkKeyPackage, decodeKeyPackage } from "../../src/protocol/mls/client.js";
import { MlsGroup } from "../../src/protocol/mls/index.js";
import { FuzzTally, fuzzParams, fuzzSeed } from "../helpers/fuzz-protobuf.js";
import { isCleanSentence } from "../helpers/fuzz-relay.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { ask, makeKeyPackage, mlsPerson, must, sendCommit } from "../helpers/mls-ds.js";
import type { RawSession, RequestFrame } from "../helpers/raw-session.js";
import { TestRelay } from "../helpers/relay-harness.js";

const SEED = fuzzSeed(0x5eed_0012);
const DS_REFUSALS: ReadonlySet<ErrorCode> = new Set([
  ErrorCode.ERROR_CODE_BAD_MLS_MESSAGE, ErrorCode.ERROR_CODE_FRAME_TOO_LARGE, ErrorCode.ERROR_CODE_FORGED_SENDER,
  ErrorCode.ERROR_CODE_MLS_LIMIT, ErrorCode.ERROR_CODE_BAD_FRAME, ErrorCode.ERROR_CODE_UNKNOWN_GROUP,
  ErrorCode.ERROR_CODE_EPOCH_TAKEN, ErrorCode.ERROR_CODE_NOT_A_MEMBER, ErrorCode.ERROR_CODE_BAD_CONVERSATION,
]);

let relay: TestRelay;
let mallory: PrivateIdentity;
let session: RawSession;
let bases: { keyPackage: Buffer; groupInfo: Buffer; commit: Buffer };
let sigSpki: Buffer;

beforeAll(async () => {
  mallory = await fixtureIdentity("mallory");
  sigSpki = Buffer.from(mallory.sigSpki);
  relay = await TestRelay.start({ limits: { messagesPerSecond: 100_000, burst: 100_000 } });
  session = await relay.connect(mallory);
  const pm = await mlsPerson(mallory);
  const g = await MlsGroup.create(pm.client, "#fuzz");
  await must(session, { $case: "publishGroupInfo", value: { requestId: 0, groupInfo: Buffer.from(await g.groupInfo()) } }, "groupInfoResult");
  const upd = await g.selfUpdate();
  bases = { keyPackage: await makeKeyPackage(pm), groupInfo: Buffer.from(await g.groupInfo()), commit: Buffer.from(upd.commit) };
}, 30_000);

afterAll(async () => {
  await relay?.cleanup();
});

type Mutation = { kind: "flip"; at: number; bit: number } | { kind: "cut"; at: number } | { kind: "extend"; bytes: Uint8Array } | { kind: "splice"; at: number; bytes: Uint8Array };

const mutationArb: fc.Arbitrary<Mutation[]> = fc.array(fc.oneof(
  fc.record({ kind: fc.constant("flip" as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant("cut" as const), at: fc.nat() }),
  fc.record({ kind: fc.constant("extend" as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.record({ kind: fc.constant("splice" as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 4 }) }),
), { minLength: 1, maxLength: 3 });

function mutate(b: Buffer, ms: readonly Mutation[]): Buffer {
  let out = Buffer.from(b);
  for (const m of ms) {
    const at = out.length === 0 ? 0 : ("at" in m ? m.at % out.length : 0);
    if (m.kind === "flip" && out.length > 0) out[at] = out[at]! ^ (1 << m.bit);
    else if (m.kind === "cut") out = out.subarray(0, at);
    else if (m.kind === "extend") out = Buffer.concat([out, m.bytes]);
    else if (m.kind === "splice") out = Buffer.concat([out.subarray(0, at), m.bytes, out.subarray(at)]);
  }
  return out;
}

describe("mutated MLS messages through the Delivery Service", () => {
  const tally = new FuzzTally();

  it("each DS request with mutated MLS bytes is answered with its answer or a clean refusal, and the session goes on", { timeout: 120_000 }, async () => {
    let nonce = 0;
    await fc.assert(fc.asyncProperty(fc.constantFrom("publishKeyPackages", "publishGroupInfo", "sendCommit"), mutationArb, async (what, ms) => {
      if (what === "sendCommit") {
        const bytes = mutate(bases.commit, ms);
        const r = await sendCommit(session, bytes);
        tally.add("sendCommit", r.accepted ? "ACCEPTED" : ErrorCode[r.code]!);
        if (!r.accepted) {
          expect(DS_REFUSALS.has(r.code), `${ErrorCode[r.code]}: ${r.detail}`).toBe(true);
          expect(isCleanSentence(r.detail), r.detail).toBe(true);
        }
      } else {
        const kp = mutate(bases.keyPackage, ms);
        const frame: RequestFrame = what === "publishKeyPackages"
          ? { $case: what, value: { requestId: 0, oneTime: [kp], lastResort: Buffer.alloc(0) } }
          : { $case: what, value: { requestId: 0, groupInfo: mutate(bases.groupInfo, ms) } };
        const r = await ask(session, frame, what === "publishKeyPackages" ? "keyPackageStatus" : "groupInfoResult");
        const got = r.ok ? "ok" as const : r.value;
        if (got === "ok") {
          tally.add(what, "ACCEPTED");
          if (what === "publishKeyPackages") {
            // What the relay stored still decodes and names mallory under her bound key.
            const id = checkKeyPackage(decodeKeyPackage(kp), "mallory", Math.floor(Date.now() / 1000));
            expect(id.identitySpki.equals(sigSpki)).toBe(true);
          }
        } else {
          tally.add(what, ErrorCode[got.code]!);
          expect(DS_REFUSALS.has(got.code), `${ErrorCode[got.code]}: ${got.detail}`).toBe(true);
          expect(isCleanSentence(got.detail), got.detail).toBe(true);
        }
      }
      const mine = ++nonce;
      session.write({ $case: "ping", value: { nonce: mine } });
      expect((await session.next("pong", (p) => p.nonce === mine, 10_000)).nonce).toBe(mine);
    }), fuzzParams(SEED, 150));
    // The fuzz reached refusals of each kind of request.
    for (const what of ["publishKeyPackages", "publishGroupInfo", "sendCommit"]) {
      expect([...tally.of(what).keys()].some((k) => k !== "ACCEPTED"), what).toBe(true);
    }
    expect(session.isEnded).toBe(false);
  });
});
