// The newest part of some recipients' queues, in memory, so an online recipient's delivery pump
// reads what was just committed for it without a query: fetchQueue's join costs ~10 µs even when
// it finds nothing, and a pump fetches once per batch it writes and once more to find the queue
// drained.
//
// The invariant: a tail of recipient r "from W" holds exactly r's committed queue rows with
// seq > W, in seq order (each as the QueuedItem fetchQueue returns, with its envelope's bytes). It
// is made by a fetch that read r's queue through SQL to its end (queues.ts), then
//   - grows after every commit that queued rows for r (only rows with seq > W), and never before
//     it: a batch that rolls back adds nothing;
//   - loses the rows r's acks deleted, after their commit;
//   - moves W up to the afterSeq a fetch asks for (the rows up to it are dropped: a later fetch
//     below W goes to SQL).
// A fetch after afterSeq >= W is answered from the tail by fetchQueue's own rules (seq order,
// limit, maxBytes); any other goes to SQL. Whenever the queue may have changed some other way (a
// dropped queue, a purge, a name bound again: another process may have released it, see
// Queues.forgetUsage) the tail is dropped, and SQL is the truth until a fetch makes it again.
//
// The items carry their envelope's bytes rather than its row id: another process (`chat-relay
// users release`) may delete rows and envelopes this process still holds in a tail, and SQLite may
// then give a deleted envelope's id to a new one; a tail never reads another envelope's bytes
// through a stale id. (A session that is still open when its name is released elsewhere may get
// what was queued for it before the release: the relay sees a release at the name's next
// handshake, PROTOCOL.md §9.)
//
// Memory is bounded: a tail over MAX_TAIL_ROWS rows or MAX_TAIL_BYTES (a recipient that stopped
// fetching: offline, or slow) is dropped, and past MAX_ROWS rows or MAX_BYTES in all, or
// MAX_TAILS tails, the least recently fetched tails go. Bytes count each row's envelope, also when
// rows share one (a room message): a bound on memory, not a measure of it.
import type { QueuedItem } from "./queues.js";

/** Bounds (see above); exported for tests. */
export const TAIL_LIMITS = {
  maxTailRows: 2048,
  maxTailBytes: 4 * 1024 * 1024,
  maxRows: 1 << 18,
  maxBytes: 32 * 1024 * 1024,
  maxTails: 1 << 16,
};

export type TailLimits = typeof TAIL_LIMITS;

class Tail {
  /** The rows, live from `start` on, in seq order; all have seq > from. */
  rows: QueuedItem[];
  start = 0;
  bytes = 0;

  constructor(public from: number, rows: QueuedItem[]) {
    this.rows = rows;
    for (const r of rows) this.bytes += r.envelope.length;
  }

  get length(): number {
    return this.rows.length - this.start;
  }
}

export class QueueTails {
  /** By recipient, least recently fetched first. */
  private readonly tails = new Map<string, Tail>();
  /** The recipients of `tails` that are linked devices' addresses ('username/device_id'), for dropPrefixed. */
  private readonly devices = new Set<string>();
  private rows = 0;
  private bytes = 0;

  constructor(private readonly limits: TailLimits = TAIL_LIMITS) {}

  /** Whether a tail of this recipient is kept (for tests and the post-commit loop). */
  has(recipient: string): boolean {
    return this.tails.has(recipient);
  }

  /**
   * A fetch read every row of `recipient` after `from` through SQL: these (in seq order, all of
   * them). It becomes the tail, replacing any.
   */
  track(recipient: string, from: number, rows: readonly QueuedItem[]): void {
    this.drop(recipient);
    if (rows.length > this.limits.maxTailRows) return;
    const tail = new Tail(from, [...rows]);
    if (tail.bytes > this.limits.maxTailBytes) return;
    this.tails.set(recipient, tail);
    if (recipient.includes("/")) this.devices.add(recipient);
    this.rows += tail.length;
    this.bytes += tail.bytes;
    this.bound();
  }

