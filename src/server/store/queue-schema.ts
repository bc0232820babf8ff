// The delivery queues' tables (schema version 2), and the migration of a version-1 file.
//
// Version 1 kept one `queue` row per (recipient, envelope) with two indexes, inserted at send and
// deleted at ack: a message to a room of K wrote K rows (3 B-tree entries each) and deleted them
// again. Version 2 keeps one `envelopes` row naming its recipients, a cursor per recipient and the
// acks above a gap (queue-memory.ts says how a queue is read from them); `queue` is now a view
// that computes the same rows, for operators and tests that read the file.
import type { DatabaseSync } from "node:sqlite";
import { num, type Row } from "./schema.js";

/** The tables of version 2 (CREATE ... IF NOT EXISTS: run at every open). */
export const QUEUE_TABLES = `
CREATE TABLE IF NOT EXISTS envelopes (
  id              INTEGER PRIMARY KEY AUTOINCREMENT,
  conversation_id TEXT NOT NULL,
  sender          TEXT NOT NULL,
  payload_kind    INTEGER NOT NULL,
  created_at_ms   INTEGER NOT NULL,
  recipients      TEXT NOT NULL,
  envelope        BLOB NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS envelopes_by_time ON envelopes (created_at_ms);
CREATE TABLE IF NOT EXISTS queue_cursors (
  recipient     TEXT PRIMARY KEY,
  acked_through INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS queue_acked (
  recipient TEXT NOT NULL,
  seq       INTEGER NOT NULL,
  PRIMARY KEY (recipient, seq)
) STRICT, WITHOUT ROWID;
`;

/** Each recipient's queued rows as version 1 stored them, computed from version 2's tables. */
const QUEUE_VIEW = `
CREATE VIEW IF NOT EXISTS queue (recipient, seq, envelope_id, created_at_ms) AS
  SELECT r.value, e.id, e.id, e.created_at_ms FROM envelopes e, json_each(e.recipients) r
  WHERE e.id > COALESCE((SELECT c.acked_through FROM queue_cursors c WHERE c.recipient = r.value), 0)
    AND NOT EXISTS (SELECT 1 FROM queue_acked a WHERE a.recipient = r.value AND a.seq = e.id);
`;

/**
 * Makes the queue tables of version 2, migrating a version-1 file's in one transaction: each
 * envelope with queue rows becomes one row naming their recipients. Seqs: version 1 gave each
 * queue row its own; a client may still ack one of those, so every migrated envelope gets a new id
 * above the highest seq version 1 ever gave (its AUTOINCREMENT counter), in the order of its first
 * row: each recipient's queue keeps its order, and no old seq can name a new envelope.
 */
export function prepareQueueTables(db: DatabaseSync): void {
  const old = db.prepare("SELECT type FROM sqlite_master WHERE name = 'queue'").get() as Row | undefined;
  if (old?.type !== "table") {
    db.exec(QUEUE_TABLES + QUEUE_VIEW);
    return;
  }
  db.exec("BEGIN IMMEDIATE");
  try {
    const columns = db.prepare("PRAGMA table_info(envelopes)").all() as Row[];
    const kind = columns.some((c) => c.name === "payload_kind") ? "e.payload_kind" : "0";
    const counter = db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'queue'").get() as Row | undefined;
    const highest = db.prepare("SELECT MAX(seq) AS m FROM queue").get() as Row;
    const above = Math.max(counter === undefined ? 0 : num(counter.seq), highest.m === null ? 0 : num(highest.m));
    db.exec(`DROP INDEX IF EXISTS envelopes_by_time;
ALTER TABLE envelopes RENAME TO envelopes_v1;`);
    db.exec(QUEUE_TABLES);
    db.prepare(`INSERT INTO envelopes (id, conversation_id, sender, payload_kind, created_at_ms, recipients, envelope)
      SELECT ? + ROW_NUMBER() OVER (ORDER BY q.first_seq), e.conversation_id, e.sender, ${kind}, e.created_at_ms, q.recipients, e.envelope
      FROM envelopes_v1 e
      JOIN (SELECT envelope_id, MIN(seq) AS first_seq, json_group_array(DISTINCT recipient) AS recipients FROM queue GROUP BY envelope_id) q
        ON q.envelope_id = e.id`).run(above);
    // The counter: at least `above` (the INSERT made its row, at 0 when it copied nothing).
    db.prepare("UPDATE sqlite_sequence SET seq = MAX(seq, ?) WHERE name = 'envelopes'").run(above);
    db.prepare(`INSERT INTO sqlite_sequence (name, seq) SELECT 'envelopes', ?
                WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'envelopes')`).run(above);
    db.exec(`DROP TABLE queue;
DROP TABLE envelopes_v1;`);
    db.exec(QUEUE_VIEW);
    db.exec("PRAGMA user_version = 2");
    db.exec("COMMIT");
  } catch (e) {
    if (db.isTransaction) db.exec("ROLLBACK");
    throw e;
  }
}
