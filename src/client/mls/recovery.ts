// Catching up in the protocol v2 engine (PROTOCOL.md §12): messages of a future epoch held
// (held.ts) are processed once the group's epoch reaches them; past their bound the commits the
// relay accepted after my epoch are fetched (FetchCommits), and failing that the conversation is
// joined again by external commit. A conversation stopped at a commit refused for an undecided
// key or an unlisted device keeps holding instead (never a re-join), until a decision or a newer
// device list lets it try again. receive.ts handles each message; this is what it falls back on.
import { describeClientError } from "../errors.js";
import { MlsStoreError } from "../mls-store.js";
import { HOLD_MAX_MS } from "./held.js";
import type { EngineState } from "./engine-state.js";
import type { Receiver } from "./receive.js";
import type { MlsGroup } from "../../protocol/mls/index.js";

/** rejoinPastOwnUnlinked's back-off: the second re-join in a streak waits this long, each next one twice the last. */
export const OWN_REJOIN_FIRST_MS = 30_000;
export const OWN_REJOIN_MAX_MS = 5 * 60_000;
/** rejoinPastRefused tries at most REJOIN_PAST_TRIES times per this long per conversation (commits past that: one try at the next timer tick once it allows). */
export const REJOIN_PAST_EVERY_MS = 10_000;
export const REJOIN_PAST_TRIES = 3;
/** A streak ends after this long without the unlinked device coming back. */
export const OWN_REJOIN_QUIET_MS = 60 * 60_000;

export class Recovery {
  /** Conversations stopped at a commit refused for a key my user has not decided on (key-change.ts). */
  readonly undecided = new Set<string>();
  /**
   * Conversations stopped at a commit refused for a device not in its user's list (PROTOCOL.md
   * §4.5), by conversation: whose list a change would let it through. Like `undecided`, what
   * follows is held (never a re-join); a newer list of that user makes the engine try again (listChanged).
   */
  readonly awaitingList = new Map<string, Set<string>>();

  /**
   * Of those, by conversation: joined again from the relay's present state once that state no
   * longer holds the refused device (someone took it out), rejoinPastRefused; `device`: the
   * refused committer's device id as the relay named it ("" for a device another put in), whose
   * own commits never make me try; when I last tried (at most REJOIN_PAST_TRIES per
   * REJOIN_PAST_EVERY_MS: a flood of commits is a few tries per 10 s), and whether a try waits.
   */
  readonly rejoinable = new Map<string, { readonly device: string; tries: number[]; pending: boolean }>();

  /**
   * A device I unlinked that keeps coming back (the relay carrying it): my re-joins to take it
   * out, by conversation (rejoinPastOwnUnlinked backs off), and the ones put off until `dueMs`.
   */
  private readonly ownRejoins = new Map<string, { count: number; lastMs: number }>();
  private readonly ownRejoinsDue = new Map<string, { dueMs: number; device: string }>();

  /**
   * Of those, the ones stopped because the relay did not answer for the lists the commit was
   * judged on (receive.ts applyCommit): whose lists to fetch again (retryUnanswered, every timer tick).
   */
  private readonly unanswered = new Map<string, Set<string>>();
  /** When each of those started waiting, and whether the user was told it is still waiting (once, after HOLD_MAX_MS). */
  private readonly unansweredSince = new Map<string, { readonly atMs: number; told: boolean }>();

  constructor(private readonly s: EngineState, private readonly r: Receiver) {}

  /** A commit of `conv` could not be judged: the relay did not answer for these users' device lists. */
  waitForLists(conv: string, usernames: readonly string[]): void {
    this.s.d.logger.info("mls.commit.lists_unanswered", { conversation: conv, users: usernames.length });
    for (const map of [this.awaitingList, this.unanswered]) {
      const set = map.get(conv) ?? new Set<string>();
      for (const u of usernames) set.add(u);
      map.set(conv, set);
    }
    if (!this.unansweredSince.has(conv)) this.unansweredSince.set(conv, { atMs: this.s.d.clock(), told: false });
  }

