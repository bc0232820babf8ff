// The MLS Delivery Service's durable state (PROTOCOL.md §8.2): KeyPackages (`mls_key_packages`),
// groups with their newest GroupInfo and current epoch (`mls_groups`), and the accepted commit of
// each epoch (`mls_commits`). The database enforces the two rules that matter: a one-time
// KeyPackage is deleted in the transaction that hands it out (so it is handed out once), and
// (group_id, epoch) is a unique index of the commits (so the first commit for an epoch wins).
// Argument checks and MLS decoding are the caller's (src/server/mls-ds.ts); this file trusts them.
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { MlsGroupCache, type CachedMembers } from "./mls-group-cache.js";
import {
  COMMITS_KEPT_PER_GROUP, type ClaimedKeyPackage, type CommitDeliveries, type CommitOutcome, type CommitPage, type CommitRecord, type CreateGroupOutcome,
  type KeptCommitBound, type KeyPackageCounts, type MembershipHint, type MlsGroupHead, type MlsGroupRecord, type StoredKeyPackageInput,
} from "./mls-types.js";
import type { EnqueueOutcome, EnqueueRequest } from "./queues.js";
import { FileVersion } from "./file-version.js";
import { KeptCommits } from "./kept-commits.js";
import { buf, num, str, type Row, type StoreContext, type Transaction } from "./schema.js";

/** How an accepted commit's deliveries are stored in the commit's own transaction (store/queues.ts). */
export interface QueueWriter {
  transactionQueuing<T>(fn: () => T): T;
  enqueueInside(reqs: readonly EnqueueRequest[]): EnqueueOutcome[];
}

function prepareMlsStatements(db: DatabaseSync) {
  const p = (sql: string): StatementSync => db.prepare(sql);
  return {
    kpCount: p(`SELECT COUNT(*) AS n FROM mls_key_packages WHERE address = ? AND last_resort = 0 AND not_after_ms >= ?`),
    kpLastResort: p(`SELECT 1 AS hit FROM mls_key_packages WHERE address = ? AND last_resort = 1 AND not_after_ms >= ?`),
    kpPut: p(`INSERT INTO mls_key_packages (username, address, ref, key_package, last_resort, not_after_ms, created_at_ms)
              VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (ref) DO NOTHING`),
    kpDeleteLastResort: p(`DELETE FROM mls_key_packages WHERE address = ? AND last_resort = 1`),
    kpOldestOneTime: p(`SELECT id, key_package FROM mls_key_packages WHERE address = ? AND last_resort = 0 AND not_after_ms >= ?
                        ORDER BY id LIMIT 1`),
    kpGetLastResort: p(`SELECT key_package FROM mls_key_packages WHERE address = ? AND last_resort = 1 AND not_after_ms >= ?`),
    kpDelete: p(`DELETE FROM mls_key_packages WHERE id = ?`),
    kpPurge: p(`DELETE FROM mls_key_packages WHERE not_after_ms < ?`),
    kpDropAddress: p(`DELETE FROM mls_key_packages WHERE address = ?`),
    kpOfAddress: p(`SELECT id, key_package FROM mls_key_packages WHERE address = ?`),
    kpDropUser: p(`DELETE FROM mls_key_packages WHERE username = ?`),
    groupGet: p(`SELECT * FROM mls_groups WHERE group_id = ?`),
    groupByConversation: p(`SELECT * FROM mls_groups WHERE conversation_id = ?`),
    groupCountBy: p(`SELECT COUNT(*) AS n FROM mls_groups WHERE creator = ?`),
    groupPut: p(`INSERT INTO mls_groups (group_id, conversation_id, creator, epoch, group_info, group_info_epoch, created_at_ms)
                 VALUES (?, ?, ?, ?, ?, ?, ?)`),
    groupSetEpoch: p(`UPDATE mls_groups SET epoch = ?, last_committer = ? WHERE group_id = ?`),
    groupLastCommitter: p(`SELECT last_committer FROM mls_groups WHERE group_id = ?`),
    groupSetInfo: p(`UPDATE mls_groups SET group_info = ?, group_info_epoch = ? WHERE group_id = ?`),
    groupReplaceInfo: p(`UPDATE mls_groups SET group_info = ?, group_info_epoch = ? WHERE group_id = ? AND epoch = ?`),
    memberPut: p(`INSERT INTO mls_group_members (group_id, username) VALUES (?, ?) ON CONFLICT DO NOTHING`),
    memberDelete: p(`DELETE FROM mls_group_members WHERE group_id = ? AND username = ?`),
    memberGet: p(`SELECT 1 AS hit FROM mls_group_members WHERE group_id = ? AND username = ?`),
    memberDropUser: p(`DELETE FROM mls_group_members WHERE username = ?`),
    membersOf: p(`SELECT username FROM mls_group_members WHERE group_id = ? ORDER BY username`),
    commitPut: p(`INSERT INTO mls_commits (group_id, epoch, sender, accepted_at_ms, commit_msg) VALUES (?, ?, ?, ?, ?)
                  ON CONFLICT (group_id, epoch) DO NOTHING`),
    commitGet: p(`SELECT sender FROM mls_commits WHERE group_id = ? AND epoch = ?`),
    // A commit's row without its blob (mls-schema.ts COMMITS_TABLE: the columns before commit_msg are
    // on the row's first page), then the blob by row id when it is wanted.
    commitHead: p(`SELECT id, sender, bytes FROM mls_commits WHERE group_id = ? AND epoch = ?`),
    commitsTrim: p(`DELETE FROM mls_commits WHERE group_id = ? AND epoch < ?`),
    groupDelete: p(`DELETE FROM mls_groups WHERE group_id = ?`),
    membersDelete: p(`DELETE FROM mls_group_members WHERE group_id = ?`),
    commitsDelete: p(`DELETE FROM mls_commits WHERE group_id = ?`),
    // Biggest rooms first, then by name (bytes, as PostgreSQL's COLLATE "C"); at most ? per creator.
    roomSummaries: p(`SELECT room, n FROM (
                        SELECT g.conversation_id AS room, COUNT(m.username) AS n,
                          ROW_NUMBER() OVER (PARTITION BY g.creator ORDER BY COUNT(m.username) DESC, g.conversation_id) AS k
                        FROM mls_groups g LEFT JOIN mls_group_members m ON m.group_id = g.group_id
                        WHERE g.conversation_id LIKE '#%' GROUP BY g.group_id)
                      WHERE k <= ? ORDER BY n DESC, room LIMIT ?`),
    roomsOfMember: p(`SELECT g.group_id, g.conversation_id FROM mls_group_members m JOIN mls_groups g ON g.group_id = m.group_id
                      WHERE m.username = ? AND g.conversation_id LIKE '#%' ORDER BY g.conversation_id LIMIT ?`),
  };
}

