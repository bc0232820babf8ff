// My changes to groups in the protocol v2 engine (PROTOCOL.md §7, §8.1):
// commits through the relay's ordering (first commit for an epoch wins; on EPOCH_TAKEN discard,
// process the winner, make the change again), groups created and registered, and joins by
// external commit (rooms, the lobby with its cap, and re-joins with resync).
import { ErrorCode } from "../../gen/securechat/v1/chat.js";
import { MlsGroup, type PendingCommit } from "../../protocol/mls/index.js";
import type { MembershipLine, Outcome } from "../types.js";
import { groupInfoFactsOf, groupInfoLeavesOf, sameBytes } from "./framing.js";
import { COMMIT_ATTEMPTS, fail, LOBBY_MAX_MEMBERS, ok, refusedError, sentence, TRANSIENT, type EngineState } from "./engine-state.js";
import type { DsCommit, DsCommitAccepted, DsEpochTaken, DsResult } from "./ds-api.js";
import type { ClientError } from "../errors.js";
import type { Receiver } from "./receive.js";
import { LOBBY_STALE_MS, LOBBY_SWEEP_MAX, LOBBY_SWEEP_MS, lobbyJanitor } from "./policy.js";
import { keyPackageLeafKey } from "./devices.js";
import { deviceBySignatureKey } from "../../protocol/devices.js";
import { sendUntilAnswered } from "./resend.js";

/**
 * What the commit, Welcome and ratchet tree of one SendCommit may take: the relay's frame
 * (`max_frame_bytes`, 1 MiB by default, §8.3 "Sizes") less room for the frame's other fields and
 * the membership hint's names (up to 1,000).
 */
export const COMMIT_BYTES_MAX = 1024 * 1024 - 64 * 1024;


/**
 * How many of these KeyPackages one commit can add to a group of `members` within `max` bytes,
 * estimated (§8.3 "Sizes"): per add, the KeyPackage in the commit, its leaf in the tree and the
 * joiner's share of the Welcome (~1.3 KiB); per member already there, its leaf in the tree; and
 * an allowance for the commit's update path. At least 1 (a commit measured too big is halved).
 */
export function addsThatFit(members: number, entries: readonly { readonly keyPackage: Uint8Array }[], max: number): number {
  if (entries.length === 0) return 0;
  const avg = entries.reduce((a, e) => a + e.keyPackage.length, 0) / entries.length;
  const room = max - members * avg - Math.min(32 * 1024, max / 8);
  let n = 0;
  let used = 0;
  for (const e of entries) {
    used += 2 * e.keyPackage.length + 1_300;
    if (used > room) break;
    n++;
  }
  return Math.max(1, n);
}

export class Committer {
  /** Set once both exist (the winner of a lost epoch is fetched and processed there). */
  r!: Receiver;

  constructor(private readonly s: EngineState) {}

