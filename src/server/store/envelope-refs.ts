// What an ack needs to know of an envelope, in memory for the envelopes this process stored: who
// sent it and its size (the cached queue usage drops by them) and an upper bound of its queue
// rows (refs). With them an ack costs no query for the envelope's sender and size, and an ack of
// its last rows deletes it in one statement instead of decrementing refs and then deleting.
//
// Exact where it answers: sender and size never change for a row id. The refs kept here are never
// below the table's: they are set at the commit that stored the envelope and lowered only by what
// a committed ack took (queues.ts applyAcked); everything else only lowers the table's (a dropped
// queue, another process releasing a name) or drops the row (forget). So "refs here <= what this
// ack takes" means the table's refs reach 0: the row goes. Otherwise the ack decrements and deletes
// at <= 0 as before. An id is forgotten when its envelope is dropped and when a transaction
// inserts an envelope under it (SQLite may give a dropped envelope's id to a new one): until that
// insert commits, its acks ask the table.
//
// Bounded: at most MAX_ENTRIES ids, the oldest forgotten first (their acks ask the table).

const MAX_ENTRIES = 1 << 17;

export interface EnvelopeRef {
  readonly sender: string;
  readonly bytes: number;
  /** At least the envelope's queue rows in the table. */
  refs: number;
}

export class EnvelopeRefs {
  private readonly byId = new Map<number, EnvelopeRef>();

  constructor(private readonly maxEntries = MAX_ENTRIES) {}

  get(id: number): EnvelopeRef | undefined {
    return this.byId.get(id);
  }

  /** After the commit that stored envelope `id` with `refs` queue rows. */
  stored(id: number, sender: string, bytes: number, refs: number): void {
    this.byId.delete(id);
    this.byId.set(id, { sender, bytes, refs });
    if (this.byId.size > this.maxEntries) {
      const oldest = this.byId.keys().next();
      if (oldest.done !== true) this.byId.delete(oldest.value);
    }
  }

  /** After the commit of an ack that took `rows` of envelope `id`'s queue rows. */
  taken(id: number, rows: number): void {
    const e = this.byId.get(id);
    if (e === undefined) return;
    e.refs -= rows;
    if (e.refs <= 0) this.byId.delete(id);
  }

  forget(id: number): void {
    this.byId.delete(id);
  }

  clear(): void {
    this.byId.clear();
  }
}
