// The embedded store's memory structures (src/server/store/queue-memory.ts, accepted-filter.ts):
// the queues in memory take, put back, append and load as the file says, and the accepted-id
// filter is filled from its table only when first asked (the `chat-relay users` commands never
// ask), grows in layers without reading it again, and drops only layers of purged ids. What the store answers with them is in
// test/server/store-memory*.test.ts.
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { AcceptedFilter } from "../../src/server/store/accepted-filter.js";
import { parseRecipients, QueueMemory } from "../../src/server/store/queue-memory.js";


describe("the queues in memory (queue-memory.ts)", () => {
  const info = (m: QueueMemory, id: number, sender = "alice", bytes = 10) =>
    m.envelopes.set(id, m.info({ sender, bytes, conversationId: "#c", createdAtMs: 1, mls: true }, 0));
  const row = (id: number, recipients: unknown, sender = "alice", bytes = 10) =>
    ({ id, sender, bytes, conversationId: "#c", createdAtMs: 1, mls: true, recipients: JSON.stringify(recipients) });

  it("takes a prefix or scattered seqs, only the recipient's own, and puts them back in order", () => {
    const m = new QueueMemory();
    for (const id of [1, 2, 3, 4, 5]) {
      info(m, id);
      m.append("bob", id);
    }
    m.append("carol", 3);
    expect(m.take("bob", [1, 2, 99])).toEqual([1, 2]);
    expect(m.queue("bob")).toEqual([3, 4, 5]);
    expect(m.take("bob", [5, 3])).toEqual([3, 5]);
    expect(m.queue("bob")).toEqual([4]);
    expect(m.queue("carol")).toEqual([3]); // carol's row 3 is hers: bob's ack of 3 left it
    expect(m.take("dave", [4])).toEqual([]);
    m.restore("bob", [3, 5]);
    expect(m.queue("bob")).toEqual([3, 4, 5]);
    expect(m.take("bob", [3, 4, 5])).toEqual([3, 4, 5]);
    expect([...m.recipients()]).toEqual(["carol"]); // an empty queue leaves
    expect(m.take("bob", [Number.NaN, 1.5, -1])).toEqual([]);
  });

  it("appends only above the last seq, and unappend takes only the last", () => {
    const m = new QueueMemory();
    info(m, 7);
    expect(m.append("bob", 7)).toBe(true);
    expect(m.append("bob", 7)).toBe(false);
    expect(m.append("bob", 6)).toBe(false);
    m.unappend("bob", 6);
    expect(m.queue("bob")).toEqual([7]);
    m.unappend("bob", 7);
    expect(m.queue("bob")).toEqual([]);
  });

  it("keeps usage in step with appends and takes, per sender", () => {
    const m = new QueueMemory();
    info(m, 1, "alice", 100);
    info(m, 2, "carol", 30);
    m.append("bob", 1);
    expect(m.usageOf("bob").usage("alice")).toEqual({ count: 1, bytes: 100, senderCount: 1, senderBytes: 100 });
    m.append("bob", 2);
    expect(m.usageOf("bob").usage("carol")).toEqual({ count: 2, bytes: 130, senderCount: 1, senderBytes: 30 });
    m.take("bob", [1]);
    expect(m.usageOf("bob").usage("alice")).toEqual({ count: 1, bytes: 30, senderCount: 0, senderBytes: 0 });
  });

  it("loads queues from rows above each cursor, without acked rows, and names envelopes nobody waits for", () => {
    const m = new QueueMemory();
    const orphans = m.load(
      [row(1, ["bob", "carol"]), row(2, ["bob"]), row(3, ["bob", "bob", "dave"]), row(4, ["carol"]), row(5, "not an array"), row(6, ["erin"])],
      new Map([["bob", 1]]),
      new Map([["carol", new Set([4])], ["erin", new Set([6])]]),
    );
    expect(m.queue("bob")).toEqual([2, 3]);
    expect(m.queue("carol")).toEqual([1]);
    expect(m.queue("dave")).toEqual([3]);
    expect(orphans).toEqual([4, 5, 6]);
    expect([...m.envelopes.keys()]).toEqual([1, 2, 3]);
    expect(m.envelopes.get(3)!.refs).toBe(2); // bob named twice is queued once
  });

  it("drops purged envelopes from every queue", () => {
    const m = new QueueMemory();
    m.load([row(1, ["bob", "carol"]), row(2, ["bob"]), row(3, ["carol"])], new Map(), new Map());
    m.dropEnvelopes(new Set([1, 3]));
    expect(m.queue("bob")).toEqual([2]);
    expect(m.queue("carol")).toEqual([]);
    expect([...m.envelopes.keys()]).toEqual([2]);
  });

  it("parses only arrays of strings as recipients", () => {
    expect(parseRecipients('["a","b"]')).toEqual(["a", "b"]);
    expect(parseRecipients('["a",1,null]')).toEqual(["a"]);
    expect(parseRecipients("{}")).toEqual([]);
    expect(parseRecipients("[")).toEqual([]);
  });
});

