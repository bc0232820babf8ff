// Structured fuzzing of the relay's frame handling (issue 5, "Fuzzing and vectors"), against a
// real relay: random bytes and mutated valid frames (bit flips, truncations, extensions,
// duplicated/removed fields, wrong wire types and field numbers, huge length prefixes,
// over-long varints, deep nesting, group bombs) at each stage of a session - the first frame,
// instead of the Proof, and after the Welcome (SendMls frames mutated on the wire, MLS messages
// mallory makes herself with hostile choices, Acks with bogus seqs, room requests with odd
// names) - plus broken gRPC framing on a raw HTTP/2 stream. Protocol v2 (PROTOCOL.md §8.3):
// every conversation is a real MLS group (src/protocol/mls), registered with the relay.
//
// Properties, for every input:
//   - never a hang: every stream is answered, or ends, within a deadline;
//   - a clear outcome: the status is the one the frame calls for (never INTERNAL), the answer
//     is a SendResult or RequestError with a code from the protocol and a sentence without
//     stack traces; a SendMls is accepted exactly when §6.2 allows it (an MLS PrivateMessage,
//     application or proposal, within the size limit, of a group mallory is in, at its epoch or
//     the one before) - the relay cannot see inside it: the members' MLS refuses a mutant
//     (test/fuzz/relay-mls-queues.test.ts);
//   - the relay keeps serving: honest alice and bob exchange DMs all along and after, and the
//     DMs queued for offline carol survive every bogus Ack;
//   - its logs hold no message content and no relay bug (session.failed).
// Inputs come from fast-check with a fixed seed (FUZZ_SEED=<n> replays another); a failure
// names the seed, the shrunk input and how its bytes were made.
import { connect as h2connect, constants as h2 } from "node:http2";
import { status as GrpcStatus } from "@grpc/grpc-js";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode, MlsKind, RoomEventKind, SendStatus, SessionRequest, type Delivery, type Welcome } from "../../src/gen/securechat/v1/chat.js";
import { importSigningKey, signProof, type PrivateIdentity } from "../../src/protocol/keys.js";
import { decodeMls } from "../../src/protocol/mls/client.js";
import { MlsGroup } from "../../src/protocol/mls/index.js";
import { checkRoomName, checkUsername } from "../../src/protocol/names.js";
import { MAX_ACK_SEQS, PRE_AUTH_MAX_FRAME_BYTES } from "../../src/server/limits.js";
import { ACCEPTED_PROTOCOL_VERSIONS } from "../../src/server/handshake.js";
import { maxSendMlsBytes } from "../../src/server/mls-send.js";
import {
  FuzzTally, fuzzParams, fuzzSeed, frameInputArb, oddString, realise, validRoomName, type FrameInput,
} from "../helpers/fuzz-protobuf.js";
import {
  cleanEnd, decodeAsRelay, frameOrEnd, isCleanSentence, REQUEST_REFUSALS, type RequestFrame,
} from "../helpers/fuzz-relay.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { sendCommit } from "../helpers/mls-ds.js";
import { mlsId, sendMlsAccepted } from "../helpers/mls-queues.js";
import { liveGroup, type LiveGroup } from "../helpers/mls-raw-groups.js";
import type { RawSession } from "../helpers/raw-session.js";
import { TestRelay } from "../helpers/relay-harness.js";

const SEED = fuzzSeed(0x5eed_0005);
/** Every stream must be answered or ended within this. */
const DEADLINE_MS = 5000;
const HOME = "#zz-fuzz-home"; // mallory's own room (with dave): a room send she may make
const AWAY = "#zz-fuzz-away"; // alice's room (with dave): mallory is not in it
/** Codes a SendMls may be refused with by a relay that is not full, failing or stopping (PROTOCOL.md §8.3). */
const MLS_REFUSALS: ReadonlySet<ErrorCode> = new Set([
  ErrorCode.ERROR_CODE_BAD_MLS_MESSAGE, ErrorCode.ERROR_CODE_UNKNOWN_GROUP, ErrorCode.ERROR_CODE_NOT_A_MEMBER, ErrorCode.ERROR_CODE_FRAME_TOO_LARGE,
]);
const encode = (frame: RequestFrame): Uint8Array => SessionRequest.encode({ frame }).finish();

let relay: TestRelay;
let alice: PrivateIdentity;
let bob: PrivateIdentity;
let carol: PrivateIdentity;
let dave: PrivateIdentity;
let mallory: PrivateIdentity;
/** What the inputs led to (FUZZ_STATS=1 prints it; the last test checks the fuzzers got deep). */
const tally = new FuzzTally();
const ending = (e: { code: GrpcStatus; errorCode: string | undefined }): string => `ended ${GrpcStatus[e.code]}${e.errorCode ? `/${e.errorCode.replace("ERROR_CODE_", "")}` : ""}`;
/** Every MLS message put on the wire here, so the logs can be searched for their content. */
const wireMessages: Uint8Array[] = [];
/** The groups of the run: alice and bob's DM, alice's DM with carol (offline), alice's room, mallory's (by conversation id). */
const groups = new Map<string, LiveGroup>();

