// The relay as MLS Delivery Service (PROTOCOL.md §8.1, §8.2; RFC 9420 §16): KeyPackages
// (publish, claim: mls-key-packages.ts), GroupInfo (publish, fetch, for external joins) and the order of commits
// (the first commit for an epoch wins). The relay never holds a group secret.
// Protocol v2 through the queues (§8.3): SendMls's checks (admitMls, in mls-send.ts; session.ts
// stores the result with the group commit) and an accepted commit's deliveries (the commit to the
// members before it, the Welcome and tree to the added users), queued in the commit's own transaction.
//
// What the relay parses: MLS framing only, with the wrapper's strict decoder (decodeMls: size
// cap, no trailing bytes, MLS 1.0), after a walk of the structure's lists that refuses one longer
// than a client makes (mls-shape.ts: ts-mls builds an object per element, §8.2). For a KeyPackage also its suite, lifetime, last_resort
// marker and credential (checkKeyPackage: one Ed25519 verification of the identity key's
// signature over the leaf key), so that a KeyPackage published by alice's session names alice
// and alice's bound identity key; the KeyPackage's own signature is verified by the adding
// client (ts-mls, at the Add). For a GroupInfo: suite, group id (a secure-chat group id naming
// a conversation) and epoch, not its signature. For a commit: group id, epoch and content type
// from the framing (in the clear in PublicMessage and PrivateMessage). For a SendMls message:
// the same, and that it is a PrivateMessage (its clear header read in place, as strictly:
// mls-header.ts). For a Welcome: that it is one, of our suite.
//
// Every check comes before any store access; each refusal is one sentence (a Refusal).
import {
  ErrorCode, MlsDelivery, MlsKind, type ClaimKeyPackages, type CommitResult, type FetchCommits, type FetchGroupInfo, type ListRooms, type PublishGroupInfo, type RecreateRoom,
  type PublishKeyPackages, type SendCommit,
} from "../gen/securechat/v1/chat.js";
import type { Logger } from "../protocol/log.js";
import { conversationOfGroupId } from "../protocol/mls/group-id.js";
import { MLS_SUITE } from "../protocol/mls/suite.js";
import { dmPeer, parseConversationId } from "../protocol/names.js";
import { checkCommitShare } from "./admission.js";
import type { DeviceRoutes } from "./devices.js";
import type { DirectoryUser } from "./directory.js";
import { Refusal } from "./errors.js";
import type { ResponseFrame } from "./frames.js";
import { bad, epochNumber, mls } from "./mls-checks.js";
import { decodeClientMls, shapeBoundsFor, type MlsShapeBounds } from "./mls-shape.js";
import { claimKeyPackages, publishKeyPackages } from "./mls-key-packages.js";
import { admitMls, mlsMessageId, queueAddresses, type MlsAdmission, type MlsSendContext } from "./mls-send.js";
import { checkExternal, checkGroupSize, checkHint, checkWelcome } from "./commit-checks.js";
export { MAX_HINT_NAMES } from "./commit-checks.js";
import { MAX_COMMIT_BYTES, MAX_ROOMS_PER_USER, type RelayLimits } from "./limits.js";
import type { EnqueueRequest, QueueUsage, RelayStore } from "./store.js";
import type { MembershipHint } from "./store/mls-types.js";
import type { RoomListing } from "./room-listing.js";

export { MAX_CLAIM_USERS, MAX_KEY_PACKAGE_BYTES, MAX_ONE_TIME_KEY_PACKAGES } from "./mls-key-packages.js";
/** Groups one user may create (each is durable state the user makes the relay keep). */
export const MAX_GROUPS_PER_USER = 1000;
/** Rooms one RoomList names at most (about 40 bytes each: well within one frame). */
export const MAX_LISTED_ROOMS = 10_000;
/**
 * Rooms of one creator a RoomList names at most (its biggest): a few names, each with its 1,000
 * groups, must not fill the list (PROTOCOL.md §8.2). The relay's member counts come from
 * committers' hints, so counts alone could be inflated; this cap cannot.
 */
export const MAX_LISTED_ROOMS_PER_CREATOR = 32;
/** Commits returned by one FetchCommits at most (and at most half a frame of bytes). */
export const MAX_COMMITS_PER_FETCH = 64;