  /**
   * Makes one commit and gets it through the relay's ordering (§8.1): accepted → confirm, save,
   * publish the new GroupInfo, show `line`; EPOCH_TAKEN → discard, process the winner, and make
   * the change again while `again` says it is still needed.
   *
   * `winnerFromQueue` (a change that can wait: the update policy's): on EPOCH_TAKEN the commit is
   * discarded and the winner is NOT fetched; it comes from my queue, after the messages queued
   * before it, and the EPOCH_TAKEN refusal is returned. Fetched out of order and followed by a
   * commit of mine, the group would be two epochs past messages still queued for me in the
   * epoch before the winner's, whose keys a member no longer keeps (§10.2: one past epoch).
   */
  async commitChange(convId: string, make: (g: MlsGroup) => Promise<PendingCommit>, hint: { added: readonly string[]; removed: readonly string[] },
    line: MembershipLine | (() => readonly MembershipLine[]) | undefined, again: (g: MlsGroup) => boolean,
    o: { readonly winnerFromQueue?: boolean } = {}): Promise<Outcome> {
    for (let attempt = 0; attempt < COMMIT_ATTEMPTS; attempt++) {
      const g = this.s.groups.get(convId);
      if (g === undefined || !g.active) return fail({ kind: "not-a-member", room: convId, action: "send" });
      // ts-mls puts every proposal received this epoch into any commit (a leave nobody committed
      // yet rides along an invite or an update): the hint then names the users it takes out
      // altogether too, or the relay would keep them members (review round 6).
      const going = new Set(g.pendingRemovals());
      const leavers = going.size === 0 ? [] : [...new Set(g.members().filter((m) => going.has(m.leafIndex)).map((m) => m.username))]
        .filter((u) => !g.members().some((m) => m.username === u && !going.has(m.leafIndex)) && !hint.removed.includes(u) && !hint.added.includes(u));
      let p: PendingCommit;
      try {
        p = await make(g);
      } catch (e) {
        return fail(sentence((e as Error).message));
      }
      // One SendCommit is one relay frame (§8.3 "Sizes"): too big, it is not sent (the caller
      // splits adds); the next epoch's GroupInfo rides along when it fits, else it is published
      // once the commit is accepted.
      const max = this.s.d.limits?.commitBytes ?? COMMIT_BYTES_MAX;
      const core = p.commit.length + (p.welcome?.length ?? 0) + (p.ratchetTree?.length ?? 0);
      if (core > max) {
        g.discardCommit();
        this.s.d.logger.info("mls.commit.too_large", { conversation: convId, bytes: core, max });
        return fail({ kind: "refused", code: ErrorCode.ERROR_CODE_FRAME_TOO_LARGE, detail: `the change to ${convId} makes a commit of ${core} bytes, more than one relay frame carries (${max})` });
      }
      const withInfo = core + p.groupInfo.length <= max;
      const c: DsCommit = {
        commit: p.commit, groupInfo: withInfo ? p.groupInfo : new Uint8Array(0), added: hint.added, removed: leavers.length === 0 ? hint.removed : [...hint.removed, ...leavers],
        ...(p.welcome !== undefined ? { welcome: p.welcome } : {}), ...(p.ratchetTree !== undefined ? { ratchetTree: p.ratchetTree } : {}),
      };
      // Known once made (a function reads what make() decided).
      const lines = line === undefined ? [] : typeof line === "function" ? line() : [line];
      // Kept before it leaves (§8.1 "A commit in flight"): a client that quits before the answer
      // sends it again at its next start (resumeKept) instead of being stuck behind it.
      try {
        this.s.d.store.savePendingCommit(g, { ...c, nextGroupInfo: p.groupInfo, lines: JSON.stringify(lines) });
      } catch (e) {
        g.discardCommit();
        this.s.d.logger.warn("mls.commit.keep_failed", { conversation: convId, error: (e as Error).message });
        return fail(sentence(`the change to ${convId} could not be kept on disk: ${(e as Error).message}`));
      }
      const r = await this.sendCommitAnswered(convId, c);
      this.s.d.logger.debug("mls.commit.sent", { conversation: convId, ok: r.ok, code: r.ok ? "" : r.code });
      if (r.ok) {
        await this.accepted(convId, g, lines, withInfo ? undefined : p.groupInfo);
        return ok(undefined);
      }
      g.discardCommit();
      // Still unanswered (the engine closes meanwhile): kept, for the next start to settle.
      if (TRANSIENT.has(r.code) && r.code !== "NOT_CONNECTED") return fail(refusedError(r));
      this.forgetKept(convId);
      if (r.code !== "EPOCH_TAKEN") return fail(refusedError(r));
      if (o.winnerFromQueue === true) return fail(refusedError(r)); // the caller says so (send.ts: mls.update.lost)
      this.s.d.logger.info("mls.commit.epoch_taken", { conversation: convId, epoch: Number(g.epoch) });
      await this.r.recovery.catchUp(convId);
      const now = this.s.groups.get(convId);
      if (now === undefined || !now.active) return fail({ kind: "not-a-member", room: convId, action: "send" });
      if (!again(now)) return ok(undefined);
    }
    return fail(sentence(`the change to ${convId} lost the race for its epoch ${COMMIT_ATTEMPTS} times`));
  }

