// The MLS Delivery Service's durable state in PostgreSQL (PROTOCOL.md §8.2): the embedded
// store's MlsDeliveryStore (store/mls.ts), same behaviour, for many relays on one database.
// Tables: pg/schema-mls.ts. What SQLite gets from its single writer is made explicit here:
// - acceptCommit locks the group row (SELECT … FOR UPDATE) before it reads the epoch, the kept
//   commit and the membership hint, so two relays' commits for one group run one after the
//   other; the (group_id, epoch) primary key still decides the first commit. The commit's
//   deliveries are stored by the queues in the same transaction (all or nothing).
// - a one-time KeyPackage (pg/key-packages.ts) is claimed by DELETE … WHERE id = (SELECT … FOR UPDATE SKIP LOCKED
//   LIMIT 1) RETURNING: handed out once even when relays claim at the same moment, and a claim
//   never waits for another (it takes the next one; the last-resort one is never deleted).
// - text ordering is by bytes (COLLATE "C"), as SQLite's: member lists and room lists sort the same.
// Argument checks and MLS decoding are the caller's (src/server/mls-ds.ts), as for the embedded store.
import type { MlsStore } from "../../store.js";
import {
  COMMITS_KEPT_PER_GROUP, type ClaimedKeyPackage, type CommitDeliveries, type CommitOutcome, type CommitPage, type CommitRecord,
  type CreateGroupOutcome, type KeptCommitBound, type KeyPackageCounts, type MembershipHint, type MlsGroupHead, type MlsGroupRecord, type StoredKeyPackageInput,
} from "../mls-types.js";
import type { EnqueueRequest } from "../queues.js";
import type { PgStoreContext } from "./context.js";
import { PgKeptCommits } from "./kept-commits.js";
import { PgKeyPackages } from "./key-packages.js";
import type { PgQueueWriter } from "./queues.js";
import type { SqlStep, SyncPg } from "./sync-client.js";

// One definition, in queues.ts; named here too for the callers that import it from mls.js.
export type { PgQueueWriter } from "./queues.js";

type Row = Record<string, unknown>;

const num = (v: unknown): number => Number(v);
const str = (v: unknown): string => String(v);
const bytes = (v: unknown): Buffer => Buffer.from(v as Uint8Array);

function groupOf(r: Row): MlsGroupRecord {
  return {
    groupId: bytes(r["group_id"]), conversationId: str(r["conversation_id"]), creator: str(r["creator"]),
    epoch: num(r["epoch"]), groupInfo: bytes(r["group_info"]), groupInfoEpoch: num(r["group_info_epoch"]),
  };
}

const GROUP_COLUMNS = "group_id, conversation_id, creator, epoch, group_info, group_info_epoch";
// The group and its members (sorted by bytes, as groupMembers) in one statement.
const GROUP_WITH_MEMBERS = `SELECT ${GROUP_COLUMNS},
    ARRAY(SELECT m.username FROM mls_group_members m WHERE m.group_id = g.group_id ORDER BY m.username COLLATE "C") AS members
  FROM mls_groups g WHERE g.group_id = $1`;
// Whether (sender, id) was accepted, with a group and its members (NULLs and none when there is no such group).
const ACCEPTED_WITH_GROUP = `SELECT EXISTS (SELECT 1 FROM accepted WHERE sender = $1 AND message_id = $2) AS accepted,
    g.group_id, g.conversation_id, g.creator, g.epoch, g.group_info, g.group_info_epoch,
    ARRAY(SELECT m.username FROM mls_group_members m WHERE m.group_id = g.group_id ORDER BY m.username COLLATE "C") AS members
  FROM (VALUES (1)) AS one (x) LEFT JOIN mls_groups g ON g.group_id = $3`;
const INSERT_GROUP = `INSERT INTO mls_groups (group_id, conversation_id, creator, epoch, group_info, group_info_epoch, created_at_ms)
  VALUES ($1, $2, $3, $4, $5, $6, $7)`;

/** What a read of a group found (no record: no such group), valid only while `calls` is SyncPg.callsMade, for a bounded time (PgMlsStore.keep). */
interface GroupSnapshot {
  readonly groupId: Buffer;
  readonly record: MlsGroupRecord | undefined;
  readonly members: readonly string[];
  readonly calls: number;
}