export interface MlsDsDeps {
  readonly store: RelayStore;
  readonly limits: RelayLimits;
  readonly clock: () => number;
  readonly logger: Logger;
  /** Whether a device (queue address) is in the lobby's audience now (lobby-audience.ts: online, or within the grace). */
  readonly inLobby: (address: string) => boolean;
  /** An accepted commit's deliveries are stored: wake the pumps of those online (router.delivered), per queue address. */
  readonly delivered: (rowsPerAddress: ReadonlyMap<string, number>) => void;
  /** Users' devices and their queue addresses (PROTOCOL.md §4.5). */
  readonly devices: DeviceRoutes;
  /** The session's own device's queue address: never a recipient of what it sends; its KeyPackages. */
  readonly address: string;
  /** The relay-wide kept listing of ListRooms (room-listing.ts); without it, each ListRooms queries. */
  readonly roomListing?: RoomListing;
  /**
   * A queue address's usage, stored and waiting for the group commit (session.ts): a commit's
   * deliveries are held to the sender's share of each (§8.3). Absent: the stored usage.
   */
  readonly queueUsage?: (address: string) => QueueUsage;
}

/** The conversation a group id names, or undefined when it names none (the lookup then finds nothing). */
function safeConversationOfGroupId(groupId: Uint8Array): ReturnType<typeof conversationOfGroupId> | undefined {
  try {
    return conversationOfGroupId(groupId);
  } catch {
    return undefined;
  }
}

/** The rows per recipient of stored deliveries (to wake pumps). */
function rowsPerRecipient(reqs: readonly EnqueueRequest[]): Map<string, number> {
  const rows = new Map<string, number>();
  for (const r of reqs) for (const u of r.recipients) rows.set(u, (rows.get(u) ?? 0) + 1);
  return rows;
}

function encodeMlsDelivery(d: Partial<MlsDelivery> & Pick<MlsDelivery, "kind" | "groupId" | "sender" | "mls">): Buffer {
  const bytes = MlsDelivery.encode({ ratchetTree: Buffer.alloc(0), epoch: 0, senderDevice: "", ...d }).finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}


interface ParsedGroupInfo {
  readonly groupId: Buffer;
  readonly conversationId: string;
  readonly epoch: number;
}

export class MlsDeliveryService {
  /** The most elements of each list a client's MLS structure may have before it is decoded (mls-shape.ts, §8.2). */
  private readonly shape: MlsShapeBounds;

  constructor(private readonly d: MlsDsDeps) {
    this.shape = shapeBoundsFor(d.limits);
  }

  /** The sending session's device id (MlsDelivery.sender_device). */
  private get senderDevice(): string {
    return this.d.devices.deviceIdOf(this.d.address);
  }

  /** PublishKeyPackages (mls-key-packages.ts). */
  publishKeyPackages(user: DirectoryUser, req: PublishKeyPackages): ResponseFrame {
    return publishKeyPackages(this.d, user, req);
  }

  /** ClaimKeyPackages (mls-key-packages.ts). */
  claimKeyPackages(user: DirectoryUser, req: ClaimKeyPackages): ResponseFrame {
    return claimKeyPackages(this.d, user, req);
  }

  /** PublishGroupInfo: registers a new group, or replaces the GroupInfo of a known group's current epoch. */
  publishGroupInfo(user: DirectoryUser, req: PublishGroupInfo): ResponseFrame {
    const me = user.record.username;
    const gi = this.parseGroupInfo(req.groupInfo);
    const s = this.d.store.mls;
    const known = s.group(gi.groupId);
    if (known === undefined) {
      const conv = parseConversationId(gi.conversationId)!;
      if (conv.kind === "dm" && dmPeer(conv, me) === undefined) {
        throw new Refusal(ErrorCode.ERROR_CODE_BAD_CONVERSATION, `you are not a party of ${conv.id}; you cannot create its group`);
      }
      if (s.groupsCreatedBy(me) >= MAX_GROUPS_PER_USER) throw new Refusal(ErrorCode.ERROR_CODE_MLS_LIMIT, `you created ${MAX_GROUPS_PER_USER} groups on this relay, the most one user may`);
      const outcome = s.createGroup({ groupId: gi.groupId, conversationId: gi.conversationId, creator: me, epoch: gi.epoch, groupInfo: Buffer.from(req.groupInfo), groupInfoEpoch: gi.epoch });
      if (outcome === "conversation-taken") {
        throw new Refusal(ErrorCode.ERROR_CODE_BAD_CONVERSATION, `${gi.conversationId} already has a group on this relay; join it (FetchGroupInfo) instead`);
      }
      if (conv.kind === "room") this.d.roomListing?.changed();
      this.d.logger.info("mls.group.created", { user: me, conversation: conv.kind, epoch: gi.epoch });
      return this.groupInfoResult(req.requestId, gi.groupId);
    }
    if (gi.epoch !== known.epoch) throw new Refusal(ErrorCode.ERROR_CODE_EPOCH_TAKEN, `the group is at epoch ${known.epoch}, not ${gi.epoch}`);
    // §8.2: whoever's commit made the current epoch (kept in the group's record: the commit itself
    // may be gone by the per-user bound), or its creator if no commit was accepted since.
    const author = s.epochCommitter(gi.groupId) ?? known.creator;
    if (author !== me) throw new Refusal(ErrorCode.ERROR_CODE_FORGED_SENDER, `only ${author ?? "the committer"}, whose commit made epoch ${known.epoch}, may publish its GroupInfo`);
    // In one statement with the epoch check: a commit accepted meanwhile (on this relay or another
    // of the cluster) must not have its newer GroupInfo replaced by this older one.
    if (!s.replaceGroupInfo(gi.groupId, Buffer.from(req.groupInfo), gi.epoch)) {
      throw new Refusal(ErrorCode.ERROR_CODE_EPOCH_TAKEN, `the group moved past epoch ${gi.epoch} meanwhile`);
    }
    return this.groupInfoResult(req.requestId, gi.groupId);
  }

