// Group commit: envelopes admitted by any session are stored together, one transaction and one
// fsync per batch, before any of their senders hears ACCEPTED (PROTOCOL.md §8.4).
//
// Every setImmediate (after an I/O phase) commits what the sessions admitted since the last
// commit. So the batch grows with the load by itself: an idle relay commits a lone envelope at
// once (no timer adds latency), a busy one pays one transaction for many envelopes.
//
// On the embedded store (store.deferred, store/wal-sync.ts) the transaction commits without
// waiting for the disk and one fdatasync of the WAL runs on libuv's thread pool; the batch is
// answered and delivered only once that returned. The loop meanwhile reads frames, admits the
// next batch and delivers what is durable; the next batch commits when the sync returned (or at
// once when it reaches maxBatchBytes: one sync then covers all the commits before it). A sync
// that fails refuses its batches and every later one: nothing after it is known to be on disk,
// and the relay stops (onSyncFailed). The PostgreSQL store (and "per-envelope", the benchmark's
// comparison) commits synchronously: the batch settles when the commit returns.
//
// Guarantees, each kept in one place here:
//   - a submission settles only after its transaction committed and is durable (stored) or
//     failed (refused); batches settle in commit order;
//   - deliveries start only after the commit is durable (onCommitted wakes the recipients'
//     pumps; the store hides rows not durable yet from fetchQueue);
//   - a failed commit refuses every envelope of its batch and stores none of them; the next
//     batch starts afresh, so the relay keeps serving;
//   - (sender, message_id) is stored once: the store checks ids inside the transaction, and a
//     resend that arrives while the first copy waits for its commit or its sync shares that
//     batch's fate (whenCommitted), so it is never answered ACCEPTED for an envelope that then fails;
//   - queue caps count what waits for the commit (pendingFor), not only what is stored;
//   - acks never fail with a batch: on the embedded store they ride in the batch's own
//     transaction (one commit instead of two), and when that transaction fails they are
//     committed in one of their own and the batch is tried once more in the space they freed;
//     elsewhere (and with no batch) they go first, alone. So recipients who read free space and
//     a full relay drains by itself (issue 16). Acks that fail are kept for the next commit;
//   - a batch is committed early once it holds maxBatchBytes, so one transaction (and so the
//     WAL) stays within the database budget's WAL allowance.
import type { Logger } from "../protocol/log.js";
import { ErrorCode } from "../gen/securechat/v1/chat.js";
import { Refusal, shuttingDownRefusal, storageRefusalOf } from "./errors.js";
import type { AckRequest, EnqueueOutcome, EnqueueRequest, QueueUsage, RelayStore } from "./store.js";
import { CachedUsage } from "./store/queue-usage.js";

/** What a recipient with nothing in the current batch has pending (shared, frozen). */
const NOTHING_PENDING: QueueUsage = Object.freeze({ count: 0, bytes: 0, senderCount: 0, senderBytes: 0 });

/** How a submitted envelope ended: stored (or found stored before), or refused for its whole batch. */
export type CommitResult =
  | { readonly ok: true; readonly duplicate: boolean }
  | { readonly ok: false; readonly refusal: Refusal };

/**
 * "group": one transaction per batch (the relay's way). "per-envelope": one transaction per
 * envelope, committed at once: the old behaviour, kept so the benchmark can compare the two.
 */
export type CommitMode = "group" | "per-envelope";

export interface GroupCommitterOptions {
  readonly store: RelayStore;
  readonly logger: Logger;
  readonly mode?: CommitMode;
  /** After each successful commit: how many rows each recipient got (wakes their pumps). */
  readonly onCommitted: (rowsPerRecipient: ReadonlyMap<string, number>) => void;
  /** Envelope bytes in one batch beyond which it is committed at once (default: no limit). */
  readonly maxBatchBytes?: number;
  /**
   * A commit failed for lack of space or an I/O error: free what can be freed (the disk
   * reserve, disk-budget.ts). True when something was freed; the acks are then retried at once.
   */
  readonly onStorageFull?: () => boolean;
  /**
   * Rows of other commits (MLS commits) that waited behind a batch's sync are durable now: kick
   * these recipients' pumps (a fetch of theirs was cut meanwhile; their rows were counted already).
   */
  readonly onRowsShown?: (recipients: ReadonlySet<string>) => void;
  /** A WAL sync failed: every batch since is refused, and so is every later one. The relay stops. */
  readonly onSyncFailed?: (error: unknown) => void;
}