  /** My commit was accepted (§8.1): confirm, save, show its lines, publish the GroupInfo that did not ride along, release what waited. */
  private async accepted(convId: string, g: MlsGroup, lines: readonly MembershipLine[], groupInfoToPublish: Uint8Array | undefined): Promise<void> {
    g.confirmCommit();
    this.s.leaving.delete(convId);
    this.s.newEpoch(convId);
    this.s.d.content.committed(convId, this.s.d.clock());
    this.s.d.content.membersChanged(convId, g.members()); // per device (§4.5): the leaves
    for (const l of lines) this.s.line(convId, l);
    this.s.d.store.saveGroup(g); // past the kept commit's epoch: that goes with it
    this.recordView(convId, g);
    if (groupInfoToPublish !== undefined) {
      const gi = await this.s.d.ds.publishGroupInfo(groupInfoToPublish);
      if (!gi.ok) this.s.d.logger.warn("mls.group_info.refused", { conversation: convId, code: gi.code });
    }
    await this.r.recovery.releaseHeld(convId);
  }

  private forgetKept(convId: string): void {
    try {
      this.s.d.store.deletePendingCommit(convId);
    } catch (e) {
      // Left kept, it is settled at the next start: the relay answers it EPOCH_TAKEN or as a resend.
      this.s.d.logger.warn("mls.commit.forget_failed", { conversation: convId, error: (e as Error).message });
    }
  }

  /**
   * The commits kept from before a restart or while the relay could not be reached (§8.1 "A
   * commit in flight"): each is sent again, the same bytes, and settled by the answer: accepted
   * (the first time, or as the resend of one the relay accepted before I quit) → I move to its
   * epoch, its lines shown; EPOCH_TAKEN → discarded (a change a person asked for is said to be
   * lost), and the winner comes from my queue after what was queued before it (not fetched out
   * of order: see commitChange's winnerFromQueue); unanswered → kept for the next session. A
   * kept commit whose group is gone or has moved past its epoch is settled already: forgotten.
   */
  async resumeKept(): Promise<void> {
    for (const convId of this.s.d.store.pendingCommits()) {
      if (this.s.closed || this.s.stopping) return;
      let k;
      try {
        k = this.s.d.store.loadPendingCommit(convId);
      } catch (e) {
        this.s.d.logger.warn("mls.commit.kept_unreadable", { conversation: convId, error: (e as Error).message });
        this.forgetKept(convId);
        continue;
      }
      if (k === undefined) continue;
      const g = this.s.groups.get(convId);
      if (g?.hasPendingCommit === true) continue; // cannot be: one operation at a time
      if (g === undefined || !g.active || g.epoch !== k.epoch) {
        k.nextState.fill(0);
        this.forgetKept(convId);
        continue;
      }
      try {
        g.resumePending(k.nextState);
      } catch (e) {
        this.s.d.logger.warn("mls.commit.kept_unreadable", { conversation: convId, error: (e as Error).message });
        this.forgetKept(convId);
        continue;
      } finally {
        k.nextState.fill(0);
      }
      const c: DsCommit = {
        commit: k.commit, groupInfo: k.groupInfo, added: k.added, removed: k.removed,
        ...(k.welcome !== undefined ? { welcome: k.welcome } : {}), ...(k.ratchetTree !== undefined ? { ratchetTree: k.ratchetTree } : {}),
      };
      const lines = JSON.parse(k.lines) as MembershipLine[];
      const r = await this.sendCommitAnswered(convId, c);
      this.s.d.logger.info("mls.commit.resumed", { conversation: convId, epoch: Number(k.epoch), ok: r.ok, code: r.ok ? "" : r.code });
      if (r.ok) {
        await this.accepted(convId, g, lines, k.groupInfo.length === 0 ? k.nextGroupInfo : undefined);
        continue;
      }
      g.discardCommit();
      if (TRANSIENT.has(r.code)) return; // the connection went again: the rest wait for the next session too
      this.forgetKept(convId);
      if (lines.length > 0) {
        const why = r.code === "EPOCH_TAKEN" ? "another change came first" : `the relay refused it: ${r.detail}`;
        this.s.notice("warn", `a change you made to ${convId} before the connection was lost did not go through (${why}); make it again if it is still needed`, convId);
      }
    }
  }

