// The relay's durable state in one SQLite file (node:sqlite, synchronous API).
//
// What lives here: the relay's stable identity (relay_id), username bindings (first key wins,
// forever, unless an operator releases the name), the per-recipient delivery queue, the
// de-duplication record of accepted (sender, message_id) pairs, and room membership.
//
// This file is the facade (RelayStore, openStore); the parts are in src/server/store/:
// schema.ts (schema, pragmas, transactions, relay_id), bindings.ts (users), queues.ts (accepted
// ids, envelopes, queue rows, acks, purge; the queue is normalised: one blob per envelope),
// rooms.ts (membership). They share one connection, clock and transaction (StoreContext).
//
// Everything runs synchronously on the event loop. Statements are prepared once; multi-row
// writes run in one transaction so an envelope is either queued for every recipient or for none.
// Envelopes are written in batches (enqueueBatch): the group committer (group-commit.ts) hands
// over everything admitted since the last commit, and one transaction, one fsync, stores it all.
import type { DatabaseSync } from "node:sqlite";
import { Bindings, type BindOutcome, type UserRecord } from "./store/bindings.js";
import {
  Queues, type AckRequest, type EnqueueOutcome, type EnqueueRequest, type PurgeResult, type QueuedItem, type QueueUsage,
} from "./store/queues.js";
import { DeviceStore } from "./store/devices.js";
import { DelegatingStore, replaceDeviceListIn } from "./store/facade.js";
import { MlsDeliveryStore } from "./store/mls.js";
import { Memberships, type RoomSummaryRecord } from "./store/rooms.js";
import { loadRelayId, openDatabase, transactionOn, type StoreContext, type Transaction } from "./store/schema.js";

export type { BindOutcome, UserRecord } from "./store/bindings.js";
export type { AckRequest, EnqueueOutcome, EnqueueRequest, PurgeResult, QueuedItem, QueuedPayload, QueueUsage } from "./store/queues.js";
export type { RoomSummaryRecord } from "./store/rooms.js";
export type { KeptDeviceList } from "./store/devices.js";
export type { ClaimedKeyPackage, CommitOutcome, CommitRecord, KeyPackageCounts, MlsGroupRecord } from "./store/mls.js";

/**
 * The MLS Delivery Service's store as the relay uses it (PROTOCOL.md §8.2): what both the
 * embedded store (store/mls.ts) and the PostgreSQL store (store/pg/) implement.
 */
export type MlsStore = Pick<MlsDeliveryStore,
  | "keyPackageCounts" | "publishKeyPackages" | "claimKeyPackage" | "keyPackagesOfAddress" | "dropKeyPackagesById"
  | "purgeExpiredKeyPackages" | "group" | "groupOfConversation" | "groupsCreatedBy" | "createGroup" | "replaceGroup"
  | "roomSummaries" | "roomsOfMember" | "isGroupMember" | "groupMembers" | "setGroupInfo" | "commitSender"
  | "acceptCommit" | "commitsFrom">;

/** Kept device lists and last seen (PROTOCOL.md §4.5), as the relay uses them: both stores implement it. */
export type DeviceListStore = Pick<DeviceStore, "list" | "versions" | "noteSeen" | "lastSeen" | "flushSeen">;
export { SQLITE_FULL, SQLITE_IOERR, sqliteErrorCode, walAllowanceFor } from "./store/schema.js";

export interface RelayStore {
  readonly relayId: Buffer;
  getUser(username: string): UserRecord | undefined;
  listUsers(): UserRecord[];
  /** First key wins: binds a free name, or reports who owns it. Atomic. */
  bindUser(user: Omit<UserRecord, "createdAtMs">): BindOutcome;
  /** The usernames bound to this signing key (by its fingerprint), oldest first. */
  namesOfKey(sigFpr: Buffer): string[];
  /**
   * Operator action: forgets the binding so a new key can claim the name, with the name's
   * queued envelopes and room memberships (all of which belong to the old key). A running
   * relay sees the release at the name's next handshake.
   */
  releaseUser(username: string): boolean;

  /** True when (sender, messageId) was accepted before (a resend). */
  wasAccepted(sender: string, messageId: Buffer): boolean;
  /**
   * Records each id as accepted and queues each envelope for its recipients, all in ONE
   * transaction (one fsync for the whole batch), in the order given. Outcomes are in the same
   * order. Throws when the transaction fails (disk full, I/O error): then nothing of the batch
   * is stored.
   */
  enqueueBatch(reqs: readonly EnqueueRequest[], acks?: readonly AckRequest[]): EnqueueOutcome[];
  /**
   * Acks alone, in one transaction that does not wait for an fsync (synchronous=NORMAL): a lost
   * ack only means a redelivery, which clients drop by id; the next FULL commit makes it durable.
   */
  ackBatch(acks: readonly AckRequest[]): number;
  /** enqueueBatch of one request; false when the id was already accepted. */
  enqueue(req: EnqueueRequest): boolean;
  /** The highest queue seq ever assigned (0 for a new database): later rows have larger seqs. */
  lastSeq(): number;
  /** Number of undelivered (unacked) rows for a recipient. */
  queueDepth(recipient: string): number;
  /**
   * A recipient's queue: rows and envelope bytes in all, and those from one sender (each row
   * counts its envelope's full size: what the recipient will download). For the per-sender share.
   */
  queueUsage(recipient: string, sender: string): QueueUsage;
  /** Up to `limit` rows after `afterSeq`, in seq order, stopping once `maxBytes` is reached (at least one row). */
  fetchQueue(recipient: string, afterSeq: number, limit: number, maxBytes: number): QueuedItem[];
  /** Deletes the recipient's rows with these seqs (others' rows are untouched); returns how many. */
  ack(recipient: string, seqs: readonly number[]): number;
  /** Drops queue rows, envelopes and accepted ids older than the cutoff. */
  purgeOlderThan(cutoffMs: number): PurgeResult;

