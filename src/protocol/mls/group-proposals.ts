// The proposal lists of membership changes, computed from the group's members (group.ts makes
// the commit): removing named members, and replacing a member's leaf under a changed identity
// key (PROTOCOL.md §6.1, §7.3). Pure: members in, proposals out, a sentence when it cannot be.
import type { KeyPackage, Proposal } from "ts-mls";
import { MlsProtocolError } from "./errors.js";
import type { MlsMember } from "./membership.js";

const removal = (m: MlsMember): Proposal => ({ proposalType: "remove", remove: { removed: m.leafIndex } });

/** Removes each named member (once); never `me` (a member leaves by proposing it). */
export function removalProposals(members: readonly MlsMember[], usernames: readonly string[], me: string, conversationId: string): Proposal[] {
  const proposals: Proposal[] = [];
  for (const name of new Set(usernames)) {
    if (name === me) throw new MlsProtocolError("bad-argument", "to leave a group, propose to leave (a member commits it)");
    // Every leaf of the user: one per device (PROTOCOL.md §4.5).
    const leaves = members.filter((x) => x.username === name);
    if (leaves.length === 0) throw new MlsProtocolError("bad-argument", `'${String(name)}' is not a member of ${conversationId}`);
    proposals.push(...leaves.map(removal));
  }
  return proposals;
}

/** Every leaf of `username` under another identity key than `identityFpr` removed, and `keyPackages` (that key's, one per device) added. */
export function replacementProposals(members: readonly MlsMember[], username: string, keyPackages: readonly KeyPackage[], identityFpr: Buffer, conversationId: string): Proposal[] {
  const stale = members.filter((m) => m.username === username && !m.identityFpr.equals(identityFpr));
  if (stale.length === 0) throw new MlsProtocolError("bad-argument", `${conversationId} holds no leaf of '${username}' under another identity key`);
  return [...stale.map(removal), ...keyPackages.map((keyPackage): Proposal => ({ proposalType: "add", add: { keyPackage } }))];
}

/** The leaves of `username` under any identity key but `keep` removed, when a leaf under `keep` is already in. */
export function staleLeafRemovals(members: readonly MlsMember[], username: string, keep: Buffer, conversationId: string): Proposal[] {
  const theirs = members.filter((m) => m.username === username);
  if (!theirs.some((m) => m.identityFpr.equals(keep))) throw new MlsProtocolError("bad-argument", `${conversationId} holds no leaf of '${username}' under the key to keep`);
  const stale = theirs.filter((m) => !m.identityFpr.equals(keep));
  if (stale.length === 0) throw new MlsProtocolError("bad-argument", `${conversationId} holds no other leaf of '${username}'`);
  return stale.map(removal);
}