  /**
   * Sends a commit and learns its fate (§8.1, §8.4). Sent but unanswered (the connection lost,
   * no answer in time), it may have been accepted: discarded, my next commit for the epoch
   * would lose to it, and my own commit cannot be processed when it comes back (a reflection):
   * the group would be stuck until a re-join. So the same bytes go again until the relay answers
   * (an identical resend is accepted again; EPOCH_TAKEN when another won): untilAnswered.
   */
  private sendCommitAnswered(convId: string, c: DsCommit): Promise<DsResult<DsCommitAccepted> | DsEpochTaken> {
    return this.untilAnswered(convId, "commit", () => this.s.d.ds.sendCommit(c));
  }

  /**
   * Sends a request whose answer must not be lost until the relay answers (resend.ts), or the
   * engine closes or stops (MlsSession.close waits for the engine's queue first). Everything
   * else of the engine waits meanwhile: nothing can reach the relay anyway.
   */
  async untilAnswered<R extends DsResult<object>>(convId: string, what: "commit" | "group", send: () => Promise<R>): Promise<R> {
    let lost = false;
    const r = await sendUntilAnswered(send, {
      stopped: () => this.s.closed || this.s.stopping,
      onLost: (code) => {
        lost = true;
        this.s.d.logger.info(`mls.${what}.answer_lost`, { conversation: convId, code });
      },
    });
    if (lost) this.s.d.logger.info(`mls.${what}.resent`, { conversation: convId, ok: r.ok, code: r.ok ? "" : r.code });
    return r;
  }

  /**
   * §12 fork check: my view of a room's epoch, taken at once after my own commit, create or join
   * (receive.ts takes it around each delivery): my next DM carries the epoch I am in, not the one
   * before it.
   */
  private recordView(convId: string, g: MlsGroup): void {
    const content = this.s.d.content;
    if (content.epochView === undefined || !convId.startsWith("#") || !g.active) return;
    try {
      content.epochView(convId, g.groupId, Number(g.epoch), g.epochAuthenticator);
    } catch (e) {
      this.s.d.logger.warn("mls.epoch.view_failed", { conversation: convId, error: (e as Error).message });
    }
  }

  /**
   * Adds users to a room from their claimed KeyPackages (§8.3 "Sizes"): as many per commit as fit
   * one relay frame, each commit its own epoch. The first count is estimated from the sizes of
   * the KeyPackages and the tree; a commit measured over the frame is not sent and is made again
   * with half as many. Each commit shows its own "added" line.
   */
  async addInChunks(convId: string, entries: readonly { readonly username: string; readonly keyPackage: Uint8Array }[], nowS: number): Promise<Outcome<{ readonly commits: number }>> {
    const max = this.s.d.limits?.commitBytes ?? COMMIT_BYTES_MAX;
    let done = 0;
    let commits = 0;
    let n = entries.length;
    while (done < entries.length) {
      const g = this.s.groups.get(convId);
      if (g === undefined || !g.active) return fail({ kind: "not-a-member", room: convId, action: "send" });
      n = Math.min(n, entries.length - done, addsThatFit(g.members().length, entries.slice(done), max));
      const chunk = entries.slice(done, done + n);
      const perPackage = chunk.map((e) => e.username);
      const names = [...new Set(perPackage)];
      // Each KeyPackage is one device (PROTOCOL.md §4.5): still needed while its key has no leaf.
      const keys = chunk.map((e) => Buffer.from(keyPackageLeafKey(e.keyPackage)));
      const r = await this.commitChange(convId, (x) => x.addMembers(chunk.map((e) => e.keyPackage), { expectUsernames: perPackage, nowS }), { added: names, removed: [] },
        { kind: "added", by: this.s.d.me, users: names, ...this.s.creatorField(convId), atMs: this.s.d.clock() },
        (x) => keys.some((k) => !x.members().some((m) => k.equals(Buffer.from(m.signatureKey)))));
      if (!r.ok && r.error.kind === "refused" && r.error.code === ErrorCode.ERROR_CODE_FRAME_TOO_LARGE && n > 1) {
        n = Math.floor(n / 2);
        continue;
      }
      if (!r.ok) return r;
      done += chunk.length;
      commits++;
    }
    return ok({ commits });
  }

