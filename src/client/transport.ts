// The one adapter between grpc-js and the client session: opens the bidi stream, exposes
// incoming frames as an AsyncIterable, and sends with backpressure (write() false -> 'drain').
import { credentials as grpcCredentials, status, type ChannelCredentials, type ClientDuplexStream, type ServiceError } from "@grpc/grpc-js";
import { ChatServiceClient, type SessionRequest, type SessionResponse } from "../gen/securechat/v1/chat.js";

/** How often the client pings the relay, and how long it waits for the answer. */
export interface KeepalivePolicy {
  readonly timeMs: number;
  readonly timeoutMs: number;
}

// Ping the relay every 15 s even when idle, and give up on the connection when a ping is not
// answered within 10 s: a dead network (cable pulled, laptop lid closed, a NAT that forgot us)
// is detected in about 25 s, then the session reconnects with backoff. The relay permits pings
// every 10 s (its grpc.http2.min_ping_interval_without_data_ms), so 15 s never trips its
// too-many-pings guard.
export const DEFAULT_KEEPALIVE: KeepalivePolicy = { timeMs: 15_000, timeoutMs: 10_000 };

/**
 * The HTTP/2 receive window the client grants the relay, per connection and per stream (grpc-js
 * sends it in its SETTINGS and a WINDOW_UPDATE before the first stream). Node's default is 64 KiB:
 * less than one DeliverBatch (up to 128 KiB, the relay writing the next once the last was
 * flushed), so every batch waited for a WINDOW_UPDATE from the client halfway through, and
 * catching up over a link with 50 ms round trips ran at about 1.3 MB/s. With 4 MiB in flight the
 * relay fills the link instead; on loopback the peers benchmark at K=100 went from 131-151k to
 * 169-172k deliveries/s with it. Memory: what the relay has sent and the client not yet read.
 */
export const FLOW_CONTROL_WINDOW_BYTES = 4 * 1024 * 1024;

/** Channel options, each chosen for a chat stream that must notice a dead network quickly. */
export function channelOptions(maxReceiveBytes: number, keepalive: KeepalivePolicy = DEFAULT_KEEPALIVE): Record<string, number> {
  return {
    "grpc.keepalive_time_ms": keepalive.timeMs,
    "grpc.keepalive_timeout_ms": keepalive.timeoutMs,
    "grpc.keepalive_permit_without_calls": 1,
    // Each session owns its TCP connection: grpc-js would otherwise share one between clients
    // of the same process (tests, bots), and a drop of one would silently be a drop of all.
    "grpc.use_local_subchannel_pool": 1,
    // A delivery frame may carry several envelopes; the relay bounds its batches below this.
    "grpc.max_receive_message_length": maxReceiveBytes,
    // Deliveries are not held back by a 64 KiB window (FLOW_CONTROL_WINDOW_BYTES).
    "grpc-node.flow_control_window": FLOW_CONTROL_WINDOW_BYTES,
    // Our own loop reconnects with jittered backoff; keep the channel's retries short so a
    // new attempt is not stuck behind grpc-js's default 2-minute backoff.
    "grpc.initial_reconnect_backoff_ms": 500,
    "grpc.max_reconnect_backoff_ms": 5_000,
  };
}

export interface SessionStream {
  /** Frames from the relay; ends when the stream ends, throws a ServiceError on failure. */
  readonly frames: AsyncIterable<SessionResponse>;
  /** Sends one frame, waiting for 'drain' when grpc-js's buffer is full. */
  send(frame: SessionRequest): Promise<void>;
  /** Ends the stream from our side and releases the channel. */
  close(): void;
}

export interface OpenStreamOptions {
  readonly address: string;
  readonly credentials?: ChannelCredentials;
  readonly maxReceiveBytes: number;
  readonly keepalive?: KeepalivePolicy;
  /** Extra channel options of the transport (e.g. the TLS name override for a pinned relay). */
  readonly extraOptions?: Readonly<Record<string, string | number>>;
}

export function openSessionStream(o: OpenStreamOptions): SessionStream {
  const client = new ChatServiceClient(o.address, o.credentials ?? grpcCredentials.createInsecure(), {
    ...channelOptions(o.maxReceiveBytes, o.keepalive), ...o.extraOptions,
  });
  const call: ClientDuplexStream<SessionRequest, SessionResponse> = client.session();
  let closed = false;
  // Errors surface through the async iterator; this listener only keeps an 'error' without a
  // reader from becoming an uncaught exception.
  call.on("error", () => {});
  const close = (): void => {
    if (closed) return;
    closed = true;
    call.cancel();
    client.close();
  };
  return {
    frames: call as AsyncIterable<SessionResponse>,
    async send(frame) {
      if (closed) throw new Error("stream closed");
      if (!call.write(frame)) {
        await new Promise<void>((resolve) => {
          const done = () => {
            call.off("drain", done);
            call.off("close", done);
            resolve();
          };
          call.on("drain", done);
          call.on("close", done);
        });
      }
    },
    close,
  };
}

export function isServiceError(e: unknown): e is ServiceError {
  return typeof e === "object" && e !== null && "code" in e && typeof (e as { code: unknown }).code === "number" && "details" in e;
}

export { status as grpcStatus };
