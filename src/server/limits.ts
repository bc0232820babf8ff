// The relay's limits (PROTOCOL.md §13.3) and the token bucket that enforces the rate (kept per
// device across its sessions: rate-buckets.ts, §13.2).
import type * as wire from "../gen/securechat/v1/chat.js";
import { DEFAULT_LIMITS, type Limits } from "../protocol/limits.js";

/** The protocol limits advertised in Welcome, plus the relay-only ones. */
export interface RelayLimits extends Limits {
  /**
   * Authenticated sessions at once. A stream still in its handshake does not count (it has its
   * own budget below); a new user beyond this is refused after its proof: "relay is full".
   */
  readonly maxSessions: number;
  /**
   * Handshakes in progress at once, relay-wide (PROTOCOL.md §9): streams that have not yet
   * proven a key. Beyond it new streams are refused at once with "relay is busy". With the
   * per-address cap, the pre-authentication frame limit and the handshake timeout this bounds
   * what strangers can make the relay hold (README "Security model").
   */
  readonly maxPendingHandshakes: number;
  /** Handshakes in progress at once from one source address (IPv4, or an IPv6 /64). */
  readonly maxHandshakesPerAddress: number;
  /**
   * HTTP/2 streams at once on one connection (grpc.max_concurrent_streams). A client needs one
   * (its session stream); the rest is room for a health check or a reconnect that overlaps.
   */
  readonly maxStreamsPerConnection: number;
  /**
   * Usernames one signing key may own (PROTOCOL.md §9). Bindings made before this limit existed
   * all keep working; only new bindings beyond it are refused.
   */
  readonly maxNamesPerKey: number;
  /** New usernames one source address may register at once (the token bucket's size)... */
  readonly registrationBurst: number;
  /** ...and per hour, sustained (the bucket's refill). */
  readonly registrationsPerHour: number;
  /**
   * Session opens one device may make at once (PROTOCOL.md §9.1 step 4, §13.3): the size of its
   * open bucket, kept per proven key and per device address across its sessions (open-rates.ts).
   * Each open costs a signature check and two last-seen writes; honest reconnects (a backoff from
   * 1 s doubling to 30 s, reset by each Welcome) stay far below it...
   */
  readonly sessionOpenBurst: number;
  /** ...and per minute, sustained (the bucket's refill). */
  readonly sessionOpensPerMinute: number;
  /** Undelivered envelopes waiting for one recipient; beyond it senders get QUEUE_FULL. */
  readonly maxQueuePerUser: number;
  /** Bytes of undelivered envelopes waiting for one recipient (each counted whole, as downloaded). */
  readonly maxQueueBytesPerUser: number;
  /**
   * One sender's share of one recipient's queue, in envelopes and in bytes: beyond it that sender
   * (only) gets QUEUE_FULL, so a flood from one user cannot lock everyone else out of a mailbox.
   */
  readonly maxQueuePerSender: number;
  readonly maxQueueBytesPerSender: number;
  /**
   * Lobby envelopes are stored only for users online at admission, or seen online within this
   * many ms (PROTOCOL.md §13): a reconnect, or a relay restart (the first this-many ms after a
   * start on a data dir with users), does not lose lobby messages sealed to people who were
   * there, while users long gone cannot be made to keep lobby messages (issue 9 §2).
   */
  readonly lobbyGraceMs: number;
  /**
   * The per-recipient outgoing queue: envelopes that arrived for an online reader while it was
   * connected and are not yet written to it. A reader further behind than this cannot keep up
   * and is disconnected (SLOW_CONSUMER); the envelopes stay queued durably, and it catches up
   * when it reconnects. What was queued before it connected (catching up) does not count.
   */
  readonly maxOutgoing: number;
  /**
   * Most devices (MLS leaves) in one group, over all its members' device lists (PROTOCOL.md
   * §13.3): a Welcome's ratchet tree and a GroupInfo must fit one MLS message (4 MiB, about 2.8
   * KB per X-Wing leaf), and each message costs one queue row per device.
   */
  readonly maxGroupDevices: number;
  /**
   * Accepted commits the relay keeps of one sender (PROTOCOL.md §8.2 FetchCommits, §13.3), over
   * all groups, in commits and in bytes: a commit past either drops that sender's oldest kept
   * ones (never refused), so one user can never make the relay keep more than this of commits.
   */
  readonly maxKeptCommitsPerUser: number;
  readonly maxKeptCommitBytesPerUser: number;
}