  /**
   * RecreateRoom (PROTOCOL.md §8.2): a new group for a room that has one replaces it,
   * only at the request of the user who created the current one (the relay's record). The relay
   * cannot read the group's creator extension: every member checks that the new group names the
   * same creator and that its Welcome came from them. A room without a group gets it as any new
   * group; a resend of the request once it was done (the answer was lost) is answered again.
   */
  recreateRoom(user: DirectoryUser, req: RecreateRoom): ResponseFrame {
    const me = user.record.username;
    const gi = this.parseGroupInfo(req.groupInfo);
    const conv = parseConversationId(gi.conversationId)!;
    if (conv.kind !== "room") throw new Refusal(ErrorCode.ERROR_CODE_BAD_CONVERSATION, `only a room's group can be re-created, not the group of ${conv.kind === "dm" ? "a direct conversation" : "the lobby"}`);
    const s = this.d.store.mls;
    const cur = s.groupOfConversation(gi.conversationId);
    if (cur === undefined || cur.groupId.equals(gi.groupId)) return this.publishGroupInfo(user, { requestId: req.requestId, groupInfo: req.groupInfo });
    if (cur.creator !== me) throw new Refusal(ErrorCode.ERROR_CODE_FORGED_SENDER, `only ${cur.creator}, who created the group of ${conv.id}, may re-create it`);
    const outcome = s.replaceGroup(cur.groupId, { groupId: gi.groupId, conversationId: gi.conversationId, creator: me, epoch: gi.epoch, groupInfo: Buffer.from(req.groupInfo), groupInfoEpoch: gi.epoch });
    if (outcome !== "created") throw new Refusal(ErrorCode.ERROR_CODE_BAD_CONVERSATION, `the group of ${conv.id} changed meanwhile; try again`);
    this.d.roomListing?.changed();
    this.d.logger.info("mls.group.recreated", { user: me, epoch: gi.epoch, oldEpoch: cur.epoch });
    return this.groupInfoResult(req.requestId, gi.groupId);
  }

  /**
   * ListRooms on a v2 session (PROTOCOL.md §8.2): every room's MLS group, with its
   * member count by the relay's record, and the rooms whose record counts me, with their members;
   * never DMs or the lobby.
   */
  listRooms(user: DirectoryUser, req: ListRooms): ResponseFrame {
    const kept = this.d.roomListing?.current() ?? this.d.store.mls.roomSummaries(MAX_LISTED_ROOMS, MAX_LISTED_ROOMS_PER_CREATOR);
    const joined = this.roomsOf(user.record.username);
    // The user's own rooms are always in `all` too, whatever the caps left out (§8.2), in its order.
    const listed = new Set(kept.map((r) => r.room));
    const missing = joined.filter((r) => !listed.has(r.room)).map((r) => ({ room: r.room, memberCount: r.members.length }));
    const all = missing.length === 0 ? [...kept] : [...kept, ...missing].sort((a, b) => b.memberCount - a.memberCount || Buffer.compare(Buffer.from(a.room), Buffer.from(b.room)));
    return { $case: "roomList", value: { requestId: req.requestId, joined, all } };
  }

