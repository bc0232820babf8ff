// The relay-wide delivery write budget (src/server/write-budget.ts): bytes in flight never pass
// the limit (one write always goes when none is in flight), writers are served in the order
// they asked, an aborted wait leaves the queue, and a write held past the stall time while
// others wait is set aside so they go on.
import { describe, expect, it } from "vitest";
import { WriteBudget, type WriteLease } from "../../src/server/write-budget.js";

const live = (): AbortSignal => new AbortController().signal;
/** Settles pending promise callbacks (no timers involved). */
const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

describe("WriteBudget", () => {
  it("refuses a bad limit or stall time with one sentence", () => {
    expect(() => new WriteBudget({ limitBytes: 0, stallMs: 10 })).toThrow("write budget must be a positive integer of bytes, not 0");
    expect(() => new WriteBudget({ limitBytes: 10, stallMs: 0 })).toThrow("write budget stall time must be positive, not 0");
  });

  it("grants at once within the limit, queues beyond it, and serves waiters in order as bytes come back", async () => {
    const b = new WriteBudget({ limitBytes: 100, stallMs: 60_000 });
    const first = (await b.acquire(60, live()))!;
    const second = (await b.acquire(40, live()))!;
    expect(b.inFlightBytes).toBe(100);
    const order: string[] = [];
    const third = b.acquire(50, live()).then((l) => (order.push("third"), l));
    const fourth = b.acquire(10, live()).then((l) => (order.push("fourth"), l)); // fits only after third: FIFO
    await settle();
    expect(order).toEqual([]);
    expect(b.waiting).toBe(2);
    first.release();
    first.release(); // twice is once
    await settle();
    expect(order).toEqual(["third", "fourth"]);
    expect(b.inFlightBytes).toBe(100);
    second.release();
    (await third)!.release();
    (await fourth)!.release();
    expect(b.inFlightBytes).toBe(0);
  });

  it("tryAcquire takes bytes at once exactly when acquire would not wait, and never queues", async () => {
    const b = new WriteBudget({ limitBytes: 100, stallMs: 60_000 });
    const first = b.tryAcquire(70)!;
    expect(first.bytes).toBe(70);
    expect(b.tryAcquire(40)).toBeUndefined(); // would pass the limit
    expect([b.inFlightBytes, b.waiting]).toEqual([70, 0]);
    const waiter = b.acquire(40, live());
    expect(b.tryAcquire(1)).toBeUndefined(); // fits, but someone waits: FIFO
    first.release();
    (await waiter)!.release();
    expect(b.tryAcquire(500)?.bytes).toBe(500); // nothing in flight: one write of any size
  });

  it("lets one write bigger than the limit go when nothing else is in flight", async () => {
    const b = new WriteBudget({ limitBytes: 100, stallMs: 60_000 });
    const big = (await b.acquire(500, live()))!;
    expect(b.inFlightBytes).toBe(500);
    let small: WriteLease | undefined;
    void b.acquire(1, live()).then((l) => (small = l));
    await settle();
    expect(small).toBeUndefined();
    big.release();
    await settle();
    expect(small?.bytes).toBe(1);
  });

  it("drops an aborted waiter, and serves those behind it", async () => {
    const b = new WriteBudget({ limitBytes: 100, stallMs: 60_000 });
    const held = (await b.acquire(90, live()))!;
    const abort = new AbortController();
    const big = b.acquire(50, abort.signal);
    let small: WriteLease | undefined;
    void b.acquire(10, live()).then((l) => (small = l));
    await settle();
    expect(small).toBeUndefined(); // behind the big one, though it fits
    abort.abort();
    expect(await big).toBeUndefined();
    await settle();
    expect(small?.bytes).toBe(10);
    expect(b.waiting).toBe(0);
    held.release();
    expect(await b.acquire(1, abort.signal)).toBeUndefined(); // an over stream gets nothing
  });

  it("sets aside a write held past the stall time while others wait; its release later counts once", async () => {
    let now = 0;
    const b = new WriteBudget({ limitBytes: 100, stallMs: 50, now: () => now });
    const stuck = (await b.acquire(80, live()))!;
    now = 10;
    const waiting = b.acquire(80, live());
    now = 60; // the stuck write's deadline has passed; the budget's timer sees it
    const granted = (await waiting)!;
    expect(granted.bytes).toBe(80);
    expect(b.stalledWrites).toBe(1);
    expect(b.stalledBytes).toBe(80);
    expect(b.inFlightBytes).toBe(80);
    stuck.release();
    expect(b.stalledBytes).toBe(0);
    expect(b.inFlightBytes).toBe(80);
    granted.release();
    expect(b.inFlightBytes).toBe(0);
  });

  it("sets nothing aside while nobody waits", async () => {
    let now = 0;
    const b = new WriteBudget({ limitBytes: 100, stallMs: 50, now: () => now });
    const held = (await b.acquire(80, live()))!;
    now = 1_000;
    const next = (await b.acquire(20, live()))!; // fits: no wait, nothing to set aside
    expect(b.stalledWrites).toBe(0);
    held.release();
    next.release();
    expect(b.inFlightBytes).toBe(0);
  });
});