/**
 * Honest users while the fuzzing runs: alice and bob trade DMs and check what arrives opens to
 * what was sent; alice also leaves DMs for carol, who is offline (her queue must survive).
 */
class HonestTraffic {
  rounds = 0;
  forCarol: string[] = [];
  private stopped = false;
  private readonly loop: Promise<void>;

  constructor(private readonly a: RawSession, private readonly b: RawSession) {
    this.loop = this.run();
    this.loop.catch(() => {}); // reported by stop()
  }

  private async trade(from: string, fs: RawSession, to: string, ts: RawSession, text: string): Promise<void> {
    const g = groups.get("dm:alice:bob")!;
    const mls = await g.say(from, text);
    wireMessages.push(mls);
    await sendMlsAccepted(fs, mls);
    // Mallory's fuzzing gets nothing to alice or bob (she shares no group with them): still, every delivery is acked.
    const d = await nextDeliveryOf(ts, mlsId(mls));
    if ((await g.read(to, d.mls!.mls)).text !== text) throw new Error(`${to} got something other than "${text}"`);
    // Keep the inboxes to what the loop waits for (directory and presence updates pile up).
    for (const s of [fs, ts]) s.inbox.splice(0, s.inbox.length, ...s.inbox.filter((f) => f.$case === "deliver" || f.$case === "sendResult"));
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const n = this.rounds;
      await this.trade("alice", this.a, "bob", this.b, `a->b ${n}`);
      await this.trade("bob", this.b, "alice", this.a, `b->a ${n}`);
      if (n % 4 === 0) {
        const text = `a->c ${n}`;
        const mls = await groups.get("dm:alice:carol")!.say("alice", text);
        wireMessages.push(mls);
        await sendMlsAccepted(this.a, mls);
        this.forCarol.push(text);
      }
      this.rounds++;
    }
  }

  /** Stops after the current round; throws what went wrong, if anything did. */
  async stop(): Promise<number> {
    this.stopped = true;
    await this.loop;
    return this.rounds;
  }
}

/** Acks every delivery that comes until the one with this message id, and returns it. */
async function nextDeliveryOf(s: RawSession, messageId: Uint8Array): Promise<Delivery> {
  for (;;) {
    const batch = await s.next("deliver");
    s.ack(batch.items.map((i) => i.seq));
    const hit = batch.items.find((i) => i.mls !== undefined && mlsId(i.mls.mls).equals(messageId));
    if (hit !== undefined) return hit;
  }
}

let honest: HonestTraffic;
let honestSessions: RawSession[];

beforeAll(async () => {
  [alice, bob, carol, dave, mallory] = await Promise.all([
    fixtureIdentity("alice"), fixtureIdentity("bob"), fixtureIdentity("carol"), fixtureIdentity("dave"), fixtureIdentity("mallory"),
  ]);
  // Sends are what is fuzzed: the rate limit would answer most of them before any check.
  relay = await TestRelay.start({ limits: { messagesPerSecond: 1_000_000, burst: 1_000_000 } });
  const c = await relay.connect(carol); // bound, then offline for the whole run
  await relay.disconnect(c, "carol");
  const d = await relay.connect(dave); // bound, then offline (sessions of his come and go in the handshake fuzzing)
  await relay.disconnect(d, "dave");
  const a = await relay.connect(alice);
  const b = await relay.connect(bob);
  groups.set("dm:alice:bob", await liveGroup(relay, a, [alice, bob], "dm:alice:bob", { bob: b }));
  groups.set("dm:alice:carol", await liveGroup(relay, a, [alice, carol], "dm:alice:carol"));
  groups.set(AWAY, await liveGroup(relay, a, [alice, dave], AWAY));
  const m = await relay.connect(mallory);
  for (const [conv, other] of [["dm:carol:mallory", carol], [HOME, dave], ["lobby", dave]] as const) {
    groups.set(conv, await liveGroup(relay, m, [mallory, other], conv));
  }
  await relay.disconnect(m, "mallory");
  honestSessions = [a, b];
  honest = new HonestTraffic(a, b);
});

afterAll(async () => {
  await relay?.cleanup();
});

function helloFrame(id: PrivateIdentity, username = id.username, protocolVersion = 2): Uint8Array {
  return encode({
    $case: "hello",
    value: { username, sigSpki: id.sigSpki, encSpki: id.encSpki, encKeySig: id.encKeySig, clientVersion: "fuzz", protocolVersion, deviceSpki: Buffer.alloc(0) },
  });
}

/**
 * What the relay must do with a first frame: challenge an acceptable Hello, end the rest.
 * Acceptable before the proof (PROTOCOL.md §9): small enough, an accepted version (2 since the cut-over), a valid username and
 * an Ed25519 signing key. The RSA key and the key binding are checked only after the proof.
 */
