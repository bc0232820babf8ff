// stream.ts send: a write into a full buffer resolves on 'drain' (all waiting writers at once),
// or false once the stream is over. sendFlushed: a delivery frame resolves once grpc-js reports it written, holding its
// share of the relay-wide write budget until then; a call cancelled meanwhile (grpc-js then drops
// the write callbacks) settles every such write false and gives their shares back.
import { EventEmitter } from "node:events";
import { describe, expect, it } from "vitest";
import { adaptStream, type RawDuplex } from "../../src/server/stream.js";
import { WriteBudget } from "../../src/server/write-budget.js";

/** Just what adaptStream uses of a grpc-js call; writes wait until `flushAll`. */
function fakeCall(full = false): { call: RawDuplex; callbacks: Array<(err?: Error | null) => void> } {
  const callbacks: Array<(err?: Error | null) => void> = [];
  const e = new EventEmitter() as EventEmitter & Record<string, unknown>;
  Object.assign(e, {
    write: (_frame: Uint8Array, cb?: (err?: Error | null) => void) => {
      if (cb !== undefined) callbacks.push(cb);
      return !full;
    },
    getPeer: () => "test",
    pause: () => {},
    resume: () => {},
    isPaused: () => false,
    writableLength: 0,
    cancelled: false,
    destroyed: false,
    writableEnded: false,
  });
  return { call: e as unknown as RawDuplex, callbacks };
}

describe("sendFlushed", () => {
  it("resolves true once written, holding its budget share until then", async () => {
    const { call, callbacks } = fakeCall();
    const budget = new WriteBudget({ limitBytes: 1000, stallMs: 60_000 });
    const s = adaptStream(call, { writeBudget: budget });
    const sent = s.sendFlushed(new Uint8Array(300));
    expect(budget.inFlightBytes).toBe(300);
    expect(s.bufferedBytes).toBe(300);
    callbacks[0]!();
    expect(await sent).toBe(true);
    expect([budget.inFlightBytes, s.bufferedBytes]).toEqual([0, 0]);
  });

  it("settles every waiting write false when the call is cancelled, and gives back their shares", async () => {
    const { call, callbacks } = fakeCall();
    const budget = new WriteBudget({ limitBytes: 500, stallMs: 60_000 });
    const s = adaptStream(call, { writeBudget: budget });
    const writes = [s.sendFlushed(new Uint8Array(200)), s.sendFlushed(new Uint8Array(200)), s.sendFlushed(new Uint8Array(200))];
    expect([budget.inFlightBytes, budget.waiting, callbacks.length]).toEqual([400, 1, 2]);
    call.emit("cancelled");
    expect(await Promise.all(writes)).toEqual([false, false, false]);
    expect([budget.inFlightBytes, budget.waiting]).toEqual([0, 0]);
    expect(await s.sendFlushed(new Uint8Array(1))).toBe(false); // over: nothing written
    expect(callbacks.length).toBe(2);
    callbacks[0]!(); // a late callback changes nothing
    expect(budget.inFlightBytes).toBe(0);
  });

  it("writes without a budget too", async () => {
    const { call, callbacks } = fakeCall();
    const s = adaptStream(call);
    const sent = s.sendFlushed(new Uint8Array(10));
    callbacks[0]!(new Error("write failed"));
    expect(await sent).toBe(false);
  });
});

describe("send", () => {
  it("resolves at once while the buffer has room, else on 'drain', every waiting writer together", async () => {
    expect(await adaptStream(fakeCall().call).send(new Uint8Array(1))).toBe(true);
    const { call } = fakeCall(true);
    const s = adaptStream(call);
    let settled = 0;
    const waits = [s.send(new Uint8Array(1)), s.send(new Uint8Array(1))].map((p) => p.then((ok) => (settled++, ok)));
    await new Promise((r) => setImmediate(r));
    expect(settled).toBe(0);
    call.emit("drain");
    expect(await Promise.all(waits)).toEqual([true, true]);
    expect(call.listenerCount("drain")).toBe(1);
    const again = s.send(new Uint8Array(1));
    call.emit("drain");
    expect(await again).toBe(true);
  });

  it("resolves a waiting writer false when the stream ends or the call goes away", async () => {
    const { call } = fakeCall(true);
    const s = adaptStream(call);
    const waiting = s.send(new Uint8Array(1));
    call.emit("cancelled");
    expect(await waiting).toBe(false);
    expect(await s.send(new Uint8Array(1))).toBe(false);
    const other = fakeCall(true);
    const t = adaptStream(other.call);
    const waitingToo = t.send(new Uint8Array(1));
    other.call.emit("error", new Error("boom"));
    expect(await waitingToo).toBe(false);
  });
});
