// The PostgreSQL store (src/server/store/pg/) where it differs from the embedded one or where
// several relays share a database (behaviour common to both is in test/store-contract/): the
// schema's migration and version checks, the relay id shared by every relay of a database,
// duplicates and queue usage across store instances, an all-or-nothing batch, envelope bytes read
// back from the database, orphaned envelopes purged, acks committed without the WAL wait, and
// the queue writer the MLS store uses inside its own transaction.
import { randomBytes } from "node:crypto";
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";
import pg from "pg";
import { nullLogger } from "../../src/protocol/log.js";
import { GroupCommitter } from "../../src/server/group-commit.js";
import { migratePg, openPgStore, type PgRelayStore } from "../../src/server/store/pg/pg-store.js";
import { PgQueues } from "../../src/server/store/pg/queues.js";
import { PG_SCHEMA_VERSION } from "../../src/server/store/pg/schema.js";
import { PgError, SyncPg } from "../../src/server/store/pg/sync-client.js";
import { freshDatabase, pgQuery, type TestDatabase } from "../helpers/pg.js";
import { hex, req, user } from "../helpers/store-records.js";
import { waitUntil } from "../helpers/wait.js";

let db: TestDatabase;
const opened: Array<{ close(): void }> = [];

function open(options: Parameters<typeof openPgStore>[1] = {}): PgRelayStore {
  const s = openPgStore(db.url, options);
  opened.push(s);
  return s;
}

async function sql<R extends pg.QueryResultRow>(text: string, params: unknown[] = []): Promise<R[]> {
  return (await pgQuery<R>(db.url, text, params)).rows;
}

beforeEach(async () => {
  db = await freshDatabase(undefined, { empty: true }); // these tests migrate it themselves
});

afterEach(async () => {
  for (const s of opened.splice(0)) s.close();
  await db.drop();
});

afterAll(() => {
  expect(opened).toEqual([]);
});