/** A copy of a kept record: what callers get is theirs, as when it is read from SQLite. */
function copyOf(g: MlsGroupRecord): MlsGroupRecord {
  return {
    groupId: Buffer.from(g.groupId), conversationId: g.conversationId, creator: g.creator,
    epoch: g.epoch, groupInfo: Buffer.from(g.groupInfo), groupInfoEpoch: g.groupInfoEpoch,
  };
}

function groupOf(r: Row): MlsGroupRecord {
  return {
    groupId: Buffer.from(buf(r.group_id)), conversationId: str(r.conversation_id), creator: str(r.creator),
    epoch: num(r.epoch), groupInfo: Buffer.from(buf(r.group_info)), groupInfoEpoch: num(r.group_info_epoch),
  };
}

/** The MLS Delivery Service tables. */
export class MlsDeliveryStore {
  private readonly clock: () => number;
  private readonly transaction: Transaction;
  private readonly s: ReturnType<typeof prepareMlsStatements>;
  private readonly db: DatabaseSync;
  /**
   * Groups' records and members as committed (mls-group-cache.ts: filled only outside a
   * transaction; every write below drops what it touches before it runs).
   */
  readonly cache: MlsGroupCache;

  constructor(c: StoreContext, private readonly queues?: QueueWriter, cache: MlsGroupCache = new MlsGroupCache()) {
    this.clock = c.clock;
    this.transaction = c.transaction;
    this.db = c.db;
    this.version = c.version ?? new FileVersion(c.db, c.undo);
    this.s = prepareMlsStatements(c.db);
    this.cache = cache;
    this.kept = new KeptCommits(c.db, c.transaction);
  }

  /** The kept commits' reads, trims and purge (kept-commits.ts). */
  private readonly kept: KeptCommits;

