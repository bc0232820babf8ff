// PostgreSQL breaks a lock cycle between two transactions by aborting one of them (SQLSTATE
// 40P01). Between relays on one database this is real: a group-commit ack batch deletes queue
// rows in the order its sessions acked them, while releasing a name (`chat-relay users release`,
// or another relay) deletes the same user's rows in table order. The aborted transaction changed
// nothing, so the store runs it again (store/pg/sync-client.ts CONFLICT_RETRIES) instead of
// failing the acks or the release. Here the cycle is made on purpose, with two stores in their
// own processes (pg-store-children.ts) and a third connection as the gate that lines them up.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import pg from "pg";
import { openPgStore } from "../../src/server/store/pg/pg-store.js";
import { freshDatabase, type TestDatabase } from "../helpers/pg.js";
import { waitUntil } from "../helpers/wait.js";
import { killStoreChildren, startStoreChild } from "./pg-store-children.js";

const databases: TestDatabase[] = [];
const clients: pg.Client[] = [];

async function client(url: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  clients.push(c);
  return c;
}

/** Sessions of this database waiting for a lock (a row held by another transaction). */
async function lockWaits(c: pg.Client): Promise<number> {
  const r = await c.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'");
  return r.rows[0]!.n;
}

afterEach(async () => {
  killStoreChildren();
  for (const c of clients.splice(0)) await c.end().catch(() => undefined);
});

afterAll(async () => {
  for (const d of databases.splice(0)) await d.drop();
});

beforeAll(() => {
  expect(process.env["SECURECHAT_TEST_PG"]).toBeDefined();
});

describe("PostgreSQL store, a deadlock between relays", () => {
  it("an ack batch and a release deleting the same rows in opposite orders: the victim runs again, both succeed", async () => {
    const db = await freshDatabase();
    databases.push(db);
    const admin = await client(db.url);
    // Stores opened after this detect the cycle after 50 ms instead of 1 s. The plans are pinned
    // to the ones an unanalysed database gets (the ack batch follows its array of acks through
    // the primary key, the release reads the table in order): with statistics the planner may
    // pick others for three rows, and the order of the row locks is what this test is about.
    await admin.query(`ALTER DATABASE ${db.name} SET deadlock_timeout = '50ms'`);
    for (const off of ["enable_seqscan", "enable_bitmapscan", "enable_hashjoin", "enable_mergejoin"]) {
      await admin.query(`ALTER DATABASE ${db.name} SET ${off} = off`);
    }
    // u's queue: r1 and r2 for its primary device, r3 for its linked device u/d1 (seq order = table order).
    const store = openPgStore(db.url);
    let seqs: number[];
    try {
      const key = (n: number) => Buffer.alloc(32, n);
      expect(store.bindUser({ username: "u", sigSpki: key(1), encSpki: key(2), encKeySig: key(3), sigFpr: key(4), encFpr: key(5) }).kind).toBe("bound");
      for (const [i, to] of ["u", "u", "u/d1"].entries()) {
        expect(store.enqueue({ sender: "x", messageId: Buffer.from(`m${i}`.padEnd(16, ".")), conversationId: "lobby", envelope: Buffer.alloc(10, i), recipients: [to] })).toBe(true);
      }
      seqs = [...store.fetchQueue("u", 0, 10, 1 << 20), ...store.fetchQueue("u/d1", 0, 10, 1 << 20)].map((q) => q.seq);
    } finally {
      store.close();
    }
    expect(seqs).toHaveLength(3);
    const [r1, r2, r3] = seqs as [number, number, number];
    // The ack batch deletes r3 then r1 (u/d1's session acked first); the release deletes r1, r2, r3.
    const acker = await startStoreChild(["ack", db.url, `u/d1:${r3},u:${r1}`]);
    const releaser = await startStoreChild(["release", db.url, "u"]);
    // The gate holds r2: the release deletes r1 and waits there.
    const gate = await client(db.url);
    await gate.query("BEGIN");
    await gate.query("SELECT seq FROM queue WHERE seq = $1 FOR UPDATE", [r2]);
    releaser.go();
    await waitUntil(async () => (await lockWaits(admin)) === 1, "the release to wait at r2 (holding r1)", 20_000);
    // The acks delete r3 and wait for r1, held by the release.
    acker.go();
    await waitUntil(async () => (await lockWaits(admin)) === 2, "the acks to wait at r1 (holding r3)", 20_000);
    // The gate opens: the release goes on to r3, held by the acks: a cycle, and PostgreSQL aborts one.
    await gate.query("COMMIT");
    const [acked, released] = await Promise.all([acker.result(), releaser.result()]);
    expect(released).toEqual({ released: true });
    // The ack batch ran again after the release took every row of u: nothing left for it.
    expect(acked).toEqual({ acked: expect.any(Number) as number });
    const left = await admin.query<{ n: number }>("SELECT count(*)::int AS n FROM queue");
    expect(left.rows[0]!.n).toBe(0);
    // The deadlock did happen (not a lucky order): PostgreSQL counted it.
    // (Statistics reach pg_stat_database within about a second.)
    await waitUntil(async () => {
      const stats = await admin.query<{ n: number }>("SELECT deadlocks::int AS n FROM pg_stat_database WHERE datname = current_database()");
      return stats.rows[0]!.n >= 1;
    }, "PostgreSQL to count the deadlock", 10_000);
  });
});
