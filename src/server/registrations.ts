// New usernames per source address and time (PROTOCOL.md §9, §13.2): a token bucket per source, so
// one address cannot bind names by the hundred (each binding is durable, announced to everyone
// online, and pinned by their clients). Returning users never take a token: only a binding
// that would create a new name does, right before its durable write.
//
// An IPv6 source is its /64 (handshake-budget.ts sourceOf), and it also takes from the bucket of
// its /48 (handshake-budget.ts networkOf, as linking counts it): one rented host is often given a /56 or a /48, i.e.
// 256 or 65,536 /64s, and with a bucket per /64 alone it could register that many times the
// per-source burst at once. The /48's bucket is NETWORK_FACTOR times the source's (burst and
// rate), so a few hosts sharing a /48 still register as usual. An IPv4 address is its own network.
import { networkOf } from "./handshake-budget.js";
import { TokenBucket } from "./limits.js";

const HOUR_MS = 60 * 60 * 1000;
/** Buckets kept before full ones (which carry no information) are swept. */
const SWEEP_AT = 4096;
/** A /48's bucket (burst and rate) in source buckets, as link-rendezvous.ts caps a /48 at 4 sources' worth. */
export const NETWORK_FACTOR = 4;

export type RegistrationDecision =
  | { readonly ok: true }
  | { readonly ok: false; readonly retryAfterMs: number };

export class RegistrationLimiter {
  private readonly buckets = new Map<string, TokenBucket>();

  constructor(private readonly burst: number, private readonly perHour: number) {
    if (!Number.isSafeInteger(burst) || burst <= 0) throw new RangeError("registration burst must be a positive integer");
    if (!Number.isSafeInteger(perHour) || perHour <= 0) throw new RangeError("registrations per hour must be a positive integer");
  }

  /**
   * Takes a registration token for `source` (and its /48, when it is an IPv6 /64), or says how
   * long until one is there. Both buckets must have a token; neither is taken from otherwise.
   */
  take(source: string, nowMs: number): RegistrationDecision {
    const own = this.bucket(source, 1, nowMs);
    const network = networkOf(source);
    const net = network === source ? undefined : this.bucket(`net:${network}`, NETWORK_FACTOR, nowMs);
    const wait = Math.max(own.msUntilToken(nowMs), net?.msUntilToken(nowMs) ?? 0);
    if (wait > 0) return { ok: false, retryAfterMs: wait };
    own.take(nowMs);
    net?.take(nowMs);
    return { ok: true };
  }

  /** Buckets tracked now, sources and networks (a full bucket is forgotten at the next sweep). */
  get size(): number {
    return this.buckets.size;
  }

  private bucket(key: string, factor: number, nowMs: number): TokenBucket {
    let bucket = this.buckets.get(key);
    if (bucket === undefined) {
      if (this.buckets.size >= SWEEP_AT) this.sweep(nowMs);
      bucket = new TokenBucket((factor * this.perHour) / (HOUR_MS / 1000), factor * this.burst, nowMs);
      this.buckets.set(key, bucket);
    }
    return bucket;
  }

  /** Forgets buckets that refilled completely: a fresh one would be the same. */
  private sweep(nowMs: number): void {
    for (const [key, bucket] of this.buckets) if (bucket.isFull(nowMs)) this.buckets.delete(key);
  }
}
