// The per-recipient outgoing queue (limits.maxOutgoing): a reader that stops reading while
// others flood it is disconnected with RESOURCE_EXHAUSTED / SLOW_CONSUMER, the relay never holds
// its backlog in memory (the database does), everyone else keeps chatting, and the reader,
// back, catches up on everything in order, once. A reader that merely comes back to a long
// backlog is catching up, not slow.
import { status as GrpcStatus } from "@grpc/grpc-js";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { fixtureIdentity } from "../helpers/identities.js";
import type { Delivery } from "../../src/gen/securechat/v1/chat.js";
import { MlsTalk } from "../helpers/mls-talk.js";
import type { RawSession } from "../helpers/raw-session.js";
import { TestRelay } from "../helpers/relay-harness.js";

let alice: PrivateIdentity;
let bob: PrivateIdentity;
let carol: PrivateIdentity;
let relay: TestRelay | undefined;

beforeAll(async () => {
  [alice, bob, carol] = await Promise.all([fixtureIdentity("alice"), fixtureIdentity("bob"), fixtureIdentity("carol")]);
});

afterEach(async () => {
  await relay?.cleanup();
  relay = undefined;
});

const dm = (a: string, b: string): string => (a < b ? `dm:${a}:${b}` : `dm:${b}:${a}`);

/**
 * Reads deliveries until `count` arrived, acking each batch as a real client does; each is
 * opened by bob's group of the conversation it came in (`talks`, by conversation id).
 */
async function readAll(s: RawSession, count: number, talks: readonly MlsTalk[]): Promise<string[]> {
  const texts: string[] = [];
  const open = async (d: Delivery): Promise<string> => {
    const talk = talks.find((t) => t.conversationId === d.conversationId);
    if (talk === undefined) throw new Error(`a delivery for ${d.conversationId}, which bob has no group for`);
    return (await talk.open("bob", [d]))[0]!;
  };
  while (texts.length < count) {
    const batch = await s.next("deliver", () => true, 10_000);
    for (const d of batch.items) texts.push(await open(d));
    s.ack(batch.items.map((d) => d.seq));
  }
  return texts;
}

describe("slow readers", () => {
  it("disconnects a reader that stops reading under a flood, holds none of its backlog in memory, and lets it catch up once, in order", async () => {
    const maxFrameBytes = 128 * 1024;
    relay = await TestRelay.start({ limits: { maxOutgoing: 60, maxFrameBytes, messagesPerSecond: 10_000, burst: 10_000 } });
    const slow = await relay.connect(bob);
    const a = await relay.connect(alice);
    const c = await relay.connect(carol);
    await a.nextPresence("carol", true);
    const talks: Record<string, MlsTalk> = {
      alice: await MlsTalk.start(relay, a, [alice, bob], dm("alice", "bob"), [slow]),
      carol: await MlsTalk.start(relay, c, [carol, bob], dm("carol", "bob"), [slow]),
    };
    const aliceCarol = await MlsTalk.start(relay, a, [alice, carol], dm("alice", "carol"), [c]);
    slow.pauseReading(true);

    // alice and carol each send ~30 KB DMs to bob, side by side, until the relay lets him go.
    const sent: Record<string, string[]> = { alice: [], carol: [] };
    let floodBytes = 0;
    let mostHeld = 0;
    const bobGone = (): boolean => relay!.events("session.close").some((l) => l.user === "bob");
    for (let i = 0; !bobGone(); i++) {
      expect(i).toBeLessThan(500);
      await Promise.all([[a, alice], [c, carol]].map(async ([s, id]) => {
        const sender = id as PrivateIdentity;
        const text = `${sender.username} ${i} `.padEnd(30_000, ".");
        await talks[sender.username]!.sendAccepted(s as RawSession, sender.username, text);
        sent[sender.username]!.push(text);
        floodBytes += text.length;
      }));
      mostHeld = Math.max(mostHeld, relay.running.stats().outgoingBytes);
    }
    expect(relay.events("session.close").find((l) => l.user === "bob")).toMatchObject({ reason: "ERROR_CODE_SLOW_CONSUMER" });
    expect(relay.events("deliver.slow_consumer")[0]).toMatchObject({ user: "bob", limit: 60 });

    // Memory: the relay held at most about one delivery batch (a frame) for bob at any time,
    // while several times that was sent to him; the rest waited in the database.
    expect(mostHeld).toBeLessThanOrEqual(maxFrameBytes + 16 * 1024);
    expect(floodBytes).toBeGreaterThan(8 * maxFrameBytes);

    // Meanwhile everyone else kept chatting.
    await aliceCarol.sendAccepted(a, "alice", "are you still there?");
    expect(await aliceCarol.open("carol", await c.deliveries(1))).toEqual(["are you still there?"]);

    // bob's client, reading again, learns why it was cut off.
    slow.pauseReading(false);
    const end = await slow.status(10_000);
    expect({ code: GrpcStatus[end.code], errorCode: end.errorCode, details: end.details }).toEqual({
      code: "RESOURCE_EXHAUSTED",
      errorCode: "ERROR_CODE_SLOW_CONSUMER",
      details: "disconnected because this client reads too slowly (more than 60 messages were waiting for it); nothing is lost: its messages stay queued for the next connection",
    });

    // Back, bob catches up on everything, each sender's messages in order, each once.
    const total = sent.alice!.length + sent.carol!.length;
    const back = await relay.connect(bob);
    expect(back.welcome.queued).toBe(total);
    const texts = await readAll(back, total, Object.values(talks));
    expect(new Set(texts).size).toBe(total);
    expect(texts.filter((t) => t.startsWith("alice "))).toEqual(sent.alice);
    expect(texts.filter((t) => t.startsWith("carol "))).toEqual(sent.carol);
    await back.barrier();
    expect(back.has("deliver")).toBe(false);
    // Catching up at its own pace is not being slow: bob stayed connected.
    expect(relay.events("session.close").filter((l) => l.user === "bob")).toHaveLength(1);
  });

  it("does not count a backlog queued while the reader was away: it catches up without being cut off", async () => {
    relay = await TestRelay.start({ limits: { maxOutgoing: 10, messagesPerSecond: 10_000, burst: 10_000 } });
    const b0 = await relay.connect(bob);
    const a = await relay.connect(alice);
    const talk = await MlsTalk.start(relay, a, [alice, bob], dm("alice", "bob"), [b0]);
    await relay.disconnect(b0, "bob");
    const texts = Array.from({ length: 40 }, (_, i) => `while you were away ${i}`);
    for (const t of texts) await talk.sendAccepted(a, "alice", t);

    const b = await relay.connect(bob);
    expect(b.welcome.queued).toBe(40);
    // Live traffic on top of the backlog, within the limit, while bob catches up.
    for (let i = 0; i < 5; i++) await talk.sendAccepted(a, "alice", `live ${i}`);
    expect(await readAll(b, 45, [talk])).toEqual([...texts, ...Array.from({ length: 5 }, (_, i) => `live ${i}`)]);
    await b.barrier();
    expect(relay.events("deliver.slow_consumer")).toEqual([]);
    expect(b.isEnded).toBe(false);
  });
});
