// Group ids (proto/PROTOCOL.md §7.1): which conversation an MLS group belongs to,
// fixed in the GroupContext every member agrees on.
import { randomBytes } from "node:crypto";
import { parseConversationId, USERNAME_MAX, type Conversation } from "../names.js";
import { MlsProtocolError } from "./errors.js";

const GROUP_ID_RANDOM_BYTES = 16;
/** The longest group id: the longest conversation id ("dm:" + two longest usernames), 0x00, the random bytes. */
export const GROUP_ID_MAX_BYTES = 3 + 2 * USERNAME_MAX + 1 + 1 + GROUP_ID_RANDOM_BYTES;

/**
 * group_id = UTF-8(conversation id) || 0x00 || 16 random bytes (PROTOCOL.md §7.1).
 * The group id is part of the GroupContext every member agrees on, so the conversation a
 * group belongs to cannot be changed by the relay: a joiner reads it from the (signed) GroupInfo.
 */
export function makeGroupId(conversationId: string): Uint8Array {
  if (parseConversationId(conversationId) === undefined) throw new MlsProtocolError("bad-argument", `'${String(conversationId)}' is not a conversation id`);
  return new Uint8Array(Buffer.concat([Buffer.from(conversationId, "utf8"), Buffer.from([0]), randomBytes(GROUP_ID_RANDOM_BYTES)]));
}

/** The conversation a group id names; throws MlsProtocolError("malformed") for anything else. */
export function conversationOfGroupId(groupId: Uint8Array): Conversation {
  const b = Buffer.from(groupId);
  const sep = b.length - GROUP_ID_RANDOM_BYTES - 1;
  if (sep < 1 || b[sep] !== 0) throw new MlsProtocolError("malformed", "group id is not a secure-chat group id");
  const conv = parseConversationId(b.subarray(0, sep).toString("utf8"));
  if (conv === undefined || !Buffer.from(conv.id, "utf8").equals(b.subarray(0, sep))) throw new MlsProtocolError("malformed", "group id names no valid conversation");
  return conv;
}
