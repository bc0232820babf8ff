// The embedded store's memory structures that spare the hot path its statements (store/queues.ts):
// the accepted-id filter, and every queue in memory with each envelope's refs (queue-memory.ts).
// These cases break their invariants on purpose (a row stored in a commit's transaction, a batch
// rolled back, an ack of another recipient's seq, a queue released by another process, an ack in
// the transaction that stores its row) and compare what the live store answers with what the file
// says: through a second store opened on it (as after kill -9 and a restart: the live store is never
// closed first) and through the `queue` view over the tables. store-memory-model.test.ts runs
// random sequences of the same operations against the file.
import { mkdtempSync, rmSync } from "node:fs";
import { DatabaseSync } from "node:sqlite";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openStore, type EnqueueRequest, type QueuedItem, type RelayStore } from "../../src/server/store.js";
import { Queues, RECENT_IDS_MAX } from "../../src/server/store/queues.js";
import { openDatabase, transactionOn, UndoLog } from "../../src/server/store/schema.js";
import { hex, req, user } from "../helpers/store-records.js";

let dir: string;
let path: string;
let store: RelayStore;
let now = 1_000_000;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "store-memory-test-"));
  path = join(dir, "relay.db");
  now = 1_000_000;
  store = openStore(path, { clock: () => now });
});

afterEach(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

const items = (xs: readonly QueuedItem[]) => xs.map((i) => [i.seq, hex(i.envelope), i.payload ?? "envelope"]);
const all = (s: RelayStore, r: string, after = 0) => items(s.fetchQueue(r, after, 10_000, Number.POSITIVE_INFINITY));

/** What a second store on the same file (nothing in its memory) answers: the file's truth. */
function reopened<T>(fn: (s: RelayStore) => T): T {
  const other = openStore(path, { clock: () => now });
  try {
    return fn(other);
  } finally {
    other.close();
  }
}

/** The file's envelopes, each with the queue rows (the `queue` view) that still hold it: an envelope nobody waits for must be gone. */
function envelopeRows(): Array<{ id: number; rows: number }> {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    return (db.prepare(`SELECT e.id AS id, (SELECT COUNT(*) FROM queue q WHERE q.envelope_id = e.id) AS rows
                        FROM envelopes e ORDER BY e.id`).all() as Array<Record<string, number>>)
      .map((r) => ({ id: Number(r.id), rows: Number(r.rows) }));
  } finally {
    db.close();
  }
}

/** Starts a recipient's tail the way its pump does: a fetch that reads its queue to the end. Returns the last seq. */
function drain(r: string): number {
  const got = store.fetchQueue(r, 0, 10_000, Number.POSITIVE_INFINITY);
  return got.at(-1)?.seq ?? 0;
}

describe("accepted ids: the filter says 'no' exactly, and SQLite answers its 'maybe'", () => {
  it("an id of a batch that rolled back is not accepted (its bits stay set: SQLite denies)", () => {
    const poisoned: EnqueueRequest = { ...req("alice", ["bob"]), conversationId: null as unknown as string };
    const fine = req("alice", ["bob"]);
    // The poisoned request fails after its accepted row and filter bits were written.
    expect(() => store.enqueueBatch([fine, poisoned])).toThrow();
    expect(store.wasAccepted("alice", fine.messageId as Buffer)).toBe(false);
    expect(store.wasAccepted("alice", poisoned.messageId as Buffer)).toBe(false);
    expect(store.enqueueBatch([fine])).toEqual(["stored"]);
    expect(store.wasAccepted("alice", fine.messageId as Buffer)).toBe(true);
    expect(reopened((s) => s.wasAccepted("alice", fine.messageId as Buffer))).toBe(true);
  });

  it("ids accepted before a restart are found (the filter is filled from the file), also past its first layer", () => {
    const ids = Array.from({ length: 40 }, (_, i) => req(`u${i % 3}`, i % 2 === 0 ? [] : ["bob"]));
    store.enqueueBatch(ids);
    store.close();
    store = openStore(path, { clock: () => now });
    for (const r of ids) expect(store.wasAccepted(r.sender, r.messageId as Buffer)).toBe(true);
    expect(store.enqueueBatch(ids.slice(0, 5))).toEqual(Array(5).fill("duplicate"));
    // Past the first layer's capacity (2^14 ids): a new layer takes the new ids; every id is kept.
    const many = Array.from({ length: 20_000 }, () => req("carol", []));
    expect(store.enqueueBatch(many).every((o) => o === "stored")).toBe(true);
    for (const r of [...ids, ...many]) expect(store.wasAccepted(r.sender, r.messageId as Buffer)).toBe(true);
    // A purge forgets ids in the table; the filter's stale bits are answered by SQLite.
    now += 10_000;
    store.purgeOlderThan(now);
    expect(store.wasAccepted("carol", many[0]!.messageId as Buffer)).toBe(false);
    expect(store.enqueue(many[0]!)).toBe(true);
  });
});

