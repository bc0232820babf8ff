// The delivery queues: accepted (sender, message_id) pairs for de-duplication, envelopes, and
// one queue row per recipient; enqueue in group-commit batches, fetch in seq order, acks, purge.
//
// The queue is normalised on purpose: one `envelopes` row holds the wire bytes once, and one
// `queue` row per recipient points at it. Storing a copy per recipient (the obvious schema)
// would write ~100 MB for a single message to a 500-member room (each envelope carries one
// 384-byte RSA wrap per member); here that message costs one blob plus 499 small rows.
//
// Queue usage per recipient is cached in memory (CachedUsage) so the queue caps cost no
// COUNT(*) per send, and recently stored envelope bytes are kept (within a budget) so a room
// message is read from memory, not from SQLite once per member.
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { buf, num, PAYLOAD_ENVELOPE, PAYLOAD_MLS, str, type Row, type StoreContext, type Transaction } from "./schema.js";
import { CachedUsage } from "./queue-usage.js";
import { RecentEnvelopes } from "./recent-envelopes.js";

/**
 * What a queued row's stored bytes are: a v1 `Envelope` (Delivery field 3) or a protocol v2
 * `MlsDelivery` (Delivery field 5). Either is delivered byte for byte as stored (frames.ts).
 */
export type QueuedPayload = "envelope" | "mls";

/** One envelope to store, and who gets a queue row for it. */
export interface EnqueueRequest {
  readonly sender: string;
  readonly messageId: Buffer;
  readonly conversationId: string;
  /** The wire `Envelope` protobuf bytes (or, for `payload: "mls"`, the `MlsDelivery` bytes), delivered unchanged. */
  readonly envelope: Uint8Array;
  /** What `envelope` holds (default "envelope"). */
  readonly payload?: QueuedPayload;
  /** Recipients that get a queue row (never the sender). May be empty (lobby, nobody online). */
  readonly recipients: readonly string[];
}

/** What enqueueBatch did with one request. */
export type EnqueueOutcome =
  /** Recorded as accepted and queued for its recipients. */
  | "stored"
  /** (sender, messageId) was accepted before, or earlier in the same batch: nothing stored. */
  | "duplicate";

export interface QueueUsage {
  readonly count: number;
  readonly bytes: number;
  readonly senderCount: number;
  readonly senderBytes: number;
}

export interface QueuedItem {
  readonly seq: number;
  readonly conversationId: string;
  readonly envelope: Buffer;
  /** What `envelope` holds: an Envelope (absent or "envelope") or an MlsDelivery ("mls"). */
  readonly payload?: QueuedPayload;
  /** When the relay accepted the envelope (its queue row's time), shown by clients beside sent_at. */
  readonly relayTimeMs?: number;
}

/** A recipient's processed deliveries, to delete. */
export interface AckRequest {
  readonly recipient: string;
  readonly seqs: readonly number[];
}

export interface PurgeResult {
  readonly queueRows: number;
  readonly envelopes: number;
  readonly acceptedIds: number;
}

function prepareQueueStatements(db: DatabaseSync) {
  const p = (sql: string): StatementSync => db.prepare(sql);
  return {
    acceptedGet: p("SELECT 1 AS hit FROM accepted WHERE sender = ? AND message_id = ?"),
    acceptedPut: p("INSERT INTO accepted (sender, message_id, accepted_at_ms) VALUES (?, ?, ?)"),
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
    queueTakeMany: p("DELETE FROM queue WHERE recipient = ? AND seq IN (SELECT value FROM json_each(?)) RETURNING envelope_id"),
    envelopeUnrefBy: p("UPDATE envelopes SET refs = refs - ? WHERE id = ?"),
    queueDelete: p("DELETE FROM queue WHERE seq = ?"),
    queueOfRecipient: p("SELECT seq, envelope_id FROM queue WHERE recipient = ?"),
    // A user's linked devices' queues ('username/device_id'; '0' is the character after '/').
    recipientsInRange: p("SELECT DISTINCT recipient FROM queue WHERE recipient >= ? AND recipient < ?"),
    envelopeUnref: p("UPDATE envelopes SET refs = refs - 1 WHERE id = ?"),
    envelopeDrop: p("DELETE FROM envelopes WHERE id = ? AND refs <= 0"),
    purgeQueue: p("DELETE FROM queue WHERE created_at_ms < ?"),
    purgeEnvelopes: p("DELETE FROM envelopes WHERE created_at_ms < ?"),
    purgeAccepted: p("DELETE FROM accepted WHERE accepted_at_ms < ?"),
  };
}

