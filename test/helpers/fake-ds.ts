// An in-memory Delivery Service (the relay's MLS side, PROTOCOL.md §8.1, §8.2) for testing the
// conversation engine without a network: KeyPackages (one-time handed out once, then the
// last-resort one), groups registered by their first GroupInfo (first per conversation wins),
// the first commit for an epoch wins (EPOCH_TAKEN otherwise), the membership hint, per-user
// ordered queues with acks (Welcomes with the tree beside them), lobby messages to online users
// only. Hostile tests hook `intercept` to drop, alter or add deliveries.
// Devices (PROTOCOL.md §4.5, §8): a user with a kept device list has one queue per device (the
// primary's is the bare name, a linked device's `user/device_id`); fan-out goes to every device
// of every member user but the sending device; KeyPackages are kept and claimed per device (my
// own other devices too); device lists are published (version must grow) and fetched
// (`serveList` lets a hostile test serve another list to one viewer).
import { createHash } from "node:crypto";
import { MlsDelivery, MlsKind } from "../../src/gen/securechat/v1/chat.js";
import type { DsApi, DsCommit, DsEpochTaken, DsGroupInfo, DsRefused, DsResult, MlsQueued } from "../../src/client/mls/ds-api.js";
import { decodeMls } from "../../src/protocol/mls/client.js";
import { conversationOfGroupId, isLastResort, decodeKeyPackage } from "../../src/protocol/mls/index.js";
import { verifyCredential } from "../../src/protocol/mls/credential.js";
import type { DeviceSeen } from "../../src/gen/securechat/v1/chat.js";
import type { SignedDeviceList } from "../../src/protocol/devices.js";

interface Group {
  readonly id: Uint8Array;
  readonly conv: string;
  epoch: number;
  groupInfo: Uint8Array;
  groupInfoEpoch: number;
  readonly members: Set<string>;
  readonly commits: Map<number, { commit: Uint8Array; sender: string }>;
  lastCommitter: string;
  /** Who registered it (the only one who may re-create its room, §8.2). */
  readonly registeredBy: string;
}

interface Queued extends MlsQueued { acked: boolean }

export interface Recipient {
  deliver(q: MlsQueued): Promise<void>;
  idle(): Promise<void>;
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
const refuse = (code: string, detail: string): DsRefused => ({ ok: false, code, detail });

function framing(bytes: Uint8Array): { groupId: Uint8Array; epoch: number; contentType: string; external: boolean } {
  const msg = decodeMls(bytes, "MLS message");
  if (msg.wireformat === "mls_private_message") return { groupId: msg.privateMessage.groupId, epoch: Number(msg.privateMessage.epoch), contentType: msg.privateMessage.contentType, external: false };
  if (msg.wireformat === "mls_public_message") {
    const c = msg.publicMessage.content;
    return { groupId: c.groupId, epoch: Number(c.epoch), contentType: c.contentType, external: c.sender.senderType === "new_member_commit" };
  }
  throw new Error(`not a group message: ${msg.wireformat}`);
}

function groupInfoOf(bytes: Uint8Array): { groupId: Uint8Array; epoch: number } {
  const msg = decodeMls(bytes, "GroupInfo");
  if (msg.wireformat !== "mls_group_info") throw new Error("not a GroupInfo");
  return { groupId: msg.groupInfo.groupContext.groupId, epoch: Number(msg.groupInfo.groupContext.epoch) };
}

export class FakeDs {
  private readonly keyPackages = new Map<string, { oneTime: Uint8Array[]; lastResort: Uint8Array | undefined }>();
  private readonly groups = new Map<string, Group>();
  private readonly byConversation = new Map<string, string>();
  private readonly queues = new Map<string, Queued[]>();
  private readonly online = new Map<string, Recipient>();
  private seq = 0;
  /** The next this many SendCommits are taken (or refused) as usual but answered CONNECTION_LOST: the answer lost on the way. */
  loseCommitAnswers = 0;
  /** The next this many PublishGroupInfos are taken as usual but answered CONNECTION_LOST: the answer lost on the way. */
  losePublishAnswers = 0;
  /** The next this many RecreateRooms are done as usual but answered CONNECTION_LOST: the answer lost on the way. */
  loseRecreateAnswers = 0;
  /** The next this many SendCommits are lost on the way (never taken) and answered CONNECTION_LOST. */
  dropCommits = 0;
  /** Every delivery passes here: return undefined to drop it, or another item (hostile relay). */
  intercept: ((to: string, q: MlsQueued) => MlsQueued | undefined) | undefined;
  /** FetchGroupInfo of a conversation answered with these bytes instead of the kept GroupInfo (hostile relay: an old one). */
  readonly groupInfoServed = new Map<string, Uint8Array>();
  /** Commits refused because their epoch was taken (races). */
  epochTaken = 0;
  /** Per SendCommit received: the bytes of its commit, Welcome, tree and GroupInfo, and whether it carried a GroupInfo. */
  readonly commitsSent: { bytes: number; withGroupInfo: boolean }[] = [];
  /** PublishGroupInfo requests received. */
  groupInfoPublished = 0;
  /** Claims served so far, per user (tests of KeyPackage use). */
  readonly claims = new Map<string, number>();
  /** KeyPackages handed out per queue address (a device's packages used up). */
  readonly claimedFrom = new Map<string, number>();