describe("queues in memory: a fetch answers exactly what the file holds", () => {
  it("holds the rows of a commit's deliveries (transactionQueuing), after its commit only", () => {
    for (const u of ["alice", "bob", "carol"]) store.bindUser(user(u, 1));
    const s = store.mls;
    s.createGroup({ groupId: Buffer.alloc(20, 1), conversationId: "#g", creator: "alice", epoch: 0, groupInfo: Buffer.from("gi"), groupInfoEpoch: 0 });
    s.acceptCommit(Buffer.alloc(20, 1), 0, "alice", Buffer.from("c0"), undefined, { external: false, added: ["bob", "carol"], removed: [] });
    const from = drain("bob");
    const delivery = (id: number, conversationId: string | null = "#g"): EnqueueRequest => ({
      sender: "alice", messageId: Buffer.alloc(16, id), conversationId: conversationId as string, envelope: Buffer.from(`commit ${id}`), payload: "mls", recipients: ["bob", "carol"],
    });
    // A commit whose deliveries fail to store rolls back: nothing reaches the tail.
    expect(() => s.acceptCommit(Buffer.alloc(20, 1), 1, "alice", Buffer.from("c1"), undefined, undefined, () => [delivery(1), delivery(2, null)])).toThrow();
    expect(all(store, "bob", from)).toEqual([]);
    expect(s.acceptCommit(Buffer.alloc(20, 1), 1, "alice", Buffer.from("c1"), undefined, undefined, () => [delivery(3)]).kind).toBe("accepted");
    const got = all(store, "bob", from);
    expect(got.map(([, bytes, payload]) => [Buffer.from(bytes as string, "hex").toString(), payload])).toEqual([["commit 3", "mls"]]);
    expect(got).toEqual(reopened((o) => all(o, "bob", from)));
  });

  it("leaves out a batch that rolled back, and keeps the batches around it", () => {
    const from = drain("bob");
    const a = req("alice", ["bob"]);
    store.enqueueBatch([a]);
    expect(() => store.enqueueBatch([req("carol", ["bob"]), { ...req("carol", ["bob"]), conversationId: null as unknown as string }])).toThrow();
    expect(all(store, "bob", from).map(([, bytes]) => bytes)).toEqual([hex(a.envelope)]);
    const b = req("dave", ["bob", "carol"]);
    store.enqueueBatch([b]);
    const got = all(store, "bob", from);
    expect(got.map(([, bytes]) => bytes)).toEqual([hex(a.envelope), hex(b.envelope)]);
    expect(got).toEqual(reopened((o) => all(o, "bob", from)));
  });

  it("an ack takes only the acking recipient's own rows out of the tails", () => {
    const fromBob = drain("bob");
    const fromCarol = drain("carol");
    store.enqueueBatch([req("alice", ["bob", "carol"]), req("alice", ["carol"]), req("alice", ["bob"])]);
    const bobs = all(store, "bob", fromBob).map(([seq]) => seq as number);
    const carols = all(store, "carol", fromCarol).map(([seq]) => seq as number);
    // An envelope's seq is the same in each queue that holds it: carol's own are those bob lacks.
    const carolsOnly = carols.filter((seq) => !bobs.includes(seq));
    expect(carolsOnly).toHaveLength(1);
    // Bob names carol's seqs and one of his own that his pump has not fetched yet (from fromBob on).
    expect(store.ackBatch([{ recipient: "bob", seqs: [...carolsOnly, bobs[1]!] }])).toBe(1);
    expect(all(store, "carol", fromCarol).map(([seq]) => seq)).toEqual(carols);
    expect(all(store, "bob", fromBob).map(([seq]) => seq)).toEqual([bobs[0]]);
    expect(all(store, "bob", fromBob)).toEqual(reopened((o) => all(o, "bob", fromBob)));
    expect(all(store, "carol", fromCarol)).toEqual(reopened((o) => all(o, "carol", fromCarol)));
  });

  it("follows a pump through limits and byte budgets, and answers a fetch below its start from SQLite", () => {
    const from = drain("bob");
    const sent = Array.from({ length: 12 }, (_, i) => req("alice", ["bob"], 100 + 50 * i));
    store.enqueueBatch(sent.slice(0, 5));
    store.enqueueBatch(sent.slice(5));
    let after = from;
    const pumped: string[] = [];
    for (const [limit, maxBytes] of [[2, 1 << 20], [10, 300], [1, 1], [3, 1000], [100, 10]] as const) {
      const got = store.fetchQueue("bob", after, limit, maxBytes);
      expect(items(got)).toEqual(reopened((o) => items(o.fetchQueue("bob", after, limit, maxBytes))));
      pumped.push(...got.map((i) => hex(i.envelope)));
      after = got.at(-1)?.seq ?? after;
    }
    expect(pumped).toEqual(sent.slice(0, pumped.length).map((r) => hex(r.envelope)));
    // A new session starts from 0 again: below the tail's start, SQLite answers.
    expect(all(store, "bob")).toEqual(reopened((o) => all(o, "bob")));
    expect(all(store, "bob")).toHaveLength(12);
  });

  it("is dropped with a queue released here or by another process (with the name's devices' queues) and after a purge", () => {
    for (const u of ["bob", "carol"]) store.bindUser(user(u, 1));
    const from = { bob: drain("bob"), dev: drain("bob/d1"), carol: drain("carol") };
    store.enqueueBatch([req("alice", ["bob", "bob/d1", "carol"])]);
    // Released by `chat-relay users release` in another process, then bound again here.
    reopened((o) => expect(o.releaseUser("bob")).toBe(true));
    expect(store.bindUser(user("bob", 50)).kind).toBe("bound");
    expect(all(store, "bob", from.bob)).toEqual([]);
    expect(all(store, "bob/d1", from.dev)).toEqual([]);
    expect(all(store, "carol", from.carol)).toHaveLength(1);
    // Released here.
    store.enqueueBatch([req("alice", ["bob", "carol"])]);
    expect(all(store, "bob", from.bob)).toHaveLength(1);
    expect(store.releaseUser("bob")).toBe(true);
    expect(all(store, "bob", from.bob)).toEqual([]);
    // Purged.
    expect(all(store, "carol", from.carol)).toHaveLength(2);
    now += 1000;
    store.purgeOlderThan(now);
    expect(all(store, "carol", from.carol)).toEqual([]);
    expect(envelopeRows()).toEqual([]);
  });

  it("never serves another envelope's bytes through a row id reused after another process dropped its envelope", () => {
    store.bindUser(user("bob", 1));
    const from = drain("bob");
    const old = req("alice", ["bob"], 300);
    store.enqueueBatch([old]);
    // Bob's queue (and so the envelope, its only reader) is released elsewhere; this store's tail still has the row.
    reopened((o) => expect(o.releaseUser("bob")).toBe(true));
    expect(envelopeRows()).toEqual([]);
    const fresh = req("alice", ["carol"], 300);
    store.enqueueBatch([fresh]); // SQLite gives it the dropped envelope's id
    expect(store.fetchQueue("bob", from, 100, 1 << 20).map((i) => hex(i.envelope))).not.toContain(hex(fresh.envelope));
  });
});

