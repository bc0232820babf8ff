// The one place the relay reaches into grpc-js internals (checked against 1.14): the largest
// message one call may receive. grpc-js has a single server-wide limit
// (grpc.max_receive_message_length, = max_frame_bytes), but a stream that has not proven a key
// may only send small frames (PROTOCOL.md §9). grpc-js checks a message's length prefix in its
// per-call decoder *before* buffering the message, so lowering that call's limit refuses a
// 1 MiB Hello after its first five bytes instead of after receiving (and holding) all of it.
//
// Feature-detected: if a grpc-js upgrade moves these fields, receiveLimit() reports that it
// cannot enforce the limit, the relay logs it once, and the session's own check of each frame's
// size (handshake.ts) still refuses big frames, only after grpc-js has received them.
// test/adversarial/relay-flood.test.ts sends a Hello that only declares 1 MiB and fails if
// the refusal does not come at the length prefix.
import { constants as http2 } from "node:http2";
import type { RawDuplex } from "./stream.js";

interface GrpcDecoder {
  maxReadMessageLength: number;
  write(data: Buffer): Buffer[];
}

interface Http2StreamLike {
  readonly closed: boolean;
  readonly destroyed: boolean;
  /** Everything written was handed to the connection (absent: taken as true). */
  readonly writableFinished?: boolean;
  close(code: number): void;
  once(event: "close", listener: () => void): unknown;
}

interface GrpcBaseCall {
  decoder: GrpcDecoder;
  /** The call's HTTP/2 stream. */
  stream?: unknown;
  /** Checked against a compressed message's decompressed size. */
  maxReceiveMessageSize: number;
}

function baseCallOf(call: RawDuplex): GrpcBaseCall | undefined {
  const inner: unknown = (call as unknown as { call?: unknown }).call;
  if (typeof inner !== "object" || inner === null) return undefined;
  const c = inner as Partial<GrpcBaseCall>;
  const d = c.decoder as Partial<GrpcDecoder> | undefined;
  if (typeof c.maxReceiveMessageSize !== "number" || typeof d !== "object" || d === null) return undefined;
  if (typeof d.maxReadMessageLength !== "number" || typeof d.write !== "function") return undefined;
  return c as GrpcBaseCall;
}

/** Controls the largest message a call accepts. */
export interface ReceiveLimit {
  /** False when grpc-js's internals were not found: only the session's own check applies. */
  readonly enforced: boolean;
  set(maxBytes: number): void;
}

const TOO_LARGE = /larger than max \((\d+) vs\.? (\d+)\)/;

/**
 * Sets the call's receive limit to `maxBytes` now. When a message declares more, grpc-js ends
 * the call with RESOURCE_EXHAUSTED; `describe(declared, limit)` gives the sentence it carries
 * (and lets the caller note why the call ended), or undefined to keep grpc-js's own.
 */
export function receiveLimit(
  call: RawDuplex, maxBytes: number, describe: (declared: number, limit: number) => string | undefined,
): ReceiveLimit {
  const base = baseCallOf(call);
  if (base === undefined) return { enforced: false, set: () => {} };
  const { decoder } = base;
  const write = decoder.write.bind(decoder);
  // grpc-js turns what the decoder throws into the call's status details: say it in our words.
  decoder.write = (data: Buffer): Buffer[] => {
    try {
      return write(data);
    } catch (e) {
      const m = e instanceof Error ? TOO_LARGE.exec(e.message) : null;
      const sentence = m === null ? undefined : describe(Number(m[1]), Number(m[2]));
      throw sentence === undefined ? e : new Error(sentence);
    }
  };
  const set = (n: number): void => {
    decoder.maxReadMessageLength = n;
    base.maxReceiveMessageSize = n;
  };
  set(maxBytes);
  return { enforced: true, set };
}

/**
 * Resets the call's HTTP/2 stream (RST_STREAM NO_ERROR) when the client has not closed it
 * `afterMs` after the relay sent its status. grpc-js ends only its own side, and a client that
 * never closes its side (a flooder) would keep every refused stream, with its memory and a slot
 * of the connection's max concurrent streams, for the connection's lifetime. RFC 9113 §8.1
 * allows the reset once the response is complete; honest clients close first and never see it.
 * A response the client has not read (its flow-control window shut: writes still pending) is
 * reset with CANCEL: node:http2 waits for pending writes before a NO_ERROR reset, forever for a
 * client that does not read, and the unsent frames would stay in the relay's memory with it.
 */
export function resetIfLeftOpen(call: RawDuplex, afterMs: number): void {
  const raw = (call as unknown as { call?: Partial<GrpcBaseCall> }).call?.stream;
  if (typeof raw !== "object" || raw === null) return;
  const s = raw as Partial<Http2StreamLike>;
  if (typeof s.close !== "function" || typeof s.once !== "function" || typeof s.closed !== "boolean") return;
  if (s.closed) return;
  const stream = s as Http2StreamLike;
  const timer = setTimeout(() => {
    if (!stream.closed && !stream.destroyed) stream.close(stream.writableFinished === false ? http2.NGHTTP2_CANCEL : http2.NGHTTP2_NO_ERROR);
  }, afterMs);
  timer.unref();
  stream.once("close", () => clearTimeout(timer));
}
