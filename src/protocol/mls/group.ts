// One conversation's MLS group (proto/PROTOCOL.md §7 and the
// sections cited below): add (commit + Welcome), remove, leave, self-update, encrypt/decrypt,
// process handshake messages, serialise, delete used keys. Bytes in, bytes out: no network, no
// files. How a group comes to exist (create, join from a Welcome or by external commit,
// restore) is in group-join.ts, behind MlsGroup's statics. Group ids are in group-id.ts;
// reading members and membership changes from the tree is in membership.ts; the checks of an
// incoming message before and after it is processed, and reading its sender, in group-incoming.ts.
//
// Pitfalls of ts-mls 1.6.4 this class absorbs:
// - createCommit returns the NEXT epoch's state at once (there is no "pending commit"): the
//   old state must be kept until the relay accepts the commit (first commit for an epoch wins,
//   PROTOCOL.md §8.1). MlsGroup keeps it as `pending` until confirmCommit().
// - `consumed` secrets are Uint8Arrays shared with the old state: they are zeroed only when
//   that state is dropped for good (never while a pending commit could still be discarded).
// - processPrivateMessage does not say who sent an application message: the sender's leaf is
//   read from the sender data (decryptSenderData, the same key ts-mls uses, so the leaf whose
//   signature ts-mls then verifies is the one reported).
// - encodeGroupState leaves out the client configuration (authentication service, retention):
//   restore() puts ours back, so a restored group checks credentials exactly as before.
import {
  acceptAll, createApplicationMessage, createCommit, createProposal, emptyPskIndex,
  encodeMlsMessage, processMessage, type ClientState, type IncomingMessageCallback, type Proposal,
} from "ts-mls";
import { encodeRatchetTree } from "ts-mls/ratchetTree.js";
import type { Conversation } from "../names.js";
import { checkKeyPackage, decodeKeyPackage, type MlsClient, type StoredKeyPackage } from "./client.js";
import { checkCreatorName, isRoomCreator, readCreator, removalsAllowed, type RoomCreator } from "./creator.js";
import type { CredentialChecker, TrustHook, VerifiedIdentity } from "./credential.js";
import { isMlsProtocolError, MlsProtocolError, wrap } from "./errors.js";
import { authenticatedDataOf, judgedCommit, readGroupMessage, senderOf } from "./group-incoming.js";
import { createGroupFor, encodeState, joinExternal, joinFromWelcome, restoreGroup, type GroupMaker } from "./group-join.js";
import { describeCommit, membersOf, type ChangePolicy, type MembershipChange, type MlsMember } from "./membership.js";
import { encodeGroupInfo, pad, sameExtensions, secretTreeValues, unpad, zero } from "./group-parts.js";
import { addProposals, removalProposals, replacementProposals, staleLeafRemovals } from "./group-proposals.js";
import { suiteImpl } from "./suite.js";

export interface GroupOptions {
  /** Decides about each identity key a credential names (TOFU pins, PROTOCOL.md §6). */
  readonly trust?: TrustHook;
  /**
   * The authenticated_data every message I make carries (RFC 9420 §6.3: in clear, covered by the
   * signature and the AEAD, so no relay can change it), read at each message: PROTOCOL.md §4.5
   * "What my own devices say of my list".
   */
  readonly authenticatedData?: () => Uint8Array;
}

export type Incoming =
  | { readonly kind: "application"; readonly sender: MlsMember; readonly plaintext: Buffer; readonly epoch: bigint; readonly authenticatedData: Uint8Array }
  | { readonly kind: "commit"; readonly change: MembershipChange; readonly epoch: bigint; readonly removedMe: boolean; readonly discardedPendingCommit: boolean; readonly authenticatedData: Uint8Array }
  | { readonly kind: "proposal"; readonly sender: MlsMember; readonly removes: readonly MlsMember[]; readonly authenticatedData: Uint8Array };

