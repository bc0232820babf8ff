// What the delivery queues take and answer (both stores: queues.ts and pg/queues.ts), apart
// from how either keeps them.

/**
 * What a queued row's stored bytes are: a v1 `Envelope` (Delivery field 3) or a protocol v2
 * `MlsDelivery` (Delivery field 5). Either is delivered byte for byte as stored (frames.ts).
 */
export type QueuedPayload = "envelope" | "mls";

/** One envelope to store, and who gets a queue row for it. */
export interface EnqueueRequest {
  readonly sender: string;
  readonly messageId: Buffer;
  readonly conversationId: string;
  /** The wire `Envelope` protobuf bytes (or, for `payload: "mls"`, the `MlsDelivery` bytes), delivered unchanged. */
  readonly envelope: Uint8Array;
  /** What `envelope` holds (default "envelope"). */
  readonly payload?: QueuedPayload;
  /** Recipients that get a queue row (never the sender). May be empty (lobby, nobody online). */
  readonly recipients: readonly string[];
}

/** What enqueueBatch did with one request. */
export type EnqueueOutcome =
  /** Recorded as accepted and queued for its recipients. */
  | "stored"
  /** (sender, messageId) was accepted before, or earlier in the same batch: nothing stored. */
  | "duplicate";

export interface QueueUsage {
  readonly count: number;
  readonly bytes: number;
  readonly senderCount: number;
  readonly senderBytes: number;
}

export interface QueuedItem {
  readonly seq: number;
  readonly conversationId: string;
  readonly envelope: Buffer;
  /** What `envelope` holds: an Envelope (absent or "envelope") or an MlsDelivery ("mls"). */
  readonly payload?: QueuedPayload;
  /** When the relay accepted the envelope (its queue row's time), shown by clients beside sent_at. */
  readonly relayTimeMs?: number;
}

/** A recipient's processed deliveries, to delete. */
export interface AckRequest {
  readonly recipient: string;
  readonly seqs: readonly number[];
}

export interface PurgeResult {
  readonly queueRows: number;
  readonly envelopes: number;
  readonly acceptedIds: number;
}
