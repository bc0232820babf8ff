// The MLS Delivery Service's tables in the relay database (store/mls.ts, PROTOCOL.md §8.2) and
// their migrations, run by openDatabase (schema.ts) at every open: the tables themselves, the
// commits' table of schema version 5 and the move of a version-4 file's into it, version 4's
// last committer, and the KeyPackages' device address (PROTOCOL.md §4.5).
import type { DatabaseSync } from "node:sqlite";
import { buf, num, str, type Row } from "./schema.js";

/**
 * The MLS tables, at every open: created, or brought to this version (prepareCommitTables,
 * addLastCommitter). addKeyPackageAddress is run apart, once the queues' and devices' tables are there.
 */
export function prepareMlsTables(db: DatabaseSync): void {
  db.exec(MLS_SCHEMA);
  prepareCommitTables(db);
  addLastCommitter(db);
}

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

/**
 * KeyPackages per device (PROTOCOL.md §4.5): `address` is the queue address of the device that
 * published them (the bare username for the primary, `username/device_id` for a linked device).
 * A database made before devices gains the column at open, every row set to its bare username
 * (they were all the primary's), and the one-last-resort rule moves from the user to the address.
 */
export function addKeyPackageAddress(db: DatabaseSync): void {
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
