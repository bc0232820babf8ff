// A room's creator, bound in the group itself (proto/PROTOCOL.md §7.4).
//
// A room's GroupContext carries, from epoch 0 and for ever, two extensions and nothing else:
//
//   required_capabilities (RFC 9420 §11.1) = { extension_types: [0xF5C1], proposal_types: [], credential_types: [basic] }
//   room_creator (type 0xF5C1, private use)  = enc("securechat/v1/mls-room-creator", username, SHA-256(identity SPKI))
//
// The GroupContext is hashed into every epoch's key schedule and signed in every GroupInfo, so
// every member and every joiner (Welcome or external commit) reads the same creator, and the
// relay cannot change it. Who the creator is: the username AND the fingerprint of the identity
// key that vouched for the creator's MLS credential (credential.ts). Leaf 0 means nothing: MLS
// gives the leftmost blank leaf to the next joiner once the creator has left.
//
// The rule every client applies (§4): only the creator — a member whose credential names the
// creator's username and is vouched for by the creator's identity key — may remove others.
// Anyone may leave. While the creator is not a member (they left), nobody may remove others;
// if the creator comes back with the same identity key, they are the creator again.
//
// DMs and the lobby have no GroupContext extensions at all. Any other extension, a missing or
// malformed one, or a leaf that names the creator's username under another identity key is
// refused (join, restore, and every commit: see group.ts).
import type { Extension } from "ts-mls";
import { encodeRequiredCapabilities } from "ts-mls";
import { encodeFields } from "../encoding.js";
import { checkUsername, type Conversation } from "../names.js";
import type { VerifiedIdentity } from "./credential.js";
import type { MembershipChange } from "./membership.js";
import { MlsProtocolError } from "./errors.js";
import { decodeFields } from "./fields.js";

/**
 * Extension type of room_creator: in RFC 9420's private-use range 0xF000-0xFFFF (§17.3), so it
 * can never collide with an IANA-registered type, and not a GREASE value (0x?A?A, §13.5).
 */
export const ROOM_CREATOR_EXTENSION = 0xf5c1;
export const ROOM_CREATOR_LABEL = "securechat/v1/mls-room-creator";
const FINGERPRINT_BYTES = 32;

/** Who created a room: the username and SHA-256 of the identity key (the v1 `sig_fpr`, PROTOCOL.md §4.2). */
export interface RoomCreator {
  readonly username: string;
  readonly identityFingerprint: Buffer;
}

/** The required_capabilities every room carries: every member's client must support room_creator. */
function requiredCapabilitiesBytes(): Uint8Array {
  return encodeRequiredCapabilities({ extensionTypes: [ROOM_CREATOR_EXTENSION], proposalTypes: [], credentialTypes: ["basic"] });
}

export function encodeRoomCreator(creator: RoomCreator): Uint8Array {
  const c = checkUsername(creator?.username);
  if (!c.ok) throw new MlsProtocolError("bad-argument", `room creator: ${c.reason}`);
  if (!(creator.identityFingerprint instanceof Uint8Array) || creator.identityFingerprint.length !== FINGERPRINT_BYTES) {
    throw new MlsProtocolError("bad-argument", `room creator: the identity fingerprint must be ${FINGERPRINT_BYTES} bytes`);
  }
  return new Uint8Array(encodeFields(ROOM_CREATOR_LABEL, [creator.username, creator.identityFingerprint]));
}

/** Strict decoder: the label, exactly two fields, a valid username in canonical UTF-8, a 32-byte fingerprint. */
export function decodeRoomCreator(bytes: Uint8Array): RoomCreator {
  let f: Buffer[];
  try {
    f = decodeFields(bytes, ROOM_CREATOR_LABEL, 2, "room creator extension");
  } catch (e) {
    throw new MlsProtocolError("bad-group-context", (e as Error).message, { cause: e });
  }
  const [name, fpr] = f as [Buffer, Buffer];
  const username = name.toString("utf8");
  const c = checkUsername(username);
  if (!c.ok || !Buffer.from(username, "utf8").equals(name)) throw new MlsProtocolError("bad-group-context", `room creator extension names an invalid username: ${c.ok ? "not UTF-8" : c.reason}`);
  if (fpr.length !== FINGERPRINT_BYTES) throw new MlsProtocolError("bad-group-context", `room creator extension carries a ${fpr.length}-byte fingerprint, not ${FINGERPRINT_BYTES}`);
  return { username, identityFingerprint: Buffer.from(fpr) };
}