  /** SQLite's data_version when the cache was last checked against it (-1: never). */
  private seenVersion = -1;
  /** The file's data_version, read once per turn or transaction (file-version.ts). */
  private readonly version: FileVersion;

  /**
   * Drops the whole cache when another connection committed to the file since the last look
   * (the operator's `chat-relay users release` beside the live relay: a released name must not
   * stay a member in memory). Once per turn of the event loop, as the PRAGMA costs about what one
   * of the reads it saves did: a turn's reads are then as of its first one, as if the turn had
   * run just before a concurrent commit. That lag is no more than there was: a SendMls admitted
   * from the members by the file has its rows stored later, by the group commit (an immediate).
   * Inside a transaction at its first read: its snapshot, taken at BEGIN, may be newer than the
   * turn's look, and a commit must be checked against the members as they are (no other
   * connection commits while it holds the write lock).
   */
  private fresh(): void {
    const v = this.version.current();
    if (v !== this.seenVersion) {
      this.cache.clear();
      this.seenVersion = v;
    }
  }

  /**
   * A device's unexpired KeyPackages: one-time ones, and whether a last-resort one is kept.
   * `address`: the device's queue address (PROTOCOL.md §4.5; the bare username for the primary).
   */
  keyPackageCounts(address: string): KeyPackageCounts {
    const now = this.clock();
    return { oneTime: num((this.s.kpCount.get(address, now) as Row).n), lastResort: this.s.kpLastResort.get(address, now) !== undefined };
  }

  /**
   * Stores a user's one-time KeyPackages (a ref already stored is skipped) and, when given, the
   * last-resort one in place of the previous one: one transaction. Returns the counts after it.
   * The caller checked the cap (keyPackageCounts) and each KeyPackage's owner.
   */
  publishKeyPackages(username: string, oneTime: readonly StoredKeyPackageInput[], lastResort: StoredKeyPackageInput | undefined, address: string = username): KeyPackageCounts {
    return this.transaction(() => {
      const now = this.clock();
      for (const kp of oneTime) this.s.kpPut.run(username, address, kp.ref, kp.keyPackage, 0, kp.notAfterMs, now);
      if (lastResort !== undefined) {
        this.s.kpDeleteLastResort.run(address);
        this.s.kpPut.run(username, address, lastResort.ref, lastResort.keyPackage, 1, lastResort.notAfterMs, now);
      }
      return this.keyPackageCounts(address);
    });
  }

  /**
   * One KeyPackage of the device at this queue address (the bare username: the primary, or a user without devices), atomically: the oldest unexpired one-time one, deleted in the
   * same transaction (handed out once, RFC 9420 §10), else the last-resort one (kept); undefined
   * when the user has neither.
   */
  claimKeyPackage(address: string): ClaimedKeyPackage | undefined {
    return this.transaction(() => this.claimKeyPackageLocked(address, this.clock()));
  }

  /**
   * claimKeyPackage for each of these addresses (a ClaimKeyPackages' devices), in ONE
   * transaction: what was found, by address (an address with neither kind is absent).
   */
  claimKeyPackages(addresses: readonly string[]): Map<string, ClaimedKeyPackage> {
    const out = new Map<string, ClaimedKeyPackage>();
    if (addresses.length === 0) return out;
    return this.transaction(() => {
      const now = this.clock();
      for (const a of addresses) {
        if (out.has(a)) continue;
        const kp = this.claimKeyPackageLocked(a, now);
        if (kp !== undefined) out.set(a, kp);
      }
      return out;
    });
  }

  private claimKeyPackageLocked(address: string, now: number): ClaimedKeyPackage | undefined {
    const one = this.s.kpOldestOneTime.get(address, now) as Row | undefined;
    if (one !== undefined) {
      this.s.kpDelete.run(num(one.id));
      return { keyPackage: Buffer.from(buf(one.key_package)), lastResort: false };
    }
    const last = this.s.kpGetLastResort.get(address, now) as Row | undefined;
    return last === undefined ? undefined : { keyPackage: Buffer.from(buf(last.key_package)), lastResort: true };
  }

  /** A device's KeyPackages (an unlinked device, PROTOCOL.md §4.5): callers inside a transaction. */
  dropKeyPackagesOfAddressLocked(address: string): void {
    this.s.kpDropAddress.run(address);
  }