/** A commit waiting for the relay's answer (PROTOCOL.md §8.1). */
export interface PendingCommit {
  /** MLSMessage to send to the group (through the relay's ordered queue). */
  readonly commit: Uint8Array;
  /** MLSMessage(Welcome) for the added members; undefined when nobody is added. */
  readonly welcome: Uint8Array | undefined;
  /**
   * The new epoch's ratchet tree (RFC 9420 §12.4.3.3), for the joiners, beside the Welcome: the
   * relay keeps one copy for all of them. A joiner checks it against the tree hash in the signed
   * GroupInfo, so the relay cannot change it. (Inside the Welcome it would be hashed into every
   * joiner's HPKE context: O(n^2), 6.5 s of CPU for 499 joiners instead of 2.5 s.)
   */
  readonly ratchetTree: Uint8Array | undefined;
  /**
   * The GroupInfo of the epoch this commit creates (signed by me, with the external public key
   * and the tree): sent with the commit when it fits the frame, or published once it is
   * accepted, without another call to groupInfo() (PROTOCOL.md §8.1).
   */
  readonly groupInfo: Uint8Array;
  /** The epoch this commit creates. */
  readonly epoch: bigint;
}

export class MlsGroup {
  private state: ClientState;
  private pending: { state: ClientState; consumed: Uint8Array[]; epoch: bigint } | undefined;
  private destroyed = false;
  /** The room's creator from the GroupContext (creator.ts); fixed for the group's life. */
  private readonly roomCreator: RoomCreator | undefined;

  /** Reads the creator strictly: a GroupContext that is not what this kind of conversation carries throws "bad-group-context". */
  private constructor(
    readonly client: MlsClient,
    state: ClientState,
    private readonly checker: CredentialChecker,
    readonly conversation: Conversation,
    private readonly aad: (() => Uint8Array) | undefined,
  ) {
    this.state = state;
    this.roomCreator = readCreator(conversation, state.groupContext.extensions);
  }

  // ---- construction (the bodies are in group-join.ts) -------------------------------------

  /** What group-join.ts builds groups with: the private constructor and the checks of a joined group. */
  private static readonly maker: GroupMaker = {
    construct: (client, state, checker, conversation, aad) => new MlsGroup(client, state, checker, conversation, aad),
    checkJoined: (group) => {
      group.checkDmMembers();
      group.checkCreatorName("bad-group-context");
    },
  };

  /** Creates a new group for a conversation, with the creator as its only member (epoch 0). */
  static create(client: MlsClient, conversationId: string, options: GroupOptions = {}): Promise<MlsGroup> {
    return createGroupFor(MlsGroup.maker, client, conversationId, options);
  }

  /**
   * Joins from a Welcome and the ratchet tree sent beside it (PROTOCOL.md §7.3). The
   * tree is checked against the tree hash of the GroupInfo the committer signed. `lookup` returns the stored KeyPackage a
   * Welcome names (by KeyPackageRef); a Welcome naming none of ours is refused ("not-for-me").
   * The result says which KeyPackage was used: a one-time one has had its private keys
   * overwritten here and must be deleted from the store; a last-resort one must be replaced.
   */
  static joinFromWelcome(client: MlsClient, welcomeBytes: Uint8Array, ratchetTreeBytes: Uint8Array, lookup: (ref: Uint8Array) => StoredKeyPackage | undefined, options: GroupOptions = {}): Promise<{ group: MlsGroup; usedKeyPackage: Uint8Array; lastResort: boolean; addedBy: MlsMember }> {
    return joinFromWelcome(MlsGroup.maker, client, welcomeBytes, ratchetTreeBytes, lookup, options);
  }

  /**
   * Joins by external commit from a GroupInfo (PROTOCOL.md §7.5). `resync` replaces
   * my old leaf when I was a member before (a client that missed commits while offline). The
   * commit must reach the group through the relay's ordered queue; until the relay accepts it,
   * the returned group is not usable (the caller keeps it only if ACCEPTED).
   */
  static joinExternal(client: MlsClient, groupInfoBytes: Uint8Array, options: GroupOptions & { resync?: boolean; expectConversation?: string } = {}): Promise<{ group: MlsGroup; commit: Uint8Array }> {
    return joinExternal(MlsGroup.maker, client, groupInfoBytes, options);
  }

  /** Restores a group serialised by serialize(), for this client, with the given trust hook. */
  static restore(client: MlsClient, bytes: Uint8Array, options: GroupOptions = {}): MlsGroup {
    return restoreGroup(MlsGroup.maker, client, bytes, options);
  }

  // ---- what the group is -----------------------------------------------------------------

  get groupId(): Uint8Array { return this.state.groupContext.groupId; }
  get epoch(): bigint { return this.state.groupContext.epoch; }
  get myLeafIndex(): number { return this.state.privatePath.leafIndex; }

