// New usernames per source address and time (PROTOCOL.md §9): a token bucket per source, so one
// address cannot bind names by the hundred (each binding is durable, announced to everyone
// online, and pinned by their clients). Returning users never take a token: only a binding
// that would create a new name does, right before its durable write.
import { TokenBucket } from "./limits.js";

const HOUR_MS = 60 * 60 * 1000;
/** Buckets kept before full ones (which carry no information) are swept. */
const SWEEP_AT = 4096;

export type RegistrationDecision =
  | { readonly ok: true }
  | { readonly ok: false; readonly retryAfterMs: number };

export class RegistrationLimiter {
  private readonly buckets = new Map<string, TokenBucket>();

  constructor(private readonly burst: number, private readonly perHour: number) {
    if (!Number.isSafeInteger(burst) || burst <= 0) throw new RangeError("registration burst must be a positive integer");
    if (!Number.isSafeInteger(perHour) || perHour <= 0) throw new RangeError("registrations per hour must be a positive integer");
  }

  /** Takes a registration token for `source`, or says how long until one is there. */
  take(source: string, nowMs: number): RegistrationDecision {
    let bucket = this.buckets.get(source);
    if (bucket === undefined) {
      if (this.buckets.size >= SWEEP_AT) this.sweep(nowMs);
      bucket = new TokenBucket(this.perHour / (HOUR_MS / 1000), this.burst, nowMs);
      this.buckets.set(source, bucket);
    }
    if (bucket.take(nowMs)) return { ok: true };
    return { ok: false, retryAfterMs: bucket.msUntilToken(nowMs) };
  }

  /** Sources tracked now (a full bucket is forgotten at the next sweep). */
  get size(): number {
    return this.buckets.size;
  }

  /** Forgets buckets that refilled completely: a fresh one would be the same. */
  private sweep(nowMs: number): void {
    for (const [source, bucket] of this.buckets) if (bucket.isFull(nowMs)) this.buckets.delete(source);
  }
}