  /** A device's KeyPackages with their row ids (at most 101: the caps), to check against a new device list. */
  keyPackagesOfAddress(address: string): Array<{ readonly id: number; readonly keyPackage: Buffer }> {
    return (this.s.kpOfAddress.all(address) as Row[]).map((r) => ({ id: num(r.id), keyPackage: Buffer.from(buf(r.key_package)) }));
  }

  /** Drops these KeyPackage rows (e.g. made for another MLS key than the device's listed one). */
  dropKeyPackagesById(ids: readonly number[]): void {
    if (ids.length === 0) return;
    this.transaction(() => {
      for (const id of ids) this.s.kpDelete.run(id);
    });
  }

  /** Drops every KeyPackage past its lifetime; returns how many. */
  purgeExpiredKeyPackages(): number {
    return Number(this.s.kpPurge.run(this.clock()).changes);
  }

  /** A released name's KeyPackages belong to the old key: callers inside a transaction. */
  dropKeyPackagesLocked(username: string): void {
    this.s.kpDropUser.run(username);
  }

  /**
   * Inside a transaction (a released name): the user is no member of any group by the relay's
   * record any more, so a new key under the name gets none of their traffic and may not send
   * or commit into them. The members' trees still hold the old leaf until one removes it.
   */
  dropMembershipsLocked(username: string): void {
    this.cache.dropMembersNaming(username);
    this.s.memberDropUser.run(username);
  }

  group(groupId: Buffer): MlsGroupRecord | undefined {
    this.fresh();
    const kept = this.cache.group(groupId);
    if (kept !== undefined) return copyOf(kept);
    const r = this.s.groupGet.get(groupId) as Row | undefined;
    if (r === undefined) return undefined;
    const g = groupOf(r);
    if (this.db.isTransaction) return g;
    this.cache.putGroup(g);
    return copyOf(g);
  }

  /**
   * What a SendMls needs of its group (mls-ds.ts admitMls): its conversation and current epoch,
   * without copying the group's GroupInfo (kilobytes for a big room) as group() must.
   */
  groupHead(groupId: Buffer): MlsGroupHead | undefined {
    this.fresh();
    const kept = this.cache.group(groupId) ?? this.group(groupId);
    return kept === undefined ? undefined : { conversationId: kept.conversationId, epoch: kept.epoch };
  }

  groupOfConversation(conversationId: string): MlsGroupRecord | undefined {
    const r = this.s.groupByConversation.get(conversationId) as Row | undefined;
    return r === undefined ? undefined : groupOf(r);
  }

  groupsCreatedBy(username: string): number {
    return num((this.s.groupCountBy.get(username) as Row).n);
  }

  /** Registers a group at the epoch of its first GroupInfo; the first group of a conversation wins. */
  createGroup(g: MlsGroupRecord): CreateGroupOutcome {
    return this.transaction(() => {
      if (this.s.groupGet.get(g.groupId) !== undefined) return "group-exists";
      if (this.s.groupByConversation.get(g.conversationId) !== undefined) return "conversation-taken";
      // No row has g's id, so the cache has no entry for it (it keeps only rows): nothing to drop.
      this.s.groupPut.run(g.groupId, g.conversationId, g.creator, g.epoch, g.groupInfo, g.groupInfoEpoch, this.clock());
      this.s.memberPut.run(g.groupId, g.creator);
      return "created";
    });
  }

  /**
   * Re-creating a room (PROTOCOL.md §8.2): in one transaction, the room's current group
   * (`old`: its record, its membership hint, its kept commits) is dropped and `g` registered in
   * its place, its creator its only member. "changed": the room's group is no longer `old` (a
   * race with another change); "group-exists": `g`'s id is taken. The caller checked who asks.
   */
  replaceGroup(old: Buffer, g: MlsGroupRecord): CreateGroupOutcome | "changed" {
    return this.transaction(() => {
      const cur = this.s.groupByConversation.get(g.conversationId) as Row | undefined;
      if (cur === undefined || !buf(cur.group_id).equals(old)) return "changed";
      if (this.s.groupGet.get(g.groupId) !== undefined) return "group-exists";
      // g's id has no row (so no cache entry: only rows are kept); the old group's entry goes.
      this.cache.drop(old);
      this.s.commitsDelete.run(old);
      this.s.membersDelete.run(old);
      this.s.groupDelete.run(old);
      this.s.groupPut.run(g.groupId, g.conversationId, g.creator, g.epoch, g.groupInfo, g.groupInfoEpoch, this.clock());
      this.s.memberPut.run(g.groupId, g.creator);
      return "created";
    });
  }