  /** My leaf's HPKE public key (only my own commits change it). */
  get myLeafHpkeKey(): Uint8Array {
    const n = this.state.ratchetTree[2 * this.myLeafIndex];
    return n?.nodeType === "leaf" ? n.leaf.hpkePublicKey : new Uint8Array(0);
  }
  /** False once I was removed or left: the group can then only be deleted. */
  get active(): boolean { return this.state.groupActiveState.kind === "active"; }
  get hasPendingCommit(): boolean { return this.pending !== undefined; }
  /** RFC 9420 §8.7 epoch authenticator: equal for all members of the same epoch (fork check). */
  get epochAuthenticator(): Uint8Array { return this.state.keySchedule.epochAuthenticator; }

  /** Every member with its verified identity, in leaf order. */
  members(): MlsMember[] {
    return membersOf(this.state.ratchetTree);
  }

  member(username: string): MlsMember | undefined {
    return this.members().find((m) => m.username === username);
  }

  /**
   * The room's creator, read from the GroupContext every member agrees on (PROTOCOL.md §7.4
   * ): username and SHA-256 of the identity key that vouched for the
   * creator's credential. Undefined for a DM and the lobby. The creator may have left: then
   * `creatorMember()` is undefined and nobody may remove others.
   */
  creator(): { readonly username: string; readonly identityFingerprint: Buffer } | undefined {
    const c = this.roomCreator;
    return c === undefined ? undefined : { username: c.username, identityFingerprint: Buffer.from(c.identityFingerprint) };
  }

  /**
   * Whether `other` has this group's fixed settings (the GroupContext extensions: a room's
   * creator, §7.4): no secure-chat commit changes them, so a state of the same group that differs
   * came from a commit every member refuses (a re-join must not adopt it, §12).
   */
  sameSettingsAs(other: MlsGroup): boolean {
    return sameExtensions(this.state.groupContext.extensions, other.state.groupContext.extensions);
  }

  /** Whether this identity (a member, a committer) is the room's creator: same username AND same identity key. */
  isCreator(who: Pick<VerifiedIdentity, "username" | "identityFpr">): boolean {
    return isRoomCreator(this.roomCreator, who);
  }

  /**
   * Whether the removals of a (processed or proposed) change follow the rule of PROTOCOL.md §7:
   * each is a leave, a resync, or, in a room, made by the creator (name AND identity key). Use
   * it in the ChangePolicy given to process(): `(c) => group.removalsAllowed(c) && ...`.
   */
  removalsAllowed(change: MembershipChange): boolean {
    return removalsAllowed(this.conversation, this.roomCreator, change);
  }

  /** The creator as a current member, or undefined (not a room, or the creator is not in it now). */
  creatorMember(): MlsMember | undefined {
    if (this.roomCreator === undefined) return undefined;
    return this.members().find((m) => this.isCreator(m));
  }

  // ---- changes (each returns a pending commit: send it, then confirm or discard) --------

  /**
   * Adds members from their KeyPackages (PROTOCOL.md §7.3): each is checked (suite,
   * lifetime, credential, the expected username when given, not already a member) before one
   * commit adds them all. The Welcome carries the ratchet tree.
   */
  async addMembers(keyPackages: readonly Uint8Array[], options: { expectUsernames?: readonly string[]; nowS?: number } = {}): Promise<PendingCommit> {
    this.checkUsable();
    if (!Array.isArray(keyPackages) || keyPackages.length === 0) throw new MlsProtocolError("bad-argument", "addMembers needs at least one KeyPackage");
    if (options.expectUsernames !== undefined && options.expectUsernames.length !== keyPackages.length) {
      throw new MlsProtocolError("bad-argument", "expectUsernames must name one user per KeyPackage");
    }
    const now = options.nowS ?? Math.floor(Date.now() / 1000);
    return this.commit(addProposals(this.members(), this.checker, this.conversation, keyPackages, options.expectUsernames, now), true);
  }

