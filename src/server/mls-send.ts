// SendMls's checks (PROTOCOL.md §8.3): the admission of an application message or proposal
// into the members' queues, after the rate limit; session.ts stores the result with the group
// commit. Split from mls-ds.ts (the Delivery Service's KeyPackages, GroupInfo and commits),
// which calls admitMls and shares queueAddresses for a commit's deliveries.
import { createHash } from "node:crypto";
import { ErrorCode, MlsKind } from "../gen/securechat/v1/chat.js";
import { conversationOfGroupId } from "../protocol/mls/group-id.js";
import { checkQueueCaps } from "./admission.js";
import { usernameOfAddress } from "./devices.js";
import type { DirectoryUser } from "./directory.js";
import { Refusal } from "./errors.js";
import { encodeMlsDelivery as encodeMlsDeliveryOnce } from "./frames.js";
import { bad, epochNumber, mls } from "./mls-checks.js";
import type { MlsDsDeps } from "./mls-ds.js";
import { sendMlsFraming } from "./mls-header.js";
import type { MlsShapeBounds } from "./mls-shape.js";
import type { RelayLimits } from "./limits.js";
import type { EnqueueRequest, QueueUsage } from "./store.js";

/** Bytes of MLS one SendMls may carry beyond the relay's text limit (the app data's header and acknowledgements, a proposal's KeyPackage). */
export const MLS_MESSAGE_OVERHEAD_BYTES = 64 * 1024;

/** The largest SendMls message this relay takes: its text limit plus MLS_MESSAGE_OVERHEAD_BYTES (128 KiB by default). */
export function maxSendMlsBytes(limits: Pick<RelayLimits, "maxTextBytes">): number {
  return limits.maxTextBytes + MLS_MESSAGE_OVERHEAD_BYTES;
}

/** What SendMls needs of the session beyond the store: who is online, and queue usage with what waits for the group commit. */
export interface MlsSendContext {
  /** Whether any device of the user is online. */
  readonly isOnline: (username: string) => boolean;
  /** A queue address's usage (stored and waiting for the group commit). */
  readonly queueUsage: (address: string) => QueueUsage;
  /** The id was accepted before or waits for its commit. */
  readonly isResend: (messageId: Buffer) => boolean;
}

export type MlsAdmission =
  | { readonly kind: "duplicate" }
  | { readonly kind: "accept"; readonly request: EnqueueRequest; readonly queuedFor: string[]; readonly contentType: string };

/** The id of an MLS message on the relay (PROTOCOL.md §8.1): SHA-256 of its bytes, first 16 bytes. */
export function mlsMessageId(mls: Uint8Array): Buffer {
  return createHash("sha256").update(mls).digest().subarray(0, 16);
}

/**
 * The queue addresses of every device of these users except the sending device (PROTOCOL.md
 * §4.5): my other devices get what I send. From the in-memory routes: no database read.
 */
export function queueAddresses(d: Pick<MlsDsDeps, "devices" | "address" | "inLobby">, usernames: readonly string[], lobby: boolean): string[] {
  // Users not in memory (evicted, or names a hint made up) are read together, not one by one;
  // a name nobody owns has no address: nothing is queued for it.
  d.devices.prefetch(usernames);
  const out: string[] = [];
  for (const u of usernames) {
    for (const a of d.devices.addresses(u)) {
      if (a !== d.address && (!lobby || d.inLobby(a))) out.push(a);
    }
  }
  return out;
}


/**
 * SendMls (PROTOCOL.md §8.3), the checks after the rate limit, in frame order: size; strict
 * decode; a PrivateMessage whose content type is application or proposal (a commit must come
 * by SendCommit); a known group; the session's user a member by the hint; the framing's epoch
 * the group's current one or the one before (a proposal: the current one only). Then who gets a queue row: every other member by
 * the hint (the lobby: only those in its audience now), each queue within its caps. Returns
 * what to hand to the group commit; throws Refusal.
 */
export function admitMls(d: MlsDsDeps, shape: MlsShapeBounds, user: DirectoryUser, mlsBytes: Uint8Array, ctx: MlsSendContext, messageId: Buffer = mlsMessageId(mlsBytes)): MlsAdmission {
  const me = user.record.username;
  const max = maxSendMlsBytes(d.limits);
  if (mlsBytes.length > max) throw new Refusal(ErrorCode.ERROR_CODE_FRAME_TOO_LARGE, `the MLS message has ${mlsBytes.length} bytes; this relay takes at most ${max}`);
  const framing = sendMlsFraming(mlsBytes, shape);
  if (framing.contentType === "commit") throw bad("the message is a commit: send commits with SendCommit, not SendMls");
  const groupId = framing.groupId;
  const epoch = typeof framing.epoch === "bigint" ? epochNumber(framing.epoch, "the message") : framing.epoch;
  const conv = mls(() => conversationOfGroupId(groupId));
  const s = d.store.mls;
  const g = s.groupHead(groupId);
  if (g === undefined) throw new Refusal(ErrorCode.ERROR_CODE_UNKNOWN_GROUP, "this relay keeps no group with that id");
  if (!s.isGroupMember(groupId, me)) throw new Refusal(ErrorCode.ERROR_CODE_NOT_A_MEMBER, `you are not a member of the group of ${g.conversationId} by the relay's record`);
  if (epoch !== g.epoch && epoch + 1 !== g.epoch) {
    throw bad(`the message is for epoch ${epoch}, but the group of ${g.conversationId} is at epoch ${g.epoch}; only messages for epoch ${g.epoch}${g.epoch > 0 ? ` or ${g.epoch - 1}` : ""} are accepted`);
  }
  if (ctx.isResend(messageId)) return { kind: "duplicate" };
  // (After the resend check: one accepted before is answered as such.) A proposal of the epoch
  // before can never be committed (members drop it as stale): its sender (a /leave) must learn
  // that the group moved on and propose again, or its leaf would stay in the group unread.
  if (framing.contentType === "proposal" && epoch !== g.epoch) {
    throw new Refusal(ErrorCode.ERROR_CODE_EPOCH_TAKEN, `the group of ${g.conversationId} moved on to epoch ${g.epoch}; a proposal for epoch ${epoch} could no longer be committed`);
  }
  // Every device of every member by the hint but the sending one (§4.5; the lobby: its audience now).
  const rows = queueAddresses(d, s.groupMembers(groupId), conv.kind === "lobby");
  const kind = framing.contentType === "application" ? MlsKind.MLS_KIND_APPLICATION : MlsKind.MLS_KIND_PROPOSAL;
  const stored = encodeMlsDeliveryOnce({ kind, groupId, sender: me, mls: mlsBytes, senderDevice: d.devices.deviceIdOf(d.address) });
  checkQueueCaps(rows, stored.length, { queueUsage: ctx.queueUsage, limits: d.limits });
  // queued_for: the other users none of whose devices is online now.
  const queuedFor = new Set<string>();
  for (const a of rows) {
    const u = usernameOfAddress(a);
    if (u !== me && !ctx.isOnline(u)) queuedFor.add(u);
  }
  return {
    kind: "accept", contentType: framing.contentType,
    request: { sender: me, messageId, conversationId: g.conversationId, envelope: stored, payload: "mls", recipients: rows },
    queuedFor: [...queuedFor],
  };
}
