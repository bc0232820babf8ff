// The room policy every client applies to every commit (PROTOCOL-v2.md §4 "Conversations are
// groups"), and the membership lines a commit shows (SessionEvent `membership`).
// - Only a room's creator removes others; anyone leaves (a removal another member proposed for
//   itself); a member re-joining by external commit with resync removes only its own old leaf.
// - The lobby has no creator: only leaves and resyncs remove anyone (the janitor of §4 is not built).
// - A DM never gets a third member (checked by MlsGroup itself) and nobody is removed from it but
//   by leaving.
// - The relay-authenticated sender of a commit must be its MLS committer (§5: the relay
//   authenticates who sent by the session).
// The creator is the member of leaf 0 (§4: "until the GroupContext extension is built, the first leaf").
import type { Conversation } from "../../protocol/names.js";
import type { MembershipChange, MlsGroup } from "../../protocol/mls/index.js";
import type { MembershipLine } from "../types.js";

/** The room's creator (the member of leaf 0), or undefined (lobby, DM, or the creator left). */
export function creatorOf(group: MlsGroup): string | undefined {
  if (group.conversation.kind !== "room") return undefined;
  return group.members().find((m) => m.leafIndex === 0)?.username;
}

/** Why a commit is refused, or undefined when it is allowed. */
export type Refusal = "sender" | "policy";

export function judgeCommit(conv: Conversation, change: MembershipChange, ctx: { readonly creator: string | undefined; readonly leaving: ReadonlySet<string>; readonly relaySender: string }): Refusal | undefined {
  const by = change.committer.username;
  if (by !== ctx.relaySender) return "sender";
  for (const r of change.removed) {
    if (r.username === by) continue; // a resync: the joiner's own old leaf
    if (ctx.leaving.has(r.username)) continue; // its own leave, proposed earlier in this epoch
    if (conv.kind === "room" && ctx.creator !== undefined && by === ctx.creator) continue;
    return "policy";
  }
  return undefined;
}

/** The lines a (processed) commit shows in its conversation, naming who made each change. */
export function linesOf(change: MembershipChange, ctx: { readonly creator: string | undefined; readonly leaving: ReadonlySet<string>; readonly atMs: number }): MembershipLine[] {
  const by = change.committer.username;
  const base = (kind: MembershipLine["kind"], who: string, users: readonly string[]): MembershipLine =>
    ctx.creator === undefined ? { kind, by: who, users, atMs: ctx.atMs } : { kind, by: who, users, creator: ctx.creator, atMs: ctx.atMs };
  const out: MembershipLine[] = [];
  const resync = change.external && change.removed.some((r) => r.username === by);
  if (change.external && !resync) out.push(base("joined", by, []));
  const added = change.added.map((m) => m.username).filter((u) => !(change.external && u === by));
  if (added.length > 0) out.push(base("added", by, added));
  const removed: string[] = [];
  for (const r of change.removed) {
    if (r.username === by) continue;
    if (ctx.leaving.has(r.username)) out.push(base("left", r.username, []));
    else removed.push(r.username);
  }
  if (removed.length > 0) out.push(base("removed", by, removed));
  return out;
}

/** The line of a commit refused by policy: `by` tried to remove `users`, only the creator may. */
export function refusedLine(change: MembershipChange, creator: string | undefined, atMs: number): MembershipLine {
  const users = change.removed.map((m) => m.username);
  return creator === undefined ? { kind: "refused", by: change.committer.username, users, atMs } : { kind: "refused", by: change.committer.username, users, creator, atMs };
}