  /**
   * My own devices' leaves (PROTOCOL.md §4.5, §7 self-heal): ONE commit removes the leaves at
   * `removeLeaves` (each must be a leaf of my user, never my own) and adds `keyPackages` (each of
   * my user, a device with no leaf yet). Every member's policy allows a member to change its own
   * user's leaves.
   */
  async changeOwnDevices(removeLeaves: readonly number[], keyPackages: readonly Uint8Array[], options: { nowS?: number } = {}): Promise<PendingCommit> {
    this.checkUsable();
    if (!Array.isArray(removeLeaves) || !Array.isArray(keyPackages) || removeLeaves.length + keyPackages.length === 0) throw new MlsProtocolError("bad-argument", "changeOwnDevices needs a leaf to remove or a KeyPackage to add");
    const members = this.members();
    const proposals: Proposal[] = [];
    for (const leaf of new Set(removeLeaves)) {
      const m = members.find((x) => x.leafIndex === leaf);
      if (m === undefined || m.username !== this.client.username) throw new MlsProtocolError("bad-argument", `leaf ${String(leaf)} is not a leaf of '${this.client.username}' in ${this.conversation.id}`);
      if (leaf === this.myLeafIndex) throw new MlsProtocolError("bad-argument", "to leave a group, propose to leave (a member commits it)");
      proposals.push({ proposalType: "remove", remove: { removed: leaf } });
    }
    const now = options.nowS ?? Math.floor(Date.now() / 1000);
    proposals.push(...addProposals(members, this.checker, this.conversation, keyPackages, keyPackages.map(() => this.client.username), now));
    return this.commit(proposals, keyPackages.length > 0);
  }

  /**
   * A member's changed identity key, decided on by my user (PROTOCOL.md §6): ONE commit removes
   * every leaf of `username` under another identity key and adds the KeyPackage of the new one
   * (checked like addMembers: suite, lifetime, credential, that username, and the trust hook,
   * which accepts only the decided key). Each member's policy allows the removal only with that
   * add (client policy.ts keyReplacementAllowed).
   */
  async replaceMember(username: string, keyPackage: Uint8Array | readonly Uint8Array[], options: { nowS?: number } = {}): Promise<PendingCommit> {
    this.checkUsable();
    if (typeof username !== "string" || username === this.client.username) throw new MlsProtocolError("bad-argument", "replaceMember needs another member's username");
    // One KeyPackage per device of the user (PROTOCOL.md §4.5), all under the new identity key.
    const packages = keyPackage instanceof Uint8Array ? [keyPackage] : [...keyPackage];
    if (packages.length === 0 || !packages.every((k) => k instanceof Uint8Array)) throw new MlsProtocolError("bad-argument", "replaceMember needs a KeyPackage");
    const kps = packages.map((b) => decodeKeyPackage(b));
    const ids = kps.map((kp) => checkKeyPackage(kp, username, options.nowS ?? Math.floor(Date.now() / 1000)));
    for (const id of ids) if (!this.checker.trusts(id)) throw new MlsProtocolError("untrusted-identity", `the identity key of '${id.username}' was refused (it is not the pinned one)`);
    if (ids.some((id) => !id.identityFpr.equals(ids[0]!.identityFpr))) throw new MlsProtocolError("bad-argument", "replaceMember's KeyPackages name different identity keys");
    return this.commit(replacementProposals(this.members(), username, kps, ids[0]!.identityFpr, this.conversation.id), true);
  }

  /**
   * Removes the leaves of `username` under any identity key other than `keep` (SHA-256 of the
   * decided key's SPKI, PROTOCOL.md §6), when a leaf of theirs under `keep` is already in the
   * group (it came in by their external join): each member's policy allows only that.
   */
  async removeStaleLeaves(username: string, keep: Buffer): Promise<PendingCommit> {
    this.checkUsable();
    if (typeof username !== "string" || username === this.client.username) throw new MlsProtocolError("bad-argument", "removeStaleLeaves needs another member's username");
    if (!Buffer.isBuffer(keep) || keep.length !== 32) throw new MlsProtocolError("bad-argument", "removeStaleLeaves needs a 32-byte identity fingerprint");
    return this.commit(staleLeafRemovals(this.members(), username, keep, this.conversation.id), false);
  }

  /** Removes members by username, every leaf (device) of each (PROTOCOL.md §7.3, §4.5); not myself (use proposeLeave). */
  async removeMembers(usernames: readonly string[]): Promise<PendingCommit> {
    this.checkUsable();
    if (!Array.isArray(usernames) || usernames.length === 0) throw new MlsProtocolError("bad-argument", "removeMembers needs at least one username");
    return this.commit(removalProposals(this.members(), usernames, this.client.username, this.conversation.id), false);
  }

