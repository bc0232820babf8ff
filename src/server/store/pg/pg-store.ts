// The relay's durable state in PostgreSQL (notes/cluster-design.md §1): the same RelayStore as
// the embedded SQLite store (src/server/store.ts), shared by many relays on one database. Every
// statement goes through SyncPg (synchronous, on the relay's thread), so the relay's code is the
// same for both stores.
//
// This file is the facade; the parts mirror the embedded store's: schema.ts (DDL, migrations,
// relay_id), bindings.ts, queues.ts, rooms.ts, and pgmls's mls.ts and devices.ts. What spans them
// (releasing a name, keeping a new device list) runs here, in ONE transaction.
import type { DeviceListChange, FoundUser, RelayStore } from "../../store.js";
import { DelegatingStore, replaceDeviceListIn } from "../facade.js";
import { PgBindings } from "./bindings.js";
import type { PgStoreContext } from "./context.js";
import { PgDeviceStore } from "./devices.js";
import { PgMlsStore } from "./mls.js";
import { PgQueues } from "./queues.js";
import { PgMemberships } from "./rooms.js";
import { loadRelayId, migrate, type MigrateResult } from "./schema.js";
import { SyncPg } from "./sync-client.js";

export type { MigrateResult } from "./schema.js";
export type { PgStoreContext } from "./context.js";
export type { PgQueueWriter } from "./queues.js";

export interface PgStoreOptions {
  readonly clock?: () => number;
  /** Memory for recently stored envelopes' bytes, delivered from there (default 32 MiB). */
  readonly recentEnvelopeBytes?: number;
}

/** A RelayStore on PostgreSQL, with what opening it did to the schema. */
export interface PgRelayStore extends RelayStore {
  readonly migrate: MigrateResult;
  /**
   * False when the database commits without waiting for its WAL flush (`synchronous_commit =
   * off` for this role or database): a crash of PostgreSQL could then lose messages the relay
   * answered ACCEPTED. The relay warns at start (cluster-store-open.ts); it does not refuse, as
   * the setting is the operator's.
   */
  readonly durableCommits: boolean;
}

const RECENT_BYTES = 32 * 1024 * 1024;

/**
 * Opens the store at `url`, creating the schema in an empty database (under an advisory lock:
 * relays starting together do not race) or upgrading an older one. Throws a sentence when the
 * database cannot be reached or is newer than this relay.
 */
export function openPgStore(url: string, options: PgStoreOptions = {}): PgRelayStore {
  const recent = options.recentEnvelopeBytes ?? RECENT_BYTES;
  if (!Number.isSafeInteger(recent) || recent < 0) throw new RangeError("recentEnvelopeBytes must be a non-negative integer");
  const db = new SyncPg({ url, applicationName: "chat-relay" });
  try {
    const migrated = migrate(db);
    const [setting] = db.query<{ synchronous_commit: string }>("SHOW synchronous_commit");
    const durable = setting?.synchronous_commit !== "off";
    return new PgStore({ db, clock: options.clock ?? Date.now }, recent, migrated, loadRelayId(db), durable);
  } catch (e) {
    db.close();
    throw e;
  }
}

/** Creates or upgrades the schema at `url` (`chat-relay migrate`): the version before and after. */
export function migratePg(url: string): MigrateResult {
  const db = new SyncPg({ url, applicationName: "chat-relay migrate" });
  try {
    return migrate(db);
  } finally {
    db.close();
  }
}

/** RelayStore over its parts (calls of one part are handed over by DelegatingStore); what spans them is done here, in one transaction. */
class PgStore extends DelegatingStore implements PgRelayStore {
  private readonly db: SyncPg;
  protected readonly bindings: PgBindings;
  protected readonly queues: PgQueues;
  protected readonly rooms: PgMemberships;
  readonly mls: PgMlsStore;
  readonly devices: PgDeviceStore;

  constructor(c: PgStoreContext, recentBudget: number, readonly migrate: MigrateResult, readonly relayId: Buffer, readonly durableCommits: boolean) {
    super();
    this.db = c.db;
    this.queues = new PgQueues(c, recentBudget);
    this.bindings = new PgBindings(c, (username) => this.queues.forgetUsage(username));
    this.rooms = new PgMemberships(c);
    this.mls = new PgMlsStore(c, this.queues);
    this.devices = new PgDeviceStore(c);
  }

  /**
   * A SendMls asks this first, then (admitMls) for its group: the question carries, in the same
   * statement, a read of the group the sender last sent to, which group() answers from if it is
   * asked for that group before this callback's microtasks are done (pg/mls.ts). One round trip
   * where there were two.
   */
  override wasAccepted(sender: string, messageId: Buffer): boolean {
    const predicted = this.mls.predictedGroup(sender);
    return this.queues.wasAccepted(sender, messageId, predicted === undefined ? undefined : (s, id) => this.mls.askAcceptedReadingGroup(s, id, predicted));
  }

  findUsers(usernames: readonly string[]): FoundUser[] {
    return this.bindings.findUsers(usernames);
  }

  // releaseUser and replaceDeviceList run again when PostgreSQL aborts them as a deadlock victim:
  // inside, memory changes only by dropping cache entries and pending last-seen notes of what
  // they delete, which a second run leaves the same; the usage caches are forgotten after.
  releaseUser(username: string): boolean {
    let dropped: string[] = [];
    const released = this.db.transaction(() => {
      if (!this.bindings.unbindLocked(username)) return false;
      // Envelopes queued for the old key cannot be opened by a new one: drop them, its linked
      // devices' queues too (PROTOCOL.md §4.5), and its device list.
      dropped = this.queues.dropQueuesOfUserLocked(username);
      this.devices.dropUserLocked(username);
      // A new owner of the name must not inherit the old owner's rooms.
      for (const room of this.rooms.roomsOf(username)) this.rooms.leaveRoomLocked(room, username);
      // Its KeyPackages name the old key, and its MLS group memberships are the old key's.
      this.mls.dropKeyPackagesLocked(username);
      this.mls.dropMembershipsLocked(username);
      return true;
    }, { rerun: true }); // a deadlock with another relay's acks (the same queue rows, another order): run again
    this.queues.forgetUsage(username);
    for (const a of dropped) this.queues.forgetUsage(a);
    return released;
  }

  replaceDeviceList(change: DeviceListChange): boolean {
    return replaceDeviceListIn({ devices: this.devices, queues: this.queues, mls: this.mls }, (fn) => this.db.transaction(fn, { rerun: true }), change);
  }

  close(): void {
    try {
      this.devices.flushSeen();
    } finally {
      this.db.close();
    }
  }
}