/** Users whose last group is remembered (for reading it along with their next wasAccepted), at most. */
const PREDICTED_MAX = 10_000;

/** A snapshot's record as the caller's own (its Buffers copied): changing it changes no later read. */
function copyOfRecord(r: MlsGroupRecord | undefined): MlsGroupRecord | undefined {
  return r === undefined ? undefined : { ...r, groupId: Buffer.from(r.groupId), groupInfo: Buffer.from(r.groupInfo) };
}

/** Thrown inside replaceGroup's transaction to roll it back with an answer. */
class Refused {
  constructor(readonly outcome: "group-exists") {}
}

/** The MLS Delivery Service tables in PostgreSQL. */
export class PgMlsStore implements MlsStore {
  private readonly db: SyncPg;
  private readonly clock: () => number;
  private snapshot: GroupSnapshot | undefined;
  /** Each user's last group by isGroupMember (PREDICTED_MAX users at most). */
  private readonly lastGroupOf = new Map<string, Buffer>();

  /** The kept commits' trims, purge and page (pg/kept-commits.ts). */
  private readonly kept: PgKeptCommits;
  /** The KeyPackages: published, counted, claimed, dropped (pg/key-packages.ts). */
  private readonly keyPackages: PgKeyPackages;

  constructor(ctx: PgStoreContext, private readonly queues: PgQueueWriter) {
    this.db = ctx.db;
    this.clock = ctx.clock;
    this.kept = new PgKeptCommits(ctx.db);
    this.keyPackages = new PgKeyPackages(ctx.db, ctx.clock);
  }

  /** A device's unexpired KeyPackages (pg/key-packages.ts, as the other KeyPackage calls here). */
  keyPackageCounts(address: string): KeyPackageCounts {
    return this.keyPackages.keyPackageCounts(address);
  }

  publishKeyPackages(username: string, oneTime: readonly StoredKeyPackageInput[], lastResort: StoredKeyPackageInput | undefined, address: string = username): KeyPackageCounts {
    return this.keyPackages.publishKeyPackages(username, oneTime, lastResort, address);
  }

  claimKeyPackage(address: string): ClaimedKeyPackage | undefined {
    return this.keyPackages.claimKeyPackage(address);
  }

  claimKeyPackages(addresses: readonly string[]): Map<string, ClaimedKeyPackage> {
    return this.keyPackages.claimKeyPackages(addresses);
  }

  dropKeyPackagesOfAddressLocked(address: string): void {
    this.keyPackages.dropKeyPackagesOfAddressLocked(address);
  }

  keyPackagesOfAddress(address: string): Array<{ readonly id: number; readonly keyPackage: Buffer }> {
    return this.keyPackages.keyPackagesOfAddress(address);
  }

  dropKeyPackagesById(ids: readonly number[]): void {
    this.keyPackages.dropKeyPackagesById(ids);
  }

  purgeExpiredKeyPackages(): number {
    return this.keyPackages.purgeExpiredKeyPackages();
  }

  dropKeyPackagesLocked(username: string): void {
    this.keyPackages.dropKeyPackagesLocked(username);
  }

  /** Inside a transaction (a released name): the user is no member of any group by the relay's record any more. */
  dropMembershipsLocked(username: string): void {
    this.db.query("DELETE FROM mls_group_members WHERE username = $1", [username]);
  }

  /**
   * The group's record, read with its member list in the same statement: a SendMls asks for the
   * group, then whether the sender is a member, then every member (mls-ds.ts admitMls), three
   * round trips that are now one. What was read is kept as a snapshot that answers group,
   * isGroupMember and groupMembers for this group only while nothing can have changed that this
   * relay could know of: no other database call was made since (SyncPg.callsMade: its own writes
   * included), and within the same synchronous run (dropped at the next microtask). Other relays'
   * writes are not seen between two statements of one synchronous run any better than by one: no
   * input is read in between, so the answers are all those of one moment after it.
   */
  group(groupId: Buffer): MlsGroupRecord | undefined {
    const kept = this.snapshotOf(groupId);
    // The caller's own copy: a read changed by its caller must not change the next read.
    if (kept !== undefined) return copyOfRecord(kept.record);
    const [r] = this.db.query(GROUP_WITH_MEMBERS, [groupId]);
    return copyOfRecord(this.keep(groupId, r, false).record);
  }