describe("envelope refs: an ack's sender, size and last-row delete from memory", () => {
  it("keeps refs equal to the rows through acks in any grouping, and drops an envelope with its last row", () => {
    store.enqueueBatch([req("alice", ["bob", "carol", "dave"], 500), req("carol", ["bob"], 70)]);
    const seqs = (r: string) => all(store, r).map(([seq]) => seq as number);
    const [b1, b2] = seqs("bob");
    expect(store.ackBatch([{ recipient: "bob", seqs: [b1!] }, { recipient: "carol", seqs: seqs("carol") }])).toBe(2);
    expect(envelopeRows().map((e) => e.rows)).toEqual([1, 1]);
    expect(store.queueUsage("bob", "carol")).toEqual(reopened((o) => o.queueUsage("bob", "carol")));
    expect(store.queueUsage("dave", "alice")).toEqual({ count: 1, bytes: 500, senderCount: 1, senderBytes: 500 });
    expect(store.ackBatch([{ recipient: "bob", seqs: [b2!] }, { recipient: "dave", seqs: seqs("dave") }])).toBe(2);
    expect(envelopeRows()).toEqual([]);
    expect(store.queueUsage("bob", "carol")).toEqual({ count: 0, bytes: 0, senderCount: 0, senderBytes: 0 });
  });

  it("an ack in the transaction that stores an envelope under a reused id asks the table, not a stale entry", () => {
    for (const u of ["bob", "carol", "dave"]) store.bindUser(user(u, 1));
    store.enqueueBatch([req("alice", ["bob"], 40)]);
    store.queueUsage("carol", "mallory"); // carol's usage is cached
    // The envelope's only row goes with bob's name, released by another process: this store still knows its refs (1).
    reopened((o) => expect(o.releaseUser("bob")).toBe(true));
    // An envelope under the same id for carol and dave, and in the same transaction an ack of carol's row
    // (its seq is the next one: a client can guess it).
    const next = store.lastSeq() + 1;
    const shared = req("mallory", ["carol", "dave"], 900);
    expect(store.enqueueBatch([shared], [{ recipient: "carol", seqs: [next] }])).toEqual(["stored"]);
    expect(all(store, "dave").map(([, bytes]) => bytes)).toEqual([hex(shared.envelope)]);
    expect(envelopeRows().map((e) => e.rows)).toEqual([1]);
    expect(store.queueUsage("carol", "mallory")).toEqual(reopened((o) => o.queueUsage("carol", "mallory")));
    expect(store.queueUsage("dave", "mallory")).toEqual({ count: 1, bytes: 900, senderCount: 1, senderBytes: 900 });
  });
});