describe("schema", () => {
  it("migrates an empty database once; later opens find it current", () => {
    expect(migratePg(db.url)).toEqual({ from: 0, to: PG_SCHEMA_VERSION });
    expect(migratePg(db.url)).toEqual({ from: PG_SCHEMA_VERSION, to: PG_SCHEMA_VERSION });
    expect(open().migrate).toEqual({ from: PG_SCHEMA_VERSION, to: PG_SCHEMA_VERSION });
  });

  it("opening an empty database migrates it", async () => {
    expect(open().migrate).toEqual({ from: 0, to: PG_SCHEMA_VERSION });
    const tables = (await sql<{ t: string }>("SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")).map((r) => r.t);
    expect(tables).toEqual(expect.arrayContaining(["accepted", "envelopes", "meta", "queue", "queue_heads", "room_members", "rooms", "users", "mls_commits", "device_lists"]));
  });

  it("refuses a database newer than this relay, with one sentence, and leaves it alone", async () => {
    migratePg(db.url);
    await sql("UPDATE meta SET value = $1 WHERE key = 'schema_version'", [Buffer.from(String(PG_SCHEMA_VERSION + 1))]);
    expect(() => openPgStore(db.url)).toThrow(new RegExp(`^this relay is older than its database \\(schema version ${PG_SCHEMA_VERSION + 1}, this relay knows up to ${PG_SCHEMA_VERSION}\\): upgrade chat-relay$`));
    expect(() => migratePg(db.url)).toThrow(/upgrade chat-relay/);
    expect((await sql<{ v: Buffer }>("SELECT value AS v FROM meta WHERE key = 'schema_version'"))[0]!.v.toString()).toBe(String(PG_SCHEMA_VERSION + 1));
  });

  it("migration 3: each group gains who made its current epoch, from its newest kept commit (PROTOCOL.md §8.2)", async () => {
    const gid = (n: number) => Buffer.alloc(20, n);
    const group = (n: number, room: string) => ({ groupId: gid(n), conversationId: room, creator: "alice", epoch: 0, groupInfo: Buffer.from("gi"), groupInfoEpoch: 0 });
    const s = open();
    s.mls.createGroup(group(1, "#ops"));
    s.mls.createGroup(group(2, "#dev"));
    expect(s.mls.acceptCommit(gid(1), 0, "alice", Buffer.from("a0"), undefined, { external: false, added: ["bob"], removed: [] }).kind).toBe("accepted");
    expect(s.mls.acceptCommit(gid(1), 1, "bob", Buffer.from("b1")).kind).toBe("accepted");
    expect(s.mls.acceptCommit(gid(2), 0, "carol", Buffer.from("c0"), undefined, { external: true, added: [], removed: [] }).kind).toBe("accepted");
    s.close();
    opened.splice(opened.indexOf(s), 1);
    // The database as version 2 left it: no column; #dev's newest commit already trimmed.
    await sql("ALTER TABLE mls_groups DROP COLUMN last_committer");
    await sql("DELETE FROM mls_commits WHERE sender = 'carol'");
    await sql("UPDATE meta SET value = $1 WHERE key = 'schema_version'", [Buffer.from("2")]);
    const t = open();
    expect(t.migrate).toEqual({ from: 2, to: PG_SCHEMA_VERSION });
    expect(t.mls.epochCommitter(gid(1))).toBe("bob");
    expect(t.mls.epochCommitter(gid(2))).toBeUndefined();
    expect(t.mls.acceptCommit(gid(1), 2, "alice", Buffer.from("a2")).kind).toBe("accepted");
    expect(t.mls.epochCommitter(gid(1))).toBe("alice");
  });

  it("fails fast with an unreachable PgError when the database cannot be reached", () => {
    const t = performance.now();
    let caught: unknown;
    try {
      openPgStore("postgres://postgres@127.0.0.1:1/none");
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(PgError);
    expect((caught as PgError).unreachable).toBe(true);
    expect(performance.now() - t).toBeLessThan(5_000);
  });

  it("every relay of a database has the same relay id, across reopenings", () => {
    const a = open();
    const b = open();
    expect(a.relayId).toHaveLength(16);
    expect(b.relayId.equals(a.relayId)).toBe(true);
    a.close();
    expect(open().relayId.equals(b.relayId)).toBe(true);
  });
});

describe("several store instances on one database", () => {
  it("a resend through another relay is a duplicate", () => {
    const a = open();
    const b = open();
    const r = req("alice", ["bob"]);
    expect(a.enqueue(r)).toBe(true);
    expect(b.wasAccepted("alice", r.messageId as Buffer)).toBe(true);
    expect(b.enqueueBatch([r, req("alice", ["bob"])])).toEqual(["duplicate", "stored"]);
    expect(a.queueDepth("bob")).toBe(2);
  });

  it("queue usage follows the other relays' enqueues and acks within a second", async () => {
    const a = open();
    const b = open();
    expect(a.queueUsage("bob", "alice")).toEqual({ count: 0, bytes: 0, senderCount: 0, senderBytes: 0 });
    b.enqueueBatch([req("alice", ["bob"], 40), req("carol", ["bob"], 60)]);
    await waitUntil(() => a.queueDepth("bob") === 2, "relay a to see relay b's rows", 3_000);
    expect(a.queueUsage("bob", "alice")).toEqual({ count: 2, bytes: 100, senderCount: 1, senderBytes: 40 });
    const seqs = a.fetchQueue("bob", 0, 10, 1 << 20).map((q) => q.seq);
    expect(a.ack("bob", seqs)).toBe(2);
    await waitUntil(() => b.queueDepth("bob") === 0, "relay b to see relay a's acks", 3_000);
  });

  it("a name released through another relay and bound again starts with no cached usage", () => {
    const a = open();
    expect(a.bindUser(user("bob", 10)).kind).toBe("bound");
    a.enqueue(req("alice", ["bob"], 80));
    expect(a.queueUsage("bob", "alice").count).toBe(1);
    expect(open().releaseUser("bob")).toBe(true);
    expect(a.bindUser(user("bob", 30)).kind).toBe("bound");
    expect(a.queueUsage("bob", "alice")).toEqual({ count: 0, bytes: 0, senderCount: 0, senderBytes: 0 });
  });

  it("reads what no longer fits in memory from the database; another relay reads the same bytes in the same order", () => {
    const small = open({ recentEnvelopeBytes: 2500 });
    const reqs = Array.from({ length: 6 }, () => req("alice", ["bob"], 1000));
    for (const r of reqs) small.enqueueBatch([r]);
    const want = reqs.map((r) => hex(r.envelope));
    const bytes = (s: PgRelayStore) => s.fetchQueue("bob", 0, 100, 1 << 24).map((q) => hex(q.envelope));
    expect(bytes(small)).toEqual(want);
    expect(bytes(open())).toEqual(want);
  });
});

describe("transactions", () => {
  it("the group committer stores a turn's envelopes in one transaction over it, in order, each id once", async () => {
    const s = open();
    const woken: Array<Record<string, number>> = [];
    const c = new GroupCommitter({ store: s, logger: nullLogger, mode: "group", onCommitted: (rows) => woken.push(Object.fromEntries(rows)) });
    const id = randomBytes(16);
    const reqs = [req("alice", ["bob", "carol"], 100, id), req("carol", ["bob"]), req("alice", ["bob"], 100, id)];
    expect(await Promise.all(reqs.map((r) => c.submit(r)))).toEqual(reqs.map(() => ({ ok: true, duplicate: false })));
    expect(c.stats).toMatchObject({ commits: 1, failedCommits: 0 });
    expect(woken).toEqual([{ bob: 2, carol: 1 }]);
    expect(s.fetchQueue("bob", 0, 10, 1 << 20).map((q) => hex(q.envelope))).toEqual([hex(reqs[0]!.envelope), hex(reqs[1]!.envelope)]);
    expect(await c.submit(req("alice", ["bob"], 100, id))).toEqual({ ok: true, duplicate: true });
    c.close();
  });


  it("a batch that fails stores nothing of it, and the store goes on", () => {
    const s = open();
    const good = req("alice", ["bob"]);
    // PostgreSQL text cannot hold NUL: the whole batch fails inside its one transaction.
    const bad = { ...req("carol", ["bob"]), conversationId: "lob\u0000by" };
    expect(() => s.enqueueBatch([good, bad])).toThrow(PgError);
    expect(s.wasAccepted("alice", good.messageId as Buffer)).toBe(false);
    expect(s.queueDepth("bob")).toBe(0);
    expect(s.lastSeq()).toBeGreaterThanOrEqual(0);
    expect(s.enqueueBatch([good])).toEqual(["stored"]);
    expect(s.fetchQueue("bob", 0, 10, 1 << 20).map((q) => hex(q.envelope))).toEqual([hex(good.envelope)]);
  });

  it("acks commit without waiting for the WAL flush; envelopes and acks inside a batch wait for it", async () => {
    const s = open();
    await sql(`CREATE TABLE commit_mode (mode text);
      CREATE FUNCTION note_mode() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN INSERT INTO commit_mode VALUES (TG_OP || ' ' || current_setting('synchronous_commit')); RETURN NULL; END $$;
      CREATE TRIGGER note_mode AFTER INSERT OR DELETE ON queue FOR EACH ROW EXECUTE FUNCTION note_mode()`);
    s.enqueue(req("alice", ["bob"]));
    const [q] = s.fetchQueue("bob", 0, 10, 1 << 20);
    expect(s.ackBatch([{ recipient: "bob", seqs: [q!.seq] }])).toBe(1);
    s.enqueue(req("alice", ["bob"]));
    const [q2] = s.fetchQueue("bob", 0, 10, 1 << 20);
    s.enqueueBatch([req("alice", ["carol"])], [{ recipient: "bob", seqs: [q2!.seq] }]);
    expect((await sql<{ mode: string }>("SELECT mode FROM commit_mode")).map((r) => r.mode))
      .toEqual(["INSERT on", "DELETE off", "INSERT on", "INSERT on", "DELETE on"]);
  });

  it("the purge removes envelopes whose last rows two racing acks both left behind", async () => {
    const s = open();
    s.enqueue(req("alice", ["bob", "carol"]));
    s.enqueue(req("alice", ["bob"]));
    // What two acks racing for an envelope's last two rows leave: the rows gone, the envelope not.
    await sql("DELETE FROM queue WHERE recipient IN ('bob', 'carol') AND envelope_id = (SELECT min(id) FROM envelopes)");
    expect(s.purgeOlderThan(0)).toEqual({ queueRows: 0, envelopes: 1, acceptedIds: 0 });
    expect((await sql<{ n: number }>("SELECT count(*)::int AS n FROM envelopes"))[0]!.n).toBe(1);
    expect(s.fetchQueue("bob", 0, 10, 1 << 20)).toHaveLength(1);
  });

  it("the queue writer stores inside the caller's transaction only: rolled back with it, committed with it", () => {
    const s = open();
    const conn = new SyncPg({ url: db.url });
    opened.push(conn);
    const writer = new PgQueues({ db: conn, clock: () => 5 }, 1 << 20);
    expect(() => writer.enqueueInside([req("alice", ["bob"])])).toThrow(/only inside db\.transaction/);
    const lost = req("alice", ["bob"]);
    expect(() => conn.transaction(() => {
      expect(writer.enqueueInside([lost])).toEqual(["stored"]);
      throw new Error("the commit was refused");
    })).toThrow(/refused/);
    expect(s.wasAccepted("alice", lost.messageId as Buffer)).toBe(false);
    const kept = req("alice", ["bob", "carol"]);
    expect(conn.transaction(() => writer.enqueueInside([kept, kept]))).toEqual(["stored", "duplicate"]);
    expect(s.fetchQueue("carol", 0, 10, 1 << 20).map((q) => [hex(q.envelope), q.relayTimeMs])).toEqual([[hex(kept.envelope), 5]]);
    expect(writer.queueDepth("bob")).toBe(1);
  });

  it("a room's usage checks cost one query a second, not one per member, and see other relays' rows", () => {
    const other = open();
    let queries = 0;
    class Counting extends SyncPg {
      override query<R extends Record<string, unknown>>(text: string, params: readonly unknown[] = []): R[] {
        queries++;
        return super.query<R>(text, params);
      }
    }
    const conn = new Counting({ url: db.url });
    opened.push(conn);
    let now = 0;
    const queues = new PgQueues({ db: conn, clock: () => 5 }, 1 << 20, () => now);
    const members = Array.from({ length: 50 }, (_, i) => `m${String(i).padStart(2, "0")}`);
    other.enqueue(req("alice", members, 10));
    const depths = () => members.map((m) => queues.queueDepth(m));
    expect(depths()).toEqual(members.map(() => 1)); // cold: one read each
    expect(queries).toBe(50);
    now = 600;
    expect(depths()).toEqual(members.map(() => 1)); // fresh: no reads
    expect(queries).toBe(50);
    other.enqueue(req("carol", members, 10));
    now = 1100;
    expect(depths()).toEqual(members.map(() => 2)); // stale: the first read refreshes them all
    expect(queries).toBe(51);
    expect(queues.queueUsage("m07", "carol")).toEqual({ count: 2, bytes: 20, senderCount: 1, senderBytes: 10 });
  });

  it("a new device list drops the dropped devices' queues in its transaction; an older version changes nothing", () => {
    const s = open();
    s.enqueue(req("alice", ["bob", "bob/d1", "bob/d2"]));
    const change = { username: "bob", version: 2, list: Buffer.from("list v2"), dropped: [{ address: "bob/d1", deviceId: "d1" }], keyPackagesOf: [] };
    expect(s.replaceDeviceList(change)).toBe(true);
    expect([s.queueDepth("bob"), s.queueDepth("bob/d1"), s.queueDepth("bob/d2")]).toEqual([1, 0, 1]);
    expect(s.replaceDeviceList({ ...change, version: 1, dropped: [{ address: "bob/d2", deviceId: "d2" }] })).toBe(false);
    expect(s.queueDepth("bob/d2")).toBe(1);
  });
});