  /**
   * Commits my new keys (PROTOCOL.md §10.3): a full update path, which heals a
   * compromise of my past state (post-compromise security) and, once processed by everyone,
   * lets them delete the old epoch's secrets. Also commits proposals received since the last
   * commit (e.g. someone's leave).
   */
  async selfUpdate(): Promise<PendingCommit> {
    this.checkUsable();
    return this.commit([], false);
  }

  /** Commits the proposals received (a leave), with an update path. Same as selfUpdate. */
  async commitPendingProposals(): Promise<PendingCommit> {
    return this.selfUpdate();
  }

  /**
   * Proposes my own removal (PROTOCOL.md §7.3): MLS does not let a member commit its own
   * removal, so another member commits this proposal (any member who receives it does so at
   * once). Returns the proposal message to send to the group.
   */
  async proposeLeave(): Promise<Uint8Array> {
    this.checkUsable();
    if (this.pending !== undefined) throw new MlsProtocolError("pending-commit", "a commit is waiting for the relay's answer");
    const impl = await suiteImpl();
    const res = await wrap(this.checker, "bad-argument", "the leave proposal could not be made", () =>
      createProposal(this.state, false, { proposalType: "remove", remove: { removed: this.myLeafIndex } }, impl, this.authenticatedData()));
    this.state = res.newState;
    zero(res.consumed);
    return encodeMlsMessage(res.message);
  }

  /** The leaves that Remove proposals received this epoch (not yet committed) remove. */
  pendingRemovals(): number[] {
    const out: number[] = [];
    for (const p of Object.values(this.state.unappliedProposals)) {
      if (p.proposal.proposalType === "remove") out.push(p.proposal.remove.removed);
    }
    return out;
  }

  /** The relay accepted my pending commit: move to its epoch and delete the old epoch's keys. */
  confirmCommit(): void {
    if (this.pending === undefined) throw new MlsProtocolError("no-pending-commit", "there is no commit to confirm");
    const p = this.pending;
    this.pending = undefined;
    this.state = p.state;
    zero(p.consumed);
  }

  /**
   * My pending commit's next-epoch state, for the durable store (sealed at rest like serialize's,
   * PROTOCOL.md §8.1 "A commit in flight"): kept until the relay answers, so a client that quits
   * before the answer can send the commit again at its next start and move on if it was accepted.
   */
  serializePending(): Uint8Array {
    this.checkUsable();
    if (this.pending === undefined) throw new MlsProtocolError("no-pending-commit", "there is no commit waiting for the relay's answer");
    return encodeState(this.pending.state);
  }

  /**
   * Puts back a pending commit kept by serializePending() before a restart: then confirmCommit or
   * discardCommit as for a fresh one. The state must be this group's, of my leaf, one epoch on.
   * (The secrets the commit consumed in this epoch's state are not known here: they go with it.)
   */
  resumePending(bytes: Uint8Array): void {
    this.checkUsable();
    if (this.pending !== undefined) throw new MlsProtocolError("pending-commit", "a commit is already waiting for the relay's answer");
    const next = MlsGroup.restore(this.client, bytes);
    if (!Buffer.from(next.groupId).equals(Buffer.from(this.groupId))) throw new MlsProtocolError("bad-state", "the kept commit is of another group");
    if (next.epoch !== this.epoch + 1n) throw new MlsProtocolError("bad-state", `the kept commit makes epoch ${next.epoch}, not ${this.epoch + 1n}`);
    this.pending = { state: { ...next.state, clientConfig: this.state.clientConfig }, consumed: [], epoch: next.epoch };
  }

  /** The relay refused my pending commit (another won the epoch): forget it; the state stays. */
  discardCommit(): void {
    if (this.pending === undefined) throw new MlsProtocolError("no-pending-commit", "there is no commit to discard");
    this.pending = undefined;
  }

  // ---- messages --------------------------------------------------------------------------

  /** Encrypts application data for the group (PROTOCOL.md §11). */
  async encrypt(plaintext: Uint8Array): Promise<Uint8Array> {
    this.checkUsable();
    if (!(plaintext instanceof Uint8Array)) throw new MlsProtocolError("bad-argument", "plaintext must be bytes");
    const impl = await suiteImpl();
    const res = await wrap(this.checker, "bad-argument", "the message could not be encrypted", () =>
      createApplicationMessage(this.state, pad(plaintext), impl, this.authenticatedData()));
    this.state = res.newState;
    zero(res.consumed);
    return encodeMlsMessage({ version: "mls10", wireformat: "mls_private_message", privateMessage: res.privateMessage });
  }

