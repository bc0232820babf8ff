// The delivery queues: accepted (sender, message_id) pairs for de-duplication, envelopes, and
// each recipient's queue of them; enqueue in group-commit batches, fetch in seq order, acks, purge.
//
// An envelope is stored once, as one `envelopes` row naming its recipients; a recipient's queue is
// the envelopes naming it above its ack cursor (queue-schema.ts has the tables, queue-memory.ts
// how a queue is read from them). Every queue is kept in memory (QueueMemory): a fetch, a depth and
// an ack's bookkeeping cost no query, and the file gets one row per message and one cursor update
// per recipient per commit. A message to a room of K once cost K queue rows with two indexes each,
// inserted and then deleted again; storing each copy per recipient (the obvious schema) would
// write ~100 MB for a single message to a 500-member room (each v1 envelope carries one 384-byte
// RSA wrap per member).
//
// Memory changes inside the store's transactions, and each change registers its inverse with the
// store's UndoLog: a rolled-back transaction leaves memory as the file is. Another connection's
// commit (the operator's `chat-relay users release` beside the live relay) is seen by SQLite's
// data_version, checked once per turn of the event loop and at each transaction: memory is then
// rebuilt from the file. Recently stored envelope bytes are kept within a budget so a room message
// is read from memory, not from SQLite once per member. The accepted ids (de-duplication) are
// kept by accepted-ids.ts.
import type { DatabaseSync } from "node:sqlite";
import { buf, num, PAYLOAD_ENVELOPE, PAYLOAD_MLS, str, type Row, type StoreContext, type Transaction, type UndoLog } from "./schema.js";
import { AcceptedIds, type RecentBudget } from "./accepted-ids.js";
import { FileVersion } from "./file-version.js";
import { firstAbove, QueueMemory, type EnvelopeInfo, type EnvelopeRow } from "./queue-memory.js";
import { prepareQueueStatements } from "./queue-sql.js";
import type { AckRequest, EnqueueOutcome, EnqueueRequest, PurgeResult, QueuedItem, QueueUsage } from "./queue-types.js";
import { RecentEnvelopes } from "./recent-envelopes.js";

export { RECENT_IDS_MAX, type RecentBudget } from "./accepted-ids.js";
export type { AckRequest, EnqueueOutcome, EnqueueRequest, PurgeResult, QueuedItem, QueuedPayload, QueueUsage } from "./queue-types.js";

/** The queue tables, with every queue in memory. */
export class Queues {
  private readonly db: DatabaseSync;
  private readonly clock: () => number;
  private readonly transaction: Transaction;
  private readonly undo: UndoLog;
  private readonly s: ReturnType<typeof prepareQueueStatements>;
  private readonly mem = new QueueMemory();
  /**
   * Each recipient's ack cursor as the file has it (queue_cursors; absent: 0), and the seqs of
   * its `queue_acked` rows (acks above the cursor, made while an earlier row was still queued).
   */
  private cursors = new Map<string, number>();
  private gaps = new Map<string, Set<number>>();
  /**
   * The bytes of recently stored envelopes by row id, oldest first, at most recentBudget in all:
   * a room message goes to every member from memory instead of being read back from SQLite once
   * per member.
   */
  private readonly recent: RecentEnvelopes;
  /** The accepted ids, for de-duplication (accepted-ids.ts). */
  private readonly accepted: AcceptedIds;
  /** SQLite's data_version when memory was last checked against it. */
  private seenVersion = -1;
  /** The file's data_version, read once per turn or transaction (file-version.ts). */
  private readonly version: FileVersion;
  /** transactionQueuing is running: enqueueInside may store. */
  private queuing = false;

  constructor(c: StoreContext, budget: RecentBudget) {
    this.recent = new RecentEnvelopes(budget.envelopeBytes);
    this.db = c.db;
    this.clock = c.clock;
    this.transaction = c.transaction;
    this.undo = c.undo;
    this.s = prepareQueueStatements(c.db);
    this.version = c.version ?? new FileVersion(c.db, c.undo);
    this.accepted = new AcceptedIds(this.s, this.undo, c.clock, budget.acceptedIds);
    // Memory is filled at the first call that needs it (fresh: seenVersion -1), not here: the
    // `chat-relay users` commands open the store and never read a queue.
  }

