// Devices (PROTOCOL.md §4.5) in PostgreSQL: the embedded store's DeviceStore (store/devices.ts),
// same behaviour, for many relays on one database. Tables: pg/schema-mls.ts.
// - A kept list only grows: the upsert updates only WHERE excluded.version > the kept one, and
//   PostgreSQL re-checks that against the newest row when two relays publish at once.
// - Last seen is written cheaply, as in SQLite: session open and close only note the time in
//   memory; the notes go to the database in one statement per DEVICE_SEEN_FLUSH_MS at most, in
//   a transaction that does not wait for the WAL flush (durable: false). A lost note only shows
//   an older "last seen"; a failed flush never throws. Rows are written in key order, so two
//   relays flushing the same devices cannot deadlock each other.
import type { DeviceListStore } from "../../store.js";
import { PendingSeen } from "../device-seen.js";
import type { KeptDeviceList } from "../devices.js";
import type { PgStoreContext } from "./context.js";
import type { SyncPg } from "./sync-client.js";

export class PgDeviceStore implements DeviceListStore {
  private readonly db: SyncPg;
  private readonly clock: () => number;
  /** Last-seen notes not written yet. */
  private readonly pendingSeen = new PendingSeen(() => this.flushSeen());

  constructor(ctx: PgStoreContext) {
    this.db = ctx.db;
    this.clock = ctx.clock;
  }

  /** The kept list of a user, if any. */
  list(username: string): KeptDeviceList | undefined {
    const [r] = this.db.query("SELECT username, version, list FROM device_lists WHERE username = $1", [username]);
    return r === undefined ? undefined : { username: String(r["username"]), version: Number(r["version"]), list: Buffer.from(r["list"] as Uint8Array) };
  }

  /** Every user's kept version (Directory entries carry it). */
  versions(): Map<string, number> {
    const out = new Map<string, number>();
    for (const r of this.db.query("SELECT username, version FROM device_lists")) out.set(String(r["username"]), Number(r["version"]));
    return out;
  }

  /**
   * Keeps a newer list (in a transaction: the caller's, with the drops of the devices it
   * removed). False when the kept version is not lower (a concurrent publish won).
   */
  putListLocked(username: string, version: number, list: Uint8Array): boolean {
    return this.db.query(`INSERT INTO device_lists (username, version, list, updated_at_ms) VALUES ($1, $2, $3, $4)
      ON CONFLICT (username) DO UPDATE SET version = excluded.version, list = excluded.list, updated_at_ms = excluded.updated_at_ms
      WHERE excluded.version > device_lists.version RETURNING 1 AS hit`, [username, version, Buffer.from(list), this.clock()]).length === 1;
  }

  /** An unlinked device's last-seen row (in a transaction). */
  dropSeenLocked(username: string, deviceId: string): void {
    this.pendingSeen.dropDevice(username, deviceId);
    this.db.query("DELETE FROM device_seen WHERE username = $1 AND device_id = $2", [username, deviceId]);
  }

  /** A released name (in a transaction): its list and last-seen rows go. */
  dropUserLocked(username: string): void {
    this.pendingSeen.dropUser(username);
    this.db.batch([
      { sql: "DELETE FROM device_lists WHERE username = $1", params: [username] },
      { sql: "DELETE FROM device_seen WHERE username = $1", params: [username] },
    ]);
  }

  /** Notes that a session of this device was open at `ms` (written later, in a batch). */
  noteSeen(username: string, deviceId: string, ms: number): void {
    this.pendingSeen.note(username, deviceId, ms);
  }

  /** Last seen per device id of a user: what is written, with the notes not written yet. */
  lastSeen(username: string): Map<string, number> {
    const out = new Map<string, number>();
    for (const r of this.db.query("SELECT device_id, last_seen_ms FROM device_seen WHERE username = $1", [username])) {
      out.set(String(r["device_id"]), Number(r["last_seen_ms"]));
    }
    return this.pendingSeen.mergeInto(username, out);
  }

  /** lastSeen of each of these users (FetchDeviceLists), in one statement whatever the count. */
  lastSeenOf(usernames: readonly string[]): Map<string, Map<string, number>> {
    const out = new Map<string, Map<string, number>>(usernames.map((u) => [u, new Map<string, number>()]));
    if (usernames.length === 0) return out;
    for (const r of this.db.query("SELECT username, device_id, last_seen_ms FROM device_seen WHERE username = ANY($1::text[])", [[...usernames]])) {
      out.get(String(r["username"]))?.set(String(r["device_id"]), Number(r["last_seen_ms"]));
    }
    for (const [u, seen] of out) this.pendingSeen.mergeInto(u, seen);
    return out;
  }

  /** Writes the pending last-seen notes (one statement, no WAL flush wait). Never throws: a lost note is an older "last seen". */
  flushSeen(): void {
    this.pendingSeen.stopTimer();
    if (this.pendingSeen.size === 0) return;
    const notes = this.pendingSeen.take();
    const users = notes.map((n) => n.username);
    const devices = notes.map((n) => n.deviceId);
    const times = notes.map((n) => n.ms);
    try {
      this.db.transaction(() => {
        this.db.query(`INSERT INTO device_seen (username, device_id, last_seen_ms)
            SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])
          ON CONFLICT (username, device_id) DO UPDATE SET last_seen_ms = GREATEST(device_seen.last_seen_ms, excluded.last_seen_ms)`,
        [users, devices, times]);
      }, { durable: false });
    } catch {
      // A dead or busy database (or a closed store): the notes are display-only; the next session writes again.
    }
  }
}