/** A batch whose sync failed, and every submission after it. */
function syncFailedRefusal(): Refusal {
  return new Refusal(ErrorCode.ERROR_CODE_STORAGE_UNAVAILABLE,
    "the relay could not make the message durable on its disk (a sync failed) and stops; send it again once it is back");
}

/** Ack seqs kept for a retry after a failed ack commit, at most (older ones are dropped: redelivered). */
const MAX_RETRY_ACK_SEQS = 65_536;

interface Pending {
  readonly req: EnqueueRequest;
  readonly key: string;
  readonly settle: (r: CommitResult) => void;
  readonly result: Promise<CommitResult>;
}

const keyOf = (sender: string, messageId: Uint8Array): string => `${sender}\u0000${Buffer.from(messageId).toString("hex")}`;

export class GroupCommitter {
  private batch: Pending[] = [];
  /** The submissions of `batch` by (sender, message id). */
  private readonly byKey = new Map<string, Pending>();
  /** Rows and envelope bytes `batch` will add per recipient, in all and per sender, for queue caps. */
  private readonly pending = new Map<string, CachedUsage>();
  /** Envelope bytes in `batch`. */
  private batchBytes = 0;
  private scheduled: NodeJS.Immediate | undefined;
  /** Committed batches' submissions waiting for their sync, by (sender, message id). */
  private readonly syncing = new Map<string, Pending>();
  /** Batches waiting for their sync; `idle` resolves when none is left. */
  private waitingSyncs = 0;
  private whenIdle: Array<() => void> = [];
  /** Set once a sync failed: every submission is refused with it. */
  private failure: Refusal | undefined;
  /** Acks waiting for the next transaction (with the envelopes, or alone without an fsync). */
  private acks: AckRequest[] = [];
  private closed = false;
  private readonly mode: CommitMode;
  /** Counters for tests, logs and the benchmark. */
  readonly stats = { commits: 0, envelopes: 0, failedCommits: 0, largestBatch: 0, commitMs: 0, ackCommits: 0, failedAckCommits: 0, syncs: 0, failedSyncs: 0 };

  constructor(private readonly o: GroupCommitterOptions) {
    this.mode = o.mode ?? "group";
  }

  /** Rows waiting for the next commit for this recipient (they count towards its queue cap). */
  pendingFor(recipient: string): number {
    return this.pending.get(recipient)?.count ?? 0;
  }

  /** What `batch` adds to a recipient's queue: in all, and from one sender (queue caps, shares). */
  pendingUsage(recipient: string, sender: string): QueueUsage {
    return this.pending.get(recipient)?.usage(sender) ?? NOTHING_PENDING;
  }

  /** The outcome of a submission of (sender, messageId) still waiting for its commit, if any. */
  whenCommitted(sender: string, messageId: Uint8Array): Promise<CommitResult> | undefined {
    const key = keyOf(sender, messageId);
    return (this.byKey.get(key) ?? this.syncing.get(key))?.result;
  }

  /** Resolves once no committed batch waits for its sync (shutdown: before the store closes). */
  idle(): Promise<void> {
    if (this.waitingSyncs === 0) return Promise.resolve();
    return new Promise((resolve) => this.whenIdle.push(resolve));
  }

