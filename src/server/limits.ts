// The relay's limits (PROTOCOL.md §10) and the per-session token bucket that enforces the rate.
import type * as wire from "../gen/securechat/v1/chat.js";
import { DEFAULT_LIMITS, type Limits } from "../protocol/limits.js";

/** The protocol limits advertised in Welcome, plus the relay-only ones. */
export interface RelayLimits extends Limits {
  /** Streams open at once (handshaking or authenticated). More are refused: "relay is full". */
  readonly maxSessions: number;
  /** Undelivered envelopes waiting for one recipient; beyond it senders get QUEUE_FULL. */
  readonly maxQueuePerUser: number;
  /**
   * The per-recipient outgoing queue: envelopes that arrived for an online reader while it was
   * connected and are not yet written to it. A reader further behind than this cannot keep up
   * and is disconnected (SLOW_CONSUMER); the envelopes stay queued durably, and it catches up
   * when it reconnects. What was queued before it connected (catching up) does not count.
   */
  readonly maxOutgoing: number;
}

export const DEFAULT_RELAY_LIMITS: RelayLimits = {
  ...DEFAULT_LIMITS,
  maxSessions: 10_000,
  maxQueuePerUser: 10_000,
  // Two delivery windows: a reader that processes and acks as envelopes come stays near zero.
  maxOutgoing: 1_024,
};

/**
 * Unacked deliveries per session. The pump stops sending when this many are in flight, so a
 * client that never acks holds at most this many envelopes of its queue in the pipe; the rest
 * stay in the database.
 */
export const DELIVERY_WINDOW = 512;
/** Envelopes coalesced into one DeliverBatch write at most. */
export const MAX_BATCH_ITEMS = 128;
/**
 * SendEnvelopes of one session waiting for their group commit (session.ts). Reaching either
 * bound, the session stops reading until their answers went out.
 */
export const MAX_SENDS_IN_FLIGHT = 64;
export const MAX_SEND_BYTES_IN_FLIGHT = 4 * 1024 * 1024;
/** Seqs accepted in one Ack frame: a few windows' worth. */
export const MAX_ACK_SEQS = 4 * DELIVERY_WINDOW;
/** Rooms one user may belong to: each membership is durable state the user makes the relay keep. */
export const MAX_ROOMS_PER_USER = 256;
/**
 * Frames queued in a session's outgoing buffer beyond which the client counts as a slow
 * consumer and is disconnected (its envelopes stay queued in the database). Deliveries wait
 * for 'drain' and never get near this; it bounds the small event frames (presence, directory,
 * room events) that are written without waiting.
 */
export const MAX_PENDING_FRAMES = 4096;
/** PROTOCOL.md §8: the handshake must complete within 10 seconds. */
export const HANDSHAKE_TIMEOUT_MS = 10_000;

function positiveInt(name: string, v: number): number {
  if (!Number.isSafeInteger(v) || v <= 0) throw new RangeError(`limit ${name} must be a positive integer, not ${v}`);
  return v;
}

/** Fills in defaults and checks every limit is a positive integer. */
export function resolveLimits(partial: Partial<RelayLimits> = {}): RelayLimits {
  const l: RelayLimits = { ...DEFAULT_RELAY_LIMITS, ...partial };
  for (const [k, v] of Object.entries(l)) positiveInt(k, v as number);
  // uint32 fields of the wire Limits message.
  for (const k of ["maxFrameBytes", "maxRecipients", "maxTextBytes", "messagesPerSecond", "burst"] as const) {
    if (l[k] > 0xffff_ffff) throw new RangeError(`limit ${k} does not fit in 32 bits`);
  }
  return l;
}

export function limitsToWire(l: Limits): wire.Limits {
  return {
    maxFrameBytes: l.maxFrameBytes,
    maxRecipients: l.maxRecipients,
    maxTextBytes: l.maxTextBytes,
    retentionMs: l.retentionMs,
    messagesPerSecond: l.messagesPerSecond,
    burst: l.burst,
  };
}

/**
 * A token bucket refilled lazily from the clock on each take: no timer per session, two
 * numbers of state. Starts full, so a fresh session may send `burst` envelopes at once.
 */
export class TokenBucket {
  private tokens: number;
  private lastMs: number;

  constructor(private readonly ratePerSecond: number, private readonly burst: number, nowMs: number) {
    this.tokens = burst;
    this.lastMs = nowMs;
  }

  /** Takes one token if there is one. */
  take(nowMs: number): boolean {
    const elapsed = Math.max(0, nowMs - this.lastMs);
    this.lastMs = Math.max(this.lastMs, nowMs);
    this.tokens = Math.min(this.burst, this.tokens + (elapsed * this.ratePerSecond) / 1000);
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
