// SyncPg (src/server/store/pg/sync-client.ts): PostgreSQL behind a synchronous call, against the
// run's real throwaway cluster (never a mock).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CONFLICT_RETRIES, PgError, SyncPg } from "../../src/server/store/pg/sync-client.js";
import { freshDatabase, type TestDatabase } from "../helpers/pg.js";

let db: TestDatabase;
let pg: SyncPg;

beforeAll(async () => {
  db = await freshDatabase();
  pg = new SyncPg({ url: db.url });
  pg.query("CREATE TABLE t (a int PRIMARY KEY, b bytea)");
});

afterAll(async () => {
  pg.close();
  await db.drop();
});

describe("SyncPg", () => {
  it("returns rows synchronously, int8 as numbers and bytea as Buffers", () => {
    const rows = pg.query<{ n: number; b: Buffer }>("SELECT 41::int8 + 1 AS n, $1::bytea AS b", [Buffer.from("hi")]);
    expect(rows).toEqual([{ n: 42, b: Buffer.from("hi") }]);
    expect(Buffer.isBuffer(rows[0]!.b)).toBe(true);
  });

  it("a transaction that throws stores nothing, and the error keeps its SQLSTATE", () => {
    let caught: unknown;
    try {
      pg.transaction(() => {
        pg.query("INSERT INTO t (a) VALUES (1)");
        pg.query("INSERT INTO t (a) VALUES (1)");
      });
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(PgError);
    expect((caught as PgError).code).toBe("23505");
    expect((caught as PgError).unreachable).toBe(false);
    expect(pg.query("SELECT count(*)::int AS n FROM t")).toEqual([{ n: 0 }]);
  });

  it("commits a transaction and runs a batch in order", () => {
    pg.transaction(() => pg.query("INSERT INTO t (a, b) VALUES (2, $1)", [Buffer.from([1, 2])]));
    const [ins, sel] = pg.batch([{ sql: "INSERT INTO t (a) VALUES (3)" }, { sql: "SELECT a FROM t ORDER BY a" }]);
    expect(ins).toEqual([]);
    expect(sel).toEqual([{ a: 2 }, { a: 3 }]);
  });

  it("a transaction's BEGIN goes with its first statements: a one-statement transaction is two round trips; one that ran none, zero", () => {
    pg.countCalls = true;
    try {
      const before = pg.stats.calls;
      pg.transaction(() => pg.query("INSERT INTO t (a) VALUES (10)"));
      expect(pg.stats.calls - before).toBe(2);
      expect(pg.transaction(() => 7)).toBe(7);
      expect(pg.stats.calls - before).toBe(2);
      // The BEGIN really opened a transaction: a failure after the first statement takes it back too.
      expect(() => pg.transaction(() => {
        pg.query("INSERT INTO t (a) VALUES (11)");
        pg.query("INSERT INTO t (a) VALUES (10)");
      })).toThrow(PgError);
      expect(pg.query("SELECT a FROM t WHERE a >= 10 ORDER BY a")).toEqual([{ a: 10 }]);
      // … and commits without waiting for the WAL flush only when asked to.
      pg.transaction(() => {
        expect(pg.query("SHOW synchronous_commit")).toEqual([{ synchronous_commit: "off" }]);
      }, { durable: false });
      pg.transaction(() => {
        expect(pg.query("SHOW synchronous_commit")).toEqual([{ synchronous_commit: "on" }]);
      });
      expect(pg.transactionOpen).toBe(false);
    } finally {
      pg.countCalls = false;
      pg.query("DELETE FROM t WHERE a >= 10");
    }
  });

  it("refuses reentrant transactions", () => {
    expect(() => pg.transaction(() => pg.transaction(() => 1))).toThrow(/not reentrant/);
    expect(pg.transactionOpen).toBe(false);
  });

  it("an unreachable database fails fast with an unreachable PgError", () => {
    const bad = new SyncPg({ url: "postgres://postgres@127.0.0.1:1/none", connectTimeoutMs: 500 });
    const t = performance.now();
    let caught: unknown;
    try {
      bad.query("SELECT 1");
    } catch (e) {
      caught = e;
    }
    bad.close();
    expect(caught).toBeInstanceOf(PgError);
    expect((caught as PgError).unreachable).toBe(true);
    expect(performance.now() - t).toBeLessThan(5_000);
  });

  it("rerun: a transaction PostgreSQL aborts as a deadlock victim runs again (a bounded number of times); without it the error is the caller's", () => {
    const deadlock = "DO $$ BEGIN RAISE EXCEPTION 'deadlock detected' USING ERRCODE = '40P01'; END $$";
    let runs = 0;
    const stored = pg.transaction(() => {
      runs++;
      pg.query("INSERT INTO t (a) VALUES (10)");
      if (runs === 1) pg.query(deadlock); // the first run's insert is rolled back with it
      return pg.query<{ a: number }>("SELECT a FROM t WHERE a = 10");
    }, { rerun: true });
    expect(runs).toBe(2);
    expect(stored).toEqual([{ a: 10 }]);
    expect(() => pg.transaction(() => pg.query(deadlock))).toThrow(/deadlock detected/);
    runs = 0;
    let caught: unknown;
    try {
      pg.transaction(() => {
        runs++;
        pg.query(deadlock);
      }, { rerun: true });
    } catch (e) {
      caught = e;
    }
    expect((caught as PgError).code).toBe("40P01");
    expect(runs).toBe(1 + CONFLICT_RETRIES);
    // Other failures are never run again.
    runs = 0;
    expect(() => pg.transaction(() => {
      runs++;
      pg.query("INSERT INTO t (a) VALUES (10)");
    }, { rerun: true })).toThrow(PgError);
    expect(runs).toBe(1);
    expect(pg.transactionOpen).toBe(false);
  });

  it("refuses a URL that is not postgres://", () => {
    expect(() => new SyncPg({ url: "mysql://x" })).toThrow(/postgres:\/\//);
  });
});

describe("SyncPg statements", () => {
  it("answers a text of several statements with the last one's rows", () => {
    expect(pg.query("CREATE TABLE IF NOT EXISTS m (a int); INSERT INTO m VALUES (7); SELECT a FROM m")).toEqual([{ a: 7 }]);
  });

  it("prepares a statement with parameters once per connection and gives the same answers on reuse", () => {
    for (let i = 0; i < 5; i++) expect(pg.query("SELECT $1::int + 1 AS n", [i])).toEqual([{ n: i + 1 }]);
    const prepared = pg.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_prepared_statements WHERE statement = 'SELECT $1::int + 1 AS n'");
    expect(prepared).toEqual([{ n: 1 }]);
  });
});
