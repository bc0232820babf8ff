// The proposal lists of membership changes, computed from the group's members (group.ts makes
// the commit): adding checked KeyPackages, removing named members, and replacing a member's leaf
// under a changed identity key (PROTOCOL.md §6.1, §7.3). Pure: members in, proposals out, a
// sentence when it cannot be.
import type { KeyPackage, Proposal } from "ts-mls";
import type { Conversation } from "../names.js";
import { checkKeyPackage, decodeKeyPackage } from "./client.js";
import type { CredentialChecker } from "./credential.js";
import { MlsProtocolError } from "./errors.js";
import type { MlsMember } from "./membership.js";

const removal = (m: MlsMember): Proposal => ({ proposalType: "remove", remove: { removed: m.leafIndex } });

/**
 * Add proposals for KeyPackages, each checked (suite, lifetime, credential, expected username,
 * trust hook) and refused when a leaf with its signature key, i.e. that device (PROTOCOL.md
 * §4.5: one leaf per device), is already in the group or twice in the batch.
 */
export function addProposals(members: readonly MlsMember[], checker: CredentialChecker, conversation: Conversation, keyPackages: readonly Uint8Array[], expectUsernames: readonly (string | undefined)[] | undefined, now: number): Proposal[] {
  const present = new Set(members.map((m) => Buffer.from(m.signatureKey).toString("hex")));
  const proposals: Proposal[] = [];
  keyPackages.forEach((bytes, i) => {
    const kp = decodeKeyPackage(bytes);
    const id = checkKeyPackage(kp, expectUsernames?.[i], now);
    if (!checker.trusts(id)) throw new MlsProtocolError("untrusted-identity", `the identity key of '${id.username}' was refused (it is not the pinned one)`);
    const key = Buffer.from(kp.leafNode.signaturePublicKey).toString("hex");
    if (present.has(key)) throw new MlsProtocolError("bad-key-package", `this device of '${id.username}' is already a member of ${conversation.id}`);
    if (conversation.kind === "dm" && !conversation.members.includes(id.username)) {
      throw new MlsProtocolError("bad-key-package", `'${id.username}' is not a member of ${conversation.id}`);
    }
    present.add(key);
    proposals.push({ proposalType: "add", add: { keyPackage: kp } });
  });
  return proposals;
}

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
