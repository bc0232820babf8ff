// PLACEHOLDER owned by helper "pgmls", who replaces this file with the real PostgreSQL device
// store. What the facade (pg-store.ts) relies on: the constructor (ctx: PgStoreContext),
// DeviceListStore's methods, and the *Locked methods that run inside the facade's
// db.transaction (releaseUser, replaceDeviceList), named as in store/devices.ts. Those and
// flushSeen (called by close; nothing is ever pending here) work; the rest throws until
// pgmls's file lands.
import type { DeviceListStore } from "../../store.js";
import type { PgStoreContext } from "./context.js";
import type { SyncPg } from "./sync-client.js";

function notBuilt(): never {
  throw new Error("the PostgreSQL device store is not built yet");
}

export class PgDeviceStore implements DeviceListStore {
  private readonly db: SyncPg;
  private readonly clock: () => number;

  constructor(ctx: PgStoreContext) {
    this.db = ctx.db;
    this.clock = ctx.clock;
  }

  list(): never { return notBuilt(); }
  versions(): never { return notBuilt(); }
  noteSeen(): never { return notBuilt(); }
  lastSeen(): never { return notBuilt(); }

  flushSeen(): void {
    // Nothing is noted in this placeholder.
  }

  /** Keeps a newer list (inside a transaction); false when the kept version is not lower. */
  putListLocked(username: string, version: number, list: Uint8Array): boolean {
    return this.db.query(
      `INSERT INTO device_lists (username, version, list, updated_at_ms) VALUES ($1, $2, $3, $4)
       ON CONFLICT (username) DO UPDATE SET version = excluded.version, list = excluded.list, updated_at_ms = excluded.updated_at_ms
       WHERE excluded.version > device_lists.version RETURNING 1`,
      [username, version, Buffer.from(list), this.clock()],
    ).length === 1;
  }

  /** An unlinked device's last-seen row (inside a transaction). */
  dropSeenLocked(username: string, deviceId: string): void {
    this.db.query("DELETE FROM device_seen WHERE username = $1 AND device_id = $2", [username, deviceId]);
  }

  /** A released name's list and last-seen rows (inside a transaction). */
  dropUserLocked(username: string): void {
    this.db.batch([
      { sql: "DELETE FROM device_lists WHERE username = $1", params: [username] },
      { sql: "DELETE FROM device_seen WHERE username = $1", params: [username] },
    ]);
  }
}
