// Requests whose answer must not be lost (PROTOCOL.md §8.1, §4.5): sent again, the same bytes,
// while the connection lost the answer, until the relay answers. The relay answers an identical
// resend as it answered the first copy (a commit, a registration, a re-creation, a device list),
// so the caller learns what happened instead of guessing from a lost connection.
import { TRANSIENT } from "./engine-state.js";
import type { DsResult } from "./ds-api.js";

/** The first wait before a resend, doubling up to RESEND_MAX_MS. */
export const RESEND_MS = 250;
export const RESEND_MAX_MS = 5_000;

export interface ResendOptions {
  /** Stop resending (the client closes): the last unanswered result is returned. */
  readonly stopped: () => boolean;
  /** Give up after this long (undefined: never); the last unanswered result is returned. */
  readonly giveUpAfterMs?: number;
  /** The first answer was lost (its code). */
  readonly onLost?: (code: string) => void;
}

/**
 * Sends, and while the answer is lost (CONNECTION_LOST, NO_ANSWER, or NOT_CONNECTED after the
 * first try) sends again after RESEND_MS, doubling up to RESEND_MAX_MS, waiting in steps of at
 * most RESEND_MS so that a stop is seen at once. NOT_CONNECTED on the first try is returned at
 * once: it never left, and a command given offline says so instead of waiting.
 */
export async function sendUntilAnswered<R extends DsResult<object>>(send: () => Promise<R>, o: ResendOptions): Promise<R> {
  let r = await send();
  if (r.ok || !TRANSIENT.has(r.code) || r.code === "NOT_CONNECTED") return r;
  o.onLost?.(r.code);
  const started = Date.now();
  const over = () => o.stopped() || (o.giveUpAfterMs !== undefined && Date.now() - started >= o.giveUpAfterMs);
  for (let wait = RESEND_MS; !r.ok && TRANSIENT.has(r.code) && !over(); wait = Math.min(2 * wait, RESEND_MAX_MS)) {
    const until = Date.now() + wait;
    while (Date.now() < until && !over()) await new Promise<void>((resolve) => setTimeout(resolve, Math.min(RESEND_MS, until - Date.now())));
    if (over()) break;
    r = await send();
  }
  return r;
}