  /**
   * Stores the envelope with the next batch. Resolves (never rejects) once that batch's
   * transaction committed or failed. The caller has already checked that the id is new.
   */
  submit(req: EnqueueRequest): Promise<CommitResult> {
    if (this.failure !== undefined) return Promise.resolve({ ok: false, refusal: this.failure });
    if (this.closed) return Promise.resolve({ ok: false, refusal: shuttingDownRefusal() });
    const key = keyOf(req.sender, req.messageId);
    const waiting = this.byKey.get(key) ?? this.syncing.get(key);
    if (waiting !== undefined) return waiting.result;
    let settle!: (r: CommitResult) => void;
    const result = new Promise<CommitResult>((resolve) => {
      settle = resolve;
    });
    const p: Pending = { req, key, settle, result };
    this.batch.push(p);
    this.byKey.set(key, p);
    const bytes = req.envelope.length;
    for (const r of req.recipients) {
      let u = this.pending.get(r);
      if (u === undefined) this.pending.set(r, (u = new CachedUsage()));
      u.add(req.sender, bytes);
    }
    this.batchBytes += req.envelope.length;
    if (this.mode === "per-envelope" || this.batchBytes >= (this.o.maxBatchBytes ?? Infinity)) this.commit();
    else this.schedule();
    return result;
  }

  private schedule(): void {
    if (this.mode === "per-envelope") return;
    // While a batch waits for its sync, the next one grows (the sync returning schedules it):
    // one transaction for what arrived during a disk round trip, not one per turn of the loop.
    if (this.waitingSyncs > 0) return;
    this.scheduled ??= setImmediate(() => this.commit());
  }

  /**
   * Deletes a recipient's processed deliveries with the next transaction. Acks need no fsync of
   * their own: a lost one means a redelivery, which clients drop by id (PROTOCOL.md §8.4), and a
   * relay under load used to spend most of its time fsyncing one transaction per Ack frame.
   */
  ack(recipient: string, seqs: readonly number[]): void {
    if (seqs.length === 0) return;
    this.acks.push({ recipient, seqs });
    if (this.mode === "per-envelope") this.commit();
    else this.schedule();
  }

  /** Commits what is waiting now, then refuses later submissions (shutdown, before the store closes). */
  close(): void {
    this.commit();
    this.closed = true;
  }

  /** Writes the current batch in one transaction and settles its submissions. */
  private commit(): void {
    if (this.scheduled !== undefined) clearImmediate(this.scheduled);
    this.scheduled = undefined;
    const batch = this.batch;
    const deferred = this.mode === "group" ? this.o.store.deferred : undefined;
    // On the embedded store the waiting acks ride in the batch's own transaction (one commit, not
    // two); elsewhere, or with no batch, they go first in a transaction of their own.
    let riding: AckRequest[] = [];
    if (deferred !== undefined && batch.length > 0 && this.failure === undefined) {
      riding = this.acks;
      this.acks = [];
    } else {
      this.commitAcks();
    }
    if (batch.length === 0) return;
    this.batch = [];
    this.byKey.clear();
    this.pending.clear();
    this.batchBytes = 0;
    const failure = this.failure;
    if (failure !== undefined) {
      for (const p of batch) p.settle({ ok: false, refusal: failure });
      return;
    }

    const started = performance.now();
    const reqs = batch.map((p) => p.req);
    let outcomes: EnqueueOutcome[];
    let durable: Promise<ReadonlySet<string>> | undefined;
    try {
      if (deferred === undefined) {
        outcomes = this.o.store.enqueueBatch(reqs);
      } else {
        try {
          ({ outcomes, durable } = deferred.enqueueBatch(reqs, riding));
          if (riding.length > 0) this.stats.ackCommits++;
        } catch (e) {
          if (riding.length === 0) throw e;
          // As when acks went first: they commit alone (a full disk never keeps recipients from
          // freeing space), then the batch is tried once more, in the space they freed.
          this.acks = [...riding, ...this.acks];
          this.commitAcks();
          ({ outcomes, durable } = deferred.enqueueBatch(reqs));
        }
      }
    } catch (e) {
      this.stats.commitMs += performance.now() - started;
      this.stats.failedCommits++;
      const refusal = storageRefusalOf(e);
      this.o.logger.error("store.commit_failed", {
        envelopes: batch.length, error: e instanceof Error ? e.message : String(e),
      });
      for (const p of batch) p.settle({ ok: false, refusal });
      this.o.onStorageFull?.();
      return;
    }
    const ms = performance.now() - started;
    this.stats.commitMs += ms;
    this.stats.commits++;
    this.stats.envelopes += batch.length;
    this.stats.largestBatch = Math.max(this.stats.largestBatch, batch.length);
    this.o.logger.debug("store.commit", { envelopes: batch.length, ms: Math.round(ms * 100) / 100 });
    if (durable === undefined) this.settle(batch, outcomes, new Set());
    else this.afterSync(batch, outcomes, durable);
  }

