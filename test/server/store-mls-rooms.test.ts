// The room parts of the MLS Delivery Service's store (src/server/store/mls.ts;
// PROTOCOL.md §8.2): every room's group with its member count (never DMs or the lobby),
// a user's rooms by the membership record, and a room's group replaced in one transaction (the old
// group's record, members and commits gone; a race with another replacement refused).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openStore, type RelayStore } from "../../src/server/store.js";

let dir: string;
let store: RelayStore;

const gid = (n: number) => Buffer.alloc(20, n);
const group = (n: number, conversationId: string, creator: string) =>
  ({ groupId: gid(n), conversationId, creator, epoch: 0, groupInfo: Buffer.alloc(10, n), groupInfoEpoch: 0 });

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "store-mls-rooms-test-"));
  store = openStore(join(dir, "relay.db"), { clock: () => 1_000_000 });
});

afterEach(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("rooms in the MLS store", () => {
  it("lists rooms' groups with their member counts and a user's rooms with members; never DMs or the lobby", () => {
    const s = store.mls;
    expect(s.createGroup(group(1, "#ops", "alice"))).toBe("created");
    expect(s.createGroup(group(2, "dm:alice:bob", "alice"))).toBe("created");
    expect(s.createGroup(group(3, "lobby", "bob"))).toBe("created");
    expect(s.createGroup(group(4, "#dev", "carol"))).toBe("created");
    expect(s.acceptCommit(gid(1), 0, "alice", Buffer.from("c0"), undefined, { external: false, added: ["bob", "carol"], removed: [] })).toMatchObject({ kind: "accepted" });
    expect(s.roomSummaries(100)).toEqual([{ room: "#dev", memberCount: 1 }, { room: "#ops", memberCount: 3 }]);
    expect(s.roomSummaries(1)).toEqual([{ room: "#dev", memberCount: 1 }]);
    expect(s.roomsOfMember("carol", 100)).toEqual([{ room: "#dev", members: ["carol"] }, { room: "#ops", members: ["alice", "bob", "carol"] }]);
    expect(s.roomsOfMember("bob", 100)).toEqual([{ room: "#ops", members: ["alice", "bob", "carol"] }]);
    expect(s.roomsOfMember("dave", 100)).toEqual([]);
  });

  it("replaces a room's group in one transaction; the old one's record, members and commits are gone; a stale replacement is refused", () => {
    const s = store.mls;
    s.createGroup(group(1, "#ops", "alice"));
    s.acceptCommit(gid(1), 0, "alice", Buffer.from("c0"), undefined, { external: false, added: ["bob"], removed: [] });
    expect(s.replaceGroup(gid(1), group(5, "#ops", "alice"))).toBe("created");
    expect(s.group(gid(1))).toBeUndefined();
    expect(s.groupMembers(gid(1))).toEqual([]);
    expect(s.commitsFrom(gid(1), 0, 10)).toEqual([]);
    expect(s.groupOfConversation("#ops")).toMatchObject({ groupId: gid(5), creator: "alice", epoch: 0 });
    expect(s.groupMembers(gid(5))).toEqual(["alice"]);
    // Asked again from the old group (a race): refused, nothing changed.
    expect(s.replaceGroup(gid(1), group(6, "#ops", "alice"))).toBe("changed");
    // The new group's id already taken by another group: refused.
    s.createGroup(group(7, "#dev", "alice"));
    expect(s.replaceGroup(gid(5), group(7, "#ops", "alice"))).toBe("group-exists");
    expect(s.groupOfConversation("#ops")!.groupId).toEqual(gid(5));
    expect(s.roomSummaries(100)).toEqual([{ room: "#dev", memberCount: 1 }, { room: "#ops", memberCount: 1 }]);
  });
});
