// Structured fuzzing of the client's frame and envelope parsing (issue 5, "Fuzzing and
// vectors"): a hostile relay (test/helpers/hostile-relay.ts) feeds the real ChatClient random
// and mutated SessionResponse frames, valid DeliverBatches around mutated envelopes, and
// envelopes the peer bob re-signed with hostile fields.
//
// Properties, for every input:
//   - the client never crashes and never stops processing: a frame that decodes is handled on
//     the same session (never a reconnect), one that does not decode costs a reconnect, and
//     either way an honest message from bob sent right after it is shown;
//   - it keeps acking: every seq of every DeliverBatch that decodes is acknowledged;
//   - nothing forged shows: the only messages shown are bob's honest ones (a re-framing of an
//     envelope bob sealed shows his text, once); everything else is a "refused" line, or
//     nothing;
//   - every string it hands the UI (texts, notices, names) is safe for a terminal.
// Inputs come from fast-check with a fixed seed (FUZZ_SEED=<n> replays another).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BinaryWriter } from "@bufbuild/protobuf/wire";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  Envelope as WireEnvelope, ErrorCode, RoomEventKind, SendStatus, SessionResponse,
} from "../../src/gen/securechat/v1/chat.js";
import { envelopeFromWire, envelopeToWire } from "../../src/protocol/codec.js";
import { sealEnvelope, ZERO_HASH, type SealedEnvelope } from "../../src/protocol/envelope.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { isSafeText } from "../../src/protocol/sanitize.js";
import type { SessionEvent } from "../../src/client/types.js";
import { TestClient } from "../helpers/client-harness.js";
import { resign } from "../helpers/forge.js";
import { FuzzTally, frameInputArb, fuzzParams, fuzzSeed, oddString, realise, type FrameInput } from "../helpers/fuzz-protobuf.js";
import { directoryEntry, HostileRelay, type HostileSession } from "../helpers/hostile-relay.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { waitUntil } from "../helpers/wait.js";

const SEED = fuzzSeed(0x5eed_c11e);
const DEADLINE_MS = 5000;
/** Waits poll often: each input waits for an ack and a message. */
const POLL_MS = 2;

let alice: PrivateIdentity;
let bob: PrivateIdentity;
let carol: PrivateIdentity;
let relay: HostileRelay;
let a: TestClient;
let dir: string;
const tally = new FuzzTally();

type Frame = NonNullable<SessionResponse["frame"]>;
const encodeFrame = (frame: Frame): Uint8Array => SessionResponse.encode({ frame }).finish();

/** A DeliverBatch around raw envelope bytes, as the relay builds it (the envelope is not re-encoded). */
function deliverRaw(seq: number, conversationId: string, envelope: Uint8Array): Uint8Array {
  const w = new BinaryWriter();
  w.uint32((3 << 3) | 2).fork();
  w.uint32((1 << 3) | 2).fork();
  w.uint32((1 << 3) | 0).uint64(seq);
  w.uint32((2 << 3) | 2).string(conversationId);
  w.uint32((3 << 3) | 2).bytes(envelope);
  w.join();
  w.join();
  return w.finish();
}

// The client is a v2 client: it shows a v1 envelope only when sent before its first v2 Welcome
// (PROTOCOL.md §14), so these are dated an hour back, as envelopes queued before the upgrade are.
let clock = Date.now() - 3_600_000;
/** Bob's honest DM chain to alice: each envelope points at the previous one (no gaps shown). */
let bobPrev: Buffer = ZERO_HASH;
function bobSays(text: string, conversationId = "dm:alice:bob", to: PrivateIdentity[] = [alice]): SealedEnvelope {
  const chained = conversationId === "dm:alice:bob";
  const s = sealEnvelope({ sender: bob, conversationId, recipients: to, body: { kind: "text", text }, prev: chained ? bobPrev : ZERO_HASH, sentAtMs: clock++ });
  if (chained) bobPrev = s.hash;
  return s.envelope;
}

/** Texts bob really sealed: the only ones that may ever show. */
const honestTexts = new Set<string>();