/** A row an ack deleted: whose queue, who sent its envelope, the envelope's size. */
interface AckedRow {
  readonly recipient: string;
  readonly sender: string | undefined;
  readonly bytes: number;
}

/** The `accepted`, `envelopes` and `queue` tables, with their two memory caches. */
export class Queues {
  private readonly db: DatabaseSync;
  private readonly clock: () => number;
  private readonly transaction: Transaction;
  private readonly s: ReturnType<typeof prepareQueueStatements>;
  /**
   * Queue usage per recipient (rows and bytes, in all and per sender), loaded lazily from the
   * database and kept in step with enqueue and ack, so the queue caps cost no COUNT(*) on every
   * send (a 500-member room would otherwise count 500 indexes per message).
   */
  private readonly depth = new Map<string, CachedUsage>();
  /**
   * The bytes of recently stored envelopes by row id, oldest first, at most recentBudget in all:
   * a room message goes to every member from memory instead of being read back from SQLite once
   * per member. Entries enter only after their commit and leave when the row is dropped.
   */
  private readonly recent: RecentEnvelopes;
  /** Rows stored by the transaction in progress, cached once it commits. */
  private storing: Array<[number, Buffer]> = [];
  /** What enqueueInside stored in the transactionQueuing in progress. */
  private inside: Array<{ reqs: readonly EnqueueRequest[]; outcomes: EnqueueOutcome[] }> | undefined;

  constructor(c: StoreContext, recentBudget: number) {
    this.recent = new RecentEnvelopes(recentBudget);
    this.db = c.db;
    this.clock = c.clock;
    this.transaction = c.transaction;
    this.s = prepareQueueStatements(c.db);
  }

  /** Drops a released name's queue rows (in a transaction: releaseUser); envelopes nobody else waits for go too. */
  dropQueueLocked(username: string): void {
    for (const row of this.s.queueOfRecipient.all(username) as Row[]) {
      const envelopeId = num(row.envelope_id);
      this.s.queueDelete.run(num(row.seq));
      this.s.envelopeUnref.run(envelopeId);
      this.dropIfUnreferenced(envelopeId);
    }
  }

  /** The linked devices' queue addresses of a user that hold rows ('username/...'; PROTOCOL.md §4.5). */
  deviceQueuesOf(username: string): string[] {
    return (this.s.recipientsInRange.all(`${username}/`, `${username}0`) as Row[]).map((r) => str(r.recipient));
  }

  /** Forgets a recipient's cached usage (its queue changed outside enqueue and ack). */
  forgetUsage(username: string): void {
    this.depth.delete(username);
  }

  /** Drops an envelope whose last queue row is gone (in a transaction). */
  private dropIfUnreferenced(id: number): void {
    if (this.s.envelopeDrop.run(id).changes > 0) this.recent.forget(id);
  }

  wasAccepted(sender: string, messageId: Buffer): boolean {
    return this.s.acceptedGet.get(sender, messageId) !== undefined;
  }

  enqueueBatch(reqs: readonly EnqueueRequest[], acks: readonly AckRequest[] = []): EnqueueOutcome[] {
    if (reqs.length === 0) {
      this.ackBatch(acks);
      return [];
    }
    const now = this.clock();
    let acked: AckedRow[] = [];
    let outcomes: EnqueueOutcome[];
    try {
      outcomes = this.transaction(() => {
        const o = this.enqueueLocked(reqs, now);
        acked = this.ackLocked(acks);
        return o;
      });
      for (const [id, envelope] of this.storing) this.recent.remember(id, envelope);
    } finally {
      this.storing = [];
    }
    this.applyAcked(acked);
    return this.afterEnqueue(reqs, outcomes);
  }

