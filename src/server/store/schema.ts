// The relay database's file-level part: the schema, the pragmas that make a commit durable and
// keep the file within its cap, the schema version, one way to run a transaction, and the
// relay's stable identity (relay_id). The tables' own code is in bindings.ts, queues.ts and
// rooms.ts; src/server/store.ts puts them together behind RelayStore.
import { randomBytes } from "node:crypto";
import { DatabaseSync } from "node:sqlite";
import { RELAY_ID_BYTES } from "../../protocol/keys.js";
import type { FileVersion } from "./file-version.js";
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
 * made each group's current epoch (`mls_groups.last_committer`, addLastCommitter); a version-3
 * file gains the column, filled from the kept commits (an older relay would not keep it up to
 * date: it refuses version 4). 5: the commits in a rowid table, their blobs out of the key's B-tree
 * (`mls_commits`, moveCommitRows); an older relay would find its table changed: it refuses version 5.
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

// The MLS Delivery Service's tables (store/mls.ts, PROTOCOL.md §8.2). Added after schema
// version 1 without changing it: CREATE ... IF NOT EXISTS makes an existing database gain them
// at its next open, and nothing in the v1 tables changes.
const MLS_SCHEMA = `
CREATE TABLE IF NOT EXISTS mls_key_packages (
  id            INTEGER PRIMARY KEY,
  username      TEXT NOT NULL,
  ref           BLOB NOT NULL UNIQUE,
  key_package   BLOB NOT NULL,
  last_resort   INTEGER NOT NULL,
  not_after_ms  INTEGER NOT NULL,
  created_at_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS mls_key_packages_by_user ON mls_key_packages (username, last_resort, id);
-- One last-resort KeyPackage per device (queue address), by the database: addKeyPackageAddress.
CREATE TABLE IF NOT EXISTS mls_groups (
  group_id         BLOB PRIMARY KEY,
  conversation_id  TEXT NOT NULL UNIQUE,
  creator          TEXT NOT NULL,
  epoch            INTEGER NOT NULL,
  group_info       BLOB NOT NULL,
  group_info_epoch INTEGER NOT NULL,
  created_at_ms    INTEGER NOT NULL,
  -- Who sent the commit that made the current epoch (NULL: none since the group was registered, its
  -- creator's epoch). Kept here, not read from mls_commits: the per-user bound may drop that commit.
  last_committer   TEXT
) STRICT;
CREATE INDEX IF NOT EXISTS mls_groups_by_creator ON mls_groups (creator);
-- The membership hint: who may commit and fetch commits (never who can read: that is the tree).
CREATE TABLE IF NOT EXISTS mls_group_members (
  group_id BLOB NOT NULL,
  username TEXT NOT NULL,
  PRIMARY KEY (group_id, username)
) STRICT, WITHOUT ROWID;
`;

// The accepted commits (schema version 5; prepareCommitTables). An ordinary rowid table, the blob
// its last column: a lookup by (group_id, epoch) goes through the index, whose entries are a few
// dozen bytes, to one row, and reads the blob's overflow pages only when it asks for commit_msg;
// the columns before it, `bytes` included, are on the row's first page. (Version 4 kept them WITHOUT
// ROWID, keyed by (group_id, epoch): a seek there compared the key with whole records, blobs
// included, ~5 MiB read to find one 1 MB commit.) `bytes` is stored, not asked of LENGTH() where
// it is needed: a trigger's LENGTH(OLD.commit_msg) reads the whole blob of every row deleted.
const COMMITS_TABLE = `
CREATE TABLE IF NOT EXISTS mls_commits (
  id             INTEGER PRIMARY KEY,
  group_id       BLOB NOT NULL,
  epoch          INTEGER NOT NULL,
  sender         TEXT NOT NULL,
  accepted_at_ms INTEGER NOT NULL,
  bytes          INTEGER GENERATED ALWAYS AS (LENGTH(commit_msg)) STORED,
  commit_msg     BLOB NOT NULL
) STRICT;
`;

