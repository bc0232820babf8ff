// An external join checked by the relay before it is ordered (PROTOCOL.md §8.2 "External
// commits"; RFC 9420 §6.1, §12.4.3.2). The relay cannot check an external commit's path or
// confirmation tag (they need the epoch's secrets), but it holds the group's current GroupInfo,
// whose GroupContext is what a `new_member_commit` sender signs (FramedContentTBS carries the
// context for that sender type, RFC 9420 §6.1). So it checks, with one Ed25519 verification
// each: the PublicMessage's signature under the signature key of the leaf in the commit's
// UpdatePath, against the GroupContext of the relay's GroupInfo; that leaf's credential (§4.4)
// vouched for by the session user's bound identity key and naming that user; and, when the
// user has a device list, that the leaf key is the session device's `mls_signature_key` (§4.5).
// A commit lifted from another group, with its group id and epoch rewritten, fails the
// signature; one made by someone for themselves names them, not the session's user.
import { createPublicKey } from "node:crypto";
import type { GroupContext, PublicMessage } from "ts-mls";
import { encode, composeBufferEncoders } from "ts-mls/codec/tlsEncoder.js";
import { varLenDataEncoder } from "ts-mls/codec/variableLength.js";
import { framedContentTBSEncoder, toTbs } from "ts-mls/framedContent.js";
import { ErrorCode } from "../gen/securechat/v1/chat.js";
import { MLS_SIGNATURE_KEY_BYTES, verifyCredential } from "../protocol/mls/credential.js";
import { ed25519Verify } from "../protocol/primitives.js";
import type { DeviceEntry } from "../protocol/devices.js";
import { Refusal } from "./errors.js";
import { bad, mls } from "./mls-checks.js";
import { decodeClientMls, type MlsShapeBounds } from "./mls-shape.js";

/** Who the session is: the user's name and bound identity key, and its device when the user has a list. */
export interface ExternalJoiner {
  readonly username: string;
  readonly identitySpki: Buffer;
  /** The user has a device list: the session's device in it (undefined: a device the list does not name). */
  readonly hasList: boolean;
  readonly device: DeviceEntry | undefined;
}

/**
 * The GroupContext of a kept GroupInfo (the relay stored it after decoding it, §8.2; walked again:
 * one kept by a relay before mls-shape.ts may hold any number of extensions).
 */
export function groupContextOf(groupInfo: Uint8Array, shape: MlsShapeBounds): GroupContext {
  const msg = decodeClientMls(groupInfo, "the group's GroupInfo", shape);
  if (msg.wireformat !== "mls_group_info") throw bad("the group's kept GroupInfo is not a GroupInfo");
  return msg.groupInfo.groupContext;
}

/** SignWithLabel's content (RFC 9420 §5.1.2): SignContent { "MLS 1.0 " + label, content }, as ts-mls encodes it. */
const signContent = encode(composeBufferEncoders([varLenDataEncoder, varLenDataEncoder]));

/**
 * Checks an external commit (a PublicMessage whose sender is new_member_commit) against the
 * group's current GroupContext and the session; throws a Refusal with one sentence.
 */
export function checkExternalCommit(pm: PublicMessage, context: GroupContext, joiner: ExternalJoiner): void {
  const content = pm.content;
  if (content.contentType !== "commit" || pm.auth.contentType !== "commit") throw bad("the external join is not a commit");
  const leaf = content.commit.path?.leafNode;
  if (leaf === undefined) throw bad("the external join carries no update path (RFC 9420 §12.4.3.2 requires one)");
  const key = leaf.signaturePublicKey;
  if (!(key instanceof Uint8Array) || key.length !== MLS_SIGNATURE_KEY_BYTES) throw bad("the external join's leaf has no Ed25519 signature key");
  const tbs = encode(framedContentTBSEncoder)(toTbs(content, "mls_public_message", context));
  const signed = signContent([new TextEncoder().encode("MLS 1.0 FramedContentTBS"), tbs]);
  const publicKey = createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: Buffer.from(key).toString("base64url") }, format: "jwk" });
  if (!ed25519Verify(publicKey, signed, pm.auth.signature)) {
    throw bad(`the external join's signature does not verify for the group's current epoch ${context.epoch} (RFC 9420 §6.1: it signs the group's context)`);
  }
  const id = mls(() => verifyCredential(leaf.credential, key));
  if (id.username !== joiner.username || !id.identitySpki.equals(joiner.identitySpki)) {
    throw new Refusal(ErrorCode.ERROR_CODE_FORGED_SENDER,
      `the external join's leaf is ${id.username === joiner.username ? "vouched for by another identity key than yours" : `'${id.username}'s`}; you may join only as yourself`);
  }
  if (joiner.hasList) {
    if (joiner.device === undefined) throw new Refusal(ErrorCode.ERROR_CODE_DEVICE_UNKNOWN, "this device is not in your device list any more");
    if (!Buffer.from(key).equals(joiner.device.mlsSignatureKey)) {
      throw bad(`the external join's leaf is signed with another MLS key than this device's (${joiner.device.name}) in your device list; a device joins only as itself`);
    }
  }
}
