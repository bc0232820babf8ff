// The relay's gRPC face: the ChatService with raw-bytes (de)serialisers (the session decodes its
// own frames) and the server's channel options (message sizes, streams per connection,
// keepalive). relay.ts builds the server with them and re-exports what others import from it.
import type { ChannelOptions, ServiceDefinition } from "@grpc/grpc-js";
import { ChatServiceService } from "../gen/securechat/v1/chat.js";
import type { RelayLimits } from "./limits.js";

export interface KeepaliveOptions {
  /** Interval between the relay's pings on each connection. */
  readonly timeMs: number;
  /** How long a ping may go unanswered before the connection is dropped. */
  readonly timeoutMs: number;
}

/**
 * The service with identity (de)serialisers: the session decodes frames itself (frames.ts), so a
 * malformed frame ends that one stream with INVALID_ARGUMENT "malformed frame: ..." rather than
 * grpc-js's INTERNAL "Error deserializing request".
 */
export const RAW_SESSION_SERVICE: ServiceDefinition = {
  session: {
    path: ChatServiceService.session.path,
    requestStream: true,
    responseStream: true,
    requestSerialize: (b: Buffer) => b,
    requestDeserialize: (b: Buffer) => b,
    responseSerialize: (b: Buffer) => b,
    responseDeserialize: (b: Buffer) => b,
  },
  // Device linking's rendezvous (PROTOCOL.md §4.6, link-rendezvous.ts), raw for the same reason.
  link: {
    path: ChatServiceService.link.path,
    requestStream: true,
    responseStream: true,
    requestSerialize: (b: Buffer) => b,
    requestDeserialize: (b: Buffer) => b,
    responseSerialize: (b: Buffer) => b,
    responseDeserialize: (b: Buffer) => b,
  },
};

/**
 * Largest frame the relay itself writes. Deliveries stay within maxFrameBytes plus a few bytes
 * of framing (the pump's byte budget); the Welcome grows with the directory (~0.6 KB per bound
 * user). This only guards against building an absurd frame; clients size their own receive
 * limit (grpc-js defaults to 4 MiB).
 */
const MAX_SEND_BYTES = 64 * 1024 * 1024;

/**
 * The relay's keepalive. Clients (src/client/transport.ts) ping every 15 s and give up after
 * 10 s without an answer, so a client notices a dead network in about 25 s; the relay pings
 * every 30 s and drops a connection whose ping goes unanswered for 10 s, so a client whose
 * network vanished goes offline (presence, its pump stops, its session slot frees) within
 * ~40 s instead of holding a session until TCP gives up (many minutes).
 */
export const KEEPALIVE: KeepaliveOptions = { timeMs: 30_000, timeoutMs: 10_000 };

/** The gRPC server options of the relay (exported for the test that checks them against the client's). */
export function channelOptions(limits: RelayLimits, keepalive: KeepaliveOptions = KEEPALIVE): ChannelOptions {
  return {
    // PROTOCOL.md §13.3: a bigger frame ends the stream with RESOURCE_EXHAUSTED. grpc-js checks
    // the length prefix before buffering the message, so an oversized frame costs no memory;
    // the client sees "Received message larger than max (N vs maxFrameBytes)".
    "grpc.max_receive_message_length": limits.maxFrameBytes,
    "grpc.max_send_message_length": MAX_SEND_BYTES,
    // PROTOCOL.md §13.3: streams at once on one HTTP/2 connection. A client needs one; a stranger
    // who wants more handshakes must open more connections, each counted against its address.
    "grpc.max_concurrent_streams": limits.maxStreamsPerConnection,
    // grpc-js's server pings every connection every keepalive_time_ms, busy or idle (it restarts
    // the timer on each answer), and destroys the connection when an answer takes longer than
    // keepalive_timeout_ms: that is how a dead client is detected (its streams see 'cancelled').
    "grpc.keepalive_time_ms": keepalive.timeMs,
    "grpc.keepalive_timeout_ms": keepalive.timeoutMs,
    // The client side of keepalive: clients ping every 15 s, also with no call in flight (while
    // they reconnect). The relay must allow that. grpc-js's server (1.14) does not police client
    // pings at all, so these two change nothing for it today; they state the policy for any
    // gRPC server or proxy that does (gRPC C++/Go, Envoy), whose defaults (one ping per 5 min,
    // none without calls) would answer a 15 s ping with GOAWAY "too_many_pings". 10 s leaves
    // room below the client's 15 s. Tested: test/integration/relay-keepalive.test.ts.
    "grpc.http2.min_ping_interval_without_data_ms": 10_000,
    "grpc.keepalive_permit_without_calls": 1,
  };
}