/**
 * The largest commit SendCommit takes (PROTOCOL.md §8.2, §8.3 "Sizes"): 1 MiB - 64 KiB, the
 * client's own budget for a whole SendCommit (commit + Welcome + tree: COMMIT_BYTES_MAX in
 * src/client/mls/commit.ts), so no commit an honest client sends is refused. Real commits weigh
 * much less: the heaviest, a full update path on the sparse tree of a 500-member room just after
 * a mass add, is ~600 KB (one X-Wing HPKE ciphertext, ~1.2 KB, per other leaf); an update in a
 * full 500-member tree ~10-15 KB; an add of 64 ~176 KiB plus its path. The GroupInfo (up to
 * ~745 KiB at 500) is not a commit: it is kept once per group, not per epoch.
 */
export const MAX_COMMIT_BYTES = 1024 * 1024 - 64 * 1024;

export const DEFAULT_RELAY_LIMITS: RelayLimits = {
  ...DEFAULT_LIMITS,
  maxGroupDevices: 1_000,
  maxSessions: 10_000,
  maxPendingHandshakes: 512,
  maxHandshakesPerAddress: 32,
  maxStreamsPerConnection: 16,
  maxNamesPerKey: 1,
  registrationBurst: 10,
  registrationsPerHour: 60,
  // 20 at once covers a minute of a session dropped right after each Welcome (the client then
  // comes back after 0.5-1 s) and any run of failed attempts (backoff up to 30 s: 2 a minute);
  // then one every 10 s, which still lets a reconnect loop in, never a loop of verifies and writes.
  sessionOpenBurst: 20,
  sessionOpensPerMinute: 6,
  maxQueuePerUser: 10_000,
  maxQueueBytesPerUser: 256 * 1024 * 1024,
  // A tenth of the envelopes and an eighth of the bytes: at least ten senders to fill a mailbox.
  maxQueuePerSender: 1_000,
  maxQueueBytesPerSender: 32 * 1024 * 1024,
  lobbyGraceMs: 120_000,
  // Two delivery windows: a reader that processes and acks as envelopes come stays near zero.
  maxOutgoing: 1_024,
  // As much as one sender may have waiting in one queue (maxQueueBytesPerSender): ~2,000-10,000
  // ordinary commits, 50 of the heaviest; an update per group per day (§10.3) in 300 groups for 30 days.
  maxKeptCommitsPerUser: 10_000,
  maxKeptCommitBytesPerUser: 32 * 1024 * 1024,
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
 * Envelope bytes coalesced into one DeliverBatch write at most (one envelope is always allowed,
 * up to max frame bytes). A pump writes one batch and waits until it was sent, so this bounds
 * the delivery bytes the relay holds for a reader: two HTTP/2 flow-control windows (a client's
 * is 64 KiB by default; it cannot take more before it reads anyway), room for two envelopes of
 * 60 KB to still go out as one write.
 */
export const DELIVERY_WRITE_BYTES = 128 * 1024;
/**
 * Delivery bytes written and not yet sent, relay-wide (write-budget.ts): a fan-out to
 * thousands of readers is paced through this instead of holding a batch for each at once.
 */
export const DELIVERY_BUDGET_BYTES = 8 * 1024 * 1024;
/**
 * How long one delivery write may hold its share of that budget while other writers wait:
 * past it, its reader counts as not reading and the write is set aside (still bounded by
 * DELIVERY_WRITE_BYTES), so a reader that stops cannot stall everyone's deliveries.
 */
export const DELIVERY_STALL_MS = 2_000;
/**
 * Answers to requests (session.ts reply) are written like deliveries: flushed, one at a time per
 * session (the next request is read only once the answer before it was sent), and those bigger
 * than this take their bytes from the relay-wide delivery budget; smaller ones (a Pong, an
 * error, a GroupInfoResult) skip its queue, so a fan-out never delays them.
 */
export const ANSWER_UNBUDGETED_BYTES = 4 * 1024;
/**
 * How long one answer may wait unsent (its reader does not read) before the session is ended as
 * a SLOW_CONSUMER (PROTOCOL.md §13.3): long enough for the largest answer (a frame) on a slow
 * link, short enough that a session that never reads does not keep its answer for hours.
 */
export const ANSWER_STALL_MS = 30_000;
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
/**
 * PROTOCOL.md §13: how far an envelope's sent_at_ms may be ahead of the relay's clock. Past it the
 * envelope is refused (BAD_TIMESTAMP); recipients refuse beyond 5 minutes of their own clock
 * (Appendix A.3), so this leaves room for the relay's clock and theirs to differ by as much again. An
 * envelope may be as old as the retention (an outbox resent after a long outage), not older.
 */
export const MAX_FUTURE_SKEW_MS = 10 * 60 * 1000;
/** PROTOCOL.md §9: the handshake (Hello to a verified Proof) must complete within 5 seconds. */
export const HANDSHAKE_TIMEOUT_MS = 5_000;
/**
 * PROTOCOL.md §9/§13.3: the largest frame a stream may send before its proof is verified. An
 * honest Hello is under 1.5 KiB (an 8192-bit RSA key is the largest part) and a Proof ~70 bytes;
 * the full max_frame_bytes (1 MiB) is allowed only once the peer has proven its key.
 */
export const PRE_AUTH_MAX_FRAME_BYTES = 4096;

function positiveInt(name: string, v: number): number {
  if (!Number.isSafeInteger(v) || v <= 0) throw new RangeError(`limit ${name} must be a positive integer, not ${v}`);
  return v;
}

/** Fills in defaults and checks every limit is a positive integer. */
export function resolveLimits(partial: Partial<RelayLimits> = {}): RelayLimits {
  const l: RelayLimits = { ...DEFAULT_RELAY_LIMITS, ...partial };
  for (const [k, v] of Object.entries(l)) {
    if (k === "lobbyGraceMs" && v === 0) continue; // no grace: online at admission only
    positiveInt(k, v as number);
  }
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
 * numbers of state. Starts full, so a device new to this relay (or whose bucket refilled and was
 * forgotten) may send `burst` at once; a device's next session continues its bucket (§13.2).
 */
export class TokenBucket {
  private tokens: number;
  private lastMs: number;

  constructor(private readonly ratePerSecond: number, private readonly burst: number, nowMs: number) {
    this.tokens = burst;
    this.lastMs = nowMs;
  }

  /** Takes `n` tokens (1 by default) if there are that many; none otherwise. */
  take(nowMs: number, n = 1): boolean {
    const elapsed = Math.max(0, nowMs - this.lastMs);
    this.lastMs = Math.max(this.lastMs, nowMs);
    this.tokens = Math.min(this.burst, this.tokens + (elapsed * this.ratePerSecond) / 1000);
    if (this.tokens < n) return false;
    this.tokens -= n;
    return true;
  }

  /** Milliseconds until a token will be there (0: one is there now). */
  msUntilToken(nowMs: number): number {
    const tokens = Math.min(this.burst, this.tokens + (Math.max(0, nowMs - this.lastMs) * this.ratePerSecond) / 1000);
    return tokens >= 1 ? 0 : Math.ceil(((1 - tokens) * 1000) / this.ratePerSecond);
  }

  /** True when the bucket has refilled completely: it then holds no information worth keeping. */
  isFull(nowMs: number): boolean {
    return this.tokens + (Math.max(0, nowMs - this.lastMs) * this.ratePerSecond) / 1000 >= this.burst;
  }
}
