// Receiving in the protocol v2 engine (PROTOCOL.md §8.1, §10.1, §12): each MLS
// message the relay queued for me, in its order — a Welcome (join, or a notice when it does not
// open), a commit (the room policy, a membership line naming who, saved), a member's leave
// proposal (committed by one member: the first in leaf order at once, the next ones in turn
// after a delay), an application message (app-messages.ts: opened by the content layer, its MLS
// sender checked against the relay's) — and messages of a future epoch held until the commit
// leading there arrives (held.ts); catching up on them (FetchCommits, else a re-join) is in recovery.ts.
import { MlsKind } from "../../gen/securechat/v1/chat.js";
import { conversationOfGroupId, isMlsProtocolError, MlsGroup, type MembershipChange, type MlsMember } from "../../protocol/mls/index.js";
import { DeviceListsUnanswered } from "../devices-api.js";
import { MlsStoreError } from "../mls-store.js";
import type { MembershipLine } from "../types.js";
import type { MlsQueued } from "./ds-api.js";
import { mlsMessageId } from "./ds-transport.js";
import { readFraming, sameBytes } from "./framing.js";
import { incomingLeaves, judgeCommit, LEAVE_COMMIT_STEP_MS, leaveCommitRank, linesOf, refusedLine, unlistedLeaf, type Refusal } from "./policy.js";
import { deviceName } from "./devices.js";
import { deviceBySignatureKey } from "../../protocol/devices.js";
import type { EngineState } from "./engine-state.js";
import { ApplicationMessages, PROCESSED_IDS_KEPT } from "./app-messages.js";
import type { Committer } from "./commit.js";
import type { Recreator } from "./recreate.js";
import { Recovery } from "./recovery.js";

export class Receiver {
  /** Ids (SHA-256(mls)[0..16], hex) of the messages processed lately, oldest first. */
  private readonly processed = new Set<string>();
  /** Deliveries dropped as redeliveries of what was processed (not counted as shown on the caught-up line). */
  readonly redelivered = new WeakSet<MlsQueued>();
  /** The epoch at which a DM's refused change was last told (refusedCommit: once per epoch). */
  private readonly refusalsTold = new Map<string, bigint>();
  /** Leave proposals I commit only if nobody before me in leaf order did (policy.ts leaveCommitRank). */
  private readonly leaves = new Map<string, { leaver: string; epoch: bigint; dueMs: number }>();
  /** Set once both exist (a leave proposal is committed here; a commit race is settled there). */
  c!: Committer;
  /** Re-creating a room after a commit refused by policy (recreate.ts); set by the engine. */
  recreator: Recreator | undefined;

  /** Held messages, catching up and re-joining (recovery.ts), and the conversations stopped at a refused commit. */
  readonly recovery: Recovery;
  /** Application messages: checked, opened by the content layer and shown (app-messages.ts). */
  private readonly messages: ApplicationMessages;

  constructor(private readonly s: EngineState) {
    this.messages = new ApplicationMessages(s);
    this.recovery = new Recovery(s, this);
  }

  /** Handles one message; false when it was held (its `done` is called later). */
  async handle(q: MlsQueued, done: () => void): Promise<boolean> {
    this.recordViews();
    try {
      return await this.handleOne(q, done);
    } finally {
      this.recordViews();
    }
  }

  /**
   * §12 fork check: hands the content layer my epoch and epoch authenticator of each room whose
   * group I hold (it keeps a few epochs per room, tells them to the room's members in my DMs and
   * compares what they tell me).
   */
  private recordViews(): void {
    const content = this.s.d.content;
    if (content.epochView === undefined) return;
    for (const [conv, g] of this.s.groups) {
      if (!conv.startsWith("#") || !g.active) continue;
      try {
        content.epochView(conv, g.groupId, Number(g.epoch), g.epochAuthenticator);
      } catch (e) {
        this.s.d.logger.warn("mls.epoch.view_failed", { conversation: conv, error: (e as Error).message });
      }
    }
  }