  /** Kept device lists per user (PROTOCOL.md §4.5). */
  private readonly lists = new Map<string, SignedDeviceList>();
  /** A hostile relay: the list served to `viewer` for `username` (undefined: the kept one). */
  serveList: ((viewer: string, username: string) => SignedDeviceList | undefined) | undefined;

  /**
   * The queue address of a device: the bare name for the primary (and for a user without a
   * list, or no device id), `user/device_id` for a linked device (PROTOCOL.md §8) and for a
   * device its user's list does not name (an unlinked one a hostile relay still carries: never
   * the primary's queue, whose messages it would otherwise take for its own).
   */
  address(user: string, deviceId = ""): string {
    const l = this.lists.get(user);
    const d = l?.devices.find((x) => x.deviceId === deviceId);
    if (d !== undefined) return d.primary ? user : `${user}/${deviceId}`;
    return l === undefined || deviceId === "" ? user : `${user}/${deviceId}`;
  }

  /** Every queue address of a user: one per device in the kept list, or the bare name. */
  private addresses(user: string): { address: string; deviceId: string }[] {
    const l = this.lists.get(user);
    if (l === undefined) return [{ address: user, deviceId: "" }];
    return l.devices.map((d) => ({ address: d.primary ? user : `${user}/${d.deviceId}`, deviceId: d.deviceId }));
  }

  /** The DsApi of one device's session (`deviceId` "" : the user's only or primary device). */
  api(user: string, deviceId = ""): DsApi {
    const from = (): string => this.address(user, deviceId);
    return {
      publishKeyPackages: async (oneTime, lastResort) => this.publishKeyPackages(user, deviceId, oneTime, lastResort),
      claimKeyPackages: async (usernames, deviceIds) => this.claim(user, from(), usernames, deviceIds),
      fetchDeviceLists: async (usernames) => this.fetchDeviceLists(user, usernames),
      publishDeviceList: async (list) => this.publishDeviceList(user, list),
      publishGroupInfo: async (gi) => {
        const r = this.publishGroupInfo(user, gi);
        if (this.losePublishAnswers <= 0) return r;
        this.losePublishAnswers--;
        return { ok: false, code: "CONNECTION_LOST", detail: "the connection to the relay was lost" };
      },
      recreateRoom: async (gi) => {
        const r = this.recreateRoom(user, gi);
        if (this.loseRecreateAnswers <= 0) return r;
        this.loseRecreateAnswers--;
        return { ok: false, code: "CONNECTION_LOST", detail: "the connection to the relay was lost" };
      },
      fetchGroupInfo: async (by) => this.fetchGroupInfo(by),
      sendCommit: async (c) => {
        if (this.dropCommits > 0) {
          this.dropCommits--;
          return { ok: false, code: "CONNECTION_LOST", detail: "the connection to the relay was lost" };
        }
        const r = this.sendCommit(user, from(), deviceId, c);
        if (this.loseCommitAnswers <= 0) return r;
        this.loseCommitAnswers--;
        return { ok: false, code: "CONNECTION_LOST", detail: "the connection to the relay was lost" };
      },
      fetchCommits: async (groupId, fromEpoch) => this.fetchCommits(user, groupId, fromEpoch),
      sendMls: async (mls) => this.sendMls(user, from(), deviceId, mls),
    };
  }