  /**
   * Rebuilds memory from the file when another connection committed to it since the last look
   * (file-version.ts: once per turn of the event loop, and at the first call in a transaction; a
   * transaction that changes memory calls this first), or when an undo failed.
   */
  private fresh(force = false): void {
    const v = this.version.current(force || this.undo.broken);
    if (v === this.seenVersion && !this.undo.broken) return;
    this.seenVersion = v;
    // An undo that failed may have left an id in memory that the file does not hold: read again.
    if (this.undo.broken) this.accepted.forget();
    this.undo.broken = false;
    this.reload();
  }

  /** Every queue, cursor and acked row from the file; envelopes nobody waits for are deleted. */
  private reload(): void {
    const cursors = new Map<string, number>();
    for (const r of this.s.cursorsAll.iterate() as Iterable<Row>) cursors.set(str(r.recipient), num(r.acked_through));
    const gaps = new Map<string, Set<number>>();
    for (const r of this.s.ackedAll.iterate() as Iterable<Row>) {
      const who = str(r.recipient);
      const set = gaps.get(who) ?? new Set<number>();
      set.add(num(r.seq));
      gaps.set(who, set);
    }
    const rows = (function* (it: Iterable<Row>): Generator<EnvelopeRow> {
      for (const r of it) {
        yield {
          id: num(r.id), sender: str(r.sender), bytes: num(r.b), conversationId: str(r.conversation_id),
          createdAtMs: num(r.created_at_ms), mls: num(r.payload_kind) === PAYLOAD_MLS, recipients: str(r.recipients),
        };
      }
    })(this.s.envelopesAll.iterate() as Iterable<Row>);
    const orphans = this.mem.load(rows, cursors, gaps);
    this.cursors = cursors;
    this.gaps = gaps;
    this.recent.clear();
    if (orphans.length === 0) return;
    const drop = (): void => {
      for (const id of orphans) this.s.envelopeDelete.run(id);
    };
    if (this.db.isTransaction) drop();
    else this.transaction(drop);
  }

  /**
   * Reads every queue, the recent accepted ids and the older ids' filter from the file now (the
   * relay, before it serves: the first session must not wait for them) and says how much waits:
   * envelopes, queued rows over all recipients, and the recent ids now in memory.
   */
  load(): { readonly messages: number; readonly waiting: number; readonly recentIds: number } {
    this.fresh(true);
    const recentIds = this.accepted.load();
    let waiting = 0;
    for (const e of this.mem.envelopes.values()) waiting += e.refs;
    return { messages: this.mem.envelopes.size, waiting, recentIds };
  }

  /** Drops a queue (in a transaction: a released name, a removed device): as if all its rows were acked. */
  dropQueueLocked(address: string): void {
    this.fresh();
    this.ackLocked([{ recipient: address, seqs: [...this.mem.queue(address)] }]);
  }

  /** The linked devices' queue addresses of a user that hold rows ('username/...'; PROTOCOL.md §4.5). */
  deviceQueuesOf(username: string): string[] {
    this.fresh();
    const devices = `${username}/`;
    return [...this.mem.recipients()].filter((r) => r.startsWith(devices)).sort();
  }

  /**
   * A name bound again may have been released by another process (bindings.ts), which dropped its
   * queues (and its devices'): memory is checked against the file now, not at the next turn.
   */
  forgetUsage(username: string): void {
    this.fresh(true);
    this.mem.forgetUsage(username);
  }

  wasAccepted(sender: string, messageId: Buffer): boolean {
    return this.accepted.has(sender, messageId);
  }

  /** Accepted ids in memory, and the bytes of their table (for tests and the stats). */
  get recentIdStats(): { readonly ids: number; readonly bytes: number } {
    return this.accepted.recentIdStats;
  }


  enqueueBatch(reqs: readonly EnqueueRequest[], acks: readonly AckRequest[] = []): EnqueueOutcome[] {
    if (reqs.length === 0) {
      this.ackBatch(acks);
      return [];
    }
    const now = this.clock();
    return this.transaction(() => {
      this.fresh();
      const outcomes = this.enqueueLocked(reqs, now);
      // Rows first, then acks: an ack may take a row this same transaction stored.
      this.ackLocked(acks);
      this.accepted.spillLocked();
      return outcomes;
    });
  }