describe("the accepted-id filter", () => {
  /** A table of (sender, id, accepted at) the filter is filled from, counting its reads. */
  function table() {
    const rows: Array<[string, Buffer, number]> = [];
    const t = {
      rows, reads: 0,
      source: {
        count: () => rows.length,
        pairs: () => {
          t.reads++;
          return rows.map(([s, id]) => [s, id] as const);
        },
        newestMs: () => rows.reduce((m, r) => Math.max(m, r[2]), Number.NEGATIVE_INFINITY),
      },
    };
    return t;
  }

  it("reads its table once, when first asked, and keeps every id as it grows layers, without reading it again", () => {
    const t = table();
    t.rows.push(["alice", randomBytes(16), 1]);
    let now = 10;
    const f = new AcceptedFilter(t.source, () => now);
    expect(t.reads).toBe(0);
    expect(f.mayContain("alice", t.rows[0]![1])).toBe(true);
    expect(t.reads).toBe(1);
    for (let i = 0; i < 40_000; i++) {
      const id = randomBytes(16);
      t.rows.push(["bob", id, ++now]);
      f.add("bob", id, now);
    }
    expect(t.reads).toBe(1);
    expect(f.shape.length).toBeGreaterThan(1);
    expect(t.rows.every(([s, id]) => f.mayContain(s, id))).toBe(true);
    // New ids are mostly a sure "no" (each layer at most at the capacity it was sized for).
    const maybes = Array.from({ length: 10_000 }, () => f.mayContain("bob", randomBytes(16))).filter(Boolean).length;
    expect(maybes).toBeLessThan(100);
  });

  it("drops the layers whose ids were all purged, and still holds every id the table keeps", () => {
    const t = table();
    let now = 1000;
    const f = new AcceptedFilter(t.source, () => now);
    f.warm();
    expect(t.reads).toBe(1);
    const add = () => {
      const id = randomBytes(16);
      t.rows.push(["bob", id, ++now]);
      f.add("bob", id, now);
    };
    for (let i = 0; i < 20_000; i++) add(); // past the first layer (16,384)
    expect(f.shape.length).toBe(2);
    const cutoff = now + 1;
    for (let i = 0; i < 40_000; i++) add(); // the second layer (32,768) fills: a third one
    expect(f.shape.length).toBe(3);
    // The table's purge of everything before the cutoff (inside the second layer), and the filter told so.
    t.rows.splice(0, t.rows.findIndex((r) => r[2] >= cutoff));
    f.purged(cutoff);
    expect(f.shape.length).toBe(2);
    expect(t.rows).toHaveLength(40_000);
    expect(t.rows.every(([s, id]) => f.mayContain(s, id))).toBe(true);
    // A purge of everything empties the newest layer too; ids added afterwards are held.
    t.rows.length = 0;
    f.purged(now + 1);
    expect(f.shape).toEqual([{ capacity: f.shape[0]!.capacity, ids: 0 }]);
    add();
    expect(f.mayContain("bob", t.rows[0]![1])).toBe(true);
    expect(t.reads).toBe(1);
  });

  it("dates the layer filled from the table by its newest row when the clock went back, so a purge never drops a kept id", () => {
    const t = table();
    t.rows.push(["alice", randomBytes(16), 5000]);
    const f = new AcceptedFilter(t.source, () => 100); // the clock is now before the row's date
    f.warm();
    f.purged(4000); // ids before 4000 are gone from the table; alice's (5000) stays
    expect(f.mayContain("alice", t.rows[0]![1])).toBe(true);
  });
});
