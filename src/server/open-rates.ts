// How often a device may open sessions (PROTOCOL.md §9.1 step 4, §13.1, §13.3): each session open
// costs the relay a signature check and two last-seen writes (at the open and at the close), so a
// device that opens and closes sessions in a loop is held to a token bucket, continued across its
// sessions like its sending bucket (rate-buckets.ts): a burst honest reconnects never reach, then
// a few per minute.
//
// Buckets are kept per proven key (the Ed25519 key the proof was made with: the identity key of a
// primary, the device key of a linked device) and per device address (the queue address, §4.5).
// A key's bucket is charged once its proof verified (the prover owns the key); an address's
// only once the prover is known to own the address (its bound keys, or its listed device key), so
// a stranger can never spend someone else's bucket. Before the proof the relay only looks
// (wait()): an empty bucket refuses the Hello at once, without the signature check.
//
// In memory, per relay process (§18: each relay's own buckets, as for the other per-relay rates).
// A bucket that refilled completely holds nothing worth keeping and is forgotten; beyond
// `maxEntries` the least recently used go first, so the map is bounded whatever the keys.
import { TokenBucket } from "./limits.js";

/** Entries kept before full ones are swept (then the next sweep waits until the map doubled). */
export const OPEN_SWEEP_ENTRIES = 4_096;

export type OpenDecision = { readonly ok: true } | { readonly ok: false; readonly retryAfterMs: number };

/** The bucket id of a proven key (hex of its fingerprint) and of a device address: never equal. */
export function keyBucket(fingerprintHex: string): string {
  return `k:${fingerprintHex}`;
}
export function addressBucket(address: string): string {
  return `a:${address}`;
}

export class SessionOpenRates {
  private readonly buckets = new Map<string, TokenBucket>();
  private sweepAt: number;

  /**
   * @param perMinute session opens per minute, sustained (the bucket's refill).
   * @param burst opens at once (the bucket's size).
   * @param maxEntries the most buckets kept; beyond it the least recently used are forgotten
   *   (at worst a fresh bucket for a device gone the longest).
   */
  constructor(private readonly perMinute: number, private readonly burst: number, private readonly maxEntries: number) {
    if (!Number.isSafeInteger(perMinute) || perMinute <= 0) throw new RangeError("session opens per minute must be a positive integer");
    if (!Number.isSafeInteger(burst) || burst <= 0) throw new RangeError("the session open burst must be a positive integer");
    if (!Number.isSafeInteger(maxEntries) || maxEntries <= 0) throw new RangeError("maxEntries must be a positive integer");
    this.sweepAt = Math.min(OPEN_SWEEP_ENTRIES, maxEntries);
  }

  /** Buckets kept now (tests, operators). */
  get size(): number {
    return this.buckets.size;
  }

  /** Milliseconds until every bucket named has a token (0: now). Takes nothing, keeps nothing. */
  wait(ids: readonly string[], nowMs: number): number {
    let wait = 0;
    for (const id of ids) wait = Math.max(wait, this.buckets.get(id)?.msUntilToken(nowMs) ?? 0);
    return wait;
  }

  /** Takes a token from every bucket named if each has one; from none otherwise. */
  take(ids: readonly string[], nowMs: number): OpenDecision {
    const wait = this.wait(ids, nowMs);
    if (wait > 0) return { ok: false, retryAfterMs: wait };
    for (const id of ids) {
      let bucket = this.buckets.get(id);
      if (bucket === undefined) {
        if (this.buckets.size >= this.sweepAt) this.sweep(nowMs);
        bucket = new TokenBucket(this.perMinute / 60, this.burst, nowMs);
      } else {
        this.buckets.delete(id); // re-inserted last: the map's order is least recently used first
      }
      this.buckets.set(id, bucket);
      bucket.take(nowMs);
    }
    return { ok: true };
  }

  private sweep(nowMs: number): void {
    for (const [id, bucket] of this.buckets) if (bucket.isFull(nowMs)) this.buckets.delete(id);
    for (const [id] of this.buckets) {
      if (this.buckets.size < this.maxEntries) break;
      this.buckets.delete(id);
    }
    this.sweepAt = Math.max(Math.min(OPEN_SWEEP_ENTRIES, this.maxEntries), Math.min(this.maxEntries, 2 * this.buckets.size));
  }
}
