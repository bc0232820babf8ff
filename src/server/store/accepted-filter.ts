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
// It reads the table once, at its first use (the relay: before its port opens, queues.ts load).
// After that it never scans the table again (a scan of millions of ids once stalled the relay for
// seconds each time the filter outgrew its size): it grows in layers. The first is sized for
// twice the table's rows (at least MIN_CAPACITY); when the newest layer holds as many ids as it
// was sized for, new ids go to a new layer twice its size. An id is "maybe" when any layer says
// so. Each layer remembers when its newest id was accepted; a purge that dropped every id
// accepted before some time drops the layers whose ids are all older (purged), so memory follows
// the retention. Memory: BITS_PER_ID bits per id of capacity, at most MAX_BITS in all; past that
// the newest layer takes more ids than it was sized for, and "maybe" grows more frequent, never
// wrong.
import { randomInt } from "node:crypto";
import { fmix } from "./mix.js";

/** Bits per id at capacity, and bit positions per id: ~0.06% "maybe" for new ids per full layer, ~0.0006% at half. */
const BITS_PER_ID = 16;
const PROBES = 8;
/** Ids the smallest layer is sized for (32 KiB of bits). */
const MIN_CAPACITY = 1 << 14;
/** All layers together: at most 2^27 bits (16 MiB), about 8 M ids. */
const MAX_BITS = 2 ** 27;

/** What the filter is filled from: the table's row count and its (sender, message_id) pairs. */
export interface AcceptedSource {
  count(): number;
  pairs(): Iterable<readonly [string, Uint8Array]>;
  /** When the newest row was accepted (accepted_at_ms; -Infinity for an empty table). */
  newestMs(): number;
}

interface Layer {
  readonly bits: Int32Array;
  readonly mask: number;
  /** Ids it was sized for. */
  readonly capacity: number;
  ids: number;
  /** When its newest id was accepted (the store's clock). */
  newestMs: number;
}

export class AcceptedFilter {
  /** Oldest first; new ids go to the last. */
  private layers: Layer[] | undefined;
  private readonly seedA = randomInt(2 ** 31);
  private readonly seedB = randomInt(2 ** 31);
  /** The two hashes of the last pair hashed (hash() sets them: no array per call). */
  private h1 = 0;
  private h2 = 0;
  /** How many times it read the table (for tests: once). */
  fills = 0;

  /** `clock`: the store's, which also dates the table's rows (accepted_at_ms). */
  constructor(private readonly source: AcceptedSource, private readonly clock: () => number) {}

  /** The layers now (for tests): each one's capacity and ids. */
  get shape(): Array<{ readonly capacity: number; readonly ids: number }> {
    return (this.layers ?? []).map((l) => ({ capacity: l.capacity, ids: l.ids }));
  }

  /** Reads the table now if it was not read yet (the relay, before it serves). */
  warm(): void {
    this.layers ??= this.fill();
  }

  /** False only when (sender, messageId) is certainly not accepted; true means "ask the table". */
  mayContain(sender: string, messageId: Uint8Array): boolean {
    const layers = (this.layers ??= this.fill());
    this.hash(sender, messageId);
    for (let i = layers.length - 1; i >= 0; i--) if (this.test(layers[i]!)) return true;
    return false;
  }

  /** An id was inserted into the table (inside its transaction, before the commit), dated `atMs`. */
  add(sender: string, messageId: Uint8Array, atMs: number): void {
    if (this.layers === undefined) {
      this.layers = this.fill(); // the table holds the new row already: filled with it
      return;
    }
    let top = this.layers.at(-1)!;
    if (top.ids >= top.capacity) {
      const bits = this.layers.reduce((n, l) => n + l.mask + 1, 0);
      const next = layerFor(2 * top.capacity, MAX_BITS - bits);
      if (next !== undefined) {
        this.layers.push(next);
        top = next;
      }
    }
    this.hash(sender, messageId);
    this.set(top);
    top.ids++;
    top.newestMs = Math.max(top.newestMs, atMs);
  }

  /**
   * The table no longer holds any id accepted before `cutoffMs` (a purge): the layers whose ids
   * are all older go. The newest stays (emptied when it is one of them), so new ids have a layer.
   */
  purged(cutoffMs: number): void {
    const layers = this.layers;
    if (layers === undefined) return;
    const top = layers.at(-1)!;
    const kept = layers.filter((l) => l !== top && l.newestMs >= cutoffMs);
    const room = MAX_BITS - kept.reduce((n, l) => n + l.mask + 1, 0);
    kept.push(top.newestMs >= cutoffMs ? top : layerFor(top.capacity, room) ?? top);
    this.layers = kept;
  }

  /** One layer sized for twice the table's rows, with every pair's bits set. */
  private fill(): Layer[] {
    const layer = layerFor(Math.max(MIN_CAPACITY, 2 * this.source.count()), MAX_BITS)!;
    for (const [sender, messageId] of this.source.pairs()) {
      this.hash(sender, messageId);
      this.set(layer);
      layer.ids++;
    }
    // Every row of the table was accepted by now (or at its own date, should the clock have gone back).
    layer.newestMs = Math.max(this.clock(), this.source.newestMs());
    this.fills++;
    return [layer];
  }

  /** Whether the last pair hashed may be in `layer`. */
  private test(layer: Layer): boolean {
    const { bits, mask } = layer;
    let h = this.h1;
    for (let i = 0; i < PROBES; i++) {
      const bit = h & mask;
      if ((bits[bit >>> 5]! & (1 << (bit & 31))) === 0) return false;
      h = (h + this.h2) | 0;
    }
    return true;
  }

  /** Sets the last pair hashed in `layer`. */
  private set(layer: Layer): void {
    const { bits, mask } = layer;
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

/**
 * A layer for `capacity` ids within `room` bits (a power of two, at least 32, at most 2^27); none
 * when not even the smallest fits. Sized down to fit: it then fills past BITS_PER_ID per id.
 */
function layerFor(capacity: number, room: number): Layer | undefined {
  let size = 1 << 5;
  while (size < capacity * BITS_PER_ID && size < MAX_BITS) size *= 2;
  while (size > room && size > 1 << 5) size /= 2;
  if (size > room) return undefined;
  return { bits: new Int32Array(size >>> 5), mask: size - 1, capacity, ids: 0, newestMs: -Infinity };
}