  private async handleOne(q: MlsQueued, done: () => void): Promise<boolean> {
    const item = q.item;
    this.s.d.logger.debug("mls.deliver", { conversation: q.conversationId, seq: q.seq, kind: item.kind, sender: item.sender });
    // Application messages are saved once per batch (EngineState.settle); a Welcome, commit or
    // proposal starts from saved state: what it reloads when refused, and what a crash after it
    // replays, is the state just before it (§10.4).
    if (item.kind !== MlsKind.MLS_KIND_APPLICATION) this.s.settle();
    if (item.kind === MlsKind.MLS_KIND_WELCOME) {
      await this.onWelcome(q);
      return true;
    }
    const conv = q.conversationId;
    let named: string;
    try {
      named = conversationOfGroupId(item.groupId).id;
    } catch {
      this.s.d.logger.warn("mls.deliver.bad_group_id", { conversation: conv, seq: q.seq });
      return true;
    }
    if (named !== conv) {
      this.s.d.logger.warn("mls.deliver.wrong_conversation", { conversation: conv, named });
      this.s.d.emit({ type: "refused", conversationId: conv, from: item.sender });
      return true;
    }
    const g = this.s.groups.get(conv);
    if (g === undefined || !g.active || !sameBytes(g.groupId, item.groupId)) {
      this.s.d.logger.info("mls.deliver.no_group", { conversation: conv, kind: item.kind });
      return true;
    }
    let f: ReturnType<typeof readFraming>;
    try {
      f = readFraming(item.mls);
    } catch (e) {
      this.s.d.logger.warn("mls.deliver.malformed", { conversation: conv, error: (e as Error).message });
      this.s.d.emit({ type: "refused", conversationId: conv, from: item.sender });
      return true;
    }
    const expected = item.kind === MlsKind.MLS_KIND_COMMIT ? "commit" : item.kind === MlsKind.MLS_KIND_PROPOSAL ? "proposal" : item.kind === MlsKind.MLS_KIND_APPLICATION ? "application" : undefined;
    if (expected === undefined || f.contentType !== expected || !sameBytes(f.groupId, item.groupId)) {
      this.s.d.logger.warn("mls.deliver.kind_mismatch", { conversation: conv, kind: item.kind, content: f.contentType });
      this.s.d.emit({ type: "refused", conversationId: conv, from: item.sender });
      return true;
    }
    const epoch = Number(g.epoch);
    if (f.epoch > epoch) {
      const full = this.s.held.hold(conv, q, f.epoch, this.s.d.clock(), done);
      this.s.d.logger.info("mls.deliver.held", { conversation: conv, epoch: f.epoch, at: epoch, held: this.s.held.count(conv) });
      if (full && !this.s.recovering.has(conv) && !this.recovery.undecided.has(conv) && !this.recovery.awaitingList.has(conv)) await this.recovery.recover(conv);
      // Stopped at a refused device: a later commit (not the device's own) may be one taking it out.
      else if (f.contentType === "commit" && this.recovery.rejoinable.has(conv)) await this.recovery.rejoinPastRefused(conv, item.senderDevice);
      return false;
    }
    if (f.contentType !== "application" && f.epoch < epoch) {
      // A commit or proposal of an epoch already left: a replay, or one I fetched before it came.
      this.s.d.logger.info("mls.deliver.stale", { conversation: conv, epoch: f.epoch, at: epoch, kind: f.contentType });
      return true;
    }
    // A redelivery of a message processed in this run (its ack was lost with the session): its
    // keys are used, it would not open again; drop it without a word (§8.1: the relay's id).
    const id = mlsMessageId(item.mls).toString("hex");
    if (this.processed.has(id)) {
      this.s.d.logger.info("mls.deliver.redelivered", { conversation: conv, seq: q.seq });
      this.redelivered.add(q);
      return true;
    }
    if (f.contentType === "commit") await this.applyCommit(conv, g, item.mls, item.sender, item.senderDevice);
    else if (f.contentType === "proposal") await this.onProposal(conv, g, item.mls, item.sender);
    else await this.messages.onApplication(conv, g, q);
    this.processed.add(id);
    if (this.processed.size > PROCESSED_IDS_KEPT) this.processed.delete(this.processed.values().next().value as string);
    return true;
  }

