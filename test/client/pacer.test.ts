// The client's pacing and reconnect backoff, on a fake clock: a client that follows SendPacer is
// never refused by the relay's own token bucket (src/server/limits.ts), even when its frames
// arrive bunched; "too fast" pauses grow and reset; the reconnect delay starts again after Welcome.
import { describe, expect, it } from "vitest";
import { backoffDelay } from "../../src/client/chat-client.js";
import { ReconnectBackoff, sleepUntil } from "../../src/client/backoff.js";
import { JITTER_MS, MAX_TOO_FAST_PAUSE_MS, paceFor, SendPacer } from "../../src/client/pacer.js";
import { DEFAULT_LIMITS, mlsWriteTokens, writeTokens } from "../../src/protocol/limits.js";
import type { RequestFrame } from "../../src/server/frames.js";
import { MAX_COMMIT_BYTES, TokenBucket } from "../../src/server/limits.js";

/** A seeded generator, so every run is the same. */
function lcg(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x / 2 ** 32;
  };
}

describe("SendPacer", () => {
  it("absorbs 250 ms of read jitter at the defaults and at small limits; never paces below half the rate", () => {
    expect(paceFor(20, 60)).toEqual({ ratePerSecond: 18, burst: 55, jitterMs: 277.77777777777777 });
    expect(paceFor(2, 3)).toMatchObject({ ratePerSecond: 1.8, burst: 2 });
    expect(paceFor(2, 3).jitterMs).toBeGreaterThanOrEqual(JITTER_MS);
    expect(paceFor(1000, 2)).toMatchObject({ ratePerSecond: 500, burst: 1 });
  });

  for (const [rate, burst] of [[2, 3], [20, 60], [5, 1], [1, 2], [100, 10], [1000, 2], [12, 4]] as const) {
    it(`a long drain at rate ${rate}/s burst ${burst} is never refused by the relay's bucket, with arrival jitter`, () => {
      let now = 1_000_000;
      const pacer = new SendPacer(() => now);
      pacer.reset(rate, burst);
      const relay = new TokenBucket(rate, burst, now);
      const random = lcg(rate * 1000 + burst);
      // Frames are read after 5 ms plus up to the jitter the client's margin absorbs (JITTER_MS
      // unless the burst is too small for it); with a burst of 1, a tenth of a token's time.
      const pace = paceFor(rate, burst);
      const jitterMs = burst >= 2 ? pace.jitterMs : 100 / rate;
      let refused = 0;
      let lastArrival = 0;
      const sends = 400;
      for (let i = 0; i < sends; i++) {
        now += pacer.delayMs();
        expect(pacer.delayMs()).toBe(0);
        const sentAt = pacer.take();
        // Arrivals keep their order (one TCP stream), so a frame never arrives before the previous.
        const arrival = Math.max(lastArrival, sentAt + 5 + random() * jitterMs);
        lastArrival = arrival;
        if (!relay.take(arrival)) refused++;
      }
      expect(refused).toBe(0);
      // And it is not slower than needed: at least half the rate.
      expect(pace.ratePerSecond).toBeGreaterThanOrEqual(rate / 2);
      expect(now - 1_000_000).toBeLessThanOrEqual(Math.ceil((sends / pace.ratePerSecond) * 1000) + 1000);
    });
  }

  it("at the defaults, sends mixed with SendCommits and GroupInfos of every size a frame holds are never refused (§13.2: a token per started 64 KiB)", () => {
    let now = 1_000_000;
    const pacer = new SendPacer(() => now);
    pacer.reset(DEFAULT_LIMITS.messagesPerSecond, DEFAULT_LIMITS.burst);
    const relay = new TokenBucket(DEFAULT_LIMITS.messagesPerSecond, DEFAULT_LIMITS.burst, now);
    const random = lcg(64);
    let refused = 0;
    let lastArrival = 0;
    let bigTokens = 0;
    for (let i = 0; i < 600; i++) {
      // Every third write is a commit (or a GroupInfo) of up to a whole frame; the others one token.
      const bytes = i % 3 === 0 ? Math.floor(random() * DEFAULT_LIMITS.maxFrameBytes) : 0;
      const frame: RequestFrame = bytes === 0 ? { $case: "sendMls", value: { mls: Buffer.alloc(100) } }
        : i % 2 === 0 ? { $case: "publishGroupInfo", value: { requestId: 1, groupInfo: Buffer.alloc(bytes) } }
        : { $case: "sendCommit", value: { requestId: 1, commit: Buffer.alloc(bytes >> 1), welcome: Buffer.alloc(bytes - (bytes >> 1)), groupInfo: Buffer.alloc(0), ratchetTree: Buffer.alloc(0), added: [], removed: [] } };
      // As relay-connection.ts counts for the pacer, and as the relay's session.ts takes.
      const client = writeTokens(frame, Number.MAX_SAFE_INTEGER);
      const relayTokens = writeTokens(frame, DEFAULT_LIMITS.burst);
      expect(client).toBe(relayTokens); // the pacer counts what the relay counts
      bigTokens = Math.max(bigTokens, client);
      now += pacer.delayMs(client);
      const sentAt = pacer.take(client);
      const arrival = Math.max(lastArrival, sentAt + 5 + random() * JITTER_MS);
      lastArrival = arrival;
      if (!relay.take(arrival, relayTokens)) refused++;
    }
    expect(refused).toBe(0);
    expect(bigTokens).toBe(16); // the largest: 1 MiB, 16 tokens, within the pacer's bucket of 55
    expect(mlsWriteTokens(MAX_COMMIT_BYTES + 64 * 1024, DEFAULT_LIMITS.burst)).toBeLessThanOrEqual(paceFor(DEFAULT_LIMITS.messagesPerSecond, DEFAULT_LIMITS.burst).burst);
  });

  it("spends its burst at once after a first reset, then one token per 1/(0.9 rate); a new session continues the bucket", () => {
    let now = 0;
    const pacer = new SendPacer(() => now);
    pacer.reset(2, 3); // burst 3 - a margin of 1
    expect(pacer.delayMs()).toBe(0);
    pacer.take();
    pacer.take();
    expect(pacer.delayMs()).toBe(556); // 1 / 1.8 per second
    now += 556;
    expect(pacer.delayMs()).toBe(0);
    pacer.take();
    // A new session with the same limits: the relay continues the device's bucket (§13.2), and so does the pacer.
    pacer.reset(2, 3);
    expect(pacer.delayMs()).toBe(556);
    // Other limits (another relay): full.
    pacer.reset(4, 6);
    expect(pacer.delayMs()).toBe(0);
  });

  it("waits for and takes several tokens at once (a PublishKeyPackages: one per 10 KeyPackages), at most its bucket", () => {
    let now = 0;
    const pacer = new SendPacer(() => now);
    pacer.reset(2, 3); // a bucket of 2
    pacer.take();
    expect(pacer.delayMs(2)).toBe(556);
    now += 556;
    expect(pacer.delayMs(2)).toBe(0);
    pacer.take(5); // capped at 2
    expect(pacer.delayMs()).toBe(556);
  });

  it("pauses after 'too fast', longer while it repeats, once per episode, capped; short again after an accept", () => {
    let now = 0;
    const pacer = new SendPacer(() => now);
    pacer.reset(10, 20);
    const t1 = pacer.take();
    const t2 = pacer.take();
    expect(pacer.tooFast(t1)).toBe(112); // one token at 9/s
    // The second frame was sent before the pause began: same episode, no longer pause.
    expect(pacer.tooFast(t2 - 1)).toBe(112);
    now += 112;
    const t3 = pacer.take();
    now += 1;
    expect(pacer.tooFast(t3)).toBe(223);
    const pauses: number[] = [];
    for (let i = 0; i < 10; i++) {
      now += pacer.delayMs();
      const t = pacer.take();
      now += 1;
      pauses.push(pacer.tooFast(t));
    }
    expect(Math.max(...pauses)).toBe(MAX_TOO_FAST_PAUSE_MS);
    pacer.accepted();
    now += pacer.delayMs();
    const t4 = pacer.take();
    now += 1;
    expect(pacer.tooFast(t4)).toBe(112);
  });

  it("refuses a relay that advertises no rate", () => {
    expect(() => new SendPacer(() => 0).reset(0, 5)).toThrow(/positive/);
  });
});

