// Reading and judging a message that comes to a group (group.ts processes it): the checks
// made before it is processed (a group message, of this group, of an epoch it may be of), who
// sent it (read from the sender data of its epoch), and the checks of the state a commit makes
// (its fixed settings, the creator's name, no renamed leaf, a DM's two users). Pure: the group's
// state in, a sentence (MlsProtocolError) when the message is refused.
import type { CiphersuiteImpl, ClientState, ContentTypeName, MLSMessage } from "ts-mls";
import { decryptSenderData } from "ts-mls/privateMessage.js";
import type { Conversation } from "../names.js";
import { decodeReceivedMls } from "./client.js";
import { checkCreatorName, type RoomCreator } from "./creator.js";
import { MlsProtocolError } from "./errors.js";
import { leafAt, memberOf, membersOf, renamedLeaf, resolveChange, type MembershipChange, type MlsMember } from "./membership.js";
import { sameExtensions } from "./group-parts.js";

/** An MLS message sent to a group (the others are a Welcome, a GroupInfo, a KeyPackage). */
export type GroupMessage = Extract<MLSMessage, { wireformat: "mls_private_message" | "mls_public_message" }>;

/**
 * Decodes a message for the group `groupId` at epoch `current`: refused when it is not a group
 * message, is for another group, or is of an epoch it may not be of (a handshake message only for
 * the current epoch; an application message, encrypted, for the current or a past one).
 */
export function readGroupMessage(bytes: Uint8Array, groupIdOfMine: Uint8Array, current: bigint, conversationId: string): { msg: GroupMessage; epoch: bigint; contentType: ContentTypeName } {
  const msg = decodeReceivedMls(bytes, "MLS message");
  if (msg.wireformat !== "mls_private_message" && msg.wireformat !== "mls_public_message") {
    throw new MlsProtocolError("malformed", `expected a group message, got ${msg.wireformat}`);
  }
  const groupId = msg.wireformat === "mls_private_message" ? msg.privateMessage.groupId : msg.publicMessage.content.groupId;
  const epoch = msg.wireformat === "mls_private_message" ? msg.privateMessage.epoch : msg.publicMessage.content.epoch;
  const contentType = msg.wireformat === "mls_private_message" ? msg.privateMessage.contentType : msg.publicMessage.content.contentType;
  if (!Buffer.from(groupId).equals(Buffer.from(groupIdOfMine))) throw new MlsProtocolError("wrong-group", `message is for another group than ${conversationId}'s`);
  if (contentType !== "application" && epoch !== current) {
    throw new MlsProtocolError("wrong-epoch", `a ${contentType} for epoch ${epoch} while the group is at epoch ${current} (refused: only the current epoch can change)`);
  }
  if (contentType === "application" && msg.wireformat !== "mls_private_message") throw new MlsProtocolError("malformed", "application data must be encrypted");
  if (epoch > current) throw new MlsProtocolError("wrong-epoch", `message for future epoch ${epoch} (the group is at ${current})`);
  return { msg, epoch, contentType };
}

/**
 * Who sent it (the group at epoch `current`): for a private message, from the sender data of its
 * epoch (never me); for a public one, the member it names, or undefined for an external joiner's commit.
 */
export async function senderOf(msg: GroupMessage, state: ClientState, epoch: bigint, current: bigint, myLeafIndex: number, impl: CiphersuiteImpl): Promise<MlsMember | undefined> {
  let sender: MlsMember | undefined;
  if (msg.wireformat === "mls_private_message") {
    const pm = msg.privateMessage;
    const past = epoch < current ? state.historicalReceiverData.get(epoch) : undefined;
    if (epoch < current && past === undefined) throw new MlsProtocolError("epoch-expired", `message for epoch ${epoch}, whose keys were deleted (the group is at ${current})`);
    const sds = past?.senderDataSecret ?? state.keySchedule.senderDataSecret;
    const tree = past?.ratchetTree ?? state.ratchetTree;
    let sd: Awaited<ReturnType<typeof decryptSenderData>>;
    try {
      sd = await decryptSenderData(pm, sds, impl);
    } catch (e) {
      throw new MlsProtocolError("decrypt-failed", "message sender data does not open", { cause: e });
    }
    const leaf = sd === undefined ? undefined : leafAt(tree, sd.leafIndex);
    if (sd === undefined || leaf === undefined) throw new MlsProtocolError("decrypt-failed", "message names no member as its sender");
    if (sd.leafIndex === myLeafIndex) throw new MlsProtocolError("decrypt-failed", "message claims to come from me (a reflection)");
    sender = memberOf(leaf, sd.leafIndex);
  } else {
    const s = msg.publicMessage.content.sender;
    if (s.senderType === "member") {
      const leaf = leafAt(state.ratchetTree, s.leafIndex);
      if (leaf === undefined) throw new MlsProtocolError("decrypt-failed", "message names no member as its sender");
      sender = memberOf(leaf, s.leafIndex);
    } else if (s.senderType !== "new_member_commit") {
      throw new MlsProtocolError("refused-change", `messages from ${s.senderType} senders are not used by secure-chat`);
    }
  }
  return sender;
}

/**
 * The change a processed commit made (`change`, as seen while processing, resolved on the tree
 * it makes), refused when the state it makes breaks a rule every member keeps whatever its policy.
 */
export function judgedCommit(change: MembershipChange, before: ClientState, after: ClientState, conversation: Conversation, roomCreator: RoomCreator | undefined): MembershipChange {
  // The GroupContext extensions (a room's creator) are fixed at creation: no secure-chat client
  // proposes group_context_extensions, and a commit carrying one that changes them is refused
  // (PROTOCOL.md §7.4).
  if (!sameExtensions(before.groupContext.extensions, after.groupContext.extensions)) {
    throw new MlsProtocolError("context-changed", `a commit tried to change ${conversation.id}'s fixed group settings (its creator); refused`);
  }
  // Nobody but the creator may hold the creator's name (checked on the tree the commit makes).
  checkCreatorName(conversation, roomCreator, membersOf(after.ratchetTree), "refused-change");
  const finalChange = resolveChange(change, before.ratchetTree, after.ratchetTree);
  const renamed = renamedLeaf(before.ratchetTree, after.ratchetTree, new Set(finalChange.removed.map((m) => m.leafIndex)));
  if (renamed !== undefined) throw new MlsProtocolError("refused-change", `'${renamed.before.username}' tried to change its name or identity key in ${conversation.id} (to '${renamed.after.username}'); refused`);
  if (!dmAllows(conversation, finalChange)) throw new MlsProtocolError("refused-change", `${conversation.id} holds only its two users; a change bringing in someone else was refused`);
  return finalChange;
}

/** A DM's group only ever holds its two users (PROTOCOL.md §7.2). */
function dmAllows(conversation: Conversation, change: MembershipChange): boolean {
  if (conversation.kind !== "dm") return true;
  const allowed = conversation.members;
  return change.added.every((m) => allowed.includes(m.username)) && allowed.includes(change.committer.username);
}

/** A group message's authenticated_data (RFC 9420 §6: in clear, covered by its signature and, for a PrivateMessage, the AEAD). */
export function authenticatedDataOf(msg: GroupMessage): Uint8Array {
  return msg.wireformat === "mls_private_message" ? msg.privateMessage.authenticatedData : msg.publicMessage.content.authenticatedData;
}
