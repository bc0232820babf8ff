// One recipient's delivery pump (src/server/delivery.ts) without gRPC: seq order, batches that
// coalesce what waits (within item and byte budgets), the unacked window, one batch in flight at
// a time, the outgoing queue's limit (live traffic only), and a storage error that must not kill
// the relay. The queue is a fake store holding rows in memory; the stream is a fake whose
// flushes the test completes by hand.
import { describe, expect, it } from "vitest";
import { Envelope, SessionResponse } from "../../src/gen/securechat/v1/chat.js";
import type { LogFields, Logger } from "../../src/protocol/log.js";
import { DeliveryPump, type DeliveryPumpOptions } from "../../src/server/delivery.js";
import { DELIVERY_WRITE_BYTES, MAX_BATCH_ITEMS } from "../../src/server/limits.js";
import type { QueuedItem, RelayStore } from "../../src/server/store.js";
import type { FrameStream } from "../../src/server/stream.js";
import { waitUntil } from "../helpers/wait.js";

/** Wire Envelope bytes of exactly `bytes` bytes (2 to 129): a ciphertext field and its 2-byte prefix. */
function envelopeOf(bytes: number): Buffer {
  const b = Buffer.from(Envelope.encode(Envelope.fromPartial({ ciphertext: Buffer.alloc(bytes - 2, 7) })).finish());
  if (b.length !== bytes) throw new Error(`made ${b.length} bytes, not ${bytes}`);
  return b;
}

/** A recipient's queue in memory, with the store's fetchQueue contract (at least one row, then up to maxBytes). */
class FakeQueue {
  rows: QueuedItem[] = [];
  private seq = 0;
  fetches: Array<{ afterSeq: number; limit: number; maxBytes: number }> = [];
  failNext: Error | undefined;

  constructor(readonly recipient: string) {}

  add(n: number, bytes = 10): number[] {
    const seqs: number[] = [];
    for (let i = 0; i < n; i++) {
      this.seq++;
      this.rows.push({ seq: this.seq, conversationId: "lobby", envelope: envelopeOf(bytes), relayTimeMs: 1 });
      seqs.push(this.seq);
    }
    return seqs;
  }

  get store(): RelayStore {
    return {
      lastSeq: () => this.seq,
      fetchQueue: (recipient: string, afterSeq: number, limit: number, maxBytes: number): QueuedItem[] => {
        if (recipient !== this.recipient) throw new Error(`fetched the queue of ${recipient}`);
        this.fetches.push({ afterSeq, limit, maxBytes });
        if (this.failNext !== undefined) {
          const e = this.failNext;
          this.failNext = undefined;
          throw e;
        }
        const out: QueuedItem[] = [];
        let total = 0;
        for (const r of this.rows) {
          if (r.seq <= afterSeq) continue;
          if (out.length >= limit || (out.length > 0 && total + r.envelope.length > maxBytes)) break;
          total += r.envelope.length;
          out.push(r);
        }
        return out;
      },
    } as Partial<RelayStore> as RelayStore;
  }
}

/** A stream whose flushed writes wait until the test lets them through (or resolve at once). */
class FakeStream {
  closed = false;
  readonly batches: number[][] = [];
  private waiting: Array<(ok: boolean) => void> = [];
  autoFlush = true;

  get stream(): FrameStream {
    const self = this;
    return {
      get closed() {
        return self.closed;
      },
      sendFlushed: (frame: Uint8Array): Promise<boolean> => {
        const f = SessionResponse.decode(frame).frame;
        if (f?.$case !== "deliver") throw new Error(`expected a deliver frame, got ${f?.$case}`);
        this.batches.push(f.value.items.map((i) => i.seq));
        if (this.autoFlush) return Promise.resolve(!this.closed);
        return new Promise((resolve) => this.waiting.push(resolve));
      },
    } as Partial<FrameStream> as FrameStream;
  }

  get pending(): number {
    return this.waiting.length;
  }

  flush(ok = true): void {
    const w = this.waiting.shift();
    if (w === undefined) throw new Error("no write waits");
    w(ok);
  }

  get delivered(): number[] {
    return this.batches.flat();
  }
}