describe("ReconnectBackoff", () => {
  const policy = { initialMs: 1_000, maxMs: 30_000 };
  it("grows while attempts fail and starts again from the minimum after a Welcome", () => {
    const b = new ReconnectBackoff((n) => backoffDelay(n, policy, () => 1));
    expect(b.attempt).toBe(1);
    expect([b.next(), b.next(), b.next()].map((x) => x.delayMs)).toEqual([1_000, 2_000, 4_000]);
    expect(b.attempt).toBe(4);
    b.welcomed();
    // A session that reached Welcome and then crashed: the next wait is the shortest again.
    expect(b.next()).toEqual({ attempt: 1, delayMs: 1_000 });
    for (let i = 0; i < 10; i++) b.next();
    expect(b.next().delayMs).toBe(30_000);
  });

  it("sleeps until the instant the countdown shows, on the same clock, and wakes early on demand", async () => {
    const start = Date.now();
    const s = sleepUntil(start + 60_000, Date.now);
    s.wake();
    await s.done;
    expect(Date.now() - start).toBeLessThan(60_000);
    const t = sleepUntil(Date.now() + 30, Date.now);
    const at = Date.now() + 30;
    await t.done;
    expect(Date.now()).toBeGreaterThanOrEqual(at - 1);
  });
});
