// Issue 16: what the relay holds in memory for a reader is bounded by the delivery write size
// (DELIVERY_WRITE_BYTES, one HTTP/2 window's worth), not by a whole frame, whatever its backlog;
// and the relay-wide write budget that paces a fan-out cannot be held hostage by readers that
// stop reading. A reader that does not read is a connection behind a frozen network path (its
// HTTP/2 window never reopens): a grpc-js client that merely pauses still takes 16 messages.
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { DELIVERY_WRITE_BYTES } from "../../src/server/limits.js";
import { fixtureIdentity } from "../helpers/identities.js";
import type { Welcome } from "../../src/gen/securechat/v1/chat.js";
import { MlsTalk } from "../helpers/mls-talk.js";
import { RawSession } from "../helpers/raw-session.js";
import { startRecordingProxy, type RecordingProxy } from "../helpers/recording-proxy.js";
import { TestRelay } from "../helpers/relay-harness.js";
import { waitUntil } from "../helpers/wait.js";

let alice: PrivateIdentity;
let bob: PrivateIdentity;
let carol: PrivateIdentity;
let dave: PrivateIdentity;
let relay: TestRelay | undefined;
let proxy: RecordingProxy | undefined;

beforeAll(async () => {
  [alice, bob, carol, dave] = await Promise.all([fixtureIdentity("alice"), fixtureIdentity("bob"), fixtureIdentity("carol"), fixtureIdentity("dave")]);
});

afterEach(async () => {
  await proxy?.close();
  proxy = undefined;
  await relay?.cleanup();
  relay = undefined;
});

const dm = (a: string, b: string): string => (a < b ? `dm:${a}:${b}` : `dm:${b}:${a}`);
/** Framing a DeliverBatch adds around its messages (seq, conversation id, time, length prefixes). */
const FRAMING = 1024;
const LIMITS = { messagesPerSecond: 10_000, burst: 10_000, maxOutgoing: 10_000 };

/** `id`'s session through its own proxy, so that its network path can be frozen on its own. */
async function behindProxy(r: TestRelay, id: PrivateIdentity): Promise<{ session: RawSession & { welcome: Welcome }; proxy: RecordingProxy }> {
  const p = await startRecordingProxy("127.0.0.1", r.running.port);
  const session = new RawSession(`127.0.0.1:${p.port}`, r.transport);
  const welcome = await session.handshake(id);
  return { session: Object.assign(session, { welcome }), proxy: p };
}

/** Queues `count` DM messages of about `bytes` each from `from` in `talk` (a DM's MLS group). */
async function queue(s: RawSession, talk: MlsTalk, from: string, count: number, bytes: number, tag: string): Promise<void> {
  for (let i = 0; i < count; i++) await talk.sendAccepted(s, from, `${tag} ${i} `.padEnd(bytes, "."));
}

