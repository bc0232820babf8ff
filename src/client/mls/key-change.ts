// A peer's new identity key after the local user's decision (/trust or /accept, PROTOCOL.md §6),
// in the protocol v2 engine. The rule (the text for PROTOCOL.md §6 "Key changes in v2"):
// - Until I decide, a leaf of the user under any key other than the pinned one is refused (the
//   pin hook of session.ts: a pending change refuses every leaf of the user), so the new key can
//   read nothing of mine; nothing is held because nothing of that key enters a group.
// - After I decide, the pin is the new key. In each conversation of mine holding the user's leaf
//   under another key, I first fetch and apply the commits I refused while undecided (and release
//   the messages held behind them): someone who decided earlier may have replaced it already, or
//   the new key may have joined by external commit. If a stale leaf is still there, ONE commit
//   takes it out and puts in a KeyPackage of the new key (MlsGroup.replaceMember), or only takes
//   it out when the new key is in already (removeStaleLeaves). A DM with no KeyPackage of the new
//   key on the relay loses the old leaf alone; my next message adds the new key (send.ts ensureGroup).
// - A commit by anyone that removes a leaf of user U is allowed by my policy when U keeps (or gets
//   in the same commit) a leaf under another key that my pin hook accepts now (policy.ts
//   keyReplacementAllowed):
//   a member who has not decided refuses it (the new leaf's credential is refused), so a relay
//   that substitutes a key cannot get it into the group of anyone who did not decide.
// - In a room, the first member who decides replaces the stale leaf. Members who decided accept
//   it; a member who has not decided refuses it (untrusted-identity), stays on its epoch (its own messages stay readable by the
//   others for the past epoch's hour and never by the new key) and holds what follows; when it
//   decides, it fetches and applies the refused commits and releases the held messages.
// - Each conversation touched shows one line saying the key changed and what I decided.
import { parseConversationId } from "../../protocol/names.js";
import type { Committer } from "./commit.js";
import type { EngineState } from "./engine-state.js";
import type { Receiver } from "./receive.js";
import type { MlsGroup } from "../../protocol/mls/index.js";
import { describeClientError as describe } from "../errors.js";
import { claimDevices } from "./devices.js";

/** What one decision did, per conversation (for tests and the log). */
export interface KeyChangeResult {
  /** DMs whose stale leaf was replaced by the new key's. */
  readonly replaced: readonly string[];
  /** DMs whose stale leaf was removed, the new key to be added at my next message (no KeyPackage now). */
  readonly removedOnly: readonly string[];
  /** Rooms that held a stale leaf of the user (replaced, or said why not, in each). */
  readonly rooms: readonly string[];
}

export class KeyChanges {
  constructor(private readonly s: EngineState, private readonly c: Committer, private readonly r: Receiver) {}

