// What the protocol v2 engine reads from an MLS message before any key is used (PROTOCOL.md
// §8.1, §10.1): group id, epoch and content type, in the clear in
// both PrivateMessage and PublicMessage framing. Used to hold a message for a future epoch
// and to tell a stale or replayed one from a current one.
import { decodeReceivedMls } from "../../protocol/mls/client.js";
import { MlsProtocolError } from "../../protocol/mls/index.js";
import { decodeTree } from "../../protocol/mls/membership.js";

export interface MlsFraming {
  readonly groupId: Uint8Array;
  readonly epoch: number;
  readonly contentType: "application" | "proposal" | "commit";
  /** A PublicMessage from a new member (an external join). */
  readonly external: boolean;
  /** Its authenticated_data: in clear, authentic only once the message was processed (list-claims.ts). */
  readonly authenticatedData: Uint8Array;
}

/** Reads the framing of a group message; throws MlsProtocolError("malformed") for anything else. */
export function readFraming(bytes: Uint8Array): MlsFraming {
  const msg = decodeReceivedMls(bytes, "MLS message");
  if (msg.wireformat === "mls_private_message") {
    const pm = msg.privateMessage;
    return { groupId: pm.groupId, epoch: Number(pm.epoch), contentType: pm.contentType as MlsFraming["contentType"], external: false, authenticatedData: pm.authenticatedData };
  }
  if (msg.wireformat === "mls_public_message") {
    const c = msg.publicMessage.content;
    return { groupId: c.groupId, epoch: Number(c.epoch), contentType: c.contentType as MlsFraming["contentType"], external: c.sender.senderType === "new_member_commit", authenticatedData: c.authenticatedData };
  }
  throw new MlsProtocolError("malformed", `expected a group message, got ${msg.wireformat}`);
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/**
 * The leaves of a GroupInfo's ratchet tree (its ratchet_tree extension) with this MLS signature
 * key, and the others. An external join may ask for `resync` (replace my old leaf) only when it
 * holds one of mine — ts-mls 1.6.4 does not return when asked to resync without a former leaf —
 * and beside a leaf of someone else: it cannot resync a tree whose only leaf is mine ("the last
 * node in the ratchet tree must be non-blank").
 */
export function groupInfoLeavesOf(groupInfo: Uint8Array, signaturePublicKey: Uint8Array): { readonly mine: number; readonly others: number } {
  const msg = decodeReceivedMls(groupInfo, "GroupInfo");
  if (msg.wireformat !== "mls_group_info") return { mine: 0, others: 0 };
  const ext = msg.groupInfo.extensions.find((e) => e.extensionType === "ratchet_tree");
  if (ext === undefined) return { mine: 0, others: 0 };
  let mine = 0;
  let others = 0;
  for (const n of decodeTree(ext.extensionData)) {
    if (n?.nodeType !== "leaf") continue;
    if (sameBytes(n.leaf.signaturePublicKey, signaturePublicKey)) mine++;
    else others++;
  }
  return { mine, others };
}

/**
 * What a GroupInfo says of itself before it is joined: its epoch, the MLS signature key of the
 * leaf that signed it, and the leaf at `leafIndex` (read from its ratchet_tree extension;
 * undefined where the tree has no leaf: joinExternal refuses a GroupInfo whose signer is not in
 * it anyway). Throws MlsProtocolError("malformed") for anything but a GroupInfo.
 */
export function groupInfoFactsOf(groupInfo: Uint8Array, leafIndex: number): {
  readonly epoch: bigint;
  readonly signerKey: Uint8Array | undefined;
  readonly leaf: { readonly signatureKey: Uint8Array; readonly hpkeKey: Uint8Array } | undefined;
} {
  const msg = decodeReceivedMls(groupInfo, "GroupInfo");
  if (msg.wireformat !== "mls_group_info") throw new MlsProtocolError("malformed", `expected a GroupInfo, got ${msg.wireformat}`);
  const gi = msg.groupInfo;
  const ext = gi.extensions.find((e) => e.extensionType === "ratchet_tree");
  const tree = ext === undefined ? [] : decodeTree(ext.extensionData);
  // Leaf i is node 2i of the array-based tree (RFC 9420 Appendix C).
  const leafAt = (i: number) => {
    const n = tree[2 * i];
    return n?.nodeType === "leaf" ? n.leaf : undefined;
  };
  const at = leafAt(leafIndex);
  return {
    epoch: gi.groupContext.epoch,
    signerKey: leafAt(gi.signer)?.signaturePublicKey,
    leaf: at === undefined ? undefined : { signatureKey: at.signaturePublicKey, hpkeKey: at.hpkePublicKey },
  };
}