  /** The device is online: deliveries are pushed to it (queued ones first, in order). */
  connect(user: string, r: Recipient, deviceId = ""): void {
    const a = this.address(user, deviceId);
    this.online.set(a, r);
    for (const q of this.queues.get(a) ?? []) q.acked = false;
    const pending = this.queues.get(a) ?? [];
    this.queues.set(a, []);
    for (const q of pending) this.push(a, q);
  }

  disconnect(user: string, deviceId = ""): void {
    this.online.delete(this.address(user, deviceId));
  }

  /** Whether any device of the user is online. */
  isOnline(user: string): boolean {
    return this.addresses(user).some((a) => this.online.has(a.address));
  }

  /** What waits (unacked) for a device. */
  waiting(user: string, deviceId = ""): readonly MlsQueued[] {
    return (this.queues.get(this.address(user, deviceId)) ?? []).filter((q) => !q.acked);
  }

  lastResortOf(user: string, deviceId = ""): Uint8Array | undefined {
    return this.keyPackages.get(this.address(user, deviceId))?.lastResort;
  }

  oneTimeLeft(user: string, deviceId = ""): number {
    return this.keyPackages.get(this.address(user, deviceId))?.oneTime.length ?? 0;
  }

  /** The list the relay keeps for a user. */
  listOf(user: string): SignedDeviceList | undefined {
    return this.lists.get(user);
  }

  groupOf(conv: string): { epoch: number; members: readonly string[]; groupId: Uint8Array; groupInfo: Uint8Array; groupInfoEpoch: number } | undefined {
    const id = this.byConversation.get(conv);
    const g = id === undefined ? undefined : this.groups.get(id);
    return g === undefined ? undefined : { epoch: g.epoch, members: [...g.members].sort(), groupId: g.id, groupInfo: g.groupInfo, groupInfoEpoch: g.groupInfoEpoch };
  }

  /** Removes a stored commit (the relay lost it: FetchCommits cannot give it). */
  forgetCommit(conv: string, epoch: number): void {
    const id = this.byConversation.get(conv);
    if (id !== undefined) this.groups.get(id)?.commits.delete(epoch);
  }

  /** Queues an arbitrary delivery (hostile relay). */
  inject(to: string, conversationId: string, item: MlsDelivery): void {
    this.enqueue(to, conversationId, item);
  }

  // ---- the DS ---------------------------------------------------------------------------------

  private publishKeyPackages(user: string, deviceId: string, oneTime: readonly Uint8Array[], lastResort: Uint8Array | undefined): DsResult<{ oneTimeLeft: number; lastResortPresent: boolean }> {
    if (oneTime.length === 0 && lastResort === undefined) return refuse("BAD_FRAME", "PublishKeyPackages carries no KeyPackage");
    const device = this.lists.get(user)?.devices.find((d) => d.deviceId === deviceId);
    for (const b of [...oneTime, ...(lastResort ? [lastResort] : [])]) {
      const kp = decodeKeyPackage(b);
      if (verifyCredential(kp.leafNode.credential, kp.leafNode.signaturePublicKey).username !== user) return refuse("FORGED_SENDER", "KeyPackage of another user");
      if (isLastResort(kp) !== (b === lastResort)) return refuse("BAD_MLS_MESSAGE", "last_resort marker");
      if (device !== undefined && !device.mlsSignatureKey.equals(Buffer.from(kp.leafNode.signaturePublicKey))) return refuse("BAD_KEY_PACKAGE", "KeyPackage of another device");
    }
    const a = this.address(user, deviceId);
    let k = this.keyPackages.get(a);
    if (k === undefined) this.keyPackages.set(a, (k = { oneTime: [], lastResort: undefined }));
    k.oneTime.push(...oneTime);
    if (lastResort !== undefined) k.lastResort = lastResort;
    return { ok: true, oneTimeLeft: k.oneTime.length, lastResortPresent: k.lastResort !== undefined };
  }