  /** What a SendMls needs of its group: group()'s read (or snapshot) without copying the GroupInfo. */
  groupHead(groupId: Buffer): MlsGroupHead | undefined {
    const kept = this.snapshotOf(groupId);
    const record = kept !== undefined ? kept.record : this.keep(groupId, this.db.query(GROUP_WITH_MEMBERS, [groupId])[0], false).record;
    return record === undefined ? undefined : { conversationId: record.conversationId, epoch: record.epoch };
  }

  /**
   * The group a user last sent to or asked about (isGroupMember), read along with the user's
   * next wasAccepted (pg-store.ts): a SendMls's first question, a moment before its group's.
   */
  predictedGroup(username: string): Buffer | undefined {
    return this.lastGroupOf.get(username);
  }

  /**
   * Whether (sender, id) was accepted, and, in the same statement, the group `groupId` with its
   * members, kept for group() as a snapshot until this callback's microtasks are done (the
   * SendMls's admission runs among them) or any other database call is made. Longer than a
   * snapshot of group() itself, and still never older than the input it answers: everything
   * handled before the next callback was read from the socket before this statement ran.
   */
  askAcceptedReadingGroup(sender: string, messageId: Buffer, groupId: Buffer): boolean {
    const [r] = this.db.query(ACCEPTED_WITH_GROUP, [sender, messageId, groupId]);
    this.keep(groupId, r!["group_id"] === null ? undefined : r, true);
    return r!["accepted"] === true;
  }

  /** Keeps what a statement read of a group (its row, undefined when there is none) as the snapshot. */
  private keep(groupId: Buffer, r: Row | undefined, untilTicksDone: boolean): GroupSnapshot {
    const snap: GroupSnapshot = {
      groupId: Buffer.from(groupId), record: r === undefined ? undefined : groupOf(r),
      members: r === undefined ? [] : (r["members"] as unknown[]).map(str), calls: this.db.callsMade,
    };
    this.snapshot = snap;
    const drop = (): void => {
      if (this.snapshot === snap) this.snapshot = undefined;
    };
    // A nextTick queued by a microtask runs once the microtask queue is empty, before the next
    // callback of the event loop (Node drains ticks and microtasks after every callback).
    queueMicrotask(untilTicksDone ? () => process.nextTick(drop) : drop);
    return snap;
  }

  /** The snapshot, when it is of this group and still holds (see group). */
  private snapshotOf(groupId: Buffer): GroupSnapshot | undefined {
    const s = this.snapshot;
    if (s === undefined || s.calls !== this.db.callsMade || !s.groupId.equals(groupId)) return undefined;
    return s;
  }

  groupOfConversation(conversationId: string): MlsGroupRecord | undefined {
    const [r] = this.db.query(`SELECT ${GROUP_COLUMNS} FROM mls_groups WHERE conversation_id = $1`, [conversationId]);
    return r === undefined ? undefined : groupOf(r);
  }

  groupsCreatedBy(username: string): number {
    return num(this.db.query("SELECT count(*) AS n FROM mls_groups WHERE creator = $1", [username])[0]!["n"]);
  }

  /**
   * Registers a group at the epoch of its first GroupInfo, its creator its first member; the
   * first group of a conversation wins (by the unique keys, also between relays).
   */
  createGroup(g: MlsGroupRecord): CreateGroupOutcome {
    const [r] = this.db.query(`WITH g AS (${INSERT_GROUP} ON CONFLICT DO NOTHING RETURNING group_id),
        m AS (INSERT INTO mls_group_members (group_id, username) SELECT group_id, $3 FROM g ON CONFLICT DO NOTHING)
      SELECT count(*) AS n FROM g`, [g.groupId, g.conversationId, g.creator, g.epoch, g.groupInfo, g.groupInfoEpoch, this.clock()]);
    if (num(r!["n"]) === 1) return "created";
    return this.db.query("SELECT 1 AS hit FROM mls_groups WHERE group_id = $1", [g.groupId]).length > 0 ? "group-exists" : "conversation-taken";
  }

