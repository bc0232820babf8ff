// The relay's interface to its callers (main.ts, tests, benchmarks): what startRelay takes
// (StartRelayOptions), what it hands back (RunningRelay) and what it reports (RelayStats).
// Split from relay.ts, which composes the relay from them; relay.ts re-exports all three.
import type { Logger } from "../protocol/log.js";
import type { FsSpace } from "./disk-budget.js";
import type { CommitMode } from "./group-commit.js";
import type { LinkLimits } from "./link-rendezvous.js";
import type { RelayLimits } from "./limits.js";
import type { KeepaliveOptions } from "./relay-service.js";
import type { PurgeResult, RelayStore } from "./store.js";
import type { Cluster } from "./cluster.js";
import type { ClusterTimings } from "./cluster-wiring.js";
import type { RelayTlsIdentity } from "./tls-identity.js";

export interface StartRelayOptions {
  readonly host: string;
  /** 0 picks a free port (tests). */
  readonly port: number;
  /** Holds relay.db; created 0700 when missing. */
  readonly dataDir: string;
  readonly logger: Logger;
  readonly limits?: Partial<RelayLimits>;
  /** Milliseconds since the epoch; injected by tests (rate limits, retention). */
  readonly clock?: () => number;
  /**
   * PEM certificate chain and key to serve TLS with. Without it (and without plaintext) the relay
   * serves TLS with its own self-signed certificate, created in the data dir on first start.
   */
  readonly tls?: { readonly cert: Buffer; readonly key: Buffer };
  /** Serve plaintext (chat-relay --insecure-plaintext): anyone on the path can hijack sessions. */
  readonly plaintext?: boolean;
  readonly handshakeTimeoutMs?: number;
  /** Unacked deliveries in flight per session (default DELIVERY_WINDOW). */
  readonly deliveryWindow?: number;
  /** Frames buffered for a client that does not read before it is disconnected (default MAX_PENDING_FRAMES). */
  readonly maxPendingFrames?: number;
  /** Delivery bytes in flight relay-wide, and how long one write may hold them while others wait (write-budget.ts). */
  readonly writeBudget?: { readonly limitBytes: number; readonly stallMs: number };
  /** How long an answer may wait unsent before its session ends as a slow consumer (default ANSWER_STALL_MS). */
  readonly answerStallMs?: number;
  /** How long shutdown waits for streams to close before forcing them. */
  readonly shutdownGraceMs?: number;
  /**
   * Caps relay.db and its WAL at about this many bytes; beyond it senders get STORAGE_UNAVAILABLE,
   * as on a full disk. Default: computed from the free space at start (disk-budget.ts).
   */
  readonly maxDatabaseBytes?: number;
  /** The file system's free space, for the default budget and the reserve (tests fake a full disk). */
  readonly fsSpace?: (dir: string) => FsSpace;
  /**
   * "group" (the default): one transaction per batch of envelopes. "per-envelope": one
   * transaction, one fsync, per envelope; for the benchmark that measures what group commit buys.
   */
  readonly commitMode?: CommitMode;
  /**
   * A sync of the embedded store's WAL failed (group-commit.ts, store/wal-sync.ts). Default: the
   * process exits at once with EXIT_SYNC_FAILED, without closing the database (PostgreSQL's answer
   * to a failed fsync): SQLite's recovery at the next start keeps exactly what reached the disk.
   * Tests that inject a failing sync pass their own.
   */
  readonly onSyncFailed?: (error: unknown) => void;
  /** Hello.protocol_version values accepted (default ACCEPTED_PROTOCOL_VERSIONS in handshake.ts: 1 and 2). */
  readonly protocolVersions?: readonly number[];
  /** Keepalive pings to clients (default KEEPALIVE): tests shorten them to see a dead client go. */
  readonly keepalive?: KeepaliveOptions;
  /** The Link rendezvous' limits (PROTOCOL.md §4.6; defaults in link-rendezvous.ts): tests shorten them. */
  readonly linkLimits?: Partial<LinkLimits>;
  /**
   * A store opened by the caller (the PostgreSQL store, or one store shared by relays in one
   * process in tests) instead of relay.db in the data dir. The relay does not close it: its
   * opener does. No disk budget or reserve applies (the database's own quota does).
   */
  readonly store?: RelayStore;
  /** The relays sharing `store` (cluster.ts): wake-ups, presence and sessions across them. */
  readonly cluster?: Cluster;
  /** The cluster's poll and probe periods (cluster-wiring.ts); tests shorten or disable the poll. */
  readonly clusterTimings?: ClusterTimings;
}

/** What the relay holds right now, for tests, benchmarks and operators. */
export interface RelayStats {
  /** Streams open (handshaking or authenticated). */
  readonly sessions: number;
  /** Streams still in their handshake (their own budget: maxPendingHandshakes). */
  readonly handshakes: number;
  /** Streams refused at once because a handshake budget (relay-wide or per source) was used up. */
  readonly shedHandshakes: number;
  /** Users with an authenticated session. */
  readonly online: number;
  /** Bytes written to streams that HTTP/2 has not taken yet (slow readers make this grow). */
  readonly outgoingBytes: number;
  /** Delivery bytes in flight counted against the relay-wide write budget, and those set aside as stalled. */
  readonly deliveryBytesInFlight: number;
  readonly stalledDeliveryBytes: number;
  /** Group commits so far, the envelopes they stored, the largest batch, and failed commits. */
  readonly commits: number;
  readonly committedEnvelopes: number;
  readonly largestBatch: number;
  readonly failedCommits: number;
  /** Time spent in commits (the event loop is blocked meanwhile: node:sqlite is synchronous). */
  readonly commitMs: number;
  /** Link rendezvous open now (PROTOCOL.md §4.6), waiting or paired. */
  readonly linkRendezvous: number;
  /** Users whose device lists are cached (devices.ts), their estimated bytes, and valid names remembered as unbound. */
  readonly deviceRoutes: { readonly users: number; readonly bytes: number; readonly unbound: number };
  /** Devices whose token buckets are kept (rate-buckets.ts, PROTOCOL.md §13.2). */
  readonly rateBuckets: number;
  /** Session-open buckets kept, of keys and of device addresses (open-rates.ts, PROTOCOL.md §9.1 step 4). */
  readonly openBuckets: number;
}

export interface RunningRelay {
  /** The bound port (the real one when 0 was asked for). */
  readonly port: number;
  /** The relay's stable identity, bound into every proof of possession. */
  readonly relayId: Buffer;
  /** The certificate served (undefined in plaintext): clients pin it and bind their proofs to it. */
  readonly tls: RelayTlsIdentity | undefined;
  readonly limits: RelayLimits;
  /** Drops undelivered envelopes older than the retention (also runs periodically). */
  purgeExpired(): PurgeResult;
  stats(): RelayStats;
  /** Stops accepting, ends live streams with UNAVAILABLE, closes the server and the store. Idempotent. */
  shutdown(): Promise<void>;
}