  async onWelcome(q: MlsQueued): Promise<void> {
    const client = this.s.mustClient();
    const item = q.item;
    const before = this.s.groups.get(q.conversationId);
    if (before?.active === true && item.groupId.length > 0 && sameBytes(before.groupId, item.groupId)) {
      this.s.d.logger.info("mls.welcome.already_member", { conversation: q.conversationId });
      return;
    }
    let joined: { group: MlsGroup; lastResort: boolean; addedBy: MlsMember };
    try {
      joined = await this.s.d.store.joinFromWelcome(client, item.mls, item.ratchetTree, this.s.groupOptions());
    } catch (e) {
      if (e instanceof MlsStoreError) throw e;
      this.s.d.logger.warn("mls.welcome.refused", { conversation: q.conversationId, sender: item.sender, code: isMlsProtocolError(e) ? e.code : "other", error: (e as Error).message });
      this.s.notice("warn", `an invitation to ${q.conversationId} from ${item.sender} could not be opened; nothing was joined (ask to be added again)`, q.conversationId);
      return;
    }
    const g = joined.group;
    const conv = g.conversation.id;
    const names = g.members().map((m) => m.username);
    // The relay names the conversation and who sent the Welcome: both must agree with the group.
    // From my own user only when another device of mine added me (PROTOCOL.md §4.5 self-heal):
    // never a reflection of my own leaf, and never a label naming me on another member's
    // Welcome (§12: a label naming the joiner is refused).
    const byOtherDevice = joined.addedBy.username === this.s.d.me && !sameBytes(joined.addedBy.signatureKey, client.signaturePublicKey);
    const fromMe = item.sender === this.s.d.me && (this.s.d.devices === undefined || !byOtherDevice);
    // Refused: the group I held (if any) is kept as it was.
    const refuse = (): void => {
      g.destroy();
      const kept = this.s.groups.get(conv);
      if (kept?.active === true) this.s.d.store.saveGroup(kept);
      else this.s.d.store.deleteGroup(conv);
    };
    if (conv !== q.conversationId || !names.includes(item.sender) || fromMe) {
      this.s.d.logger.warn("mls.welcome.mismatch", { conversation: q.conversationId, group: conv, sender: item.sender });
      refuse();
      this.s.notice("warn", `an invitation to ${q.conversationId} did not come from a member of it; nothing was joined`, q.conversationId);
      return;
    }
    // Who added me is the committer who signed the GroupInfo inside the Welcome, not the relay's
    // label (§12): a relay naming another member is logged, and the line names the signer.
    const by = joined.addedBy.username;
    if (by !== item.sender) this.s.d.logger.warn("mls.welcome.sender_mismatch", { conversation: conv, relay: item.sender, signer: by });
    // Every leaf of another user must be a device in its user's list (less the devices a primary
    // dropped, dropped-devices.ts), as for a join by external commit (§4.5, §7.6 (e)): a device
    // unlinked (stolen) must not make a group of its own for my DM with its user, or "re-create"
    // its user's room, and have me take it for the conversation (review round 8).
    const unlisted = conv === "lobby" ? undefined : await this.c.unlistedDeviceIn(conv, g, `an invitation to ${conv} from ${by}`);
    const recreated = before?.active === true && conv.startsWith("#") && !sameBytes(before.groupId, g.groupId);
    // A new group for a room I am in: only its creator's re-creation is followed (recreate.ts),
    // and said as followed only when nothing else refuses it.
    if (recreated && (unlisted === undefined || this.recreator?.mayRecreate(before, g, joined.addedBy) !== true) && this.recreator?.followsRecreate(conv, before, g, joined.addedBy) !== true) {
      g.destroy();
      this.s.d.store.saveGroup(before);
      return;
    }
    if (unlisted !== undefined) {
      this.s.d.logger.warn("mls.welcome.unlisted_device", { conversation: conv, sender: by });
      refuse();
      this.s.notice("warn", unlisted, conv);
      return;
    }
    if (before !== undefined && before !== g) { before.destroy(); this.s.held.drop(conv); }
    this.s.adopt(conv, g, true);
    this.s.d.content.membersChanged(conv, g.members()); // per device (§4.5): the leaves
    if (by === this.s.d.me) {
      this.s.d.content.joinedLate?.(conv); // the group had a history before this device (§11 chains)
      // Another device of mine added this one (self-heal): a device line, not "added".
      this.s.line(conv, { kind: "device-added", by, users: [by], device: this.s.d.devices?.self.name ?? "this device", thisDevice: true, ...this.s.creatorField(conv), atMs: this.s.d.clock() });
    } else this.s.line(conv, { kind: "added", by, users: [this.s.d.me], ...this.s.creatorField(conv), atMs: this.s.d.clock() });
    this.s.healSoon(conv);
    this.s.d.logger.info("mls.welcome.joined", { conversation: conv, sender: by, members: names.length, lastResort: joined.lastResort });
    if (joined.lastResort) await this.s.keyPackages?.replaceLastResort();
    else await this.s.topUpFromStore();
    if ((this.s.outbox.get(conv)?.length ?? 0) > 0) this.s.flushSoon(conv);
  }

