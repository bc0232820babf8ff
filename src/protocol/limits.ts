// Limits shared by the relay (which enforces them) and the client (which checks input before
// sealing, so users get a clear error instead of a refusal). PROTOCOL.md §13.3.
import type { SessionRequest } from "../gen/securechat/v1/chat.js";
import { PAD_BLOCK, type ShapeLimits } from "./envelope.js";

export interface Limits {
  /** Largest protobuf frame either side accepts. */
  readonly maxFrameBytes: number;
  /** Recipients per envelope (so: the largest room or lobby a message can reach). */
  readonly maxRecipients: number;
  /** UTF-8 bytes of message text. */
  readonly maxTextBytes: number;
  /** How long the relay keeps undelivered envelopes. */
  readonly retentionMs: number;
  /** Token bucket per session: sustained envelopes per second, and the bucket size. */
  readonly messagesPerSecond: number;
  readonly burst: number;
}

export const DEFAULT_LIMITS: Limits = {
  maxFrameBytes: 1024 * 1024,
  maxRecipients: 500,
  maxTextBytes: 64 * 1024,
  retentionMs: 30 * 24 * 60 * 60 * 1000,
  messagesPerSecond: 20,
  burst: 60,
};

/**
 * PROTOCOL.md §13.2: a PublishKeyPackages takes one token of the sending bucket per this many
 * KeyPackages it carries (each may cost the relay a decode and a signature verification), at
 * least one and never more than the burst: 21 KeyPackages take 3 tokens, 101 take 11.
 */
export const KEY_PACKAGES_PER_TOKEN = 10;

/** Tokens a PublishKeyPackages carrying `count` KeyPackages takes from a bucket of `burst` (§13.2). */
export function keyPackagePublishTokens(count: number, burst: number): number {
  return Math.max(1, Math.min(Math.floor(burst), Math.ceil(count / KEY_PACKAGES_PER_TOKEN)));
}

/**
 * PROTOCOL.md §13.2: a SendCommit, PublishGroupInfo or RecreateRoom takes one token of the sending
 * bucket per started 64 KiB of the MLS structures it carries (the relay decodes them: commit,
 * GroupInfo, Welcome, ratchet tree), at least one and never more than the burst: a 10 KiB
 * update takes 1, a 200 KiB add 4, the largest SendCommit a frame holds 16.
 */
export const MLS_BYTES_PER_TOKEN = 64 * 1024;

/** Tokens a write carrying `bytes` of MLS structures takes from a bucket of `burst` (§13.2). */
export function mlsWriteTokens(bytes: number, burst: number): number {
  return Math.max(1, Math.min(Math.floor(burst), Math.ceil(bytes / MLS_BYTES_PER_TOKEN)));
}

/**
 * Tokens one write request takes from the sending bucket of `burst` (PROTOCOL.md §13.2), computed
 * alike by the relay (before any decode) and by the client's pacer: a PublishKeyPackages one per
 * 10 KeyPackages, a SendCommit, PublishGroupInfo or RecreateRoom one per started 64 KiB of MLS
 * bytes, any other write one.
 */
export function writeTokens(frame: NonNullable<SessionRequest["frame"]>, burst: number): number {
  switch (frame.$case) {
    case "publishKeyPackages":
      return keyPackagePublishTokens(frame.value.oneTime.length + (frame.value.lastResort.length > 0 ? 1 : 0), burst);
    case "sendCommit": {
      const c = frame.value;
      return mlsWriteTokens(c.commit.length + c.groupInfo.length + c.welcome.length + c.ratchetTree.length, burst);
    }
    case "publishGroupInfo":
    case "recreateRoom":
      return mlsWriteTokens(frame.value.groupInfo.length, burst);
    default:
      return 1;
  }
}

/** The largest padded ciphertext a text of maxTextBytes produces (u32 length + kind + text). */
export function maxCiphertextBytes(maxTextBytes: number): number {
  return Math.max(PAD_BLOCK, Math.ceil((4 + 1 + maxTextBytes) / PAD_BLOCK) * PAD_BLOCK);
}

export function shapeLimitsOf(l: Pick<Limits, "maxRecipients" | "maxTextBytes">): ShapeLimits {
  return { maxRecipients: l.maxRecipients, maxCiphertextBytes: maxCiphertextBytes(l.maxTextBytes) };
}
