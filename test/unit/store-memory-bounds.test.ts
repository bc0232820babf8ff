// The bounds of the embedded store's memory structures (src/server/store/queue-tails.ts,
// accepted-filter.ts): a tail past its own bound is dropped, the least recently fetched tails go
// past the bound in all, a fetch below a tail's start is not answered from it, and the accepted-id
// filter is filled from its table only when first asked (the `chat-relay users` commands never
// ask) and never loses an id across refills. What the store answers with them is in
// test/server/store-memory*.test.ts.
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { AcceptedFilter } from "../../src/server/store/accepted-filter.js";
import { QueueTails, TAIL_LIMITS } from "../../src/server/store/queue-tails.js";

const item = (seq: number, bytes = 10) => ({ seq, conversationId: "#c", envelope: Buffer.alloc(bytes), relayTimeMs: 1 });
const seqs = (xs: readonly { seq: number }[] | undefined) => xs?.map((x) => x.seq);

describe("queue tails' bounds", () => {
  const limits = { ...TAIL_LIMITS, maxTailRows: 4, maxTailBytes: 100, maxRows: 6, maxBytes: 1000, maxTails: 3 };

  it("drops a tail past its own rows or bytes; SQL answers it again", () => {
    const t = new QueueTails(limits);
    t.track("bob", 0, [item(1), item(2)]);
    t.append("bob", item(3));
    t.append("bob", item(4));
    expect(seqs(t.fetch("bob", 0, 10, 1 << 20))).toEqual([1, 2, 3, 4]);
    t.append("bob", item(5));
    expect(t.has("bob")).toBe(false);
    expect(t.fetch("bob", 4, 10, 1 << 20)).toBeUndefined();
    t.track("carol", 0, [item(1, 60)]);
    t.append("carol", item(2, 60));
    expect(t.has("carol")).toBe(false);
    t.track("dave", 0, [item(1), item(2), item(3), item(4), item(5)]);
    expect(t.has("dave")).toBe(false);
  });

  it("drops the least recently fetched tails past the rows or tails in all", () => {
    const t = new QueueTails(limits);
    t.track("a", 0, [item(1), item(2)]);
    t.track("b", 0, [item(3), item(4)]);
    t.fetch("a", 0, 10, 1 << 20); // a is now the most recently fetched
    t.track("c", 0, [item(5), item(6), item(7)]); // 7 rows > 6: b goes
    expect([t.has("a"), t.has("b"), t.has("c")]).toEqual([true, false, true]);
    t.track("d", 0, []);
    t.track("e", 0, []); // 4 tails > 3: the least recently fetched (a) goes
    expect([t.has("a"), t.has("c"), t.has("d"), t.has("e")]).toEqual([false, true, true, true]);
  });

  it("answers only from its start on, moves its start with the fetches, and keeps only rows after it", () => {
    const t = new QueueTails(limits);
    t.track("bob", 5, [item(6), item(7)]);
    expect(t.fetch("bob", 4, 10, 1 << 20)).toBeUndefined();
    expect(seqs(t.fetch("bob", 6, 10, 1 << 20))).toEqual([7]);
    expect(t.fetch("bob", 5, 10, 1 << 20)).toBeUndefined(); // row 6 left with the fetch after it
    t.append("bob", item(6)); // not after the start: not the tail's
    t.remove("bob", 7);
    expect(seqs(t.fetch("bob", 6, 10, 1 << 20))).toEqual([]);
  });
});

describe("the accepted-id filter", () => {
  it("reads its table only when first asked, and keeps every id across refills", () => {
    const table: Array<[string, Buffer]> = [["alice", randomBytes(16)]];
    let reads = 0;
    const f = new AcceptedFilter({ count: () => table.length, pairs: () => (reads++, table) });
    expect(reads).toBe(0);
    expect(f.mayContain("alice", table[0]![1])).toBe(true);
    expect(reads).toBe(1);
    for (let i = 0; i < 40_000; i++) {
      const id = randomBytes(16);
      table.push(["bob", id]);
      f.add("bob", id);
    }
    expect(f.fills).toBeGreaterThan(1);
    expect(table.every(([s, id]) => f.mayContain(s, id))).toBe(true);
    // New ids are mostly a sure "no" (the filter is sized for twice its ids).
    const maybes = Array.from({ length: 10_000 }, () => f.mayContain("bob", randomBytes(16))).filter(Boolean).length;
    expect(maybes).toBeLessThan(100);
  });
});
