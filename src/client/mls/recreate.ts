// Re-creating a room after a commit refused by policy (PROTOCOL.md §7.3;
// §7.4, §17). A member who commits a change the room's rules forbid (mallory removing carol) is
// ordered by the relay, which cannot read commits, and refused by every honest member: they stay
// on the last good epoch while the relay moved on, and no commit of theirs can win an epoch again.
// The way out is a new group for the same room name:
// - the room's creator (named in the group, §7.4, by username AND identity key) re-creates it at
//   once, automatically, on refusing such a commit: a new MLS group for the room (its creator
//   extension names them again), registered with RecreateRoom (the relay replaces the room's group
//   only for the user who created the current one), and the members of the last good epoch minus
//   the offending committer added to it (claim + Add + Welcome, in chunks that fit a frame);
// - every other member is told what happens: the creator re-creates the room, or, when the
//   creator is no longer a member, that nobody can and a new room is the way on;
// - a member follows a Welcome into a new group of a room it is in only when the new group names
//   the same creator (username and identity fingerprint) as its current group AND the Welcome was
//   signed by that creator (receive.ts, `followsRecreate`); otherwise the Welcome is refused with a
//   notice and the member stays where it is (a hostile relay or member cannot move a room).
import { MlsGroup } from "../../protocol/mls/index.js";
import type { MlsMember } from "../../protocol/mls/index.js";
import type { Committer } from "./commit.js";
import { hex, type EngineState } from "./engine-state.js";
import { claimDevices } from "./devices.js";

/** Users claimed and added by one commit of a re-creation (a commit adding ~70 to a room of 500 fits a frame, PROTOCOL.md §8.3). */
export const RECREATE_ADD_CHUNK = 50;

export class Recreator {
  /** Per room: who made the last change refused by policy here (for the line shown when the room is re-created). */
  private readonly refusedBy = new Map<string, string>();
  /** Groups (id, hex) whose refusal was handled in this run: one re-creation or one notice each. */
  private readonly handled = new Set<string>();

  constructor(private readonly s: EngineState, private readonly c: Committer) {}

  /**
   * A commit in `conv` by `offender` was refused by policy (receive.ts applyCommit). In a room:
   * the creator re-creates it (scheduled after the current operation); the others are told what
   * happens. DMs and the lobby have no creator: nothing to re-create.
   */
  refused(conv: string, g: MlsGroup, offender: string): void {
    if (!conv.startsWith("#")) return;
    this.refusedBy.set(conv, offender);
    const key = hex(g.groupId);
    if (this.handled.has(key)) return;
    this.handled.add(key);
    const creator = g.creator()?.username;
    const present = g.creatorMember();
    if (present !== undefined && present.username === this.s.d.me) {
      this.s.d.logger.warn("mls.room.recreate_scheduled", { conversation: conv, by: offender });
      void this.s.run(() => this.recreate(conv, key, offender)).catch((e: unknown) => {
        this.handled.delete(key); // a later refusal (a fetch, a commit of mine that loses) tries again
        this.s.d.logger.warn("mls.room.recreate_failed", { conversation: conv, error: (e as Error).message });
        this.s.notice("warn", `${conv} could not be re-created: ${(e as Error).message}`, conv);
      });
      return;
    }
    if (present !== undefined) {
      this.s.notice("warn", `${conv} cannot go on in this group after ${offender}'s change was refused; ${present.username}, who created it, re-creates it (at once, or when next online)`, conv);
      return;
    }
    this.s.notice("warn", `${conv} cannot go on after ${offender}'s change was refused, and ${creator ?? "its creator"}, who created it, is no longer in it, so nobody can re-create it: start a new room (/join #another-name) with the members you trust`, conv);
  }

  /**
   * Whether a Welcome into a NEW group of a room I am in (`before`) may replace it: the new group
   * names the same creator (username and identity fingerprint) and the Welcome's signer is that
   * creator (name and identity key). Shows the line when it does; a notice when it does not.
   */
  /** Whether `after` is a re-creation of `before` by its creator (what followsRecreate checks, without a word). */
  mayRecreate(before: MlsGroup, after: MlsGroup, addedBy: MlsMember): boolean {
    const old = before.creator();
    const now = after.creator();
    return old !== undefined && now !== undefined && old.username === now.username && old.identityFingerprint.equals(now.identityFingerprint) && after.isCreator(addedBy);
  }

