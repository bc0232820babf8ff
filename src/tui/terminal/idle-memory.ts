// Gives memory back once the UI falls idle. V8 grows its young generation and keeps the garbage
// of a busy spell (startup: decrypting the kept history, loading modules; a burst of messages)
// until its next collection, and an idle process allocates nothing, so that collection never
// comes: a client left open sat at ~145 MB. Browsers collect in idle time; V8's memory reducer
// needs idle notifications Node does not send. So: when nothing was drawn for IDLE_MS after some
// activity, one full collection that also shrinks the young generation ("last resort", as under
// memory pressure). It runs only when the user is not typing and nothing arrives, and at most
// once per busy spell, so it never delays a key.
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

/** Quiet time after the last frame before collecting. */
export const IDLE_MS = 2_000;
/** A timer this late means the event loop was busy (a burst being taken in): not idle. */
const BUSY_LATENESS_MS = 100;

type GcFunction = (options?: { type?: "major" | "minor"; execution?: "sync" | "async"; flavor?: "regular" | "last-resort" }) => void;

let cached: GcFunction | null | undefined;

/** V8's gc(), without exposing it to the program (undefined where the engine refuses). */
function collector(): GcFunction | undefined {
  if (cached !== undefined) return cached ?? undefined;
  try {
    // The flag is read when a context is created: a fresh one gets gc(); ours stays without it.
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as unknown;
    setFlagsFromString("--no-expose-gc");
    cached = typeof gc === "function" ? (gc as GcFunction) : null;
  } catch {
    cached = null;
  }
  return cached ?? undefined;
}

export interface IdleMemory {
  /** Something happened (a frame was drawn): collect once it has been quiet for a while. */
  activity(): void;
  stop(): void;
}

export function idleMemory(options: { readonly idleMs?: number; readonly onCollect?: (ms: number) => void } = {}): IdleMemory {
  const idleMs = options.idleMs ?? IDLE_MS;
  let timer: NodeJS.Timeout | undefined;
  let due = 0;
  let stopped = false;
  const arm = (): void => {
    due = performance.now() + idleMs;
    if (timer !== undefined) timer.refresh();
    else {
      timer = setTimeout(collect, idleMs);
      // Never keeps the process alive on its own.
      timer.unref();
    }
  };
  const collect = (): void => {
    timer = undefined;
    if (stopped) return;
    if (performance.now() - due > BUSY_LATENESS_MS) {
      arm();
      return;
    }
    const gc = collector();
    if (gc === undefined) return;
    const started = performance.now();
    gc({ type: "major", execution: "sync", flavor: "last-resort" });
    options.onCollect?.(performance.now() - started);
  };
  return {
    activity() {
      if (!stopped) arm();
    },
    stop() {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
    },
  };
}
