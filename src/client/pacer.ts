// The client's copy of the relay's token bucket (PROTOCOL.md §13, §13.3): the relay advertises its
// rate and burst in Welcome and refuses a SendEnvelope (or a room request, which draws on the
// same bucket) as RATE_LIMITED when its bucket is empty. The client spends tokens from a bucket
// of its own before writing, so it never gets there: a long outbox drains at the allowed pace.
//
// The client's bucket is smaller and slower than the relay's, because the relay counts when it
// reads a frame, not when the client wrote it: frames written evenly can be read bunched (the
// network, a relay busy with a commit). A client bucket (r', b') whose frames are read up to J
// seconds late stays within the relay's (r, b) when r' <= r and b' + r' * J <= b. So the client
// uses r' = 0.9 r (the slack refills the margin during a long drain), lowered (down to r / 2)
// when the relay's burst is too small to absorb JITTER_MS at that rate, and b' = b - r' * J.
// If the relay says "too fast" anyway (its clock runs slow, a bucket shared with something the
// client does not see), the pacer stops sending for a while, growing the pause while the relay
// keeps refusing; nothing is ever shown as failed for it (chat-client resends the message).

/** Fraction of the advertised rate the client uses. */
export const PACE_RATE_FRACTION = 0.9;
/** How late the relay may read a frame (compared with the others) without refusing it. */
export const JITTER_MS = 250;

/** The client's bucket for a relay's (rate, burst), and how much read jitter it absorbs. */
export function paceFor(ratePerSecond: number, burst: number): { readonly ratePerSecond: number; readonly burst: number; readonly jitterMs: number } {
  const b = Math.floor(burst);
  const fraction = ratePerSecond * PACE_RATE_FRACTION;
  // With a burst of 1 no margin is possible: pacing at 0.9 r, and "too fast" answers, do the rest.
  const rate = b >= 2 ? Math.min(fraction, Math.max(ratePerSecond / 2, ((b - 1) * 1000) / JITTER_MS)) : fraction;
  const clientBurst = Math.max(1, Math.floor(b - (rate * JITTER_MS) / 1000));
  return { ratePerSecond: rate, burst: clientBurst, jitterMs: ((b - clientBurst) * 1000) / rate };
}
/** Longest pause after the relay said "too fast" again and again. */
export const MAX_TOO_FAST_PAUSE_MS = 10_000;

export class SendPacer {
  private ratePerMs = 0;
  private burst = 1;
  private tokens = 0;
  private lastMs = 0;
  /** No token is handed out before this instant (a pause after "too fast"). */
  private pausedUntilMs = 0;
  /** "Too fast" answers in a row (reset when a message is accepted). */
  private tooFastStreak = 0;
  /** When the current pause started: answers to frames sent before it do not grow it. */
  private lastPauseAtMs = -Infinity;

  constructor(private readonly clock: () => number) {}

  /**
   * A new session. The relay continues this device's bucket across its sessions (PROTOCOL.md
   * §13.2), so ours continues too while the pace is the same; a first session, or other limits
   * (another relay, a relay reconfigured), start full. `rate` in envelopes per second and `burst`
   * as advertised in Welcome (both > 0).
   */
  reset(ratePerSecond: number, burst: number): void {
    if (!(ratePerSecond > 0) || !(burst >= 1)) throw new RangeError(`the relay's rate (${ratePerSecond}) and burst (${burst}) must be positive`);
    const pace = paceFor(ratePerSecond, burst);
    const same = this.ratePerMs === pace.ratePerSecond / 1000 && this.burst === pace.burst;
    this.ratePerMs = pace.ratePerSecond / 1000;
    this.burst = pace.burst;
    if (same) this.refill(this.clock());
    else {
      this.tokens = this.burst;
      this.lastMs = this.clock();
    }
    this.pausedUntilMs = 0;
    this.tooFastStreak = 0;
    this.lastPauseAtMs = -Infinity;
  }

  private refill(now: number): void {
    const elapsed = Math.max(0, now - this.lastMs);
    this.lastMs = Math.max(this.lastMs, now);
    this.tokens = Math.min(this.burst, this.tokens + elapsed * this.ratePerMs);
  }

  /** Milliseconds until `n` tokens can be taken (0: now); n is capped at this bucket's size. */
  delayMs(n = 1): number {
    const now = this.clock();
    this.refill(now);
    const want = Math.min(n, this.burst);
    const pause = Math.max(0, this.pausedUntilMs - now);
    const refill = this.tokens >= want ? 0 : Math.ceil((want - this.tokens) / this.ratePerMs);
    return Math.max(pause, refill);
  }

  /** Takes `n` tokens (capped at the bucket's size); call only when delayMs(n) is 0. Returns the instant, for tooFast(). */
  take(n = 1): number {
    const now = this.clock();
    this.refill(now);
    this.tokens -= Math.min(n, this.burst);
    return now;
  }

  /**
   * Waits for `n` tokens and takes them (room requests share the relay's bucket with sends; a
   * PublishKeyPackages takes one per 10 KeyPackages, PROTOCOL.md §13.2).
   */
  async acquire(alive: () => boolean = () => true, n = 1): Promise<void> {
    for (;;) {
      const wait = this.delayMs(n);
      if (wait === 0 || !alive()) break;
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
    this.take(n);
  }

  /** The relay accepted a message: the pauses start short again. */
  accepted(): void {
    this.tooFastStreak = 0;
  }

  /**
   * The relay answered "too fast" to a frame sent at `sentAtMs`. Empties the bucket and pauses:
   * one token's time, doubling with each refusal in a row, at most MAX_TOO_FAST_PAUSE_MS. A
   * refusal of a frame sent before the current pause began is the same episode and does not
   * grow it. Returns the pause in ms.
   */
  tooFast(sentAtMs: number): number {
    const now = this.clock();
    this.refill(now);
    this.tokens = Math.min(this.tokens, 0);
    if (sentAtMs < this.lastPauseAtMs) return Math.max(0, this.pausedUntilMs - now);
    this.tooFastStreak++;
    const oneToken = 1 / this.ratePerMs;
    const pause = Math.min(MAX_TOO_FAST_PAUSE_MS, Math.ceil(oneToken * 2 ** (this.tooFastStreak - 1)));
    this.lastPauseAtMs = now;
    this.pausedUntilMs = now + pause;
    return pause;
  }
}
