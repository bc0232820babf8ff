// The SQL of the delivery queues (queues.ts): the `accepted`, `accepted_recent`, `envelopes`, `queue_cursors` and
// `queue_acked` tables' statements, prepared once per connection (queue-schema.ts has the tables).
import type { DatabaseSync, StatementSync } from "node:sqlite";

export function prepareQueueStatements(db: DatabaseSync) {
  const p = (sql: string): StatementSync => db.prepare(sql);
  return {
    acceptedGet: p("SELECT 1 AS hit FROM accepted WHERE sender = ? AND message_id = ?"),
    acceptedPut: p("INSERT INTO accepted (sender, message_id, accepted_at_ms) VALUES (?, ?, ?)"),
    // What the accepted-id filter is filled from.
    acceptedCount: p("SELECT COUNT(*) AS n FROM accepted"),
    acceptedAll: p("SELECT sender, message_id FROM accepted"),
    acceptedNewest: p("SELECT MAX(accepted_at_ms) AS m FROM accepted"),
    // The recent ids (schema version 3): one row per transaction, appended; read whole into
    // memory once; the oldest moved into `accepted` past the budget (accepted-ids.ts spillLocked).
    recentPut: p("INSERT INTO accepted_recent (accepted_at_ms, senders, message_ids) VALUES (?, ?, ?)"),
    recentAll: p("SELECT senders, message_ids FROM accepted_recent"),
    recentOldest: p("SELECT id, accepted_at_ms, senders, message_ids FROM accepted_recent ORDER BY id"),
    recentDeleteThrough: p("DELETE FROM accepted_recent WHERE id <= ?"),
    acceptedPutIgnore: p("INSERT OR IGNORE INTO accepted (sender, message_id, accepted_at_ms) VALUES (?, ?, ?)"),
    envelopePut: p(`INSERT INTO envelopes (conversation_id, sender, payload_kind, created_at_ms, recipients, envelope)
                    VALUES (?, ?, ?, ?, ?, ?)`),
    // What memory is rebuilt from (queue-memory.ts load): everything but the bytes (length() of a
    // blob reads its record header, not its overflow pages).
    envelopesAll: p(`SELECT id, sender, conversation_id, created_at_ms, payload_kind, recipients, length(envelope) AS b
                     FROM envelopes ORDER BY id`),
    cursorsAll: p("SELECT recipient, acked_through FROM queue_cursors"),
    ackedAll: p("SELECT recipient, seq FROM queue_acked"),
    // AUTOINCREMENT keeps the highest id ever used here, even after its row was deleted.
    lastSeq: p("SELECT seq FROM sqlite_sequence WHERE name = 'envelopes'"),
    envelopeBytes: p("SELECT envelope FROM envelopes WHERE id = ?"),
    envelopeDelete: p("DELETE FROM envelopes WHERE id = ?"),
    cursorPut: p(`INSERT INTO queue_cursors (recipient, acked_through) VALUES (?, ?)
                  ON CONFLICT (recipient) DO UPDATE SET acked_through = excluded.acked_through`),
    ackedPut: p("INSERT OR IGNORE INTO queue_acked (recipient, seq) VALUES (?, ?)"),
    ackedDelete: p("DELETE FROM queue_acked WHERE recipient = ? AND seq <= ?"),
    ackedDeleteAll: p("DELETE FROM queue_acked WHERE recipient = ?"),
    purgeEnvelopes: p("DELETE FROM envelopes WHERE created_at_ms < ? RETURNING id"),
    purgeAcked: p("DELETE FROM queue_acked WHERE seq NOT IN (SELECT id FROM envelopes)"),
    purgeAccepted: p("DELETE FROM accepted WHERE accepted_at_ms < ?"),
    purgeRecent: p("DELETE FROM accepted_recent WHERE accepted_at_ms < ? RETURNING senders, message_ids"),
  };
}