  /**
   * fetchQueue from the tail: up to `limit` rows after `afterSeq`, in seq order, stopping before
   * `maxBytes` would be passed but with at least one row. Undefined when the tail cannot answer
   * (none, or afterSeq below its start). Moves the tail's start up to afterSeq.
   */
  fetch(recipient: string, afterSeq: number, limit: number, maxBytes: number): QueuedItem[] | undefined {
    const tail = this.tails.get(recipient);
    if (tail === undefined || afterSeq < tail.from) return undefined;
    // Most recently fetched last.
    this.tails.delete(recipient);
    this.tails.set(recipient, tail);
    this.advance(tail, afterSeq);
    const out: QueuedItem[] = [];
    let bytes = 0;
    const { rows } = tail;
    for (let i = tail.start; i < rows.length && out.length < limit; i++) {
      const item = rows[i]!;
      if (out.length > 0 && bytes + item.envelope.length > maxBytes) break;
      bytes += item.envelope.length;
      out.push(item);
    }
    return out;
  }

  /** A committed row for `recipient` (rows of one commit in seq order, commits in order). */
  append(recipient: string, item: QueuedItem): void {
    const tail = this.tails.get(recipient);
    if (tail === undefined || item.seq <= tail.from) return;
    const last = tail.rows.at(-1);
    if (last !== undefined && tail.length > 0 && item.seq <= last.seq) {
      this.drop(recipient); // out of order: cannot happen with one writer; SQL is the truth
      return;
    }
    tail.rows.push(item);
    tail.bytes += item.envelope.length;
    this.rows++;
    this.bytes += item.envelope.length;
    if (tail.length > this.limits.maxTailRows || tail.bytes > this.limits.maxTailBytes) this.drop(recipient);
    else this.bound();
  }

  /** Rows of `recipient` an ack deleted (committed). */
  remove(recipient: string, seq: number): void {
    const tail = this.tails.get(recipient);
    if (tail === undefined || seq <= tail.from) return;
    const { rows } = tail;
    let lo = tail.start;
    let hi = rows.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (rows[mid]!.seq < seq) lo = mid + 1;
      else hi = mid;
    }
    if (lo < rows.length && rows[lo]!.seq === seq) {
      const [gone] = rows.splice(lo, 1);
      tail.bytes -= gone!.envelope.length;
      this.rows--;
      this.bytes -= gone!.envelope.length;
    }
  }

  /** Forgets a recipient's tail: its queue changed other than by commits seen here. */
  drop(recipient: string): void {
    const tail = this.tails.get(recipient);
    if (tail === undefined) return;
    this.tails.delete(recipient);
    this.devices.delete(recipient);
    this.rows -= tail.length;
    this.bytes -= tail.bytes;
  }

  /** Forgets the tails of a user's linked devices: the addresses that start with `prefix` ('username/'). */
  dropPrefixed(prefix: string): void {
    for (const recipient of [...this.devices]) if (recipient.startsWith(prefix)) this.drop(recipient);
  }

  clear(): void {
    this.tails.clear();
    this.devices.clear();
    this.rows = 0;
    this.bytes = 0;
  }

  /** Drops the rows up to `afterSeq` (they were fetched) and starts the tail after it. */
  private advance(tail: Tail, afterSeq: number): void {
    if (afterSeq <= tail.from) return;
    tail.from = afterSeq;
    const { rows } = tail;
    let i = tail.start;
    while (i < rows.length && rows[i]!.seq <= afterSeq) {
      tail.bytes -= rows[i]!.envelope.length;
      this.rows--;
      this.bytes -= rows[i]!.envelope.length;
      i++;
    }
    if (i === rows.length) {
      tail.rows = [];
      tail.start = 0;
    } else if (i > 64 && i * 2 > rows.length) {
      tail.rows = rows.slice(i);
      tail.start = 0;
    } else tail.start = i;
  }

  /** Drops the least recently fetched tails while over the bounds in all. */
  private bound(): void {
    const { maxRows, maxBytes, maxTails } = this.limits;
    for (const recipient of this.tails.keys()) {
      if (this.rows <= maxRows && this.bytes <= maxBytes && this.tails.size <= maxTails) return;
      this.drop(recipient);
    }
  }
}
