// PLACEHOLDER owned by helper "pgmls", who replaces this file: the MLS Delivery Service's and the
// devices' tables in PostgreSQL, mirroring the embedded store's (src/server/store/schema.ts:
// MLS_SCHEMA with the `address` column and its indexes, DEVICE_SCHEMA). schema.ts runs this DDL
// in schema version 1, in the same transaction as the core tables.
export const MLS_DEVICE_DDL = `
CREATE TABLE mls_key_packages (
  id            bigserial PRIMARY KEY,
  username      text COLLATE "C" NOT NULL,
  address       text COLLATE "C" NOT NULL,
  ref           bytea NOT NULL UNIQUE,
  key_package   bytea NOT NULL,
  last_resort   boolean NOT NULL,
  not_after_ms  bigint NOT NULL,
  created_at_ms bigint NOT NULL
);
CREATE UNIQUE INDEX mls_last_resort_per_address ON mls_key_packages (address) WHERE last_resort;
CREATE INDEX mls_key_packages_by_address ON mls_key_packages (address, last_resort, id);
CREATE INDEX mls_key_packages_by_user ON mls_key_packages (username, last_resort, id);
CREATE TABLE mls_groups (
  group_id         bytea PRIMARY KEY,
  conversation_id  text COLLATE "C" NOT NULL UNIQUE,
  creator          text COLLATE "C" NOT NULL,
  epoch            bigint NOT NULL,
  group_info       bytea NOT NULL,
  group_info_epoch bigint NOT NULL,
  created_at_ms    bigint NOT NULL
);
CREATE INDEX mls_groups_by_creator ON mls_groups (creator);
CREATE TABLE mls_group_members (
  group_id bytea NOT NULL,
  username text COLLATE "C" NOT NULL,
  PRIMARY KEY (group_id, username)
);
CREATE TABLE mls_commits (
  group_id       bytea NOT NULL,
  epoch          bigint NOT NULL,
  sender         text COLLATE "C" NOT NULL,
  commit_msg     bytea NOT NULL,
  accepted_at_ms bigint NOT NULL,
  PRIMARY KEY (group_id, epoch)
);
CREATE TABLE device_lists (
  username      text COLLATE "C" PRIMARY KEY,
  version       bigint NOT NULL,
  list          bytea NOT NULL,
  updated_at_ms bigint NOT NULL
);
CREATE TABLE device_seen (
  username     text COLLATE "C" NOT NULL,
  device_id    text COLLATE "C" NOT NULL,
  last_seen_ms bigint NOT NULL,
  PRIMARY KEY (username, device_id)
);
`;
