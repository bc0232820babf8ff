// The rate of each device (PROTOCOL.md §13.2, §13.3): the token buckets are kept per queue address
// (the bare username for a primary, `username/device_id` for a linked device, §4.5), not per
// session, so a device that reconnects (or replaces its own session) continues the bucket it
// had: a reconnect never buys a fresh burst. In memory, per relay process (§18: a device has one
// session in the service, on one relay). A bucket that has refilled completely holds nothing
// worth keeping and is forgotten once no session uses it; the map is bounded besides.
import { TokenBucket } from "./limits.js";

/** One device's buckets: writes, and fetches with key lookups (§13.2). */
export interface DeviceBuckets {
  readonly send: TokenBucket;
  readonly lookup: TokenBucket;
}

/** Entries kept beyond which full, unused ones are swept (then the next sweep waits until the map doubled). */
export const RATE_SWEEP_ENTRIES = 4_096;

export class DeviceRates {
  private readonly byAddress = new Map<string, DeviceBuckets>();
  private sweepAt: number;

  /**
   * @param inUse whether a session of the device at this address is live on this relay: its
   *   buckets are never forgotten, full or not (a session replacing it continues them).
   * @param maxEntries the most entries kept, beyond the live ones: unused ones beyond it go oldest
   *   first, so a flood of distinct devices costs a bounded map (at worst a fresh bucket for a
   *   device gone the longest). The relay gives room for all its sessions and as many again.
   */
  constructor(private readonly rate: number, private readonly burst: number, private readonly maxEntries: number,
    private readonly inUse: (address: string) => boolean) {
    this.sweepAt = Math.min(RATE_SWEEP_ENTRIES, maxEntries);
  }

  /** Entries kept now (tests, operators). */
  get size(): number {
    return this.byAddress.size;
  }

  /** A session of the device at `address` opens: its buckets, continued from its last session if kept. */
  open(address: string, nowMs: number): DeviceBuckets {
    let e = this.byAddress.get(address);
    if (e === undefined) {
      if (this.byAddress.size >= this.sweepAt) this.sweep(nowMs);
      e = { send: new TokenBucket(this.rate, this.burst, nowMs), lookup: new TokenBucket(this.rate, this.burst, nowMs) };
      this.byAddress.set(address, e);
    }
    return e;
  }

  /** A session of the device at `address` ended (and left the router): its buckets go once full and unused. */
  closed(address: string, nowMs: number): void {
    const e = this.byAddress.get(address);
    if (e !== undefined && this.forgettable(address, e, nowMs)) this.byAddress.delete(address);
  }

  private forgettable(address: string, e: DeviceBuckets, nowMs: number): boolean {
    return e.send.isFull(nowMs) && e.lookup.isFull(nowMs) && !this.inUse(address);
  }

  private sweep(nowMs: number): void {
    for (const [a, e] of this.byAddress) {
      if (this.forgettable(a, e, nowMs)) this.byAddress.delete(a);
    }
    for (const [a] of this.byAddress) {
      if (this.byAddress.size < this.maxEntries) break;
      if (!this.inUse(a)) this.byAddress.delete(a);
    }
    this.sweepAt = Math.max(Math.min(RATE_SWEEP_ENTRIES, this.maxEntries), Math.min(this.maxEntries, 2 * this.byAddress.size));
  }
}