  /**
   * Rooms' groups (never DMs or the lobby) with their member counts by the hint: most members
   * first, then by name (bytes); at most `perCreator` of one creator's groups (its biggest), at
   * most `limit` in all (PROTOCOL.md §8.2, ListRooms).
   */
  roomSummaries(limit: number, perCreator: number = limit): Array<{ readonly room: string; readonly memberCount: number }> {
    return (this.s.roomSummaries.all(perCreator, limit) as Row[]).map((r) => ({ room: str(r.room), memberCount: num(r.n) }));
  }

  /** The rooms whose group counts the user as a member by the hint, with their members (sorted); at most `limit`. */
  roomsOfMember(username: string, limit: number): Array<{ readonly room: string; readonly members: string[] }> {
    return (this.s.roomsOfMember.all(username, limit) as Row[]).map((r) => ({ room: str(r.conversation_id), members: this.groupMembers(Buffer.from(buf(r.group_id))) }));
  }

  /** Whether the relay's hint counts the user as a member of the group. */
  isGroupMember(groupId: Buffer, username: string): boolean {
    const kept = this.keptMembers(groupId);
    return kept === undefined ? this.s.memberGet.get(groupId, username) !== undefined : kept.set.has(username);
  }

  /** The group's members by the relay's hint (creator, then as commits said), sorted. */
  groupMembers(groupId: Buffer): string[] {
    const kept = this.keptMembers(groupId);
    return kept === undefined ? this.readMembers(groupId) : [...kept.sorted];
  }

  private readMembers(groupId: Buffer): string[] {
    return (this.s.membersOf.all(groupId) as Row[]).map((r) => str(r.username));
  }

  /**
   * The members kept for a group whose record is kept (loaded now when outside a transaction);
   * undefined when its record is not kept (an unknown group id never fills the cache).
   */
  private keptMembers(groupId: Buffer): CachedMembers | undefined {
    this.fresh();
    const kept = this.cache.members(groupId);
    if (kept !== undefined || this.db.isTransaction || this.cache.group(groupId) === undefined) return kept;
    return this.cache.putMembers(groupId, this.readMembers(groupId));
  }

  /** Replaces a group's GroupInfo (the caller checked who and which epoch). */
  setGroupInfo(groupId: Buffer, groupInfo: Buffer, epoch: number): void {
    this.cache.drop(groupId);
    this.s.groupSetInfo.run(groupInfo, epoch, groupId);
  }

  /**
   * PublishGroupInfo's write (PROTOCOL.md §8.2): the GroupInfo of `epoch` replaces the kept one
   * only while the group is still at `epoch`, in the same statement, so that one checked against
   * an epoch a commit (here or on another relay of the cluster) has since moved past is never
   * put back over the newer one. False when the group is not at `epoch` (nothing changed).
   */
  replaceGroupInfo(groupId: Buffer, groupInfo: Buffer, epoch: number): boolean {
    this.cache.drop(groupId);
    return Number(this.s.groupReplaceInfo.run(groupInfo, epoch, groupId, epoch).changes) === 1;
  }

  /** Who sent the accepted commit for (group, epoch), if it is kept. */
  commitSender(groupId: Buffer, epoch: number): string | undefined {
    const r = this.s.commitGet.get(groupId, epoch) as Row | undefined;
    return r === undefined ? undefined : str(r.sender);
  }

  /**
   * Who made the group's current epoch by a commit accepted here (PROTOCOL.md §8.2: only they
   * may replace its GroupInfo), whether or not that commit is still kept; undefined when no
   * commit was accepted since the group was registered (the epoch is its creator's) or there is
   * no such group.
   */
  epochCommitter(groupId: Buffer): string | undefined {
    const r = this.s.groupLastCommitter.get(groupId) as Row | undefined;
    return r === undefined || r.last_committer === null ? undefined : str(r.last_committer);
  }

