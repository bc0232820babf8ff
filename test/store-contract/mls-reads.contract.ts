// Reads of a group after each write that changes them (RelayStore.mls, PROTOCOL.md §8.2), as a
// contract both stores keep: every case reads the group's record, a member check and the member
// list first (so a store that keeps them in memory, as the embedded one does, has them kept),
// then writes, then reads again and must see the write. A stale member after a removal would be
// let send and commit; a new member would get no rows; a stale epoch would refuse the group's
// messages; a recreated room would still take the old group's traffic.
import { describe, expect, it } from "vitest";
import type { RelayStore } from "../../src/server/store.js";
import { storePerCase, user, type OpenContractStore } from "./mls.contract.js";

const gid = (n: number) => Buffer.alloc(20, n);
const group = (n: number, conversationId: string, creator = "alice", epoch = 0) => ({
  groupId: gid(n), conversationId, creator, epoch, groupInfo: Buffer.from(`gi${n}@${epoch}`), groupInfoEpoch: epoch,
});
const hint = (added: string[], removed: string[] = [], external = false) => ({ external, added, removed });

/** Reads everything the hot path reads of a group (and asks about `who`), as SendMls does. */
function warm(s: RelayStore["mls"], n: number, ...who: string[]): void {
  s.groupHead(gid(n));
  s.group(gid(n));
  for (const u of who) s.isGroupMember(gid(n), u);
  s.groupMembers(gid(n));
}

