// The PostgreSQL store's round trips on the relay's hot paths (issue 15): each one blocks the
// relay's thread on the worker (sync-client.ts), so the reads a SendMls makes are merged and a
// repeated question within one turn of the event loop is not asked twice. Counted with SyncPg's
// own counter; what the answers must stay (fresh after a write, the next turn reading again) is
// checked beside each count. The cost in time is the benchmark's (`npm run bench -- --only cluster`).
import { randomBytes } from "node:crypto";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { MlsStore } from "../../src/server/store.js";
import { PgMlsStore } from "../../src/server/store/pg/mls.js";
import { openPgStore, type PgRelayStore } from "../../src/server/store/pg/pg-store.js";
import { PgQueues } from "../../src/server/store/pg/queues.js";
import { SyncPg } from "../../src/server/store/pg/sync-client.js";
import { freshDatabase, type TestDatabase } from "../helpers/pg.js";
import { req } from "../helpers/store-records.js";

let db: TestDatabase;
const opened: Array<{ close(): void }> = [];

/** A connection of its own on the test's (migrated) database, counting its round trips, with the queue and MLS parts over it. */
function parts(): { readonly pg: SyncPg; readonly queues: PgQueues; readonly mls: PgMlsStore } {
  const pg = new SyncPg({ url: db.url });
  opened.push(pg);
  pg.countCalls = true;
  const queues = new PgQueues({ db: pg, clock: Date.now }, 1 << 20);
  return { pg, queues, mls: new PgMlsStore({ db: pg, clock: Date.now }, queues) };
}

/** A whole store (pg-store.ts) with its connection's round trips counted. */
function store(): { readonly pg: SyncPg; readonly s: PgRelayStore } {
  const s = openPgStore(db.url);
  opened.push(s);
  const pg = (s as unknown as { readonly db: SyncPg }).db;
  pg.countCalls = true;
  return { pg, s };
}