describe("a rolled-back transaction leaves the queues in memory as the file is (UndoLog)", () => {
  it("puts back the rows that dropped queues took, the envelope a last row deleted, and the usage", () => {
    const bare = join(dir, "bare.db");
    const db = openDatabase(bare, {});
    const undo = new UndoLog();
    const q = new Queues({ db, clock: () => now, transaction: transactionOn(db, undefined, undo), undo }, { envelopeBytes: 1 << 20, acceptedIds: RECENT_IDS_MAX });
    try {
      q.enqueueBatch([req("alice", ["bob"], 40), req("alice", ["bob", "carol"], 60)]);
      const seqs = (r: string) => q.fetchQueue(r, 0, 100, Number.POSITIVE_INFINITY).map((i) => i.seq);
      const bobs = seqs("bob");
      const carols = seqs("carol");
      expect(bobs).toHaveLength(2);
      expect(q.queueUsage("bob", "alice")).toEqual({ count: 2, bytes: 100, senderCount: 2, senderBytes: 100 });
      // Both queues dropped (bob's only row of the first envelope deletes it), then a later step fails.
      expect(() => q.transactionQueuing(() => {
        q.dropQueueLocked("bob");
        q.dropQueueLocked("carol");
        expect(seqs("bob")).toEqual([]);
        throw new Error("a later step fails");
      })).toThrow("a later step fails");
      expect([seqs("bob"), seqs("carol")]).toEqual([bobs, carols]);
      expect(q.queueUsage("bob", "alice")).toEqual({ count: 2, bytes: 100, senderCount: 2, senderBytes: 100 });
      // Memory goes on as the file: acks take the rows again and the envelope of the last one goes.
      const file = new DatabaseSync(bare, { readOnly: true });
      const rowsOf = (r: string) => (file.prepare("SELECT COUNT(*) AS n FROM queue WHERE recipient = ?").get(r) as { n: number }).n;
      expect(q.ack("bob", bobs)).toBe(2);
      // The file (its cursor for bob) agrees: bob has nothing left, carol still her row.
      expect([rowsOf("bob"), rowsOf("carol")]).toEqual([0, 1]);
      expect(q.ack("carol", carols)).toBe(1);
      expect(file.prepare("SELECT COUNT(*) AS n FROM envelopes").get()).toEqual({ n: 0 });
      file.close();
    } finally {
      db.close();
    }
  });
});
