// The relay database's file-level part: the schema, the pragmas that make a commit durable and
// keep the file within its cap, the schema version, one way to run a transaction, and the
// relay's stable identity (relay_id). The MLS tables and their migrations are in mls-schema.ts,
// the queues' in queue-schema.ts. The tables' own code is in bindings.ts, queues.ts and
// rooms.ts; src/server/store.ts puts them together behind RelayStore.
import { randomBytes } from "node:crypto";
import { DatabaseSync } from "node:sqlite";
import { RELAY_ID_BYTES } from "../../protocol/keys.js";
import type { FileVersion } from "./file-version.js";
import { addKeyPackageAddress, prepareMlsTables } from "./mls-schema.js";
import { prepareQueueTables } from "./queue-schema.js";

/**
 * The part of a database cap (OpenStoreOptions.maxBytes) left to the write-ahead log: 1/8 of it,
 * at least 64 KiB, at most 64 MiB. A group commit stays under a quarter of it.
 */
export function walAllowanceFor(maxBytes: number): number {
  return Math.min(64 * 1024 * 1024, Math.max(64 * 1024, Math.floor(maxBytes / 8)));
}

/** SQLite's primary result code of an error thrown by node:sqlite (e.g. 13 = SQLITE_FULL), if any. */
export function sqliteErrorCode(e: unknown): number | undefined {
  const code = (e as { errcode?: unknown } | undefined)?.errcode;
  return typeof code === "number" ? code & 0xff : undefined;
}

export const SQLITE_IOERR = 10;
export const SQLITE_FULL = 13;

/**
 * 2: the queues as envelopes naming their recipients, cursors and acked rows (queue-schema.ts);
 * 1 is migrated at open. 3: the recent accepted ids in `accepted_recent` (accepted-ids.ts); a version-2
 * file only gains the table (an older relay would not look there: it refuses version 3). 4: who
 * made each group's current epoch (`mls_groups.last_committer`, addLastCommitter in mls-schema.ts); a version-3
 * file gains the column, filled from the kept commits (an older relay would not keep it up to
 * date: it refuses version 4). 5: the commits in a rowid table, their blobs out of the key's B-tree
 * (`mls_commits`, moveCommitRows in mls-schema.ts); an older relay would find its table changed: it refuses version 5.
 */
