// The checks of a SendCommit before the relay orders it (PROTOCOL.md §8.2, §8.3): its
// membership hint, the group size it would make, its Welcome, and for an external join its
// signature and leaf against the kept GroupInfo (mls-external.ts). Each throws the Refusal the
// committer sees; mls-ds.ts sendCommit runs them, cheapest first.
import type { PublicMessage } from "ts-mls";
import { ErrorCode, type SendCommit } from "../gen/securechat/v1/chat.js";
import { conversationOfGroupId } from "../protocol/mls/group-id.js";
import { MLS_SUITE } from "../protocol/mls/suite.js";
import { isValidUsername } from "../protocol/names.js";
import type { DirectoryUser } from "./directory.js";
import { Refusal } from "./errors.js";
import { bad, mls } from "./mls-checks.js";
import { checkExternalCommit, groupContextOf } from "./mls-external.js";
import type { MlsDsDeps } from "./mls-ds.js";
import { decodeClientMls, type MlsShapeBounds } from "./mls-shape.js";
import type { MembershipHint } from "./store/mls-types.js";

/** Usernames one commit's membership hint may name (added and removed together). */
export const MAX_HINT_NAMES = 1000;

/** A hint over MAX_HINT_NAMES (checkHint; the frame scan, frame-scan.ts, refuses the same count before the decode). */
export const tooManyHintNames = (): Refusal => new Refusal(ErrorCode.ERROR_CODE_MLS_LIMIT, `a commit may name at most ${MAX_HINT_NAMES} added and removed users`);

/**
 * The Welcome beside a commit: present exactly when it adds users (not by an external join), of
 * our suite, with its tree; at most one EncryptedGroupSecrets per device of a full group, walked
 * before it is decoded (mls-shape.ts, §8.2).
 */
export function checkWelcome(req: SendCommit, external: boolean, shape: MlsShapeBounds): Buffer | undefined {
  const wants = !external && req.added.length > 0;
  if (req.welcome.length === 0) {
    if (wants) throw bad(`the commit adds ${req.added.join(", ").slice(0, 200)} but carries no Welcome for them`);
    if (req.ratchetTree.length > 0) throw bad("a ratchet tree is sent only beside a Welcome");
    return undefined;
  }
  if (external) throw bad("an external join adds only its sender and carries no Welcome");
  if (!wants) throw bad("the commit carries a Welcome but names no added user to deliver it to");
  if (req.ratchetTree.length === 0) throw bad("the Welcome needs the new epoch's ratchet tree beside it");
  const msg = decodeClientMls(req.welcome, "the Welcome", shape);
  if (msg.wireformat !== "mls_welcome") throw bad(`the Welcome is a ${msg.wireformat}`);
  if (msg.welcome.cipherSuite !== MLS_SUITE) throw bad(`the Welcome uses ${msg.welcome.cipherSuite}, not ${MLS_SUITE}`);
  return Buffer.from(req.welcome);
}

/**
 * A commit that adds may not take the group past the relay's max_recipients (README "limits":
 * the most one message reaches): each SendMls is stored once per member by the hint, so the
 * limit bounds what one message costs the relay, as a v1 envelope's recipient list did.
 * Commits that only remove are always taken (a limit lowered since must not freeze a group).
 */
export function checkGroupSize(d: MlsDsDeps, groupId: Buffer, conversationId: string, me: string, hint: MembershipHint): void {
  if (hint.added.length === 0 && !hint.external) return;
  const members = new Set(d.store.mls.groupMembers(groupId));
  const before = members.size;
  for (const u of hint.added) members.add(u);
  if (hint.external) members.add(me);
  for (const u of hint.removed) members.delete(u);
  const max = d.limits.maxRecipients;
  if (members.size > before && members.size > max) {
    throw new Refusal(ErrorCode.ERROR_CODE_TOO_MANY_RECIPIENTS, `${conversationId} would have ${members.size} members; this relay allows at most ${max}, the most one message can reach`);
  }
  // Devices too (§4.5): every device of a member is a leaf and a queue row per message.
  // (Users not in memory read together; a name nobody owns has no device.)
  d.devices.prefetch(members);
  // §8.2: an added user must be someone: an honest client adds only users whose KeyPackages it
  // claimed here. A name nobody owns would only inflate the room's member count (ListRooms).
  const nobody = hint.added.find((u) => d.devices.addresses(u).length === 0);
  if (nobody !== undefined) throw new Refusal(ErrorCode.ERROR_CODE_UNKNOWN_RECIPIENT, `the commit adds ${nobody}, who has no account on this relay`);
  let devices = 0;
  for (const u of members) devices += d.devices.addresses(u).length;
  const maxDevices = d.limits.maxGroupDevices;
  if (devices > maxDevices) {
    throw new Refusal(ErrorCode.ERROR_CODE_TOO_MANY_RECIPIENTS, `${conversationId} would have ${devices} devices (of ${members.size} members); this relay allows at most ${maxDevices} in one group`);
  }
}