  /** `conv` no longer waits for anyone's list: a commit of it was accepted, or is about to be judged again. */
  resumed(conv: string): void {
    this.awaitingList.delete(conv);
    this.rejoinable.delete(conv);
    this.unanswered.delete(conv);
    this.unansweredSince.delete(conv);
  }

  /**
   * Conversations stopped at a commit whose device lists were not answered: the lists are asked
   * for again; once answered, the commits are fetched and judged again (accepted, or refused
   * aloud as any other), and what was held follows.
   */
  async retryUnanswered(): Promise<void> {
    const dir = this.s.d.devices;
    for (const [conv, users] of [...this.unanswered]) {
      if (dir === undefined) return;
      try {
        await dir.refresh([...users], { mustAnswer: true });
      } catch (e) {
        this.s.d.logger.info("mls.commit.lists_still_unanswered", { conversation: conv, reason: (e as Error).message });
        // A relay that never answers stalls the conversation: said once, not silently forever.
        const since = this.unansweredSince.get(conv);
        if (since !== undefined && !since.told && this.s.d.clock() - since.atMs >= HOLD_MAX_MS) {
          since.told = true;
          this.s.notice("warn", `${conv} is waiting for the relay to answer for the device lists of ${[...users].join(", ")}, to check a change in it; nothing after that change is shown until it does`, conv);
        }
        continue;
      }
      this.resumed(conv); // judged again below with the answer: refused aloud, or taken
      this.s.d.logger.info("mls.devices.retry_unanswered", { conversation: conv });
      await this.catchUp(conv);
      await this.releaseHeld(conv);
    }
  }

  /** A newer device list of `username` was taken: conversations stopped at a commit refused for that user's device try again. */
  async listChanged(username: string): Promise<void> {
    for (const [conv, users] of [...this.awaitingList]) {
      if (!users.has(username)) continue;
      this.s.d.logger.info("mls.devices.retry_refused", { conversation: conv, user: username });
      await this.catchUp(conv);
      await this.releaseHeld(conv);
    }
  }

  /** Processes held messages that the group's epoch now reaches. */
  async releaseHeld(conv: string): Promise<void> {
    for (;;) {
      const g = this.s.groups.get(conv);
      const items = this.s.held.take(conv);
      if (items.length === 0) return;
      if (g === undefined || !g.active) {
        for (const h of items) h.done();
        return;
      }
      let progressed = false;
      for (const h of items) {
        if (h.epoch > Number(g.epoch) || this.s.groups.get(conv) !== g) {
          this.s.held.hold(conv, h.q, h.epoch, h.atMs, h.done);
          continue;
        }
        progressed = true;
        try {
          const fin = await this.r.handle(h.q, h.done);
          if (fin) h.done();
        } catch (e) {
          h.done();
          if (e instanceof MlsStoreError) throw e;
          this.s.d.logger.warn("mls.held.failed", { conversation: conv, error: (e as Error).message });
        }
      }
      if (!progressed) return;
    }
  }

