// When to try the relay again. The delay grows with each attempt that failed in a row and starts
// again from its minimum after every session that got as far as Welcome, however that session
// ended: a relay crash or a dropped network ends a session with an error, not cleanly, and must
// not count against the next outage (PROTOCOL.md §9, reconnecting).

export class ReconnectBackoff {
  private failures = 0;

  /** `delayFor(n)`: the wait after the n-th failed attempt in a row (n >= 1). */
  constructor(private readonly delayFor: (failures: number) => number) {}

  /** The attempt about to start, counted from the last session that reached Welcome (1, 2, …). */
  get attempt(): number {
    return this.failures + 1;
  }

  /** A session reached Welcome: the next outage starts from the shortest delay again. */
  welcomed(): void {
    this.failures = 0;
  }

  /** The attempt that just ended did not reach Welcome (or its session ended): how long to wait. */
  next(): { readonly attempt: number; readonly delayMs: number } {
    this.failures++;
    return { attempt: this.failures, delayMs: this.delayFor(this.failures) };
  }
}

/**
 * Waits until `atMs` on the given clock (the instant the status line counts down to), or until
 * wake() is called. The wait is computed from the same clock as the countdown, so the line that
 * says "reconnecting in 3s" is right about the 3 s.
 */
export function sleepUntil(atMs: number, clock: () => number): { readonly done: Promise<void>; readonly wake: () => void } {
  let wake: () => void = () => {};
  const done = new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, Math.max(0, atMs - clock()));
    wake = () => {
      clearTimeout(timer);
      resolve();
    };
  });
  return { done, wake };
}

export interface ReconnectPolicy {
  /** First delay; doubles per attempt. */
  readonly initialMs: number;
  /** Cap of the delay (PROTOCOL: 30 s). */
  readonly maxMs: number;
}

export const DEFAULT_RECONNECT: ReconnectPolicy = { initialMs: 1_000, maxMs: 30_000 };

/** Backoff with jitter: attempt 1 waits ~initial, doubling, capped, each scaled by 0.5-1.0. */
export function backoffDelay(attempt: number, policy: ReconnectPolicy, random: () => number = Math.random): number {
  const exp = Math.min(policy.maxMs, policy.initialMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(exp * (0.5 + 0.5 * random()));
}
