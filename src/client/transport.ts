// The one adapter between grpc-js and the client session: opens the bidi stream, exposes
// incoming frames as an AsyncIterable, and sends with backpressure (write() false -> 'drain').
import { credentials as grpcCredentials, status, type ChannelCredentials, type ClientDuplexStream, type ServiceError } from "@grpc/grpc-js";
import { ChatServiceClient, type SessionRequest, type SessionResponse } from "../gen/securechat/v1/chat.js";

/** Channel options, each chosen for a chat stream that must notice a dead network quickly. */
export function channelOptions(maxReceiveBytes: number): Record<string, number> {
  return {
    // Ping the relay every 15 s even when idle, and give up on the connection when a ping is not
    // answered within 10 s: a dead network (cable pulled, laptop lid closed) is detected in
    // about 25 s, then the session reconnects with backoff.
    "grpc.keepalive_time_ms": 15_000,
    "grpc.keepalive_timeout_ms": 10_000,
    "grpc.keepalive_permit_without_calls": 1,
    // A delivery frame may carry several envelopes; the relay bounds its batches below this.
    "grpc.max_receive_message_length": maxReceiveBytes,
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
}

export function openSessionStream(o: OpenStreamOptions): SessionStream {
  const client = new ChatServiceClient(o.address, o.credentials ?? grpcCredentials.createInsecure(), channelOptions(o.maxReceiveBytes));
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
