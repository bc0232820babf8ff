// The bytes of recently stored (or read) envelopes, kept in memory by envelope id within a byte
// budget, oldest evicted first: a room message goes to every member from memory instead of being
// read back from the database once per member. Both stores' queues use it (queues.ts and
// pg/queues.ts); each decides when an id enters (after its commit) and leaves (when its row goes).

export class RecentEnvelopes {
  private readonly bytesById = new Map<number, Buffer>();
  private bytes = 0;

  /** `budget`: the most bytes kept in all (0 keeps nothing). */
  constructor(private readonly budget: number) {}

  get(id: number): Buffer | undefined {
    return this.bytesById.get(id);
  }

  /** Keeps `envelope` as the newest entry, evicting the oldest while over the budget. */
  remember(id: number, envelope: Buffer): void {
    this.forget(id);
    this.bytesById.set(id, envelope);
    this.bytes += envelope.length;
    for (const [oldest, evicted] of this.bytesById) {
      if (this.bytes <= this.budget) break;
      this.bytesById.delete(oldest);
      this.bytes -= evicted.length;
    }
  }

  forget(id: number): void {
    const envelope = this.bytesById.get(id);
    if (envelope === undefined) return;
    this.bytesById.delete(id);
    this.bytes -= envelope.length;
  }

  clear(): void {
    this.bytesById.clear();
    this.bytes = 0;
  }
}