/** What a SendMls asks the store, in admitMls's order (session.ts, mls-ds.ts): the round trips it cost. */
function sendMlsReads(pg: SyncPg, s: PgRelayStore, groupId: Buffer, sender: string): { readonly calls: number; readonly epoch: number | undefined; readonly member: boolean; readonly members: string[] } {
  const before = pg.stats.calls;
  const id = randomBytes(16);
  expect(s.wasAccepted(sender, id)).toBe(false);
  const epoch = s.mls.group(groupId)?.epoch;
  const member = s.mls.isGroupMember(groupId, sender);
  expect(s.wasAccepted(sender, id)).toBe(false);
  const members = s.mls.groupMembers(groupId);
  return { calls: pg.stats.calls - before, epoch, member, members };
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function makeGroup(mls: MlsStore, members: readonly string[]): Buffer {
  const groupId = randomBytes(20);
  expect(mls.createGroup({ groupId, conversationId: `#r${groupId.toString("hex").slice(0, 8)}`, creator: "alice", epoch: 0, groupInfo: Buffer.from("gi"), groupInfoEpoch: 0 })).toBe("created");
  expect(mls.acceptCommit(groupId, 0, "alice", randomBytes(8), undefined, { external: false, added: [...members], removed: [] }).kind).toBe("accepted");
  return groupId;
}

beforeEach(async () => {
  db = await freshDatabase(undefined, { empty: true });
  openPgStore(db.url).close(); // migrates
});

afterEach(async () => {
  for (const s of opened.splice(0)) s.close();
  await db.drop();
});

describe("a SendMls's group reads (admitMls: group, membership, members)", () => {
  it("are one round trip, the answers those of separate reads", () => {
    const { pg, mls } = parts();
    const groupId = makeGroup(mls, ["bob", "Zed", "_x"]);
    const before = pg.stats.calls;
    const g = mls.group(groupId);
    expect(g?.epoch).toBe(1);
    expect(mls.isGroupMember(groupId, "bob")).toBe(true);
    expect(mls.isGroupMember(groupId, "carol")).toBe(false);
    expect(mls.groupMembers(groupId)).toEqual(["Zed", "_x", "alice", "bob"]); // by bytes, as the embedded store
    expect(pg.stats.calls - before).toBe(1);
    // Another group's question is not answered from this one's read.
    const other = makeGroup(mls, ["dave"]);
    mls.group(groupId);
    expect(mls.groupMembers(other)).toEqual(["alice", "dave"]);
  });

  it("read again after any other database call of the relay (its own writes included)", () => {
    const { pg, mls } = parts();
    const groupId = makeGroup(mls, ["bob"]);
    mls.group(groupId);
    expect(mls.acceptCommit(groupId, 1, "alice", randomBytes(8), undefined, { external: false, added: [], removed: ["bob"] }).kind).toBe("accepted");
    const before = pg.stats.calls;
    expect(mls.isGroupMember(groupId, "bob")).toBe(false);
    expect(mls.groupMembers(groupId)).toEqual(["alice"]);
    expect(pg.stats.calls - before).toBe(2);
  });

  it("read again in the next microtask: the snapshot never outlives the synchronous run that took it", async () => {
    const { pg, mls } = parts();
    const groupId = makeGroup(mls, ["bob"]);
    mls.group(groupId);
    await Promise.resolve();
    const before = pg.stats.calls;
    expect(mls.isGroupMember(groupId, "bob")).toBe(true);
    expect(pg.stats.calls - before).toBe(1);
  });

  it("an unknown group: undefined, and no member", () => {
    const { mls } = parts();
    const unknown = randomBytes(20);
    expect(mls.group(unknown)).toBeUndefined();
    expect(mls.isGroupMember(unknown, "alice")).toBe(false);
    expect(mls.groupMembers(unknown)).toEqual([]);
  });
});

describe("wasAccepted", () => {
  it("asked twice in one turn of the event loop (the session, then admitMls) costs one round trip", () => {
    const { pg, queues } = parts();
    const id = randomBytes(16);
    const before = pg.stats.calls;
    expect(queues.wasAccepted("alice", id)).toBe(false);
    expect(queues.wasAccepted("alice", id)).toBe(false);
    expect(pg.stats.calls - before).toBe(1);
  });

  it("is true after this relay stored the message, in the same turn", () => {
    const { queues } = parts();
    const r = req("alice", ["bob"]);
    expect(queues.wasAccepted("alice", r.messageId as Buffer)).toBe(false);
    expect(queues.enqueueBatch([r])).toEqual(["stored"]);
    expect(queues.wasAccepted("alice", r.messageId as Buffer)).toBe(true);
  });

  it("asks the database again in the next turn: another relay's acceptance is seen", async () => {
    const a = parts();
    const b = parts();
    const r = req("alice", ["bob"]);
    expect(a.queues.wasAccepted("alice", r.messageId as Buffer)).toBe(false);
    expect(b.queues.enqueueBatch([r])).toEqual(["stored"]);
    await nextTurn();
    expect(a.queues.wasAccepted("alice", r.messageId as Buffer)).toBe(true);
    // And a stale "no" within the turn only lets the resend reach the commit, which finds it a duplicate.
    expect(a.queues.enqueueBatch([r])).toEqual(["duplicate"]);
  });
});

describe("a SendMls's reads on the whole store", () => {
  it("cost one round trip once the sender's group is known: its group is read along with wasAccepted", () => {
    const { pg, s } = store();
    const groupId = makeGroup(s.mls, ["bob"]);
    expect(sendMlsReads(pg, s, groupId, "bob")).toEqual({ calls: 2, epoch: 1, member: true, members: ["alice", "bob"] });
    expect(sendMlsReads(pg, s, groupId, "bob")).toEqual({ calls: 1, epoch: 1, member: true, members: ["alice", "bob"] });
    // Another group than the one read along: asked for, and answered right.
    const other = makeGroup(s.mls, ["bob", "carol"]);
    expect(sendMlsReads(pg, s, other, "bob")).toEqual({ calls: 2, epoch: 1, member: true, members: ["alice", "bob", "carol"] });
    expect(sendMlsReads(pg, s, other, "bob").calls).toBe(1);
    // A group that is gone.
    const gone = randomBytes(20);
    expect(sendMlsReads(pg, s, gone, "bob")).toEqual({ calls: 2, epoch: undefined, member: false, members: [] });
    expect(sendMlsReads(pg, s, gone, "bob")).toEqual({ calls: 1, epoch: undefined, member: false, members: [] });
  });

  it("the group read along is read again after the relay's own write", () => {
    const { s } = store();
    const groupId = makeGroup(s.mls, ["bob"]);
    expect(s.mls.isGroupMember(groupId, "bob")).toBe(true); // bob's group is now known
    expect(s.wasAccepted("bob", randomBytes(16))).toBe(false);
    expect(s.mls.acceptCommit(groupId, 1, "alice", randomBytes(8), undefined, { external: false, added: [], removed: ["bob"] }).kind).toBe("accepted");
    expect(s.mls.group(groupId)?.epoch).toBe(2);
    expect(s.mls.isGroupMember(groupId, "bob")).toBe(false);
  });

  it("the group read along does not outlive the callback it was read in: the next one sees another relay's commit", async () => {
    const a = store();
    const b = store();
    const groupId = makeGroup(a.s.mls, ["bob"]);
    expect(a.s.mls.isGroupMember(groupId, "bob")).toBe(true);
    expect(a.s.wasAccepted("bob", randomBytes(16))).toBe(false);
    expect(b.s.mls.acceptCommit(groupId, 1, "alice", randomBytes(8), undefined, { external: false, added: [], removed: ["bob"] }).kind).toBe("accepted");
    await nextTurn();
    expect(a.s.mls.group(groupId)?.epoch).toBe(2);
    expect(a.s.mls.isGroupMember(groupId, "bob")).toBe(false);
  });
});

describe("the pumps a commit wakes (fetchQueue)", () => {
  const BIG = 1 << 20;
  const members = ["b1", "b2", "b3", "b4"];

  /** A relay whose pumps for `members` have each asked once (their queues empty): their next ask is known. */
  function primed(): ReturnType<typeof parts> {
    const p = parts();
    for (const m of members) expect(p.queues.fetchQueue(m, 0, 10, BIG)).toEqual([]);
    return p;
  }

  it("ask in one round trip in all, each answered as by its own read", () => {
    const { pg, queues } = primed();
    const one = req("alice", members);
    const two = req("alice", ["b1", "b2"]);
    expect(queues.enqueueBatch([one, two])).toEqual(["stored", "stored"]);
    const before = pg.stats.calls;
    const pages = members.map((m) => queues.fetchQueue(m, 0, 10, BIG));
    expect(pg.stats.calls - before).toBe(1);
    const envelopes = pages.map((items) => items.map((i) => Buffer.from(i.envelope).toString("hex")));
    const hex = (r: typeof one): string => Buffer.from(r.envelope).toString("hex");
    expect(envelopes).toEqual([[hex(one), hex(two)], [hex(one), hex(two)], [hex(one)], [hex(one)]]);
    // The same as another relay reads them.
    const other = parts();
    for (const [i, m] of members.entries()) expect(other.queues.fetchQueue(m, 0, 10, BIG).map((x) => x.seq)).toEqual(pages[i]!.map((x) => x.seq));
  });

  it("apply each ask's own count and byte budget, as FETCH does", () => {
    const { pg, queues } = primed();
    const reqs = [0, 1, 2].map(() => req("alice", members, 100));
    expect(queues.enqueueBatch(reqs)).toEqual(["stored", "stored", "stored"]);
    const before = pg.stats.calls;
    expect(queues.fetchQueue("b1", 0, 10, BIG)).toHaveLength(3);
    expect(queues.fetchQueue("b2", 0, 2, BIG)).toHaveLength(2); // fewer rows than read
    expect(queues.fetchQueue("b3", 0, 10, 150)).toHaveLength(1); // the second would pass 150 bytes
    expect(queues.fetchQueue("b4", 0, 10, 0)).toHaveLength(1); // the first one always
    expect(pg.stats.calls - before).toBe(1);
  });

  it("an ask that is not the expected one reads on its own, and is answered right", () => {
    const { pg, queues } = primed();
    const reqs = [0, 1, 2].map(() => req("alice", members, 100));
    expect(queues.enqueueBatch(reqs)).toEqual(["stored", "stored", "stored"]);
    const first = queues.fetchQueue("b1", 0, 2, BIG); // reads ahead at most 2 rows each
    expect(first).toHaveLength(2);
    const before = pg.stats.calls;
    const b2 = queues.fetchQueue("b2", first[0]!.seq, 10, BIG).map((i) => i.seq); // after another seq than its last ask's
    expect(queues.fetchQueue("b3", 0, 3, BIG)).toHaveLength(3); // more rows than were read ahead
    expect(pg.stats.calls - before).toBe(2);
    expect(b2).toEqual(parts().queues.fetchQueue("b2", first[0]!.seq, 10, BIG).map((i) => i.seq));
    expect(b2).toHaveLength(3);
  });

  it("read again after the relay's own write, and in the next microtask (another relay's rows seen)", async () => {
    const a = primed();
    const b = parts();
    expect(a.queues.enqueueBatch([req("alice", members)])).toEqual(["stored"]);
    const [row] = a.queues.fetchQueue("b1", 0, 10, BIG);
    expect(a.queues.ackBatch([{ recipient: "b2", seqs: [row!.seq + 1] }])).toBe(1); // b2's row
    expect(a.queues.fetchQueue("b2", 0, 10, BIG)).toEqual([]);
    expect(b.queues.enqueueBatch([req("carol", ["b3"])])).toEqual(["stored"]);
    await Promise.resolve();
    expect(a.queues.fetchQueue("b3", 0, 10, BIG)).toHaveLength(2);
  });
});