  /** Adds a member (creating the room); false when already a member. */
  joinRoom(room: string, username: string): boolean;
  /** Removes a member (deleting an empty room); false when not a member. */
  leaveRoom(room: string, username: string): boolean;
  isMember(room: string, username: string): boolean;
  roomMembers(room: string): string[];
  roomsOf(username: string): string[];
  allRooms(): RoomSummaryRecord[];

  /** The MLS Delivery Service's KeyPackages, groups and commits (store/mls.ts). */
  readonly mls: MlsStore;
  /** Kept device lists and last seen per device (store/devices.ts, PROTOCOL.md §4.5). */
  readonly devices: DeviceListStore;
  /**
   * Keeps a newer device list (PROTOCOL.md §4.5) and, in the same transaction, forgets the devices
   * it dropped: their queues (envelope refcounts kept right), KeyPackages and last-seen rows.
   * `keyPackagesOf`: further addresses whose KeyPackages go (a device whose MLS key changed).
   * False when the kept version is not lower than `version` (nothing changed).
   */
  replaceDeviceList(change: DeviceListChange): boolean;

  close(): void;
}

export interface DeviceListChange {
  readonly username: string;
  readonly version: number;
  readonly list: Uint8Array;
  readonly dropped: ReadonlyArray<{ readonly address: string; readonly deviceId: string }>;
  readonly keyPackagesOf: readonly string[];
}

export interface OpenStoreOptions {
  readonly clock?: () => number;
  /** Memory for recently stored envelopes' bytes, delivered from there (default 32 MiB). */
  readonly recentEnvelopeBytes?: number;
  /** How long a writer waits for another connection's lock (e.g. `chat-relay users release` while running). */
  readonly busyTimeoutMs?: number;
  /**
   * Caps the database at about this many bytes (SQLite's max_page_count): writes beyond it fail
   * with SQLITE_FULL, exactly as on a full disk. Operators use it as a quota; tests use it to
   * fill the "disk" on purpose.
   */
  readonly maxBytes?: number;
}

/** Memory for the bytes of recently stored envelopes, delivered from there (Queues.recent). */
const RECENT_BYTES = 32 * 1024 * 1024;

/**
 * Opens (creating if needed) the relay database at `path`. Throws the underlying error when the
 * file cannot be opened or written; the caller turns that into a startup sentence.
 */
export function openStore(path: string, options: OpenStoreOptions = {}): RelayStore {
  const clock = options.clock ?? Date.now;
  const db = openDatabase(path, options);
  return new SqliteStore(db, clock, options.recentEnvelopeBytes ?? RECENT_BYTES);
}

/** RelayStore over its parts (calls of one part are handed over by DelegatingStore); what spans them (releasing a name) is done here, in one transaction. */
class SqliteStore extends DelegatingStore implements RelayStore {
  readonly relayId: Buffer;
  private readonly transaction: Transaction;
  protected readonly bindings: Bindings;
  protected readonly queues: Queues;
  protected readonly rooms: Memberships;
  readonly mls: MlsDeliveryStore;
  readonly devices: DeviceStore;

  constructor(private readonly db: DatabaseSync, clock: () => number, recentBudget: number) {
    super();
    this.transaction = transactionOn(db);
    const c: StoreContext = { db, clock, transaction: this.transaction };
    this.queues = new Queues(c, recentBudget);
    this.bindings = new Bindings(c, (username) => this.queues.forgetUsage(username));
    this.rooms = new Memberships(c);
    this.mls = new MlsDeliveryStore(c, this.queues);
    this.devices = new DeviceStore(c);
    this.relayId = loadRelayId(db, this.transaction);
  }

  releaseUser(username: string): boolean {
    let deviceQueues: string[] = [];
    const released = this.transaction(() => {
      if (!this.bindings.unbindLocked(username)) return false;
      // Envelopes queued for the old key cannot be opened by a new one: drop them (its linked
      // devices' queues too, PROTOCOL.md §4.5), and its device list.
      this.queues.dropQueueLocked(username);
      deviceQueues = this.queues.deviceQueuesOf(username);
      for (const a of deviceQueues) this.queues.dropQueueLocked(a);
      this.devices.dropUserLocked(username);
      // A new owner of the name must not inherit the old owner's rooms.
      for (const room of this.rooms.roomsOf(username)) this.rooms.leaveRoomLocked(room, username);
      // Its KeyPackages name the old key: nobody may be added with them any more.
      this.mls.dropKeyPackagesLocked(username);
      // Nor the old owner's MLS groups (the relay's record decides delivery and who may send).
      this.mls.dropMembershipsLocked(username);
      return true;
    });
    this.queues.forgetUsage(username);
    for (const a of deviceQueues) this.queues.forgetUsage(a);
    return released;
  }

  replaceDeviceList(change: DeviceListChange): boolean {
    return replaceDeviceListIn({ devices: this.devices, queues: this.queues, mls: this.mls }, (fn) => this.transaction(fn), change);
  }

  close(): void {
    this.devices.flushSeen();
    if (this.db.isOpen) this.db.close();
  }
}