  /** The rooms whose MLS group counts the user as a member by the relay's record, with their members (Welcome.rooms on a v2 session). */
  roomsOf(username: string): Array<{ room: string; members: string[] }> {
    return this.d.store.mls.roomsOfMember(username, MAX_ROOMS_PER_USER);
  }

  /**
   * FetchGroupInfo by group id or conversation id. A DM's only to its two users (PROTOCOL.md
   * §8.2, §7.2): decided from the id asked for, before any lookup, so that whether the DM has a
   * group is not told to anyone else either. A room's or the lobby's to any user (joining needs it).
   */
  fetchGroupInfo(user: DirectoryUser, req: FetchGroupInfo): ResponseFrame {
    const byId = req.groupId.length > 0;
    if (byId === (req.conversationId.length > 0)) throw new Refusal(ErrorCode.ERROR_CODE_BAD_FRAME, "FetchGroupInfo needs exactly one of group_id and conversation_id");
    const asked = byId ? safeConversationOfGroupId(req.groupId) : parseConversationId(req.conversationId);
    if (asked?.kind === "dm" && dmPeer(asked, user.record.username) === undefined) {
      throw new Refusal(ErrorCode.ERROR_CODE_BAD_CONVERSATION, `you are not a party of ${asked.id}; only its two users may fetch its group`);
    }
    const g = byId ? this.d.store.mls.group(Buffer.from(req.groupId)) : this.d.store.mls.groupOfConversation(req.conversationId);
    if (g === undefined) throw new Refusal(ErrorCode.ERROR_CODE_UNKNOWN_GROUP, byId ? "this relay keeps no group with that id" : `this relay keeps no group for ${req.conversationId.slice(0, 80)}`);
    return this.groupInfoResult(req.requestId, g.groupId);
  }
  /** SendMls's checks (mls-send.ts). */
  admitMls(user: DirectoryUser, mlsBytes: Uint8Array, ctx: MlsSendContext, messageId: Buffer = mlsMessageId(mlsBytes)): MlsAdmission {
    return admitMls(this.d, this.shape, user, mlsBytes, ctx, messageId);
  }