  async onProposal(conv: string, g: MlsGroup, mls: Uint8Array, relaySender: string): Promise<void> {
    let inc: Awaited<ReturnType<MlsGroup["process"]>>;
    try {
      inc = await g.process(mls);
    } catch (e) {
      this.s.d.logger.warn("mls.proposal.refused", { conversation: conv, sender: relaySender, error: (e as Error).message });
      this.s.d.emit({ type: "refused", conversationId: conv, from: relaySender });
      return;
    }
    if (inc.kind !== "proposal" || inc.sender.username !== relaySender) {
      // Put the state back as it was saved: the proposal must not ride along in my next commit.
      this.s.reload(conv);
      this.s.d.logger.warn("mls.proposal.sender_mismatch", { conversation: conv, relay: relaySender, mls: inc.kind === "proposal" ? inc.sender.username : inc.kind });
      this.s.d.emit({ type: "refused", conversationId: conv, from: relaySender });
      return;
    }
    this.s.leavingOf(conv).add(inc.sender.username);
    this.s.d.store.saveGroup(g);
    void this.s.listClaims?.heard(inc.sender.username, inc.authenticatedData, conv);
    // One member commits a leave (policy.ts leaveCommitRank): the first in leaf order at once,
    // the others only if it is still uncommitted after their rank's delay (checkLeaves).
    const rank = leaveCommitRank(g.members(), inc.sender.leafIndex, g.myLeafIndex);
    if (rank === undefined) return;
    if (rank === 0) {
      await this.commitLeave(conv, inc.sender.username);
      return;
    }
    this.s.d.logger.debug("mls.proposal.leave_deferred", { conversation: conv, leaver: inc.sender.username, rank });
    this.leaves.set(conv, { leaver: inc.sender.username, epoch: g.epoch, dueMs: this.s.d.clock() + rank * LEAVE_COMMIT_STEP_MS });
  }

