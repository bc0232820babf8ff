// The PostgreSQL store with other relays' stores running at the same time (each in its own
// process: pg-store-children.ts): first key wins a name raced for by 16 stores, relays opening
// an empty database together migrate it once, and per address commit order is seq order (the
// queue_heads locks), so a delivery pump never skips a row that commits after a higher seq.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import pg from "pg";
import { migratePg, openPgStore, type PgRelayStore } from "../../src/server/store/pg/pg-store.js";
import { PG_SCHEMA_VERSION } from "../../src/server/store/pg/schema.js";
import { freshDatabase, type TestDatabase } from "../helpers/pg.js";
import { waitUntil } from "../helpers/wait.js";
import { killStoreChildren, startStoreChild } from "./pg-store-children.js";

const databases: TestDatabase[] = [];
const clients: pg.Client[] = [];

async function database(options: { readonly empty?: boolean } = {}): Promise<TestDatabase> {
  const db = await freshDatabase(undefined, options);
  databases.push(db);
  return db;
}

async function client(url: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  clients.push(c);
  return c;
}

/** Backends of this database waiting for a lock of one of these kinds. */
async function waiting(c: pg.Client, locktypes: readonly string[]): Promise<number> {
  const r = await c.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM pg_locks l WHERE NOT l.granted AND l.locktype = ANY($1)
     AND l.pid IN (SELECT pid FROM pg_stat_activity WHERE datname = current_database())`,
    [locktypes],
  );
  return r.rows[0]!.n;
}

let store: PgRelayStore | undefined;

afterEach(async () => {
  killStoreChildren();
  store?.close();
  store = undefined;
  for (const c of clients.splice(0)) await c.end().catch(() => undefined);
});

afterAll(async () => {
  for (const d of databases.splice(0)) await d.drop();
});

beforeAll(() => {
  expect(process.env["SECURECHAT_TEST_PG"]).toBeDefined();
});

describe("PostgreSQL store, many relays at once", () => {
  it("16 stores racing for one name: exactly one key wins, the others are told it is taken", async () => {
    const db = await database();
    migratePg(db.url);
    const children = await Promise.all(Array.from({ length: 16 }, (_, i) => startStoreChild(["bind", db.url, "alice", String(10 * (i + 1))])));
    // Line them up: the binding inserts wait behind a table lock, then all go at once.
    const gate = await client(db.url);
    const watch = await client(db.url);
    await gate.query("BEGIN");
    await gate.query("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE");
    for (const c of children) c.go();
    await waitUntil(async () => (await waiting(watch, ["relation"])) === 16, "16 binds waiting on the gate", 30_000);
    await gate.query("COMMIT");
    const kinds = (await Promise.all(children.map((c) => c.result()))).map((r) => r["kind"] ?? r["error"]);
    expect(kinds.filter((k) => k === "bound")).toHaveLength(1);
    expect(kinds.filter((k) => k === "taken")).toHaveLength(15);
    // The winner's key is the one bound.
    store = openPgStore(db.url);
    const winner = kinds.indexOf("bound");
    expect(store.getUser("alice")?.sigSpki.equals(Buffer.alloc(32, 10 * (winner + 1)))).toBe(true);
  });

  it("relays opening an empty database together migrate it once and share one relay id", async () => {
    const db = await database({ empty: true });
    const children = await Promise.all(Array.from({ length: 4 }, () => startStoreChild(["open", db.url])));
    for (const c of children) c.go();
    const results = await Promise.all(children.map((c) => c.result()));
    expect(results.map((r) => r["error"])).toEqual([undefined, undefined, undefined, undefined]);
    expect(results.filter((r) => r["from"] === 0)).toHaveLength(1);
    expect(results.filter((r) => r["from"] === PG_SCHEMA_VERSION)).toHaveLength(3);
    expect(new Set(results.map((r) => r["relayId"])).size).toBe(1);
  });

  it("per address, rows commit in seq order: a reader that saw seq N never later finds a row below N", async () => {
    const db = await database();
    migratePg(db.url);
    const admin = await client(db.url);
    // A test-only hook: a queue row stored at time 777 waits for advisory lock 4242 after its seq
    // was taken and before its transaction commits (the slow relay).
    await admin.query(`CREATE FUNCTION hold_marked() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.created_at_ms = 777 THEN PERFORM pg_advisory_xact_lock_shared(4242); END IF; RETURN NEW; END $$`);
    await admin.query("CREATE TRIGGER hold_marked BEFORE INSERT ON queue FOR EACH ROW EXECUTE FUNCTION hold_marked()");
    const holder = await client(db.url);
    await holder.query("SELECT pg_advisory_lock(4242)");

    const slow = await startStoreChild(["enqueue", db.url, "777", "alice", "bob"]);
    const fast = await startStoreChild(["enqueue", db.url, "1000", "carol", "bob"]);
    slow.go();
    await waitUntil(async () => (await waiting(admin, ["advisory"])) === 1, "the slow relay holding its seq");
    fast.go();
    // The fast relay either waits for bob's queue head (the lock) or, without it, commits at once.
    await waitUntil(async () => fast.done || (await waiting(admin, ["transactionid", "tuple"])) > 0, "the fast relay to block or commit");

    store = openPgStore(db.url);
    const seen = store.fetchQueue("bob", 0, 100, 1 << 20);
    const readUpTo = seen.reduce((m, q) => Math.max(m, q.seq), 0);
    await holder.query("SELECT pg_advisory_unlock(4242)");
    expect(await slow.result()).toEqual({ stored: true });
    expect(await fast.result()).toEqual({ stored: true });

    // The pump goes on after what it read: together it must have every row.
    const later = store.fetchQueue("bob", readUpTo, 100, 1 << 20);
    const all = store.fetchQueue("bob", 0, 100, 1 << 20);
    expect([...seen, ...later].map((q) => q.seq)).toEqual(all.map((q) => q.seq));
    expect(all.map((q) => q.relayTimeMs)).toEqual([777, 1000]);
  });

  it("two relays flooding the same queues: a reader following afterSeq gets every row, each once", async () => {
    const db = await database();
    migratePg(db.url);
    const writers = await Promise.all([
      startStoreChild(["flood", db.url, "alice", "300", "bob,carol"]),
      startStoreChild(["flood", db.url, "dave", "300", "carol,bob"]),
    ]);
    store = openPgStore(db.url);
    for (const w of writers) w.go();
    const got: number[] = [];
    let after = 0;
    const poll = (): void => {
      for (const q of store!.fetchQueue("bob", after, 1000, 1 << 24)) {
        got.push(q.seq);
        after = q.seq;
      }
    };
    while (!writers.every((w) => w.done)) {
      poll();
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    poll();
    expect((await Promise.all(writers.map((w) => w.result()))).map((r) => r["stored"])).toEqual([300, 300]);
    const all = store.fetchQueue("bob", 0, 1000, 1 << 24).map((q) => q.seq);
    expect(all).toHaveLength(600);
    expect(got).toEqual(all);
  });
  it("two relays claiming the same devices' KeyPackages at once: each one-time one is handed out once, then the last-resort one", async () => {
    const db = await database();
    migratePg(db.url);
    store = openPgStore(db.url);
    const kp = (address: string, i: number) => ({ ref: Buffer.from(`${address}#${i}`.padEnd(32, ".")), keyPackage: Buffer.from(`${address}#${i}`), notAfterMs: Date.now() + 3_600_000 });
    const published: string[] = [];
    for (const address of ["bob", "bob/tablet"]) {
      const oneTime = Array.from({ length: 20 }, (_, i) => kp(address, i));
      store.mls.publishKeyPackages("bob", oneTime, kp(address, 99), address);
      published.push(...oneTime.map((k) => k.keyPackage.toString("hex")));
    }
    // Made-up addresses beside them: nothing to claim there, and no effect on the others.
    const addresses = ["bob", "bob/tablet", ...Array.from({ length: 50 }, (_, i) => `ghost${i}`)].join(",");
    const claimers = await Promise.all([startStoreChild(["claim", db.url, "30", addresses]), startStoreChild(["claim", db.url, "30", addresses])]);
    for (const c of claimers) c.go();
    const results = await Promise.all(claimers.map((c) => c.result())) as Array<{ oneTime: string[]; lastResort: number }>;
    const handed = results.flatMap((r) => r.oneTime);
    expect(new Set(handed).size).toBe(handed.length);
    expect([...handed].sort()).toEqual([...published].sort());
    // 2 x 30 claims of each of the 2 devices: 40 one-time ones, every other answer the last-resort one.
    expect(results.reduce((n, r) => n + r.lastResort, 0)).toBe(2 * 2 * 30 - 40);
  });

  it("enqueues, acks and the purge of idle queue heads at once: a reader following afterSeq gets every row, each once", async () => {
    const db = await database();
    migratePg(db.url);
    const writers = await Promise.all([
      startStoreChild(["flood", db.url, "alice", "300", "bob,carol"]),
      startStoreChild(["flood", db.url, "dave", "300", "carol,bob"]),
      // Deletes bob's and carol's heads whenever their queues are empty (the reader acks at once).
      startStoreChild(["purge", db.url, "400"]),
    ]);
    store = openPgStore(db.url);
    for (const w of writers) w.go();
    const got: number[] = [];
    let after = 0;
    const poll = (): void => {
      const page = store!.fetchQueue("bob", after, 1000, 1 << 24);
      for (const q of page) {
        got.push(q.seq);
        after = q.seq;
      }
      store!.ack("bob", page.map((q) => q.seq));
    };
    while (!writers.every((w) => w.done)) {
      poll();
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    poll();
    expect((await Promise.all(writers.map((w) => w.result()))).map((r) => r["stored"] ?? r["purged"])).toEqual([300, 300, 400]);
    expect(got).toHaveLength(600);
    expect(new Set(got).size).toBe(600);
    expect(got).toEqual([...got].sort((a, b) => a - b));
    expect(store.fetchQueue("bob", 0, 1000, 1 << 24)).toEqual([]);
  });
});
