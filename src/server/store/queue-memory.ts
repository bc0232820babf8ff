// Every recipient's queue, in memory (the embedded store's queues.ts answers fetches, depths and
// acks from here; SQLite keeps the truth it is rebuilt from at open).
//
// On disk a queued envelope is one `envelopes` row naming its recipients (a JSON array), and what a
// recipient acked is one cursor per recipient (`queue_cursors`: every envelope of theirs up to it
// was processed) plus the acks above a gap (`queue_acked`, rows only while an earlier one is still
// unacked). A recipient's queue is then: the envelopes naming it, above its cursor, not in its
// acked rows; SQLite's `queue` view computes exactly that, and `load` below does the same from
// one scan. A message to a room of K costs one row, not K queue rows with their indexes, and an
// ack costs a cursor update per recipient per commit, not a row deletion per delivery.
//
// Here: each envelope still queued for someone (its sender, size, conversation, time, kind and how
// many recipients still wait: refs), and each recipient's queued seqs (an envelope's seq is its
// row id: AUTOINCREMENT, so ids never repeat and grow with the commits), ascending. queues.ts
// changes these inside its transactions and registers the inverse of each change with the
// store's UndoLog, so a rolled-back transaction leaves memory as the file is.
import { CachedUsage } from "./queue-usage.js";

/** What memory keeps of an envelope still queued for at least one recipient. */
export interface EnvelopeInfo {
  readonly sender: string;
  readonly bytes: number;
  readonly conversationId: string;
  readonly createdAtMs: number;
  readonly mls: boolean;
  /** Recipients whose queue still holds it; the row goes when it reaches 0. */
  refs: number;
}

/** One `envelopes` row as load reads it (the bytes are not read: their length is). */
export interface EnvelopeRow {
  readonly id: number;
  readonly sender: string;
  readonly bytes: number;
  readonly conversationId: string;
  readonly createdAtMs: number;
  readonly mls: boolean;
  /** The JSON array of the recipients it was queued for. */
  readonly recipients: string;
}

