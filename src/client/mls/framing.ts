// What the protocol v2 engine reads from an MLS message before any key is used (PROTOCOL.md
// §8.1, §10.1): group id, epoch and content type, in the clear in
// both PrivateMessage and PublicMessage framing. Used to hold a message for a future epoch
// and to tell a stale or replayed one from a current one.
import { decodeMls } from "../../protocol/mls/client.js";
import { MlsProtocolError } from "../../protocol/mls/index.js";
import { decodeTree } from "../../protocol/mls/membership.js";

export interface MlsFraming {
  readonly groupId: Uint8Array;
  readonly epoch: number;
  readonly contentType: "application" | "proposal" | "commit";
  /** A PublicMessage from a new member (an external join). */
  readonly external: boolean;
}

/** Reads the framing of a group message; throws MlsProtocolError("malformed") for anything else. */
export function readFraming(bytes: Uint8Array): MlsFraming {
  const msg = decodeMls(bytes, "MLS message");
  if (msg.wireformat === "mls_private_message") {
    const pm = msg.privateMessage;
    return { groupId: pm.groupId, epoch: Number(pm.epoch), contentType: pm.contentType as MlsFraming["contentType"], external: false };
  }
  if (msg.wireformat === "mls_public_message") {
    const c = msg.publicMessage.content;
    return { groupId: c.groupId, epoch: Number(c.epoch), contentType: c.contentType as MlsFraming["contentType"], external: c.sender.senderType === "new_member_commit" };
  }
  throw new MlsProtocolError("malformed", `expected a group message, got ${msg.wireformat}`);
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/**
 * Whether a GroupInfo's ratchet tree (its ratchet_tree extension) holds a leaf with this MLS
 * signature key: an external join may ask for `resync` (replace my old leaf) only then — ts-mls
 * 1.6.4 does not return when asked to resync without a former leaf.
 */
export function groupInfoHasLeafOf(groupInfo: Uint8Array, signaturePublicKey: Uint8Array): boolean {
  const msg = decodeMls(groupInfo, "GroupInfo");
  if (msg.wireformat !== "mls_group_info") return false;
  const ext = msg.groupInfo.extensions.find((e) => e.extensionType === "ratchet_tree");
  if (ext === undefined) return false;
  const tree = decodeTree(ext.extensionData);
  return tree.some((n) => n?.nodeType === "leaf" && sameBytes(n.leaf.signaturePublicKey, signaturePublicKey));
}
