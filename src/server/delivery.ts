// The delivery pump of one online recipient: reads that user's queue in seq order and writes
// DeliverBatch frames that coalesce whatever is waiting (the per-write cost dominates grpc-js
// CPU, so ten queued envelopes go out as one frame, not ten).
//
// Memory stays bounded: the database is the queue. The pump holds no envelopes between writes,
// keeps at most DELIVERY_WINDOW unacked seqs in flight, and writes the next batch only once the
// previous one was sent, so a client that reads slowly slows its own pump. A batch holds at
// most DELIVERY_WRITE_BYTES of envelopes (or one bigger envelope): that, not a whole frame
// (1 MiB), is what the relay holds for one reader at a time; the relay-wide write budget
// (write-budget.ts, taken in stream.sendFlushed) paces a fan-out to many readers. A new
// session starts from the oldest unacked row again (at-least-once; clients drop duplicates by
// message id).
//
// The outgoing queue: envelopes that arrived while this session is online and are not yet
// written to it. A reader that falls more than maxOutgoing behind cannot keep up with what it
// is sent; it is disconnected (SLOW_CONSUMER) rather than kept half-served, and since the
// envelopes wait in the database, it loses nothing. The backlog queued before the session
// started (catching up after a week away) does not count: only live traffic can make it slow.
import type { Logger } from "../protocol/log.js";
import { encodeDeliverBatch } from "./frames.js";
import { DELIVERY_WINDOW, DELIVERY_WRITE_BYTES, MAX_BATCH_ITEMS } from "./limits.js";
import type { RelayStore } from "./store.js";
import type { FrameStream } from "./stream.js";

export interface DeliveryPumpOptions {
  readonly username: string;
  readonly store: RelayStore;
  readonly stream: FrameStream;
  /**
   * Envelope bytes coalesced into one batch (one envelope is always allowed); DELIVERY_WRITE_BYTES
   * at most, whatever is given.
   */
  readonly maxBatchBytes: number;
  readonly logger: Logger;
  readonly window?: number;
  /** The outgoing queue's limit (envelopes; see above). */
  readonly maxOutgoing: number;
  /** Called once when the outgoing queue overflows, with a few words on why. */
  readonly onSlowConsumer: (why: string) => void;
}

export class DeliveryPump {
  private lastSentSeq = 0;
  private readonly inFlight = new Set<number>();
  private running = false;
  private started = false;
  private readonly window: number;
  /** Rows with a seq above this were queued after the session started (live traffic). */
  private readonly startSeq: number;
  /** Live envelopes that arrived and were not written yet: the outgoing queue's length. */
  private outgoing = 0;

  private readonly batchBytes: number;

  constructor(private readonly o: DeliveryPumpOptions) {
    this.window = o.window ?? DELIVERY_WINDOW;
    this.batchBytes = Math.min(o.maxBatchBytes, DELIVERY_WRITE_BYTES);
    this.startSeq = o.store.lastSeq();
  }

  /** Envelopes waiting to be written to this session that arrived while it was online. */
  get outgoingLength(): number {
    return this.outgoing;
  }

  /** `count` rows were committed for this user: deliver them, unless the reader is too far behind. */
  arrived(count: number): void {
    this.outgoing += count;
    if (this.outgoing > this.o.maxOutgoing && !this.o.stream.closed) {
      this.o.logger.warn("deliver.slow_consumer", { user: this.o.username, outgoing: this.outgoing, limit: this.o.maxOutgoing });
      this.o.onSlowConsumer(`more than ${this.o.maxOutgoing} messages were waiting for it`);
      return;
    }
    this.kick();
  }

  /** Starts delivering (after Welcome was written). */
  start(): void {
    this.started = true;
    this.kick();
  }

  /** Something was queued for this user, or the window opened: deliver what is waiting. */
  kick(): void {
    if (!this.started || this.running || this.o.stream.closed) return;
    this.running = true;
    void this.run();
  }

  /** The client processed these seqs (the rows are already deleted): they leave the window. */
  acked(seqs: readonly number[]): void {
    for (const s of seqs) this.inFlight.delete(s);
    this.kick();
  }

  /**
   * Writes batches until the queue is drained, the window is full or the stream is over. A
   * kick during an await is not lost: the loop re-reads the queue after every write.
   */
  private async run(): Promise<void> {
    const { store, stream, username } = this.o;
    // `running` is cleared in this function's own finally, in the same turn as the last
    // (empty) fetch: were it cleared in a later callback, a row queued in between would find
    // the pump "running" and wait for the next kick.
    try {
      while (!stream.closed) {
        const room = this.window - this.inFlight.size;
        if (room <= 0) return;
        const items = store.fetchQueue(username, this.lastSentSeq, Math.min(room, MAX_BATCH_ITEMS), this.batchBytes);
        const last = items.at(-1);
        if (last === undefined) return;
        for (const item of items) {
          this.inFlight.add(item.seq);
          if (item.seq > this.startSeq) this.outgoing = Math.max(0, this.outgoing - 1);
        }
        this.lastSentSeq = last.seq;
        this.o.logger.debug("deliver.batch", { user: username, items: items.length });
        // Flushed, not merely buffered: a client that reads slowly holds at most one batch in
        // the relay's memory (DELIVERY_WRITE_BYTES or one envelope), never a backlog.
        if (!(await stream.sendFlushed(encodeDeliverBatch(items)))) return;
      }
    } catch (e) {
      // A storage error must not kill the process; the rows stay queued for the next session.
      this.o.logger.error("deliver.failed", { user: username, error: e instanceof Error ? e.message : String(e) });
    } finally {
      this.running = false;
    }
  }
}
