// The embedded store's memory of groups (src/server/store/mls-group-cache.ts) where it is about
// SQLite: filled only with committed rows (a read inside a transaction that is then rolled back
// must not leave the transaction's writes behind in memory), served from memory, and bounded.
// That every write is read back at once, on both stores, is test/store-contract/mls-reads.contract.ts.
import { mkdtempSync, rmSync } from "node:fs";
import { DatabaseSync } from "node:sqlite";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { user } from "../store-contract/mls.contract.js";
import { openStore } from "../../src/server/store.js";
import { MlsDeliveryStore } from "../../src/server/store/mls.js";
import { MlsGroupCache } from "../../src/server/store/mls-group-cache.js";
import { openDatabase, transactionOn, UndoLog, type Transaction } from "../../src/server/store/schema.js";

const gid = (n: number) => Buffer.alloc(20, n);
const group = (n: number, conversationId: string, groupInfoBytes = 8) => ({
  groupId: gid(n), conversationId, creator: "alice", epoch: 0, groupInfo: Buffer.alloc(groupInfoBytes, n), groupInfoEpoch: 0,
});
const hint = (added: string[], removed: string[] = []) => ({ external: false, added, removed });

let dir: string;
let db: DatabaseSync;
let tx: Transaction;
let undo: UndoLog;

function mlsStore(cache?: MlsGroupCache): MlsDeliveryStore {
  return new MlsDeliveryStore({ db, clock: () => 1_000_000, transaction: tx, undo }, undefined, cache);
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "store-mls-cache-"));
  db = openDatabase(join(dir, "relay.db"), {});
  undo = new UndoLog();
  tx = transactionOn(db, undefined, undo);
});