const SCHEMA_VERSION = 5;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (
  key   TEXT PRIMARY KEY,
  value BLOB NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS users (
  username      TEXT PRIMARY KEY,
  sig_spki      BLOB NOT NULL,
  enc_spki      BLOB NOT NULL,
  enc_key_sig   BLOB NOT NULL,
  sig_fpr       BLOB NOT NULL,
  enc_fpr       BLOB NOT NULL,
  created_at_ms INTEGER NOT NULL
) STRICT;
-- One username per signing key is checked against this (PROTOCOL.md §9).
CREATE INDEX IF NOT EXISTS users_by_sig_fpr ON users (sig_fpr);
CREATE TABLE IF NOT EXISTS accepted (
  sender         TEXT NOT NULL,
  message_id     BLOB NOT NULL,
  accepted_at_ms INTEGER NOT NULL,
  PRIMARY KEY (sender, message_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS accepted_by_time ON accepted (accepted_at_ms);
-- Version 3: the recent accepted ids, one row per transaction that accepted some, appended (no
-- index by id: memory has them, store/recent-ids.ts): the senders as a JSON array and their
-- 16-byte ids end to end, in the same order. The oldest move into the accepted table past a
-- budget (accepted-ids.ts).
CREATE TABLE IF NOT EXISTS accepted_recent (
  id             INTEGER PRIMARY KEY,
  accepted_at_ms INTEGER NOT NULL,
  senders        TEXT NOT NULL,
  message_ids    BLOB NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS accepted_recent_by_time ON accepted_recent (accepted_at_ms);
CREATE TABLE IF NOT EXISTS rooms (
  room          TEXT PRIMARY KEY,
  created_at_ms INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS room_members (
  room         TEXT NOT NULL,
  username     TEXT NOT NULL,
  joined_at_ms INTEGER NOT NULL,
  PRIMARY KEY (room, username)
) STRICT, WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS room_members_by_user ON room_members (username, room);
`;

// Devices (PROTOCOL.md §4.5; store/devices.ts). Added like the MLS tables (mls-schema.ts): CREATE ... IF NOT
// EXISTS at open, nothing in the older tables changes. `list` is the wire DeviceList as the user
// published it (the relay verified it against the bound identity key before keeping it).
const DEVICE_SCHEMA = `
CREATE TABLE IF NOT EXISTS device_lists (
  username      TEXT PRIMARY KEY,
  version       INTEGER NOT NULL,
  list          BLOB NOT NULL,
  updated_at_ms INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS device_seen (
  username     TEXT NOT NULL,
  device_id    TEXT NOT NULL,
  last_seen_ms INTEGER NOT NULL,
  PRIMARY KEY (username, device_id)
) STRICT, WITHOUT ROWID;
`;

/**
 * What an `envelopes` row holds (protocol v2, PROTOCOL.md §8.3): 0 = a v1 Envelope (delivered
 * as Delivery field 3), 1 = an MlsDelivery (Delivery field 5). A file made before the column had
 * only v1 envelopes: the migration (queue-schema.ts) gives them 0.
 */
export const PAYLOAD_ENVELOPE = 0;
export const PAYLOAD_MLS = 1;


export type Row = Record<string, unknown>;

export function buf(v: unknown): Buffer {
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  throw new TypeError("expected a BLOB column");
}

export function num(v: unknown): number {
  if (typeof v === "number") return v;
  if (typeof v === "bigint") return Number(v);
  throw new TypeError("expected an INTEGER column");
}

export function str(v: unknown): string {
  if (typeof v === "string") return v;
  throw new TypeError("expected a TEXT column");
}

/** Runs fn in one transaction; what throws rolls it back. */
export type Transaction = <T>(fn: () => T) => T;

/** What every part of the store shares: the connection, the clock, and the transaction. */
export interface StoreContext {
  readonly db: DatabaseSync;
  readonly clock: () => number;
  readonly transaction: Transaction;
  /** Where a part that changes memory inside `transaction` registers how to undo it (a rollback runs them). */
  readonly undo: UndoLog;
  /** The file's data_version, read once for every part that keeps the file in memory (default: one of the part's own). */
  readonly version?: FileVersion;
}

/**
 * The inverse of each change a transaction made to memory (the queues, queue-memory.ts), run
 * newest first when it rolls back, dropped when it commits: memory never shows what the file
 * does not hold.
 */
export class UndoLog {
  private steps: Array<() => void> | undefined;

  /** A transaction (of transactionOn with this log) is running. */
  get open(): boolean {
    return this.steps !== undefined;
  }

  /** Registers the inverse of a change just made; only inside a transaction. */
  push(step: () => void): void {
    if (this.steps === undefined) throw new Error("UndoLog.push outside a transaction");
    this.steps.push(step);
  }

  /** Counts the transactions begun: a part that checked something once in a transaction knows whether it is still that one. */
  generation = 0;

  begin(): void {
    this.steps = [];
    this.generation++;
  }

  commit(): void {
    this.steps = undefined;
  }

  rollback(): void {
    const steps = this.steps ?? [];
    this.steps = undefined;
    for (let i = steps.length - 1; i >= 0; i--) {
      try {
        steps[i]!();
      } catch {
        // Memory may now differ from the file: its owners rebuild it from the file (`broken`).
        this.broken = true;
      }
    }
  }

  /** An undo step threw: memory must be rebuilt from the file before it is read again. */
  broken = false;
}

/**
 * Opens (creating if needed) the relay database at `path` with its pragmas and schema. Throws the
 * underlying error when the file cannot be opened or written, or its schema is another version.
 */
export function openDatabase(path: string, options: { readonly busyTimeoutMs?: number; readonly maxBytes?: number; readonly upgrade?: boolean }): DatabaseSync {
  const db = new DatabaseSync(path, { timeout: options.busyTimeoutMs ?? 5000 });
  try {
    // WAL: readers (the `users list` command, delivery reads) never block the writer, and a
    // commit is one sequential append instead of a rewrite of the page in place.
    db.exec("PRAGMA journal_mode = WAL");
    // FULL, not NORMAL: ACCEPTED promises the envelope is stored durably (PROTOCOL.md §8.4) and
    // the sender drops it from its outbox on that answer. In WAL mode NORMAL syncs only at
    // checkpoints, so an OS crash or power loss could lose envelopes already answered ACCEPTED.
    // FULL syncs the WAL on every commit. The group commit's batches are the one exception:
    // committed under NORMAL, their WAL sync runs on libuv's thread pool and they are answered
    // (and delivered) only once it returned (wal-sync.ts): FULL's sync, off the event loop.
    db.exec("PRAGMA synchronous = FULL");
    db.exec("PRAGMA foreign_keys = OFF");
    const version = num((db.prepare("PRAGMA user_version").get() as Row).user_version);
    if (version > SCHEMA_VERSION) throw new Error(`database schema version ${version} is not supported (expected ${SCHEMA_VERSION})`);
    // An operator command beside a relay of the earlier version must not convert the file under
    // it: only a relay starting on it does (`upgrade`).
    if (version !== 0 && version < SCHEMA_VERSION && options.upgrade === false) {
      throw new Error(`the database was made by an earlier chat-relay (schema version ${version}); start this chat-relay on it once to convert it, then run the command again`);
    }
    db.exec(SCHEMA);
    prepareMlsTables(db);
    prepareQueueTables(db);
    db.exec(DEVICE_SCHEMA);
    addKeyPackageAddress(db);
    if (options.maxBytes !== undefined) {
      // The cap counts the WAL (issue 16: a 1 MiB cap once had 4 MiB of WAL beside it). The
      // database file gets the cap minus the WAL allowance; the WAL is checkpointed once it holds
      // half the allowance and truncated back to that at its next reset, and the group committer
      // keeps a transaction under a quarter of it (walAllowanceFor), so file + WAL stay within
      // the cap. Deletes (acks) need no new pages in the file: they go through when it is full.
      const pageSize = num((db.prepare("PRAGMA page_size").get() as Row).page_size);
      const wal = walAllowanceFor(options.maxBytes);
      db.exec(`PRAGMA max_page_count = ${Math.max(1, Math.floor((options.maxBytes - wal) / pageSize))}`);
      // SQLite's default checkpoint point (1,000 pages) when the allowance is larger.
      const checkpointAt = Math.min(1000 * pageSize, Math.floor(wal / 2));
      db.exec(`PRAGMA wal_autocheckpoint = ${Math.max(1, Math.floor(checkpointAt / pageSize))}`);
      db.exec(`PRAGMA journal_size_limit = ${checkpointAt}`);
    }
    // A new file is made at the current version; a version-1 file was migrated to 2 above, 2
    // becomes 3 by the table SCHEMA made, 3 becomes 4 by addLastCommitter's column, and 4 becomes
    // 5 by prepareCommitTables' new table (both in mls-schema.ts).
    if (version < SCHEMA_VERSION) db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`);
  } catch (e) {
    db.close();
    throw e;
  }
  return db;
}

/**
 * Runs fn in one IMMEDIATE transaction (the write lock is taken up front: no upgrade
 * deadlocks), after `before` (which may throw to refuse it: a failed WAL sync, wal-sync.ts). On any failure, COMMIT included, nothing of it stays: SQLite rolls a transaction
 * back by itself after some errors (SQLITE_FULL, I/O errors), otherwise we do, and `undo` puts
 * memory back; the original error is what the caller sees.
 */
export function transactionOn(db: DatabaseSync, before?: () => void, undo?: UndoLog): Transaction {
  return <T>(fn: () => T): T => {
    before?.();
    db.exec("BEGIN IMMEDIATE");
    undo?.begin();
    try {
      const out = fn();
      db.exec("COMMIT");
      undo?.commit();
      return out;
    } catch (e) {
      if (db.isTransaction) {
        try {
          db.exec("ROLLBACK");
        } catch {
          // The connection is broken beyond a rollback; SQLite discards the transaction anyway.
        }
      }
      undo?.rollback();
      throw e;
    }
  };
}

/** The relay's identity for proofs: 16 random bytes made once per data dir, then stable. */
export function loadRelayId(db: DatabaseSync, transaction: Transaction): Buffer {
  const metaGet = db.prepare("SELECT value FROM meta WHERE key = ?");
  const metaPut = db.prepare("INSERT INTO meta (key, value) VALUES (?, ?)");
  return transaction(() => {
    const row = metaGet.get("relay_id") as Row | undefined;
    if (row !== undefined) {
      const id = buf(row.value);
      if (id.length !== RELAY_ID_BYTES) throw new Error(`stored relay_id has ${id.length} bytes, expected ${RELAY_ID_BYTES}`);
      return Buffer.from(id);
    }
    const id = randomBytes(RELAY_ID_BYTES);
    metaPut.run("relay_id", id);
    return id;
  });
}