  /**
   * SendCommit: the first commit for the group's current epoch wins (the database's primary key
   * decides); any other is refused with EPOCH_TAKEN, the epoch and who won it.
   */
  sendCommit(user: DirectoryUser, req: SendCommit): CommitResult {
    const me = user.record.username;
    const refuse = (e: Refusal, groupId: Buffer = Buffer.alloc(0), epoch = 0, current = 0, winner = ""): CommitResult =>
      ({ requestId: req.requestId, accepted: false, code: e.code, detail: e.message, groupId, epoch, currentEpoch: current, winner });
    let groupId: Buffer;
    let epoch: number;
    let groupInfo: Buffer | undefined;
    let hint: MembershipHint;
    let welcome: Buffer | undefined;
    let conv: ReturnType<typeof conversationOfGroupId>;
    try {
      // §8.2: a commit is at most MAX_COMMIT_BYTES (what an honest client's commit budget allows), before decoding.
      if (req.commit.length > MAX_COMMIT_BYTES) throw new Refusal(ErrorCode.ERROR_CODE_FRAME_TOO_LARGE, `the commit has ${req.commit.length} bytes; this relay takes commits of at most ${MAX_COMMIT_BYTES}`);
      // §8.2: its lists walked and bounded before ts-mls builds them (mls-shape.ts).
      const msg = decodeClientMls(req.commit, "the commit", this.shape);
      if (msg.wireformat !== "mls_private_message" && msg.wireformat !== "mls_public_message") throw bad(`the commit is a ${msg.wireformat}, not a group message`);
      const framing = msg.wireformat === "mls_private_message" ? msg.privateMessage : msg.publicMessage.content;
      if (framing.contentType !== "commit") throw bad(`the commit is a ${framing.contentType} message, not a commit`);
      groupId = Buffer.from(framing.groupId);
      epoch = epochNumber(framing.epoch, "the commit");
      const external = msg.wireformat === "mls_public_message" && msg.publicMessage.content.sender.senderType === "new_member_commit";
      hint = checkHint(groupId, external, me, req.added, req.removed);
      conv = mls(() => conversationOfGroupId(groupId));
      checkGroupSize(this.d, groupId, conv.id, me, hint);
      welcome = checkWelcome(req, external, this.shape);
      if (req.groupInfo.length > 0) {
        const gi = this.parseGroupInfo(req.groupInfo);
        if (!gi.groupId.equals(groupId) || gi.epoch !== epoch + 1) throw bad(`the GroupInfo sent with the commit is not for the epoch it makes (${epoch + 1}) of the same group`);
        groupInfo = Buffer.from(req.groupInfo);
      }
      // Last, as the costliest (two Ed25519 verifications): an external join's signature and leaf (§8.2 "External commits").
      if (msg.wireformat === "mls_public_message" && external) checkExternal(this.d, user, msg.publicMessage, groupId, epoch, this.shape);
    } catch (e) {
      if (!(e instanceof Refusal)) throw e;
      return refuse(e);
    }
    // The hint's users, read together before the commit's transaction (not inside it, one by one).
    this.d.devices.prefetch([...hint.added, ...hint.removed]);
    const commit = Buffer.from(req.commit);
    const tree = Buffer.from(req.ratchetTree);
    const lobby = conv.kind === "lobby";
    // In the commit's transaction (store/mls.ts): the commit for every member by the hint as it
    // was before it but the sender (a removed member gets its own removal), the Welcome and its
    // tree once for the added users; the lobby's only for those in its audience now.
    // §4.5: per device: every device of those users but the sending one (my other devices too);
    // a Welcome goes to every device of each added user (those whose KeyPackage it does not use
    // ignore it).
    const senderDevice = this.senderDevice;
    const deliveries = (before: readonly string[]): EnqueueRequest[] => {
      const commitTo = queueAddresses(this.d, before, lobby);
      const out: EnqueueRequest[] = [{
        sender: me, messageId: mlsMessageId(commit), conversationId: conv.id, payload: "mls", recipients: commitTo,
        envelope: encodeMlsDelivery({ kind: MlsKind.MLS_KIND_COMMIT, groupId, sender: me, mls: commit, epoch, senderDevice }),
      }];
      if (welcome !== undefined) {
        const welcomeTo = queueAddresses(this.d, hint.added, lobby);
        out.push({
          sender: me, messageId: mlsMessageId(welcome), conversationId: conv.id, payload: "mls", recipients: welcomeTo,
          envelope: encodeMlsDelivery({ kind: MlsKind.MLS_KIND_WELCOME, groupId, sender: me, mls: welcome, ratchetTree: tree, senderDevice }),
        });
      }
      // §8.3, §13.2: within this sender's share of each recipient device's queue (a Refusal rolls
      // the commit back), except the queues of the users it removes: a member who never reads
      // must not make itself impossible to remove (their removal is the one row they get).
      const removedAddresses = new Set(hint.removed.length === 0 ? [] : queueAddresses(this.d, hint.removed, lobby));
      const perAddress = new Map<string, { rows: number; bytes: number }>();
      for (const r of out) {
        for (const a of new Set(r.recipients)) {
          if (removedAddresses.has(a)) continue;
          const n = perAddress.get(a) ?? { rows: 0, bytes: 0 };
          n.rows++;
          n.bytes += r.envelope.length;
          perAddress.set(a, n);
        }
      }
      checkCommitShare(perAddress, { queueUsage: this.d.queueUsage ?? ((a) => this.d.store.queueUsage(a, me)), limits: this.d.limits });
      return out;
    };
    // §8.2: once accepted, the sender's oldest kept commits go until it is within the per-user
    // bound again, in the commit's transaction (a refused commit trims nothing).
    const bound = { maxCommits: this.d.limits.maxKeptCommitsPerUser, maxBytes: this.d.limits.maxKeptCommitBytesPerUser };
    const out = this.d.store.mls.acceptCommit(groupId, epoch, me, commit, groupInfo, hint, deliveries, bound);
    switch (out.kind) {
      case "accepted": {
        if (hint.added.length > 0 || hint.removed.length > 0 || hint.external) this.d.roomListing?.changed();
        const rows = rowsPerRecipient(out.queued ?? []);
        this.d.logger.info("mls.commit.accepted", { user: me, epoch, bytes: req.commit.length, welcomeBytes: welcome?.length ?? 0, treeBytes: tree.length, queued: rows.size });
        if (rows.size > 0) this.d.delivered(rows);
        return { requestId: req.requestId, accepted: true, code: ErrorCode.ERROR_CODE_UNSPECIFIED, detail: "", groupId, epoch, currentEpoch: epoch + 1, winner: "" };
      }
      case "duplicate":
        this.d.logger.info("mls.commit.duplicate", { user: me, epoch });
        return { requestId: req.requestId, accepted: true, code: ErrorCode.ERROR_CODE_UNSPECIFIED, detail: "", groupId, epoch, currentEpoch: epoch + 1, winner: "" };
      case "not-a-member":
        return refuse(new Refusal(ErrorCode.ERROR_CODE_NOT_A_MEMBER, "you are not a member of this group by the relay's record; join it by external commit or ask a member to add you"), groupId, epoch);
      case "unknown-group":
        return refuse(new Refusal(ErrorCode.ERROR_CODE_UNKNOWN_GROUP, "this relay keeps no group with that id; publish its GroupInfo first"), groupId, epoch);
      case "future-epoch":
        return refuse(new Refusal(ErrorCode.ERROR_CODE_BAD_MLS_MESSAGE, `the commit is for epoch ${epoch}, but the group is at epoch ${out.current}`), groupId, epoch, out.current);
      case "epoch-taken":
        // `winner` is set by the store only for a member by the hint (§8.2: FetchCommits' sender, members only).
        this.d.logger.info("mls.commit.epoch_taken", { user: me, epoch, current: out.current });
        return refuse(new Refusal(ErrorCode.ERROR_CODE_EPOCH_TAKEN,
          `another commit${out.winner === undefined ? "" : ` (by ${out.winner})`} was accepted first for epoch ${epoch}; fetch it, process it and commit again at epoch ${out.current}`),
        groupId, epoch, out.current, out.winner ?? "");
    }
  }