describe("relay memory per reader (issue 16)", () => {
  it("holds at most one delivery write for a reader that does not read, while its queue grows in the database", async () => {
    relay = await TestRelay.start({ limits: LIMITS });
    const b0 = await relay.connect(bob);
    const a = await relay.connect(alice);
    const toBob = await MlsTalk.start(relay, a, [alice, bob], dm("alice", "bob"), [b0]);
    await relay.disconnect(b0, "bob");
    // A backlog of ~1.2 MB: before, the first batch took a whole frame's worth (1 MiB) of it.
    await queue(a, toBob, "alice", 40, 30_000, "backlog");

    const frozen = await behindProxy(relay, bob);
    proxy = frozen.proxy;
    proxy.freezeAll();
    const stats = () => relay!.running.stats();
    let mostHeld = 0;
    const sample = (): number => (mostHeld = Math.max(mostHeld, stats().outgoingBytes));
    // bob's window shuts after what it admits; from then on the relay holds his current write.
    await waitUntil(() => sample() > 0, "the relay holding a write for bob");
    // Live traffic on top: it queues durably, it is not pushed into memory.
    for (let i = 0; i < 10; i++) {
      await toBob.sendAccepted(a, "alice", `live ${i} `.padEnd(30_000, "."));
      sample();
    }
    expect(mostHeld).toBeGreaterThan(0);
    expect(mostHeld).toBeLessThanOrEqual(DELIVERY_WRITE_BYTES + FRAMING);

    // Meanwhile others chat as usual.
    const c = await relay.connect(carol);
    const toCarol = await MlsTalk.start(relay, a, [alice, carol], dm("alice", "carol"), [c]);
    await toCarol.sendAccepted(a, "alice", "still flowing");
    expect(await toCarol.open("carol", await c.deliveries(1))).toEqual(["still flowing"]);
    sample();
    expect(mostHeld).toBeLessThanOrEqual(DELIVERY_WRITE_BYTES + FRAMING);

    // Nothing was lost: bob, back on a working path, has all 50 waiting (none was acked).
    proxy.dropAll();
    await relay.waitForLog("session.close", (l) => l.user === "bob" && relay!.events("session.close").filter((x) => x.user === "bob").length === 2);
    const back = await relay.connect(bob);
    expect(back.welcome.queued).toBe(50);
    const texts: string[] = [];
    while (texts.length < 50) {
      const batch = await back.next("deliver", () => true, 10_000);
      texts.push(...(await toBob.open("bob", batch.items)).map((t) => t.split(" ").slice(0, 2).join(" ")));
      back.ack(batch.items.map((d) => d.seq));
    }
    expect(texts).toEqual([...Array.from({ length: 40 }, (_, i) => `backlog ${i}`), ...Array.from({ length: 10 }, (_, i) => `live ${i}`)]);
  });

  it("sets aside the writes of readers that stopped reading, so the relay-wide budget keeps honest readers flowing", async () => {
    // A budget one stuck write to a frozen reader (30 KB envelopes) nearly fills: two such
    // readers could hold it for ever.
    const limitBytes = 32 * 1024;
    relay = await TestRelay.start({ limits: LIMITS, writeBudget: { limitBytes, stallMs: 100 } });
    const a = await relay.connect(alice);
    const frozen = [await behindProxy(relay, bob), await behindProxy(relay, dave)];
    const c = await relay.connect(carol);
    const [toBob, toDave, toCarol] = [
      await MlsTalk.start(relay, a, [alice, bob], dm("alice", "bob"), [frozen[0]!.session]),
      await MlsTalk.start(relay, a, [alice, dave], dm("alice", "dave"), [frozen[1]!.session]),
      await MlsTalk.start(relay, a, [alice, carol], dm("alice", "carol"), [c]),
    ];
    for (const f of frozen) f.proxy.freezeAll();
    try {
      await queue(a, toBob, "alice", 10, 30_000, "to bob");
      await queue(a, toDave, "alice", 10, 30_000, "to dave");
      let mostInFlight = 0;
      const stats = () => relay!.running.stats();
      // carol reads and acks as a client does; every message reaches her, in order.
      const texts: string[] = [];
      for (let i = 0; i < 20; i++) {
        await toCarol.sendAccepted(a, "alice", `to carol ${i} `.padEnd(20_000, "."));
        mostInFlight = Math.max(mostInFlight, stats().deliveryBytesInFlight);
      }
      while (texts.length < 20) {
        const batch = await c.next("deliver", () => true, 10_000);
        texts.push(...(await toCarol.open("carol", batch.items)).map((t) => t.split(" ").slice(0, 3).join(" ")));
        c.ack(batch.items.map((d) => d.seq));
        mostInFlight = Math.max(mostInFlight, stats().deliveryBytesInFlight);
      }
      expect(texts).toEqual(Array.from({ length: 20 }, (_, i) => `to carol ${i}`));
      // The frozen readers' writes were set aside (still bounded, one write each), and the
      // budget held: what counted against it never went past the limit, or one write alone.
      expect(stats().stalledDeliveryBytes).toBeGreaterThan(0);
      expect(stats().stalledDeliveryBytes).toBeLessThanOrEqual(2 * (DELIVERY_WRITE_BYTES + FRAMING));
      expect(mostInFlight).toBeLessThanOrEqual(Math.max(limitBytes, DELIVERY_WRITE_BYTES) + FRAMING);
    } finally {
      for (const f of frozen) await f.proxy.close();
    }
  });
});
