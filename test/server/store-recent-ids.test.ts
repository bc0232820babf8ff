// The accepted ids of the recent past (schema version 3, store/queues.ts, store/recent-ids.ts):
// appended to `accepted_recent` and held exactly in memory, the oldest moved into `accepted` past
// a budget. Each case compares what the live store answers with what the file holds: through the
// tables, and through a second store opened on the file (as after kill -9 and a restart).
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { DatabaseSync } from "node:sqlite";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openStore, type EnqueueRequest, type RelayStore } from "../../src/server/store.js";
import { Queues } from "../../src/server/store/queues.js";
import { RecentIds } from "../../src/server/store/recent-ids.js";
import { openDatabase, transactionOn, UndoLog } from "../../src/server/store/schema.js";
import { listBoundUsers } from "../../src/server/users-command.js";
import { req } from "../helpers/store-records.js";

describe("RecentIds: an exact set of (sender, 16-byte id)", () => {
  it("answers as a Set does through growth, deletions (backward shift) and near-identical keys", () => {
    const set = new RecentIds();
    const model = new Set<string>();
    const key = (s: string, id: Uint8Array) => `${s}/${Buffer.from(id).toString("hex")}`;
    const senders = ["alice", "bob", "carol", "dave"];
    // Ids that differ in one byte only, and the same id under several senders.
    const base = randomBytes(16);
    const pool: Array<[string, Buffer]> = [];
    for (let i = 0; i < 3000; i++) {
      const id = i % 3 === 0 ? Buffer.from(base) : randomBytes(16);
      if (i % 3 === 0) id[i % 16] = i & 0xff;
      pool.push([senders[i % senders.length]!, id]);
    }
    // mulberry32: a fixed seed, and no correlation between the key drawn and the operation.
    let seed = 7;
    const rnd = (n: number) => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) % n;
    };
    let largest = 0;
    for (let step = 0; step < 40_000; step++) {
      const [s, id] = pool[rnd(pool.length)]!;
      const op = rnd(5); // adds three times as often as deletes: the table grows past 768 and 1,536 entries
      if (op <= 2) {
        expect(set.add(s, id)).toBe(!model.has(key(s, id)));
        model.add(key(s, id));
        expect(set.has(s, id)).toBe(true);
      }
      if (op === 3) expect(set.delete(s, id)).toBe(model.delete(key(s, id)));
      if (op === 4) expect(set.has(s, id)).toBe(model.has(key(s, id)));
      expect(set.size).toBe(model.size);
      largest = Math.max(largest, set.size);
    }
    expect(largest).toBeGreaterThan(1536);
    for (const [s, id] of pool) expect(set.has(s, id)).toBe(model.has(key(s, id)));
    expect(set.has("zed", pool[0]![1])).toBe(false);
  });

  it("refuses an id that is not 16 bytes", () => {
    const set = new RecentIds();
    expect(() => set.add("alice", Buffer.alloc(15))).toThrow("a recent id is 16 bytes");
    expect(() => set.has("alice", Buffer.alloc(17))).not.toThrow(); // an unknown sender: nothing to compare
    set.add("alice", Buffer.alloc(16));
    expect(() => set.has("alice", Buffer.alloc(17))).toThrow("a recent id is 16 bytes");
  });
});

let dir: string;
let path: string;
let now = 1_000_000;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "store-recent-ids-test-"));
  path = join(dir, "relay.db");
  now = 1_000_000;
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** The (sender, id) pairs of a table, as "sender/hex" (accepted_recent: a row per transaction, its ids end to end). */
function tableKeys(table: "accepted" | "accepted_recent"): string[] {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    if (table === "accepted") {
      return (db.prepare("SELECT sender, message_id FROM accepted").all() as Array<{ sender: string; message_id: Uint8Array }>)
        .map((r) => `${r.sender}/${Buffer.from(r.message_id).toString("hex")}`).sort();
    }
    return (db.prepare("SELECT senders, message_ids FROM accepted_recent").all() as Array<{ senders: string; message_ids: Uint8Array }>)
      .flatMap((r) => (JSON.parse(r.senders) as string[]).map((sender, i) => `${sender}/${Buffer.from(r.message_ids.subarray(16 * i, 16 * i + 16)).toString("hex")}`))
      .sort();
  } finally {
    db.close();
  }
}
const keyOf = (r: EnqueueRequest) => `${r.sender}/${Buffer.from(r.messageId).toString("hex")}`;

/** Queues over a bare database with a budget of `ids` recent ids (its stats are not on RelayStore). */
function bareQueues(ids: number): { q: Queues; close: () => void } {
  const db = openDatabase(path, {});
  const undo = new UndoLog();
  const q = new Queues({ db, clock: () => now, transaction: transactionOn(db, undefined, undo), undo }, { envelopeBytes: 1 << 20, acceptedIds: ids });
  return { q, close: () => db.close() };
}

