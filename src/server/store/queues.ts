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
// message is read from memory, not from SQLite once per member. Three more memory structures spare
// the hot path its statements, each exact where it answers and leaving the rest to SQLite: a Bloom
// filter of the accepted ids (accepted-filter.ts: a new id costs no query), the newest rows of
// online recipients' queues (queue-tails.ts: a pump fetches what was just committed from memory)
// and the sender, size and refs of envelopes stored here (envelope-refs.ts: for acks). The tails
// and refs learn a transaction's writes only once it committed; the filter learns them before
// (a rolled-back id's bits only cost a query).
import type { DatabaseSync } from "node:sqlite";
import { buf, num, PAYLOAD_ENVELOPE, PAYLOAD_MLS, str, type Row, type StoreContext, type Transaction } from "./schema.js";
import { AcceptedFilter } from "./accepted-filter.js";
import { EnvelopeRefs } from "./envelope-refs.js";
import { prepareQueueStatements } from "./queue-sql.js";
import { CachedUsage } from "./queue-usage.js";
import { QueueTails } from "./queue-tails.js";
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

/** A row an ack deleted: whose queue, its seq, who sent its envelope, the envelope's size. */
interface AckedRow {
  readonly recipient: string;
  readonly seq: number;
  readonly sender: string | undefined;
  readonly bytes: number;
}

/** What an ack transaction deleted: the rows, and how many of each envelope's (by id). */
interface Acked {
  readonly rows: readonly AckedRow[];
  readonly unref: ReadonlyMap<number, number>;
}

/** An envelope a transaction stored: its row id, its bytes (a copy), and its queue rows' seqs (one per recipient, in order). */
interface Stored {
  readonly id: number;
  readonly envelope: Buffer;
  readonly req: EnqueueRequest;
  readonly seqs: readonly number[];
  readonly now: number;
}

/** What enqueueInside stored in a transactionQueuing: the envelopes, and each call's requests and outcomes. */
interface Inside {
  readonly stored: Stored[];
  readonly batches: Array<{ reqs: readonly EnqueueRequest[]; outcomes: EnqueueOutcome[] }>;
}