export function describeMlsReadsContract(name: string, open: OpenContractStore): void {
  describe(`MLS reads after writes: ${name}`, () => {
    const t = storePerCase(open);

    it("a commit's epoch, GroupInfo and hint are read back at once", () => {
      const s = t.store.mls;
      s.createGroup(group(1, "#ops"));
      warm(s, 1, "alice", "bob");
      expect(s.acceptCommit(gid(1), 0, "alice", Buffer.from("c0"), Buffer.from("gi@1"), hint(["bob", "carol"]))).toEqual({ kind: "accepted", epoch: 0 });
      expect(s.group(gid(1))).toMatchObject({ epoch: 1, groupInfo: Buffer.from("gi@1"), groupInfoEpoch: 1 });
      expect(s.isGroupMember(gid(1), "bob")).toBe(true);
      expect(s.groupMembers(gid(1))).toEqual(["alice", "bob", "carol"]);
      // Removed: no member any more, by every read, and may not commit.
      warm(s, 1, "carol");
      expect(s.acceptCommit(gid(1), 1, "alice", Buffer.from("c1"), undefined, hint([], ["carol"]))).toEqual({ kind: "accepted", epoch: 1 });
      expect(s.isGroupMember(gid(1), "carol")).toBe(false);
      expect(s.groupMembers(gid(1))).toEqual(["alice", "bob"]);
      expect(s.group(gid(1))).toMatchObject({ epoch: 2, groupInfoEpoch: 1 });
      expect(s.acceptCommit(gid(1), 2, "carol", Buffer.from("x2"))).toEqual({ kind: "not-a-member" });
      // An external join makes its sender a member.
      warm(s, 1, "dave");
      expect(s.acceptCommit(gid(1), 2, "dave", Buffer.from("d2"), undefined, hint([], [], true))).toEqual({ kind: "accepted", epoch: 2 });
      expect(s.isGroupMember(gid(1), "dave")).toBe(true);
      expect(s.groupMembers(gid(1))).toEqual(["alice", "bob", "dave"]);
      expect(s.group(gid(1))?.epoch).toBe(3);
    });

    it("a refused commit changes nothing that is read", () => {
      const s = t.store.mls;
      s.createGroup(group(1, "#ops"));
      s.acceptCommit(gid(1), 0, "alice", Buffer.from("c0"), undefined, hint(["bob"]));
      warm(s, 1, "bob");
      expect(s.acceptCommit(gid(1), 0, "bob", Buffer.from("b0"), Buffer.from("gi-b"), hint([], ["alice"]))).toMatchObject({ kind: "epoch-taken" });
      expect(s.acceptCommit(gid(1), 1, "mallory", Buffer.from("m1"), undefined, hint(["eve"]))).toEqual({ kind: "not-a-member" });
      expect(s.group(gid(1))).toMatchObject({ epoch: 1, groupInfoEpoch: 0 });
      expect(s.groupMembers(gid(1))).toEqual(["alice", "bob"]);
    });

    it("a commit whose deliveries fail to store leaves every read as it was", () => {
      const s = t.store.mls;
      s.createGroup(group(1, "#g1"));
      warm(s, 1, "alice", "bob");
      expect(() => s.acceptCommit(gid(1), 0, "alice", Buffer.from("c0"), Buffer.from("gi@1"), hint(["bob"]), (before) => {
        // Read inside the commit's transaction, then fail it (a NOT NULL column gets null).
        expect(s.groupMembers(gid(1))).toEqual(before);
        return [{ sender: "alice", messageId: Buffer.alloc(16, 1), conversationId: null as unknown as string, envelope: Buffer.from("c"), payload: "mls", recipients: ["bob"] }];
      })).toThrow();
      expect(s.group(gid(1))).toMatchObject({ epoch: 0, groupInfo: Buffer.from("gi1@0"), groupInfoEpoch: 0 });
      expect(s.isGroupMember(gid(1), "bob")).toBe(false);
      expect(s.groupMembers(gid(1))).toEqual(["alice"]);
    });

    it("a published GroupInfo is read back at once", () => {
      const s = t.store.mls;
      s.createGroup(group(1, "#ops"));
      warm(s, 1, "alice");
      s.setGroupInfo(gid(1), Buffer.from("newer"), 4);
      expect(s.group(gid(1))).toMatchObject({ groupInfo: Buffer.from("newer"), groupInfoEpoch: 4, epoch: 0 });
    });

    it("the head a SendMls is checked against (groupHead) follows every write, as group() does", () => {
      const s = t.store.mls;
      const head = (n: number) => s.groupHead(gid(n));
      expect(head(1)).toBeUndefined();
      s.createGroup(group(1, "#ops"));
      expect(head(1)).toEqual({ conversationId: "#ops", epoch: 0 });
      warm(s, 1, "alice");
      expect(s.acceptCommit(gid(1), 0, "alice", Buffer.from("c0"), Buffer.from("gi@1"), hint(["bob"]))).toEqual({ kind: "accepted", epoch: 0 });
      expect(head(1)).toEqual({ conversationId: "#ops", epoch: 1 });
      warm(s, 1, "alice", "bob");
      expect(s.acceptCommit(gid(1), 1, "bob", Buffer.from("c1"))).toEqual({ kind: "accepted", epoch: 1 });
      expect(head(1)).toEqual({ conversationId: "#ops", epoch: 2 });
      warm(s, 1, "alice", "bob");
      expect(s.replaceGroup(gid(1), group(5, "#ops", "bob", 3))).toBe("created");
      expect(head(1)).toBeUndefined();
      expect(head(5)).toEqual({ conversationId: "#ops", epoch: s.group(gid(5))?.epoch });
    });

    it("a recreated room: the old group is gone by every read, the new one has only its creator", () => {
      const s = t.store.mls;
      s.createGroup(group(1, "#ops"));
      s.acceptCommit(gid(1), 0, "alice", Buffer.from("c0"), undefined, hint(["bob"]));
      warm(s, 1, "alice", "bob");
      expect(s.group(gid(5))).toBeUndefined();
      expect(s.isGroupMember(gid(5), "alice")).toBe(false);
      expect(s.replaceGroup(gid(1), group(5, "#ops", "bob", 3))).toBe("created");
      expect(s.group(gid(1))).toBeUndefined();
      expect(s.isGroupMember(gid(1), "alice")).toBe(false);
      expect(s.isGroupMember(gid(1), "bob")).toBe(false);
      expect(s.groupMembers(gid(1))).toEqual([]);
      expect(s.acceptCommit(gid(1), 1, "alice", Buffer.from("late"))).toEqual({ kind: "unknown-group" });
      expect(s.group(gid(5))).toEqual(group(5, "#ops", "bob", 3));
      expect(s.groupMembers(gid(5))).toEqual(["bob"]);
      expect(s.isGroupMember(gid(5), "alice")).toBe(false);
    });

    it("a group created after its id was asked about is read", () => {
      const s = t.store.mls;
      warm(s, 1, "alice");
      expect(s.createGroup(group(1, "#ops"))).toBe("created");
      expect(s.group(gid(1))).toEqual(group(1, "#ops"));
      expect(s.isGroupMember(gid(1), "alice")).toBe(true);
      expect(s.groupMembers(gid(1))).toEqual(["alice"]);
    });

    it("a released name is no member of any group by every read; the others keep theirs", () => {
      t.store.bindUser(user("bob"));
      const s = t.store.mls;
      s.createGroup(group(1, "#ops"));
      s.createGroup(group(2, "#dev", "carol"));
      s.acceptCommit(gid(1), 0, "alice", Buffer.from("c0"), undefined, hint(["bob"]));
      s.acceptCommit(gid(2), 0, "carol", Buffer.from("c0"), undefined, hint(["bob", "dave"]));
      warm(s, 1, "bob");
      warm(s, 2, "bob", "dave");
      expect(t.store.releaseUser("bob")).toBe(true);
      expect(s.isGroupMember(gid(1), "bob")).toBe(false);
      expect(s.isGroupMember(gid(2), "bob")).toBe(false);
      expect(s.groupMembers(gid(1))).toEqual(["alice"]);
      expect(s.groupMembers(gid(2))).toEqual(["carol", "dave"]);
      expect(s.isGroupMember(gid(2), "dave")).toBe(true);
      expect(s.acceptCommit(gid(1), 1, "bob", Buffer.from("b1"))).toEqual({ kind: "not-a-member" });
      expect(s.group(gid(2))?.epoch).toBe(1);
    });

    it("what a read returns is the caller's: changing it changes no later read", () => {
      const s = t.store.mls;
      s.createGroup(group(1, "#ops"));
      const g = s.group(gid(1))!;
      g.groupInfo.fill(0);
      g.groupId.fill(0);
      s.groupMembers(gid(1)).push("mallory");
      expect(s.group(gid(1))).toEqual(group(1, "#ops"));
      expect(s.groupMembers(gid(1))).toEqual(["alice"]);
      expect(s.isGroupMember(gid(1), "mallory")).toBe(false);
    });
  });
}
