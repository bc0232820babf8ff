// Who is in a group, read from its ratchet tree (proto/PROTOCOL.md §7.3):
// members with their verified identities, the tree sent beside a Welcome, and what a commit
// changed (who committed, who was added or removed), as MlsGroup shows it in the conversation.
import type { LeafNode, ProposalWithSender, RatchetTree } from "ts-mls";
import { decodeRatchetTree } from "ts-mls/ratchetTree.js";
import { CLIENT_SHAPE_BOUNDS, walkRatchetTree } from "./shape.js";
import { verifyCredential, type VerifiedIdentity } from "./credential.js";
import { MlsProtocolError } from "./errors.js";
import { MLS_MAX_MESSAGE_BYTES } from "./suite.js";

/** A member as the group's tree shows it, with its verified identity. */
export interface MlsMember extends VerifiedIdentity {
  readonly leafIndex: number;
  /** The member's MLS signature public key (the leaf's). */
  readonly signatureKey: Uint8Array;
}

/** A membership change made by a commit: shown in the conversation as a line naming `committer`. */
export interface MembershipChange {
  /** Who committed (for an external join, the joiner). */
  readonly committer: MlsMember;
  readonly added: readonly MlsMember[];
  readonly removed: readonly MlsMember[];
  /**
   * The members of `removed` who left: removed by their own Remove proposal (MLS does not let a
   * member commit its own removal, so another member commits it). Always a subset of `removed`.
   */
  readonly left: readonly MlsMember[];
  /** The commit was an external join (PROTOCOL.md §7.5). */
  readonly external: boolean;
}

/** The caller's rule for changes (e.g. only a room's creator may remove others). */
export type ChangePolicy = (change: MembershipChange) => boolean;

export function leafAt(tree: RatchetTree, leafIndex: number): LeafNode | undefined {
  const node = tree[leafIndex * 2];
  return node?.nodeType === "leaf" ? node.leaf : undefined;
}

/**
 * Verified identities of leaves, by leaf object: ts-mls shares unchanged leaves between states,
 * and every leaf was checked by the authentication service when it entered the tree, so one
 * verification per leaf is enough (it was 15% of opening a message).
 */
const verifiedLeaves = new WeakMap<LeafNode, VerifiedIdentity>();

export function memberOf(leaf: LeafNode, leafIndex: number): MlsMember {
  let id = verifiedLeaves.get(leaf);
  if (id === undefined) {
    id = verifyCredential(leaf.credential, leaf.signaturePublicKey);
    verifiedLeaves.set(leaf, id);
  }
  return { ...id, leafIndex, signatureKey: leaf.signaturePublicKey };
}

export function membersOf(tree: RatchetTree): MlsMember[] {
  const out: MlsMember[] = [];
  for (let i = 0; i < tree.length; i += 2) {
    const n = tree[i];
    if (n?.nodeType === "leaf") out.push(memberOf(n.leaf, i / 2));
  }
  return out;
}

/**
 * Decodes a ratchet tree sent beside a Welcome, or a GroupInfo's ratchet_tree extension; its tree
 * hash is checked by the join. Its shape is walked first (shape.ts, PROTOCOL.md §10.1: at most
 * 2 × a default relay's max_group_devices nodes, each leaf's lists bounded), since whoever wrote
 * it (a relay, a peer) chooses how many objects ts-mls's decode builds.
 */
export function decodeTree(bytes: Uint8Array): RatchetTree {
  if (!(bytes instanceof Uint8Array)) throw new MlsProtocolError("bad-argument", "the ratchet tree must be bytes");
  if (bytes.length === 0 || bytes.length > MLS_MAX_MESSAGE_BYTES) throw new MlsProtocolError("malformed", `ratchet tree is empty or larger than ${MLS_MAX_MESSAGE_BYTES} bytes`);
  walkRatchetTree(bytes, "the ratchet tree", CLIENT_SHAPE_BOUNDS, "client");
  let decoded: ReturnType<typeof decodeRatchetTree>;
  try {
    decoded = decodeRatchetTree(bytes, 0);
  } catch (e) {
    throw new MlsProtocolError("malformed", "ratchet tree does not decode", { cause: e });
  }
  if (decoded === undefined || decoded[1] !== bytes.length) throw new MlsProtocolError("malformed", "ratchet tree does not decode");
  return decoded[0];
}

