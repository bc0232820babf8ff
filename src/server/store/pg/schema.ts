// The PostgreSQL store's schema (notes/cluster-design.md §1): all DDL, as numbered migrations,
// the schema version and the relay id in `meta`, and the migration itself.
//
// Many relays share one database. The first to open an empty database creates the schema while
// holding a transaction-scoped advisory lock, so relays starting together do not race: the others
// wait on the lock, then find the version current and go on. A database whose version is newer
// than this code is refused (an old relay must not write rows it does not understand).
//
// Text keys use the "C" collation: ORDER BY matches the embedded store's (byte order, not the
// cluster's locale), lock order is the same in every transaction, and the range of a user's
// linked-device addresses ('name/' .. 'name0') is exact.
import { randomBytes } from "node:crypto";
import { RELAY_ID_BYTES } from "../../../protocol/keys.js";
import { MLS_DEVICE_DDL, MLS_LAST_COMMITTER_DDL } from "./schema-mls.js";
import type { SqlStep, SyncPg } from "./sync-client.js";

/** What `envelopes.payload_kind` holds: a v1 Envelope or an MlsDelivery (as store/schema.ts). */
export const PAYLOAD_ENVELOPE = 0;
export const PAYLOAD_MLS = 1;

const CORE_DDL = `
CREATE TABLE meta (
  key   text COLLATE "C" PRIMARY KEY,
  value bytea NOT NULL
);
CREATE TABLE users (
  username      text COLLATE "C" PRIMARY KEY,
  sig_spki      bytea NOT NULL,
  enc_spki      bytea NOT NULL,
  enc_key_sig   bytea NOT NULL,
  sig_fpr       bytea NOT NULL,
  enc_fpr       bytea NOT NULL,
  created_at_ms bigint NOT NULL
);
CREATE INDEX users_by_sig_fpr ON users (sig_fpr);
-- Stored once per message; one queue row per recipient points at it. No reference count: an
-- envelope goes with its last queue row (ack, release) or, after a race, in the purge.
CREATE TABLE envelopes (
  id              bigserial PRIMARY KEY,
  conversation_id text COLLATE "C" NOT NULL,
  sender          text COLLATE "C" NOT NULL,
  message_id      bytea NOT NULL,
  envelope        bytea NOT NULL,
  payload_kind    smallint NOT NULL DEFAULT ${PAYLOAD_ENVELOPE},
  created_at_ms   bigint NOT NULL
);
-- Ciphertext does not compress: store it out of line without trying.
ALTER TABLE envelopes ALTER COLUMN envelope SET STORAGE EXTERNAL;
CREATE INDEX envelopes_by_time ON envelopes (created_at_ms);
CREATE TABLE queue (
  seq           bigserial PRIMARY KEY,
  recipient     text COLLATE "C" NOT NULL,
  envelope_id   bigint NOT NULL,
  created_at_ms bigint NOT NULL
);
CREATE INDEX queue_by_recipient ON queue (recipient, seq);
CREATE INDEX queue_by_envelope ON queue (envelope_id);
CREATE INDEX queue_by_time ON queue (created_at_ms);
-- One row per queue address ever used, locked (sorted by address) by every transaction that
-- queues rows for it BEFORE it takes seqs: per address, commit order is seq order.
CREATE TABLE queue_heads (
  address text COLLATE "C" PRIMARY KEY
);
CREATE TABLE accepted (
  sender         text COLLATE "C" NOT NULL,
  message_id     bytea NOT NULL,
  accepted_at_ms bigint NOT NULL,
  PRIMARY KEY (sender, message_id)
);
CREATE INDEX accepted_by_time ON accepted (accepted_at_ms);
CREATE TABLE rooms (
  room          text COLLATE "C" PRIMARY KEY,
  created_at_ms bigint NOT NULL
);
CREATE TABLE room_members (
  room         text COLLATE "C" NOT NULL,
  username     text COLLATE "C" NOT NULL,
  joined_at_ms bigint NOT NULL,
  PRIMARY KEY (room, username)
);
CREATE INDEX room_members_by_user ON room_members (username, room);
`;