  /**
   * Re-creating a room: in one transaction, the room's current group `old` (its record, its
   * membership hint, its kept commits) is dropped and `g` registered in its place, its creator
   * its only member. "changed": the room's group is no longer `old`; "group-exists": `g`'s id is taken.
   */
  replaceGroup(old: Buffer, g: MlsGroupRecord): CreateGroupOutcome | "changed" {
    try {
      return this.db.transaction((): CreateGroupOutcome | "changed" => {
        // Locks the room's group row: a commit into it, or another replacement, waits for this one.
        const [cur] = this.db.query("SELECT group_id FROM mls_groups WHERE conversation_id = $1 FOR UPDATE", [g.conversationId]);
        if (cur === undefined || !bytes(cur["group_id"]).equals(old)) return "changed";
        const [taken, , , , inserted] = this.db.batch([
          { sql: "SELECT 1 AS hit FROM mls_groups WHERE group_id = $1", params: [g.groupId] },
          { sql: "DELETE FROM mls_commits WHERE group_id = $1", params: [old] },
          { sql: "DELETE FROM mls_group_members WHERE group_id = $1", params: [old] },
          { sql: "DELETE FROM mls_groups WHERE group_id = $1", params: [old] },
          { sql: `${INSERT_GROUP} ON CONFLICT DO NOTHING RETURNING group_id`, params: [g.groupId, g.conversationId, g.creator, g.epoch, g.groupInfo, g.groupInfoEpoch, this.clock()] },
        ]);
        if (taken!.length > 0 || inserted!.length === 0) throw new Refused("group-exists");
        this.db.query("INSERT INTO mls_group_members (group_id, username) VALUES ($1, $2) ON CONFLICT DO NOTHING", [g.groupId, g.creator]);
        return "created";
      }, { rerun: true });
    } catch (e) {
      if (e instanceof Refused) return e.outcome;
      throw e;
    }
  }

  /**
   * Rooms' groups (never DMs or the lobby) with their member counts by the hint: most members
   * first, then by name (bytes); at most `perCreator` of one creator's groups (its biggest), at
   * most `limit` in all (PROTOCOL.md §8.2, ListRooms).
   */
  roomSummaries(limit: number, perCreator: number = limit): Array<{ readonly room: string; readonly memberCount: number }> {
    return this.db.query(`SELECT room, n FROM (
        SELECT g.conversation_id AS room, count(m.username) AS n,
          row_number() OVER (PARTITION BY g.creator ORDER BY count(m.username) DESC, g.conversation_id COLLATE "C") AS k
        FROM mls_groups g LEFT JOIN mls_group_members m ON m.group_id = g.group_id
        WHERE g.conversation_id LIKE '#%' GROUP BY g.group_id) r
      WHERE k <= $2 ORDER BY n DESC, room COLLATE "C" LIMIT $1`, [limit, perCreator])
      .map((r) => ({ room: str(r["room"]), memberCount: num(r["n"]) }));
  }

  /** The rooms whose group counts the user as a member by the hint, with their members (sorted); at most `limit`. One query. */
  roomsOfMember(username: string, limit: number): Array<{ readonly room: string; readonly members: string[] }> {
    return this.db.query(`SELECT r.conversation_id AS room, array_agg(o.username ORDER BY o.username COLLATE "C") AS members
      FROM (SELECT g.group_id, g.conversation_id FROM mls_group_members m JOIN mls_groups g ON g.group_id = m.group_id
            WHERE m.username = $1 AND g.conversation_id LIKE '#%' ORDER BY g.conversation_id COLLATE "C" LIMIT $2) r
      JOIN mls_group_members o ON o.group_id = r.group_id
      GROUP BY r.group_id, r.conversation_id ORDER BY r.conversation_id COLLATE "C"`, [username, limit])
      .map((r) => ({ room: str(r["room"]), members: (r["members"] as unknown[]).map(str) }));
  }

  /** Whether the relay's hint counts the user as a member of the group. */
  isGroupMember(groupId: Buffer, username: string): boolean {
    if (this.lastGroupOf.size >= PREDICTED_MAX && !this.lastGroupOf.has(username)) this.lastGroupOf.clear();
    this.lastGroupOf.set(username, groupId);
    const kept = this.snapshotOf(groupId);
    if (kept !== undefined) return kept.members.includes(username);
    return this.db.query("SELECT 1 AS hit FROM mls_group_members WHERE group_id = $1 AND username = $2", [groupId, username]).length > 0;
  }

