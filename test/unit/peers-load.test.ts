// The peers benchmark's workload engine (scripts/bench/_peers-load.ts): its window, its
// backpressure and the receivers' checks, which decide whether a run counts. Driven by hand
// through a fake transport; no server, no clock assertions.
import { describe, expect, it } from "vitest";
import { RingLoad, type PeerWriter } from "../../scripts/bench/_peers-load.js";

interface Sent {
  readonly sender: number;
  readonly phase: number;
  readonly seq: number;
}

/** A transport that records what is written; `accept` decides whether a write fits. */
function recorder(accept: (s: Sent) => boolean = () => true): { writer: PeerWriter; sent: Sent[] } {
  const sent: Sent[] = [];
  return {
    sent,
    writer: {
      send(sender, phase, seq) {
        sent.push({ sender, phase, seq });
        return accept({ sender, phase, seq });
      },
    },
  };
}

/** Delivers every message in `sent` (from `from` on) to every other client, in order. */
function fanOut(load: RingLoad, sent: Sent[], from = 0): number {
  let i = from;
  for (; i < sent.length; i++) {
    const s = sent[i]!;
    for (let to = 0; to < load.k; to++) if (to !== s.sender) load.deliver(to, s.phase, s.sender, s.seq, performance.now());
  }
  return i;
}

describe("RingLoad (scripts/bench/_peers-load.ts)", () => {
  it("keeps at most W of a client's messages unseen by its ring neighbour, and counts K·(K−1)·n deliveries", async () => {
    const { writer, sent } = recorder();
    const load = new RingLoad(3, 4, writer);
    const done = load.runPhase(10, 10_000);
    // Nothing delivered yet: each client wrote exactly its window.
    expect(sent.filter((s) => s.sender === 0).map((s) => s.seq)).toEqual([0, 1, 2, 3]);
    expect(sent).toHaveLength(12);
    // Client 0's neighbour (1) sees message 0: one more from client 0, nothing from the others.
    load.deliver(1, 1, 0, 0, performance.now());
    expect(sent).toHaveLength(13);
    expect(sent[12]).toEqual({ sender: 0, phase: 1, seq: 4 });
    // A non-neighbour receiving does not open the window.
    load.deliver(2, 1, 0, 0, performance.now());
    expect(sent).toHaveLength(13);
    let at = 0;
    const deliverRest = (): void => {
      for (; at < sent.length; at++) {
        const s = sent[at]!;
        for (let to = 0; to < 3; to++) {
          if (to === s.sender || (s.sender === 0 && s.seq === 0)) continue;
          load.deliver(to, s.phase, s.sender, s.seq, performance.now());
        }
      }
    };
    while (sent.length > at) deliverRest();
    const r = await done;
    expect(r.deliveries).toBe(3 * 2 * 10);
    expect(r.latencies).toHaveLength(60);
    expect(sent).toHaveLength(30);
  });

  it("stops a client on backpressure until its transport drains", async () => {
    let full = true;
    const { writer, sent } = recorder((s) => !(full && s.sender === 1 && s.seq === 1));
    const load = new RingLoad(2, 4, writer);
    const done = load.runPhase(3, 10_000);
    expect(sent.filter((s) => s.sender === 1).map((s) => s.seq)).toEqual([0, 1]);
    full = false;
    load.drained(1);
    expect(sent.filter((s) => s.sender === 1).map((s) => s.seq)).toEqual([0, 1, 2]);
    fanOut(load, sent);
    await expect(done).resolves.toMatchObject({ deliveries: 6 });
  });

  it.each([
    ["a loss", (l: RingLoad) => l.deliver(1, 1, 0, 1, 0), /from 0 seq 1 where 0 was next \(loss or reorder\)/],
    ["a duplicate", (l: RingLoad) => { l.deliver(1, 1, 0, 0, 0); l.deliver(1, 1, 0, 0, 0); }, /from 0 seq 0 where 1 was next \(duplicate or reorder\)/],
    ["an echo", (l: RingLoad) => l.deliver(0, 1, 0, 0, 0), /its own message 0 came back/],
    ["a message of another phase", (l: RingLoad) => l.deliver(1, 2, 0, 0, 0), /phase 2 from 0 .* during phase 1/],
  ])("fails the run on %s", async (_what, act, message) => {
    const { writer } = recorder();
    const load = new RingLoad(2, 4, writer);
    const done = load.runPhase(5, 10_000);
    act(load);
    await expect(done).rejects.toThrow(message);
    expect(load.failed?.message).toMatch(message);
    // A failed load runs no further phase.
    await expect(load.runPhase(1, 10_000)).rejects.toThrow(message);
  });

  it("waits for every SendResult when asked, and fails on a refusal", async () => {
    const { writer, sent } = recorder();
    const load = new RingLoad(2, 4, writer, true);
    let settled = false;
    const done = load.runPhase(2, 10_000).finally(() => {
      settled = true;
    });
    fanOut(load, sent);
    await Promise.resolve();
    expect(settled).toBe(false);
    for (let i = 0; i < 4; i++) load.result(true, "", performance.now());
    await expect(done).resolves.toMatchObject({ deliveries: 4 });

    const refused = load.runPhase(1, 10_000);
    load.result(false, "code 7: queue full", performance.now());
    await expect(refused).rejects.toThrow(/refused a message: code 7: queue full/);
  });

  it("fails a phase that does not end in time, saying how far it got", async () => {
    const { writer, sent } = recorder();
    const load = new RingLoad(2, 4, writer);
    const done = load.runPhase(1, 50);
    load.deliver(1, 1, 0, 0, 0);
    expect(sent).toHaveLength(2);
    await expect(done).rejects.toThrow(/phase 1 not over after 0.05 s: 1 of 2 deliveries/);
  });
});