  /**
   * Processes a message of this group (PROTOCOL.md §10.1), in the relay's order:
   * an application message (decrypted, sender verified), a commit (applied; the membership
   * change it made is returned, and refused when `policy` says no), or a proposal (kept for
   * the next commit). Checks first: the group id, the epoch (a handshake message only for the
   * current epoch; an application message for the current or the one retained past epoch).
   * Refusals leave the state unchanged.
   */
  async process(bytes: Uint8Array, policy?: ChangePolicy): Promise<Incoming> {
    this.checkUsable();
    if (policy !== undefined && typeof policy !== "function") throw new MlsProtocolError("bad-argument", "policy must be a function");
    const current = this.epoch;
    const { msg, epoch, contentType } = readGroupMessage(bytes, this.groupId, current, this.conversation.id);
    const impl = await suiteImpl();
    const sender = await senderOf(msg, this.state, epoch, current, this.myLeafIndex, impl);

    const before = this.state;
    let change: MembershipChange | undefined;
    let policyRefused = false;
    const callback: IncomingMessageCallback = (incoming) => {
      if (incoming.kind === "proposal") {
        // Only self-removal (leave) proposals are used, one per leaf: anything else is refused, and
        // so is a second Remove of a leaf one is pending for (two would make every later commit
        // of the epoch invalid: RFC 9420 §12.2, one Remove per leaf).
        const p = incoming.proposal.proposal;
        const ok = p.proposalType === "remove" && p.remove.removed === incoming.proposal.senderLeafIndex
          && !Object.values(before.unappliedProposals).some((q) => q.proposal.proposalType === "remove" && q.proposal.remove.removed === p.remove.removed);
        if (!ok) policyRefused = true;
        return ok ? "accept" : "reject";
      }
      // The change is judged once applied (below), when an external joiner is known too:
      // ts-mls never changes the state it was given, so refusing then costs nothing.
      change = describeCommit(before.ratchetTree, incoming.senderLeafIndex, incoming.proposals, sender);
      return acceptAll(incoming);
    };

    const res = await wrap(this.checker, "decrypt-failed", `a ${contentType} message could not be processed`, () =>
      processMessage(msg, this.state, emptyPskIndex, callback, impl));
    if (policyRefused) {
      throw new MlsProtocolError("refused-change", contentType === "commit" ? "the change was refused by this conversation's rules" : "this proposal is not allowed (only leaving is)");
    }
    if (res.kind === "applicationMessage") {
      if (sender === undefined) throw new MlsProtocolError("malformed", "application data without a sender");
      const plaintext = unpad(res.message);
      this.state = res.newState;
      zero(res.consumed);
      return { kind: "application", sender, plaintext, epoch, authenticatedData: authenticatedDataOf(msg) };
    }
    if (contentType === "proposal") {
      this.state = res.newState;
      zero(res.consumed);
      if (sender === undefined) throw new MlsProtocolError("malformed", "proposal without a sender");
      return { kind: "proposal", sender, removes: [sender], authenticatedData: authenticatedDataOf(msg) };
    }
    // A commit: it won this epoch at the relay, so my own pending commit (if any) lost.
    if (change === undefined) throw new MlsProtocolError("malformed", "commit was processed without being seen");
    let finalChange: MembershipChange;
    try {
      finalChange = judgedCommit(change, before, res.newState, this.conversation, this.roomCreator);
    } catch (e) {
      // Refused once authenticated: who committed it is known (the caller's re-creation leaves
      // them out, never whoever the relay names, review round 11).
      if (isMlsProtocolError(e)) throw new MlsProtocolError(e.code, e.message, { cause: e.cause, committer: change.committer.username });
      throw e;
    }
    if (policy !== undefined && !policy(finalChange)) throw new MlsProtocolError("refused-change", "the change was refused by this conversation's rules");
    const discardedPendingCommit = this.pending !== undefined;
    this.pending = undefined;
    this.state = res.newState;
    zero(res.consumed);
    const removedMe = this.state.groupActiveState.kind === "removedFromGroup";
    // Removed (or my leave was committed): nothing of this group may be read again; overwrite its secrets.
    if (removedMe) this.destroy();
    return { kind: "commit", change: finalChange, epoch: this.epoch, removedMe, discardedPendingCommit, authenticatedData: authenticatedDataOf(msg) };
  }