  /**
   * Runs fn in one transaction in which `enqueueInside` may store queue rows (an MLS commit and
   * its deliveries, PROTOCOL.md §8.3: accepted and queued together or not at all). The memory
   * caches learn what was stored only once the transaction committed.
   */
  transactionQueuing<T>(fn: () => T): T {
    if (this.inside !== undefined) throw new Error("transactionQueuing does not nest");
    const inside: Array<{ reqs: readonly EnqueueRequest[]; outcomes: EnqueueOutcome[] }> = [];
    this.inside = inside;
    try {
      const out = this.transaction(fn);
      for (const [id, envelope] of this.storing) this.recent.remember(id, envelope);
      for (const x of inside) this.afterEnqueue(x.reqs, x.outcomes);
      return out;
    } finally {
      this.storing = [];
      this.inside = undefined;
    }
  }

  /** Stores these inside the transaction of transactionQueuing (only there); duplicates by (sender, id) are skipped. */
  enqueueInside(reqs: readonly EnqueueRequest[]): EnqueueOutcome[] {
    if (this.inside === undefined) throw new Error("enqueueInside runs only inside transactionQueuing");
    const outcomes = this.enqueueLocked(reqs, this.clock());
    this.inside.push({ reqs, outcomes });
    return outcomes;
  }

  ackBatch(acks: readonly AckRequest[]): number {
    if (acks.every((a) => a.seqs.length === 0)) return 0;
    let acked: AckedRow[] = [];
    this.db.exec("PRAGMA synchronous = NORMAL");
    try {
      this.transaction(() => {
        acked = this.ackLocked(acks);
      });
    } finally {
      this.db.exec("PRAGMA synchronous = FULL");
    }
    return this.applyAcked(acked);
  }

  /** Deletes acked rows (set-wise per envelope); returns how many rows per recipient. In a transaction. */
  private ackLocked(acks: readonly AckRequest[]): AckedRow[] {
    const taken: Array<[string, number]> = [];
    const unref = new Map<number, number>();
    for (const { recipient, seqs } of acks) {
      const rows = seqs.length === 1
        ? [this.s.queueTake.get(seqs[0]!, recipient) as Row | undefined]
        : (this.s.queueTakeMany.all(recipient, JSON.stringify(seqs.filter(Number.isSafeInteger))) as Row[]);
      for (const row of rows) {
        if (row === undefined) continue;
        const id = num(row.envelope_id);
        unref.set(id, (unref.get(id) ?? 0) + 1);
        taken.push([recipient, id]);
      }
    }
    // Who sent each envelope and its size, before it may be dropped: for the cached usage.
    const meta = new Map<number, { sender: string; bytes: number }>();
    for (const [id, by] of unref) {
      const m = this.s.envelopeMeta.get(id) as Row | undefined;
      if (m !== undefined) meta.set(id, { sender: str(m.sender), bytes: num(m.b) });
      this.s.envelopeUnrefBy.run(by, id);
      this.dropIfUnreferenced(id);
    }
    return taken.map(([recipient, id]) => ({ recipient, sender: meta.get(id)?.sender, bytes: meta.get(id)?.bytes ?? 0 }));
  }

  /** After a commit: the cached usage drops by what was acked. Returns the rows acked. */
  private applyAcked(acked: readonly AckedRow[]): number {
    for (const a of acked) this.depth.get(a.recipient)?.remove(a.sender, a.bytes);
    return acked.length;
  }