  /** FetchCommits (members by the hint only): accepted commits from an epoch on, bounded by count and half a frame of bytes. */
  fetchCommits(user: DirectoryUser, req: FetchCommits): ResponseFrame {
    const groupId = Buffer.from(req.groupId);
    const g = this.d.store.mls.group(groupId);
    if (g === undefined) throw new Refusal(ErrorCode.ERROR_CODE_UNKNOWN_GROUP, "this relay keeps no group with that id");
    if (!this.d.store.mls.isGroupMember(groupId, user.record.username)) {
      throw new Refusal(ErrorCode.ERROR_CODE_NOT_A_MEMBER, "you are not a member of this group by the relay's record");
    }
    const from = req.fromEpoch > Number.MAX_SAFE_INTEGER ? Number.MAX_SAFE_INTEGER : req.fromEpoch;
    // The store reads the sizes first and then only the commits that fit (PROTOCOL.md §8.2).
    const page = this.d.store.mls.commitPage(groupId, from, MAX_COMMITS_PER_FETCH, Math.floor(this.d.limits.maxFrameBytes / 2));
    const commits = page.commits.map((r) => ({ epoch: r.epoch, commit: r.commit, sender: r.sender }));
    return { $case: "commitList", value: { requestId: req.requestId, groupId, commits, currentEpoch: g.epoch, more: page.more } };
  }

  /**
   * A commit's Welcome and ratchet tree (PROTOCOL.md §8.3): present exactly when the commit is
   * not an external join and adds users (`added` non-empty), the tree exactly with the Welcome;
   * the Welcome an MLSMessage Welcome of our suite. Their size is bounded by the frame that
   * carried them (max_frame_bytes), so each stored delivery fits in one delivery frame.
   */
  private groupInfoResult(requestId: number, groupId: Buffer): ResponseFrame {
    const g = this.d.store.mls.group(groupId)!;
    return { $case: "groupInfoResult", value: { requestId, groupId: g.groupId, groupInfo: g.groupInfo, groupInfoEpoch: g.groupInfoEpoch, currentEpoch: g.epoch } };
  }

  private parseGroupInfo(bytes: Uint8Array): ParsedGroupInfo {
    // §8.2: its extension lists walked and bounded before ts-mls builds them (mls-shape.ts).
    const msg = decodeClientMls(bytes, "the GroupInfo", this.shape);
    if (msg.wireformat !== "mls_group_info") throw bad(`the GroupInfo is a ${msg.wireformat}`);
    const ctx = msg.groupInfo.groupContext;
    if (ctx.cipherSuite !== MLS_SUITE) throw bad(`the GroupInfo uses ${ctx.cipherSuite}, not ${MLS_SUITE}`);
    const conv = mls(() => conversationOfGroupId(ctx.groupId));
    return { groupId: Buffer.from(ctx.groupId), conversationId: conv.id, epoch: epochNumber(ctx.epoch, "the GroupInfo") };
  }
}
