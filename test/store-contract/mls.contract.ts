// The MLS Delivery Service part of the relay store (RelayStore.mls, PROTOCOL.md §8.2), as a
// contract both stores must keep (the embedded SQLite store and the PostgreSQL one): KeyPackages
// handed out once per device address, the last-resort one kept and replaced, expiry; groups
// (first of a conversation wins), the first commit of an epoch winning, the membership hint,
// commit retention, a commit's deliveries stored with it (all or nothing), rooms' summaries and a
// room's group replaced. Cases moved here from test/server/store-mls*.test.ts (what is about the
// SQLite file stays there).
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { EnqueueRequest, RelayStore } from "../../src/server/store.js";
import { COMMITS_KEPT_PER_GROUP } from "../../src/server/store/mls-types.js";

export interface ContractStore {
  readonly store: RelayStore;
  close(): Promise<void>;
}

/** What a contract asks of the store it opens: a clock it controls (expiry). */
export interface ContractOpenOptions {
  readonly clock: () => number;
}

export type OpenContractStore = (options: ContractOpenOptions) => Promise<ContractStore>;

const kp = (n: number, notAfterMs = 10_000_000) => ({ ref: Buffer.alloc(32, n), keyPackage: Buffer.alloc(100, n), notAfterMs });
const gid = (n: number) => Buffer.alloc(20, n);
const group = (n: number, conversationId: string, creator = "alice", epoch = 0) => ({
  groupId: gid(n), conversationId, creator, epoch, groupInfo: Buffer.from(`gi${n}@${epoch}`), groupInfoEpoch: epoch,
});
/** A binding of `username` (the keys are the same for every name: the contracts never compare them). */
export const user = (username: string) => ({
  username, sigSpki: Buffer.alloc(44, 1), encSpki: Buffer.alloc(44, 2), encKeySig: Buffer.alloc(64), sigFpr: Buffer.alloc(32, 3), encFpr: Buffer.alloc(32, 4),
});
const delivery = (recipients: readonly string[], id: number): EnqueueRequest =>
  ({ sender: "alice", messageId: Buffer.alloc(16, id), conversationId: "#g1", envelope: Buffer.from(`c${id}`), payload: "mls", recipients });

/** A case's store and the time its clock reads (1_000_000 when the case starts; a case may move it). */
export interface CaseStore {
  readonly store: RelayStore;
  now: number;
}

/** Opens a store before each case of the enclosing describe, on a clock the case controls, and closes it after. */
export function storePerCase(open: OpenContractStore): CaseStore {
  let opened: ContractStore | undefined;
  const t = { store: undefined as unknown as RelayStore, now: 1_000_000 };
  beforeEach(async () => {
    t.now = 1_000_000;
    opened = undefined;
    opened = await open({ clock: () => t.now });
    t.store = opened.store;
  });
  afterEach(async () => {
    await opened?.close();
  });
  return t;
}