  private async commitLeave(conv: string, leaver: string): Promise<void> {
    this.leaves.delete(conv);
    // Every leave proposed in this epoch rides in the commit; the hint names the users it takes
    // out altogether (a linked device leaving alone leaves its user a member by its other leaves).
    const g = this.s.groups.get(conv);
    const going = new Set(g?.pendingRemovals() ?? []);
    const removed = [...new Set([leaver, ...this.s.leavingOf(conv)])]
      .filter((u) => g === undefined || !g.members().some((m) => m.username === u && !going.has(m.leafIndex)));
    // My line for it: the user left, or (a linked device leaving alone) one device of theirs went.
    const lines = (): MembershipLine[] => {
      const atMs = this.s.d.clock();
      const gone = g === undefined ? [] : g.members().filter((m) => going.has(m.leafIndex));
      return [...new Set([leaver, ...gone.map((m) => m.username)])].flatMap((u): MembershipLine[] => removed.includes(u)
        ? [{ kind: "left", by: u, users: [], ...this.s.creatorField(conv), atMs }]
        : gone.filter((m) => m.username === u).map((m): MembershipLine => ({ kind: "device-removed", by: u, users: [u], device: deviceName(this.s.d.devices?.known(u), m.signatureKey, this.s.deviceNames), ...this.s.creatorField(conv), atMs })));
    };
    const r = await this.c.commitChange(conv, (x) => x.commitPendingProposals(), { added: [], removed }, lines, () => false);
    if (!r.ok) this.s.d.logger.info("mls.proposal.commit_not_made", { conversation: conv, error: JSON.stringify(r.error) });
  }

  /**
   * Leaves whose first committers stayed silent: mine to commit once my rank's delay has passed,
   * if the group is still at the proposal's epoch (else someone committed, or the proposal is gone).
   */
  async checkLeaves(nowMs: number): Promise<void> {
    for (const [conv, l] of [...this.leaves]) {
      const g = this.s.groups.get(conv);
      if (g === undefined || !g.active || g.epoch !== l.epoch || !g.members().some((m) => m.username === l.leaver)) {
        this.leaves.delete(conv);
        continue;
      }
      if (nowMs < l.dueMs) continue;
      this.s.d.logger.info("mls.proposal.leave_fallback", { conversation: conv, leaver: l.leaver });
      await this.commitLeave(conv, l.leaver);
    }
  }