  /**
   * A device of mine that my list no longer names (unlinked; the relay still carries it) won an
   * epoch of `conv` (PROTOCOL.md §4.5): I never follow it, and holding would leave me out for
   * good while the others do. Join again by external commit from the relay's present state (my
   * own unlisted leaves do not stop a re-join), then the self-heal takes the device out (my
   * primary's removal is taken whatever list the others hold, §7.6 (f)).
   */
  async rejoinPastOwnUnlinked(conv: string, device: string): Promise<void> {
    if (this.s.recovering.has(conv) || this.ownRejoinsDue.has(conv)) return;
    // It may come back at once, as often as the relay carries it (review round 7): each time
    // after the last, the next re-join waits twice as long (OWN_REJOIN_FIRST_MS up to
    // OWN_REJOIN_MAX_MS; a quiet hour starts again), said once per wait.
    const now = this.s.d.clock();
    const past = this.ownRejoins.get(conv);
    const streak = past === undefined || now - past.lastMs >= OWN_REJOIN_QUIET_MS ? 0 : past.count;
    const wait = streak === 0 ? 0 : Math.min(OWN_REJOIN_FIRST_MS * 2 ** (streak - 1), OWN_REJOIN_MAX_MS);
    if (past !== undefined && now - past.lastMs < wait) {
      const dueMs = past.lastMs + wait;
      this.ownRejoinsDue.set(conv, { dueMs, device });
      this.s.d.logger.warn("mls.commit.own_unlinked_again", { conversation: conv, streak, waitMs: dueMs - now });
      this.s.notice("warn", `a device you unlinked (${device}) keeps coming back into ${conv}, which the relay carries: joining ${conv} again to take it out in ${Math.ceil((dueMs - now) / 1000)} s`, conv);
      return;
    }
    this.ownRejoins.set(conv, { count: streak + 1, lastMs: now });
    this.s.recovering.add(conv);
    try {
      const dropped = this.s.held.drop(conv);
      const r = await this.r.c.externalJoin(conv);
      this.s.notice("warn", r.ok
        ? `a device you unlinked (${device}) made a change in ${conv}, which the relay carried: joined ${conv} again to take it out${dropped > 0 ? `; ${dropped} message(s) sent meanwhile could not be read` : ""}`
        : `a device you unlinked (${device}) made a change in ${conv}, which the relay carried; joining ${conv} again failed: ${describeClientError(r.error)}`, conv);
      if (r.ok) this.s.healSoon(conv);
    } finally {
      this.s.recovering.delete(conv);
    }
  }

  /** Re-joins put off (rejoinPastOwnUnlinked's back-off, rejoinPastRefused's pace) whose time has come (every timer tick). */
  async retryRejoins(nowMs: number): Promise<void> {
    for (const [conv, due] of [...this.ownRejoinsDue]) {
      if (nowMs < due.dueMs) continue;
      this.ownRejoinsDue.delete(conv);
      const g = this.s.groups.get(conv);
      if (g === undefined || !g.active) continue;
      await this.rejoinPastOwnUnlinked(conv, due.device);
    }
    for (const [conv, r] of [...this.rejoinable]) {
      if (r.pending) await this.rejoinPastRefused(conv);
    }
  }

  /**
   * A commit of `conv` was judged and refused (a device not in its user's list, the room policy,
   * a change of fixed settings or names; `device`: the refused committer's device id, or ""):
   * from here a re-join must be vouched for (rejoinPastRefused), never the plain one of recoverNow.
   */
  refusedChange(conv: string, device: string): void {
    // Not the lobby: it has no creator to keep and its members change all the time (the vouched
    // re-join's same users would rarely hold); its refusals keep the plain re-join (review round 10).
    if (conv === "lobby") return;
    if (!this.rejoinable.has(conv)) this.rejoinable.set(conv, { device, tries: [], pending: false });
  }

  /**
   * `conv` stopped at a commit putting in a device not in its user's list (one unlinked, or one
   * its user's primary took out under a list newer than mine coming back, dropped-devices.ts).
   * When the relay's present state no longer holds it (someone took it out; a later commit, not
   * the device's own, arrived: `senderDevice`), I join again from there; while it still does,
   * the join is refused (commit.ts unlistedDeviceIn reads the same lists) and I wait for the next
   * commit. Nothing from the device's epochs is read. The commits skipped are never judged, so
   * the state must hold the same users as mine (sameUsers): a removal or an addition made
   * meanwhile keeps me where I am (review rounds 7, 8).
   */
  async rejoinPastRefused(conv: string, senderDevice?: string): Promise<void> {
    const r = this.rejoinable.get(conv);
    if (this.s.recovering.has(conv) || r === undefined) return;
    if (r.device !== "" && senderDevice === r.device) return;
    const now = this.s.d.clock();
    r.tries = r.tries.filter((at) => now - at < REJOIN_PAST_EVERY_MS);
    if (r.tries.length >= REJOIN_PAST_TRIES) { r.pending = true; return; }
    r.tries.push(now);
    r.pending = false;
    this.s.recovering.add(conv);
    try {
      await this.rejoinPastRefusedNow(conv);
    } finally {
      this.s.recovering.delete(conv);
    }
  }

