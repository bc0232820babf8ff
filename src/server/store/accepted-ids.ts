// The accepted (sender, message_id) pairs of the embedded store, for de-duplication (PROTOCOL.md
// §8.4: stored once), in two tables. A new id is appended to `accepted_recent`, one row per
// transaction (the senders as JSON, the 16-byte ids end to end), and kept exactly in memory
// (recent-ids.ts): no B-tree insert at a random place per message. Past a budget of ids, the
// oldest rows move in bulk (sorted) into `accepted`, whose primary key answers for them; a Bloom
// filter of that table (accepted-filter.ts) spares a new id the query. Nobody but the relay writes
// either table (`chat-relay users` never does), so what memory holds of them is read once.
// Everything here runs inside the queues' transactions (queues.ts), and every change to memory
// registers its inverse with the store's UndoLog.
import { buf, num, str, type Row, type UndoLog } from "./schema.js";
import { AcceptedFilter } from "./accepted-filter.js";
import type { prepareQueueStatements } from "./queue-sql.js";
import { RECENT_ID_BYTES, RecentIds } from "./recent-ids.js";

/**
 * Accepted ids kept in memory before the oldest move into `accepted` (the default): 3/4 of 2^20
 * slots of 20 bytes, so the table stays at 20 MiB.
 */
export const RECENT_IDS_MAX = 786_432;
/** Ids moved at least per move (sorted first: neighbours share a page of the index). */
const SPILL_MIN = 1024;

/** What the queues keep in memory beyond the queues themselves. */
export interface RecentBudget {
  /** Bytes of recently stored envelopes (delivered from memory). */
  readonly envelopeBytes: number;
  /** Accepted ids in `accepted_recent` (exact, in memory) before the oldest move to `accepted`. */
  readonly acceptedIds: number;
}

/** The accepted ids: the recent ones exact in memory, the older ones behind a Bloom filter. */
export class AcceptedIds {
  /** Every (sender, message_id) of `accepted`, as a Bloom filter: "no" without a query (accepted-filter.ts). */
  private readonly filter: AcceptedFilter;
  /** Every (sender, message_id) of `accepted_recent`, exactly; filled at first use (recentLoaded). */
  private readonly recentIds = new RecentIds();
  private recentLoaded = false;

  constructor(
    private readonly s: ReturnType<typeof prepareQueueStatements>,
    private readonly undo: UndoLog,
    clock: () => number,
    private readonly recentIdsMax: number,
  ) {
    if (!(Number.isSafeInteger(recentIdsMax) && recentIdsMax >= 1)) throw new Error("the recent accepted ids' budget is a positive integer");
    this.filter = new AcceptedFilter({
      count: () => num((this.s.acceptedCount.get() as Row).n),
      pairs: () => (function* (it: Iterable<Row>) {
        for (const r of it) yield [str(r.sender), buf(r.message_id)] as const;
      })(this.s.acceptedAll.iterate() as Iterable<Row>),
      newestMs: () => {
        const m = (this.s.acceptedNewest.get() as Row).m;
        return m === null ? Number.NEGATIVE_INFINITY : num(m);
      },
    }, clock);
  }

  /** Reads both from the file now (the relay, before it serves); how many recent ids memory holds. */
  load(): number {
    this.filter.warm();
    return this.recentIdsNow().size;
  }

  /** An undo failed: memory may hold an id the file does not; read the rows again at the next use. */
  forget(): void {
    this.recentLoaded = false;
  }

  has(sender: string, messageId: Uint8Array): boolean {
    // Memory holds every recent id exactly (inside a transaction, its own too: a repeat within one
    // batch). For `accepted`, the filter's "no" is exact and a "maybe" is asked of the table.
    if (messageId.length === RECENT_ID_BYTES && this.recentIdsNow().has(sender, messageId)) return true;
    return this.filter.mayContain(sender, messageId) && this.s.acceptedGet.get(sender, messageId) !== undefined;
  }

  /** A batch of ids to record, then write in one row (recordLocked, writeLocked). */
  batch(): AcceptedBatch {
    return { senders: [], ids: [] };
  }

  /** The recent ids, read from `accepted_recent` at the first call (the relay: before it serves). */
  private recentIdsNow(): RecentIds {
    if (!this.recentLoaded) {
      this.recentIds.clear();
      for (const r of this.s.recentAll.iterate() as Iterable<Row>) {
        for (const [sender, id] of recentRowIds(r)) this.recentIds.add(sender, id);
      }
      this.recentLoaded = true;
    }
    return this.recentIds;
  }

  /** Accepted ids in memory, and the bytes of their table (for tests and the stats). */
  get recentIdStats(): { readonly ids: number; readonly bytes: number } {
    return { ids: this.recentIdsNow().size, bytes: this.recentIds.bytes };
  }