  /** Creates a group and registers it at the relay ("taken": another group of the conversation was registered first). */
  async createAndRegister(convId: string): Promise<"taken" | Outcome<MlsGroup>> {
    const g = await MlsGroup.create(this.s.mustClient(), convId, this.s.groupOptions());
    // Registered but unanswered, the relay keeps a group only this object holds the keys of:
    // sent again until answered (an identical registration is answered as the first, §8.2).
    const info = await g.groupInfo();
    const r = await this.untilAnswered(convId, "group", () => this.s.d.ds.publishGroupInfo(info));
    if (!r.ok) {
      g.destroy();
      return r.code === "BAD_CONVERSATION" ? "taken" : fail(refusedError(r));
    }
    this.s.adopt(convId, g, true);
    this.s.d.store.saveGroup(g);
    this.s.d.content.membersChanged(convId, [this.s.d.me]);
    this.recordView(convId, g);
    if (g.conversation.kind !== "dm" && g.conversation.kind !== "lobby") this.s.line(convId, { kind: "created", by: this.s.d.me, users: [], creator: this.s.d.me, atMs: this.s.d.clock() });
    if (g.conversation.kind !== "lobby") this.s.healSoon(convId); // my other devices (devices.ts)
    return ok(g);
  }

  /** Lobby members not listed online by the directory, since when I have seen them so (the janitor). */
  private readonly offlineSince = new Map<string, number>();
  private lastSweepMs = Number.NEGATIVE_INFINITY;

  /**
   * The lobby janitor (§7 "The lobby", policy.ts): on each timer tick, notes who of the lobby is
   * offline by the directory; the online member with the lowest leaf index removes, in one commit
   * at most every 10 minutes, the leaves of users it has seen offline for more than 24 hours (a
   * restart starts the watch again). The removed come back by external commit at their next start.
   */
  async sweepLobby(nowMs: number): Promise<void> {
    const isOnline = this.s.d.isOnline;
    const g = this.s.groups.get("lobby");
    if (isOnline === undefined || g === undefined || !g.active) return;
    const me = this.s.d.me;
    const members = g.members();
    const names = new Set(members.map((m) => m.username));
    for (const u of [...this.offlineSince.keys()]) if (!names.has(u)) this.offlineSince.delete(u);
    for (const m of members) {
      if (m.username === me || isOnline(m.username)) this.offlineSince.delete(m.username);
      else if (!this.offlineSince.has(m.username)) this.offlineSince.set(m.username, nowMs);
    }
    if (nowMs - this.lastSweepMs < LOBBY_SWEEP_MS || lobbyJanitor(members, isOnline, g.myLeafIndex) !== g.myLeafIndex) return;
    const stale = [...this.offlineSince].filter(([, since]) => nowMs - since >= LOBBY_STALE_MS).map(([u]) => u).slice(0, LOBBY_SWEEP_MAX);
    if (stale.length === 0) return;
    this.lastSweepMs = nowMs;
    this.s.d.logger.info("mls.lobby.sweep", { removed: stale.length });
    const r = await this.commitChange("lobby", (x) => x.removeMembers(stale.filter((u) => x.members().some((m) => m.username === u))), { added: [], removed: stale },
      undefined, (x) => stale.some((u) => x.members().some((m) => m.username === u) && !isOnline(u)));
    if (!r.ok) this.s.d.logger.info("mls.lobby.sweep_failed", { error: JSON.stringify(r.error) });
  }

  /** The lobby (§7): one relay-wide group joined by external commit (with resync when I held a leaf), created by the first. */
  async enterLobby(): Promise<Outcome> {
    const r = await this.joinOrCreate("lobby");
    // My own entry (at start and after each reconnect, also when my leaf was still current) is
    // a `joined` line of mine, so a UI can read who is in the lobby now instead of polling.
    if (r.ok) this.s.line("lobby", { kind: "joined", by: this.s.d.me, users: [], atMs: this.s.d.clock() });
    // The relay's limit on members (its max_recipients): said once, in its words, where the lobby shows.
    else if (r.error.kind === "refused" && r.error.code === ErrorCode.ERROR_CODE_TOO_MANY_RECIPIENTS) this.s.notice("warn", `you cannot enter the lobby: ${r.error.detail}`, "lobby");
    return r;
  }

