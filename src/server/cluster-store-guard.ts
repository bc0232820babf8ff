// A relay on a shared database (cluster mode) must notice when the database is unreachable, to
// say NOT_SERVING (health.ts) until it is back: every store call goes through this guard, which
// reports a PgError marked `unreachable` (sync-client.ts) and rethrows it unchanged (the caller
// refuses as before: storageRefusalOf, a failed delivery that the next kick retries). Only in
// cluster mode: one relay on its embedded store keeps calling the store directly.
import type { RelayStore } from "./store.js";
import { PgError } from "./store/pg/sync-client.js";

/** Whether a store failure means the database could not be reached (not the statement's fault). */
export function isUnreachable(e: unknown): boolean {
  return e instanceof PgError && e.unreachable;
}

function guarded<T extends object>(target: T, onUnreachable: (e: unknown) => void, nested: ReadonlySet<string | symbol>): T {
  const wrappedFns = new Map<string | symbol, unknown>();
  const wrappedObjs = new Map<string | symbol, unknown>();
  return new Proxy(target, {
    get(t, prop, receiver) {
      const v: unknown = Reflect.get(t, prop, receiver);
      if (nested.has(prop) && typeof v === "object" && v !== null) {
        let w = wrappedObjs.get(prop);
        if (w === undefined) {
          w = guarded(v, onUnreachable, new Set());
          wrappedObjs.set(prop, w);
        }
        return w;
      }
      if (typeof v !== "function") return v;
      let w = wrappedFns.get(prop);
      if (w === undefined) {
        const fn = v as (...args: unknown[]) => unknown;
        w = (...args: unknown[]): unknown => {
          try {
            return fn.apply(t, args);
          } catch (e) {
            if (isUnreachable(e)) onUnreachable(e);
            throw e;
          }
        };
        wrappedFns.set(prop, w);
      }
      return w;
    },
  });
}

/** The store, with every call (its mls and devices parts too) reporting an unreachable database. */
export function guardStore(store: RelayStore, onUnreachable: (e: unknown) => void): RelayStore {
  return guarded(store, onUnreachable, new Set(["mls", "devices"]));
}