/** MIGRATIONS[v - 1] takes a database from version v - 1 to v. Append only; never edit a shipped one. */
const MIGRATIONS: readonly string[] = [
  CORE_DDL + MLS_DEVICE_DDL,
  // 2: the per-user bound on kept commits (PROTOCOL.md §8.2; pg/mls.ts trimCommitsOf): a
  // sender's commits oldest first, and what they weigh, kept by triggers on every insert and
  // delete (as store/schema.ts addCommitUsage), filled from the commits already kept.
  `CREATE INDEX IF NOT EXISTS mls_commits_by_sender ON mls_commits (sender, accepted_at_ms);
CREATE TABLE IF NOT EXISTS mls_commit_usage (
  sender  text COLLATE "C" PRIMARY KEY,
  commits bigint NOT NULL,
  bytes   bigint NOT NULL
);
CREATE OR REPLACE FUNCTION mls_commit_usage_in() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO mls_commit_usage AS u (sender, commits, bytes) VALUES (NEW.sender, 1, octet_length(NEW.commit_msg)) ON CONFLICT (sender) DO UPDATE SET commits = u.commits + 1, bytes = u.bytes + excluded.bytes; RETURN NULL; END $$;
CREATE OR REPLACE FUNCTION mls_commit_usage_out() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN UPDATE mls_commit_usage SET commits = commits - 1, bytes = bytes - octet_length(OLD.commit_msg) WHERE sender = OLD.sender; DELETE FROM mls_commit_usage WHERE sender = OLD.sender AND commits <= 0; RETURN NULL; END $$;
CREATE TRIGGER mls_commits_usage_in AFTER INSERT ON mls_commits FOR EACH ROW EXECUTE FUNCTION mls_commit_usage_in();
CREATE TRIGGER mls_commits_usage_out AFTER DELETE ON mls_commits FOR EACH ROW EXECUTE FUNCTION mls_commit_usage_out();
INSERT INTO mls_commit_usage (sender, commits, bytes)
  SELECT sender, count(*), sum(octet_length(commit_msg)) FROM mls_commits GROUP BY sender
  ON CONFLICT (sender) DO UPDATE SET commits = excluded.commits, bytes = excluded.bytes;
`,
  // 3: who made each group's current epoch (PROTOCOL.md §8.2: only they may replace its
  // GroupInfo; pg/mls.ts acceptCommit keeps it), since the per-user bound may drop that commit
  // from mls_commits. Filled from each group's newest kept commit (none kept: NULL, its creator).
  MLS_LAST_COMMITTER_DDL,
];

/** The schema version this code writes. */
export const PG_SCHEMA_VERSION = MIGRATIONS.length;

/** Any constant both sides agree on: the advisory lock every migrating relay takes. */
const MIGRATE_LOCK = 0x5ec_c4a7;

export interface MigrateResult {
  readonly from: number;
  readonly to: number;
}

/** A script's statements, one step each (one hop for all; a statement never ends a line with ';' inside). */
function statementsOf(script: string): SqlStep[] {
  return script.split(/;\s*\n/).map((sql) => sql.trim()).filter((sql) => sql.replace(/--[^\n]*/g, "").trim() !== "").map((sql) => ({ sql }));
}

function versionOf(db: SyncPg): number {
  // A scan of pg_class under this statement's snapshot, not to_regclass: a name lookup would leave
  // a "no such relation" entry in this backend's catalog cache that the advisory lock's wait does
  // not refresh, and the relay that waited would create the tables a second time.
  const [exists] = db.query<{ has: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                    WHERE c.relname = 'meta' AND n.nspname = current_schema()) AS has`,
  );
  if (exists?.has !== true) return 0;
  const [row] = db.query<{ value: Buffer }>("SELECT value FROM meta WHERE key = 'schema_version'");
  if (row === undefined) return 0;
  const v = Number(row.value.toString("utf8"));
  if (!Number.isSafeInteger(v) || v < 0) throw new Error(`the database's schema version "${row.value.toString("utf8")}" is not a number`);
  return v;
}

function refuseNewer(v: number): void {
  if (v > PG_SCHEMA_VERSION) {
    throw new Error(`this relay is older than its database (schema version ${v}, this relay knows up to ${PG_SCHEMA_VERSION}): upgrade chat-relay`);
  }
}

/**
 * Creates or upgrades the schema, under the migration lock, in one transaction (all of it or
 * nothing), and makes the relay id if there is none. Refuses a database newer than this code.
 */
export function migrate(db: SyncPg): MigrateResult {
  // Fast path, no lock: the usual open of a current database.
  const seen = versionOf(db);
  refuseNewer(seen);
  if (seen === PG_SCHEMA_VERSION) return { from: seen, to: seen };
  return db.transaction(() => {
    db.query("SELECT pg_advisory_xact_lock($1)", [MIGRATE_LOCK]);
    const from = versionOf(db); // another relay may have migrated while we waited
    refuseNewer(from);
    for (let v = from + 1; v <= PG_SCHEMA_VERSION; v++) db.batch(statementsOf(MIGRATIONS[v - 1]!));
    if (from !== PG_SCHEMA_VERSION) {
      db.query(`INSERT INTO meta (key, value) VALUES ('schema_version', $1)
                ON CONFLICT (key) DO UPDATE SET value = excluded.value`, [Buffer.from(String(PG_SCHEMA_VERSION))]);
      db.query("INSERT INTO meta (key, value) VALUES ('relay_id', $1) ON CONFLICT (key) DO NOTHING", [randomBytes(RELAY_ID_BYTES)]);
    }
    return { from, to: PG_SCHEMA_VERSION };
  });
}

/** The relay id every relay of this database shares (made by the first migration). */
export function loadRelayId(db: SyncPg): Buffer {
  const [row] = db.query<{ value: Buffer }>("SELECT value FROM meta WHERE key = 'relay_id'");
  if (row === undefined) throw new Error("the database has no relay_id: run chat-relay migrate");
  if (row.value.length !== RELAY_ID_BYTES) throw new Error(`stored relay_id has ${row.value.length} bytes, expected ${RELAY_ID_BYTES}`);
  return Buffer.from(row.value);
}