  /**
   * Accepts a commit for `epoch` if it is the group's current epoch and no commit holds it yet
   * (the unique index decides, in one transaction with the epoch's advance and the new
   * GroupInfo, when given, which must be for epoch + 1). Only a member by the hint may commit,
   * unless the commit is an external join; the hint is updated with the commit, and the group
   * records its sender as the new epoch's committer. With `bound`, the sender's oldest kept
   * commits go (never this one) until it keeps at most the bound, in the same transaction: only
   * a commit that is accepted trims its sender's history.
   */
  acceptCommit(groupId: Buffer, epoch: number, sender: string, commit: Buffer, groupInfo?: Buffer,
    hint: MembershipHint = { external: false, added: [], removed: [] }, deliveries?: CommitDeliveries, bound?: KeptCommitBound): CommitOutcome {
    if (deliveries !== undefined && this.queues === undefined) throw new Error("this store has no queues to deliver commits through");
    const run = <T>(fn: () => T): T => (deliveries === undefined ? this.transaction(fn) : this.queues!.transactionQueuing(fn));
    return run((): CommitOutcome => {
      const r = this.s.groupGet.get(groupId) as Row | undefined;
      if (r === undefined) return { kind: "unknown-group" };
      // A resend of the accepted commit by its sender (its client lost the answer): accepted
      // again, nothing stored twice. Before the membership check: the answer it missed was yes.
      // The kept commit's blob is read only when its sender and size are this one's.
      const taken = this.s.commitHead.get(groupId, epoch) as Row | undefined;
      if (taken !== undefined && str(taken.sender) === sender && num(taken.bytes) === commit.length
        && this.kept.blobOf(num(taken.id)).equals(commit)) return { kind: "duplicate", epoch };
      if (!hint.external && !this.isGroupMember(groupId, sender)) return { kind: "not-a-member" };
      const current = num(r.epoch);
      if (epoch > current) return { kind: "future-epoch", current };
      const inserted = epoch === current && this.s.commitPut.run(groupId, epoch, sender, this.clock(), commit).changes === 1;
      // Who won is told only to a member by the hint (PROTOCOL.md §8.2: as FetchCommits' sender).
      if (!inserted) {
        const winner = this.commitSender(groupId, epoch) ?? (epoch === current - 1 ? this.epochCommitter(groupId) : undefined);
        return { kind: "epoch-taken", current, winner: this.isGroupMember(groupId, sender) ? winner : undefined };
      }
      let queued: readonly EnqueueRequest[] | undefined;
      if (deliveries !== undefined) {
        queued = deliveries(this.groupMembers(groupId));
        const outcomes = this.queues!.enqueueInside(queued);
        queued = queued.filter((_, i) => outcomes[i] === "stored");
      }
      this.cache.drop(groupId);
      this.s.groupSetEpoch.run(epoch + 1, sender, groupId);
      if (hint.external) this.s.memberPut.run(groupId, sender);
      for (const u of hint.added) this.s.memberPut.run(groupId, u);
      for (const u of hint.removed) this.s.memberDelete.run(groupId, u);
      if (groupInfo !== undefined) this.s.groupSetInfo.run(groupInfo, epoch + 1, groupId);
      if (epoch + 1 > COMMITS_KEPT_PER_GROUP) this.s.commitsTrim.run(groupId, epoch + 1 - COMMITS_KEPT_PER_GROUP);
      if (bound !== undefined) this.kept.trimInside(sender, bound.maxCommits, bound.maxBytes, { groupId, epoch });
      return queued === undefined ? { kind: "accepted", epoch } : { kind: "accepted", epoch, queued };
    });
  }

  /** PROTOCOL.md §8.2: the per-user bound on kept commits (kept-commits.ts). */
  trimCommitsOf(sender: string, maxCommits: number, maxBytes: number): number {
    return this.kept.trim(sender, maxCommits, maxBytes);
  }

  /** The retention purge of commits (kept-commits.ts). */
  purgeCommits(cutoffMs: number): number {
    return this.kept.purge(cutoffMs);
  }

  /** FetchCommits' answer (kept-commits.ts). */
  commitPage(groupId: Buffer, fromEpoch: number, maxCount: number, maxBytes: number): CommitPage {
    return this.kept.page(groupId, fromEpoch, maxCount, maxBytes);
  }

  /** Up to `limit` accepted commits from `fromEpoch` on, in epoch order (every blob: tests and tools; FetchCommits uses commitPage). */
  commitsFrom(groupId: Buffer, fromEpoch: number, limit: number): CommitRecord[] {
    return this.kept.from(groupId, fromEpoch, limit);
  }
}
