// PostgreSQL-only tests of the MLS DS and device-list parts (src/server/store/pg/{mls,devices}.ts),
// on a real database of the run's cluster: the MLS and device contracts on the parts alone
// (with a stand-in queue table: test/store-contract/mls-pg-parts.ts); member and room lists in
// byte order even when the database sorts text by a language's rules; the queue writer told how
// a commit's transaction ended; last seen never throwing on a dead database. Races between
// relays: pg-mls-race.test.ts.
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PgDeviceStore } from "../../src/server/store/pg/devices.js";
import { SyncPg } from "../../src/server/store/pg/sync-client.js";
import { describeDeviceStoreContract } from "../store-contract/devices.contract.js";
import { describeMlsStoreContract } from "../store-contract/mls.contract.js";
import { createTestSchema, openPgPartsStore, PgParts } from "../store-contract/mls-pg-parts.js";
import { freshDatabase, pgAdminUrl, pgQuery } from "../helpers/pg.js";

describeMlsStoreContract("PostgreSQL parts", openPgPartsStore);
describeDeviceStoreContract("PostgreSQL parts", openPgPartsStore);

async function admin(sql: string): Promise<void> {
  await pgQuery(pgAdminUrl(), sql);
}

describe("a database whose text order is a language's (ICU en-US)", () => {
  const name = `sc_${randomBytes(6).toString("hex")}`;
  let db: SyncPg;
  let parts: PgParts;

  beforeAll(async () => {
    await admin(`CREATE DATABASE ${name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'`);
    const u = new URL(pgAdminUrl());
    u.pathname = `/${name}`;
    db = new SyncPg({ url: u.toString() });
    createTestSchema(db);
    parts = new PgParts(db, Date.now);
  });

  afterAll(async () => {
    db.close();
    await admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  });

  it("still lists members and rooms in byte order, as the embedded store does", () => {
    // The database's own order differs (case-insensitive first): the store must not use it.
    expect(db.query("SELECT x FROM (VALUES ('Zed'), ('_x'), ('alice')) v(x) ORDER BY x").map((r) => r["x"])).toEqual(["_x", "alice", "Zed"]);
    const s = parts.mls;
    const group = (n: number, conversationId: string) => ({ groupId: Buffer.alloc(20, n), conversationId, creator: "alice", epoch: 0, groupInfo: Buffer.from("gi"), groupInfoEpoch: 0 });
    s.createGroup(group(1, "#b"));
    s.createGroup(group(2, "#B"));
    s.createGroup(group(3, "#_"));
    expect(s.acceptCommit(Buffer.alloc(20, 1), 0, "alice", Buffer.from("c"), undefined, { external: false, added: ["Zed", "_x", "bob"], removed: [] }).kind).toBe("accepted");
    expect(s.groupMembers(Buffer.alloc(20, 1))).toEqual(["Zed", "_x", "alice", "bob"]);
    // Most members first (#b: 4), then by bytes.
    expect(s.roomSummaries(10).map((r) => r.room)).toEqual(["#b", "#B", "#_"]);
    expect(s.roomSummaries(2).map((r) => r.room)).toEqual(["#b", "#B"]);
    expect(s.roomsOfMember("alice", 10).map((r) => r.room)).toEqual(["#B", "#_", "#b"]);
    expect(s.roomsOfMember("alice", 1)).toEqual([{ room: "#B", members: ["alice"] }]);
    expect(s.roomsOfMember("alice", 10)[2]!.members).toEqual(["Zed", "_x", "alice", "bob"]);
  });
});

describe("the PostgreSQL parts' edges", () => {
  it("tells the queue writer how a commit with deliveries ended (committed or rolled back), and only such commits", async () => {
    const database = await freshDatabase();
    const db = new SyncPg({ url: database.url });
    try {
      createTestSchema(db);
      const parts = new PgParts(db, Date.now);
      const s = parts.mls;
      const gid = Buffer.alloc(20, 1);
      s.createGroup({ groupId: gid, conversationId: "#g", creator: "alice", epoch: 0, groupInfo: Buffer.from("gi"), groupInfoEpoch: 0 });
      const deliveries = (id: number) => () => [{ sender: "alice", messageId: Buffer.alloc(16, id), conversationId: "#g", envelope: Buffer.from("c"), payload: "mls" as const, recipients: ["bob"] }];
      expect(s.acceptCommit(gid, 0, "alice", Buffer.from("c0"))).toMatchObject({ kind: "accepted" });
      expect(parts.queues.settledCalls).toEqual([]);
      expect(s.acceptCommit(gid, 1, "alice", Buffer.from("c1"), undefined, undefined, deliveries(1))).toMatchObject({ kind: "accepted", queued: [{ recipients: ["bob"] }] });
      expect(() => s.acceptCommit(gid, 2, "alice", Buffer.from("c2"), undefined, undefined, () => {
        throw new Error("the deliveries could not be made");
      })).toThrow(/could not be made/);
      expect(parts.queues.settledCalls).toEqual([true, false]);
      expect(s.group(gid)?.epoch).toBe(2);
      // A delivery the queue already holds (same sender and id): the commit is accepted, nothing queued again.
      expect(s.acceptCommit(gid, 2, "alice", Buffer.from("c2"), undefined, undefined, deliveries(1))).toEqual({ kind: "accepted", epoch: 2, queued: [] });
      expect(Number(db.query("SELECT count(*) AS n FROM test_queue WHERE recipient = 'bob'")[0]!["n"])).toBe(1);
    } finally {
      db.close();
      await database.drop();
    }
  });

  it("flushSeen never throws when the database is unreachable (the notes are display-only)", () => {
    const db = new SyncPg({ url: "postgres://postgres@127.0.0.1:1/none", connectTimeoutMs: 300 });
    try {
      const devices = new PgDeviceStore({ db, clock: Date.now });
      devices.noteSeen("alice", "d1", 500);
      expect(() => devices.flushSeen()).not.toThrow();
      // A closed connection too (a store being shut down).
      db.close();
      devices.noteSeen("alice", "d1", 600);
      expect(() => devices.flushSeen()).not.toThrow();
    } finally {
      db.close();
    }
  });
});