  /** One KeyPackage per device of each user (my own user: my other devices only; without a list, as before: not oneself). */
  private claim(user: string, from: string, usernames: readonly string[], deviceIds: readonly string[] = []): DsResult<{ entries: { username: string; deviceId: string; keyPackage: Uint8Array; lastResort: boolean }[]; missing: string[] }> {
    const entries: { username: string; deviceId: string; keyPackage: Uint8Array; lastResort: boolean }[] = [];
    const missing: string[] = [];
    for (const u of usernames) {
      if (u === user && !this.lists.has(u)) return refuse("BAD_FRAME", "not oneself");
      this.claims.set(u, (this.claims.get(u) ?? 0) + 1);
      let any = false;
      for (const { address, deviceId } of this.addresses(u)) {
        if (address === from || (deviceIds.length > 0 && !deviceIds.includes(deviceId))) continue;
        const k = this.keyPackages.get(address);
        const one = k?.oneTime.shift();
        this.claimedFrom.set(address, (this.claimedFrom.get(address) ?? 0) + 1);
        if (one !== undefined) entries.push({ username: u, deviceId, keyPackage: one, lastResort: false });
        else if (k?.lastResort !== undefined) entries.push({ username: u, deviceId, keyPackage: k.lastResort, lastResort: true });
        else continue;
        any = true;
      }
      if (!any) missing.push(u);
    }
    return { ok: true, entries, missing };
  }

  private fetchDeviceLists(viewer: string, usernames: readonly string[]): DsResult<{ lists: SignedDeviceList[]; seen: DeviceSeen[] }> {
    const lists: SignedDeviceList[] = [];
    for (const u of new Set(usernames)) {
      const l = this.serveList?.(viewer, u) ?? this.lists.get(u);
      if (l !== undefined) lists.push(l);
    }
    return { ok: true, lists, seen: [] };
  }

  /** Keeps a newer list of the user's own (the real relay also verifies it against the bound identity key); drops the queues and KeyPackages of devices it no longer names. */
  private publishDeviceList(user: string, list: SignedDeviceList): DsResult<{ list: SignedDeviceList }> {
    if (list.username !== user) return refuse("BAD_DEVICE_LIST", "a device list of another user");
    const kept = this.lists.get(user);
    if (kept !== undefined && list.version <= kept.version) return refuse("BAD_DEVICE_LIST", `the relay keeps version ${kept.version} already`);
    const before = this.addresses(user).map((a) => a.address);
    this.lists.set(user, list);
    const now = new Set(this.addresses(user).map((a) => a.address));
    for (const a of before) {
      if (now.has(a)) continue;
      this.online.delete(a);
      this.queues.delete(a);
      this.keyPackages.delete(a);
    }
    return { ok: true, list };
  }

  private info(g: Group): DsGroupInfo {
    return { groupId: g.id, groupInfo: g.groupInfo, groupInfoEpoch: g.groupInfoEpoch, currentEpoch: g.epoch };
  }

  private publishGroupInfo(user: string, bytes: Uint8Array): DsResult<DsGroupInfo> {
    this.groupInfoPublished++;
    const { groupId, epoch } = groupInfoOf(bytes);
    const conv = conversationOfGroupId(groupId);
    const g = this.groups.get(hex(groupId));
    if (g === undefined) {
      if (this.byConversation.has(conv.id)) return refuse("BAD_CONVERSATION", `${conv.id} already has a group`);
      if (conv.kind === "dm" && !conv.members.includes(user)) return refuse("BAD_CONVERSATION", "not your DM");
      const ng: Group = { id: groupId, conv: conv.id, epoch, groupInfo: bytes, groupInfoEpoch: epoch, members: new Set([user]), commits: new Map(), lastCommitter: user, registeredBy: user };
      this.groups.set(hex(groupId), ng);
      this.byConversation.set(conv.id, hex(groupId));
      return { ok: true, ...this.info(ng) };
    }
    if (epoch !== g.epoch) return refuse("EPOCH_TAKEN", `the group is at epoch ${g.epoch}`);
    if (user !== g.lastCommitter) return refuse("FORGED_SENDER", "not the last committer");
    g.groupInfo = bytes;
    g.groupInfoEpoch = epoch;
    return { ok: true, ...this.info(g) };
  }

