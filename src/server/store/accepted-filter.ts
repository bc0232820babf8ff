// A Bloom filter over the `accepted` table's (sender, message_id) pairs, in memory, so that asking
// whether an id was accepted costs no query when it was not: nearly every SendMls asks two or
// three times (the session's resend check, admission's, the store's own inside the transaction),
// and nearly every id is new. "No" from the filter is exact; "maybe" is answered by SQLite, which
// also sees the rows of the transaction in progress (store/queues.ts wasAccepted).
//
// Why "no" is exact: the filter holds every pair in the table. It is filled from the table on
// first use and then by every insert this connection makes (queues.ts, the only code that writes
// `accepted`), before its commit; a transaction that rolls back leaves bits of pairs that are not
// in the table, and a purge removes pairs whose bits stay: both only make "maybe" answers that
// SQLite then denies. The embedded store has one writer process (the relay); `chat-relay users`
// in another process never inserts accepted ids. The hashes are keyed with random seeds of this
// process, so a client cannot choose ids that fill the filter on purpose; at worst a "maybe" costs
// what every check cost before.
//
// Memory: BITS_PER_ID bits per id at the capacity it was sized for (twice the table's rows at the
// last fill, at least MIN_CAPACITY); past that capacity it is filled again from the table (which
// also sheds purged ids), up to MAX_BITS. Beyond MAX_BITS ids, "maybe" grows more frequent, never
// wrong.
import { randomInt } from "node:crypto";

/** Bits per id at capacity, and bit positions per id: ~0.06% "maybe" for new ids at capacity, ~0.0006% at half. */
const BITS_PER_ID = 16;
const PROBES = 8;
/** Ids the smallest filter is sized for (32 KiB of bits). */
const MIN_CAPACITY = 1 << 14;
/** The largest filter: 2^27 bits (16 MiB), sized for 8 M ids. */
const MAX_BITS = 2 ** 27;

/** What the filter is filled from: the table's row count and its (sender, message_id) pairs. */
export interface AcceptedSource {
  count(): number;
  pairs(): Iterable<readonly [string, Uint8Array]>;
}

export class AcceptedFilter {
  private bits: Int32Array | undefined;
  private mask = 0;
  /** Ids added since the last fill (with those it was filled with). */
  private ids = 0;
  private capacity = 0;
  private readonly seedA = randomInt(2 ** 31);
  private readonly seedB = randomInt(2 ** 31);
  /** The two hashes of the last pair hashed (hash() sets them: no array per call). */
  private h1 = 0;
  private h2 = 0;
  /** How many times it was filled from the table (for tests). */
  fills = 0;

  constructor(private readonly source: AcceptedSource) {}

  /** False only when (sender, messageId) is certainly not accepted; true means "ask the table". */
  mayContain(sender: string, messageId: Uint8Array): boolean {
    const bits = this.bits ?? this.fill();
    this.hash(sender, messageId);
    const { mask } = this;
    let h = this.h1;
    for (let i = 0; i < PROBES; i++) {
      const bit = h & mask;
      if ((bits[bit >>> 5]! & (1 << (bit & 31))) === 0) return false;
      h = (h + this.h2) | 0;
    }
    return true;
  }

  /** An id was inserted into the table (inside its transaction, before the commit). */
  add(sender: string, messageId: Uint8Array): void {
    if (this.bits === undefined) {
      this.fill(); // the table holds the new row already: filled with it
      return;
    }
    this.set(this.bits, sender, messageId);
    if (++this.ids > this.capacity && this.mask + 1 < MAX_BITS) this.fill();
  }

  /** Sizes the filter for the table's rows (twice them) and sets every pair's bits. */
  private fill(): Int32Array {
    const rows = this.source.count();
    this.capacity = Math.max(MIN_CAPACITY, 2 * rows);
    let size = 1 << 5;
    while (size < this.capacity * BITS_PER_ID && size < MAX_BITS) size *= 2;
    const bits = new Int32Array(size >>> 5);
    this.mask = size - 1;
    this.ids = 0;
    for (const [sender, messageId] of this.source.pairs()) {
      this.set(bits, sender, messageId);
      this.ids++;
    }
    this.bits = bits;
    this.fills++;
    return bits;
  }

  private set(bits: Int32Array, sender: string, messageId: Uint8Array): void {
    this.hash(sender, messageId);
    const { mask } = this;
    let h = this.h1;
    for (let i = 0; i < PROBES; i++) {
      const bit = h & mask;
      bits[bit >>> 5]! |= 1 << (bit & 31);
      h = (h + this.h2) | 0;
    }
  }

  /** Two 32-bit hashes of the pair (FNV-1a over the sender's UTF-16 units, a 0xffff separator and the id's bytes, under two seeds), finalised. */
  private hash(sender: string, messageId: Uint8Array): void {
    let a = this.seedA ^ 0x811c9dc5;
    let b = this.seedB ^ 0x01000193;
    for (let i = 0; i < sender.length; i++) {
      const c = sender.charCodeAt(i);
      a = Math.imul(a ^ c, 0x01000193);
      b = Math.imul(b ^ c, 0x5bd1e995);
    }
    a = Math.imul(a ^ 0xffff, 0x01000193);
    b = Math.imul(b ^ 0xffff, 0x5bd1e995);
    for (let i = 0; i < messageId.length; i++) {
      const c = messageId[i]!;
      a = Math.imul(a ^ c, 0x01000193);
      b = Math.imul(b ^ c, 0x5bd1e995);
    }
    this.h1 = fmix(a);
    this.h2 = fmix(b) | 1; // odd: the probes visit distinct bits
  }
}

/** MurmurHash3's finaliser: every input bit reaches every output bit. */
function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h;
}