beforeAll(async () => {
  [alice, bob, carol] = await Promise.all([fixtureIdentity("alice"), fixtureIdentity("bob"), fixtureIdentity("carol")]);
  relay = await HostileRelay.start();
  relay.directory = [directoryEntry(alice), directoryEntry(bob), directoryEntry(carol)];
  dir = mkdtempSync(join(tmpdir(), "sc-fuzz-client-"));
  a = await TestClient.start(alice, relay.port, { dir, reconnect: { initialMs: 10, maxMs: 50 } });
  await relay.session(0);
});

afterAll(async () => {
  await a?.close();
  await relay?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The hostile relay's session with alice's current connection (the newest that proved). */
async function current(): Promise<{ s: HostileSession; index: number }> {
  const index = relay.sessions.length - 1;
  return { s: await relay.session(index), index };
}

let nextSeq = 1_000_000;
let probes = 0;

/** Every string in an event, for the terminal-safety check. */
function stringsOf(v: unknown, out: string[] = []): string[] {
  if (typeof v === "string") out.push(v);
  else if (Array.isArray(v)) for (const x of v) stringsOf(x, out);
  else if (typeof v === "object" && v !== null) for (const x of Object.values(v)) stringsOf(x, out);
  return out;
}

/**
 * Writes one fuzzed frame, then an honest DM from bob, and checks every property above.
 * `canShow` is the text an input may legitimately show (a re-framing of what bob sealed).
 */
async function fuzzOne(stage: string, bytes: Uint8Array, how: string): Promise<void> {
  const fail = (why: string): never => {
    throw new Error(`${why}\n  input: ${how}\n  replay: FUZZ_SEED=${SEED} npx vitest run test/fuzz/client-envelopes.test.ts`);
  };
  const { s, index } = await current();
  const eventsBefore = a.events.length;
  const decoded = (() => {
    try {
      return { ok: true as const, frame: SessionResponse.decode(bytes).frame };
    } catch {
      return { ok: false as const };
    }
  })();

  s.sendRaw(bytes);
  const text = `probe ${++probes}`;
  honestTexts.add(text);
  const probe = bobSays(text);
  const [seq] = s.deliver("dm:alice:bob", probe);
  // Processed on this session, or the session was dropped and a new one proved.
  const outcome = await waitUntil(
    () => (s.acked().includes(seq!) ? "same" : relay.sessions.length > index + 1 && relay.sessions.at(-1)!.received.some((r) => r.frame?.$case === "proof") ? "reconnected" : undefined),
    "the client to process the honest message or reconnect", DEADLINE_MS, POLL_MS,
  ).catch((e: Error) => fail(e.message));
  if (decoded.ok && outcome !== "same") fail(`a frame that decodes (${decoded.frame?.$case ?? "empty"}) cost the session`);
  if (!decoded.ok && outcome !== "reconnected") fail("a frame that does not decode was taken in silence");
  if (outcome === "reconnected") {
    const { s: again } = await current();
    const [seq2] = again.deliver("dm:alice:bob", probe);
    await waitUntil(() => again.acked().includes(seq2!), `the ack of ${seq2}`, DEADLINE_MS, POLL_MS).catch((e: Error) => fail(e.message));
  }
  await waitUntil(() => a.messages().some((m) => m.text === text && !m.own), `"${text}" shown`, DEADLINE_MS, POLL_MS).catch((e: Error) => fail(e.message));

  // Every seq of a DeliverBatch that decoded was acked, in order, before the probe's.
  if (decoded.ok && decoded.frame?.$case === "deliver") {
    const acked = s.acked();
    for (const item of decoded.frame.value.items) if (!acked.includes(item.seq)) fail(`seq ${item.seq} of a delivered batch was never acked`);
  }
  const events: SessionEvent[] = a.events.slice(eventsBefore);
  const seen = events.some((e) => e.type === "refused") ? "refused"
    : events.some((e) => e.type === "message" && !e.message.own && e.message.text !== text) ? "shown" : "nothing shown";
  tally.add(stage, `${decoded.ok ? decoded.frame?.$case ?? "empty" : "undecodable"}: ${outcome}, ${seen}`);
  for (const e of events) {
    if (e.type === "message" && !e.message.own && !honestTexts.has(e.message.text)) fail(`showed a forged message: ${JSON.stringify(e.message.text).slice(0, 120)}`);
    for (const str of stringsOf(e)) if (!isSafeText(str)) fail(`handed the UI unsafe text: ${JSON.stringify(str).slice(0, 120)}`);
    if (e.type === "connection" && (e.status.state === "failed" || e.status.state === "closed")) fail(`the client gave up: ${JSON.stringify(e.status)}`);
  }
  // Each of bob's messages shows once, however often it is replayed or re-framed.
  const shown = a.messages().filter((m) => !m.own).map((m) => m.id);
  if (new Set(shown).size !== shown.length) fail("a message was shown twice");
}

describe("the client under fuzzed frames from a hostile relay", () => {
  it("random and mutated SessionResponse frames", async () => {
    honestTexts.add("the base DM");
    honestTexts.add("the base room message");
    const dm = envelopeToWire(bobSays("the base DM"));
    const room = envelopeToWire(bobSays("the base room message", "#ops", [alice, carol]));
    const bases = [
      { name: "deliver(dm)", bytes: encodeFrame({ $case: "deliver", value: { items: [{ seq: nextSeq++, conversationId: "dm:alice:bob", envelope: dm, relayTimeMs: 0 , mls: undefined }] } }) },
      { name: "deliver(room)", bytes: encodeFrame({ $case: "deliver", value: { items: [{ seq: nextSeq++, conversationId: "#ops", envelope: room, relayTimeMs: 0 , mls: undefined }] } }) },
      { name: "roomEvent", bytes: encodeFrame({ $case: "roomEvent", value: { room: "#ops", kind: RoomEventKind.ROOM_EVENT_KIND_JOINED, username: "alice", members: ["alice", "bob"], atMs: clock } }) },
      { name: "error", bytes: encodeFrame({ $case: "error", value: { requestId: 0, code: ErrorCode.ERROR_CODE_BAD_FRAME, detail: "the relay says no" } }) },
      { name: "notice", bytes: encodeFrame({ $case: "notice", value: { text: "relay maintenance at noon" } }) },
      { name: "sendResult", bytes: encodeFrame({ $case: "sendResult", value: { messageId: Buffer.alloc(16, 1), status: SendStatus.SEND_STATUS_ACCEPTED, code: 0, detail: "", queuedFor: ["bob"] } }) },
      { name: "roomList", bytes: encodeFrame({ $case: "roomList", value: { requestId: 3, joined: [{ room: "#ops", members: ["alice"] }], all: [{ room: "#ops", memberCount: 1 }] } }) },
      { name: "memberList", bytes: encodeFrame({ $case: "memberList", value: { requestId: 4, room: "#ops", members: ["alice", "bob"] } }) },
      { name: "pong", bytes: encodeFrame({ $case: "pong", value: { nonce: 1, serverTimeMs: clock } }) },
    ];
    await fc.assert(
      fc.asyncProperty(frameInputArb, async (input: FrameInput) => {
        const { bytes, how } = realise(input, bases);
        await fuzzOne("frames", bytes, how);
      }),
      fuzzParams(SEED, 90),
    );
    const t = tally.of("frames");
    expect([...t.keys()].filter((k) => k.includes(": same")).length).toBeGreaterThanOrEqual(5);
    expect(t.get("undecodable: reconnected, nothing shown") ?? 0).toBeGreaterThan(0);
  });

  it("valid DeliverBatches around mutated envelopes, into any conversation", async () => {
    honestTexts.add("bob's envelope to mutate");
    const base = WireEnvelope.encode(envelopeToWire(bobSays("bob's envelope to mutate"))).finish();
    const into = fc.oneof(fc.constantFrom("dm:alice:bob", "dm:alice:bob", "dm:bob:carol", "lobby", "#ops", ""), oddString);
    await fc.assert(
      fc.asyncProperty(frameInputArb, into, async (input: FrameInput, conversationId) => {
        const { bytes: envelope, how } = realise(input, [{ name: "envelope(bob -> alice)", bytes: base }]);
        await fuzzOne("envelopes", deliverRaw(nextSeq++, conversationId, envelope), `${how}, delivered into ${JSON.stringify(conversationId).slice(0, 60)}`);
      }),
      fuzzParams(SEED + 1, 90),
    );
    // Mutated envelopes reached the protocol's checks (refused there), not only the decoder.
    expect(a.events.filter((e) => e.type === "refused").length).toBeGreaterThan(10);
  });

  it("envelopes bob re-signs with hostile fields: refused, never shown altered", async () => {
    honestTexts.add("bob signs this again");
    const original = bobSays("bob signs this again");
    const change = fc.oneof(
      fc.record({ f: fc.constant("conversation" as const), v: fc.oneof(oddString, fc.constantFrom("lobby", "#ops", "dm:bob:carol", "dm:alice:carol")) }),
      fc.record({ f: fc.constant("sender" as const), v: fc.oneof(oddString, fc.constantFrom("alice", "carol")) }),
      fc.record({ f: fc.constant("recipients" as const), v: fc.subarray(["alice", "bob", "carol", "zed"]) }),
      fc.record({ f: fc.constant("sentAt" as const), v: fc.oneof(fc.constant(1), fc.maxSafeNat(), fc.integer({ min: -2000, max: 2000 }).map((h) => Date.now() + h * 3_600_000)) }),
      fc.record({ f: fc.constant("ciphertext" as const), v: fc.nat({ max: 600 }) }),
      fc.record({ f: fc.constant("tag" as const), v: fc.nat({ max: 32 }) }),
      fc.record({ f: fc.constant("wrap" as const), v: fc.nat({ max: 1100 }) }),
      fc.record({ f: fc.constant("suite" as const), v: oddString }),
      fc.record({ f: fc.constant("prev" as const), v: fc.uint8Array({ maxLength: 40 }) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(change, { minLength: 1, maxLength: 3 }), async (changes) => {
        let e: SealedEnvelope = envelopeFromWire(envelopeToWire(original));
        for (const c of changes) {
          const h = e.header;
          switch (c.f) {
            case "conversation": e = { ...e, header: { ...h, conversationId: c.v } }; break;
            case "sender": e = { ...e, header: { ...h, sender: c.v } }; break;
            case "recipients": {
              const ids = [alice, bob, carol];
              const rs = c.v.map((u) => ({ username: u, encFpr: ids.find((i) => i.username === u)?.encFpr ?? Buffer.alloc(32, 5) }));
              e = { ...e, header: { ...h, recipients: rs }, wraps: rs.map((r) => e.wraps.find((w) => w.username === r.username) ?? { username: r.username, wrappedKey: Buffer.alloc(384, 2) }) };
              break;
            }
            case "sentAt": e = { ...e, header: { ...h, sentAtMs: c.v } }; break;
            case "ciphertext": e = { ...e, ciphertext: Buffer.alloc(c.v, 4) }; break;
            case "tag": e = { ...e, tag: Buffer.alloc(c.v, 6) }; break;
            case "wrap": e = { ...e, wraps: e.wraps.map((w) => (w.username === "alice" ? { ...w, wrappedKey: Buffer.alloc(c.v, 8) } : w)) }; break;
            case "suite": e = { ...e, header: { ...h, suite: c.v } }; break;
            case "prev": e = { ...e, header: { ...h, prev: Buffer.from(c.v) } }; break;
          }
        }
        const signed = resign(e, bob.sigPrivate);
        const bytes = WireEnvelope.encode(envelopeToWire(signed)).finish();
        await fuzzOne("re-signed", deliverRaw(nextSeq++, signed.header.conversationId, bytes), `bob re-signed with ${JSON.stringify(changes).slice(0, 300)}`);
      }),
      fuzzParams(SEED + 2, 50),
    );
  });

  it("still shows honest messages afterwards, each once, and nothing else", async () => {
    const { s } = await current();
    honestTexts.add("after the fuzzing");
    const [seq] = s.deliver("dm:alice:bob", bobSays("after the fuzzing"));
    await s.waitForAck(seq!);
    await a.waitForMessage("after the fuzzing");
    const shown = a.messages().filter((m) => !m.own);
    expect(shown.every((m) => honestTexts.has(m.text))).toBe(true);
    expect(shown.filter((m) => m.text.startsWith("probe ")).length).toBe(probes);
    if (process.env.FUZZ_STATS) console.log(`client fuzz outcomes (FUZZ_SEED=${SEED}):\n${tally}`);
  });
});