  private async rejoinPastRefusedNow(conv: string): Promise<void> {
    const held = this.s.held.count(conv);
    const r = await this.r.c.externalJoin(conv, { vouch: (held, joined) => sameUsers(conv, held, joined) });
    if (!r.ok) {
      this.s.d.logger.info("mls.recover.dropped_rejoin_not_yet", { conversation: conv, error: describeClientError(r.error) });
      return;
    }
    this.resumed(conv);
    this.s.notice("warn", `joined ${conv} again past the change that was refused${held > 0 ? `; ${held} message(s) sent meanwhile could not be read` : ""}`, conv);
  }

  /** Held messages passed their bound: fetch the missing commits; failing that, re-join (§12). */
  async recover(conv: string): Promise<void> {
    if (this.s.recovering.has(conv)) return;
    this.s.recovering.add(conv);
    try {
      await this.recoverNow(conv);
    } finally {
      this.s.recovering.delete(conv);
    }
  }

  async recoverNow(conv: string): Promise<void> {
    const g = this.s.groups.get(conv);
    if (g === undefined || !g.active) { this.s.held.drop(conv); return; }
    const caught = await this.catchUp(conv);
    await this.releaseHeld(conv);
    if (caught && this.s.held.count(conv) === 0) return;
    // Past a refused change: only a re-join that the same users vouch for (review round 9: the
    // plain re-join would adopt what was refused, a member making itself the room's creator).
    if (this.rejoinable.has(conv)) { await this.rejoinPastRefusedNow(conv); return; }
    // Past a device I unlinked, my re-join waits out its back-off (retryOwnRejoins).
    if (this.ownRejoinsDue.has(conv)) { this.s.d.logger.info("mls.recover.backing_off", { conversation: conv, held: this.s.held.count(conv) }); return; }
    // Behind a key change my user has not decided on: keep holding (unacked), never re-join (key-change.ts).
    if (this.undecided.has(conv) || this.awaitingList.has(conv)) { this.s.d.logger.info("mls.recover.undecided", { conversation: conv, held: this.s.held.count(conv) }); return; }
    this.s.d.logger.warn("mls.recover.rejoin", { conversation: conv, held: this.s.held.count(conv) });
    const dropped = this.s.held.drop(conv);
    const r = await this.r.c.externalJoin(conv);
    this.s.notice("warn", r.ok
      ? `missing changes in ${conv}: joined it again${dropped > 0 ? `; ${dropped} message(s) sent meanwhile could not be read` : ""}`
      : `missing changes in ${conv}, and joining it again failed: ${describeClientError(r.error)}`, conv);
  }

  /** Fetches and processes the commits the relay accepted after my epoch. False when the relay refused. */
  async catchUp(conv: string): Promise<boolean> {
    for (let round = 0; round < 64; round++) {
      const g = this.s.groups.get(conv);
      if (g === undefined || !g.active) return true;
      const r = await this.s.d.ds.fetchCommits(g.groupId, Number(g.epoch));
      if (!r.ok) {
        this.s.d.logger.warn("mls.fetch_commits.refused", { conversation: conv, code: r.code });
        return false;
      }
      for (const c of r.commits) {
        const cur = this.s.groups.get(conv);
        if (cur !== g || !g.active) return true;
        if (c.epoch !== Number(g.epoch)) continue;
        await this.r.applyCommit(conv, g, c.commit, c.sender);
        if (Number(g.epoch) === c.epoch) return false; // refused: this group cannot follow the relay's order
      }
      if (!r.more) return true;
    }
    return true;
  }
}

/**
 * Why a re-join past commits never judged may not replace `held` (undefined: it may): the joined
 * state must hold the same users as mine (rejoinPastRefused), so that no addition or removal
 * slips in unjudged.
 */
function sameUsers(conv: string, held: MlsGroup, joined: MlsGroup): string | undefined {
  const users = (g: MlsGroup) => [...new Set(g.members().map((m) => m.username))].sort().join(",");
  return users(held) === users(joined) ? undefined : `the relay offered a state of ${conv} with other members than yours, made by changes you refused; you stay where you are`;
}
