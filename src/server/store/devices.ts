// Devices (PROTOCOL.md §4.5): each user's kept device list (the wire DeviceList bytes as published,
// verified by src/server/devices.ts before they get here) and the last time each device had a
// session open (`device_seen`, for display only).
//
// Last seen is written cheaply: session open and close only note the time in memory; the notes
// go to the database in one transaction per DEVICE_SEEN_FLUSH_MS at most, without waiting for an
// fsync (synchronous=NORMAL, as acks): a lost note only shows an older "last seen".
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { PendingSeen } from "./device-seen.js";
import { buf, num, str, type Row, type StoreContext, type Transaction } from "./schema.js";

export { DEVICE_SEEN_FLUSH_MS } from "./device-seen.js";

export interface KeptDeviceList {
  readonly username: string;
  readonly version: number;
  /** The wire DeviceList protobuf bytes, as published. */
  readonly list: Buffer;
}

function prepareDeviceStatements(db: DatabaseSync) {
  const p = (sql: string): StatementSync => db.prepare(sql);
  return {
    listGet: p("SELECT username, version, list FROM device_lists WHERE username = ?"),
    listVersions: p("SELECT username, version FROM device_lists"),
    listPut: p(`INSERT INTO device_lists (username, version, list, updated_at_ms) VALUES (?, ?, ?, ?)
                ON CONFLICT (username) DO UPDATE SET version = excluded.version, list = excluded.list, updated_at_ms = excluded.updated_at_ms
                WHERE excluded.version > device_lists.version`),
    listDrop: p("DELETE FROM device_lists WHERE username = ?"),
    seenOf: p("SELECT device_id, last_seen_ms FROM device_seen WHERE username = ?"),
    seenPut: p(`INSERT INTO device_seen (username, device_id, last_seen_ms) VALUES (?, ?, ?)
                ON CONFLICT (username, device_id) DO UPDATE SET last_seen_ms = max(last_seen_ms, excluded.last_seen_ms)`),
    seenDrop: p("DELETE FROM device_seen WHERE username = ? AND device_id = ?"),
    seenDropUser: p("DELETE FROM device_seen WHERE username = ?"),
  };
}

export class DeviceStore {
  private readonly db: DatabaseSync;
  private readonly clock: () => number;
  private readonly transaction: Transaction;
  private readonly s: ReturnType<typeof prepareDeviceStatements>;
  /** Last-seen notes not written yet. */
  private readonly pendingSeen = new PendingSeen(() => this.flushSeen());

  constructor(c: StoreContext) {
    this.db = c.db;
    this.clock = c.clock;
    this.transaction = c.transaction;
    this.s = prepareDeviceStatements(c.db);
  }

  /** The kept list of a user, if any. */
  list(username: string): KeptDeviceList | undefined {
    const r = this.s.listGet.get(username) as Row | undefined;
    return r === undefined ? undefined : { username: str(r.username), version: num(r.version), list: Buffer.from(buf(r.list)) };
  }

  /** Every user's kept version (Directory entries carry it). */
  versions(): Map<string, number> {
    const out = new Map<string, number>();
    for (const r of this.s.listVersions.iterate() as Iterable<Row>) out.set(str(r.username), num(r.version));
    return out;
  }

  /**
   * Keeps a newer list (in a transaction: the caller's, with the drops of the devices it
   * removed). False when the kept version is not lower (a concurrent publish won).
   */
  putListLocked(username: string, version: number, list: Uint8Array): boolean {
    return Number(this.s.listPut.run(username, version, list, this.clock()).changes) === 1;
  }

  /** An unlinked device's last-seen row (in a transaction). */
  dropSeenLocked(username: string, deviceId: string): void {
    this.pendingSeen.dropDevice(username, deviceId);
    this.s.seenDrop.run(username, deviceId);
  }

  /** A released name (in a transaction): its list and last-seen rows go. */
  dropUserLocked(username: string): void {
    this.pendingSeen.dropUser(username);
    this.s.listDrop.run(username);
    this.s.seenDropUser.run(username);
  }

  /** Notes that a session of this device was open at `ms` (written later, in a batch). */
  noteSeen(username: string, deviceId: string, ms: number): void {
    this.pendingSeen.note(username, deviceId, ms);
  }

  /** Last seen per device id of a user: what is written, with the notes not written yet. */
  lastSeen(username: string): Map<string, number> {
    const out = new Map<string, number>();
    for (const r of this.s.seenOf.iterate(username) as Iterable<Row>) out.set(str(r.device_id), num(r.last_seen_ms));
    return this.pendingSeen.mergeInto(username, out);
  }

  /** lastSeen of each of these users (FetchDeviceLists): local reads here; one statement on PostgreSQL. */
  lastSeenOf(usernames: readonly string[]): Map<string, Map<string, number>> {
    return new Map(usernames.map((u) => [u, this.lastSeen(u)]));
  }

  /** Writes the pending last-seen notes (one transaction, no fsync wait). Never throws: a lost note is an older "last seen". */
  flushSeen(): void {
    this.pendingSeen.stopTimer();
    if (this.pendingSeen.size === 0 || !this.db.isOpen) return;
    const notes = this.pendingSeen.take();
    try {
      this.db.exec("PRAGMA synchronous = NORMAL");
      try {
        this.transaction(() => {
          for (const n of notes) this.s.seenPut.run(n.username, n.deviceId, n.ms);
        });
      } finally {
        this.db.exec("PRAGMA synchronous = FULL");
      }
    } catch {
      // A full disk or a busy database: the notes are display-only; the next session writes again.
    }
  }
}
