// The PostgreSQL tables of the MLS Delivery Service (pg/mls.ts) and of device lists
// (pg/devices.ts): the embedded store's tables (store/schema.ts) in PostgreSQL's types. The
// schema migration (pg/schema.ts) runs this inside its transaction; every statement is
// idempotent (IF NOT EXISTS), so running it again changes nothing.
//
// The rules the database itself enforces, as in SQLite:
// - `mls_key_packages.ref` is unique (a KeyPackage is stored once), and one last-resort
//   KeyPackage per queue address (a partial unique index);
// - `mls_groups.conversation_id` is unique (the first group of a conversation wins);
// - `mls_commits (group_id, epoch)` is the primary key: the first commit for an epoch wins;
// - `device_lists.username` is the primary key (the version rule is in the upsert: pg/devices.ts).
// Epochs, versions and times are BIGINT (MLS epochs are 64-bit; SQLite's INTEGER is too).

export const MLS_DEVICE_DDL: string = `
CREATE TABLE IF NOT EXISTS mls_key_packages (
  id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  username      TEXT NOT NULL,
  address       TEXT NOT NULL,
  ref           BYTEA NOT NULL UNIQUE,
  key_package   BYTEA NOT NULL,
  last_resort   BOOLEAN NOT NULL,
  not_after_ms  BIGINT NOT NULL,
  created_at_ms BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS mls_key_packages_by_user ON mls_key_packages (username);
CREATE INDEX IF NOT EXISTS mls_key_packages_by_address ON mls_key_packages (address, last_resort, id);
CREATE INDEX IF NOT EXISTS mls_key_packages_by_expiry ON mls_key_packages (not_after_ms);
CREATE UNIQUE INDEX IF NOT EXISTS mls_last_resort_per_address ON mls_key_packages (address) WHERE last_resort;

CREATE TABLE IF NOT EXISTS mls_groups (
  group_id         BYTEA PRIMARY KEY,
  conversation_id  TEXT NOT NULL UNIQUE,
  creator          TEXT NOT NULL,
  epoch            BIGINT NOT NULL,
  group_info       BYTEA NOT NULL,
  group_info_epoch BIGINT NOT NULL,
  created_at_ms    BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS mls_groups_by_creator ON mls_groups (creator);

CREATE TABLE IF NOT EXISTS mls_group_members (
  group_id BYTEA NOT NULL,
  username TEXT NOT NULL,
  PRIMARY KEY (group_id, username)
);
CREATE INDEX IF NOT EXISTS mls_group_members_by_user ON mls_group_members (username);

CREATE TABLE IF NOT EXISTS mls_commits (
  group_id       BYTEA NOT NULL,
  epoch          BIGINT NOT NULL,
  sender         TEXT NOT NULL,
  commit_msg     BYTEA NOT NULL,
  accepted_at_ms BIGINT NOT NULL,
  PRIMARY KEY (group_id, epoch)
);

CREATE TABLE IF NOT EXISTS device_lists (
  username      TEXT PRIMARY KEY,
  version       BIGINT NOT NULL,
  list          BYTEA NOT NULL,
  updated_at_ms BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS device_seen (
  username     TEXT NOT NULL,
  device_id    TEXT NOT NULL,
  last_seen_ms BIGINT NOT NULL,
  PRIMARY KEY (username, device_id)
);
`;

/**
 * Migration 3 (pg/schema.ts): who made each group's current epoch (PROTOCOL.md §8.2; pg/mls.ts
 * acceptCommit keeps it), filled from each group's newest kept commit (none kept: NULL, its
 * creator's epoch, as the relay decided before).
 */
export const MLS_LAST_COMMITTER_DDL = `ALTER TABLE mls_groups ADD COLUMN IF NOT EXISTS last_committer text;
UPDATE mls_groups g SET last_committer = c.sender FROM mls_commits c WHERE c.group_id = g.group_id AND c.epoch = g.epoch - 1;
`;