const COMMITS_INDEXES = `
-- The first commit for an epoch wins: this index refuses a second one (ON CONFLICT DO NOTHING).
CREATE UNIQUE INDEX IF NOT EXISTS mls_commits_by_epoch ON mls_commits (group_id, epoch);
-- A sender's kept commits, oldest first (ties by group and epoch, as the index orders them): the
-- per-user bound drops from there (PROTOCOL.md §8.2).
CREATE INDEX IF NOT EXISTS mls_commits_by_sender ON mls_commits (sender, accepted_at_ms, group_id, epoch);
`;

/**
 * What each sender's kept commits weigh (PROTOCOL.md §8.2, the per-user bound: store/mls.ts
 * trimCommitsOf), kept by triggers on every insert and delete of `mls_commits`, whoever does it,
 * so reading it costs one row. COMMIT_USAGE_FILL computes it from the kept commits.
 */
const COMMIT_USAGE = `
CREATE TABLE IF NOT EXISTS mls_commit_usage (
  sender  TEXT PRIMARY KEY,
  commits INTEGER NOT NULL,
  bytes   INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS mls_commits_usage_in AFTER INSERT ON mls_commits BEGIN
  INSERT INTO mls_commit_usage (sender, commits, bytes) VALUES (NEW.sender, 1, NEW.bytes)
    ON CONFLICT (sender) DO UPDATE SET commits = commits + 1, bytes = bytes + excluded.bytes;
END;
CREATE TRIGGER IF NOT EXISTS mls_commits_usage_out AFTER DELETE ON mls_commits BEGIN
  UPDATE mls_commit_usage SET commits = commits - 1, bytes = bytes - OLD.bytes WHERE sender = OLD.sender;
  DELETE FROM mls_commit_usage WHERE sender = OLD.sender AND commits <= 0;
END;
`;

const COMMIT_USAGE_FILL = `
DELETE FROM mls_commit_usage;
INSERT INTO mls_commit_usage (sender, commits, bytes) SELECT sender, COUNT(*), SUM(bytes) FROM mls_commits GROUP BY sender;
`;

/** Runs fn in one IMMEDIATE transaction at open (the migrations'). */
function migrating(db: DatabaseSync, fn: () => void): void {
  db.exec("BEGIN IMMEDIATE");
  try {
    fn();
    db.exec("COMMIT");
  } catch (e) {
    if (db.isTransaction) db.exec("ROLLBACK");
    throw e;
  }
}

/**
 * The commits' table of version 5 and its usage (COMMIT_USAGE). A new file gets them as they are
 * (a file made before the usage table gains it, filled from its commits, in the transaction
 * that adds the triggers). A file of version 4 or before, whose commits are WITHOUT ROWID keyed by
 * (group_id, epoch), has them moved into the new table in one transaction: see moveCommitRows.
 */
function prepareCommitTables(db: DatabaseSync): void {
  const columns = db.prepare("PRAGMA table_info(mls_commits)").all() as Row[];
  if (columns.length > 0 && !columns.some((c) => c.name === "id")) {
    moveCommitRows(db);
    return;
  }
  db.exec(COMMITS_TABLE + COMMITS_INDEXES);
  if (db.prepare("SELECT 1 AS hit FROM sqlite_master WHERE type = 'table' AND name = 'mls_commit_usage'").get() !== undefined) return;
  migrating(db, () => db.exec(COMMIT_USAGE + COMMIT_USAGE_FILL));
}

/** How many commits, and about how many of their bytes, moveCommitRows moves at a time (one at a time in memory). */
const MOVE_BATCH = 64;
const MOVE_BATCH_BYTES = 1024 * 1024;

/**
 * Version 4 → 5, in one transaction: the old table is renamed and emptied from its first row on,
 * a batch at a time, into the new one, so the pages each batch frees hold the next (the file does
 * not grow by a copy of every commit; the WAL does, until the checkpoint after). Its triggers go
 * first and the new table's come only after the copy, so no insert or delete of it is counted;
 * the usage is then computed again from the commits moved (the same rows: the same usage). The
 * first commit of each epoch is the one there was (the old primary key allowed no other).
 */