  /**
   * Runs fn in one transaction in which `enqueueInside` may store queue rows (an MLS commit and
   * its deliveries, PROTOCOL.md §8.3: accepted and queued together or not at all).
   */
  transactionQueuing<T>(fn: () => T): T {
    if (this.queuing) throw new Error("transactionQueuing does not nest");
    this.queuing = true;
    try {
      return this.transaction(() => {
        this.fresh();
        return fn();
      });
    } finally {
      this.queuing = false;
    }
  }

  /** Stores these inside the transaction of transactionQueuing (only there); duplicates by (sender, id) are skipped. */
  enqueueInside(reqs: readonly EnqueueRequest[]): EnqueueOutcome[] {
    if (!this.queuing) throw new Error("enqueueInside runs only inside transactionQueuing");
    const outcomes = this.enqueueLocked(reqs, this.clock());
    this.accepted.spillLocked();
    return outcomes;
  }

  ackBatch(acks: readonly AckRequest[]): number {
    if (acks.every((a) => a.seqs.length === 0)) return 0;
    this.db.exec("PRAGMA synchronous = NORMAL");
    try {
      return this.transaction(() => {
        this.fresh();
        return this.ackLocked(acks);
      });
    } finally {
      this.db.exec("PRAGMA synchronous = FULL");
    }
  }

  /**
   * Takes the acked seqs from their recipients' queues and records it (cursor, acked rows);
   * envelopes nobody waits for any more are deleted. Returns how many rows were taken. In a
   * transaction; a recipient's ack of seqs not in its queue takes nothing (never another's row).
   */
  private ackLocked(acks: readonly AckRequest[]): number {
    let n = 0;
    for (const { recipient, seqs } of acks) {
      const taken = this.mem.take(recipient, seqs);
      if (taken.length === 0) continue;
      n += taken.length;
      this.undo.push(() => this.mem.restore(recipient, taken));
      this.recordAcks(recipient, taken);
      const emptied: Array<[number, EnvelopeInfo]> = [];
      for (const seq of taken) {
        const e = this.mem.envelopes.get(seq);
        if (e === undefined) continue;
        e.refs--;
        if (e.refs > 0) continue;
        this.s.envelopeDelete.run(seq);
        this.mem.envelopes.delete(seq);
        this.recent.forget(seq);
        emptied.push([seq, e]);
      }
      this.undo.push(() => {
        for (const seq of taken) {
          const e = this.mem.envelopes.get(seq);
          if (e !== undefined) e.refs++;
        }
        for (const [seq, e] of emptied) {
          e.refs = 1;
          this.mem.envelopes.set(seq, e);
        }
      });
    }
    return n;
  }

  /**
   * Records that `recipient` processed `taken` (ascending, just taken from its queue): the cursor
   * moves up to just below its first queued row (or to the last taken, its queue now empty), acked
   * rows at or below the cursor go, and taken seqs above it become acked rows. In a transaction.
   */
  private recordAcks(recipient: string, taken: readonly number[]): void {
    const queue = this.mem.queue(recipient);
    const old = this.cursors.get(recipient);
    const gaps = this.gaps.get(recipient);
    let highestGap = 0;
    for (const g of gaps ?? []) highestGap = Math.max(highestGap, g);
    const cursor = queue.length === 0
      ? Math.max(old ?? 0, taken.at(-1)!, highestGap)
      : Math.max(old ?? 0, queue[0]! - 1);
    const before = gaps === undefined ? undefined : new Set(gaps);
    if (cursor !== (old ?? 0)) {
      this.s.cursorPut.run(recipient, cursor);
      this.cursors.set(recipient, cursor);
      if (gaps !== undefined) {
        this.s.ackedDelete.run(recipient, cursor);
        for (const g of gaps) if (g <= cursor) gaps.delete(g);
      }
    }
    const above = taken.filter((seq) => seq > cursor);
    if (above.length > 0) {
      const set = gaps ?? new Set<number>();
      for (const seq of above) {
        this.s.ackedPut.run(recipient, seq);
        set.add(seq);
      }
      this.gaps.set(recipient, set);
    }
    const now = this.gaps.get(recipient);
    if (now !== undefined && now.size === 0) this.gaps.delete(recipient);
    this.undo.push(() => {
      if (old === undefined) this.cursors.delete(recipient);
      else this.cursors.set(recipient, old);
      if (before === undefined) this.gaps.delete(recipient);
      else this.gaps.set(recipient, before);
    });
  }