  /** Processes a commit of the group's current epoch with the conversation's policy; shows it; saves. */
  async applyCommit(conv: string, g: MlsGroup, mls: Uint8Array, relaySender: string, relaySenderDevice?: string): Promise<void> {
    const creator = this.s.creators.get(conv);
    const leaving = this.s.leavingOf(conv);
    const dir = this.s.d.devices;
    // The lists I hold, less the devices their user's primary took out under a newer one (dropped-devices.ts).
    const lists = this.s.dropped?.lists;
    let verdict: { change: MembershipChange; why: Refusal } | undefined;
    // Devices (PROTOCOL.md §4.5): before a leaf is accepted from a user whose list I do not know,
    // or a change is refused under the lists I know, those users' lists are refreshed once and the
    // commit is processed again (a refused commit leaves the group as it was).
    let refresh: string[] = [];
    let refreshed = dir === undefined;
    const policy = (change: MembershipChange): boolean => {
      const why = judgeCommit(g, change, { relaySender, ...(relaySenderDevice !== undefined ? { relaySenderDevice } : {}), ...(lists !== undefined ? { lists } : {}), ...(this.s.d.trust !== undefined ? { trusts: this.s.d.trust } : {}), ...(this.s.d.isOnline !== undefined ? { isOnline: this.s.d.isOnline } : {}) });
      if (dir !== undefined && !refreshed) {
        const unknown = incomingLeaves(change).some((m) => dir.known(m.username) === undefined);
        if (unknown || why === "device" || why === "policy") {
          refresh = [...new Set([...incomingLeaves(change), ...change.removed, change.committer].map((m) => m.username))];
          return false;
        }
      }
      if (why !== undefined) verdict = { change, why };
      return why === undefined;
    };
    let inc: Awaited<ReturnType<MlsGroup["process"]>>;
    let unanswered = false;
    for (let pass = 0; ; pass++) {
      try {
        inc = await g.process(mls, policy);
        break;
      } catch (e) {
        if (pass === 0 && !refreshed && refresh.length > 0 && dir !== undefined) {
          try {
            // Must answer: lists not fetched (a moment offline) are no ground to call a device unlisted.
            await dir.refresh(refresh, { mustAnswer: true });
          } catch (re) {
            unanswered = re instanceof DeviceListsUnanswered;
            this.s.d.logger.warn("mls.devices.refresh_failed", { conversation: conv, reason: (re as Error).message });
          }
          refreshed = true;
          continue;
        }
        if (unanswered && (verdict?.why === "device" || verdict?.why === "policy")) {
          // Judged on lists the relay did not answer for: not refused aloud (no line, no warning,
          // no re-creation); the conversation holds what follows and tries again once they come.
          this.recovery.waitForLists(conv, refresh);
          return;
        }
        // A commit judged and refused was processed whole (decrypted, its signature checked): what
        // it says of its committer's device list is authentic (a withheld list, list-claims.ts).
        if (verdict !== undefined) void this.s.listClaims?.heard(verdict.change.committer.username, readFraming(mls).authenticatedData, conv);
        // My own device that my list no longer names (I unlinked it; the relay still carries it)
        // won this epoch: holding it out would leave me out of the group for good while the
        // others follow it. Join again from the present state; the self-heal then takes it out
        // (review round 6; PROTOCOL.md §4.5).
        const committer = verdict?.why === "device" ? verdict.change.committer : undefined;
        const mine = this.s.d.devices?.known(this.s.d.me);
        if (committer !== undefined && committer.username === this.s.d.me && mine !== undefined && deviceBySignatureKey(mine, committer.signatureKey) === undefined) {
          this.s.d.logger.warn("mls.commit.own_unlinked_committer", { conversation: conv });
          await this.recovery.rejoinPastOwnUnlinked(conv, deviceName(undefined, committer.signatureKey));
          return;
        }
        this.refusedCommit(conv, g, verdict, relaySender, relaySenderDevice, creator, e);
        return;
      }
    }
    if (inc.kind !== "commit") {
      this.s.reload(conv);
      this.s.d.emit({ type: "refused", conversationId: conv, from: relaySender });
      return;
    }
    this.recovery.resumed(conv);
    this.s.dropped?.noteCommit(conv, inc.change, inc.authenticatedData, g.members());
    void this.s.listClaims?.heard(inc.change.committer.username, inc.authenticatedData, conv);
    const atMs = this.s.d.clock();
    this.recovery.undecided.delete(conv);
    this.s.leaving.delete(conv);
    if (inc.removedMe) {
      // My leave, or one of my own devices removing this one (/leave on another device, /unlink).
      const iLeft = leaving.has(this.s.d.me) || inc.change.committer.username === this.s.d.me;
      this.s.forget(conv);
      this.s.line(conv, iLeft ? { kind: "left", by: this.s.d.me, users: [], atMs } : { kind: "removed", by: inc.change.committer.username, users: [this.s.d.me], ...(creator !== undefined ? { creator } : {}), atMs });
      return;
    }
    const after = g.members();
    for (const l of linesOf(inc.change, { creator, leaving, atMs, after, deviceName: (u, k) => deviceName(dir?.known(u), k, this.s.deviceNames) })) this.s.line(conv, l);
    this.s.d.content.membersChanged(conv, after); // per device (§4.5): the leaves
    this.s.newEpoch(conv);
    this.s.d.store.saveGroup(g);
    await this.recovery.releaseHeld(conv);
  }