  /** §8.2 RecreateRoom: the new group of a room replaces the current one, for the user who registered the current one. */
  private recreateRoom(user: string, bytes: Uint8Array): DsResult<DsGroupInfo> {
    const { groupId, epoch } = groupInfoOf(bytes);
    const conv = conversationOfGroupId(groupId);
    const cur = this.groups.get(this.byConversation.get(conv.id) ?? "");
    if (conv.kind !== "room" || cur === undefined) return refuse("UNKNOWN_GROUP", "no such room");
    if (cur.registeredBy !== user) return refuse("FORGED_SENDER", "only the room's creator re-creates it");
    const ng: Group = { id: groupId, conv: conv.id, epoch, groupInfo: bytes, groupInfoEpoch: epoch, members: new Set([user]), commits: new Map(), lastCommitter: user, registeredBy: user };
    this.groups.set(hex(groupId), ng);
    this.byConversation.set(conv.id, hex(groupId));
    return { ok: true, ...this.info(ng) };
  }

  private fetchGroupInfo(by: { groupId: Uint8Array } | { conversationId: string }): DsResult<DsGroupInfo> {
    const id = "groupId" in by ? hex(by.groupId) : this.byConversation.get(by.conversationId);
    const g = id === undefined ? undefined : this.groups.get(id);
    if (g === undefined) return refuse("UNKNOWN_GROUP", "no such group");
    const served = this.groupInfoServed.get(g.conv);
    if (served !== undefined) return { ok: true, ...this.info(g), groupInfo: served };
    return { ok: true, ...this.info(g) };
  }

  private sendCommit(user: string, from: string, deviceId: string, c: DsCommit): DsResult<{ epoch: number; currentEpoch: number }> | DsEpochTaken {
    this.commitsSent.push({ bytes: c.commit.length + (c.welcome?.length ?? 0) + (c.ratchetTree?.length ?? 0) + c.groupInfo.length, withGroupInfo: c.groupInfo.length > 0 });
    let f: ReturnType<typeof framing>;
    try {
      f = framing(c.commit);
    } catch (e) {
      return refuse("BAD_MLS_MESSAGE", (e as Error).message);
    }
    if (f.contentType !== "commit") return refuse("BAD_MLS_MESSAGE", "not a commit");
    const g = this.groups.get(hex(f.groupId));
    if (g === undefined) return refuse("UNKNOWN_GROUP", "no such group");
    if (!g.members.has(user) && !f.external) return refuse("NOT_A_MEMBER", "not a member");
    if (f.epoch > g.epoch) return refuse("BAD_MLS_MESSAGE", `the group is at epoch ${g.epoch}`);
    // As the relay: the same commit again from its sender (a resend after a lost answer) is accepted again, and changes nothing.
    const taken = g.commits.get(f.epoch);
    if (taken !== undefined && taken.sender === user && Buffer.from(taken.commit).equals(Buffer.from(c.commit))) return { ok: true, epoch: f.epoch, currentEpoch: f.epoch + 1 };
    if (f.epoch < g.epoch || g.commits.has(f.epoch)) {
      this.epochTaken++;
      return { ok: false, code: "EPOCH_TAKEN", detail: "epoch taken", currentEpoch: g.epoch, winner: g.commits.get(f.epoch)?.sender ?? "" };
    }
    const before = new Set(g.members);
    g.commits.set(f.epoch, { commit: c.commit, sender: user });
    g.epoch = f.epoch + 1;
    g.lastCommitter = user;
    for (const a of c.added) g.members.add(a);
    if (f.external) g.members.add(user);
    for (const r of c.removed) g.members.delete(r);
    if (c.groupInfo.length > 0) {
      g.groupInfo = c.groupInfo;
      g.groupInfoEpoch = g.epoch;
    }
    const lobby = g.conv === "lobby";
    for (const m of before) {
      for (const { address } of this.addresses(m)) {
        if (address === from || (lobby && !this.online.has(address))) continue;
        this.enqueue(address, g.conv, { kind: MlsKind.MLS_KIND_COMMIT, groupId: Buffer.from(g.id), sender: user, mls: Buffer.from(c.commit), ratchetTree: Buffer.alloc(0), epoch: f.epoch, senderDevice: deviceId });
      }
    }
    if (c.welcome !== undefined && c.welcome.length > 0) {
      for (const a of new Set(c.added)) {
        for (const { address } of this.addresses(a)) {
          if (address === from) continue;
          this.enqueue(address, g.conv, { kind: MlsKind.MLS_KIND_WELCOME, groupId: Buffer.from(g.id), sender: user, mls: Buffer.from(c.welcome), ratchetTree: Buffer.from(c.ratchetTree ?? new Uint8Array(0)), epoch: 0, senderDevice: deviceId });
        }
      }
    }
    return { ok: true, epoch: f.epoch, currentEpoch: g.epoch };
  }