afterEach(() => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("a rolled-back transaction", () => {
  it("leaves no member list read inside it in memory", () => {
    const s = mlsStore();
    s.createGroup(group(1, "#ops"));
    s.acceptCommit(gid(1), 0, "alice", Buffer.from("c0"), undefined, hint(["bob"]));
    // Kept in memory, as SendMls reads them.
    expect(s.group(gid(1))?.epoch).toBe(1);
    expect(s.groupMembers(gid(1))).toEqual(["alice", "bob"]);
    expect(s.cache.members(gid(1))?.sorted).toEqual(["alice", "bob"]);
    expect(() => tx(() => {
      s.dropMembershipsLocked("bob");
      // Read inside the transaction: its own write is seen...
      expect(s.isGroupMember(gid(1), "bob")).toBe(false);
      expect(s.groupMembers(gid(1))).toEqual(["alice"]);
      throw new Error("rolled back");
    })).toThrow("rolled back");
    // ...and after the rollback, what is committed.
    expect(s.isGroupMember(gid(1), "bob")).toBe(true);
    expect(s.groupMembers(gid(1))).toEqual(["alice", "bob"]);
  });

  it("leaves no group record read inside it in memory", () => {
    const s = mlsStore();
    s.createGroup(group(1, "#ops"));
    expect(s.group(gid(1))?.groupInfoEpoch).toBe(0);
    expect(() => tx(() => {
      s.setGroupInfo(gid(1), Buffer.from("uncommitted"), 7);
      expect(s.group(gid(1))).toMatchObject({ groupInfo: Buffer.from("uncommitted"), groupInfoEpoch: 7 });
      throw new Error("rolled back");
    })).toThrow("rolled back");
    expect(s.group(gid(1))).toEqual(group(1, "#ops"));
  });

  it("of a commit that fails after its writes leaves the epoch and the members as committed", () => {
    const s = opsWithBob();
    // The epoch, the members and then the GroupInfo are written; the GroupInfo fails (NOT NULL).
    expect(() => s.acceptCommit(gid(1), 1, "alice", Buffer.from("c1"), null as unknown as Buffer, hint(["carol"], ["bob"]))).toThrow();
    expect(s.group(gid(1))).toMatchObject({ epoch: 1, groupInfoEpoch: 0 });
    expect(s.isGroupMember(gid(1), "bob")).toBe(true);
    expect(s.isGroupMember(gid(1), "carol")).toBe(false);
    expect(s.groupMembers(gid(1))).toEqual(["alice", "bob"]);
    expect(s.commitsFrom(gid(1), 0, 10).map((c) => c.epoch)).toEqual([0]);
  });
});

/** A store whose #ops group (1) is at epoch 1 with alice and bob, both read once (so kept in memory). */
function opsWithBob(): MlsDeliveryStore {
  const s = mlsStore();
  s.createGroup(group(1, "#ops"));
  s.acceptCommit(gid(1), 0, "alice", Buffer.from("c0"), undefined, hint(["bob"]));
  expect(s.group(gid(1))?.epoch).toBe(1);
  expect(s.isGroupMember(gid(1), "bob")).toBe(true);
  return s;
}

/** The operator's `chat-relay users release bob`: another connection to the same file. */
function releaseBobElsewhere(): void {
  const operator = openStore(join(dir, "relay.db"));
  try {
    operator.bindUser(user("bob"));
    expect(operator.releaseUser("bob")).toBe(true);
  } finally {
    operator.close();
  }
}

/** The next turn of the event loop. */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("a write by another connection (the operator's `chat-relay users release` beside a live relay)", () => {
  it("is seen by the next turn's reads: a released name is no member any more", async () => {
    const s = opsWithBob();
    expect(s.cache.size.groups).toBe(1);
    releaseBobElsewhere();
    await nextTurn();
    expect(s.isGroupMember(gid(1), "bob")).toBe(false);
    expect(s.groupMembers(gid(1))).toEqual(["alice"]);
    expect(s.group(gid(1))?.epoch).toBe(1);
  });

  it("is seen inside a transaction even in the turn that last looked: a released name may not commit", () => {
    const s = opsWithBob();
    releaseBobElsewhere();
    // Same turn: outside a transaction the reads are as of the turn's first look (before the release)...
    expect(s.isGroupMember(gid(1), "bob")).toBe(true);
    // ...but the commit's transaction sees the file as it is.
    expect(s.acceptCommit(gid(1), 1, "bob", Buffer.from("b1"))).toEqual({ kind: "not-a-member" });
  });
});

describe("the memory of groups", () => {
  it("answers from memory once read: a row changed behind the store's back (no writer but the store may) is not seen", () => {
    const s = mlsStore();
    s.createGroup(group(1, "#ops"));
    s.group(gid(1));
    s.groupMembers(gid(1));
    expect(s.cache.size.groups).toBe(1);
    db.prepare("UPDATE mls_groups SET epoch = 9 WHERE group_id = ?").run(gid(1));
    db.prepare("INSERT INTO mls_group_members (group_id, username) VALUES (?, 'eve')").run(gid(1));
    expect(s.group(gid(1))?.epoch).toBe(0);
    expect(s.isGroupMember(gid(1), "eve")).toBe(false);
    // A store write to the group drops its entry: the rows are read again.
    s.setGroupInfo(gid(1), Buffer.from("gi"), 0);
    expect(s.group(gid(1))?.epoch).toBe(9);
    expect(s.isGroupMember(gid(1), "eve")).toBe(true);
  });

  it("keeps nothing for a group id that has no row", () => {
    const s = mlsStore();
    expect(s.group(gid(7))).toBeUndefined();
    expect(s.isGroupMember(gid(7), "alice")).toBe(false);
    expect(s.groupMembers(gid(7))).toEqual([]);
    expect(s.cache.size).toEqual({ groups: 0, bytes: 0 });
  });

  it("stays within its budget, least recently used out, and answers right for groups it dropped", () => {
    const budget = 8_000;
    const s = mlsStore(new MlsGroupCache(budget));
    for (let n = 1; n <= 40; n++) {
      expect(s.createGroup(group(n, `#r${n}`, 300))).toBe("created");
      s.acceptCommit(gid(n), 0, "alice", Buffer.from("c0"), undefined, hint([`u${n}`]));
    }
    for (let n = 1; n <= 40; n++) {
      expect(s.group(gid(n))?.groupInfo).toEqual(Buffer.alloc(300, n));
      expect(s.isGroupMember(gid(n), `u${n}`)).toBe(true);
      expect(s.cache.size.bytes).toBeLessThanOrEqual(budget);
    }
    const kept = s.cache.size.groups;
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThan(40);
    // The most recent are kept, the oldest went; both read right.
    expect(s.cache.group(gid(40))).toBeDefined();
    expect(s.cache.group(gid(1))).toBeUndefined();
    expect(s.groupMembers(gid(1))).toEqual(["alice", "u1"]);
    expect(s.group(gid(1))?.conversationId).toBe("#r1");
  });

  it("does not keep a group heavier than a quarter of its budget", () => {
    const s = mlsStore(new MlsGroupCache(4_000));
    s.createGroup(group(1, "#big", 1_500));
    expect(s.group(gid(1))?.groupInfo.length).toBe(1_500);
    expect(s.isGroupMember(gid(1), "alice")).toBe(true);
    expect(s.cache.size).toEqual({ groups: 0, bytes: 0 });
  });

  it("counts what a released name's member lists weighed out of the budget", () => {
    const s = mlsStore();
    s.createGroup(group(1, "#ops"));
    s.createGroup(group(2, "#dev"));
    s.acceptCommit(gid(1), 0, "alice", Buffer.from("c0"), undefined, hint(["bob"]));
    for (const n of [1, 2]) {
      s.group(gid(n));
      s.groupMembers(gid(n));
    }
    const before = s.cache.size.bytes;
    tx(() => s.dropMembershipsLocked("bob"));
    expect(s.cache.size.bytes).toBeLessThan(before);
    // The member list of #dev (no bob) is still kept; #ops's is read again.
    expect(s.cache.members(gid(2))?.sorted).toEqual(["alice"]);
    expect(s.cache.members(gid(1))).toBeUndefined();
    expect(s.groupMembers(gid(1))).toEqual(["alice"]);
  });
});