  /** The group's members by the relay's hint (creator, then as commits said), sorted by bytes. */
  groupMembers(groupId: Buffer): string[] {
    const kept = this.snapshotOf(groupId);
    if (kept !== undefined) return [...kept.members];
    return this.db.query(`SELECT username FROM mls_group_members WHERE group_id = $1 ORDER BY username COLLATE "C"`, [groupId])
      .map((r) => str(r["username"]));
  }

  /** Replaces a group's GroupInfo (the caller checked who and which epoch). */
  setGroupInfo(groupId: Buffer, groupInfo: Buffer, epoch: number): void {
    this.db.query("UPDATE mls_groups SET group_info = $1, group_info_epoch = $2 WHERE group_id = $3", [groupInfo, epoch, groupId]);
  }

  /** PublishGroupInfo's write, only while the group is still at `epoch` (store/mls.ts replaceGroupInfo). */
  replaceGroupInfo(groupId: Buffer, groupInfo: Buffer, epoch: number): boolean {
    return this.db.query("UPDATE mls_groups SET group_info = $1, group_info_epoch = $2 WHERE group_id = $3 AND epoch = $2 RETURNING 1 AS hit", [groupInfo, epoch, groupId]).length === 1;
  }

  /** Who sent the accepted commit for (group, epoch), if it is kept. */
  commitSender(groupId: Buffer, epoch: number): string | undefined {
    const [r] = this.db.query("SELECT sender FROM mls_commits WHERE group_id = $1 AND epoch = $2", [groupId, epoch]);
    return r === undefined ? undefined : str(r["sender"]);
  }

  /** Who made the group's current epoch by a commit accepted here, kept or not (store/mls.ts epochCommitter). */
  epochCommitter(groupId: Buffer): string | undefined {
    const [r] = this.db.query("SELECT last_committer FROM mls_groups WHERE group_id = $1", [groupId]);
    return r === undefined || r["last_committer"] === null ? undefined : str(r["last_committer"]);
  }

  /**
   * Accepts a commit for `epoch` if it is the group's current epoch and no commit holds it yet:
   * the group row is locked first (commits into one group run one at a time, on every relay),
   * the primary key decides, and the epoch's advance, the hint's update, the new GroupInfo
   * (for epoch + 1), the new epoch's committer, the deliveries (queues.enqueueInside) and, with
   * `bound`, the sender's trim to its kept-commit bound (never this commit) are in the same
   * transaction.
   */
  acceptCommit(groupId: Buffer, epoch: number, sender: string, commit: Buffer, groupInfo?: Buffer,
    hint: MembershipHint = { external: false, added: [], removed: [] }, deliveries?: CommitDeliveries, bound?: KeptCommitBound): CommitOutcome {
    let committed = false;
    try {
      // Run again when PostgreSQL aborts it as a deadlock victim: `deliveries` only builds
      // requests, enqueueInside only drops cached usage, and `settled` is called once, after.
      const out = this.db.transaction(() => this.acceptLocked(groupId, epoch, sender, commit, groupInfo, hint, deliveries, bound), { rerun: true });
      committed = true;
      return out;
    } finally {
      if (deliveries !== undefined) this.queues.settled?.(committed);
    }
  }