  private fetchCommits(user: string, groupId: Uint8Array, fromEpoch: number): DsResult<{ commits: { epoch: number; commit: Uint8Array; sender: string }[]; currentEpoch: number; more: boolean }> {
    const g = this.groups.get(hex(groupId));
    if (g === undefined) return refuse("UNKNOWN_GROUP", "no such group");
    if (!g.members.has(user)) return refuse("NOT_A_MEMBER", "not a member");
    const commits: { epoch: number; commit: Uint8Array; sender: string }[] = [];
    for (let e = fromEpoch; e < g.epoch; e++) {
      const c = g.commits.get(e);
      if (c === undefined) break;
      commits.push({ epoch: e, ...c });
    }
    return { ok: true, commits, currentEpoch: g.epoch, more: false };
  }

  private sendMls(user: string, from: string, deviceId: string, mls: Uint8Array): DsResult<{ queuedFor: string[] }> {
    let f: ReturnType<typeof framing>;
    try {
      f = framing(mls);
    } catch (e) {
      return refuse("BAD_MLS_MESSAGE", (e as Error).message);
    }
    if (f.contentType === "commit") return refuse("BAD_MLS_MESSAGE", "commits go by SendCommit");
    const g = this.groups.get(hex(f.groupId));
    if (g === undefined) return refuse("UNKNOWN_GROUP", "no such group");
    if (!g.members.has(user)) return refuse("NOT_A_MEMBER", "not a member");
    if (f.epoch !== g.epoch && f.epoch !== g.epoch - 1) return refuse("BAD_MLS_MESSAGE", `the group is at epoch ${g.epoch}`);
    // As the relay (§8.3): a proposal only for the current epoch (one of the epoch before can never be committed).
    if (f.contentType === "proposal" && f.epoch !== g.epoch) return { ok: false, code: "EPOCH_TAKEN", detail: "the group moved on" };
    const kind = f.contentType === "proposal" ? MlsKind.MLS_KIND_PROPOSAL : MlsKind.MLS_KIND_APPLICATION;
    const queuedFor: string[] = [];
    const lobby = g.conv === "lobby";
    for (const m of g.members) {
      for (const { address } of this.addresses(m)) {
        if (address === from) continue;
        if (lobby && !this.online.has(address)) continue;
        if (!this.online.has(address) && m !== user && !queuedFor.includes(m)) queuedFor.push(m);
        this.enqueue(address, g.conv, { kind, groupId: Buffer.from(g.id), sender: user, mls: Buffer.from(mls), ratchetTree: Buffer.alloc(0), epoch: f.epoch, senderDevice: deviceId });
      }
    }
    return { ok: true, queuedFor };
  }

  // ---- the queues -------------------------------------------------------------------------------

  private enqueue(to: string, conversationId: string, item: MlsDelivery): void {
    let q: MlsQueued | undefined = { seq: ++this.seq, conversationId, relayTimeMs: Date.now(), item };
    if (this.intercept !== undefined) q = this.intercept(to, q);
    if (q === undefined) return;
    const entry: Queued = { ...q, acked: false };
    const r = this.online.get(to);
    if (r === undefined) {
      let list = this.queues.get(to);
      if (list === undefined) this.queues.set(to, (list = []));
      list.push(entry);
      return;
    }
    this.push(to, entry);
  }

  /** Hands one item to an online recipient (without waiting: the engine keeps the order); acked when it resolves. */
  private push(to: string, entry: Queued): void {
    const r = this.online.get(to);
    if (r === undefined) return;
    let list = this.queues.get(to);
    if (list === undefined) this.queues.set(to, (list = []));
    list.push(entry);
    r.deliver(entry).then(() => {
      entry.acked = true;
      const l = this.queues.get(to);
      if (l !== undefined) this.queues.set(to, l.filter((x) => !x.acked || x !== entry));
    }, () => {});
  }

  /** Ids of MLS messages (as the relay names them: SHA-256(mls)[0..16]). */
  static messageId(mls: Uint8Array): string {
    return createHash("sha256").update(mls).digest().subarray(0, 16).toString("hex");
  }
}