export function describeCommit(tree: RatchetTree, committerLeaf: number | undefined, proposals: readonly ProposalWithSender[], sender: MlsMember | undefined): MembershipChange {
  const added: MlsMember[] = [];
  const removed: MlsMember[] = [];
  const left: MlsMember[] = [];
  let external = false;
  for (const { proposal, senderLeafIndex } of proposals) {
    if (proposal.proposalType === "add") {
      const leaf = proposal.add.keyPackage.leafNode;
      added.push({ ...verifyCredential(leaf.credential, leaf.signaturePublicKey), leafIndex: -1, signatureKey: leaf.signaturePublicKey });
    } else if (proposal.proposalType === "remove") {
      const leaf = leafAt(tree, proposal.remove.removed);
      if (leaf !== undefined) {
        const m = memberOf(leaf, proposal.remove.removed);
        removed.push(m);
        // A proposal by reference keeps its sender's leaf; one inside the commit has the
        // committer's, who cannot remove itself: so this is only ever a member's own leave.
        if (senderLeafIndex === proposal.remove.removed) left.push(m);
      }
    } else if (proposal.proposalType === "external_init") {
      external = true;
    }
  }
  let committer: MlsMember | undefined = committerLeaf !== undefined ? (() => {
    const leaf = leafAt(tree, committerLeaf);
    return leaf === undefined ? undefined : memberOf(leaf, committerLeaf);
  })() : sender;
  if (committer === undefined) {
    // An external commit: the committer is the joiner, known only after the commit is applied;
    // its credential was checked by ts-mls (authentication service) when the path was validated.
    committer = { username: "", identitySpki: Buffer.alloc(0), identityFpr: Buffer.alloc(0), leafIndex: -1, signatureKey: new Uint8Array(0) };
  }
  return { committer, added, removed, left, external };
}

/**
 * Completes a change once the commit is applied: leaf indexes of the added members, and for an
 * external commit the joiner as committer. New leaves are recognised by their encryption key
 * (always fresh, even when a member rejoins with the same signature key: a resync).
 */
export function resolveChange(change: MembershipChange, oldTree: RatchetTree, newTree: RatchetTree): MembershipChange {
  const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
  const oldKeys = new Set<string>();
  for (let i = 0; i < oldTree.length; i += 2) {
    const n = oldTree[i];
    if (n?.nodeType === "leaf") oldKeys.add(hex(n.leaf.hpkePublicKey));
  }
  const fresh: { member: MlsMember; hpke: string }[] = [];
  for (let i = 0; i < newTree.length; i += 2) {
    const n = newTree[i];
    if (n?.nodeType === "leaf" && !oldKeys.has(hex(n.leaf.hpkePublicKey))) fresh.push({ member: memberOf(n.leaf, i / 2), hpke: hex(n.leaf.hpkePublicKey) });
  }
  const addedKeys = new Set(change.added.map((a) => hex(a.signatureKey)));
  const added = change.added.map((a) => fresh.find((f) => hex(f.member.signatureKey) === hex(a.signatureKey))?.member ?? a);
  let committer = change.committer;
  if (change.external) {
    const joiner = fresh.find((f) => !addedKeys.has(hex(f.member.signatureKey)) || change.added.length === 0);
    if (joiner === undefined) throw new MlsProtocolError("malformed", "external commit added no member");
    committer = joiner.member;
  }
  return { ...change, added, committer };
}

/**
 * A member whose leaf a commit changed without removing it (its update path) keeps its
 * identity: same username, same identity key (RFC 9420 §12.1.2 leaves this check to the
 * application; ts-mls only validates the new credential on its own). Otherwise a member could
 * rename itself into someone else, even the room's creator. Returns the first leaf renamed.
 */
export function renamedLeaf(oldTree: RatchetTree, newTree: RatchetTree, removed: ReadonlySet<number>): { before: MlsMember; after: MlsMember } | undefined {
  for (let i = 0; i < oldTree.length && i < newTree.length; i += 2) {
    const o = oldTree[i];
    const n = newTree[i];
    if (o?.nodeType !== "leaf" || n?.nodeType !== "leaf" || o.leaf === n.leaf || removed.has(i / 2)) continue;
    const before = memberOf(o.leaf, i / 2);
    const after = memberOf(n.leaf, i / 2);
    if (before.username !== after.username || !before.identityFpr.equals(after.identityFpr)) return { before, after };
  }
  return undefined;
}
