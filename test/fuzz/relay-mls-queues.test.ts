// Mutated MLS messages through the relay's durable queues (PROTOCOL.md §8.1, §8.3; issue 12
// "decoders fuzzed with mutated MLS messages through the relay"). Real groups made with the
// wrapper (src/protocol/mls, X-Wing suite), registered with a real relay:
//   - room A (#fuzz-q: alice creates, bob and carol): carol, a member, sends mutated
//     application messages and proposals with SendMls: bit flips, truncations, extensions, huge
//     length prefixes, and splices of real application, proposal, commit, Welcome, KeyPackage and
//     GroupInfo bytes; some re-targeted to another group (room B) or to a group the relay does not
//     know. Between them carol sends genuine messages.
//   - room B (#fuzz-c: carol creates, dave added): carol sends SendCommit with a real commit for
//     the group's epoch (from a chain made ahead), its GroupInfo, the Welcome and ratchet tree
//     adding dave, one of the four mutated, and the hint adding dave or not.
// What must hold: every frame is answered (SendResult / CommitResult) with acceptance or a
// refusal with a known code and a clean sentence, the sessions go on (a Ping is answered after
// each) and the relay stays up; what the relay accepts is what its framing rules allow (a
// SendMls it accepts decodes as an MLS PrivateMessage for a group carol is in); everything it
// queues reaches the members, whose MlsGroup.process refuses each mutant with MlsProtocolError
// and opens each genuine message, in order; dave joins from a queued Welcome only when its
// Welcome and tree are the genuine bytes; and afterwards alice and bob still exchange messages
// through the relay.
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode, MlsKind, SendStatus, type Delivery } from "../../src/gen/securechat/v1/chat.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { decodeMls } from "../../src/protocol/mls/client.js";
import {
  createMlsClient, generateKeyPackage, isMlsProtocolError, MlsGroup, restoreKeyPackage, type MlsClient,
} from "../../src/protocol/mls/index.js";
import { FuzzTally, fuzzParams, fuzzSeed } from "../helpers/fuzz-protobuf.js";
import { isCleanSentence } from "../helpers/fuzz-relay.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { makeKeyPackage, mlsPerson, must, sendCommit } from "../helpers/mls-ds.js";
import { makeMlsRoom, registerMlsRoom, type MlsRoom } from "../helpers/mls-room.js";
import type { RawSession } from "../helpers/raw-session.js";
import { TestRelay } from "../helpers/relay-harness.js";
import { waitUntil } from "../helpers/wait.js";

const SEED = fuzzSeed(0x5eed_0c12);
const CASES = 300;
/** Codes an MLS frame may be refused with by a relay that is not full, failing or stopping. */
const MLS_REFUSALS: ReadonlySet<ErrorCode> = new Set([
  ErrorCode.ERROR_CODE_BAD_MLS_MESSAGE, ErrorCode.ERROR_CODE_FRAME_TOO_LARGE, ErrorCode.ERROR_CODE_UNKNOWN_GROUP,
  ErrorCode.ERROR_CODE_EPOCH_TAKEN, ErrorCode.ERROR_CODE_NOT_A_MEMBER, ErrorCode.ERROR_CODE_BAD_CONVERSATION,
  ErrorCode.ERROR_CODE_BAD_FRAME, ErrorCode.ERROR_CODE_MLS_LIMIT, ErrorCode.ERROR_CODE_FORGED_SENDER,
]);

let relay: TestRelay;
const ids: Record<"alice" | "bob" | "carol" | "dave", PrivateIdentity> = {} as never;
const sessions: Record<"alice" | "bob" | "carol" | "dave", RawSession> = {} as never;
let roomA: MlsRoom;
/** carol's state in room B, and the chain of real commits she made ahead: chain[e] takes epoch e to e + 1. */
let chain: { commit: Uint8Array; groupInfo: Uint8Array }[];
let welcomeB: { welcome: Uint8Array; ratchetTree: Uint8Array };
let chainGroupId: Uint8Array;
let daveClient: MlsClient;
let daveKeyPackage: Uint8Array;
/** Real bytes to mutate and splice. */
let bases: { name: string; bytes: Buffer }[];
/** carol's genuine messages in room A, sent between the mutants. */
let genuine: Buffer[];