function helloAcceptable(bytes: Uint8Array, d: ReturnType<typeof decodeAsRelay>): boolean {
  if (bytes.length > PRE_AUTH_MAX_FRAME_BYTES) return false;
  if (d.kind !== "frame" || d.frame.$case !== "hello") return false;
  const h = d.frame.value;
  if (!ACCEPTED_PROTOCOL_VERSIONS.includes(h.protocolVersion) || !checkUsername(h.username).ok) return false;
  try {
    importSigningKey(h.sigSpki);
    return true;
  } catch {
    return false;
  }
}

const failWith = (how: string, why: string): never => {
  throw new Error(`${why}\n  input: ${how}\n  replay: FUZZ_SEED=${SEED} npx vitest run test/fuzz/relay-frames.test.ts`);
};

describe("the relay under fuzzed frames", () => {
  it("before Hello: an acceptable Hello is challenged, anything else ends the stream clearly", { timeout: 90_000 }, async () => {
    const bases = [
      { name: "hello(dave)", bytes: helloFrame(dave) },
      { name: "hello(mallory)", bytes: helloFrame(mallory) },
      { name: "hello(erin with dave's keys)", bytes: helloFrame(dave, "erin") },
      { name: "hello(dave, protocol v1)", bytes: helloFrame(dave, "dave", 1) },
      { name: "ping", bytes: encode({ $case: "ping", value: { nonce: 7 } }) },
    ];
    await fc.assert(
      fc.asyncProperty(frameInputArb, async (input: FrameInput) => {
        const { bytes, how } = realise(input, bases);
        const s = relay.open();
        try {
          s.writeRaw(bytes);
          const r = await frameOrEnd(s, "challenge", () => true, DEADLINE_MS).catch((e: Error) => failWith(how, `no answer: ${e.message}`));
          const d = decodeAsRelay(bytes);
          tally.add("first frame", r.ended === undefined ? "challenged" : ending(r.ended));
          if (helloAcceptable(bytes, d)) {
            if (r.ended !== undefined) failWith(how, `an acceptable Hello was not challenged: ${GrpcStatus[r.ended.code]} ${r.ended.details}`);
          } else {
            if (r.ended === undefined) failWith(how, `challenged a first frame that is not an acceptable Hello (${d.kind === "frame" ? d.frame.$case : d.kind})`);
            else {
              const allowed = bytes.length > PRE_AUTH_MAX_FRAME_BYTES ? [GrpcStatus.RESOURCE_EXHAUSTED]
                : d.kind === "frame" && d.frame.$case === "hello" ? [GrpcStatus.INVALID_ARGUMENT, GrpcStatus.UNAUTHENTICATED] : [GrpcStatus.INVALID_ARGUMENT];
              const bad = cleanEnd(r.ended, allowed);
              if (bad) failWith(how, bad);
            }
          }
        } finally {
          s.close();
        }
      }),
      fuzzParams(SEED, 120),
    );
    // The inputs reached past the decoder: some Hellos were challenged, others refused for
    // their keys or names, not only for their framing.
    const first = tally.of("first frame");
    expect(first.get("challenged") ?? 0).toBeGreaterThan(0);
    expect([...first.keys()].length).toBeGreaterThanOrEqual(3);
  });

  it("instead of the Proof: only the honest signature is welcomed, anything else ends the stream clearly", { timeout: 90_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(frameInputArb, async (input: FrameInput) => {
        const s = relay.open();
        try {
          s.hello(dave);
          const ch = await s.next("challenge", () => true, DEADLINE_MS);
          const signature = signProof(dave, ch.relayId, ch.nonce, s.channelBinding);
          const bases = [
            { name: "proof", bytes: encode({ $case: "proof", value: { signature } }) },
            { name: "hello(dave)", bytes: helloFrame(dave) },
            { name: "ack", bytes: encode({ $case: "ack", value: { seqs: [1, 2] } }) },
          ];
          const { bytes, how } = realise(input, bases);
          s.writeRaw(bytes);
          const r = await frameOrEnd(s, "welcome", () => true, DEADLINE_MS).catch((e: Error) => failWith(how, `no answer: ${e.message}`));
          const d = decodeAsRelay(bytes);
          tally.add("second frame", r.ended === undefined ? "welcomed" : ending(r.ended));
          const honestProof = d.kind === "frame" && d.frame.$case === "proof" && Buffer.from(d.frame.value.signature).equals(signature);
          if (honestProof) {
            if (r.ended !== undefined) failWith(how, `the honest proof was refused: ${GrpcStatus[r.ended.code]} ${r.ended.details}`);
          } else if (r.ended === undefined) {
            failWith(how, "welcomed a session whose second frame is not the honest proof");
          } else {
            const allowed = bytes.length > PRE_AUTH_MAX_FRAME_BYTES ? [GrpcStatus.RESOURCE_EXHAUSTED]
              : d.kind === "frame" && d.frame.$case === "proof" ? [GrpcStatus.UNAUTHENTICATED] : [GrpcStatus.INVALID_ARGUMENT];
            const bad = cleanEnd(r.ended, allowed);
            if (bad) failWith(how, bad);
          }
        } finally {
          s.close();
        }
      }),
      fuzzParams(SEED + 1, 80),
    );
    expect(tally.of("second frame").get("ended UNAUTHENTICATED/PROOF_INVALID") ?? 0).toBeGreaterThan(0);
  });

  describe("after the Welcome", () => {
    let session: (RawSession & { welcome: Welcome }) | undefined;
    let nonce = 1_000;
    /** Frames mallory may send, made once (her SendMls messages encrypted in her real groups); mutations start from these. */
    let bases: { name: string; bytes: Uint8Array }[];
    /** A group of mallory's advanced to epoch 3 by her own updates, and a copy of it left at epoch 1 (messages too old for the relay). */
    let moved: LiveGroup;
    let stale: MlsGroup;
    /** A group of mallory's the relay never heard of. */
    let unregistered: MlsGroup;
    /** The epoch the relay holds for each group, by group id (hex): §6.2's window is it and the one before. */
    const epochs = new Map<string, bigint>();

    beforeAll(async () => {
      const say = (conv: string, text: string) => groups.get(conv)!.say("mallory", text);
      const [dm, room, lobby] = [await say("dm:carol:mallory", "for carol"), await say(HOME, "to my own room"), await say("lobby", "hello lobby")];
      wireMessages.push(dm, room, lobby);
      const m = await relay.connect(mallory);
      moved = await liveGroup(relay, m, [mallory, dave], "#zz-fuzz-moved");
      const me = moved.room.groups[0]!;
      stale = MlsGroup.restore(moved.room.clients[0]!, moved.room.snapshots[0]!);
      for (let i = 0; i < 2; i++) {
        const u = await me.selfUpdate();
        expect(await sendCommit(m, u.commit)).toMatchObject({ accepted: true });
        me.confirmCommit();
      }
      await relay.disconnect(m, "mallory");
      unregistered = await MlsGroup.create(moved.room.clients[0]!, "#zz-fuzz-unregistered");
      for (const g of groups.values()) epochs.set(Buffer.from(g.room.groupId).toString("hex"), g.room.groups[0]!.epoch);
      epochs.set(Buffer.from(me.groupId).toString("hex"), me.epoch);
      const sendMlsFrame = (mls: Uint8Array) => encode({ $case: "sendMls", value: { mls: Buffer.from(mls) } });
      bases = [
        { name: "sendMls(dm to carol)", bytes: sendMlsFrame(dm) },
        { name: `sendMls(${HOME})`, bytes: sendMlsFrame(room) },
        { name: "sendMls(lobby)", bytes: sendMlsFrame(lobby) },
        { name: "ack", bytes: encode({ $case: "ack", value: { seqs: [1, 2, 3, 1_000_000] } }) },
        { name: "joinRoom", bytes: encode({ $case: "joinRoom", value: { requestId: 7, room: "#fuzz2" } }) },
        { name: "leaveRoom", bytes: encode({ $case: "leaveRoom", value: { requestId: 8, room: "#fuzz2" } }) },
        { name: "listRooms", bytes: encode({ $case: "listRooms", value: { requestId: 9 } }) },
        { name: "listMembers", bytes: encode({ $case: "listMembers", value: { requestId: 10, room: HOME } }) },
        { name: "ping", bytes: encode({ $case: "ping", value: { nonce: 5 } }) },
      ];
    });

    afterAll(() => session?.close());

    /** Mallory's rooms and their members as the relay told her (fuzzed joins and leaves change them). */
    const rooms = new Map<string, string[]>();

    async function mallorySession(): Promise<RawSession & { welcome: Welcome }> {
      if (session === undefined || session.isEnded) {
        session?.close();
        session = await relay.connect(mallory);
        rooms.clear();
        for (const r of session.welcome.rooms) rooms.set(r.room, [...r.members]);
      }
      return session;
    }

    function trackRooms(frames: readonly { $case: string; value: unknown }[]): void {
      for (const f of frames) {
        if (f.$case !== "roomEvent") continue;
        const ev = f.value as { room: string; kind: RoomEventKind; username: string; members: string[] };
        if (ev.kind === RoomEventKind.ROOM_EVENT_KIND_LEFT && ev.username === "mallory") rooms.delete(ev.room);
        else rooms.set(ev.room, [...ev.members]);
      }
    }

    /** Ids of mallory's MLS messages the relay accepted: a resend of one is ACCEPTED again, before any check (PROTOCOL.md §8.3). */
    const acceptedIds = new Set<string>();
    const resendOf = (mls: Uint8Array): boolean => acceptedIds.has(mlsId(mls).toString("hex"));
    /** The groups mallory is a member of by the relay's record (hex ids): hers, never alice's. */
    const mallorysGroups = (): Set<string> => new Set([
      ...["dm:carol:mallory", HOME, "lobby"].map((c) => Buffer.from(groups.get(c)!.room.groupId).toString("hex")),
      Buffer.from(moved.room.groupId).toString("hex"),
    ]);

    /**
     * What the relay may accept from mallory as SendMls (PROTOCOL.md §8.3): at most
     * max_text_bytes + 64 KiB; strictly one MLS PrivateMessage (application or proposal); of a
     * group the relay keeps and mallory is in; for its epoch or the one before. The relay sees
     * nothing else (the sender, the text, the kind are encrypted).
     */
    function withinRules(mls: Uint8Array): boolean {
      if (mls.length > maxSendMlsBytes(relay.running.limits)) return false;
      try {
        const msg = decodeMls(mls, "the message");
        if (msg.wireformat !== "mls_private_message") return false;
        const f = msg.privateMessage;
        if (f.contentType !== "application" && f.contentType !== "proposal") return false;
        const id = Buffer.from(f.groupId).toString("hex");
        const epoch = epochs.get(id);
        return epoch !== undefined && mallorysGroups().has(id) && (f.epoch === epoch || f.epoch + 1n === epoch);
      } catch {
        return false;
      }
    }

    /** Whether the relay must end the session for this frame (else it must answer the ping after it). */
    function endsSession(d: ReturnType<typeof decodeAsRelay>): boolean {
      if (d.kind !== "frame") return true;
      switch (d.frame.$case) {
        case "hello":
        case "proof":
          return true;
        case "ack":
          return d.frame.value.seqs.length > MAX_ACK_SEQS;
        default:
          return false;
      }
    }

    /**
     * Sends one fuzzed frame then a Ping, and checks the outcome: the session ended when (and
     * only when) it must, cleanly; otherwise the answers before the Pong fit the frame. A
     * SendMls is ACCEPTED exactly when `accepts` says its message may be.
     */
    async function fuzzOne(stage: string, bytes: Uint8Array, how: string, accepts: (mls: Uint8Array) => boolean): Promise<void> {
      const s = await mallorySession();
      trackRooms(s.inbox.splice(0));
      const mine = ++nonce;
      s.writeRaw(bytes);
      s.write({ $case: "ping", value: { nonce: mine } });
      const r = await frameOrEnd(s, "pong", (p) => p.nonce === mine, DEADLINE_MS).catch((e: Error) => failWith(how, `no answer: ${e.message}`));
      const d = decodeAsRelay(bytes);
      const what = d.kind === "frame" ? d.frame.$case : d.kind;
      if (r.ended !== undefined) {
        trackRooms(s.inbox.splice(0));
        tally.add(stage, `${what}: ${ending(r.ended)}`);
        if (!endsSession(d)) failWith(how, `the session ended after a frame it should have answered (${d.kind === "frame" ? d.frame.$case : d.kind}): ${GrpcStatus[r.ended.code]} ${r.ended.details}`);
        const bad = cleanEnd(r.ended, [GrpcStatus.INVALID_ARGUMENT, GrpcStatus.RESOURCE_EXHAUSTED]);
        if (bad) failWith(how, bad);
        if (r.ended.code === GrpcStatus.INVALID_ARGUMENT && r.ended.errorCode !== "ERROR_CODE_BAD_FRAME") failWith(how, `no BAD_FRAME code with the end: ${r.ended.errorCode}`);
        return;
      }
      if (endsSession(d)) failWith(how, `the session went on after a frame that must end it (${d.kind === "frame" ? d.frame.$case : d.kind})`);
      if (d.kind !== "frame") return;
      const answers = s.inbox.splice(0);
      // The verdict on a send is taken against the rooms as they were when it was checked.
      const accepted = d.frame.$case === "sendMls" ? resendOf(d.frame.value.mls) || accepts(d.frame.value.mls) : false;
      trackRooms(answers);
      const f = d.frame;
      const result = answers.find((a) => a.$case === "sendResult" || a.$case === "error");
      tally.add(stage, `${what}: ${result === undefined ? "answered" : result.$case === "error" ? ErrorCode[result.value.code]!.replace("ERROR_CODE_", "")
        : result.value.status === SendStatus.SEND_STATUS_ACCEPTED ? "ACCEPTED" : ErrorCode[result.value.code]!.replace("ERROR_CODE_", "")}`);
      switch (f.$case) {
        case "send": {
          // A v1 envelope (a mutation of a field number can make one): refused on a v2 session, with its sentence.
          const results = answers.flatMap((a) => (a.$case === "sendResult" ? [a.value] : []));
          if (results.length !== 1) failWith(how, `${results.length} SendResults for one SendEnvelope`);
          const res = results[0]!;
          if (res.status !== SendStatus.SEND_STATUS_REFUSED || res.code !== ErrorCode.ERROR_CODE_BAD_FRAME) failWith(how, `a SendEnvelope on a v2 session was not refused with BAD_FRAME: ${res.status} ${ErrorCode[res.code]}`);
          if (!isCleanSentence(res.detail)) failWith(how, `refusal detail is not a clean sentence: ${JSON.stringify(res.detail)}`);
          return;
        }
        case "sendMls": {
          const id = mlsId(f.value.mls);
          const results = answers.flatMap((a) => (a.$case === "sendResult" ? [a.value] : []));
          if (results.length !== 1) failWith(how, `${results.length} SendResults for one SendMls`);
          const res = results[0]!;
          if (!Buffer.from(res.messageId).equals(id)) failWith(how, "the SendResult does not carry the message's id");
          if (res.status === SendStatus.SEND_STATUS_ACCEPTED) {
            if (!accepted) failWith(how, "ACCEPTED an MLS message outside §6.2's rules");
            acceptedIds.add(id.toString("hex"));
          } else {
            if (res.status !== SendStatus.SEND_STATUS_REFUSED) failWith(how, `SendResult status ${res.status}`);
            if (!MLS_REFUSALS.has(res.code)) failWith(how, `refused with ${ErrorCode[res.code]}: ${res.detail}`);
            if (!isCleanSentence(res.detail)) failWith(how, `refusal detail is not a clean sentence: ${JSON.stringify(res.detail)}`);
            if (accepted) failWith(how, `refused an MLS message within the rules: ${ErrorCode[res.code]} ${res.detail}`);
          }
          return;
        }
        case "joinRoom":
        case "leaveRoom":
        case "listMembers":
        case "listRooms": {
          const id = f.value.requestId;
          const errors = answers.flatMap((a) => (a.$case === "error" ? [a.value] : []));
          for (const e of errors) {
            if (e.requestId !== id) failWith(how, `a RequestError for request ${e.requestId}, not ${id}`);
            if (!REQUEST_REFUSALS.has(e.code)) failWith(how, `request refused with ${ErrorCode[e.code]}`);
            if (!isCleanSentence(e.detail)) failWith(how, `request refusal is not a clean sentence: ${JSON.stringify(e.detail)}`);
          }
          const room = "room" in f.value ? f.value.room : undefined;
          // Protocol v2 (PROTOCOL.md §8.2): JoinRoom, LeaveRoom and ListMembers are
          // refused on a v2 session, whatever the name, with one BAD_FRAME sentence.
          if (f.$case !== "listRooms" && (errors.length !== 1 || errors[0]!.code !== ErrorCode.ERROR_CODE_BAD_FRAME || !errors[0]!.detail.startsWith("this session speaks protocol v2: rooms are MLS groups"))) {
            failWith(how, `${f.$case} on a v2 session was not refused with the v2 sentence`);
          }
          if (room !== undefined && !checkRoomName(room).ok) {
            if (errors.length !== 1) failWith(how, "an invalid room name was not refused");
          }
          if (f.$case === "joinRoom" && errors.length === 0) {
            const joined = answers.some((a) => a.$case === "roomEvent" && a.value.room === room && a.value.kind === RoomEventKind.ROOM_EVENT_KIND_JOINED && a.value.username === "mallory");
            if (!joined) failWith(how, "a join was neither refused nor confirmed");
          }
          if (f.$case === "listRooms" && !answers.some((a) => a.$case === "roomList" && a.value.requestId === id)) failWith(how, "ListRooms unanswered");
          if (f.$case === "listMembers" && errors.length === 0 && !answers.some((a) => a.$case === "memberList" && a.value.requestId === id)) {
            failWith(how, "ListMembers neither answered nor refused");
          }
          return;
        }
        case "ping":
          if (f.value.nonce !== mine && !answers.some((a) => a.$case === "pong" && a.value.nonce === f.value.nonce)) failWith(how, "a Ping went unanswered");
          return;
        default:
          // Acks (answered by nothing but the Pong after them) and cases added since: the
          // session went on, cleanly, which is what was checked above.
          return;
      }
    }

    it("mutated frames of every kind: answered in order or ended clearly; a SendMls is accepted exactly within §6.2", { timeout: 90_000 }, async () => {
      await fc.assert(
        fc.asyncProperty(frameInputArb, async (input: FrameInput) => {
          const { bytes, how } = realise(input, bases);
          await fuzzOne("mutated frames", bytes, how, withinRules);
        }),
        fuzzParams(SEED + 2, 250),
      );
      // Most kinds of frame were decoded and answered, and MLS messages were both refused and
      // accepted.
      const m = tally.of("mutated frames");
      const answeredKinds = new Set([...m.keys()].filter((k) => !k.includes("ended")).map((k) => k.split(":")[0]));
      expect(answeredKinds.size).toBeGreaterThanOrEqual(5);
      expect(m.get("sendMls: ACCEPTED") ?? 0).toBeGreaterThan(0);
      expect(m.get("sendMls: BAD_MLS_MESSAGE") ?? 0).toBeGreaterThan(0);
    });

    it("MLS messages mallory makes herself with hostile choices: refused with the rule they break, or within §6.2", { timeout: 90_000 }, async () => {
      // Genuine MLS encryption by mallory (past any framing check), into the relay's rules: her
      // groups or alice's, one the relay never saw, a stale epoch; application data or a
      // proposal, or a commit sent as SendMls; sizes up to past the limit; or bytes of another's.
      const target = fc.constantFrom("dm:carol:mallory", HOME, "lobby", "moved", "stale", "unregistered", AWAY);
      const content = fc.constantFrom("application" as const, "proposal" as const, "commit" as const);
      const size = fc.constantFrom(0, 1, 255, 4096, 70_000, 64 * 1024 + 64 * 1024 + 1);
      const max = maxSendMlsBytes(relay.running.limits);
      await fc.assert(
        fc.asyncProperty(target, content, size, async (where, what, bytes) => {
          // Alice's room: mallory holds no state of it; she replays a message alice made there
          // (as a relay or a wire would show it to her), the closest a non-member gets.
          let mls: Uint8Array;
          let expected: boolean;
          if (where === AWAY) {
            mls = await groups.get(AWAY)!.say("alice", `for dave, ${bytes}`);
            wireMessages.push(mls);
            expected = false; // NOT_A_MEMBER
          } else {
            const g = where === "moved" ? moved.room.groups[0]! : where === "stale" ? stale : where === "unregistered" ? unregistered : groups.get(where)!.room.groups[0]!;
            const client = where === "moved" || where === "stale" || where === "unregistered" ? moved.room.clients[0]! : groups.get(where)!.room.clients[0]!;
            if (what === "commit") {
              mls = (await g.selfUpdate()).commit;
              g.discardCommit();
            } else if (what === "proposal") {
              // On a copy: a pending proposal of her leave would go into every later commit of hers.
              const copy = MlsGroup.restore(client, g.serialize());
              mls = await copy.proposeLeave();
              copy.destroy();
            } else {
              mls = await g.encrypt(Buffer.alloc(bytes, 0x61));
            }
            wireMessages.push(mls);
            expected = what !== "commit" && mls.length <= max && where !== "stale" && where !== "unregistered";
          }
          const how = `${what} of ${bytes} bytes to ${where} (${mls.length} bytes of MLS)`;
          await fuzzOne("own messages", encode({ $case: "sendMls", value: { mls: Buffer.from(mls) } }), how, (m) => {
            const modelled = withinRules(m);
            if (modelled !== expected && !resendOf(m)) failWith(how, `the model says ${modelled}, the choice says ${expected}`);
            return modelled;
          });
        }),
        fuzzParams(SEED + 3, 60),
      );
      // Every rule had its turn: accepted, and refused for size, group, membership, epoch and content.
      const r = tally.of("own messages");
      expect(r.get("sendMls: ACCEPTED") ?? 0).toBeGreaterThan(0);
      expect([...r.keys()].filter((k) => !k.endsWith("ACCEPTED")).length).toBeGreaterThanOrEqual(3);
    });

    it("Acks with bogus seqs: the session goes on (or ends for too many), nobody else's deliveries go", async () => {
      const seq = fc.oneof(fc.nat({ max: 5000 }), fc.maxSafeNat(), fc.constant(0));
      await fc.assert(
        fc.asyncProperty(fc.oneof(fc.array(seq, { maxLength: 64 }), fc.array(seq, { minLength: MAX_ACK_SEQS - 2, maxLength: MAX_ACK_SEQS + 300 })), async (seqs) => {
          await fuzzOne("bogus acks", encode({ $case: "ack", value: { seqs } }), `ack of ${seqs.length} seqs: ${seqs.slice(0, 8).join(",")}...`, () => false);
        }),
        fuzzParams(SEED + 4, 60),
      );
      const a = tally.of("bogus acks");
      expect(a.get("ack: answered") ?? 0).toBeGreaterThan(0);
      expect(a.get("ack: ended INVALID_ARGUMENT/BAD_FRAME") ?? 0).toBeGreaterThan(0);
    });

    it("room requests with odd names and ids on a v2 session: each refused with one BAD_FRAME sentence, the session going on", async () => {
      const request = fc.record({
        kind: fc.constantFrom("joinRoom" as const, "leaveRoom" as const, "listMembers" as const),
        requestId: fc.oneof(fc.nat(), fc.constant(0xffff_ffff)),
        room: fc.oneof(oddString, validRoomName, fc.constantFrom(HOME, "#fuzz2")),
      });
      await fc.assert(
        fc.asyncProperty(request, async ({ kind, requestId, room }) => {
          await fuzzOne("room requests", encode({ $case: kind, value: { requestId, room } }), `${kind} ${JSON.stringify(room).slice(0, 80)} (id ${requestId})`, () => false);
        }),
        fuzzParams(SEED + 5, 100),
      );
      const q = tally.of("room requests");
      // v2 sessions: every one refused with BAD_FRAME (checked one by one in fuzzOne), none served.
      for (const kind of ["joinRoom", "leaveRoom", "listMembers"]) expect(q.get(`${kind}: BAD_FRAME`) ?? 0).toBeGreaterThan(0);
      expect([...q.keys()].filter((k) => !k.endsWith(": BAD_FRAME"))).toEqual([]);
    });
  });

  it("broken gRPC framing on a raw HTTP/2 stream: a clean status, never a hang", async () => {
    const framing = fc.record({
      flag: fc.constantFrom(0, 1, 2, 0x80, 0xff),
      length: fc.oneof(fc.nat({ max: 64 }), fc.constantFrom(0xffff_ffff, 0x7fff_ffff, 1_048_577)),
      body: fc.uint8Array({ maxLength: 64 }),
      prefixBytes: fc.integer({ min: 0, max: 5 }),
    });
    // Over TLS like every session, trusting the relay's own certificate.
    const tls = relay.running.tls!;
    const h2Session = h2connect(`https://${relay.address}`, { ca: tls.certPem, servername: "localhost", checkServerIdentity: () => undefined });
    try {
      await fc.assert(
        fc.asyncProperty(framing, async ({ flag, length, body, prefixBytes }) => {
          const prefix = Buffer.alloc(5);
          prefix[0] = flag;
          prefix.writeUInt32BE(length >>> 0, 1);
          const how = `gRPC message: flag ${flag}, declared length ${length}, ${body.length} body bytes, ${prefixBytes} prefix bytes`;
          const req = h2Session.request({
            [h2.HTTP2_HEADER_METHOD]: "POST", [h2.HTTP2_HEADER_PATH]: "/securechat.v1.ChatService/Session",
            [h2.HTTP2_HEADER_CONTENT_TYPE]: "application/grpc", te: "trailers",
          });
          const outcome = await new Promise<{ status: number; message: string }>((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error(`no status within ${DEADLINE_MS} ms\n  input: ${how}`)), DEADLINE_MS);
            let status: number | undefined;
            let message = "";
            const take = (h: Record<string, unknown>): void => {
              if (h["grpc-status"] !== undefined) {
                status = Number(h["grpc-status"]);
                message = decodeURIComponent(String(h["grpc-message"] ?? ""));
              }
            };
            req.on("response", take);
            req.on("trailers", take);
            req.on("error", () => {});
            req.on("close", () => {
              clearTimeout(timer);
              if (status === undefined) reject(new Error(`the stream closed without a gRPC status\n  input: ${how}`));
              else resolve({ status, message });
            });
            req.resume();
            req.end(Buffer.concat([prefix.subarray(0, prefixBytes), prefixBytes === 5 ? body : Buffer.alloc(0)]));
          });
          const bad = cleanEnd({ code: outcome.status, details: outcome.message, errorCode: undefined },
            [GrpcStatus.INVALID_ARGUMENT, GrpcStatus.RESOURCE_EXHAUSTED, GrpcStatus.UNAUTHENTICATED]);
          tally.add("gRPC framing", `ended ${GrpcStatus[outcome.status]}`);
          if (bad) failWith(how, bad);
        }),
        fuzzParams(SEED + 6, 60),
      );
      expect(tally.of("gRPC framing").get("ended RESOURCE_EXHAUSTED") ?? 0).toBeGreaterThan(0);
    } finally {
      h2Session.close();
    }
  });

  it("kept serving honest users all along, lost nothing of theirs, and logged no content and no bug", async () => {
    const during = await honest.stop();
    expect(during, "honest DMs traded while the fuzzers ran").toBeGreaterThan(0);
    // After the fuzzing: one more exchange, and carol gets every DM left for her.
    const [a, b] = honestSessions as [RawSession, RawSession];
    const dm = groups.get("dm:alice:bob")!;
    const after = await dm.say("alice", "after the storm");
    await sendMlsAccepted(a, after);
    const d = await nextDeliveryOf(b, mlsId(after));
    expect((await dm.read("bob", d.mls!.mls)).text).toBe("after the storm");
    // Her queue also holds the Welcomes of her DMs and what mallory's fuzzing got accepted for
    // her (MLS messages of mallory's DM with her, which her MLS would refuse or open).
    const c = await relay.connect(carol);
    const got = await c.deliveries(c.welcome.queued);
    const forCarol = groups.get("dm:alice:carol")!;
    const fromAlice: string[] = [];
    for (const x of got) if (x.mls?.sender === "alice" && x.mls.kind === MlsKind.MLS_KIND_APPLICATION) fromAlice.push((await forCarol.read("carol", x.mls.mls)).text);
    expect(fromAlice).toEqual(honest.forCarol);
    expect(got.every((x) => x.mls !== undefined && ["alice", "mallory"].includes(x.mls.sender))).toBe(true);

    expect(relay.events("session.failed"), "relay bugs (INTERNAL) logged").toEqual([]);
    if (process.env.FUZZ_STATS) console.log(`relay fuzz outcomes (FUZZ_SEED=${SEED}):\n${tally}`);
    // No content: no log line carries any MLS message's ciphertext (its last 12 bytes, inside
    // the AEAD output), in hex or base64, and no line is big enough to hold a frame.
    const needles = new Set<string>();
    for (const w of wireMessages) {
      const tail = Buffer.from(w).subarray(Math.max(0, w.length - 12));
      if (tail.length < 12 || tail.every((x) => x === tail[0])) continue; // fillers are not content
      needles.add(tail.toString("hex"));
      needles.add(tail.toString("base64"));
    }
    expect(needles.size).toBeGreaterThan(10);
    const lines = relay.logs.map((l) => JSON.stringify(l));
    expect(lines.length).toBeGreaterThan(100);
    const leaks = lines.filter((l) => l.length > 1500 || [...needles].some((n) => l.includes(n)));
    expect(leaks.slice(0, 3)).toEqual([]);
  });
});