  /** Stores reqs in the transaction in progress; memory learns them at once (undone on rollback). */
  private enqueueLocked(reqs: readonly EnqueueRequest[], now: number): EnqueueOutcome[] {
    const batch = this.accepted.batch();
    const outcomes = reqs.map((req): EnqueueOutcome => {
      // Also catches a repeat inside this batch: memory learnt the earlier one at once.
      if (this.wasAccepted(req.sender, req.messageId)) return "duplicate";
      this.accepted.recordLocked(req.sender, req.messageId, now, batch);
      const recipients = [...new Set(req.recipients)];
      if (recipients.length === 0) return "stored";
      const mls = req.payload === "mls";
      const id = Number(this.s.envelopePut.run(
        req.conversationId, req.sender, mls ? PAYLOAD_MLS : PAYLOAD_ENVELOPE, now, JSON.stringify(recipients), req.envelope,
      ).lastInsertRowid);
      // A copy of the bytes: the frame buffer is not ours.
      const envelope = Buffer.from(req.envelope);
      const info = this.mem.info({ sender: req.sender, bytes: envelope.length, conversationId: req.conversationId, createdAtMs: now, mls }, 0);
      this.mem.envelopes.set(id, info);
      this.recent.remember(id, envelope);
      const queued: string[] = [];
      for (const r of recipients) {
        if (!this.mem.append(r, id)) continue;
        info.refs++;
        queued.push(r);
      }
      this.undo.push(() => {
        for (const r of queued) this.mem.unappend(r, id);
        this.mem.envelopes.delete(id);
        // SQLite may give this id to the next envelope: its bytes must not be these.
        this.recent.forget(id);
      });
      return "stored";
    });
    this.accepted.writeLocked(batch, now);
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
    this.fresh();
    return this.mem.usageOf(recipient).count;
  }

  queueUsage(recipient: string, sender: string): QueueUsage {
    this.fresh();
    return this.mem.usageOf(recipient).usage(sender);
  }

  fetchQueue(recipient: string, afterSeq: number, limit: number, maxBytes: number): QueuedItem[] {
    this.fresh();
    const out: QueuedItem[] = [];
    if (!(limit > 0) || Number.isNaN(afterSeq)) return out;
    const queue = this.mem.queue(recipient);
    let bytes = 0;
    for (let i = firstAbove(queue, afterSeq); i < queue.length && out.length < limit; i++) {
      const seq = queue[i]!;
      const info = this.mem.envelopes.get(seq);
      let envelope = this.recent.get(seq);
      if (envelope === undefined) {
        const row = this.s.envelopeBytes.get(seq) as Row | undefined;
        if (row === undefined || info === undefined) continue; // never: memory follows the file
        envelope = buf(row.envelope);
        this.recent.remember(seq, envelope);
      }
      if (info === undefined) continue;
      if (out.length > 0 && bytes + envelope.length > maxBytes) break;
      bytes += envelope.length;
      const item: QueuedItem = { seq, conversationId: info.conversationId, envelope, relayTimeMs: info.createdAtMs };
      out.push(info.mls ? { ...item, payload: "mls" } : item);
    }
    return out;
  }

  ack(recipient: string, seqs: readonly number[]): number {
    if (seqs.length === 0) return 0;
    return this.transaction(() => {
      this.fresh();
      return this.ackLocked([{ recipient, seqs }]);
    });
  }

  purgeOlderThan(cutoffMs: number): PurgeResult {
    const purged = new Set<number>();
    const result = this.transaction((): PurgeResult => {
      this.fresh();
      for (const r of this.s.purgeEnvelopes.iterate(cutoffMs) as Iterable<Row>) purged.add(num(r.id));
      if (purged.size > 0) this.s.purgeAcked.run();
      let queueRows = 0;
      for (const id of purged) queueRows += this.mem.envelopes.get(id)?.refs ?? 0;
      return { queueRows, envelopes: purged.size, acceptedIds: this.accepted.purgeLocked(cutoffMs) };
    });
    // After the commit (a rollback changed nothing here): the filter's layers of purged ids go,
    // and the purged envelopes leave every queue.
    this.accepted.purged(cutoffMs);
    if (purged.size > 0) {
      this.mem.dropEnvelopes(purged);
      for (const id of purged) this.recent.forget(id);
      for (const [r, set] of this.gaps) {
        for (const id of purged) set.delete(id);
        if (set.size === 0) this.gaps.delete(r);
      }
    }
    return result;
  }
}