function moveCommitRows(db: DatabaseSync): void {
  migrating(db, () => {
    db.exec(`DROP TRIGGER IF EXISTS mls_commits_usage_in;
DROP TRIGGER IF EXISTS mls_commits_usage_out;
DROP INDEX IF EXISTS mls_commits_by_sender;
ALTER TABLE mls_commits RENAME TO mls_commits_v4;`);
    db.exec(COMMITS_TABLE);
    // From the front: no seek into the old table (each would compare the key with whole records).
    const first = db.prepare(`SELECT group_id, epoch, sender, accepted_at_ms, commit_msg FROM mls_commits_v4 ORDER BY group_id, epoch LIMIT ${MOVE_BATCH}`);
    const put = db.prepare("INSERT INTO mls_commits (group_id, epoch, sender, accepted_at_ms, commit_msg) VALUES (?, ?, ?, ?, ?)");
    const dropUpTo = db.prepare("DELETE FROM mls_commits_v4 WHERE (group_id, epoch) <= (?, ?)");
    for (;;) {
      let last: { readonly groupId: Buffer; readonly epoch: number } | undefined;
      let bytes = 0;
      for (const r of first.iterate() as Iterable<Row>) {
        last = { groupId: buf(r.group_id), epoch: num(r.epoch) };
        const blob = buf(r.commit_msg);
        put.run(last.groupId, last.epoch, str(r.sender), num(r.accepted_at_ms), blob);
        bytes += blob.length;
        if (bytes >= MOVE_BATCH_BYTES) break;
      }
      if (last === undefined) break;
      dropUpTo.run(last.groupId, last.epoch);
    }
    db.exec("DROP TABLE mls_commits_v4");
    db.exec(COMMITS_INDEXES + COMMIT_USAGE + COMMIT_USAGE_FILL);
  });
  // The WAL holds every page moved: back to nothing now rather than at its next reset.
  db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
}

/**
 * Who made each group's current epoch (PROTOCOL.md §8.2: only they may replace its GroupInfo),
 * kept in `mls_groups` by every accepted commit (store/mls.ts acceptCommit). A file made before
 * gains the column, filled from each group's newest kept commit; a group whose newest commit is
 * no longer kept keeps NULL (its creator), as such a file's relay decided until now.
 */
function addLastCommitter(db: DatabaseSync): void {
  const columns = db.prepare("PRAGMA table_info(mls_groups)").all() as Row[];
  if (columns.some((c) => c.name === "last_committer")) return;
  db.exec("BEGIN IMMEDIATE");
  try {
    db.exec(`ALTER TABLE mls_groups ADD COLUMN last_committer TEXT;
UPDATE mls_groups SET last_committer = (SELECT c.sender FROM mls_commits c WHERE c.group_id = mls_groups.group_id AND c.epoch = mls_groups.epoch - 1);`);
    db.exec("COMMIT");
  } catch (e) {
    if (db.isTransaction) db.exec("ROLLBACK");
    throw e;
  }
}

// Devices (PROTOCOL.md §4.5; store/devices.ts). Added like the MLS tables: CREATE ... IF NOT
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
 * KeyPackages per device (PROTOCOL.md §4.5): `address` is the queue address of the device that
 * published them (the bare username for the primary, `username/device_id` for a linked device).
 * A database made before devices gains the column at open, every row set to its bare username
 * (they were all the primary's), and the one-last-resort rule moves from the user to the address.
 */
function addKeyPackageAddress(db: DatabaseSync): void {
  const columns = db.prepare("PRAGMA table_info(mls_key_packages)").all() as Row[];
  if (!columns.some((c) => c.name === "address")) {
    db.exec("BEGIN IMMEDIATE");
    try {
      db.exec("ALTER TABLE mls_key_packages ADD COLUMN address TEXT NOT NULL DEFAULT ''");
      db.exec("UPDATE mls_key_packages SET address = username WHERE address = ''");
      db.exec("COMMIT");
    } catch (e) {
      if (db.isTransaction) db.exec("ROLLBACK");
      throw e;
    }
  }
  db.exec(`DROP INDEX IF EXISTS mls_last_resort_per_user;
CREATE UNIQUE INDEX IF NOT EXISTS mls_last_resort_per_address ON mls_key_packages (address) WHERE last_resort = 1;
CREATE INDEX IF NOT EXISTS mls_key_packages_by_address ON mls_key_packages (address, last_resort, id);`);
}

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
    db.exec(MLS_SCHEMA);
    prepareCommitTables(db);
    addLastCommitter(db);
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
    // 5 by prepareCommitTables' new table.
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