  /** A deferred commit: its submissions wait (and stay found by whenCommitted) until its sync returned. */
  private afterSync(batch: readonly Pending[], outcomes: readonly EnqueueOutcome[], durable: Promise<ReadonlySet<string>>): void {
    for (const p of batch) this.syncing.set(p.key, p);
    this.waitingSyncs++;
    const done = (): void => {
      for (const p of batch) if (this.syncing.get(p.key) === p) this.syncing.delete(p.key);
      if (--this.waitingSyncs > 0) return;
      for (const resolve of this.whenIdle.splice(0)) resolve();
      if (this.batch.length > 0 || this.acks.length > 0) this.schedule();
    };
    durable.then((shown) => {
      this.stats.syncs++;
      done();
      this.settle(batch, outcomes, shown);
    }, (e: unknown) => {
      this.stats.failedSyncs++;
      done();
      const first = this.failure === undefined;
      this.failure ??= syncFailedRefusal();
      for (const p of batch) p.settle({ ok: false, refusal: this.failure });
      if (!first) return;
      this.o.logger.error("store.sync_failed", { envelopes: batch.length, error: e instanceof Error ? e.message : String(e) });
      this.o.onSyncFailed?.(e);
    });
  }

  /** A durable commit: its senders hear the outcome, then its recipients' pumps are woken. */
  private settle(batch: readonly Pending[], outcomes: readonly EnqueueOutcome[], shown: ReadonlySet<string>): void {
    const rows = new Map<string, number>();
    batch.forEach((p, i) => {
      if (outcomes[i] !== "stored") return;
      for (const r of p.req.recipients) rows.set(r, (rows.get(r) ?? 0) + 1);
    });
    batch.forEach((p, i) => p.settle({ ok: true, duplicate: outcomes[i] === "duplicate" }));
    if (rows.size > 0) this.o.onCommitted(rows);
    // Those onCommitted just woke need no second kick.
    const others = [...shown].filter((r) => !rows.has(r));
    if (others.length > 0) this.o.onRowsShown?.(new Set(others));
  }

  /**
   * The waiting acks, in their own transaction (no fsync: the envelopes' commit or the next one
   * makes them durable). When it fails for lack of space, the reserve is freed and it is tried
   * once more; acks that still fail wait for the next commit (a lost ack is only a redelivery).
   */
  private commitAcks(): void {
    const acks = this.acks;
    this.acks = [];
    // After a failed sync nothing is written any more (a lost ack is only a redelivery).
    if (acks.length === 0 || this.failure !== undefined) return;
    for (let attempt = 0; ; attempt++) {
      try {
        this.o.store.ackBatch(acks);
        this.stats.ackCommits++;
        return;
      } catch (e) {
        this.stats.failedAckCommits++;
        this.o.logger.warn("store.ack_failed", { acks: acks.length, attempt, error: e instanceof Error ? e.message : String(e) });
        if (attempt === 0 && this.o.onStorageFull?.() === true) continue;
        // Kept for the next commit, newest last, within a bound (older ones: redelivered).
        const kept = [...acks, ...this.acks];
        let seqs = 0;
        let from = kept.length;
        while (from > 0 && seqs + kept[from - 1]!.seqs.length <= MAX_RETRY_ACK_SEQS) seqs += kept[--from]!.seqs.length;
        this.acks = kept.slice(from);
        return;
      }
    }
  }
}
