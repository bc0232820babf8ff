// Group commit: envelopes admitted by any session are stored together, one transaction and one
// fsync per batch, before any of their senders hears ACCEPTED (PROTOCOL.md §8.4).
//
// node:sqlite is synchronous, so a commit blocks the event loop for its fsync. Frames that
// arrive meanwhile wait in the socket buffers; once the commit returns, the loop reads them
// all, every session admits what it got, and the next setImmediate (after that I/O phase)
// commits the lot. So the batch grows with the load by itself: an idle relay commits a lone
// envelope at once (no timer adds latency), a busy one pays one fsync for many envelopes.
//
// Guarantees, each kept in one place here:
//   - a submission settles only after its transaction committed (stored) or failed (refused);
//   - deliveries start only after the commit (onCommitted wakes the recipients' pumps);
//   - a failed commit refuses every envelope of its batch and stores none of them; the next
//     batch starts afresh, so the relay keeps serving;
//   - (sender, message_id) is stored once: the store checks ids inside the transaction, and a
//     resend that arrives while the first copy waits for its commit shares that commit's fate
//     (whenCommitted), so it is never answered ACCEPTED for an envelope that then fails;
//   - queue caps count what waits for the commit (pendingFor), not only what is stored;
//   - acks are committed in a transaction of their own, before the envelopes': a batch that
//     fails (a full disk) never takes the acks down with it, so recipients who read free space
//     and a full relay drains by itself (issue 16). Acks that fail are kept for the next commit;
//   - a batch is committed early once it holds maxBatchBytes, so one transaction (and so the
//     WAL) stays within the database budget's WAL allowance.
import type { Logger } from "../protocol/log.js";
import { Refusal, shuttingDownRefusal, storageRefusalOf } from "./errors.js";
import type { AckRequest, EnqueueRequest, QueueUsage, RelayStore } from "./store.js";

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
  /** Rows `batch` will add per recipient, for queue caps. */
  private readonly pendingRows = new Map<string, number>();
  /** Envelope bytes `batch` will add per recipient, and per (recipient, sender). */
  private readonly pendingBytes = new Map<string, number>();
  private readonly pendingFromSender = new Map<string, { count: number; bytes: number }>();
  /** Envelope bytes in `batch`. */
  private batchBytes = 0;
  private scheduled: NodeJS.Immediate | undefined;
  /** Acks waiting for the next transaction (with the envelopes, or alone without an fsync). */
  private acks: AckRequest[] = [];
  private closed = false;
  private readonly mode: CommitMode;
  /** Counters for tests, logs and the benchmark. */
  readonly stats = { commits: 0, envelopes: 0, failedCommits: 0, largestBatch: 0, commitMs: 0, ackCommits: 0, failedAckCommits: 0 };

  constructor(private readonly o: GroupCommitterOptions) {
    this.mode = o.mode ?? "group";
  }

  /** Rows waiting for the next commit for this recipient (they count towards its queue cap). */
  pendingFor(recipient: string): number {
    return this.pendingRows.get(recipient) ?? 0;
  }

  /** What `batch` adds to a recipient's queue: in all, and from one sender (queue caps, shares). */
  pendingUsage(recipient: string, sender: string): QueueUsage {
    const s = this.pendingFromSender.get(`${recipient}\u0000${sender}`);
    return { count: this.pendingFor(recipient), bytes: this.pendingBytes.get(recipient) ?? 0, senderCount: s?.count ?? 0, senderBytes: s?.bytes ?? 0 };
  }

  /** The outcome of a submission of (sender, messageId) still waiting for its commit, if any. */
  whenCommitted(sender: string, messageId: Uint8Array): Promise<CommitResult> | undefined {
    return this.byKey.get(keyOf(sender, messageId))?.result;
  }

  /**
   * Stores the envelope with the next batch. Resolves (never rejects) once that batch's
   * transaction committed or failed. The caller has already checked that the id is new.
   */
  submit(req: EnqueueRequest): Promise<CommitResult> {
    if (this.closed) return Promise.resolve({ ok: false, refusal: shuttingDownRefusal() });
    const key = keyOf(req.sender, req.messageId);
    const waiting = this.byKey.get(key);
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
      this.pendingRows.set(r, (this.pendingRows.get(r) ?? 0) + 1);
      this.pendingBytes.set(r, (this.pendingBytes.get(r) ?? 0) + bytes);
      const k = `${r}\u0000${req.sender}`;
      const s = this.pendingFromSender.get(k);
      if (s === undefined) this.pendingFromSender.set(k, { count: 1, bytes });
      else {
        s.count++;
        s.bytes += bytes;
      }
    }
    this.batchBytes += req.envelope.length;
    if (this.mode === "per-envelope" || this.batchBytes >= (this.o.maxBatchBytes ?? Infinity)) this.commit();
    else this.schedule();
    return result;
  }

  private schedule(): void {
    if (this.mode === "per-envelope") return;
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
    this.commitAcks();
    if (batch.length === 0) return;
    this.batch = [];
    this.byKey.clear();
    this.pendingRows.clear();
    this.pendingBytes.clear();
    this.pendingFromSender.clear();
    this.batchBytes = 0;

    const started = performance.now();
    let outcomes;
    try {
      outcomes = this.o.store.enqueueBatch(batch.map((p) => p.req));
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

    const rows = new Map<string, number>();
    batch.forEach((p, i) => {
      if (outcomes[i] !== "stored") return;
      for (const r of p.req.recipients) rows.set(r, (rows.get(r) ?? 0) + 1);
    });
    batch.forEach((p, i) => p.settle({ ok: true, duplicate: outcomes[i] === "duplicate" }));
    if (rows.size > 0) this.o.onCommitted(rows);
  }

  /**
   * The waiting acks, in their own transaction (no fsync: the envelopes' commit or the next one
   * makes them durable). When it fails for lack of space, the reserve is freed and it is tried
   * once more; acks that still fail wait for the next commit (a lost ack is only a redelivery).
   */
  private commitAcks(): void {
    const acks = this.acks;
    this.acks = [];
    if (acks.length === 0) return;
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
