// One recipient's queue usage (rows and bytes, in all and per sender) as both stores' queues
// cache it (queues.ts and pg/queues.ts), kept in step with enqueue and ack so the queue caps cost
// no count on every send. Each store decides when to load it and when it is stale.
import type { QueueUsage } from "./queues.js";

export class CachedUsage {
  count = 0;
  bytes = 0;
  readonly bySender = new Map<string, { count: number; bytes: number }>();

  /** `loadedAt`: when it was read from the database (the PostgreSQL store ages it; 0 where unused). */
  constructor(readonly loadedAt = 0) {}

  add(sender: string, bytes: number, rows = 1): void {
    this.count += rows;
    this.bytes += bytes; // the bytes of all `rows`
    const s = this.bySender.get(sender);
    if (s === undefined) this.bySender.set(sender, { count: rows, bytes });
    else {
      s.count += rows;
      s.bytes += bytes;
    }
  }

  remove(sender: string | undefined, bytes: number): void {
    this.count = Math.max(0, this.count - 1);
    this.bytes = Math.max(0, this.bytes - bytes);
    if (sender === undefined) return;
    const s = this.bySender.get(sender);
    if (s === undefined) return;
    s.count--;
    s.bytes -= bytes;
    if (s.count <= 0) this.bySender.delete(sender);
  }

  /** The usage as the queue caps read it: in all, and `sender`'s share. */
  usage(sender: string): QueueUsage {
    const s = this.bySender.get(sender);
    return { count: this.count, bytes: this.bytes, senderCount: s?.count ?? 0, senderBytes: s?.bytes ?? 0 };
  }
}