async function v2Session(id: PrivateIdentity): Promise<RawSession> {
  const s = relay.open();
  await s.handshake(id, s.waitMs, { protocolVersion: 2 });
  return s;
}

beforeAll(async () => {
  for (const n of ["alice", "bob", "carol", "dave"] as const) ids[n] = await fixtureIdentity(n);
  relay = await TestRelay.start({ limits: { messagesPerSecond: 100_000, burst: 100_000 } });
  for (const n of ["alice", "bob", "carol", "dave"] as const) sessions[n] = await v2Session(ids[n]);
  roomA = await makeMlsRoom([ids.alice, ids.bob, ids.carol].map((id) => ({ username: id.username, sigPrivate: id.sigPrivate })), "#fuzz-q");
  await registerMlsRoom(sessions.alice, roomA);

  // Room B: carol's group, dave's KeyPackage (published, as a client does), a chain of commits.
  const carolB = await createMlsClient({ username: "carol", sigPrivate: ids.carol.sigPrivate });
  daveClient = await createMlsClient({ username: "dave", sigPrivate: ids.dave.sigPrivate });
  const daveKp = await generateKeyPackage(daveClient);
  daveKeyPackage = Buffer.from(daveKp.stored);
  const b = await MlsGroup.create(carolB, "#fuzz-c");
  chainGroupId = b.groupId;
  await must(sessions.carol, { $case: "publishGroupInfo", value: { requestId: 0, groupInfo: Buffer.from(await b.groupInfo()) } }, "groupInfoResult");
  const add = await b.addMembers([daveKp.keyPackage]);
  b.confirmCommit();
  welcomeB = { welcome: add.welcome!, ratchetTree: add.ratchetTree! };
  chain = [{ commit: add.commit, groupInfo: await b.groupInfo() }];
  for (let e = 1; e < 40; e++) {
    const u = await b.selfUpdate();
    b.confirmCommit();
    chain.push({ commit: u.commit, groupInfo: await b.groupInfo() });
  }

  // Splice material: carol's application message and proposal in A (from a copy of her state,
  // so her own stays clean), a commit in A, room B's Welcome, a KeyPackage, a GroupInfo, and a
  // message of a group no relay knows.
  const carolCopy = MlsGroup.restore(roomA.clients[2]!, roomA.snapshots[2]!);
  const app = await carolCopy.encrypt(Buffer.from("splice material"));
  const proposal = await MlsGroup.restore(roomA.clients[2]!, roomA.snapshots[2]!).proposeLeave();
  const commitA = (await MlsGroup.restore(roomA.clients[2]!, roomA.snapshots[2]!).selfUpdate()).commit;
  const unknown = await MlsGroup.create(await createMlsClient({ username: "carol", sigPrivate: ids.carol.sigPrivate }), "#fuzz-nowhere");
  const appB = await b.encrypt(Buffer.from("in room B"));
  bases = [
    { name: "application", bytes: Buffer.from(app) },
    { name: "proposal", bytes: Buffer.from(proposal) },
    { name: "commit", bytes: Buffer.from(commitA) },
    { name: "welcome", bytes: Buffer.from(add.welcome!) },
    { name: "key package", bytes: await makeKeyPackage(await mlsPerson(ids.carol)) },
    { name: "group info", bytes: Buffer.from(await roomA.groups[0]!.groupInfo()) },
    { name: "other group's application", bytes: Buffer.from(appB) },
    { name: "unknown group's application", bytes: Buffer.from(await unknown.encrypt(Buffer.from("nowhere"))) },
  ];
  genuine = [];
  for (let i = 0; i < CASES / 10 + 2; i++) genuine.push(Buffer.from(await roomA.groups[2]!.encrypt(Buffer.from(`carol ${i}`))));
}, 60_000);

afterAll(async () => {
  await relay?.cleanup();
});