  /**
   * The GroupInfo for external joins (PROTOCOL.md §7.5), with the external public key
   * and the ratchet tree, signed by me. The relay keeps the newest one per group.
   */
  async groupInfo(): Promise<Uint8Array> {
    this.checkUsable();
    return encodeGroupInfo(this.state);
  }

  // ---- storage and deletion --------------------------------------------------------------

  /**
   * The group state for the durable store (encrypt it at rest, PROTOCOL.md §10.4). A pending
   * commit is not included: after a restart the commit is sent again only if it was accepted
   * (then confirm before serialising) — otherwise it is made again.
   */
  serialize(): Uint8Array {
    this.checkNotDestroyed();
    return encodeState(this.state);
  }

  /**
   * Deletes the retained past epoch's secrets (PROTOCOL.md §10.2): call once no
   * message of the previous epoch can still arrive (every member has been heard from in this
   * epoch, or an hour passed).
   */
  forgetPastEpochs(): void {
    this.checkNotDestroyed();
    const consumed: Uint8Array[] = [];
    for (const data of this.state.historicalReceiverData.values()) consumed.push(...secretTreeValues(data.secretTree), data.senderDataSecret);
    this.state = { ...this.state, historicalReceiverData: new Map() };
    zero(consumed);
  }

  /** Overwrites every secret this object holds (after a removal, or when the conversation is deleted). */
  destroy(): void {
    if (this.destroyed) return;
    this.forgetPastEpochs();
    const s = this.state;
    zero([...secretTreeValues(s.secretTree), ...Object.values(s.keySchedule).filter((v): v is Uint8Array => v instanceof Uint8Array)]);
    zero(s.privatePath.privateKeys !== undefined ? Object.values(s.privatePath.privateKeys) : []);
    this.pending = undefined;
    this.destroyed = true;
  }

  // ---- internals -------------------------------------------------------------------------

  private async commit(proposals: Proposal[], withWelcome: boolean): Promise<PendingCommit> {
    if (this.pending !== undefined) throw new MlsProtocolError("pending-commit", "a commit is already waiting for the relay's answer (confirm or discard it first)");
    const impl = await suiteImpl();
    const res = await wrap(this.checker, "bad-key-package", "the commit could not be made", () =>
      createCommit({ state: this.state, cipherSuite: impl }, { extraProposals: proposals, ratchetTreeExtension: false, authenticatedData: this.authenticatedData() }));
    if (withWelcome && res.welcome === undefined) throw new MlsProtocolError("bad-argument", "the commit made no Welcome");
    const epoch = res.newState.groupContext.epoch;
    this.pending = { state: res.newState, consumed: res.consumed, epoch };
    return {
      commit: encodeMlsMessage(res.commit),
      welcome: res.welcome === undefined ? undefined : encodeMlsMessage({ version: "mls10", wireformat: "mls_welcome", welcome: res.welcome }),
      ratchetTree: res.welcome === undefined ? undefined : encodeRatchetTree(res.newState.ratchetTree),
      groupInfo: await encodeGroupInfo(res.newState),
      epoch,
    };
  }

  /** What my next message carries as authenticated_data (GroupOptions.authenticatedData; empty without). */
  private authenticatedData(): Uint8Array {
    const a = this.aad?.();
    return a instanceof Uint8Array ? a : new Uint8Array(0);
  }

  private checkDmMembers(): void {
    if (this.conversation.kind !== "dm") return;
    for (const m of this.members()) {
      if (!this.conversation.members.includes(m.username)) throw new MlsProtocolError("refused-change", `${this.conversation.id} has a member '${m.username}' who is not one of its two users`);
    }
  }

  private checkCreatorName(code: "bad-group-context" | "refused-change"): void {
    checkCreatorName(this.conversation, this.roomCreator, this.members(), code);
  }

  private checkNotDestroyed(): void {
    if (this.destroyed) throw new MlsProtocolError("not-a-member", "this group was destroyed");
  }

  private checkUsable(): void {
    this.checkNotDestroyed();
    if (!this.active) throw new MlsProtocolError("not-a-member", `I am no longer a member of ${this.conversation.id}`);
  }
}