  private enqueueLocked(reqs: readonly EnqueueRequest[], now: number): EnqueueOutcome[] {
    return reqs.map((req): EnqueueOutcome => {
      // Also catches a repeat inside this batch: the earlier row is visible in the transaction.
      if (this.wasAccepted(req.sender, req.messageId)) return "duplicate";
      this.s.acceptedPut.run(req.sender, req.messageId, now);
      if (req.recipients.length === 0) return "stored";
      const envelopeId = this.s.envelopePut.run(
        req.conversationId, req.sender, req.messageId, req.envelope, req.recipients.length, now,
        req.payload === "mls" ? PAYLOAD_MLS : PAYLOAD_ENVELOPE,
      ).lastInsertRowid;
      this.storing.push([Number(envelopeId), Buffer.from(req.envelope)]); // a copy: the frame buffer is not ours
      const put = this.s.queuePut;
      for (const r of req.recipients) put.run(r, envelopeId, now);
      return "stored";
    });
  }

  /** Only after the commit: a failed batch leaves the cached depths as they were. */
  private afterEnqueue(reqs: readonly EnqueueRequest[], outcomes: EnqueueOutcome[]): EnqueueOutcome[] {
    reqs.forEach((req, i) => {
      if (outcomes[i] !== "stored") return;
      for (const r of req.recipients) this.depth.get(r)?.add(req.sender, req.envelope.length);
    });
    return outcomes;
  }

  enqueue(req: EnqueueRequest): boolean {
    return this.enqueueBatch([req])[0] === "stored";
  }

  lastSeq(): number {
    const row = this.s.lastSeq.get() as Row | undefined;
    return row === undefined ? 0 : num(row.seq);
  }

  queueDepth(recipient: string): number {
    return this.usageOf(recipient).count;
  }

  queueUsage(recipient: string, sender: string): QueueUsage {
    return this.usageOf(recipient).usage(sender);
  }

  private usageOf(recipient: string): CachedUsage {
    let u = this.depth.get(recipient);
    if (u === undefined) {
      u = new CachedUsage();
      for (const r of this.s.queueUsage.iterate(recipient) as Iterable<Row>) u.add(str(r.sender), num(r.b ?? 0), num(r.n));
      this.depth.set(recipient, u);
    }
    return u;
  }

  fetchQueue(recipient: string, afterSeq: number, limit: number, maxBytes: number): QueuedItem[] {
    const out: QueuedItem[] = [];
    let bytes = 0;
    for (const r of this.s.queueFetch.iterate(recipient, afterSeq, limit) as Iterable<Row>) {
      const id = num(r.envelope_id);
      let envelope = this.recent.get(id);
      if (envelope === undefined) {
        const row = this.s.envelopeBytes.get(id) as Row | undefined;
        if (row === undefined) continue; // the join just found it (one synchronous call): skip, never crash
        envelope = buf(row.envelope);
        this.recent.remember(id, envelope);
      }
      if (out.length > 0 && bytes + envelope.length > maxBytes) break;
      bytes += envelope.length;
      const item: QueuedItem = { seq: num(r.seq), conversationId: str(r.conversation_id), envelope, relayTimeMs: num(r.created_at_ms) };
      out.push(num(r.payload_kind) === PAYLOAD_MLS ? { ...item, payload: "mls" } : item);
    }
    return out;
  }

  ack(recipient: string, seqs: readonly number[]): number {
    if (seqs.length === 0) return 0;
    return this.applyAcked(this.transaction(() => this.ackLocked([{ recipient, seqs }])));
  }

  purgeOlderThan(cutoffMs: number): PurgeResult {
    const result = this.transaction((): PurgeResult => ({
      // An envelope and all its queue rows share one created_at_ms, so dropping both by time
      // never leaves a queue row pointing at a missing envelope.
      queueRows: Number(this.s.purgeQueue.run(cutoffMs).changes),
      envelopes: Number(this.s.purgeEnvelopes.run(cutoffMs).changes),
      acceptedIds: Number(this.s.purgeAccepted.run(cutoffMs).changes),
    }));
    if (result.queueRows > 0) this.depth.clear();
    if (result.envelopes > 0) {
      this.recent.clear();
    }
    return result;
  }
}