interface Logged {
  readonly level: string;
  readonly event: string;
  readonly fields: LogFields | undefined;
}

function setup(o: Partial<DeliveryPumpOptions> & { queued?: number } = {}) {
  const queue = new FakeQueue("bob");
  if (o.queued !== undefined) queue.add(o.queued);
  const io = new FakeStream();
  const logged: Logged[] = [];
  const log = (level: string) => (event: string, fields?: LogFields) => {
    logged.push({ level, event, fields });
  };
  const logger: Logger = {
    log: (level, event, fields) => log(level)(event, fields), debug: log("debug"), info: log("info"), warn: log("warn"), error: log("error"),
  };
  const slow: string[] = [];
  const pump = new DeliveryPump({
    username: "bob", store: queue.store, stream: io.stream, maxBatchBytes: 1_000_000, logger, maxOutgoing: 1000,
    onSlowConsumer: (why) => slow.push(why), ...o,
  });
  return { queue, io, pump, logged, slow };
}

/** Lets the pump's loop run its awaits. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("DeliveryPump", () => {
  it("writes nothing before start(), then everything waiting, in seq order, as one batch", async () => {
    const { queue, io, pump } = setup({ queued: 5 });
    pump.kick();
    pump.arrived(1);
    await settle();
    expect(io.batches).toEqual([]);
    pump.start();
    await waitUntil(() => io.batches.length === 1, "the first batch");
    expect(io.batches).toEqual([[1, 2, 3, 4, 5]]);
    // A pump asked for 1 MB batches writes at most DELIVERY_WRITE_BYTES at a time (the write budget, issue 16).
    expect(queue.fetches[0]).toEqual({ afterSeq: 0, limit: MAX_BATCH_ITEMS, maxBytes: DELIVERY_WRITE_BYTES });
  });

  it("keeps at most `window` unacked seqs in flight; an ack opens the window again", async () => {
    const { queue, io, pump } = setup({ queued: 7, window: 3 });
    pump.start();
    await waitUntil(() => io.batches.length === 1, "the first batch");
    await settle();
    expect(io.batches).toEqual([[1, 2, 3]]);
    // An ack of seqs not in flight opens nothing.
    pump.acked([42]);
    await settle();
    expect(io.batches).toHaveLength(1);
    pump.acked([1, 2]);
    await waitUntil(() => io.batches.length === 2, "the second batch");
    expect(io.batches[1]).toEqual([4, 5]);
    // Fetches ask for no more rows than the window has room for, after the last seq sent.
    expect(queue.fetches.at(-1)).toEqual({ afterSeq: 3, limit: 2, maxBytes: DELIVERY_WRITE_BYTES });
    pump.acked([3, 4, 5]);
    await waitUntil(() => io.delivered.length === 7, "all seven");
    expect(io.delivered).toEqual([1, 2, 3, 4, 5, 6, 7]);
  });

  it("splits a backlog into batches of at most MAX_BATCH_ITEMS items and maxBatchBytes bytes", async () => {
    const { io, pump, queue } = setup({ window: 10_000 });
    queue.add(MAX_BATCH_ITEMS + 10);
    pump.start();
    await waitUntil(() => io.delivered.length === MAX_BATCH_ITEMS + 10, "the backlog");
    expect(io.batches.map((b) => b.length)).toEqual([MAX_BATCH_ITEMS, 10]);

    const small = setup({ maxBatchBytes: 25 });
    small.queue.add(5, 10);
    small.pump.start();
    await waitUntil(() => small.io.delivered.length === 5, "the small batches");
    expect(small.io.batches).toEqual([[1, 2], [3, 4], [5]]);
  });

  it("writes the next batch only once the previous one was flushed, coalescing what arrived meanwhile", async () => {
    const { queue, io, pump } = setup({ queued: 1 });
    io.autoFlush = false;
    pump.start();
    await waitUntil(() => io.pending === 1, "the first write");
    queue.add(3);
    pump.arrived(1);
    pump.arrived(1);
    pump.arrived(1);
    await settle();
    expect(io.batches).toEqual([[1]]); // the first write is still in HTTP/2's hands
    io.flush();
    await waitUntil(() => io.pending === 1, "the second write");
    expect(io.batches).toEqual([[1], [2, 3, 4]]);
    io.flush();
    await settle();
    expect(io.batches).toHaveLength(2);
  });

  it("stops when the stream is over (a write that reports it, or closed before a kick)", async () => {
    const { queue, io, pump } = setup({ queued: 2, window: 1 });
    io.autoFlush = false;
    pump.start();
    await waitUntil(() => io.pending === 1, "the first write");
    io.closed = true;
    io.flush(false);
    await settle();
    queue.add(1);
    pump.arrived(1);
    pump.acked([1]);
    await settle();
    expect(io.batches).toEqual([[1]]);
  });

  it("disconnects a reader that falls more than maxOutgoing live envelopes behind, once", async () => {
    const { queue, io, pump, slow, logged } = setup({ maxOutgoing: 3, window: 2 });
    pump.start();
    queue.add(2);
    pump.arrived(2);
    await waitUntil(() => io.delivered.length === 2, "the first two");
    expect(pump.outgoingLength).toBe(0);
    // The window is full (nothing acked): live rows pile up in the outgoing queue.
    queue.add(3);
    pump.arrived(3);
    expect(pump.outgoingLength).toBe(3);
    expect(slow).toEqual([]);
    queue.add(1);
    pump.arrived(1);
    expect(slow).toEqual(["more than 3 messages were waiting for it"]);
    expect(logged.filter((l) => l.event === "deliver.slow_consumer")).toEqual([
      { level: "warn", event: "deliver.slow_consumer", fields: { user: "bob", outgoing: 4, limit: 3 } },
    ]);
    // Once the stream is over, more arrivals are not reported again.
    io.closed = true;
    queue.add(1);
    pump.arrived(1);
    expect(slow).toHaveLength(1);
  });

  it("does not count the backlog queued before the session started as live traffic", async () => {
    const { io, pump, slow } = setup({ queued: 50, maxOutgoing: 3, window: 10_000 });
    pump.start();
    await waitUntil(() => io.delivered.length === 50, "the backlog");
    expect(pump.outgoingLength).toBe(0);
    expect(slow).toEqual([]);
  });

  it("does not let written backlog rows pay off live envelopes still waiting", async () => {
    const { queue, io, pump, slow } = setup({ queued: 5, maxOutgoing: 3, window: 5 });
    queue.add(3);
    pump.arrived(3); // live, before the session started delivering
    pump.start();
    await waitUntil(() => io.delivered.length === 5, "the backlog");
    await settle();
    expect(io.delivered).toEqual([1, 2, 3, 4, 5]);
    expect(pump.outgoingLength).toBe(3);
    queue.add(1);
    pump.arrived(1);
    expect(slow).toEqual(["more than 3 messages were waiting for it"]);
  });

  it("counts live envelopes out of the outgoing queue as they are written", async () => {
    const { queue, io, pump } = setup({ queued: 0, maxOutgoing: 100, window: 2 });
    pump.start();
    queue.add(5);
    pump.arrived(5);
    await waitUntil(() => io.delivered.length === 2, "the window");
    expect(pump.outgoingLength).toBe(3);
    pump.acked([1, 2]);
    await waitUntil(() => io.delivered.length === 4, "the next two");
    expect(pump.outgoingLength).toBe(1);
  });

  it("logs a storage error instead of throwing, leaves the rows queued, and delivers them on the next kick", async () => {
    const { queue, io, pump, logged } = setup({ queued: 2 });
    queue.failNext = new Error("disk I/O error");
    pump.start();
    await waitUntil(() => logged.some((l) => l.event === "deliver.failed"), "the logged failure");
    expect(logged.find((l) => l.event === "deliver.failed")).toEqual({
      level: "error", event: "deliver.failed", fields: { user: "bob", error: "disk I/O error" },
    });
    expect(io.batches).toEqual([]);
    pump.kick();
    await waitUntil(() => io.delivered.length === 2, "the rows after the error");
    expect(io.batches).toEqual([[1, 2]]);
  });
});
