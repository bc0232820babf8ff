// The outbox pump without a relay: writes in order at the pacer's pace, puts a "too fast"
// message back in its place and then sends one at a time, and a session whose stream hangs
// does not stall the next one.
import { describe, expect, it } from "vitest";
import { Envelope, type SessionRequest } from "../../src/gen/securechat/v1/chat.js";
import { OutboxPump } from "../../src/client/outbox-pump.js";
import { SendPacer } from "../../src/client/pacer.js";
import type { SessionStream } from "../../src/client/transport.js";
import { nullLogger } from "../../src/protocol/log.js";
import { waitUntil } from "../helpers/wait.js";

const id = (n: number) => Buffer.from([n]);

/** An outbox of envelopes whose header carries the message id, so writes can be told apart. */
function outbox(n: number): Map<string, Uint8Array> {
  const m = new Map<string, Uint8Array>();
  for (let i = 1; i <= n; i++) {
    m.set(id(i).toString("hex"), Envelope.encode(Envelope.fromPartial({ header: { messageId: id(i) } })).finish());
  }
  return m;
}

function fakeStream(hang = false): SessionStream & { written: number[] } {
  const written: number[] = [];
  return {
    written,
    frames: (async function* () {})(),
    send: (f: SessionRequest) => {
      if (f.frame?.$case === "send") written.push(f.frame.value.envelope?.header?.messageId[0] ?? -1);
      return hang ? new Promise<void>(() => {}) : Promise.resolve();
    },
    close: () => {},
  };
}

function pumpWith(box: Map<string, Uint8Array>) {
  const pacer = new SendPacer(Date.now);
  const pump = new OutboxPump({ pacer, envelopeOf: (i) => box.get(i.toString("hex")), log: nullLogger });
  return pump;
}

describe("OutboxPump", () => {
  it("writes the outbox in order, then what is pushed, skipping what was settled meanwhile", async () => {
    const box = outbox(6);
    const pump = pumpWith(box);
    const s = fakeStream();
    box.delete(id(3).toString("hex")); // answered before its turn
    pump.start(s, [1, 2, 3, 4].map(id), { messagesPerSecond: 1000, burst: 1000 });
    pump.push(id(5));
    pump.push(id(6));
    await waitUntil(() => s.written.length === 5, "five written");
    expect(s.written).toEqual([1, 2, 4, 5, 6]);
  });

  it("keeps to the pace: a burst at once, the rest one token at a time", async () => {
    const box = outbox(5);
    const pump = pumpWith(box);
    const s = fakeStream();
    // rate 20, burst 3: the client uses 8 per second (burst 3 can absorb only 2 tokens of 250 ms
    // jitter) and a burst of 1.
    pump.start(s, [1, 2, 3, 4, 5].map(id), { messagesPerSecond: 20, burst: 3 });
    await waitUntil(() => s.written.length >= 1, "the first at once");
    expect(s.written.length).toBeLessThan(5);
    await waitUntil(() => s.written.length === 5, "the rest, paced", 5_000);
    expect(s.written).toEqual([1, 2, 3, 4, 5]);
  });

  it("puts a 'too fast' message back before the later ones, then has one unanswered at a time", async () => {
    const box = outbox(4);
    const pump = pumpWith(box);
    const s = fakeStream();
    pump.start(s, [1, 2, 3, 4].map(id), { messagesPerSecond: 1000, burst: 1000 });
    await waitUntil(() => s.written.length === 4, "all written");
    pump.settled(id(1), true);
    // 2 and 3 were refused as too fast; 4 is not answered yet: nothing goes out until it is
    // (a negative check: observed for 100 ms, well past the 2 ms pause after "too fast").
    pump.tooFast(id(3));
    pump.tooFast(id(2));
    await new Promise((r) => setTimeout(r, 100));
    expect(s.written.length).toBe(4);
    pump.settled(id(4), true);
    await waitUntil(() => s.written.length === 5, "2 again", 5_000);
    expect(s.written.slice(4)).toEqual([2]);
    // One at a time now: 3 waits for the answer to 2.
    await new Promise((r) => setTimeout(r, 100));
    expect(s.written.length).toBe(5);
    pump.settled(id(2), true);
    await waitUntil(() => s.written.length === 6, "3 again", 5_000);
    expect(s.written.slice(4)).toEqual([2, 3]);
  });

  it("a stream that never drains does not stall the next session", async () => {
    const box = outbox(3);
    const pump = pumpWith(box);
    const dead = fakeStream(true);
    pump.start(dead, [1, 2, 3].map(id), { messagesPerSecond: 1000, burst: 1000 });
    await waitUntil(() => dead.written.length === 1, "stuck on the first write");
    pump.stop();
    const next = fakeStream();
    pump.start(next, [1, 2, 3].map(id), { messagesPerSecond: 1000, burst: 1000 });
    await waitUntil(() => next.written.length === 3, "the next session writes everything");
    expect(next.written).toEqual([1, 2, 3]);
    expect(dead.written).toEqual([1]);
  });
});
