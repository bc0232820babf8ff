// Protocol v2 on MLS (RFC 9420) — proto/PROTOCOL.md. The thin, typed layer over ts-mls that
// secure-chat uses: identities, KeyPackages, groups. Pure: bytes in, bytes out.
export { MLS_SUITE, MLS_MAX_MESSAGE_BYTES, KEY_RETENTION, KEY_PACKAGE_LIFETIME_S, LAST_RESORT_LIFETIME_S } from "./suite.js";
export { MlsProtocolError, isMlsProtocolError, type MlsErrorCode } from "./errors.js";
export { makeCredential, verifyCredential, leafKeyBindingBytes, type VerifiedIdentity, type TrustHook } from "./credential.js";
export {
  createMlsClient, generateMlsSignatureKey, mlsClientFromCredential, serializeMlsClient, restoreMlsClient, generateKeyPackage, restoreKeyPackage, destroyKeyPackage,
  decodeKeyPackage, checkKeyPackage, isLastResort,
  type IdentityKey, type MlsClient, type GeneratedKeyPackage, type StoredKeyPackage,
} from "./client.js";
export {
  MlsGroup,
  type GroupOptions, type Incoming, type PendingCommit,
} from "./group.js";
export { makeGroupId, conversationOfGroupId, GROUP_ID_MAX_BYTES } from "./group-id.js";
export { ROOM_CREATOR_EXTENSION, isRoomCreator, removalsAllowed, type RoomCreator } from "./creator.js";
export { type MlsMember, type MembershipChange, type ChangePolicy } from "./membership.js";
export {
  encodeAppData, decodeAppData, appHash, chainGap, deviceTag, unacknowledged, ZERO_APP_HASH,
  type AppData, type AppDataKind, type AppKind, type AppReadRef, type AppSeen,
} from "./app-data.js";
export { decodeFields } from "./fields.js";
