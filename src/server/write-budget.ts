// The relay-wide budget for delivery bytes written to streams and not yet sent (issue 16).
//
// Every DeliverBatch write takes its bytes from this budget before it is written and gives
// them back once grpc-js reports it sent (or the stream is over). A fan-out burst to 1,000
// readers therefore holds at most `limitBytes` of delivery frames in Node's HTTP/2 buffers at
// once instead of one batch per reader (117 MB measured at 1,000 sessions before): the rest
// waits in the database, and writers are served in the order they asked, so pacing is fair.
//
// A reader that stops reading must not stall everyone: bytes written to it wait for its
// flow-control window, which never opens. A write that has held its share for `stallMs` while
// others wait is set aside ("parked"): its bytes stop counting against the budget (they are
// still bounded per session: one batch, see delivery.ts) and the waiting writers go on. The
// stalled reader's own queue then grows until the outgoing limit ends it as a SLOW_CONSUMER.
//
// The one timer is armed only while writers wait, for the oldest write's stall deadline.

/** A share of the budget held by one write; release() gives it back (once; later calls do nothing). */
export interface WriteLease {
  readonly bytes: number;
  release(): void;
}

export interface WriteBudgetOptions {
  /** Bytes of delivery frames in flight relay-wide; one write is always allowed when none is. */
  readonly limitBytes: number;
  /** How long a write may hold its share while others wait before it is set aside. */
  readonly stallMs: number;
  /** Monotonic milliseconds (tests may inject). */
  readonly now?: () => number;
}

interface Lease extends WriteLease {
  readonly grantedAt: number;
  parked: boolean;
  released: boolean;
}

interface Waiter {
  readonly bytes: number;
  readonly grant: (lease: WriteLease | undefined) => void;
}

export class WriteBudget {
  private used = 0;
  private parkedBytes = 0;
  private parkedCount = 0;
  /** Leases that count against the budget, oldest first (a Set keeps insertion order). */
  private readonly active = new Set<Lease>();
  private readonly waiters: Waiter[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly now: () => number;

  constructor(private readonly o: WriteBudgetOptions) {
    if (!Number.isSafeInteger(o.limitBytes) || o.limitBytes <= 0) throw new RangeError(`write budget must be a positive integer of bytes, not ${o.limitBytes}`);
    if (!(o.stallMs > 0)) throw new RangeError(`write budget stall time must be positive, not ${o.stallMs}`);
    this.now = o.now ?? (() => performance.now());
  }

  /** Bytes of writes in flight that count against the budget. */
  get inFlightBytes(): number {
    return this.used;
  }

  /** Bytes of writes set aside as stalled (their readers do not read) and not released yet. */
  get stalledBytes(): number {
    return this.parkedBytes;
  }

  /** Writes set aside as stalled so far. */
  get stalledWrites(): number {
    return this.parkedCount;
  }

  /** Writers waiting for room. */
  get waiting(): number {
    return this.waiters.length;
  }

  /**
   * Takes `bytes` from the budget: at once when they fit and nobody waits (or nothing is in
   * flight), else once earlier waiters were served and room was freed. Resolves undefined when
   * `signal` aborts first (the stream is over).
   */
  acquire(bytes: number, signal: AbortSignal): Promise<WriteLease | undefined> {
    if (signal.aborted) return Promise.resolve(undefined);
    const now = this.tryAcquire(bytes);
    if (now !== undefined) return Promise.resolve(now);
    return new Promise((resolve) => {
      const onAbort = (): void => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        resolve(undefined);
        // The head may have been the one that did not fit: those behind it may fit now.
        this.serve();
      };
      const waiter: Waiter = {
        bytes,
        grant: (lease) => {
          signal.removeEventListener("abort", onAbort);
          resolve(lease);
        },
      };
      signal.addEventListener("abort", onAbort, { once: true });
      this.waiters.push(waiter);
      this.arm();
    });
  }

  /** Takes `bytes` at once when acquire() would grant them without waiting; else undefined (nothing taken). */
  tryAcquire(bytes: number): WriteLease | undefined {
    return this.waiters.length === 0 && this.fits(bytes) ? this.grant(bytes) : undefined;
  }

  private fits(bytes: number): boolean {
    return this.used === 0 || this.used + bytes <= this.o.limitBytes;
  }

  private grant(bytes: number): WriteLease {
    const lease: Lease = {
      bytes,
      grantedAt: this.now(),
      parked: false,
      released: false,
      release: () => {
        if (lease.released) return;
        lease.released = true;
        if (lease.parked) {
          this.parkedBytes -= bytes;
        } else {
          this.used -= bytes;
          this.active.delete(lease);
        }
        this.serve();
      },
    };
    this.used += bytes;
    this.active.add(lease);
    return lease;
  }

  /** Grants waiters in order while the head fits. */
  private serve(): void {
    while (this.waiters.length > 0 && this.fits(this.waiters[0]!.bytes)) {
      const w = this.waiters.shift()!;
      w.grant(this.grant(w.bytes));
    }
    this.arm();
  }

  /** Sets aside the leases held past their stall deadline, then serves the waiters. */
  private parkStalled(): void {
    const now = this.now();
    for (const lease of this.active) {
      if (now - lease.grantedAt < this.o.stallMs) break; // oldest first: the rest are younger
      this.active.delete(lease);
      lease.parked = true;
      this.used -= lease.bytes;
      this.parkedBytes += lease.bytes;
      this.parkedCount++;
    }
    this.serve();
  }

  /** While writers wait, one timer for the oldest lease's stall deadline. */
  private arm(): void {
    if (this.waiters.length === 0) {
      if (this.timer !== undefined) clearTimeout(this.timer);
      this.timer = undefined;
      return;
    }
    if (this.timer !== undefined) return;
    const oldest = this.active.values().next();
    // Waiters but nothing active cannot last: fits() admits anything when nothing is in flight.
    if (oldest.done === true) return;
    const delay = Math.max(0, oldest.value.grantedAt + this.o.stallMs - this.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.parkStalled();
    }, delay);
    this.timer.unref();
  }
}
