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
// Envelopes are written in batches: the group committer (group-commit.ts) hands over everything
// admitted since the last commit, and one transaction, one fsync, stores it all. Here that fsync
// runs off the event loop (`deferred`, store/wal-sync.ts): the commit writes the WAL, one
// fdatasync on libuv's thread pool makes it durable, and fetchQueue shows its rows only then.
import type { DatabaseSync } from "node:sqlite";
import { Bindings, type BindOutcome, type UserRecord } from "./store/bindings.js";
import {
  Queues, RECENT_IDS_MAX, type AckRequest, type EnqueueOutcome, type RecentBudget, type EnqueueRequest, type PurgeResult, type QueuedItem, type QueueUsage,
} from "./store/queues.js";
import { DeviceStore, type KeptDeviceList } from "./store/devices.js";
import { DelegatingStore, replaceDeviceListIn } from "./store/facade.js";
import { MlsDeliveryStore } from "./store/mls.js";
import { Memberships, type RoomSummaryRecord } from "./store/rooms.js";
import { loadRelayId, openDatabase, transactionOn, UndoLog, type Row, type StoreContext, type Transaction } from "./store/schema.js";
import { FileVersion } from "./store/file-version.js";
import { WalSync, type SyncFile } from "./store/wal-sync.js";

export type { BindOutcome, UserRecord } from "./store/bindings.js";
export type { AckRequest, EnqueueOutcome, EnqueueRequest, PurgeResult, QueuedItem, QueuedPayload, QueueUsage } from "./store/queues.js";
export type { RoomSummaryRecord } from "./store/rooms.js";
export type { KeptDeviceList } from "./store/devices.js";
export type { SyncFile } from "./store/wal-sync.js";
export type { ClaimedKeyPackage, CommitOutcome, CommitPage, CommitRecord, KeyPackageCounts, MlsGroupHead, MlsGroupRecord } from "./store/mls-types.js";

/**
 * The MLS Delivery Service's store as the relay uses it (PROTOCOL.md §8.2): what both the
 * embedded store (store/mls.ts) and the PostgreSQL store (store/pg/) implement.
 */
export type MlsStore = Pick<MlsDeliveryStore,
  | "keyPackageCounts" | "publishKeyPackages" | "claimKeyPackage" | "claimKeyPackages" | "keyPackagesOfAddress" | "dropKeyPackagesById"
  | "purgeExpiredKeyPackages" | "group" | "groupHead" | "groupOfConversation" | "groupsCreatedBy" | "createGroup" | "replaceGroup"
  | "roomSummaries" | "roomsOfMember" | "isGroupMember" | "groupMembers" | "setGroupInfo" | "replaceGroupInfo" | "commitSender" | "epochCommitter"
  | "acceptCommit" | "commitPage" | "commitsFrom" | "trimCommitsOf" | "purgeCommits">;

/** Kept device lists and last seen (PROTOCOL.md §4.5), as the relay uses them: both stores implement it. */
export type DeviceListStore = Pick<DeviceStore, "list" | "versions" | "noteSeen" | "lastSeen" | "lastSeenOf" | "flushSeen">;
export { SQLITE_FULL, SQLITE_IOERR, sqliteErrorCode, walAllowanceFor } from "./store/schema.js";

/** A bound user as findUsers reads it: the binding and the kept device list (if any). */
export interface FoundUser {
  readonly record: UserRecord;
  readonly deviceList: KeptDeviceList | undefined;
}

export interface RelayStore {
  readonly relayId: Buffer;
  getUser(username: string): UserRecord | undefined;
  /**
   * The bound users among these names, each with its kept device list, in one read (on
   * PostgreSQL one statement, `username = ANY($1)`, whatever the count): what a request naming
   * many users costs the store (devices.ts, directory.ts). Names not bound are left out.
   */
  findUsers(usernames: readonly string[]): FoundUser[];
  listUsers(): UserRecord[];
  /** First key wins: binds a free name, or reports who owns it. Atomic. */
  bindUser(user: Omit<UserRecord, "createdAtMs">): BindOutcome;
  /** The usernames bound to this signing key (by its fingerprint), oldest first. */
  namesOfKey(sigFpr: Buffer): string[];
  /**
   * Operator action: forgets the binding so a new key can claim the name, with the name's
   * queued envelopes and room memberships (all of which belong to the old key). A running
   * relay sees the release at the name's next handshake, and a live session of the old key at
   * its next device-list or KeyPackage publish (devices.ts checkStillBound), which ends it.
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
   * The embedded store only: enqueueBatch whose fsync does not block the event loop. Absent in
   * the PostgreSQL store (its commit is synchronous: SyncPg).
   */
  readonly deferred?: DeferredEnqueue | undefined;
  /**
   * Acks alone, in one transaction that does not wait for an fsync (synchronous=NORMAL): a lost
   * ack only means a redelivery, which clients drop by id; the next FULL commit makes it durable.
   */
  ackBatch(acks: readonly AckRequest[]): number;
  /** enqueueBatch of one request; false when the id was already accepted. */
  enqueue(req: EnqueueRequest): boolean;
  /**
   * The highest queue seq ever assigned (0 for a new database): later rows have larger seqs. The
   * embedded store says no more than the highest a fetch shows (rows waiting for their WAL sync are later).
   */
  lastSeq(): number;
  /**
   * The embedded store only: reads what it keeps in memory (every queue) now rather than at the
   * first call that needs it, and says how much waits. Absent in the PostgreSQL store.
   */
  loadQueues?(): { readonly messages: number; readonly waiting: number; readonly recentIds: number };
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

/** A commit that returns before its rows are durable (store/wal-sync.ts). */
export interface DeferredEnqueue {
  /**
   * enqueueBatch's transaction, committed without waiting for the disk. Its rows are in the
   * database but hidden from fetchQueue until `durable` resolves, with the recipients whose
   * fetches were cut meanwhile (wake their pumps); `durable` rejects when the sync failed: the
   * rows are then never shown, and every later transaction throws. Throws what enqueueBatch
   * throws (nothing of the batch stored).
   */
  enqueueBatch(reqs: readonly EnqueueRequest[], acks?: readonly AckRequest[]): { readonly outcomes: EnqueueOutcome[]; readonly durable: Promise<ReadonlySet<string>> };
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
  /**
   * Accepted ids kept exactly in memory (store/recent-ids.ts, 20 bytes each at most 3/4 full)
   * before the oldest move into the indexed table (default RECENT_IDS_MAX: 786,432, 20 MiB).
   */
  readonly recentAcceptedIds?: number;
  /** How long a writer waits for another connection's lock (e.g. `chat-relay users release` while running). */
  readonly busyTimeoutMs?: number;
  /**
   * Caps the database at about this many bytes (SQLite's max_page_count): writes beyond it fail
   * with SQLITE_FULL, exactly as on a full disk. Operators use it as a quota; tests use it to
   * fill the "disk" on purpose.
   */
  readonly maxBytes?: number;
  /** How the WAL is made durable after a deferred commit (default: fs.fdatasync on libuv's thread pool); tests inject slow or failing ones. */
  readonly syncWal?: SyncFile;
  /**
   * Whether a file of an earlier schema version is converted at open (default true: the relay
   * starting on it). The operator commands pass false: a relay of the earlier version may still
   * run on it; they refuse it with a sentence instead.
   */
  readonly upgrade?: boolean;
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
  // Deferred syncs need a WAL file (":memory:" has none: its commits stay synchronous, and volatile).
  const wal = String((db.prepare("PRAGMA journal_mode").get() as Row).journal_mode) === "wal" ? { path: `${path}-wal`, sync: options.syncWal } : undefined;
  return new SqliteStore(db, clock, { envelopeBytes: options.recentEnvelopeBytes ?? RECENT_BYTES, acceptedIds: options.recentAcceptedIds ?? RECENT_IDS_MAX }, wal);
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
  readonly deferred: DeferredEnqueue | undefined;
  private readonly wal: WalSync | undefined;

