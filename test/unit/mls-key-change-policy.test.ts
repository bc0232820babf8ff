// The key-change rule of each member's commit policy (policy.ts keyReplacementAllowed, PROTOCOL.md
// §6): a leaf of user U may be removed by a commit that puts in a leaf of U under ANOTHER identity
// key which the member's pin hook accepts now (the key the user decided on), and in no other case
// beyond the rules before it (a leave, a resync under the same key, a room's creator).
import { describe, expect, it } from "vitest";
import { judgeCommit, keyReplacementAllowed, linesOf } from "../../src/client/mls/policy.js";
import type { MembershipChange, MlsGroup, MlsMember } from "../../src/protocol/mls/index.js";
import { removalsAllowed } from "../../src/protocol/mls/creator.js";
import { parseConversationId } from "../../src/protocol/names.js";

function member(username: string, key: number, leafIndex: number): MlsMember {
  return { username, identitySpki: Buffer.alloc(44, key), identityFpr: Buffer.alloc(32, key), leafIndex, signatureKey: new Uint8Array(32).fill(leafIndex) };
}

function groupOf(id: string, members: readonly MlsMember[] = []): MlsGroup {
  const conversation = parseConversationId(id)!;
  return { conversation, members: () => [...members], removalsAllowed: (c: MembershipChange) => removalsAllowed(conversation, undefined, c) } as unknown as MlsGroup;
}

const alice = member("alice", 1, 0);
const oldCarol = member("carol", 2, 1);
const newCarol = member("carol", 3, 1);
const otherCarol = member("carol", 4, 1);
const bob = member("bob", 5, 2);
/** The pins after the user decided on newCarol's key: only that key (and the unchanged others) is accepted. */
const decided = (id: { username: string; identityFpr: Buffer }): boolean => id.username !== "carol" || id.identityFpr.equals(newCarol.identityFpr);
/** The pins while the change waits for a decision: nothing of carol's is accepted. */
const pending = (id: { username: string }): boolean => id.username !== "carol";

const change = (over: Partial<MembershipChange>): MembershipChange => ({ committer: alice, added: [], removed: [], left: [], external: false, ...over });

describe("a replaced key in each member's commit policy", () => {
  it("allows the old leaf out with the decided key in, by any member, in a room and a DM", () => {
    const c = change({ removed: [oldCarol], added: [newCarol] });
    expect(keyReplacementAllowed(c, oldCarol, decided)).toBe(true);
    expect(judgeCommit(groupOf("#ops"), c, { relaySender: "alice", trusts: decided })).toBeUndefined();
    expect(judgeCommit(groupOf("dm:alice:carol"), change({ committer: alice, removed: [oldCarol], added: [newCarol] }), { relaySender: "alice", trusts: decided })).toBeUndefined();
    // The new key's own external join replacing the old leaf (a resync under the decided key).
    const ext = change({ committer: newCarol, removed: [oldCarol], added: [], external: true });
    expect(judgeCommit(groupOf("#ops"), ext, { relaySender: "carol", trusts: decided })).toBeUndefined();
  });

  it("refuses it while the change is pending, for a key other than the decided one, or without the new leaf", () => {
    const c = change({ removed: [oldCarol], added: [newCarol] });
    expect(judgeCommit(groupOf("#ops"), c, { relaySender: "alice", trusts: pending })).toBe("policy");
    expect(judgeCommit(groupOf("#ops"), change({ removed: [oldCarol], added: [otherCarol] }), { relaySender: "alice", trusts: decided })).toBe("policy");
    expect(judgeCommit(groupOf("#ops"), change({ removed: [oldCarol] }), { relaySender: "alice", trusts: decided })).toBe("policy");
    // The same key again is no key change: a non-creator removing and re-adding carol stays refused.
    expect(keyReplacementAllowed(change({ removed: [newCarol], added: [newCarol] }), newCarol, decided)).toBe(false);
    // Another user's leaf does not ride along with carol's replacement.
    expect(judgeCommit(groupOf("#ops"), change({ removed: [oldCarol, bob], added: [newCarol] }), { relaySender: "alice", trusts: decided })).toBe("policy");
    // Without a pin hook nothing changes from before.
    expect(judgeCommit(groupOf("#ops"), c, { relaySender: "alice" })).toBe("policy");
    // The relay's sender must still be the committer.
    expect(judgeCommit(groupOf("#ops"), c, { relaySender: "bob", trusts: decided })).toBe("sender");
  });

  it("allows a stale leaf out when the decided key is a member already (it joined by external commit), not otherwise", () => {
    const joined = member("carol", 3, 3); // the new key's leaf, in since its external join
    const c = change({ committer: alice, removed: [oldCarol] });
    expect(judgeCommit(groupOf("dm:alice:carol", [alice, oldCarol, joined]), c, { relaySender: "alice", trusts: decided })).toBeUndefined();
    expect(judgeCommit(groupOf("dm:alice:carol", [alice, oldCarol, joined]), c, { relaySender: "alice", trusts: pending })).toBe("policy");
    expect(judgeCommit(groupOf("dm:alice:carol", [alice, oldCarol]), c, { relaySender: "alice", trusts: decided })).toBe("policy");
    // Removing both of carol's leaves keeps none: refused.
    expect(judgeCommit(groupOf("#ops", [alice, oldCarol, joined]), change({ removed: [oldCarol, joined] }), { relaySender: "alice", trusts: decided })).toBe("policy");
  });

  it("shows a replacement as the new key added, not as a removal", () => {
    const lines = linesOf(change({ removed: [oldCarol], added: [newCarol] }), { creator: "alice", leaving: new Set(), atMs: 1 });
    expect(lines).toEqual([{ kind: "added", by: "alice", users: ["carol"], creator: "alice", atMs: 1 }]);
  });
});