  private acceptLocked(groupId: Buffer, epoch: number, sender: string, commit: Buffer, groupInfo: Buffer | undefined,
    hint: MembershipHint, deliveries: CommitDeliveries | undefined, bound: KeptCommitBound | undefined): CommitOutcome {
    // One hop: the lock first, then (after it) the epoch's kept commit and the sender's membership.
    const [group, taken, member] = this.db.batch([
      { sql: "SELECT epoch, last_committer FROM mls_groups WHERE group_id = $1 FOR UPDATE", params: [groupId] },
      { sql: "SELECT sender, commit_msg FROM mls_commits WHERE group_id = $1 AND epoch = $2", params: [groupId, epoch] },
      { sql: "SELECT 1 AS hit FROM mls_group_members WHERE group_id = $1 AND username = $2", params: [groupId, sender] },
    ]);
    const g = group![0];
    if (g === undefined) return { kind: "unknown-group" };
    // A resend of the accepted commit by its sender (its client lost the answer, or sent it to
    // another relay too): accepted again, nothing stored twice. Before the membership check.
    const t = taken![0];
    if (t !== undefined && str(t["sender"]) === sender && bytes(t["commit_msg"]).equals(commit)) return { kind: "duplicate", epoch };
    if (!hint.external && member!.length === 0) return { kind: "not-a-member" };
    const current = num(g["epoch"]);
    if (epoch > current) return { kind: "future-epoch", current };
    const inserted = epoch === current && this.db.query(`INSERT INTO mls_commits (group_id, epoch, sender, commit_msg, accepted_at_ms)
      VALUES ($1, $2, $3, $4, $5) ON CONFLICT (group_id, epoch) DO NOTHING RETURNING 1 AS hit`, [groupId, epoch, sender, commit, this.clock()]).length === 1;
    // The group row is locked, so the kept commit read above is still the epoch's.
    // Who won is told only to a member by the hint (PROTOCOL.md §8.2: as FetchCommits' sender).
    if (!inserted) {
      const winner = t !== undefined ? str(t["sender"]) : epoch === current - 1 && g["last_committer"] !== null ? str(g["last_committer"]) : undefined;
      return { kind: "epoch-taken", current, winner: member!.length === 0 ? undefined : winner };
    }
    let queued: readonly EnqueueRequest[] | undefined;
    if (deliveries !== undefined) {
      queued = deliveries(this.groupMembers(groupId));
      const outcomes = this.queues.enqueueInside(queued);
      queued = queued.filter((_, i) => outcomes[i] === "stored");
    }
    const joined = hint.external ? [sender, ...hint.added] : [...hint.added];
    const steps: SqlStep[] = [{ sql: "UPDATE mls_groups SET epoch = $1, last_committer = $2 WHERE group_id = $3", params: [epoch + 1, sender, groupId] }];
    if (joined.length > 0) {
      steps.push({ sql: "INSERT INTO mls_group_members (group_id, username) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING", params: [groupId, joined] });
    }
    if (hint.removed.length > 0) {
      steps.push({ sql: "DELETE FROM mls_group_members WHERE group_id = $1 AND username = ANY($2::text[])", params: [groupId, [...hint.removed]] });
    }
    if (groupInfo !== undefined) {
      steps.push({ sql: "UPDATE mls_groups SET group_info = $1, group_info_epoch = $2 WHERE group_id = $3", params: [groupInfo, epoch + 1, groupId] });
    }
    if (epoch + 1 > COMMITS_KEPT_PER_GROUP) {
      steps.push({ sql: "DELETE FROM mls_commits WHERE group_id = $1 AND epoch < $2", params: [groupId, epoch + 1 - COMMITS_KEPT_PER_GROUP] });
    }
    this.db.batch(steps);
    if (bound !== undefined) this.kept.trimInside(sender, bound.maxCommits, bound.maxBytes, { groupId, epoch });
    return queued === undefined ? { kind: "accepted", epoch } : { kind: "accepted", epoch, queued };
  }

  /** PROTOCOL.md §8.2: the per-user bound on kept commits (pg/kept-commits.ts). */
  trimCommitsOf(sender: string, maxCommits: number, maxBytes: number): number {
    return this.kept.trim(sender, maxCommits, maxBytes);
  }

  /** The retention purge of commits (pg/kept-commits.ts). */
  purgeCommits(cutoffMs: number): number {
    return this.kept.purge(cutoffMs);
  }

  /** FetchCommits' answer (pg/kept-commits.ts). */
  commitPage(groupId: Buffer, fromEpoch: number, maxCount: number, maxBytes: number): CommitPage {
    return this.kept.page(groupId, fromEpoch, maxCount, maxBytes);
  }

  /** Up to `limit` accepted commits from `fromEpoch` on, in epoch order (every blob: tests and tools; FetchCommits uses commitPage). */
  commitsFrom(groupId: Buffer, fromEpoch: number, limit: number): CommitRecord[] {
    return this.kept.from(groupId, fromEpoch, limit);
  }
}
