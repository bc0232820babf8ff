// The room policy every client applies to every commit (PROTOCOL.md §7
// ), and the membership lines a commit shows (SessionEvent `membership`).
// - Only a room's creator removes others; anyone leaves (a removal another member proposed for
//   itself); a member re-joining by external commit with resync removes only its own old leaf.
// - A leave proposal is committed by one member: the first in leaf order other than the leaver,
//   the others in turn after a delay when it is still uncommitted (leaveCommitRank).
// - The lobby has no creator: leaves and resyncs remove, and the janitor removes leaves of users
//   the directory shows offline (lobbySweepAllowed); the janitor sweeps those offline > 24 h.
// - A DM never gets a third member (checked by MlsGroup itself) and nobody is removed from it but
//   by leaving.
// - A member's key change (PROTOCOL.md §6, key-change.ts): a commit may remove a leaf of user U
//   when it puts in a leaf of U under another identity key that my pin hook accepts now, which is
//   only the key my user decided on (/trust, /accept); while undecided, nothing of U's is accepted.
// - The relay-authenticated sender of a commit must be its MLS committer (§8.1: the relay
//   authenticates who sent by the session).
// - Devices (PROTOCOL.md §4.5, §7): a leaf of U (added, or an external joiner) is accepted only
//   when its MLS signature key is in U's newest verified device list (a user who never had a list
//   is one device, as before); anyone may remove a leaf whose key is not in its user's newest
//   list (the self-heal after /unlink); a member may remove a leaf of its own user whose key
//   another leaf that stays holds (a lost state's old leaf), and any of its own user's leaves
//   when nobody else is in the group, and its user's primary (the device list's authority) any
//   of them; but no linked device its user's other LISTED devices: a device the relay still
//   shows me as listed (unlinked and stolen, its new list withheld from me) must not cut my
//   peer's real devices out (so /leave on a linked device takes only itself out); the relay's sender_device, when it names a listed device, must be the committer's leaf;
//   a committer whose own key its user's newest list does not name (an unlinked device) is refused;
//   a user with no list has one leaf at most.
// The creator is the one the room's GroupContext names (§7.4: username AND identity key), never
// a leaf index: MLS gives a departed creator's leaf 0 to the next joiner.
import type { MembershipChange, MlsGroup, MlsMember, VerifiedIdentity } from "../../protocol/mls/index.js";
import { deviceBySignatureKey, type DeviceListBody } from "../../protocol/devices.js";
import type { MembershipLine } from "../types.js";

/** The room's creator as its GroupContext names them (even after they left), or undefined (lobby, DM). */
export function creatorOf(group: MlsGroup): string | undefined {
  return group.creator()?.username;
}

/** Why a commit is refused, or undefined when it is allowed ("device": a leaf whose key its user's list does not name). */
export type Refusal = "sender" | "policy" | "device";

/** The device lists a judgement reads: U's newest verified list, or undefined when U has none (one device). */
export type ListsOf = (username: string) => DeviceListBody | undefined;

/** The leaves a commit puts in (added, and the external joiner). */
export function incomingLeaves(change: MembershipChange): MlsMember[] {
  return change.external ? [...change.added, change.committer] : [...change.added];
}

/**
 * The first leaf a commit puts in whose key is not in its user's list (PROTOCOL.md §4.5), if any;
 * or its committer's leaf when that key is not in the committer's list: a device unlinked (stolen)
 * that still holds the group's state must not commit (remove my listed devices, add anyone) with
 * the authority of my user while the relay still carries it.
 */
export function unlistedLeaf(change: MembershipChange, lists: ListsOf, present: readonly MlsMember[] = []): MlsMember | undefined {
  const incoming = incomingLeaves(change);
  const unlisted = [...incoming, change.committer].find((m) => {
    const l = lists(m.username);
    return l !== undefined && deviceBySignatureKey(l, m.signatureKey) === undefined;
  });
  if (unlisted !== undefined) return unlisted;
  // A user with no device list (as the relay shows it to me) is ONE device: a second leaf of theirs
  // is a device nobody listed (a relay hiding their list from me, a first contact, while a member
  // adds their unlinked device's key).
  const after = [...present.filter((p) => !change.removed.some((r) => r.leafIndex === p.leafIndex)), ...incoming];
  return incoming.find((m) => lists(m.username) === undefined && after.filter((x) => x.username === m.username).length > 1);
}