type Mutation =
  | { kind: "flip"; at: number; bit: number }
  | { kind: "cut"; at: number }
  | { kind: "extend"; bytes: Uint8Array }
  | { kind: "huge-length"; at: number; width: 1 | 2 | 4 }
  | { kind: "splice"; at: number; from: number; start: number; length: number }
  | { kind: "graft"; at: number; from: number; start: number };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("flip" as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }) },
  fc.record({ kind: fc.constant("cut" as const), at: fc.nat() }),
  fc.record({ kind: fc.constant("extend" as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.record({ kind: fc.constant("huge-length" as const), at: fc.nat(), width: fc.constantFrom(1 as const, 2 as const, 4 as const) }),
  // Real bytes of another message inserted, or another message's tail after this one's head.
  fc.record({ kind: fc.constant("splice" as const), at: fc.nat(), from: fc.nat(), start: fc.nat(), length: fc.integer({ min: 1, max: 64 }) }),
  fc.record({ kind: fc.constant("graft" as const), at: fc.nat(), from: fc.nat(), start: fc.nat() }),
);

function mutate(b: Buffer, ms: readonly Mutation[]): Buffer {
  let out = Buffer.from(b);
  for (const m of ms) {
    const at = out.length === 0 ? 0 : "at" in m ? m.at % out.length : 0;
    if (m.kind === "flip") {
      if (out.length > 0) out[at] = out[at]! ^ (1 << m.bit);
    } else if (m.kind === "cut") {
      out = out.subarray(0, at);
    } else if (m.kind === "extend") {
      out = Buffer.concat([out, m.bytes]);
    } else if (m.kind === "huge-length") {
      // An MLS variable-length integer (RFC 9420 §2.1.2) claiming the most its width allows.
      const huge = m.width === 1 ? [0x3f] : m.width === 2 ? [0x7f, 0xff] : [0xbf, 0xff, 0xff, 0xff];
      out = Buffer.concat([out.subarray(0, at), Buffer.from(huge), out.subarray(Math.min(out.length, at + huge.length))]);
    } else {
      const src = bases[m.from % bases.length]!.bytes;
      const start = m.start % src.length;
      out = m.kind === "splice"
        ? Buffer.concat([out.subarray(0, at), src.subarray(start, start + m.length), out.subarray(at)])
        : Buffer.concat([out.subarray(0, at), src.subarray(start)]);
    }
  }
  return out;
}

/** A mutant, never the bytes of a real message (those are sent as genuine ones). */
function mutant(b: Buffer, ms: readonly Mutation[]): Buffer {
  const out = mutate(b, ms);
  return bases.some((x) => x.bytes.equals(out)) || genuine.some((g) => g.equals(out)) ? Buffer.concat([out, Buffer.from([0])]) : out;
}

async function sendMls(s: RawSession, mls: Buffer) {
  s.write({ $case: "sendMls", value: { mls } });
  return s.next("sendResult", () => true, 10_000);
}

let nonce = 0;
async function stillServes(s: RawSession): Promise<void> {
  const mine = ++nonce;
  s.write({ $case: "ping", value: { nonce: mine } });
  expect((await s.next("pong", (p) => p.nonce === mine, 10_000)).nonce).toBe(mine);
}

/** A member of room A reading its queue: every MLS delivery processed in order, then acked. */
class Reader {
  readonly opened: string[] = [];
  refused = 0;
  readonly kinds = new Map<string, number>();

  constructor(readonly name: string, readonly session: RawSession, readonly group: MlsGroup) {}

  /** Processes what is queued until `done()` holds (deadline: 15 s). */
  async readUntil(done: () => boolean): Promise<void> {
    try {
      await waitUntil(async () => {
        while (this.session.has("deliver")) {
          const batch = await this.session.next("deliver");
          for (const d of batch.items) await this.one(d);
          this.session.write({ $case: "ack", value: { seqs: batch.items.map((i) => i.seq) } });
        }
        return done();
      }, `${this.name} to read its queue`, 15_000, 10);
    } catch (e) {
      throw new Error(`${(e as Error).message}: ${this.name} opened ${this.opened.length}, refused ${this.refused}, kinds ${JSON.stringify([...this.kinds])}`, { cause: e });
    }
  }

  private async one(d: Delivery): Promise<void> {
    const mls = d.mls;
    expect(mls, `${this.name} got an envelope in an MLS room`).toBeDefined();
    this.kinds.set(MlsKind[mls!.kind]!, (this.kinds.get(MlsKind[mls!.kind]!) ?? 0) + 1);
    if (mls!.kind === MlsKind.MLS_KIND_WELCOME) {
      // The Welcome of the room's registration (this member joined from it in-process already).
      expect(Buffer.from(mls!.mls).equals(Buffer.from(roomA.registration.welcome))).toBe(true);
      return;
    }
    try {
      const got = await this.group.process(mls!.mls);
      expect(got.kind, `${this.name} opened a mutant`).toBe("application");
      if (got.kind === "application") {
        expect(got.sender.username).toBe("carol");
        expect(mls!.sender).toBe("carol");
        this.opened.push(got.plaintext.toString("utf8"));
      }
    } catch (e) {
      if (!isMlsProtocolError(e)) throw e;
      this.refused++;
    }
  }
}

describe("mutated MLS messages through the relay's queues", () => {
  const tally = new FuzzTally();

  it("each SendMls and SendCommit is accepted or cleanly refused, the relay and sessions go on, members refuse every mutant, and honest members keep talking", { timeout: 60_000 }, async () => {
    const alice = new Reader("alice", sessions.alice, MlsGroup.restore(roomA.clients[0]!, roomA.snapshots[0]!));
    const bob = new Reader("bob", sessions.bob, MlsGroup.restore(roomA.clients[1]!, roomA.snapshots[1]!));
    let epochB = 0;
    let acceptedMutantsInA = 0;
    let sentGenuine = 0;
    // Distinct Welcomes queued to dave (an MLS message's id is a hash of its bytes: the same
    // Welcome twice is one message, delivered once).
    const expectedWelcomes = new Set<string>();
    let daveWelcomes = 0;
    const groupIdA = Buffer.from(roomA.groupId);
    const groupIdB = Buffer.from(chainGroupId);

    await fc.assert(fc.asyncProperty(
      fc.constantFrom("sendMls" as const, "sendMls" as const, "sendCommit" as const),
      fc.nat(),
      fc.array(mutationArb, { minLength: 1, maxLength: 3 }),
      fc.constantFrom("commit" as const, "groupInfo" as const, "welcome" as const, "ratchetTree" as const),
      fc.boolean(),
      async (what, base, ms, target, hintDave) => {
        if (what === "sendMls") {
          const b = bases[base % bases.length]!;
          const bytes = mutant(b.bytes, ms);
          const r = await sendMls(sessions.carol, bytes);
          if (r.status === SendStatus.SEND_STATUS_ACCEPTED) {
            tally.add(`sendMls ${b.name}`, "ACCEPTED");
            // Accepted only when well-formed for the queues: an MLS PrivateMessage (application
            // or proposal) of a group carol is in.
            const msg = decodeMls(bytes, "accepted message");
            expect(msg.wireformat).toBe("mls_private_message");
            if (msg.wireformat !== "mls_private_message") return;
            expect(["application", "proposal"]).toContain(msg.privateMessage.contentType);
            const group = Buffer.from(msg.privateMessage.groupId);
            expect(group.equals(groupIdA) || group.equals(groupIdB), "accepted for a group carol is not in").toBe(true);
            if (group.equals(groupIdA)) acceptedMutantsInA++;
          } else {
            tally.add(`sendMls ${b.name}`, ErrorCode[r.code]!);
            expect(MLS_REFUSALS.has(r.code), `${ErrorCode[r.code]}: ${r.detail}`).toBe(true);
            expect(isCleanSentence(r.detail), r.detail).toBe(true);
          }
        } else {
          const real = chain[Math.min(epochB, chain.length - 1)]!;
          const parts = { commit: real.commit, groupInfo: real.groupInfo, welcome: welcomeB.welcome, ratchetTree: welcomeB.ratchetTree };
          parts[target] = mutant(Buffer.from(parts[target]), ms);
          const r = await sendCommit(sessions.carol, parts.commit, parts.groupInfo, {
            added: hintDave ? ["dave"] : [], welcome: parts.welcome, ratchetTree: parts.ratchetTree,
          });
          tally.add(`sendCommit ${target}`, r.accepted ? "ACCEPTED" : ErrorCode[r.code]!);
          if (r.accepted) {
            expect(Number(r.epoch)).toBe(epochB);
            epochB = Number(r.currentEpoch);
            if (hintDave && parts.welcome.length > 0) expectedWelcomes.add(Buffer.from(parts.welcome).toString("hex"));
          } else {
            expect(MLS_REFUSALS.has(r.code), `${ErrorCode[r.code]}: ${r.detail}`).toBe(true);
            expect(isCleanSentence(r.detail), r.detail).toBe(true);
            if (r.code === ErrorCode.ERROR_CODE_EPOCH_TAKEN) epochB = Number(r.currentEpoch);
          }
        }
        await stillServes(sessions.carol);
        // Now and then a genuine message of carol's: the members must open every one, in order.
        if (nonce % 10 === 0 && sentGenuine < genuine.length) {
          const r = await sendMls(sessions.carol, genuine[sentGenuine]!);
          expect(r.status, r.detail).toBe(SendStatus.SEND_STATUS_ACCEPTED);
          sentGenuine++;
        }
      },
    ), fuzzParams(SEED, CASES));

    // The mutants reached each kind of refusal path, and some got past the relay's framing
    // checks into the queues (so the members' side was exercised too).
    for (const stage of ["sendMls application", "sendMls proposal", "sendCommit commit", "sendCommit welcome", "sendCommit ratchetTree"]) {
      expect([...tally.of(stage).keys()].length, `${stage}: ${tally.toString()}`).toBeGreaterThan(0);
    }
    expect([...tally.of("sendMls application").keys()].some((k) => k !== "ACCEPTED"), tally.toString()).toBe(true);
    if (process.env.FUZZ_STATS) console.log(tally.toString());

    // Every genuine message opens at alice and bob, in order, and every mutant queued in room A
    // is refused by both (MlsProtocolError, state unchanged: the genuine ones after it open).
    const want = genuine.slice(0, sentGenuine).map((_, i) => `carol ${i}`);
    expect(sentGenuine).toBeGreaterThan(5);
    for (const m of [alice, bob]) {
      await m.readUntil(() => m.opened.length === sentGenuine && m.refused === acceptedMutantsInA).catch((e: Error) => {
        throw new Error(`${e.message}; ${sentGenuine} genuine sent, ${acceptedMutantsInA} mutants accepted in room A`, { cause: e });
      });
      expect(m.opened).toEqual(want);
      expect(m.refused).toBe(acceptedMutantsInA);
    }

    // Dave: each Welcome queued to him joins only when it and its tree are the genuine bytes.
    expect(expectedWelcomes.size, tally.toString()).toBeGreaterThan(0);
    await waitUntil(async () => {
      while (sessions.dave.has("deliver")) {
        const batch = await sessions.dave.next("deliver");
        for (const d of batch.items) {
          if (d.mls?.kind !== MlsKind.MLS_KIND_WELCOME) continue;
          daveWelcomes++;
          const stored = await restoreKeyPackage(daveClient, daveKeyPackage);
          try {
            await MlsGroup.joinFromWelcome(daveClient, d.mls.mls, d.mls.ratchetTree, () => stored);
            expect(Buffer.from(d.mls.mls).equals(Buffer.from(welcomeB.welcome)) && Buffer.from(d.mls.ratchetTree).equals(Buffer.from(welcomeB.ratchetTree)), "dave joined from a mutated Welcome").toBe(true);
          } catch (e) {
            if (!isMlsProtocolError(e)) throw e;
          }
        }
        sessions.dave.write({ $case: "ack", value: { seqs: batch.items.map((i) => i.seq) } });
      }
      return daveWelcomes === expectedWelcomes.size;
    }, "dave's Welcomes", 10_000, 10);

    // Afterwards, alice and bob still talk through the relay, both ways.
    for (const [from, to, text] of [[alice, bob, "still here, bob?"], [bob, alice, "yes, alice"]] as const) {
      const r = await sendMls(from.session, Buffer.from(await from.group.encrypt(Buffer.from(text))));
      expect(r.status, r.detail).toBe(SendStatus.SEND_STATUS_ACCEPTED);
      const got = await waitUntil(async () => {
        if (!to.session.has("deliver")) return undefined;
        const batch = await to.session.next("deliver");
        to.session.write({ $case: "ack", value: { seqs: batch.items.map((i) => i.seq) } });
        for (const d of batch.items) {
          const m = await to.group.process(d.mls!.mls);
          if (m.kind === "application") return { text: m.plaintext.toString("utf8"), sender: m.sender.username };
        }
        return undefined;
      }, `${to.name} to get ${from.name}'s message`, 10_000, 10);
      expect(got).toEqual({ text, sender: from.name });
    }
    // The relay is up for newcomers too, and every session is still open.
    for (const s of Object.values(sessions)) expect(s.isEnded).toBe(false);
    await stillServes(await v2Session(await fixtureIdentity("mallory")));
  });
});
