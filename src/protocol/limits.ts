// Limits shared by the relay (which enforces them) and the client (which checks input before
// sealing, so users get a clear error instead of a refusal). PROTOCOL.md §13.3.
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

/** The largest padded ciphertext a text of maxTextBytes produces (u32 length + kind + text). */
export function maxCiphertextBytes(maxTextBytes: number): number {
  return Math.max(PAD_BLOCK, Math.ceil((4 + 1 + maxTextBytes) / PAD_BLOCK) * PAD_BLOCK);
}

export function shapeLimitsOf(l: Pick<Limits, "maxRecipients" | "maxTextBytes">): ShapeLimits {
  return { maxRecipients: l.maxRecipients, maxCiphertextBytes: maxCiphertextBytes(l.maxTextBytes) };
}