  /**
   * Records (sender, id) as accepted at `now`, in the transaction in progress (undone with it):
   * memory at once (a repeat later in the batch is a duplicate), the file in the batch's one
   * `accepted_recent` row (`batch`, written by writeLocked).
   */
  recordLocked(sender: string, messageId: Uint8Array, now: number, batch: AcceptedBatch): void {
    if (messageId.length !== RECENT_ID_BYTES) {
      // Never from a client (ids are 16 bytes, checked at the frame); kept exact all the same.
      this.s.acceptedPut.run(sender, messageId, now);
      this.filter.add(sender, messageId, now);
      return;
    }
    const ids = this.recentIdsNow();
    ids.add(sender, messageId);
    this.undo.push(() => ids.delete(sender, messageId));
    batch.senders.push(sender);
    batch.ids.push(messageId);
  }

  /** The batch's recent ids as one `accepted_recent` row (none when it accepted none). */
  writeLocked(batch: AcceptedBatch, now: number): void {
    if (batch.ids.length === 0) return;
    this.s.recentPut.run(now, JSON.stringify(batch.senders), Buffer.concat(batch.ids));
  }

  /**
   * Past the budget, the oldest recent ids move into `accepted` (in steps of SPILL_MIN, sorted by
   * key so that neighbours share an index page), in the transaction in progress: memory forgets
   * them, and the filter learns them, as the file does (undone with it).
   */
  spillLocked(): void {
    const ids = this.recentIdsNow();
    if (ids.size <= this.recentIdsMax) return;
    // At least SPILL_MIN (half the budget when that is smaller: a test's budget of a few ids).
    const n = Math.max(Math.min(SPILL_MIN, Math.ceil(this.recentIdsMax / 2)), ids.size - this.recentIdsMax);
    // Whole rows, oldest first, until they hold n ids.
    const rows: Array<{ readonly sender: string; readonly messageId: Buffer; readonly at: number }> = [];
    let through = -1;
    for (const r of this.s.recentOldest.iterate() as Iterable<Row>) {
      const at = num(r.accepted_at_ms);
      for (const [sender, messageId] of recentRowIds(r)) rows.push({ sender, messageId, at });
      through = num(r.id);
      if (rows.length >= n) break;
    }
    if (through < 0) return;
    rows.sort((a, b) => (a.sender < b.sender ? -1 : a.sender > b.sender ? 1 : Buffer.compare(a.messageId, b.messageId)));
    for (const r of rows) {
      this.s.acceptedPutIgnore.run(r.sender, r.messageId, r.at);
      this.filter.add(r.sender, r.messageId, r.at);
      ids.delete(r.sender, r.messageId);
    }
    this.s.recentDeleteThrough.run(through);
    this.undo.push(() => {
      for (const r of rows) ids.add(r.sender, r.messageId);
    });
  }

  /**
   * Deletes the ids accepted before `cutoffMs` from both tables, in the transaction in progress,
   * and forgets the recent ones in memory (undone with it); how many went. `purged` follows the
   * commit.
   */
  purgeLocked(cutoffMs: number): number {
    const older = Number(this.s.purgeAccepted.run(cutoffMs).changes);
    const ids = this.recentIdsNow();
    const gone = (this.s.purgeRecent.all(cutoffMs) as Row[]).flatMap((r) => recentRowIds(r));
    for (const [sender, id] of gone) ids.delete(sender, id);
    this.undo.push(() => {
      for (const [sender, id] of gone) ids.add(sender, id);
    });
    return older + gone.length;
  }

  /** After a purge's commit: the filter's layers of purged ids go (a rollback changed nothing). */
  purged(cutoffMs: number): void {
    this.filter.purged(cutoffMs);
  }
}

/** The ids one transaction accepted, for its `accepted_recent` row. */
export interface AcceptedBatch {
  readonly senders: string[];
  readonly ids: Uint8Array[];
}

/** The (sender, id) pairs of an `accepted_recent` row: its senders (JSON) and their ids end to end. */
function recentRowIds(r: Row): Array<readonly [string, Buffer]> {
  const senders = JSON.parse(str(r.senders)) as unknown;
  const ids = buf(r.message_ids);
  if (!Array.isArray(senders) || !senders.every((x) => typeof x === "string") || ids.length !== senders.length * RECENT_ID_BYTES) {
    throw new Error("an accepted_recent row is damaged: its senders and ids do not match");
  }
  return senders.map((sender: string, i) => [sender, ids.subarray(i * RECENT_ID_BYTES, (i + 1) * RECENT_ID_BYTES)] as const);
}
