// Test-only: PgMlsStore and PgDeviceStore on a real PostgreSQL database with a tiny, real queue
// table standing in for the queues part (written by another module of the PostgreSQL store), so
// the MLS and device contracts and the concurrency tests run on these two parts alone. The
// releaseUser and replaceDeviceList here do what the relay-level store does with the parts'
// "Locked" methods, in one transaction, as store.ts does for SQLite.
import type { EnqueueOutcome, EnqueueRequest, QueuedItem, RelayStore } from "../../src/server/store.js";
import { PgDeviceStore } from "../../src/server/store/pg/devices.js";
import { PgMlsStore, type PgQueueWriter } from "../../src/server/store/pg/mls.js";
import { MLS_DEVICE_DDL, MLS_LAST_COMMITTER_DDL } from "../../src/server/store/pg/schema-mls.js";
import { SyncPg } from "../../src/server/store/pg/sync-client.js";
import { freshDatabase } from "../helpers/pg.js";
import type { OpenContractStore } from "./mls.contract.js";

/** The stand-in queue: accepted (sender, message_id) once, one row per recipient. */
export const TEST_QUEUE_DDL = `
CREATE TABLE IF NOT EXISTS test_users (username TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS test_accepted (sender TEXT NOT NULL, message_id BYTEA NOT NULL, PRIMARY KEY (sender, message_id));
CREATE TABLE IF NOT EXISTS test_queue (
  seq             BIGSERIAL PRIMARY KEY,
  recipient       TEXT NOT NULL,
  sender          TEXT NOT NULL,
  conversation_id TEXT NOT NULL,
  envelope        BYTEA NOT NULL,
  payload         TEXT
);`;

/**
 * Creates the parts' tables and the stand-in queue on an empty database, one statement per step
 * (SyncPg.query takes one statement: pg answers a multi-statement text with one result per statement).
 */
export function createTestSchema(db: SyncPg): void {
  const steps = `${MLS_DEVICE_DDL};${MLS_LAST_COMMITTER_DDL};${TEST_QUEUE_DDL}`.split(";").map((sql) => sql.trim()).filter((sql) => sql !== "").map((sql) => ({ sql }));
  db.transaction(() => db.batch(steps));
}

/** A real PgQueueWriter over the stand-in queue; it asserts it runs inside the caller's transaction. */
export class TableQueueWriter implements PgQueueWriter {
  settledCalls: boolean[] = [];

  constructor(private readonly db: SyncPg) {}

  enqueueInside(reqs: readonly EnqueueRequest[]): EnqueueOutcome[] {
    if (!this.db.transactionOpen) throw new Error("enqueueInside outside a transaction");
    return reqs.map((r): EnqueueOutcome => {
      const fresh = this.db.query("INSERT INTO test_accepted (sender, message_id) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING 1 AS hit", [r.sender, r.messageId]);
      if (fresh.length === 0) return "duplicate";
      for (const to of r.recipients) {
        this.db.query("INSERT INTO test_queue (recipient, sender, conversation_id, envelope, payload) VALUES ($1, $2, $3, $4, $5)",
          [to, r.sender, r.conversationId, Buffer.from(r.envelope), r.payload ?? null]);
      }
      return "stored";
    });
  }

  settled(committed: boolean): void {
    this.settledCalls.push(committed);
  }
}

/** The parts over one connection, as the PostgreSQL RelayStore will hold them. */
export class PgParts {
  readonly queues: TableQueueWriter;
  readonly mls: PgMlsStore;
  readonly devices: PgDeviceStore;

  constructor(readonly db: SyncPg, clock: () => number) {
    this.queues = new TableQueueWriter(db);
    this.mls = new PgMlsStore({ db, clock }, this.queues);
    this.devices = new PgDeviceStore({ db, clock });
  }
}

/** The RelayStore methods the MLS and device contracts use, over PgParts. */
function partsStore(p: PgParts): RelayStore {
  const { db } = p;
  const depth = (recipient: string): number => Number(db.query("SELECT count(*) AS n FROM test_queue WHERE recipient = $1", [recipient])[0]!["n"]);
  const partial = {
    mls: p.mls,
    devices: p.devices,
    bindUser: (u: { username: string }) => {
      db.query("INSERT INTO test_users (username) VALUES ($1) ON CONFLICT DO NOTHING", [u.username]);
      return { kind: "bound" };
    },
    releaseUser: (username: string): boolean => db.transaction(() => {
      if (db.query("DELETE FROM test_users WHERE username = $1 RETURNING 1 AS hit", [username]).length === 0) return false;
      db.query("DELETE FROM test_queue WHERE recipient = $1 OR recipient LIKE $2", [username, `${username}/%`]);
      p.devices.dropUserLocked(username);
      p.mls.dropKeyPackagesLocked(username);
      p.mls.dropMembershipsLocked(username);
      return true;
    }),
    replaceDeviceList: (change: Parameters<RelayStore["replaceDeviceList"]>[0]): boolean => db.transaction(() => {
      if (!p.devices.putListLocked(change.username, change.version, change.list)) return false;
      for (const d of change.dropped) {
        db.query("DELETE FROM test_queue WHERE recipient = $1", [d.address]);
        p.mls.dropKeyPackagesOfAddressLocked(d.address);
        p.devices.dropSeenLocked(change.username, d.deviceId);
      }
      for (const a of change.keyPackagesOf) p.mls.dropKeyPackagesOfAddressLocked(a);
      return true;
    }),
    enqueue: (req: EnqueueRequest): boolean => db.transaction(() => p.queues.enqueueInside([req])[0] === "stored"),
    queueDepth: depth,
    fetchQueue: (recipient: string, afterSeq: number, limit: number): QueuedItem[] =>
      db.query("SELECT seq, conversation_id, envelope, payload FROM test_queue WHERE recipient = $1 AND seq > $2 ORDER BY seq LIMIT $3", [recipient, afterSeq, limit])
        .map((r) => ({
          seq: Number(r["seq"]), conversationId: String(r["conversation_id"]), envelope: r["envelope"] as Buffer,
          ...(r["payload"] === null ? {} : { payload: r["payload"] as "mls" }),
        })),
    close: () => {
      p.devices.flushSeen();
      db.close();
    },
  };
  // The other RelayStore methods belong to the queues/bindings parts: a contract calling one fails loudly.
  return new Proxy(partial, {
    get(target, key) {
      if (key in target) return target[key as keyof typeof target];
      if (typeof key === "symbol" || key === "then") return undefined;
      throw new Error(`the MLS/device parts test store has no ${String(key)}`);
    },
  }) as unknown as RelayStore;
}

/** Opens PgParts on a fresh database as a contract store. */
export const openPgPartsStore: OpenContractStore = async ({ clock }) => {
  const database = await freshDatabase();
  const db = new SyncPg({ url: database.url });
  try {
    createTestSchema(db);
  } catch (e) {
    db.close();
    await database.drop();
    throw e;
  }
  const store = partsStore(new PgParts(db, clock));
  return {
    store,
    close: async () => {
      store.close();
      await database.drop();
    },
  };
};