describe("the store's recent ids: appended, exact in memory, the oldest moved past the budget", () => {
  it("keeps every id exactly: recent ones in accepted_recent, the oldest moved into accepted, each table as memory says", () => {
    const { q, close } = bareQueues(8);
    try {
      const sent = Array.from({ length: 2500 }, (_, i) => req(`u${i % 5}`, i % 2 === 0 ? [] : ["bob"]));
      // A row of 5 ids per transaction; past 8 ids, the oldest rows move (whole rows).
      for (let i = 0; i < sent.length; i += 5) expect(q.enqueueBatch(sent.slice(i, i + 5)).every((o) => o === "stored")).toBe(true);
      const recent = tableKeys("accepted_recent");
      const moved = tableKeys("accepted");
      expect(recent.length).toBeGreaterThan(0);
      expect(recent.length).toBeLessThanOrEqual(8);
      expect(q.recentIdStats.ids).toBe(recent.length);
      expect(moved.length + recent.length).toBe(sent.length);
      expect([...moved, ...recent].sort()).toEqual(sent.map(keyOf).sort());
      // The newest stayed recent; every id, moved or not, is a duplicate now.
      expect(recent).toEqual(sent.slice(-recent.length).map(keyOf).sort());
      for (const r of sent) expect(q.wasAccepted(r.sender, r.messageId as Buffer)).toBe(true);
      expect(q.enqueueBatch([sent[0]!, sent.at(-1)!])).toEqual(["duplicate", "duplicate"]);
      expect(q.wasAccepted("u0", randomBytes(16))).toBe(false);
    } finally {
      close();
    }
    // A restart reads accepted_recent back into memory and fills the filter from accepted.
    const { q: again, close: close2 } = bareQueues(8);
    try {
      expect(again.recentIdStats.ids).toBe(tableKeys("accepted_recent").length);
      const one = req("u1", ["bob"]);
      expect(again.enqueueBatch([one])).toEqual(["stored"]);
      expect(again.enqueueBatch([one])).toEqual(["duplicate"]);
    } finally {
      close2();
    }
  });

  it("a batch that rolls back leaves memory as the file is: its ids not accepted, the ids it moved still found", () => {
    const { q, close } = bareQueues(4);
    try {
      const first = Array.from({ length: 1030 }, () => req("alice", []));
      q.enqueueBatch(first.slice(0, 1026)); // past the budget: its row moves to accepted at once
      q.enqueueBatch(first.slice(1026, 1028));
      q.enqueueBatch(first.slice(1028)); // two rows of 2: the budget, nothing moved
      const recentBefore = tableKeys("accepted_recent");
      expect(recentBefore).toHaveLength(4);
      const more = Array.from({ length: 1100 }, () => req("bob", ["carol"]));
      // An MLS commit's deliveries (the same enqueue and move), whose transaction then fails: the
      // move took the two rows of 2 and the batch's own row into accepted before the failure.
      expect(() => q.transactionQueuing(() => {
        expect(q.enqueueInside(more).every((o) => o === "stored")).toBe(true);
        expect(q.recentIdStats.ids).toBe(0);
        expect(q.wasAccepted("bob", more[0]!.messageId as Buffer)).toBe(true);
        throw new Error("the commit fails");
      })).toThrow("the commit fails");
      expect(tableKeys("accepted_recent")).toEqual(recentBefore);
      expect(q.recentIdStats.ids).toBe(4);
      for (const r of more) expect(q.wasAccepted("bob", r.messageId as Buffer)).toBe(false);
      for (const r of first) expect(q.wasAccepted("alice", r.messageId as Buffer)).toBe(true);
      // Sent again, they are stored (not answered as duplicates of a batch that never was).
      expect(q.enqueueBatch(more.slice(0, 3))).toEqual(["stored", "stored", "stored"]);
    } finally {
      close();
    }
  });

  it("a purge forgets the recent ids it deletes, in memory as in the file", () => {
    let store: RelayStore = openStore(path, { clock: () => now, recentAcceptedIds: 1000 });
    try {
      const old = Array.from({ length: 20 }, () => req("alice", ["bob"]));
      store.enqueueBatch(old);
      now += 10_000;
      const young = Array.from({ length: 5 }, () => req("alice", ["bob"]));
      store.enqueueBatch(young);
      const result = store.purgeOlderThan(now - 1);
      expect(result.acceptedIds).toBe(20);
      expect(tableKeys("accepted_recent")).toEqual(young.map(keyOf).sort());
      for (const r of old) expect(store.wasAccepted("alice", r.messageId as Buffer)).toBe(false);
      for (const r of young) expect(store.wasAccepted("alice", r.messageId as Buffer)).toBe(true);
      // A purged id sent again is a new send, stored.
      expect(store.enqueueBatch([old[0]!])).toEqual(["stored"]);
      store.close();
      store = openStore(path, { clock: () => now, recentAcceptedIds: 1000 });
      expect(store.wasAccepted("alice", old[0]!.messageId as Buffer)).toBe(true);
      expect(store.wasAccepted("alice", old[1]!.messageId as Buffer)).toBe(false);
    } finally {
      store.close();
    }
  });

  it("a version-2 file gains the table at a relay's open; the operator commands refuse it until then", () => {
    // A version-2 file: ids only in accepted, no accepted_recent.
    const store = openStore(path, { clock: () => now });
    store.close();
    const id = randomBytes(16);
    const db = new DatabaseSync(path);
    db.exec("DROP TABLE accepted_recent; PRAGMA user_version = 2;");
    db.prepare("INSERT INTO accepted (sender, message_id, accepted_at_ms) VALUES (?, ?, ?)").run("alice", id, now);
    db.close();
    expect(() => listBoundUsers(dir)).toThrow("the database was made by an earlier chat-relay (schema version 2)");
    const upgraded = openStore(path, { clock: () => now });
    try {
      expect(upgraded.wasAccepted("alice", id)).toBe(true);
      expect(upgraded.enqueueBatch([req("alice", ["bob"], 10, id)])).toEqual(["duplicate"]);
      expect(upgraded.enqueueBatch([req("alice", ["bob"])])).toEqual(["stored"]);
    } finally {
      upgraded.close();
    }
    const after = new DatabaseSync(path, { readOnly: true });
    expect((after.prepare("PRAGMA user_version").get() as { user_version: number }).user_version).toBe(5); // the current version
    after.close();
    expect(tableKeys("accepted_recent")).toHaveLength(1);
  });
});