  /** A commit processApply refused: the line or notice it shows, and what waits on it. */
  private refusedCommit(conv: string, g: MlsGroup, verdict: { change: MembershipChange; why: Refusal } | undefined, relaySender: string, relaySenderDevice: string | undefined, creator: string | undefined, e: unknown): void {
    {
      if (verdict?.why === "device") {
        // PROTOCOL.md §4.5: a leaf whose key its user's newest verified list does not name.
        const leaf = unlistedLeaf(verdict.change, (u) => this.s.dropped?.listOf(u), g.members());
        const who = leaf?.username ?? relaySender;
        // Once a later commit comes (not the device's own), I try to join again from the relay's
        // present state, taken only when it holds no device unlisted for me and the same users as
        // mine (someone took it out: for a device its user's primary dropped under a list newer
        // than mine, dropped-devices.ts, that primary; recovery.ts). Meanwhile a newer list of its
        // user lets the refused commit through (listChanged).
        const dropped = leaf !== undefined && this.s.dropped?.isDropped(leaf.username, leaf.signatureKey) === true;
        this.s.d.logger.warn("mls.commit.refused_device", { conversation: conv, by: verdict.change.committer.username, user: who, dropped });
        let waiting = this.recovery.awaitingList.get(conv);
        if (waiting === undefined) this.recovery.awaitingList.set(conv, (waiting = new Set()));
        waiting.add(who);
        // The device whose own later commits never make me try: the refused committer's, as the relay names it.
        const committed = leaf !== undefined && leaf.leafIndex === verdict.change.committer.leafIndex && sameBytes(leaf.signatureKey, verdict.change.committer.signatureKey);
        this.recovery.refusedChange(conv, committed ? relaySenderDevice ?? "" : "");
        this.s.line(conv, { kind: "refused-device", by: verdict.change.committer.username, users: [who], device: leaf === undefined ? "unknown" : deviceName(undefined, leaf.signatureKey), ...(creator !== undefined ? { creator } : {}), atMs: this.s.d.clock() });
        this.s.notice("warn", dropped
          ? `a device ${who}'s own primary device took out of ${conv} (by a newer device list of ${who}'s than the relay serves you) came back into it; it was refused (you stay where you were in ${conv} until ${who}'s device takes it out again)`
          : `the relay or a member added a device ${who} did not link into ${conv}; it was refused (you stay where you were in ${conv})`, conv);
        this.recreator?.refused(conv, g, verdict.change.committer.username);
      } else if (verdict?.why === "policy") {
        this.s.d.logger.warn("mls.commit.refused_by_policy", { conversation: conv, by: verdict.change.committer.username });
        this.s.line(conv, refusedLine(verdict.change, creator, this.s.d.clock()));
        this.recovery.refusedChange(conv, relaySenderDevice ?? "");
        this.recreator?.refused(conv, g, verdict.change.committer.username);
      } else {
        this.s.d.logger.warn("mls.commit.refused", { conversation: conv, sender: relaySender, why: verdict?.why ?? "mls", error: (e as Error).message });
        this.s.d.emit({ type: "refused", conversationId: conv, from: relaySender });
        // A key change I have not decided on (key-change.ts): I stay on this epoch until I do.
        if (isMlsProtocolError(e, "untrusted-identity")) this.recovery.undecided.add(conv);
        // A change of the fixed settings (the creator) or of names that every member refuses
        // (not a relay naming the wrong sender, verdict "sender": a later state may still be
        // vouched for, review round 10): never adopted by a re-join; in a room its creator
        // re-creates it without the committer, as after a policy refusal (else the room stopped
        // for everyone for good, review round 10).
        // Only a commit refused once authenticated (the error names its committer): a message
        // refused before that (a relay's forgery) names nobody, and the relay's label is not
        // evidence (review round 11: it would make the creator re-create the room without
        // whoever the relay named).
        const committer = isMlsProtocolError(e) ? e.committer : undefined;
        if (verdict === undefined && committer !== undefined && (isMlsProtocolError(e, "context-changed") || isMlsProtocolError(e, "refused-change"))) {
          this.recovery.refusedChange(conv, committer === relaySender ? relaySenderDevice ?? "" : "");
          // Once per conversation and epoch: a relay replaying the refused commit repeats nothing.
          const told = this.refusalsTold.get(conv);
          if (!conv.startsWith("#") && told !== g.epoch) {
            this.refusalsTold.set(conv, g.epoch);
            this.s.notice("warn", `${committer} made a change to ${conv} that every member refuses (${(e as Error).message}); you stay where you were in ${conv}`, conv);
          }
          this.recreator?.refused(conv, g, committer); // a room: its creator re-creates it, and says so
        }
        if (isMlsProtocolError(e, "untrusted-identity")) this.s.notice("warn", `${relaySender} put a key into ${conv} that you have not accepted (${(e as Error).message}); you stay where you were in ${conv} until you /trust or /accept it`, conv);
      }
    }
  }
}