  /**
   * I decided to go on with `username`'s key `fpr` (SHA-256 of its identity SPKI; `verified`:
   * by /trust with the safety number, else /accept). Runs on the engine's queue.
   */
  decided(username: string, fpr: Buffer, verified: boolean): Promise<KeyChangeResult> {
    if (typeof username !== "string" || username === this.s.d.me) return Promise.reject(new Error("decided() needs another user's name"));
    if (!Buffer.isBuffer(fpr) || fpr.length !== 32) return Promise.reject(new Error("decided() needs a 32-byte key fingerprint"));
    return this.s.run(async () => {
      const replaced: string[] = [];
      const removedOnly: string[] = [];
      const rooms: string[] = [];
      const how = verified ? "you verified the new key (/trust)" : "you accepted the new key without verifying it (/accept)";
      for (const [convId, g] of [...this.s.groups]) {
        if (!g.active) continue;
        const conv = parseConversationId(convId);
        if (conv === undefined) continue;
        if (!staleIn(g, username, fpr)) {
          if (conv.kind === "dm" && conv.members.includes(username)) this.s.notice("info", `${username}'s key changed; ${how}`, convId);
          continue;
        }
        if (conv.kind !== "dm") rooms.push(convId);
        const r = await this.replace(convId, username, fpr);
        if (r.ok) {
          if (conv.kind === "dm") replaced.push(convId);
          this.s.notice("info", `${username}'s key changed; ${how}: the new key is in ${conv.kind === "dm" ? "this conversation" : convId}`, convId);
        } else if (conv.kind === "dm" && r.why === "no-key-package") {
          // No KeyPackage of the new key now: the old leaf goes (nobody but its lost device could
          // object); the next message I send adds the new key (send.ts ensureGroup).
          const removed = await this.c.commitChange(convId, (x) => x.removeMembers([username]), { added: [], removed: [] }, undefined, (x) => staleIn(x, username, fpr));
          if (removed.ok) removedOnly.push(convId);
          this.s.notice(removed.ok ? "info" : "warn", `${username}'s key changed; ${how}${removed.ok ? ": the new key joins this conversation with your next message" : ", but the old key could not be taken out of this conversation, so the new key cannot read it yet"}`, convId);
        } else {
          this.s.notice("warn", `${username}'s key changed; ${how}, but ${conv.kind === "dm" ? "this conversation" : convId} still holds the old key (${r.why === "no-key-package" ? `the relay has no KeyPackage of the new key; another member who decided, or /accept after ${username} is back, replaces it` : r.why})`, convId);
        }
        this.s.d.logger.info("mls.key_change.replaced", { conversation: convId, ok: r.ok, why: r.ok ? "" : r.why });
        if ((this.s.outbox.get(convId)?.length ?? 0) > 0) this.s.flushSoon(convId);
      }
      return { replaced, removedOnly, rooms };
    });
  }

  /**
   * One conversation holding `username`'s leaf under another key than the decided one: first the
   * commits I refused while undecided (someone who decided earlier may have replaced the leaf
   * already, or the new key joined by external commit) are fetched and applied again, with the
   * messages held behind them; then, if a stale leaf is still there, one commit takes it out and,
   * unless the new key is in already, puts in a KeyPackage of the new key (MlsGroup.replaceMember).
   */
  private async replace(convId: string, username: string, fpr: Buffer): Promise<{ ok: true } | { ok: false; why: string }> {
    await this.r.recovery.catchUp(convId);
    await this.r.recovery.releaseHeld(convId);
    const g = this.s.groups.get(convId);
    if (g === undefined || !g.active) return { ok: false, why: "you are no longer in it" };
    const isIn = (x: MlsGroup): boolean => x.members().some((m) => m.username === username && m.identityFpr.equals(fpr));
    if (!staleIn(g, username, fpr)) return isIn(g) ? { ok: true } : { ok: false, why: `${username} is no longer in it` };
    let r;
    if (isIn(g)) {
      r = await this.c.commitChange(convId, (x) => x.removeStaleLeaves(username, fpr), { added: [], removed: [] }, undefined, (x) => staleIn(x, username, fpr));
    } else {
      // One KeyPackage per device of the new key's list (PROTOCOL.md §4.5), checked against it (devices.ts).
      const claimed = await claimDevices(this.s, [username]);
      const packages = claimed.ok ? claimed.value.entries.filter((e) => e.username === username).map((e) => e.keyPackage) : [];
      if (packages.length === 0) return { ok: false, why: "no-key-package" };
      const nowS = Math.floor(this.s.d.clock() / 1000);
      r = await this.c.commitChange(convId, (x) => staleIn(x, username, fpr) && isIn(x) ? x.removeStaleLeaves(username, fpr) : x.replaceMember(username, packages, { nowS }),
        { added: [username], removed: [] }, undefined, (x) => staleIn(x, username, fpr));
    }
    const cur = this.s.groups.get(convId);
    if (cur?.active === true && !staleIn(cur, username, fpr) && isIn(cur)) return { ok: true };
    return { ok: false, why: r.ok ? "it changed meanwhile" : describe(r.error) };
  }
}

/** Whether `g` holds a leaf of `username` under another identity key than `fpr`. */
function staleIn(g: MlsGroup, username: string, fpr: Buffer): boolean {
  return g.members().some((m) => m.username === username && !m.identityFpr.equals(fpr));
}