export function describeMlsStoreContract(name: string, open: OpenContractStore): void {
  describe(`MLS store contract: ${name}`, () => {
    const t = storePerCase(open);

    describe("KeyPackages", () => {
      it("hands out each one-time KeyPackage once, oldest first, then the last-resort one without deleting it", () => {
        const s = t.store.mls;
        expect(s.publishKeyPackages("alice", [kp(1), kp(2), kp(1)], kp(9))).toEqual({ oneTime: 2, lastResort: true });
        expect(s.claimKeyPackage("alice")).toEqual({ keyPackage: kp(1).keyPackage, lastResort: false });
        expect(s.claimKeyPackage("alice")).toEqual({ keyPackage: kp(2).keyPackage, lastResort: false });
        expect(s.claimKeyPackage("alice")).toEqual({ keyPackage: kp(9).keyPackage, lastResort: true });
        expect(s.claimKeyPackage("alice")).toEqual({ keyPackage: kp(9).keyPackage, lastResort: true });
        expect(s.claimKeyPackage("bob")).toBeUndefined();
        // A new last-resort KeyPackage replaces the old one (one per device, by a unique index).
        expect(s.publishKeyPackages("alice", [], kp(8))).toEqual({ oneTime: 0, lastResort: true });
        expect(s.claimKeyPackage("alice")?.keyPackage).toEqual(kp(8).keyPackage);
        expect(s.keyPackageCounts("alice")).toEqual({ oneTime: 0, lastResort: true });
        expect(s.keyPackageCounts("nobody")).toEqual({ oneTime: 0, lastResort: false });
      });

      it("never hands out an expired KeyPackage, and purges them", () => {
        const s = t.store.mls;
        s.publishKeyPackages("alice", [kp(1, t.now + 10), kp(2, t.now + 1000)], kp(9, t.now + 10));
        t.now += 100;
        expect(s.keyPackageCounts("alice")).toEqual({ oneTime: 1, lastResort: false });
        expect(s.claimKeyPackage("alice")?.keyPackage).toEqual(kp(2).keyPackage);
        expect(s.claimKeyPackage("alice")).toBeUndefined();
        expect(s.purgeExpiredKeyPackages()).toBe(2);
        expect(s.purgeExpiredKeyPackages()).toBe(0);
      });

      it("keeps KeyPackages per device address: counted, claimed, listed and dropped by address or id", () => {
        const s = t.store.mls;
        expect(s.publishKeyPackages("alice", [kp(1)], kp(2))).toEqual({ oneTime: 1, lastResort: true });
        expect(s.publishKeyPackages("alice", [kp(3), kp(4)], kp(5), "alice/d1")).toEqual({ oneTime: 2, lastResort: true });
        // Each device has its own last-resort KeyPackage.
        expect(s.keyPackageCounts("alice")).toEqual({ oneTime: 1, lastResort: true });
        expect(s.claimKeyPackage("alice/d1")?.keyPackage).toEqual(kp(3).keyPackage);
        const listed = s.keyPackagesOfAddress("alice/d1");
        expect(listed.map((k) => k.keyPackage)).toEqual([kp(4).keyPackage, kp(5).keyPackage]);
        s.dropKeyPackagesById([listed[0]!.id]);
        s.dropKeyPackagesById([]);
        expect(s.keyPackageCounts("alice/d1")).toEqual({ oneTime: 0, lastResort: true });
        expect(s.claimKeyPackage("alice/d1")).toEqual({ keyPackage: kp(5).keyPackage, lastResort: true });
        // The primary's are untouched.
        expect(s.claimKeyPackage("alice")).toEqual({ keyPackage: kp(1).keyPackage, lastResort: false });
        expect(s.keyPackagesOfAddress("carol")).toEqual([]);
      });

      it("a released name loses its KeyPackages (they name the old key), its devices' too", () => {
        t.store.bindUser(user("alice"));
        t.store.mls.publishKeyPackages("alice", [kp(1)], kp(2));
        t.store.mls.publishKeyPackages("alice", [kp(3)], kp(4), "alice/d1");
        t.store.mls.publishKeyPackages("bob", [kp(5)], undefined);
        expect(t.store.releaseUser("alice")).toBe(true);
        expect(t.store.mls.claimKeyPackage("alice")).toBeUndefined();
        expect(t.store.mls.claimKeyPackage("alice/d1")).toBeUndefined();
        expect(t.store.mls.keyPackageCounts("bob")).toEqual({ oneTime: 1, lastResort: false });
      });
    });

    describe("groups and commits", () => {
      it("the first group of a conversation wins; a group id is registered once", () => {
        const s = t.store.mls;
        expect(s.createGroup(group(1, "#ops"))).toBe("created");
        expect(s.createGroup(group(1, "#other"))).toBe("group-exists");
        expect(s.createGroup(group(1, "#ops"))).toBe("group-exists");
        expect(s.createGroup(group(2, "#ops"))).toBe("conversation-taken");
        expect(s.groupOfConversation("#ops")?.groupId).toEqual(gid(1));
        expect(s.groupOfConversation("#other")).toBeUndefined();
        expect(s.group(gid(1))).toEqual(group(1, "#ops"));
        expect(s.group(gid(2))).toBeUndefined();
        expect(s.groupsCreatedBy("alice")).toBe(1);
        expect(s.groupsCreatedBy("bob")).toBe(0);
        s.setGroupInfo(gid(1), Buffer.from("newer"), 3);
        expect(s.group(gid(1))).toMatchObject({ groupInfo: Buffer.from("newer"), groupInfoEpoch: 3, epoch: 0 });
      });

      it("replaces a GroupInfo only while the group is at its epoch (a publish checked before a commit moved it on, §8.2)", () => {
        const s = t.store.mls;
        s.createGroup(group(1, "#ops"));
        expect(s.replaceGroupInfo(gid(1), Buffer.from("gi@0 again"), 0)).toBe(true);
        expect(s.group(gid(1))).toMatchObject({ groupInfo: Buffer.from("gi@0 again"), groupInfoEpoch: 0 });
        expect(s.acceptCommit(gid(1), 0, "alice", Buffer.from("c0"), Buffer.from("gi@1")).kind).toBe("accepted");
        // The publish for epoch 0 lands after the commit: the newer GroupInfo stays.
        expect(s.replaceGroupInfo(gid(1), Buffer.from("gi@0 late"), 0)).toBe(false);
        expect(s.group(gid(1))).toMatchObject({ groupInfo: Buffer.from("gi@1"), groupInfoEpoch: 1, epoch: 1 });
        expect(s.replaceGroupInfo(gid(9), Buffer.from("none"), 0)).toBe(false);
      });

      it("accepts the first commit for the current epoch only, from members by the hint, with its GroupInfo, and lists commits in order", () => {
        const s = t.store.mls;
        s.createGroup(group(1, "#ops"));
        expect(s.groupMembers(gid(1))).toEqual(["alice"]);
        expect(s.acceptCommit(gid(9), 0, "alice", Buffer.from("c"))).toEqual({ kind: "unknown-group" });
        expect(s.acceptCommit(gid(1), 0, "mallory", Buffer.from("m"))).toEqual({ kind: "not-a-member" });
        expect(s.acceptCommit(gid(1), 1, "alice", Buffer.from("c"))).toEqual({ kind: "future-epoch", current: 0 });
        const hint = { external: false, added: ["bob", "carol"], removed: [] };
        expect(s.acceptCommit(gid(1), 0, "alice", Buffer.from("a0"), Buffer.from("gi-a@1"), hint)).toEqual({ kind: "accepted", epoch: 0 });
        expect(s.groupMembers(gid(1))).toEqual(["alice", "bob", "carol"]);
        expect(s.acceptCommit(gid(1), 0, "carol", Buffer.from("c0"), Buffer.from("gi-c@1"))).toEqual({ kind: "epoch-taken", current: 1, winner: "alice" });
        // The same bytes from the same sender again: a duplicate, not a second commit.
        expect(s.acceptCommit(gid(1), 0, "alice", Buffer.from("a0"))).toEqual({ kind: "duplicate", epoch: 0 });
        expect(s.acceptCommit(gid(1), 0, "alice", Buffer.from("other"))).toEqual({ kind: "epoch-taken", current: 1, winner: "alice" });
        expect(s.group(gid(1))).toMatchObject({ epoch: 1, groupInfo: Buffer.from("gi-a@1"), groupInfoEpoch: 1 });
        expect(s.commitSender(gid(1), 0)).toBe("alice");
        expect(s.commitSender(gid(1), 1)).toBeUndefined();
        expect(s.acceptCommit(gid(1), 1, "carol", Buffer.from("c1"), undefined, { external: false, added: [], removed: ["bob"] })).toEqual({ kind: "accepted", epoch: 1 });
        // Without a GroupInfo the group keeps the older one (its epoch says so).
        expect(s.group(gid(1))).toMatchObject({ epoch: 2, groupInfoEpoch: 1 });
        expect(s.groupMembers(gid(1))).toEqual(["alice", "carol"]);
        expect(s.isGroupMember(gid(1), "bob")).toBe(false);
        expect(s.acceptCommit(gid(1), 2, "bob", Buffer.from("b2"))).toEqual({ kind: "not-a-member" });
        // An external commit needs no membership and makes its sender a member.
        expect(s.acceptCommit(gid(1), 2, "dave", Buffer.from("d2"), undefined, { external: true, added: [], removed: [] })).toEqual({ kind: "accepted", epoch: 2 });
        expect(s.isGroupMember(gid(1), "dave")).toBe(true);
        // An external commit that lost its epoch: who won is told only to a member by the hint (PROTOCOL.md §8.2).
        expect(s.acceptCommit(gid(1), 2, "erin", Buffer.from("e2"), undefined, { external: true, added: [], removed: [] })).toEqual({ kind: "epoch-taken", current: 3, winner: undefined });
        expect(s.acceptCommit(gid(1), 1, "carol", Buffer.from("c1'"), undefined, { external: true, added: [], removed: [] })).toEqual({ kind: "epoch-taken", current: 3, winner: "carol" });
        expect(s.isGroupMember(gid(1), "erin")).toBe(false);
        expect(s.commitsFrom(gid(1), 0, 10)).toEqual([
          { epoch: 0, sender: "alice", commit: Buffer.from("a0") }, { epoch: 1, sender: "carol", commit: Buffer.from("c1") }, { epoch: 2, sender: "dave", commit: Buffer.from("d2") },
        ]);
        expect(s.commitsFrom(gid(1), 1, 1).map((c) => c.epoch)).toEqual([1]);
        expect(s.commitsFrom(gid(9), 0, 10)).toEqual([]);
      });

      it("sorts members and rooms by their bytes (upper case before '_' before lower case)", () => {
        const s = t.store.mls;
        s.createGroup(group(1, "#b", "alice"));
        s.createGroup(group(2, "#B", "alice"));
        s.createGroup(group(3, "#_", "alice"));
        expect(s.acceptCommit(gid(1), 0, "alice", Buffer.from("c"), undefined, { external: false, added: ["Zed", "_x", "bob"], removed: [] }).kind).toBe("accepted");
        expect(s.groupMembers(gid(1))).toEqual(["Zed", "_x", "alice", "bob"]);
        // Most members first (#b: 4), then by bytes.
        expect(s.roomSummaries(10).map((r) => r.room)).toEqual(["#b", "#B", "#_"]);
        expect(s.roomsOfMember("alice", 10).map((r) => r.room)).toEqual(["#B", "#_", "#b"]);
        expect(s.roomsOfMember("alice", 10)[2]!.members).toEqual(["Zed", "_x", "alice", "bob"]);
      });

      it("a released name is no member of any group by the relay's record", () => {
        t.store.bindUser(user("bob"));
        t.store.mls.createGroup(group(1, "#ops"));
        t.store.mls.acceptCommit(gid(1), 0, "alice", Buffer.from("c0"), undefined, { external: false, added: ["bob"], removed: [] });
        expect(t.store.releaseUser("bob")).toBe(true);
        expect(t.store.mls.groupMembers(gid(1))).toEqual(["alice"]);
        expect(t.store.mls.acceptCommit(gid(1), 1, "bob", Buffer.from("b1"))).toEqual({ kind: "not-a-member" });
      });

      it("answers FetchCommits by count and bytes, at least one, and says whether more follow (commitPage)", () => {
        const s = t.store.mls;
        s.createGroup(group(1, "#ops"));
        const sizes = [10, 20, 30, 100, 5, 5];
        const senders = ["alice", "bob", "alice", "bob", "alice", "alice"];
        for (let e = 0; e < sizes.length; e++) {
          const hint = e === 0 ? { external: false, added: ["bob"], removed: [] } : undefined;
          expect(s.acceptCommit(gid(1), e, senders[e]!, Buffer.alloc(sizes[e]!, e), undefined, hint).kind).toBe("accepted");
        }
        // bob's oldest goes: a hole at epoch 1 (kept: 0, 2, 3, 4, 5 of 10, 30, 100, 5, 5 bytes).
        expect(s.trimCommitsOf("bob", 1, 1_000_000)).toBe(1);
        const page = (from: number, count: number, bytes: number) => {
          const p = s.commitPage(gid(1), from, count, bytes);
          return [p.commits.map((c) => c.epoch), p.more];
        };
        expect(page(0, 64, 1000)).toEqual([[0, 2, 3, 4, 5], false]);
        expect(page(0, 5, 1000)).toEqual([[0, 2, 3, 4, 5], false]);
        expect(page(0, 2, 1000)).toEqual([[0, 2], true]);
        expect(page(0, 64, 40)).toEqual([[0, 2], true]);
        expect(page(0, 64, 39)).toEqual([[0], true]);
        // The first whatever its size.
        expect(page(3, 64, 50)).toEqual([[3], true]);
        expect(page(0, 64, 0)).toEqual([[0], true]);
        expect(page(4, 64, 50)).toEqual([[4, 5], false]);
        expect(page(1, 64, 1000)).toEqual([[2, 3, 4, 5], false]);
        expect(page(5, 64, 1000)).toEqual([[5], false]);
        expect(page(6, 64, 1000)).toEqual([[], false]);
        expect(s.commitPage(gid(9), 0, 64, 1000)).toEqual({ commits: [], more: false });
        // The same records as commitsFrom's, and the same answers as a budget applied to them.
        expect(s.commitPage(gid(1), 0, 64, 1000).commits).toEqual(s.commitsFrom(gid(1), 0, 64));
        for (const from of [0, 1, 2, 3, 4, 5]) {
          for (const count of [1, 2, 3, 64]) {
            for (const bytes of [0, 9, 10, 40, 45, 135, 1000]) {
              const all = s.commitsFrom(gid(1), from, count + 1);
              const want = [];
              let total = 0;
              for (const c of all.slice(0, count)) {
                if (want.length > 0 && total + c.commit.length > bytes) break;
                total += c.commit.length;
                want.push(c);
              }
              expect(s.commitPage(gid(1), from, count, bytes), `from ${from} count ${count} bytes ${bytes}`).toEqual({ commits: want, more: want.length < all.length });
            }
          }
        }
      });

      it(`keeps the last ${COMMITS_KEPT_PER_GROUP} commits of a group`, () => {
        const s = t.store.mls;
        s.createGroup(group(1, "#ops"));
        for (let e = 0; e < COMMITS_KEPT_PER_GROUP + 5; e++) expect(s.acceptCommit(gid(1), e, "alice", Buffer.from([e & 0xff])).kind).toBe("accepted");
        const kept = s.commitsFrom(gid(1), 0, COMMITS_KEPT_PER_GROUP + 10);
        expect(kept).toHaveLength(COMMITS_KEPT_PER_GROUP);
        expect(kept[0]!.epoch).toBe(5);
        // A commit for a dropped epoch is still refused (the group is past it).
        expect(s.acceptCommit(gid(1), 0, "alice", Buffer.from("late"))).toEqual({ kind: "epoch-taken", current: COMMITS_KEPT_PER_GROUP + 5, winner: undefined });
      });

      it("keeps a sender's commits within the per-user bound, dropping that sender's oldest (PROTOCOL.md §8.2)", () => {
        const s = t.store.mls;
        s.createGroup(group(1, "#ops"));
        s.createGroup(group(2, "#dev"));
        const hint = { external: false, added: ["bob"], removed: [] };
        // alice: 3 commits of 100 bytes in #ops, then 2 in #dev; bob: one in #ops.
        for (let e = 0; e < 3; e++) {
          t.now += 1;
          expect(s.acceptCommit(gid(1), e, "alice", Buffer.alloc(100, e), undefined, e === 0 ? hint : undefined).kind).toBe("accepted");
        }
        t.now += 1;
        expect(s.acceptCommit(gid(1), 3, "bob", Buffer.alloc(100, 9)).kind).toBe("accepted");
        for (let e = 0; e < 2; e++) {
          t.now += 1;
          expect(s.acceptCommit(gid(2), e, "alice", Buffer.alloc(100, 10 + e)).kind).toBe("accepted");
        }
        expect(s.trimCommitsOf("alice", 10, 10_000)).toBe(0);
        // By bytes: room for 3 of alice's (300 bytes): her two oldest go, bob's stays.
        expect(s.trimCommitsOf("alice", 10, 300)).toBe(2);
        expect(s.commitsFrom(gid(1), 0, 10).map((c) => [c.epoch, c.sender])).toEqual([[2, "alice"], [3, "bob"]]);
        // By count: one left, her newest.
        expect(s.trimCommitsOf("alice", 1, 10_000)).toBe(2);
        expect(s.commitsFrom(gid(1), 0, 10).map((c) => c.sender)).toEqual(["bob"]);
        expect(s.commitsFrom(gid(2), 0, 10).map((c) => c.epoch)).toEqual([1]);
        expect(s.trimCommitsOf("bob", 1, 100)).toBe(0);
        // The usage follows every delete (the purge's too): the next commits are counted from what is kept.
        t.now += 1;
        expect(s.acceptCommit(gid(2), 2, "alice", Buffer.alloc(100, 12)).kind).toBe("accepted");
        expect(s.trimCommitsOf("alice", 2, 200)).toBe(0);
        expect(s.trimCommitsOf("alice", 1, 200)).toBe(1);
      });

      it("trims an accepted commit's sender to the bound in its transaction, never that commit, and a refused one trims nothing (PROTOCOL.md §8.2)", () => {
        const s = t.store.mls;
        s.createGroup(group(1, "#ops"));
        s.createGroup(group(2, "#dev"));
        const bound = { maxCommits: 2, maxBytes: 10_000 };
        // One clock reading for every commit: the trim cannot tell the new commit by its time.
        expect(s.acceptCommit(gid(1), 0, "alice", Buffer.alloc(100, 0), undefined, { external: false, added: ["bob"], removed: [] }, undefined, bound).kind).toBe("accepted");
        expect(s.acceptCommit(gid(1), 1, "alice", Buffer.alloc(100, 1), undefined, undefined, undefined, bound).kind).toBe("accepted");
        expect(s.acceptCommit(gid(2), 0, "alice", Buffer.alloc(100, 2), undefined, undefined, undefined, bound).kind).toBe("accepted");
        const kept = () => [...s.commitsFrom(gid(1), 0, 10), ...s.commitsFrom(gid(2), 0, 10)].map((c) => c.commit[0]);
        expect(kept()).toEqual([1, 2]);
        // Refused commits (a taken epoch, a non-member) trim nothing, whatever the bound.
        const tight = { maxCommits: 0, maxBytes: 0 };
        expect(s.acceptCommit(gid(1), 0, "alice", Buffer.alloc(100, 9), undefined, undefined, undefined, tight).kind).toBe("epoch-taken");
        expect(s.acceptCommit(gid(2), 1, "carol", Buffer.alloc(100, 9), undefined, undefined, undefined, tight).kind).toBe("not-a-member");
        expect(kept()).toEqual([1, 2]);
        // A bound smaller than the commit itself keeps the commit (it is the newest), and drops the rest.
        expect(s.acceptCommit(gid(2), 1, "alice", Buffer.alloc(100, 3), undefined, undefined, undefined, tight).kind).toBe("accepted");
        expect(kept()).toEqual([3]);
        // bob's kept commits are not alice's to trim.
        expect(s.acceptCommit(gid(1), 2, "bob", Buffer.alloc(100, 4), undefined, undefined, undefined, tight).kind).toBe("accepted");
        expect(kept()).toEqual([4, 3]);
      });

      it("records who made each group's current epoch, even once that commit is trimmed (PROTOCOL.md §8.2)", () => {
        const s = t.store.mls;
        s.createGroup(group(1, "#ops", "mallory"));
        expect(s.epochCommitter(gid(1))).toBeUndefined();
        expect(s.epochCommitter(gid(9))).toBeUndefined();
        expect(s.acceptCommit(gid(1), 0, "mallory", Buffer.from("m0"), undefined, { external: false, added: ["alice", "bob"], removed: [] }).kind).toBe("accepted");
        expect(s.epochCommitter(gid(1))).toBe("mallory");
        expect(s.acceptCommit(gid(1), 1, "alice", Buffer.from("a1"), undefined, { external: false, added: [], removed: ["mallory"] }).kind).toBe("accepted");
        expect(s.epochCommitter(gid(1))).toBe("alice");
        // alice's commit goes by the per-user bound: she still made epoch 2.
        expect(s.trimCommitsOf("alice", 0, 0)).toBe(1);
        expect(s.commitsFrom(gid(1), 1, 10)).toEqual([]);
        expect(s.epochCommitter(gid(1))).toBe("alice");
        // A late commit for epoch 1 is told who won it (bob is a member), from the record.
        expect(s.acceptCommit(gid(1), 1, "bob", Buffer.from("b1"))).toEqual({ kind: "epoch-taken", current: 2, winner: "alice" });
        // A re-created room's group starts with its creator's epoch.
        expect(s.replaceGroup(gid(1), group(2, "#ops", "alice", 5))).toBe("created");
        expect(s.epochCommitter(gid(2))).toBeUndefined();
      });

      it("the retention purge drops commits past it but each group's newest, and every commit of a group nobody is in (PROTOCOL.md §8.2)", () => {
        const s = t.store.mls;
        s.createGroup(group(1, "#ops"));
        s.createGroup(group(2, "#dev"));
        for (let e = 0; e < 3; e++) expect(s.acceptCommit(gid(1), e, "alice", Buffer.alloc(50, e)).kind).toBe("accepted");
        expect(s.acceptCommit(gid(2), 0, "alice", Buffer.alloc(50, 7)).kind).toBe("accepted");
        t.now += 1000;
        expect(s.acceptCommit(gid(2), 1, "alice", Buffer.alloc(50, 8)).kind).toBe("accepted");
        // Nothing is older than the cutoff: nothing goes.
        expect(s.purgeCommits(t.now - 2000)).toBe(0);
        // Past the cutoff: #ops keeps its newest (epoch 2), #dev its epoch 1 (newer than the cutoff).
        expect(s.purgeCommits(t.now - 500)).toBe(3);
        expect(s.commitsFrom(gid(1), 0, 10).map((c) => c.epoch)).toEqual([2]);
        expect(s.commitsFrom(gid(2), 0, 10).map((c) => c.epoch)).toEqual([1]);
        expect(s.commitSender(gid(1), 2)).toBe("alice");
        // A group nobody is a member of by the hint: its commits go, however new.
        expect(s.acceptCommit(gid(2), 2, "alice", Buffer.alloc(50, 9), undefined, { external: false, added: [], removed: ["alice"] }).kind).toBe("accepted");
        expect(s.purgeCommits(0)).toBe(2);
        expect(s.commitsFrom(gid(2), 0, 10)).toEqual([]);
        expect(s.commitsFrom(gid(1), 0, 10).map((c) => c.epoch)).toEqual([2]);
      });
    });

    describe("a commit's deliveries", () => {
      it("are made from the members before the commit and stored with it; a refused commit stores none", () => {
        const s = t.store.mls;
        expect(s.createGroup(group(1, "#g1"))).toBe("created");
        s.acceptCommit(gid(1), 0, "alice", Buffer.from("c0"), undefined, { external: false, added: ["bob", "carol"], removed: [] });
        let seen: readonly string[] = [];
        const out = s.acceptCommit(gid(1), 1, "alice", Buffer.from("c1"), undefined, { external: false, added: [], removed: ["carol"] }, (before) => {
          seen = before;
          return [delivery(before.filter((u) => u !== "alice"), 1)];
        });
        expect(seen).toEqual(["alice", "bob", "carol"]);
        expect(out).toMatchObject({ kind: "accepted", epoch: 1 });
        expect(out.kind === "accepted" && out.queued?.map((q) => q.recipients)).toEqual([["bob", "carol"]]);
        expect(t.store.queueDepth("carol")).toBe(1);
        expect(t.store.fetchQueue("carol", 0, 10, 1 << 20).map((i) => [i.envelope.toString(), i.payload])).toEqual([["c1", "mls"]]);
        // Refused (the epoch is taken): the deliveries function is not even asked.
        const refused = s.acceptCommit(gid(1), 1, "bob", Buffer.from("b1"), undefined, undefined, () => {
          throw new Error("asked for the deliveries of a refused commit");
        });
        expect(refused).toEqual({ kind: "epoch-taken", current: 2, winner: "alice" });
        // The identical resend by its sender: a duplicate, nothing stored again.
        expect(s.acceptCommit(gid(1), 1, "alice", Buffer.from("c1"), undefined, undefined, () => [delivery(["bob", "carol"], 1)])).toEqual({ kind: "duplicate", epoch: 1 });
        expect([t.store.queueDepth("bob"), t.store.queueDepth("carol")]).toEqual([1, 1]);
      });

      it("roll back with the commit when storing them fails: the epoch stays free", () => {
        const s = t.store.mls;
        expect(s.createGroup(group(1, "#g1"))).toBe("created");
        expect(() => s.acceptCommit(gid(1), 0, "alice", Buffer.from("c0"), Buffer.from("gi@1"), { external: false, added: ["bob"], removed: [] }, () => {
          // A delivery the queues cannot store (a NOT NULL column gets null): the transaction fails.
          return [{ ...delivery(["bob"], 1), conversationId: null as unknown as string }];
        })).toThrow();
        expect(s.group(gid(1))).toMatchObject({ epoch: 0, groupInfoEpoch: 0 });
        expect(s.groupMembers(gid(1))).toEqual(["alice"]);
        expect(s.commitsFrom(gid(1), 0, 10)).toEqual([]);
        expect(t.store.queueDepth("bob")).toBe(0);
        expect(s.acceptCommit(gid(1), 0, "alice", Buffer.from("c0"), undefined, undefined, () => [delivery(["bob"], 2)])).toMatchObject({ kind: "accepted" });
        expect(t.store.queueDepth("bob")).toBe(1);
      });
    });

    describe("rooms", () => {
      const room = (n: number, conversationId: string, creator: string) => group(n, conversationId, creator);

      it("lists rooms' groups with their member counts and a user's rooms with members; never DMs or the lobby", () => {
        const s = t.store.mls;
        expect(s.createGroup(room(1, "#ops", "alice"))).toBe("created");
        expect(s.createGroup(room(2, "dm:alice:bob", "alice"))).toBe("created");
        expect(s.createGroup(room(3, "lobby", "bob"))).toBe("created");
        expect(s.createGroup(room(4, "#dev", "carol"))).toBe("created");
        expect(s.acceptCommit(gid(1), 0, "alice", Buffer.from("c0"), undefined, { external: false, added: ["bob", "carol"], removed: [] })).toMatchObject({ kind: "accepted" });
        expect(s.roomSummaries(100)).toEqual([{ room: "#ops", memberCount: 3 }, { room: "#dev", memberCount: 1 }]);
        expect(s.roomSummaries(1)).toEqual([{ room: "#ops", memberCount: 3 }]);
        expect(s.roomsOfMember("carol", 100)).toEqual([{ room: "#dev", members: ["carol"] }, { room: "#ops", members: ["alice", "bob", "carol"] }]);
        expect(s.roomsOfMember("carol", 1)).toEqual([{ room: "#dev", members: ["carol"] }]);
        expect(s.roomsOfMember("bob", 100)).toEqual([{ room: "#ops", members: ["alice", "bob", "carol"] }]);
        expect(s.roomsOfMember("dave", 100)).toEqual([]);
      });

      it("replaces a room's group in one transaction; the old one's record, members and commits are gone; a stale replacement is refused", () => {
        const s = t.store.mls;
        s.createGroup(room(1, "#ops", "alice"));
        s.acceptCommit(gid(1), 0, "alice", Buffer.from("c0"), undefined, { external: false, added: ["bob"], removed: [] });
        expect(s.replaceGroup(gid(1), room(5, "#ops", "alice"))).toBe("created");
        expect(s.group(gid(1))).toBeUndefined();
        expect(s.groupMembers(gid(1))).toEqual([]);
        expect(s.commitsFrom(gid(1), 0, 10)).toEqual([]);
        expect(s.groupOfConversation("#ops")).toMatchObject({ groupId: gid(5), creator: "alice", epoch: 0 });
        expect(s.groupMembers(gid(5))).toEqual(["alice"]);
        // Asked again from the old group (a race): refused, nothing changed.
        expect(s.replaceGroup(gid(1), room(6, "#ops", "alice"))).toBe("changed");
        expect(s.replaceGroup(gid(1), room(6, "#none", "alice"))).toBe("changed");
        // The new group's id already taken by another group: refused, the room's group kept with its members.
        s.createGroup(room(7, "#dev", "alice"));
        s.acceptCommit(gid(5), 0, "alice", Buffer.from("c0"), undefined, { external: false, added: ["carol"], removed: [] });
        expect(s.replaceGroup(gid(5), room(7, "#ops", "alice"))).toBe("group-exists");
        expect(s.groupOfConversation("#ops")!.groupId).toEqual(gid(5));
        expect(s.groupMembers(gid(5))).toEqual(["alice", "carol"]);
        expect(s.commitsFrom(gid(5), 0, 10).map((c) => c.epoch)).toEqual([0]);
        expect(s.roomSummaries(100)).toEqual([{ room: "#ops", memberCount: 2 }, { room: "#dev", memberCount: 1 }]);
      });

      it("lists the biggest rooms first, then by name, and at most perCreator rooms of one creator (its biggest)", () => {
        // rt2 review: one creator's rooms named to sort first must not fill the list.
        const s = t.store.mls;
        for (let i = 0; i < 5; i++) s.createGroup(room(10 + i, `#0${i}`, "squat"));
        s.createGroup(room(20, "#zz", "alice"));
        s.createGroup(room(21, "#ops", "carol"));
        s.createGroup(room(22, "#0big", "squat"));
        expect(s.acceptCommit(gid(21), 0, "carol", Buffer.from("c0"), undefined, { external: false, added: ["alice", "bob"], removed: [] }).kind).toBe("accepted");
        expect(s.acceptCommit(gid(22), 0, "squat", Buffer.from("c0"), undefined, { external: false, added: ["x1"], removed: [] }).kind).toBe("accepted");
        expect(s.roomSummaries(100, 2)).toEqual([
          { room: "#ops", memberCount: 3 }, { room: "#0big", memberCount: 2 }, { room: "#00", memberCount: 1 }, { room: "#zz", memberCount: 1 },
        ]);
        expect(s.roomSummaries(3, 2).map((r) => r.room)).toEqual(["#ops", "#0big", "#00"]);
        expect(s.roomSummaries(100).map((r) => r.room)).toEqual(["#ops", "#0big", "#00", "#01", "#02", "#03", "#04", "#zz"]);
      });
    });
  });
}