/** The `accepted`, `envelopes` and `queue` tables, with their memory caches. */
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
  /** Every accepted (sender, message_id), as a Bloom filter: "no" without a query (accepted-filter.ts). */
  private readonly accepted: AcceptedFilter;
  /** The newest rows of recipients' queues, for fetches without a query (queue-tails.ts). */
  private readonly tails = new QueueTails();
  /** Sender, size and refs of envelopes stored here, for acks (envelope-refs.ts). */
  private readonly refs = new EnvelopeRefs();
  /** What the transactionQueuing in progress stored (enqueueInside), learnt by the caches once it commits. */
  private inside: Inside | undefined;

  constructor(c: StoreContext, recentBudget: number) {
    this.recent = new RecentEnvelopes(recentBudget);
    this.db = c.db;
    this.clock = c.clock;
    this.transaction = c.transaction;
    this.s = prepareQueueStatements(c.db);
    this.accepted = new AcceptedFilter({
      count: () => num((this.s.acceptedCount.get() as Row).n),
      pairs: () => (function* (it: Iterable<Row>) {
        for (const r of it) yield [str(r.sender), buf(r.message_id)] as const;
      })(this.s.acceptedAll.iterate() as Iterable<Row>),
    });
  }

  /** Drops a released name's queue rows (in a transaction: releaseUser); envelopes nobody else waits for go too. */
  dropQueueLocked(username: string): void {
    this.tails.drop(username);
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

  /**
   * Forgets a recipient's cached usage and queue tail (its queue changed outside enqueue and ack).
   * A name bound again may have been released by another process (bindings.ts), which dropped its
   * devices' queues too ('username/...'): theirs go as well.
   */
  forgetUsage(username: string): void {
    this.depth.delete(username);
    this.tails.drop(username);
    const devices = `${username}/`;
    for (const address of this.depth.keys()) if (address.startsWith(devices)) this.depth.delete(address);
    this.tails.dropPrefixed(devices);
  }

  /** Drops an envelope whose last queue row is gone (in a transaction). */
  private dropIfUnreferenced(id: number): void {
    if (this.s.envelopeDrop.run(id).changes > 0) this.dropped(id);
  }

  private dropped(id: number): void {
    this.recent.forget(id);
    this.refs.forget(id);
  }

  wasAccepted(sender: string, messageId: Buffer): boolean {
    // The filter's "no" is exact; a "maybe" is asked of the table (which, inside a transaction,
    // also holds its rows: a repeat within one batch).
    return this.accepted.mayContain(sender, messageId) && this.s.acceptedGet.get(sender, messageId) !== undefined;
  }

  enqueueBatch(reqs: readonly EnqueueRequest[], acks: readonly AckRequest[] = []): EnqueueOutcome[] {
    if (reqs.length === 0) {
      this.ackBatch(acks);
      return [];
    }
    const now = this.clock();
    let acked: Acked | undefined;
    const stored: Stored[] = [];
    const outcomes = this.transaction(() => {
      const o = this.enqueueLocked(reqs, now, stored);
      acked = this.ackLocked(acks);
      return o;
    });
    this.committed(stored);
    // Rows first, then acks: an ack may take a row this same transaction stored.
    this.afterEnqueue(reqs, outcomes);
    this.applyAcked(acked);
    return outcomes;
  }

  /**
   * Runs fn in one transaction in which `enqueueInside` may store queue rows (an MLS commit and
   * its deliveries, PROTOCOL.md §8.3: accepted and queued together or not at all). The memory
   * caches learn what was stored only once the transaction committed.
   */
  transactionQueuing<T>(fn: () => T): T {
    if (this.inside !== undefined) throw new Error("transactionQueuing does not nest");
    const inside: Inside = { stored: [], batches: [] };
    this.inside = inside;
    try {
      const out = this.transaction(fn);
      this.committed(inside.stored);
      for (const x of inside.batches) this.afterEnqueue(x.reqs, x.outcomes);
      return out;
    } finally {
      this.inside = undefined;
    }
  }

  /** Stores these inside the transaction of transactionQueuing (only there); duplicates by (sender, id) are skipped. */
  enqueueInside(reqs: readonly EnqueueRequest[]): EnqueueOutcome[] {
    if (this.inside === undefined) throw new Error("enqueueInside runs only inside transactionQueuing");
    const outcomes = this.enqueueLocked(reqs, this.clock(), this.inside.stored);
    this.inside.batches.push({ reqs, outcomes });
    return outcomes;
  }

  ackBatch(acks: readonly AckRequest[]): number {
    if (acks.every((a) => a.seqs.length === 0)) return 0;
    let acked: Acked | undefined;
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

  /** Deletes acked rows (set-wise per envelope); returns them, and how many of each envelope's. In a transaction. */
  private ackLocked(acks: readonly AckRequest[]): Acked {
    const taken: Array<[string, number, number]> = [];
    const unref = new Map<number, number>();
    for (const { recipient, seqs } of acks) {
      const rows = seqs.length === 1
        ? [this.s.queueTake.get(seqs[0]!, recipient) as Row | undefined]
        : (this.s.queueTakeMany.all(recipient, JSON.stringify(seqs.filter(Number.isSafeInteger))) as Row[]);
      for (const row of rows) {
        if (row === undefined) continue;
        const id = num(row.envelope_id);
        unref.set(id, (unref.get(id) ?? 0) + 1);
        taken.push([recipient, row.seq === undefined ? seqs[0]! : num(row.seq), id]);
      }
    }
    // Who sent each envelope and its size, before it may be dropped: for the cached usage. From
    // memory for the envelopes stored here, whose last rows then delete them at once.
    const meta = new Map<number, { sender: string; bytes: number }>();
    for (const [id, by] of unref) {
      const known = this.refs.get(id);
      if (known !== undefined) {
        meta.set(id, known);
        if (known.refs <= by) {
          if (this.s.envelopeDelete.run(id).changes > 0) this.dropped(id);
          continue;
        }
      } else {
        const m = this.s.envelopeMeta.get(id) as Row | undefined;
        if (m !== undefined) meta.set(id, { sender: str(m.sender), bytes: num(m.b) });
      }
      this.s.envelopeUnrefBy.run(by, id);
      this.dropIfUnreferenced(id);
    }
    const rows = taken.map(([recipient, seq, id]) => ({ recipient, seq, sender: meta.get(id)?.sender, bytes: meta.get(id)?.bytes ?? 0 }));
    return { rows, unref };
  }

  /** After a commit: the cached usage and refs drop by what was acked, and the acked rows leave the tails. Returns the rows acked. */
  private applyAcked(acked: Acked | undefined): number {
    if (acked === undefined) return 0;
    for (const a of acked.rows) {
      this.depth.get(a.recipient)?.remove(a.sender, a.bytes);
      this.tails.remove(a.recipient, a.seq);
    }
    for (const [id, by] of acked.unref) this.refs.taken(id, by);
    return acked.rows.length;
  }

  /** Stores reqs in the transaction in progress; what it stored is added to `stored`, for the caches after the commit. */
  private enqueueLocked(reqs: readonly EnqueueRequest[], now: number, stored: Stored[]): EnqueueOutcome[] {
    return reqs.map((req): EnqueueOutcome => {
      // Also catches a repeat inside this batch: the earlier row is visible in the transaction.
      if (this.wasAccepted(req.sender, req.messageId)) return "duplicate";
      this.s.acceptedPut.run(req.sender, req.messageId, now);
      this.accepted.add(req.sender, req.messageId);
      if (req.recipients.length === 0) return "stored";
      const envelopeId = this.s.envelopePut.run(
        req.conversationId, req.sender, req.messageId, req.envelope, req.recipients.length, now,
        req.payload === "mls" ? PAYLOAD_MLS : PAYLOAD_ENVELOPE,
      ).lastInsertRowid;
      this.refs.forget(Number(envelopeId)); // a dropped envelope's id, maybe: known again once this commits
      const put = this.s.queuePut;
      const seqs = req.recipients.map((r) => Number(put.run(r, envelopeId, now).lastInsertRowid));
      // A copy of the bytes: the frame buffer is not ours.
      stored.push({ id: Number(envelopeId), envelope: Buffer.from(req.envelope), req, seqs, now });
      return "stored";
    });
  }

  /** After the commit of `stored`: their bytes are recent, and their rows join their recipients' tails (in seq order). */
  private committed(stored: readonly Stored[]): void {
    for (const { id, envelope, req, seqs, now } of stored) {
      this.recent.remember(id, envelope);
      this.refs.stored(id, req.sender, envelope.length, seqs.length);
      const base = { conversationId: req.conversationId, envelope, relayTimeMs: now };
      const mls = req.payload === "mls";
      req.recipients.forEach((r, i) => {
        if (!this.tails.has(r)) return;
        const seq = seqs[i]!;
        this.tails.append(r, mls ? { seq, ...base, payload: "mls" } : { seq, ...base });
      });
    }
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
    // The tail answers for committed rows only: not inside a transaction (whose rows SQL shows).
    const tailable = Number.isSafeInteger(afterSeq) && afterSeq >= 0 && Number.isSafeInteger(limit) && limit > 0 && !this.db.isTransaction;
    if (tailable) {
      const fromTail = this.tails.fetch(recipient, afterSeq, limit, maxBytes);
      if (fromTail !== undefined) return fromTail;
    }
    const out: QueuedItem[] = [];
    let bytes = 0;
    // One row more than asked: whether the queue ends within `limit`.
    let complete = true;
    for (const r of this.s.queueFetch.iterate(recipient, afterSeq, tailable ? limit + 1 : limit) as Iterable<Row>) {
      if (out.length === limit) {
        complete = false;
        break;
      }
      const id = num(r.envelope_id);
      let envelope = this.recent.get(id);
      if (envelope === undefined) {
        const row = this.s.envelopeBytes.get(id) as Row | undefined;
        if (row === undefined) { // the join just found it (one synchronous call): skip, never crash
          complete = false;
          continue;
        }
        envelope = buf(row.envelope);
        this.recent.remember(id, envelope);
      }
      if (out.length > 0 && bytes + envelope.length > maxBytes) {
        complete = false;
        break;
      }
      bytes += envelope.length;
      const item: QueuedItem = { seq: num(r.seq), conversationId: str(r.conversation_id), envelope, relayTimeMs: num(r.created_at_ms) };
      out.push(num(r.payload_kind) === PAYLOAD_MLS ? { ...item, payload: "mls" } : item);
    }
    // Every row after afterSeq was read: the recipient's tail from here (queue-tails.ts).
    if (tailable && complete) this.tails.track(recipient, afterSeq, out);
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
    if (result.queueRows > 0) {
      this.depth.clear();
      this.tails.clear();
    }
    if (result.envelopes > 0) {
      this.recent.clear();
      this.refs.clear();
    }
    return result;
  }
}
