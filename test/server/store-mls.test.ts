// The MLS Delivery Service's store part (src/server/store/mls.ts) directly: one-time KeyPackages
// handed out once, the last-resort one kept and replaced, expiry, the first commit of an epoch
// winning by the database's key, GroupInfo with its commit in one transaction, and an existing
// database (made before these tables) gaining them without losing anything.
import { mkdtempSync, rmSync } from "node:fs";
import { DatabaseSync } from "node:sqlite";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openStore, type RelayStore } from "../../src/server/store.js";
import { COMMITS_KEPT_PER_GROUP } from "../../src/server/store/mls.js";

let dir: string;
let store: RelayStore;
let now = 1_000_000;

const kp = (n: number, notAfterMs = 10_000_000) => ({ ref: Buffer.alloc(32, n), keyPackage: Buffer.alloc(100, n), notAfterMs });
const gid = (n: number) => Buffer.alloc(20, n);

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "store-mls-test-"));
  now = 1_000_000;
  store = openStore(join(dir, "relay.db"), { clock: () => now });
});

afterEach(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("KeyPackages", () => {
  it("hands out each one-time KeyPackage once, oldest first, then the last-resort one without deleting it", () => {
    const s = store.mls;
    expect(s.publishKeyPackages("alice", [kp(1), kp(2), kp(1)], kp(9))).toEqual({ oneTime: 2, lastResort: true });
    expect(s.claimKeyPackage("alice")).toEqual({ keyPackage: kp(1).keyPackage, lastResort: false });
    expect(s.claimKeyPackage("alice")).toEqual({ keyPackage: kp(2).keyPackage, lastResort: false });
    expect(s.claimKeyPackage("alice")).toEqual({ keyPackage: kp(9).keyPackage, lastResort: true });
    expect(s.claimKeyPackage("alice")).toEqual({ keyPackage: kp(9).keyPackage, lastResort: true });
    expect(s.claimKeyPackage("bob")).toBeUndefined();
    // A new last-resort KeyPackage replaces the old one (one per user, by a unique index).
    expect(s.publishKeyPackages("alice", [], kp(8))).toEqual({ oneTime: 0, lastResort: true });
    expect(s.claimKeyPackage("alice")?.keyPackage).toEqual(kp(8).keyPackage);
  });

  it("never hands out an expired KeyPackage, and purges them", () => {
    const s = store.mls;
    s.publishKeyPackages("alice", [kp(1, now + 10), kp(2, now + 1000)], kp(9, now + 10));
    now += 100;
    expect(s.keyPackageCounts("alice")).toEqual({ oneTime: 1, lastResort: false });
    expect(s.claimKeyPackage("alice")?.keyPackage).toEqual(kp(2).keyPackage);
    expect(s.claimKeyPackage("alice")).toBeUndefined();
    expect(s.purgeExpiredKeyPackages()).toBe(2);
  });

  it("a released name loses its KeyPackages (they name the old key)", () => {
    store.bindUser({ username: "alice", sigSpki: Buffer.alloc(44, 1), encSpki: Buffer.alloc(44, 2), encKeySig: Buffer.alloc(64), sigFpr: Buffer.alloc(32, 3), encFpr: Buffer.alloc(32, 4) });
    store.mls.publishKeyPackages("alice", [kp(1)], kp(2));
    expect(store.releaseUser("alice")).toBe(true);
    expect(store.mls.claimKeyPackage("alice")).toBeUndefined();
  });
});

describe("groups and commits", () => {
  const group = (n: number, conversationId: string, epoch = 0) => ({
    groupId: gid(n), conversationId, creator: "alice", epoch, groupInfo: Buffer.from(`gi${n}@${epoch}`), groupInfoEpoch: epoch,
  });

  it("the first group of a conversation wins; a group id is registered once", () => {
    const s = store.mls;
    expect(s.createGroup(group(1, "#ops"))).toBe("created");
    expect(s.createGroup(group(1, "#other"))).toBe("group-exists");
    expect(s.createGroup(group(2, "#ops"))).toBe("conversation-taken");
    expect(s.groupOfConversation("#ops")?.groupId).toEqual(gid(1));
    expect(s.groupsCreatedBy("alice")).toBe(1);
  });

  it("accepts the first commit for the current epoch only, from members by the hint, with its GroupInfo, and lists commits in order", () => {
    const s = store.mls;
    s.createGroup(group(1, "#ops"));
    expect(s.groupMembers(gid(1))).toEqual(["alice"]);
    expect(s.acceptCommit(gid(9), 0, "alice", Buffer.from("c"))).toEqual({ kind: "unknown-group" });
    expect(s.acceptCommit(gid(1), 0, "mallory", Buffer.from("m"))).toEqual({ kind: "not-a-member" });
    expect(s.acceptCommit(gid(1), 1, "alice", Buffer.from("c"))).toEqual({ kind: "future-epoch", current: 0 });
    const hint = { external: false, added: ["bob", "carol"], removed: [] };
    expect(s.acceptCommit(gid(1), 0, "alice", Buffer.from("a0"), Buffer.from("gi-a@1"), hint)).toEqual({ kind: "accepted", epoch: 0 });
    expect(s.groupMembers(gid(1))).toEqual(["alice", "bob", "carol"]);
    expect(s.acceptCommit(gid(1), 0, "carol", Buffer.from("c0"), Buffer.from("gi-c@1"))).toEqual({ kind: "epoch-taken", current: 1, winner: "alice" });
    expect(s.group(gid(1))).toMatchObject({ epoch: 1, groupInfo: Buffer.from("gi-a@1"), groupInfoEpoch: 1 });
    expect(s.acceptCommit(gid(1), 1, "carol", Buffer.from("c1"), undefined, { external: false, added: [], removed: ["bob"] })).toEqual({ kind: "accepted", epoch: 1 });
    // Without a GroupInfo the group keeps the older one (its epoch says so).
    expect(s.group(gid(1))).toMatchObject({ epoch: 2, groupInfoEpoch: 1 });
    expect(s.groupMembers(gid(1))).toEqual(["alice", "carol"]);
    expect(s.acceptCommit(gid(1), 2, "bob", Buffer.from("b2"))).toEqual({ kind: "not-a-member" });
    // An external commit needs no membership and makes its sender a member.
    expect(s.acceptCommit(gid(1), 2, "dave", Buffer.from("d2"), undefined, { external: true, added: [], removed: [] })).toEqual({ kind: "accepted", epoch: 2 });
    expect(s.isGroupMember(gid(1), "dave")).toBe(true);
    expect(s.commitsFrom(gid(1), 0, 10)).toEqual([
      { epoch: 0, sender: "alice", commit: Buffer.from("a0") }, { epoch: 1, sender: "carol", commit: Buffer.from("c1") }, { epoch: 2, sender: "dave", commit: Buffer.from("d2") },
    ]);
    expect(s.commitsFrom(gid(1), 1, 1).map((c) => c.epoch)).toEqual([1]);
  });

  it("the database itself refuses a second commit for one epoch", () => {
    store.mls.createGroup(group(1, "#ops"));
    expect(store.mls.acceptCommit(gid(1), 0, "alice", Buffer.from("a0")).kind).toBe("accepted");
    const db = new DatabaseSync(join(dir, "relay.db"));
    try {
      expect(() => db.prepare("INSERT INTO mls_commits (group_id, epoch, sender, commit_msg, accepted_at_ms) VALUES (?, 0, 'x', x'00', 0)").run(gid(1)))
        .toThrow(/UNIQUE|PRIMARY KEY/);
    } finally {
      db.close();
    }
  });

  it(`keeps the last ${COMMITS_KEPT_PER_GROUP} commits of a group`, () => {
    const s = store.mls;
    s.createGroup(group(1, "#ops"));
    for (let e = 0; e < COMMITS_KEPT_PER_GROUP + 5; e++) expect(s.acceptCommit(gid(1), e, "alice", Buffer.from([e & 0xff])).kind).toBe("accepted");
    const kept = s.commitsFrom(gid(1), 0, COMMITS_KEPT_PER_GROUP + 10);
    expect(kept).toHaveLength(COMMITS_KEPT_PER_GROUP);
    expect(kept[0]!.epoch).toBe(5);
    // A commit for a dropped epoch is still refused (the group is past it).
    expect(s.acceptCommit(gid(1), 0, "alice", Buffer.from("late"))).toEqual({ kind: "epoch-taken", current: COMMITS_KEPT_PER_GROUP + 5, winner: undefined });
  });
});

describe("an existing database", () => {
  it("made before the MLS tables opens with them added and its data intact", () => {
    store.close();
    const path = join(dir, "old.db");
    // The v1 layout as it was: open once, then drop the MLS tables to stand for an old file.
    const old = openStore(path, { clock: () => now });
    old.bindUser({ username: "alice", sigSpki: Buffer.alloc(44, 1), encSpki: Buffer.alloc(44, 2), encKeySig: Buffer.alloc(64), sigFpr: Buffer.alloc(32, 3), encFpr: Buffer.alloc(32, 4) });
    old.joinRoom("#ops", "alice");
    old.close();
    const raw = new DatabaseSync(path);
    raw.exec("DROP TABLE mls_key_packages; DROP TABLE mls_groups; DROP TABLE mls_group_members; DROP TABLE mls_commits;");
    expect(raw.prepare("SELECT COUNT(*) AS n FROM sqlite_master WHERE name LIKE 'mls_%'").get()).toEqual({ n: 0 });
    raw.close();

    store = openStore(path, { clock: () => now });
    expect(store.getUser("alice")?.username).toBe("alice");
    expect(store.roomMembers("#ops")).toEqual(["alice"]);
    expect(store.mls.publishKeyPackages("alice", [kp(1)], undefined)).toEqual({ oneTime: 1, lastResort: false });
  });
});