/**
 * A removal any member may make under the device rules (PROTOCOL.md §4.5, §7.6): a leaf whose
 * key its user's newest list no longer names; or a leaf of the committer's own user (username
 * and identity key) when that user has no list (one device: any other leaf is stale), when the
 * committer is that user's primary by the list, when another leaf that stays in the group holds
 * its key (an old leaf of a device that lost its state and joined again), or when, after the
 * commit, nobody but that user is in the group. Not by a linked device another listed device
 * of its user: see the header.
 */
export function deviceRemovalAllowed(change: MembershipChange, removed: MlsMember, lists: ListsOf, present: readonly MlsMember[] = []): boolean {
  const l = lists(removed.username);
  if (l !== undefined && deviceBySignatureKey(l, removed.signatureKey) === undefined) return true;
  if (removed.username !== change.committer.username || !removed.identityFpr.equals(change.committer.identityFpr)) return false;
  if (l === undefined) return true;
  // The committer is its user's primary (the device with the identity key, which lists and
  // unlinks the others, §4.5): its word on its user's devices is the list's own (its /leave).
  if (deviceBySignatureKey(l, change.committer.signatureKey)?.primary === true) return true;
  // The leaves already in the group that stay (never the commit's own Adds: an Add of the
  // removed device's key elsewhere in the tree would otherwise pass for a stale leaf, review
  // round 6), and the committer.
  const stays = present.filter((p) => !change.removed.some((r) => r.leafIndex === p.leafIndex));
  if (!stays.some((p) => p.leafIndex === change.committer.leafIndex)) stays.push(change.committer);
  if (stays.some((p) => p.leafIndex !== removed.leafIndex && Buffer.from(p.signatureKey).equals(Buffer.from(removed.signatureKey)))) return true;
  // "Nobody else in the group" is judged on the group the commit makes: the others it adds back
  // count (remove everyone, add them back, review round 7).
  return [...stays, ...incomingLeaves(change)].every((p) => p.username === removed.username);
}

/**
 * A commit is refused when its relay-authenticated sender is not its MLS committer, or when it
 * removes someone it may not (MlsGroup.removalsAllowed, §7.4: a member's own leave, a resync of
 * the committer's own leaf under the same identity key, or the room's creator by name AND key).
 */
export function judgeCommit(group: MlsGroup, change: MembershipChange, ctx: { readonly relaySender: string; readonly relaySenderDevice?: string; readonly isOnline?: (username: string) => boolean; readonly trusts?: (id: VerifiedIdentity) => boolean; readonly lists?: ListsOf }): Refusal | undefined {
  if (change.committer.username !== ctx.relaySender) return "sender";
  const lists = ctx.lists;
  if (lists !== undefined) {
    // §8.1 with §4.5: the device the relay authenticated must be the committer's leaf.
    const l = lists(ctx.relaySender);
    const named = ctx.relaySenderDevice === undefined || ctx.relaySenderDevice === "" || l === undefined ? undefined : l.devices.find((d) => d.deviceId === ctx.relaySenderDevice);
    if (named !== undefined && !named.mlsSignatureKey.equals(Buffer.from(change.committer.signatureKey))) return "sender";
    if (unlistedLeaf(change, lists, group.members()) !== undefined) return "device";
  }
  // Leaves replaced by the same user's key I decided to trust are judged by that rule alone (PROTOCOL.md §6);
  // so are the removals the device rules allow.
  const present = ctx.trusts === undefined ? [] : group.members();
  const members = lists === undefined && ctx.trusts === undefined ? [] : group.members();
  const rest = { ...change, removed: change.removed.filter((r) => !(ctx.trusts !== undefined && keyReplacementAllowed(change, r, ctx.trusts, present)) && !(lists !== undefined && deviceRemovalAllowed(change, r, lists, members))) };
  // A leaf of the committer's own user that the device rules did not allow is refused whoever
  // commits, the room's creator too (its linked device is vouched for by the creator's identity
  // key, so the creator's exception would otherwise let a stolen one cut its primary out, review
  // round 6); its own leave and a resync of its own leaf are §7.4's (a), (b).
  const by = change.committer;
  if (lists !== undefined && rest.removed.some((r) => r.username === by.username && r.identityFpr.equals(by.identityFpr)
    && !change.left.some((x) => x.leafIndex === r.leafIndex)
    && !(change.external && Buffer.from(r.signatureKey).equals(Buffer.from(by.signatureKey))))) return "policy";
  if (group.removalsAllowed(rest)) return undefined;
  return group.conversation.kind === "lobby" && lobbySweepAllowed(rest, ctx.isOnline) ? undefined : "policy";
}