/** The GroupContext extensions MlsGroup.create sets: a room's two, none for a DM or the lobby. */
export function contextExtensionsFor(conv: Conversation, creator: VerifiedIdentity): Extension[] {
  if (conv.kind !== "room") return [];
  return [
    { extensionType: "required_capabilities", extensionData: requiredCapabilitiesBytes() },
    { extensionType: ROOM_CREATOR_EXTENSION, extensionData: encodeRoomCreator({ username: creator.username, identityFingerprint: creator.identityFpr }) },
  ];
}

/**
 * Reads the creator from a GroupContext's extensions, strictly (PROTOCOL.md §7): a room must
 * carry exactly required_capabilities (our bytes) then room_creator; a DM or the lobby nothing.
 * Throws MlsProtocolError("bad-group-context") otherwise.
 */
export function readCreator(conv: Conversation, extensions: readonly Extension[]): RoomCreator | undefined {
  if (!Array.isArray(extensions)) throw new MlsProtocolError("bad-group-context", "the GroupContext has no extension list");
  if (conv.kind !== "room") {
    if (extensions.length !== 0) throw new MlsProtocolError("bad-group-context", `${conv.id} must have no GroupContext extensions (it has ${extensions.length})`);
    return undefined;
  }
  if (extensions.length !== 2) throw new MlsProtocolError("bad-group-context", `${conv.id} must name its creator in its GroupContext (it has ${extensions.length} extensions, not 2)`);
  const [caps, creator] = extensions as [Extension, Extension];
  if (caps.extensionType !== "required_capabilities" || !Buffer.from(caps.extensionData).equals(Buffer.from(requiredCapabilitiesBytes()))) {
    throw new MlsProtocolError("bad-group-context", `${conv.id} does not require every member to support the room_creator extension`);
  }
  if (creator.extensionType !== ROOM_CREATOR_EXTENSION) throw new MlsProtocolError("bad-group-context", `${conv.id} does not name its creator in its GroupContext`);
  return decodeRoomCreator(creator.extensionData);
}

/** Whether an identity is the creator: the same username AND the same identity key. */
export function isRoomCreator(creator: RoomCreator | undefined, who: Pick<VerifiedIdentity, "username" | "identityFpr">): boolean {
  return creator !== undefined && who?.username === creator.username && Buffer.isBuffer(who.identityFpr) && who.identityFpr.equals(creator.identityFingerprint);
}

/**
 * No leaf may carry the creator's username under another identity key (PROTOCOL.md §7): a
 * room whose creator's name is held by someone else is refused, so the name shown as creator
 * is always the creator. Throws MlsProtocolError(code) naming the member.
 */
export function checkCreatorName(conv: Conversation, creator: RoomCreator | undefined, members: readonly Pick<VerifiedIdentity, "username" | "identityFpr">[], code: "bad-group-context" | "refused-change"): void {
  if (creator === undefined) return;
  for (const m of members) {
    if (m.username === creator.username && !m.identityFpr.equals(creator.identityFingerprint)) {
      throw new MlsProtocolError(code, `${conv.id} was created by '${creator.username}' with another identity key than the member of that name now has`);
    }
  }
}

/**
 * The rule of PROTOCOL.md §7 for the removals a commit makes. A removal is allowed when it is
 * the member's own leave (its own Remove proposal, `change.left`), a resync (an external joiner
 * replacing its own old leaf: same username AND identity key AND MLS signature key, the same
 * device; review round 5: a resync naming another device's leaf of its user let a stolen device
 * the relay still shows as listed cut its user's real device out), or, in a room, made by the
 * creator (username AND identity key, `isRoomCreator`). So nobody removes others in a DM or the
 * lobby, nor in a room whose creator is not a member. Adds are not judged here.
 */
export function removalsAllowed(conv: Conversation, creator: RoomCreator | undefined, change: MembershipChange): boolean {
  const by = change.committer;
  const byCreator = conv.kind === "room" && isRoomCreator(creator, by);
  return change.removed.every((r) =>
    change.left.some((l) => l.leafIndex === r.leafIndex)
    || (change.external && r.username === by.username && r.identityFpr.equals(by.identityFpr) && Buffer.from(r.signatureKey).equals(Buffer.from(by.signatureKey)))
    || byCreator);
}