/**
 * The membership hint (PROTOCOL.md §8.2): valid distinct usernames, at most MAX_HINT_NAMES;
 * in a DM group only its two users, in `added` and `removed` alike. An external commit
 * (§8.2 "External commits"): in a DM only by one of its two users; its hint names nobody but
 * its joiner (RFC 9420 §12.4.3.2: an external commit adds only its sender, and removes only
 * the joiner's own old leaves, a resync, which keeps the joiner a member). The joiner's own
 * name in `removed` is therefore dropped: the joiner is a member by it.
 */
export function checkHint(groupId: Buffer, external: boolean, me: string, added: readonly string[], removed: readonly string[]): MembershipHint {
  if (added.length + removed.length > MAX_HINT_NAMES) throw tooManyHintNames();
  const all = [...added, ...removed];
  if (!all.every((u) => isValidUsername(u))) throw new Refusal(ErrorCode.ERROR_CODE_BAD_FRAME, "a commit's added or removed names include an invalid username");
  if (new Set(all).size !== all.length) throw new Refusal(ErrorCode.ERROR_CODE_BAD_FRAME, "a commit names a user twice in added and removed");
  const conv = mls(() => conversationOfGroupId(groupId));
  if (conv.kind === "dm" && external && !conv.members.includes(me)) {
    throw new Refusal(ErrorCode.ERROR_CODE_BAD_CONVERSATION, `only ${conv.members.join(" and ")} may join the group of ${conv.id}`);
  }
  if (conv.kind === "dm" && !all.every((u) => conv.members.includes(u))) {
    throw new Refusal(ErrorCode.ERROR_CODE_BAD_CONVERSATION, `a DM group holds only ${conv.members.join(" and ")}`);
  }
  if (external) {
    const other = all.find((u) => u !== me);
    if (other !== undefined) {
      throw new Refusal(ErrorCode.ERROR_CODE_BAD_FRAME, `an external join names only its joiner in added and removed, not ${other}: it adds nobody else and removes only your own old leaves`);
    }
    return { external, added, removed: [] };
  }
  return { external, added, removed };
}

/**
 * An external commit into a known group at its current epoch is checked against the relay's
 * GroupInfo of that epoch before it is ordered (PROTOCOL.md §8.2 "External commits";
 * mls-external.ts). One for a past epoch changes nothing (the store answers EPOCH_TAKEN,
 * naming the winner only to a member) and is not checked; one for the current epoch while
 * the relay's GroupInfo is older cannot have been made from it, and is refused.
 */
export function checkExternal(d: MlsDsDeps, user: DirectoryUser, pm: PublicMessage, groupId: Buffer, epoch: number, shape: MlsShapeBounds): void {
  const g = d.store.mls.group(groupId);
  if (g === undefined || epoch !== g.epoch) return;
  if (g.groupInfoEpoch !== g.epoch) {
    throw new Refusal(ErrorCode.ERROR_CODE_EPOCH_TAKEN, `the relay holds no GroupInfo of epoch ${g.epoch} of ${g.conversationId} yet, so no external join can be made for it; fetch the GroupInfo again later`);
  }
  const me = user.record.username;
  const hasList = d.devices.version(me) > 0;
  checkExternalCommit(pm, groupContextOf(g.groupInfo, shape), {
    username: me, identitySpki: user.record.sigSpki, hasList, device: hasList ? d.devices.deviceAt(d.address) : undefined,
  });
}