/**
 * A peer's key change decided on (PROTOCOL.md §6, key-change.ts): a commit may remove a leaf of
 * user U when, after it, U has a leaf under ANOTHER identity key that my pin hook accepts now:
 * put in by the same commit (added, or the external joiner) or already a member (`present`, the
 * group's members before the commit, less those it removes). The hook accepts only the pinned key
 * and nothing of U while a change of U's key awaits my decision, so this allows exactly "U's old
 * key out, the key I decided on in", and never lets in a key I did not decide on.
 */
export function keyReplacementAllowed(change: MembershipChange, removed: MlsMember, trusts: (id: VerifiedIdentity) => boolean, present: readonly MlsMember[] = []): boolean {
  const kept = present.filter((p) => !change.removed.some((r) => r.leafIndex === p.leafIndex));
  const incoming = [...(change.external ? [...change.added, change.committer] : change.added), ...kept];
  return incoming.some((a) => a.username === removed.username && !a.identityFpr.equals(removed.identityFpr) && trusts(a));
}

/** The lobby janitor (§7 "The lobby"): leaves of users offline this long are removed. */
export const LOBBY_STALE_MS = 24 * 60 * 60_000;
/** At most one janitor commit per this long, removing at most LOBBY_SWEEP_MAX leaves. */
export const LOBBY_SWEEP_MS = 10 * 60_000;
export const LOBBY_SWEEP_MAX = 100;

/**
 * The lobby's own removal rule (PROTOCOL.md §7.4 (d), §7.5): the lobby has no
 * creator, so besides leaves and resyncs a member may remove others only in a janitor commit —
 * no add, not an external join, and every removed user other than a leaver is someone else than
 * the committer whom the relay's directory, as I see it now, does not list online. Without a
 * directory (`isOnline` undefined) nobody removes others. A hostile member can thus remove only
 * users who are offline; they come back by external commit at their next start, as always.
 */
export function lobbySweepAllowed(change: MembershipChange, isOnline: ((username: string) => boolean) | undefined): boolean {
  if (isOnline === undefined || change.external || change.added.length > 0 || change.removed.length === 0) return false;
  return change.removed.every((r) => change.left.some((l) => l.leafIndex === r.leafIndex) || (r.username !== change.committer.username && !isOnline(r.username)));
}

/**
 * Who sweeps the lobby: the member with the lowest leaf index among those the directory lists
 * online (me included: I am online when I run it). Every member computes the same from the same
 * tree and directory; two who disagree (a directory update in flight) race like any commit.
 */
export function lobbyJanitor(members: readonly Pick<MlsMember, "username" | "leafIndex">[], isOnline: (username: string) => boolean, myLeaf: number): number | undefined {
  // By leaf, not by name: of my several devices only the one at that leaf sweeps (PROTOCOL.md §4.5).
  return [...members].sort((a, b) => a.leafIndex - b.leafIndex).find((m) => m.leafIndex === myLeaf || isOnline(m.username))?.leafIndex;
}

/**
 * Who commits a member's leave proposal (PROTOCOL.md §7.3): the
 * members other than the leaver, in leaf order; the first commits at once, the k-th after k
 * times LEAVE_COMMIT_STEP_MS if the proposal is still uncommitted then (its betters offline).
 * Every member computes the same order from the tree of the proposal's epoch, so a leave in a
 * room of N costs one commit instead of N-1 racing ones. Returns my rank, or undefined when I
 * am the leaver or not in the tree.
 */