/** Index of the first element of ascending `xs` greater than `x`. */
export function firstAbove(xs: readonly number[], x: number): number {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (xs[mid]! <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export class QueueMemory {
  /** Every envelope with refs > 0, by id. */
  readonly envelopes = new Map<number, EnvelopeInfo>();
  /** Each recipient's queued seqs, ascending (no entry: an empty queue). */
  private readonly queues = new Map<string, number[]>();
  /** Usage per recipient, made from its queue when first asked, then kept in step. */
  private readonly usage = new Map<string, CachedUsage>();
  /** Strings shared by many envelopes (senders, conversations) kept once. */
  private readonly strings = new Map<string, string>();

  /** The queue of `recipient` (empty when none). Read-only for callers. */
  queue(recipient: string): readonly number[] {
    return this.queues.get(recipient) ?? [];
  }

  /** Recipients with a non-empty queue. */
  recipients(): IterableIterator<string> {
    return this.queues.keys();
  }

  intern(s: string): string {
    const known = this.strings.get(s);
    if (known !== undefined) return known;
    if (this.strings.size >= 65_536) this.strings.clear();
    this.strings.set(s, s);
    return s;
  }

  clear(): void {
    this.envelopes.clear();
    this.queues.clear();
    this.usage.clear();
    this.strings.clear();
  }

  /**
   * Rebuilds everything from the file: `rows` in id order, each recipient's cursor and acked rows.
   * Returns the ids of envelopes no recipient waits for any more (the caller deletes them).
   */
  load(rows: Iterable<EnvelopeRow>, cursors: ReadonlyMap<string, number>, acked: ReadonlyMap<string, ReadonlySet<number>>): number[] {
    this.clear();
    const orphans: number[] = [];
    for (const row of rows) {
      let refs = 0;
      for (const r of parseRecipients(row.recipients)) {
        if (row.id <= (cursors.get(r) ?? 0) || acked.get(r)?.has(row.id) === true) continue;
        const q = this.queues.get(r);
        if (q === undefined) this.queues.set(this.intern(r), [row.id]);
        else if (q.at(-1)! < row.id) q.push(row.id);
        else continue; // named twice: queued once
        refs++;
      }
      if (refs === 0) orphans.push(row.id);
      else this.envelopes.set(row.id, this.info(row, refs));
    }
    return orphans;
  }

  info(e: Omit<EnvelopeRow, "id" | "recipients">, refs: number): EnvelopeInfo {
    return { sender: this.intern(e.sender), bytes: e.bytes, conversationId: this.intern(e.conversationId), createdAtMs: e.createdAtMs, mls: e.mls, refs };
  }

  /** Appends `id` (greater than every seq here) to the queue of `recipient`; false when it is its last already. */
  append(recipient: string, id: number): boolean {
    const q = this.queues.get(recipient);
    if (q === undefined) {
      this.queues.set(recipient, [id]);
    } else {
      if (q.at(-1)! >= id) return false;
      q.push(id);
    }
    const e = this.envelopes.get(id);
    if (e !== undefined) this.usage.get(recipient)?.add(e.sender, e.bytes);
    return true;
  }

  /** Takes the last seq of `recipient`'s queue (the inverse of append). */
  unappend(recipient: string, id: number): void {
    const q = this.queues.get(recipient);
    if (q === undefined || q.at(-1) !== id) return;
    q.pop();
    if (q.length === 0) this.queues.delete(recipient);
    this.usage.delete(recipient);
  }

  /**
   * Takes `seqs` from `recipient`'s queue; returns those it held, ascending (the rest are not
   * this recipient's, or were taken before). The usage drops by them.
   */
  take(recipient: string, seqs: Iterable<number>): number[] {
    const q = this.queues.get(recipient);
    if (q === undefined) return [];
    const wanted = new Set<number>();
    for (const s of seqs) if (Number.isSafeInteger(s)) wanted.add(s);
    if (wanted.size === 0) return [];
    // Acks mostly take a prefix: count it, then splice once; otherwise filter.
    let prefix = 0;
    while (prefix < q.length && wanted.has(q[prefix]!)) prefix++;
    let taken: number[];
    let kept = q;
    if (prefix === wanted.size || prefix === q.length) {
      taken = q.splice(0, prefix);
    } else {
      taken = [];
      kept = [];
      for (const s of q) (wanted.has(s) ? taken : kept).push(s);
    }
    if (kept.length === 0) this.queues.delete(recipient);
    else if (kept !== q) this.queues.set(recipient, kept);
    const u = this.usage.get(recipient);
    if (u !== undefined) for (const s of taken) u.remove(this.envelopes.get(s)?.sender, this.envelopes.get(s)?.bytes ?? 0);
    return taken;
  }

  /** Puts seqs back into `recipient`'s queue in order (the inverse of take). */
  restore(recipient: string, seqs: readonly number[]): void {
    if (seqs.length === 0) return;
    const merged = [...new Set([...(this.queues.get(recipient) ?? []), ...seqs])].sort((a, b) => a - b);
    this.queues.set(recipient, merged);
    this.usage.delete(recipient);
  }

  /** Forgets the cached usage of `recipient` (made again from its queue when next asked). */
  forgetUsage(recipient: string): void {
    this.usage.delete(recipient);
  }

  usageOf(recipient: string): CachedUsage {
    let u = this.usage.get(recipient);
    if (u === undefined) {
      u = new CachedUsage();
      for (const s of this.queue(recipient)) {
        const e = this.envelopes.get(s);
        if (e !== undefined) u.add(e.sender, e.bytes);
      }
      this.usage.set(recipient, u);
    }
    return u;
  }

  /** Drops envelopes (purged by time) from the map and from every queue; usage is made again. */
  dropEnvelopes(ids: ReadonlySet<number>): void {
    if (ids.size === 0) return;
    for (const id of ids) this.envelopes.delete(id);
    for (const [r, q] of this.queues) {
      const kept = q.filter((s) => !ids.has(s));
      if (kept.length === 0) this.queues.delete(r);
      else if (kept.length !== q.length) this.queues.set(r, kept);
    }
    this.usage.clear();
  }
}

/** The recipients of an `envelopes` row (a JSON array of strings); anything else names nobody. */
export function parseRecipients(json: string): string[] {
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch {
    return [];
  }
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];
}
