// The SQL of the delivery queues (queues.ts): the `accepted`, `envelopes` and `queue` tables'
// statements, prepared once per connection.
import type { DatabaseSync, StatementSync } from "node:sqlite";

export function prepareQueueStatements(db: DatabaseSync) {
  const p = (sql: string): StatementSync => db.prepare(sql);
  return {
    acceptedGet: p("SELECT 1 AS hit FROM accepted WHERE sender = ? AND message_id = ?"),
    acceptedPut: p("INSERT INTO accepted (sender, message_id, accepted_at_ms) VALUES (?, ?, ?)"),
    // What the accepted-id filter is filled from.
    acceptedCount: p("SELECT COUNT(*) AS n FROM accepted"),
    acceptedAll: p("SELECT sender, message_id FROM accepted"),
    envelopePut: p(`INSERT INTO envelopes (conversation_id, sender, message_id, envelope, refs, created_at_ms, payload_kind)
                    VALUES (?, ?, ?, ?, ?, ?, ?)`),
    queuePut: p("INSERT INTO queue (recipient, envelope_id, created_at_ms) VALUES (?, ?, ?)"),
    // A recipient's queue per sender: rows and envelope bytes (length() of a blob reads its
    // record header, not its overflow pages).
    queueUsage: p(`SELECT e.sender AS sender, COUNT(*) AS n, SUM(length(e.envelope)) AS b
                   FROM queue q JOIN envelopes e ON e.id = q.envelope_id WHERE q.recipient = ? GROUP BY e.sender`),
    envelopeMeta: p("SELECT sender, length(envelope) AS b FROM envelopes WHERE id = ?"),
    // AUTOINCREMENT keeps the highest seq ever used here, even after its row was deleted.
    lastSeq: p("SELECT seq FROM sqlite_sequence WHERE name = 'queue'"),
    // Not the envelope bytes: recent ones are in memory (Queues.recent), the rest are
    // read one by one (a 40 KB blob spans a chain of overflow pages that the join would read).
    queueFetch: p(`SELECT q.seq AS seq, q.envelope_id AS envelope_id, e.conversation_id AS conversation_id, q.created_at_ms AS created_at_ms,
                          e.payload_kind AS payload_kind
                   FROM queue q JOIN envelopes e ON e.id = q.envelope_id
                   WHERE q.recipient = ? AND q.seq > ? ORDER BY q.seq LIMIT ?`),
    envelopeBytes: p("SELECT envelope FROM envelopes WHERE id = ?"),
    // Only the recipient's own rows: a client cannot delete someone else's deliveries.
    queueTake: p("DELETE FROM queue WHERE seq = ? AND recipient = ? RETURNING envelope_id"),
    // One statement for an Ack frame's seqs (a JSON array of integers), not one per seq.
    queueTakeMany: p("DELETE FROM queue WHERE recipient = ? AND seq IN (SELECT value FROM json_each(?)) RETURNING seq, envelope_id"),
    envelopeUnrefBy: p("UPDATE envelopes SET refs = refs - ? WHERE id = ?"),
    queueDelete: p("DELETE FROM queue WHERE seq = ?"),
    queueOfRecipient: p("SELECT seq, envelope_id FROM queue WHERE recipient = ?"),
    // A user's linked devices' queues ('username/device_id'; '0' is the character after '/').
    recipientsInRange: p("SELECT DISTINCT recipient FROM queue WHERE recipient >= ? AND recipient < ?"),
    envelopeUnref: p("UPDATE envelopes SET refs = refs - 1 WHERE id = ?"),
    envelopeDrop: p("DELETE FROM envelopes WHERE id = ? AND refs <= 0"),
    envelopeDelete: p("DELETE FROM envelopes WHERE id = ?"),
    purgeQueue: p("DELETE FROM queue WHERE created_at_ms < ?"),
    purgeEnvelopes: p("DELETE FROM envelopes WHERE created_at_ms < ?"),
    purgeAccepted: p("DELETE FROM accepted WHERE accepted_at_ms < ?"),
  };
}