  followsRecreate(conv: string, before: MlsGroup, after: MlsGroup, addedBy: MlsMember): boolean {
    const old = before.creator();
    const now = after.creator();
    const sameCreator = old !== undefined && now !== undefined && old.username === now.username && old.identityFingerprint.equals(now.identityFingerprint);
    if (old === undefined || !this.mayRecreate(before, after, addedBy)) {
      this.s.d.logger.warn("mls.welcome.recreate_refused", { conversation: conv, signer: addedBy.username, creator: old?.username, named: now?.username, sameCreator });
      this.s.notice("warn", `${addedBy.username} invited you to another group for ${conv}, but only ${old?.username ?? "its creator"}, who created ${conv}, may re-create it; you stay in the current one`, conv);
      return false;
    }
    const offender = this.refusedBy.get(conv);
    this.refusedBy.delete(conv);
    this.s.d.logger.info("mls.room.recreated_by", { conversation: conv, creator: old.username, after: offender });
    this.s.notice("info", `${old.username} re-created ${conv}${offender !== undefined ? ` after a change by ${offender} was refused` : ""}`, conv);
    return true;
  }

  /** The creator's side: a new group for `conv`, registered in place of the old one, with the old one's members but `offender`. */
  private async recreate(conv: string, oldKey: string, offender: string): Promise<void> {
    const s = this.s;
    const me = s.d.me;
    const old = s.groups.get(conv);
    if (old === undefined || !old.active || hex(old.groupId) !== oldKey) return; // moved on meanwhile
    if (s.d.ds.recreateRoom === undefined) {
      s.notice("warn", `${conv} cannot be re-created through this relay connection`, conv);
      return;
    }
    const members = [...new Set(old.members().map((m) => m.username))].filter((u) => u !== me && u !== offender);
    const g = await MlsGroup.create(s.mustClient(), conv, s.groupOptions());
    // Done but unanswered, the relay's room would be a group nobody holds the keys of: sent
    // again until answered (a resend of one done is answered as done, §8.2).
    const info = await g.groupInfo();
    const recreateRoom = s.d.ds.recreateRoom.bind(s.d.ds);
    const r = await this.c.untilAnswered(conv, "group", () => recreateRoom(info));
    if (!r.ok) {
      g.destroy();
      this.handled.delete(oldKey);
      s.d.logger.warn("mls.room.recreate_refused", { conversation: conv, code: r.code });
      s.notice("warn", `${conv} could not be re-created: ${r.detail}`, conv);
      return;
    }
    // The relay now holds the new group: the old one's secrets go, its held messages with it.
    old.destroy();
    s.held.drop(conv);
    s.leaving.delete(conv);
    s.adopt(conv, g, true);
    s.d.store.saveGroup(g);
    s.d.content.membersChanged(conv, [me]);
    s.d.logger.info("mls.room.recreated", { conversation: conv, after: offender, members: members.length });
    const added: string[] = [];
    const missing: string[] = [];
    for (let i = 0; i < members.length; i += RECREATE_ADD_CHUNK) {
      const chunk = members.slice(i, i + RECREATE_ADD_CHUNK);
      await s.d.ensureKeys?.(chunk);
      // One KeyPackage per device of each, checked against their device lists (devices.ts).
      const result = await claimDevices(s, chunk);
      if (!result.ok) { missing.push(...chunk); continue; }
      const claimed = result.value;
      missing.push(...claimed.missing);
      if (claimed.entries.length === 0) continue;
      const perPackage = claimed.entries.map((e) => e.username);
      const names = [...new Set(perPackage)];
      const nowS = Math.floor(s.d.clock() / 1000);
      const out = await this.c.commitChange(conv, (x) => x.addMembers(claimed.entries.map((e) => e.keyPackage), { expectUsernames: perPackage, nowS }), { added: names, removed: [] },
        { kind: "added", by: me, users: names, creator: me, atMs: s.d.clock() }, (x) => !names.every((u) => x.members().some((m) => m.username === u)));
      if (out.ok) added.push(...names);
      else missing.push(...names);
    }
    s.notice("info", `you re-created ${conv} after a change by ${offender} was refused${added.length > 0 ? `; ${added.join(", ")} ${added.length === 1 ? "is" : "are"} in it again` : ""}${missing.length > 0 ? `; ${missing.join(", ")} could not be added (no KeyPackage on the relay, or refused): /invite them later` : ""}`, conv);
    s.d.emit({ type: "rooms", rooms: s.rooms() }); // the members now, also when nobody could be added back
    s.healSoon(conv); // my other devices (devices.ts)
    if ((s.outbox.get(conv)?.length ?? 0) > 0) s.flushSoon(conv);
  }
}
