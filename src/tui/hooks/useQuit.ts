// Leaving: mark the UI as leaving, close the session (with a deadline, so a stuck network
// cannot keep the user's terminal hostage), then exit Ink, which restores the terminal and
// settles runTui with the exit code.
import { useApp } from "ink";
import { useCallback, useEffect, useRef } from "react";
import type { ChatSession } from "../../client/types.js";
import type { Logger } from "../../protocol/log.js";
import type { Action } from "../state/reducer.js";

export const CLOSE_DEADLINE_MS = 5_000;

export interface UseQuitOptions {
  readonly session: ChatSession;
  readonly dispatch: (action: Action) => void;
  readonly logger: Logger;
  /** Aborting it leaves the same way as /quit (the bin wires SIGTERM and SIGHUP to it). */
  readonly signal?: AbortSignal;
  readonly closeDeadlineMs?: number;
}

/** Closes the session; resolves 0 when it closed, 1 when it failed or missed the deadline. */
export async function closeSession(session: ChatSession, logger: Logger, deadlineMs: number): Promise<number> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<number>((resolve) => {
    timer = setTimeout(() => {
      logger.warn("tui.close-timeout", { deadlineMs });
      resolve(1);
    }, deadlineMs);
  });
  const closing = Promise.resolve()
    .then(() => session.close())
    .then(
      () => 0,
      (e: unknown) => {
        logger.error("tui.close-failed", { reason: e instanceof Error ? e.message : String(e) });
        return 1;
      },
    );
  try {
    return await Promise.race([closing, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

export function useQuit({ session, dispatch, logger, signal, closeDeadlineMs = CLOSE_DEADLINE_MS }: UseQuitOptions): () => void {
  const { exit } = useApp();
  const leaving = useRef(false);
  const quit = useCallback(() => {
    if (leaving.current) return;
    leaving.current = true;
    dispatch({ type: "quitting" });
    void closeSession(session, logger, closeDeadlineMs).then((code) => exit(code));
  }, [session, dispatch, logger, closeDeadlineMs, exit]);

  useEffect(() => {
    if (signal === undefined) return;
    if (signal.aborted) {
      quit();
      return;
    }
    signal.addEventListener("abort", quit, { once: true });
    return () => signal.removeEventListener("abort", quit);
  }, [signal, quit]);

  return quit;
}
