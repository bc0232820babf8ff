// The one MLS ciphersuite of protocol v2 and the library settings that go with it
// (proto/PROTOCOL.md §2 and §10.2). No negotiation: a KeyPackage, Welcome or
// GroupInfo of any other suite is refused.
import {
  getCiphersuiteFromName, getCiphersuiteImpl, defaultKeyPackageEqualityConfig,
  type AuthenticationService, type CiphersuiteImpl, type CiphersuiteName, type ClientConfig,
} from "ts-mls";

/** X25519 + ML-KEM-768 (X-Wing) for HPKE, AES-256-GCM for content, SHA-512, Ed25519 signatures. */
export const MLS_SUITE: CiphersuiteName = "MLS_256_XWING_AES256GCM_SHA512_Ed25519";

/** Largest MLS object a client decodes (a Welcome with the ratchet tree of a 500-member group is ~640 KB). */
export const MLS_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

/**
 * Key retention (PROTOCOL.md §10.2): the secrets of ONE past epoch are kept, so a
 * message sent concurrently with a commit (queued behind it by the relay) still opens; older
 * epochs are deleted when the next commit is processed. Within an epoch, at most 10 skipped
 * generations per sender are kept (a dropped message), and a sender may jump at most 1000
 * generations ahead (bounds the work a forged generation number can cause).
 */
export const KEY_RETENTION = {
  retainKeysForEpochs: 1,
  retainKeysForGenerations: 10,
  maximumForwardRatchetSteps: 1000,
} as const;

/** KeyPackage lifetime: one-time packages 30 days, the last-resort one 90 days (PROTOCOL.md §8.1). */
export const KEY_PACKAGE_LIFETIME_S = 30 * 24 * 3600;
export const LAST_RESORT_LIFETIME_S = 90 * 24 * 3600;
/** Clock skew tolerated when checking a KeyPackage's notBefore. */
export const KEY_PACKAGE_SKEW_S = 3600;

/**
 * Application messages are padded to a multiple of 256 bytes of content (like v1's §7.2 padding),
 * so the relay learns only the size class of a message.
 */
const PADDING_BLOCK = 256;

let implPromise: Promise<CiphersuiteImpl> | undefined;

/** The ciphersuite implementation (loaded once; the X-Wing KEM is imported on first use). */
export function suiteImpl(): Promise<CiphersuiteImpl> {
  implPromise ??= getCiphersuiteImpl(getCiphersuiteFromName(MLS_SUITE));
  return implPromise;
}

/** The ts-mls client configuration of secure-chat, with the caller's authentication service. */
export function clientConfig(authService: AuthenticationService): ClientConfig {
  return {
    keyRetentionConfig: { ...KEY_RETENTION },
    // Lifetimes of leaves already in a tree are not re-checked (a member who joined long ago
    // stays valid); a KeyPackage's lifetime is checked by addMembers before it is used.
    lifetimeConfig: { maximumTotalLifetime: BigInt(LAST_RESORT_LIFETIME_S + KEY_PACKAGE_SKEW_S), validateLifetimeOnReceive: false },
    keyPackageEqualityConfig: defaultKeyPackageEqualityConfig,
    paddingConfig: { kind: "alwaysPad", paddingLength: 0 },
    authService,
  };
}

/** Bytes of padding to bring `length` up to the next multiple of 256 (at least one block). */
export function paddingFor(length: number): number {
  const padded = Math.max(PADDING_BLOCK, Math.ceil(length / PADDING_BLOCK) * PADDING_BLOCK);
  return padded - length;
}