export function leaveCommitRank(members: readonly Pick<MlsMember, "username" | "leafIndex">[], leaverLeaf: number, myLeaf: number): number | undefined {
  // By leaf (PROTOCOL.md §4.5): each device is its own member; the leaving leaf never commits its own leave.
  if (myLeaf === leaverLeaf) return undefined;
  const order = members.filter((m) => m.leafIndex !== leaverLeaf).sort((a, b) => a.leafIndex - b.leafIndex);
  const i = order.findIndex((m) => m.leafIndex === myLeaf);
  return i < 0 ? undefined : i;
}

/** The delay per rank before a member commits a leave its betters did not (one engine timer tick). */
export const LEAVE_COMMIT_STEP_MS = 60_000;

/** The lines a (processed) commit shows in its conversation, naming who made each change. */
export function linesOf(change: MembershipChange, ctx: { readonly creator: string | undefined; readonly leaving: ReadonlySet<string>; readonly atMs: number; readonly after?: readonly MlsMember[]; readonly deviceName?: (username: string, signatureKey: Uint8Array) => string }): MembershipLine[] {
  const by = change.committer.username;
  const base = (kind: MembershipLine["kind"], who: string, users: readonly string[]): MembershipLine =>
    ctx.creator === undefined ? { kind, by: who, users, atMs: ctx.atMs } : { kind, by: who, users, creator: ctx.creator, atMs: ctx.atMs };
  const out: MembershipLine[] = [];
  // Devices (PROTOCOL.md §4.5): a leaf added or removed for a user who keeps another leaf (one
  // the commit did not add) is a device line; the user's first leaves are the usual lines.
  const after = ctx.after;
  const addedKeys = new Set(change.added.map((a) => Buffer.from(a.signatureKey).toString("hex")));
  const keeps = (u: string, skipAdded: boolean): boolean => after !== undefined && after.some((m) => m.username === u && !(skipAdded && addedKeys.has(Buffer.from(m.signatureKey).toString("hex"))));
  const name = (m: MlsMember): string => ctx.deviceName?.(m.username, m.signatureKey) ?? `device ${Buffer.from(m.signatureKey).toString("hex").slice(0, 8)}`;
  const device = (kind: "device-added" | "device-removed", m: MlsMember): MembershipLine => ({ ...base(kind, by, [m.username]), device: name(m) });
  const deviceAdds = change.added.filter((m) => !(change.external && m.username === by) && keeps(m.username, true));
  // A leaving user who keeps another leaf (a linked device leaving alone) is a device line too.
  const deviceRemovals = change.removed.filter((r) => !change.added.some((a) => a.username === r.username && !a.identityFpr.equals(r.identityFpr)) && keeps(r.username, false)
    && !(change.external && r.username === by && r.identityFpr.equals(change.committer.identityFpr) && Buffer.from(r.signatureKey).equals(Buffer.from(change.committer.signatureKey))));
  const resync = change.external && change.removed.some((r) => r.username === by);
  if (change.external && !resync) out.push(keeps(by, false) && after!.filter((m) => m.username === by).length > 1 ? device("device-added", change.committer) : base("joined", by, []));
  const added = [...new Set(change.added.filter((m) => !deviceAdds.includes(m)).map((m) => m.username).filter((u) => !(change.external && u === by)))];
  if (added.length > 0) out.push(base("added", by, added));
  for (const m of deviceAdds) out.push(device("device-added", m));
  for (const m of deviceRemovals) out.push(device("device-removed", m));
  const removed: string[] = [];
  for (const r of change.removed) {
    if (deviceRemovals.includes(r)) continue;
    if (r.username === by) continue;
    if (change.added.some((a) => a.username === r.username)) continue; // a key change: the "added" line names them (key-change.ts)
    if (ctx.leaving.has(r.username)) out.push(base("left", r.username, []));
    else removed.push(r.username);
  }
  const users = [...new Set(removed)];
  if (users.length > 0) out.push(base("removed", by, users));
  return out;
}

/** The line of a commit refused by policy: `by` tried to remove `users`, only the creator may. */
export function refusedLine(change: MembershipChange, creator: string | undefined, atMs: number): MembershipLine {
  const users = change.removed.map((m) => m.username);
  return creator === undefined ? { kind: "refused", by: change.committer.username, users, atMs } : { kind: "refused", by: change.committer.username, users, creator, atMs };
}