  async joinOrCreate(convId: string): Promise<Outcome> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const had = this.s.groups.get(convId);
      const gi = await this.s.d.ds.fetchGroupInfo({ conversationId: convId });
      if (!gi.ok && gi.code !== "UNKNOWN_GROUP") return fail(refusedError(gi));
      if (!gi.ok) {
        const c = await this.createAndRegister(convId);
        if (c === "taken") continue;
        return c.ok ? ok(undefined) : c;
      }
      if (had?.active === true && sameBytes(had.groupId, gi.groupId) && Number(had.epoch) === gi.currentEpoch) return ok(undefined);
      const j = await this.externalJoin(convId);
      if (j.ok || j.error.kind !== "refused" || j.error.code !== ErrorCode.ERROR_CODE_EPOCH_TAKEN) return j;
    }
    return fail(sentence(`${convId} is changing too fast to join; try again`));
  }

  /**
   * Joins by external commit from the relay's newest GroupInfo (§7, §12 recovery), with resync
   * when the tree holds a leaf of my MLS key: I hold no live state of it (else I would not join),
   * so its secrets are lost (missed commits, a state lost with a quit before an answer); a second
   * leaf of the same key beside it would stay in the group for good, read to by nobody. `vouch`:
   * the caller's own reason to refuse replacing the group held (recovery.ts).
   */
  async externalJoin(convId: string, o: { readonly vouch?: (held: MlsGroup, joined: MlsGroup) => string | undefined } = {}): Promise<Outcome> {
    const client = this.s.mustClient();
    let lastError: ClientError = sentence(`${convId} could not be joined`);
    for (let attempt = 0; attempt < COMMIT_ATTEMPTS; attempt++) {
      const gi = await this.s.d.ds.fetchGroupInfo({ conversationId: convId });
      if (!gi.ok) return fail(refusedError(gi));
      let joined: { group: MlsGroup; commit: Uint8Array };
      let re: boolean;
      try {
        // Resync (my old leaf replaced in the same commit) when the tree holds a leaf of mine and
        // another's; when its only leaves are mine, they are removed by a commit after the join.
        const leaves = groupInfoLeavesOf(gi.groupInfo, client.signaturePublicKey);
        re = leaves.mine > 0 && leaves.others > 0;
        joined = await MlsGroup.joinExternal(client, gi.groupInfo, { ...this.s.groupOptions(), resync: re, expectConversation: convId });
      } catch (e) {
        this.s.d.logger.warn("mls.join.refused", { conversation: convId, error: (e as Error).message });
        return fail(sentence(`${convId} could not be joined: ${(e as Error).message}`));
      }
      const g = joined.group;
      // §12 "a re-join": the relay chooses the GroupInfo; replacing a group I hold needs one
      // that what I know of that group vouches for.
      const held = this.s.groups.get(convId);
      const unvouched = convId === "lobby" ? undefined
        : (held?.active === true ? this.unvouched(convId, held, g, gi.groupInfo) ?? o.vouch?.(held, g) : undefined) ?? await this.unlistedDeviceIn(convId, g, `the relay offered a state of ${convId}`);
      if (unvouched !== undefined) {
        g.destroy();
        this.s.d.logger.warn("mls.join.unvouched", { conversation: convId, why: unvouched });
        return fail(sentence(unvouched));
      }
      const max = this.s.d.limits?.lobbyMaxMembers ?? LOBBY_MAX_MEMBERS;
      if (convId === "lobby" && g.members().length > max) {
        g.destroy();
        this.s.notice("warn", `the lobby is full (${max} members); it cannot be joined now`, "lobby");
        return fail(sentence(`the lobby is full (${max} members)`));
      }
      const r = await this.sendCommitAnswered(convId, { commit: joined.commit, groupInfo: await g.groupInfo(), added: [this.s.d.me], removed: [] });
      if (!r.ok) {
        g.destroy();
        lastError = refusedError(r);
        if (r.code === "EPOCH_TAKEN") continue;
        return fail(lastError);
      }
      const old = this.s.groups.get(convId);
      if (old?.active === true && old !== g && convId !== "lobby") this.sayWhoChanged(convId, old, g);
      if (old !== undefined && old !== g) old.destroy();
      this.s.held.drop(convId);
      this.s.adopt(convId, g, true);
      this.s.newEpoch(convId);
      this.s.d.content.membersChanged(convId, g.members());
      if (convId !== "lobby") this.s.line(convId, { kind: "joined", by: this.s.d.me, users: [], ...this.s.creatorField(convId), atMs: this.s.d.clock() });
      this.s.d.store.saveGroup(g);
      this.recordView(convId, g);
      if (!re) await this.dropStaleLeavesOfMine(convId);
      this.s.healSoon(convId); // my other devices: added, or my unlinked ones removed (devices.ts)
      return ok(undefined);
    }
    return fail(lastError);
  }

  /**
   * Why the group joined from `groupInfo` may NOT replace `held`, the group of `convId` I hold
   * (undefined: it may). PROTOCOL.md §12 "a re-join": the relay serves whichever GroupInfo it
   * likes, so an old one of the same group (from before a member was removed: the removed
   * member, from her own old state, would read what I send next) or another group it made for
   * the conversation must not be taken for the group's present state.
   * - The same group: the GroupInfo is of a later epoch than mine, with the same fixed settings
   *   (GroupContext extensions: the creator), and my leaf in it, if still there, is my leaf as it
   *   is now (only my commits change it). (Who signed it is not
   *   checked: in a room anyone may have joined meanwhile, and the newest GroupInfo is often a
   *   newcomer's; the members new to me are said after the join, `sayWhoChanged`.)
   * - Another group (a re-created room, §7.3): it names the same creator (username and identity
   *   key) and the creator signed it, as for a Welcome into a re-created room (recreate.ts); for
   *   a DM, one of its members as I know it (the peer) signed it.
   */
  private unvouched(convId: string, held: MlsGroup, joined: MlsGroup, groupInfo: Uint8Array): string | undefined {
    const { epoch, signerKey, leaf } = groupInfoFactsOf(groupInfo, held.myLeafIndex);
    if (sameBytes(held.groupId, joined.groupId)) {
      if (epoch <= held.epoch) return `the relay offered ${convId} as it was at epoch ${epoch}, not later than yours (${held.epoch}); you stay where you are`;
      // No commit of ours changes a group's fixed settings (its creator): a state that differs was
      // made by one every member refuses (review round 9: a member making itself the creator).
      if (!held.sameSettingsAs(joined)) return `the relay offered a state of ${convId} whose fixed settings (its creator) were changed by a commit every member refuses; you stay where you are`;
      // Only my own commits change my leaf: the same leaf of mine with another key is a state
      // from before my last change to the group (a fork made from an older state).
      const mine = leaf !== undefined && sameBytes(leaf.signatureKey, this.s.mustClient().signaturePublicKey);
      if (mine && !sameBytes(leaf.hpkeKey, held.myLeafHpkeKey)) return `the relay offered a state of ${convId} made from one older than yours (your own place in it is as it was before your last change); you stay where you are`;
      return undefined;
    }
    const signer = signerKey === undefined ? undefined : joined.members().find((m) => sameBytes(m.signatureKey, signerKey));
    const who = signer?.username ?? "a leaf not in it";
    if (convId.startsWith("dm:")) {
      const known = signerKey !== undefined && held.members().some((m) => sameBytes(m.signatureKey, signerKey));
      return known ? undefined : `the relay offered another group for ${convId}, signed by ${who}, not by its member; you stay in the current one`;
    }
    const before = held.creator();
    const now = joined.creator();
    const sameCreator = before !== undefined && now !== undefined && before.username === now.username && before.identityFingerprint.equals(now.identityFingerprint);
    if (sameCreator && signer !== undefined && joined.isCreator(signer)) return undefined;
    return `the relay offered another group for ${convId}, signed by ${who}; only ${before?.username ?? "its creator"}, who created ${convId}, may re-create it; you stay in the current one`;
  }

  /**
   * A leaf of another user in the group joined from the relay's GroupInfo (or a Welcome:
   * receive.ts onWelcome) that the user's device list does not name (undefined: none), said as
   * why the join is refused, after `offered` (§4.5, §7.6 (e)). An
   * old GroupInfo (from before a peer unlinked a stolen laptop, say) would otherwise let that
   * device read what I send next; a peer's own client removes an unlinked device's leaves, so the
   * relay's present GroupInfo names none for long. The lists of users with such a leaf are
   * fetched once (a device linked since I last looked) before refusing.
   */
  async unlistedDeviceIn(convId: string, g: MlsGroup, offered: string): Promise<string | undefined> {
    const dir = this.s.d.devices;
    if (dir === undefined) return undefined;
    const me = this.s.d.me;
    const unlisted = () => g.members().filter((m) => {
      // Less the devices their user's primary took out under a newer list than mine (dropped-devices.ts).
      const list = m.username === me ? undefined : this.s.dropped?.listOf(m.username);
      return list !== undefined && deviceBySignatureKey(list, m.signatureKey) === undefined;
    });
    let found = unlisted();
    if (found.length === 0) return undefined;
    try {
      await dir.refresh([...new Set(found.map((m) => m.username))], { mustAnswer: true });
    } catch (e) {
      this.s.d.logger.info("mls.join.device_refresh_failed", { conversation: convId, error: (e as Error).message });
    }
    found = unlisted();
    if (found.length === 0) return undefined;
    return `${offered} holding a device of ${found[0]!.username} that is not in their device list (an unlinked device?); nothing was joined`;
  }

  /**
   * After a re-join that replaced `held` (§12): who is in the conversation now that was not in
   * my state of it, and who is gone. The commits that made those changes were never seen, so no
   * line names who made them; a member I saw removed who is back (a removed member's fork the
   * relay led me into looks the same from here) is named like any newcomer.
   */
  private sayWhoChanged(convId: string, held: MlsGroup, joined: MlsGroup): void {
    const me = this.s.d.me;
    const names = (g: MlsGroup) => new Set(g.members().map((m) => m.username).filter((u) => u !== me));
    const [was, is] = [names(held), names(joined)];
    const added = [...is].filter((u) => !was.has(u)).sort();
    const gone = [...was].filter((u) => !is.has(u)).sort();
    if (added.length === 0 && gone.length === 0) return;
    const list = (us: string[]) => (us.length === 1 ? us[0]! : `${us.slice(0, -1).join(", ")} and ${us.at(-1)!}`);
    const parts = [
      ...(added.length > 0 ? [`${list(added)} ${added.length === 1 ? "is" : "are"} in it now`] : []),
      ...(gone.length > 0 ? [`${list(gone)} ${gone.length === 1 ? "is" : "are"} no longer`] : []),
    ];
    this.s.d.logger.info("mls.join.members_changed", { conversation: convId, added, gone });
    this.s.notice("warn", `while you were out of step with ${convId}: ${parts.join("; ")} (changes you did not see made)`, convId);
  }

  /**
   * Other leaves of my MLS key in a group I just joined (a tree whose only leaves were mine,
   * their secrets lost, could not be resynced): removed in one commit of mine, as any leaf of my
   * own user (§4.5). Read by nobody, they would otherwise stay in the group for good.
   */
  private async dropStaleLeavesOfMine(convId: string): Promise<void> {
    const key = this.s.mustClient().signaturePublicKey;
    const stale = (x: MlsGroup) => x.members().filter((m) => m.leafIndex !== x.myLeafIndex && sameBytes(m.signatureKey, key)).map((m) => m.leafIndex);
    const g = this.s.groups.get(convId);
    const n = g === undefined ? 0 : stale(g).length;
    if (n === 0) return;
    const r = await this.commitChange(convId, (x) => x.changeOwnDevices(stale(x), []), { added: [], removed: [] }, undefined, (x) => stale(x).length > 0);
    this.s.d.logger.info("mls.join.stale_leaves", { conversation: convId, leaves: n, removed: r.ok });
  }
}
