// A peer's new identity key after the local user's decision (/trust or /accept, PROTOCOL.md §6),
// in the protocol v2 engine. The rule (the text for PROTOCOL.md §6 "Key changes in v2"):
// - Until I decide, a leaf of the user under any key other than the pinned one is refused (the
//   pin hook of session.ts: a pending change refuses every leaf of the user), so the new key can
//   read nothing of mine; nothing is held because nothing of that key enters a group.
// - After I decide, the pin is the new key. In each DM group of mine holding the user's leaf
//   under another key, I remove that stale leaf (a commit only the peer's old device could judge:
//   it is gone) and add the user again from a KeyPackage of the new key (Add + Welcome, the pin
//   hook checks it is the decided key). If no KeyPackage is on the relay, the next message I send
//   adds them (send.ts ensureGroup: a DM without its peer claims one).
// - A commit by anyone that removes a leaf of user U is allowed by my policy when it also puts in
//   a leaf of U under another key that my pin hook accepts now (policy.ts keyReplacementAllowed):
//   a member who has not decided refuses it (the new leaf's credential is refused), so a relay
//   that substitutes a key cannot get it into the group of anyone who did not decide.
// - In a room, the first member who decides replaces the stale leaf in ONE commit (remove + add of
//   a KeyPackage of the decided key). Members who decided accept it; a member who has not decided
//   refuses it (untrusted-identity), stays on its epoch (its own messages stay readable by the
//   others for the past epoch's hour and never by the new key) and holds what follows; when it
//   decides, it fetches and applies the refused commits and releases the held messages.
// - Each conversation touched shows one line saying the key changed and what I decided.
import { parseConversationId } from "../../protocol/names.js";
import type { Committer } from "./commit.js";
import type { EngineState } from "./engine-state.js";
import type { Sender } from "./send.js";
import type { Receiver } from "./receive.js";
import type { MlsGroup } from "../../protocol/mls/index.js";
import { describeClientError as describe } from "../errors.js";

/** What one decision did, per conversation (for tests and the log). */
export interface KeyChangeResult {
  /** DMs whose stale leaf was replaced by the new key's (the peer was re-added). */
  readonly replaced: readonly string[];
  /** DMs whose stale leaf was removed, the new key to be added at my next message (no KeyPackage now). */
  readonly removedOnly: readonly string[];
  /** Rooms still holding the stale leaf (their re-keying is not built: PROTOCOL.md §6). */
  readonly rooms: readonly string[];
}

export class KeyChanges {
  constructor(private readonly s: EngineState, private readonly c: Committer, private readonly o: Sender, private readonly r: Receiver) {}

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
        const stale = g.members().filter((m) => m.username === username && !m.identityFpr.equals(fpr));
        const conv = parseConversationId(convId);
        if (conv === undefined) continue;
        if (stale.length === 0) {
          if (conv.kind === "dm" && conv.members.includes(username)) this.s.notice("info", `${username}'s key changed; ${how}`, convId);
          continue;
        }
        if (conv.kind !== "dm") {
          rooms.push(convId);
          await this.room(convId, username, fpr, how);
          continue;
        }
        // A DM: out with the old leaf (nobody but its lost device could object), in with the new key.
        const removed = await this.c.commitChange(convId, (x) => x.removeMembers([username]), { added: [], removed: [] }, undefined,
          (x) => x.members().some((m) => m.username === username && !m.identityFpr.equals(fpr)));
        if (!removed.ok) {
          this.s.d.logger.warn("mls.key_change.remove_failed", { conversation: convId, error: JSON.stringify(removed.error) });
          this.s.notice("warn", `${username}'s key changed; ${how}, but the old key could not be taken out of this conversation, so the new key cannot read it yet`, convId);
          continue;
        }
        const added = await this.o.ensureGroup(conv);
        const ok = added !== "wait" && added.ok && added.value.members().some((m) => m.username === username && m.identityFpr.equals(fpr));
        (ok ? replaced : removedOnly).push(convId);
        this.s.d.logger.info("mls.key_change.dm", { conversation: convId, readded: ok });
        this.s.notice("info", `${username}'s key changed; ${how}${ok ? `: the new key is now in this conversation` : `: the new key joins this conversation with your next message`}`, convId);
        if ((this.s.outbox.get(convId)?.length ?? 0) > 0) this.s.flushSoon(convId);
      }
      return { replaced, removedOnly, rooms };
    });
  }

  /**
   * A room holding `username`'s leaf under another key than the decided one: first the commits I
   * refused while undecided (someone who decided earlier may have replaced the leaf already) are
   * fetched and applied again, with the messages held behind them; then, if the stale leaf is
   * still there, one commit replaces it by a KeyPackage of the new key (MlsGroup.replaceMember).
   */
  private async room(convId: string, username: string, fpr: Buffer, how: string): Promise<void> {
    const staleIn = (x: MlsGroup): boolean => x.members().some((m) => m.username === username && !m.identityFpr.equals(fpr));
    await this.r.catchUp(convId);
    await this.r.releaseHeld(convId);
    const g = this.s.groups.get(convId);
    if (g === undefined || !g.active) return;
    if (!staleIn(g)) {
      const now = g.members().some((m) => m.username === username);
      this.s.notice("info", `${username}'s key changed; ${how}${now ? `: the new key is in ${convId}` : ""}`, convId);
      return;
    }
    const claimed = await this.s.d.ds.claimKeyPackages([username]);
    const entry = claimed.ok ? claimed.entries.find((e) => e.username === username) : undefined;
    if (entry === undefined) {
      this.s.d.logger.info("mls.key_change.no_key_package", { conversation: convId, user: username });
      this.s.notice("warn", `${username}'s key changed; ${how}, but the relay has no KeyPackage of the new key yet, so ${convId} still holds the old one (it is replaced when ${username} is back online and you /trust or /accept again, or when another member who decided does it)`, convId);
      return;
    }
    const nowS = Math.floor(this.s.d.clock() / 1000);
    const r = await this.c.commitChange(convId, (x) => x.replaceMember(username, entry.keyPackage, { nowS }), { added: [username], removed: [] }, undefined, staleIn);
    const cur = this.s.groups.get(convId);
    const done = cur?.active === true && !staleIn(cur) && cur.members().some((m) => m.username === username);
    this.s.d.logger.info("mls.key_change.room", { conversation: convId, replaced: done, error: r.ok ? "" : JSON.stringify(r.error) });
    this.s.notice(done ? "info" : "warn", done
      ? `${username}'s key changed; ${how}: the new key is in ${convId}`
      : `${username}'s key changed; ${how}, but the old key could not be replaced in ${convId}${r.ok ? "" : ` (${describe(r.error)})`}`, convId);
  }
}