  constructor(private readonly db: DatabaseSync, clock: () => number, recentBudget: RecentBudget, wal?: { path: string; sync: SyncFile | undefined }) {
    super();
    // Once a WAL sync failed, no transaction runs (wal-sync.ts): nothing after it is known durable.
    const undo = new UndoLog();
    this.transaction = transactionOn(db, () => this.wal?.check(), undo);
    // One read of the file's data_version per turn or transaction for every part that keeps it in memory.
    const c: StoreContext = { db, clock, transaction: this.transaction, undo, version: new FileVersion(db, undo) };
    this.queues = new Queues(c, recentBudget);
    const queues = this.queues;
    this.wal = wal === undefined ? undefined : new WalSync(db, wal.path, () => queues.lastSeq(), wal.sync);
    const w = this.wal;
    this.deferred = w === undefined ? undefined : {
      enqueueBatch: (reqs, acks) => {
        const { out, durable } = w.commitUnsynced(() => queues.enqueueBatch(reqs, acks));
        return { outcomes: out, durable };
      },
    };
    this.bindings = new Bindings(c, (username) => this.queues.forgetUsage(username));
    this.rooms = new Memberships(c);
    this.mls = new MlsDeliveryStore(c, this.queues);
    this.devices = new DeviceStore(c);
    this.relayId = loadRelayId(db, this.transaction);
  }

  /** Local reads (no round trip): one lookup of the binding, and of the list of each bound one. */
  findUsers(usernames: readonly string[]): FoundUser[] {
    const out: FoundUser[] = [];
    for (const n of usernames) {
      const record = this.bindings.getUser(n);
      if (record !== undefined) out.push({ record, deviceList: this.devices.list(n) });
    }
    return out;
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

  loadQueues(): { readonly messages: number; readonly waiting: number; readonly recentIds: number } {
    return this.queues.load();
  }

  /** Only durable rows (wal-sync.ts): a row committed without its sync yet never reaches a recipient. */
  override fetchQueue(recipient: string, afterSeq: number, limit: number, maxBytes: number): QueuedItem[] {
    const fetch = (): QueuedItem[] => this.queues.fetchQueue(recipient, afterSeq, limit, maxBytes);
    return this.wal === undefined ? fetch() : this.wal.visible(recipient, afterSeq, fetch);
  }

  /**
   * The highest seq a fetch can show: rows above it wait for their sync, and their recipients'
   * pumps are told when they come (onCommitted), so a pump started now counts them as arriving.
   */
  override lastSeq(): number {
    const seq = this.queues.lastSeq();
    return this.wal === undefined ? seq : Math.min(seq, this.wal.visibleThrough);
  }

  /**
   * After a failed WAL sync no id counts as accepted: a resend must not be answered ACCEPTED from
   * a row not known durable. It goes on as a new send, which the store refuses.
   */
  override wasAccepted(sender: string, messageId: Buffer): boolean {
    if (this.wal?.failed !== undefined) return false;
    return this.queues.wasAccepted(sender, messageId);
  }

  replaceDeviceList(change: DeviceListChange): boolean {
    return replaceDeviceListIn({ devices: this.devices, queues: this.queues, mls: this.mls }, (fn) => this.transaction(fn), change);
  }

  close(): void {
    if (!this.db.isOpen) return;
    // Commits still waiting for their sync are synced first (and answered durable).
    this.wal?.close();
    if (this.wal?.failed === undefined) this.devices.flushSeen();
    this.db.close();
  }
}
