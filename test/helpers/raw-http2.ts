// gRPC spoken by hand over node:http2, for what a grpc-js client cannot do:
//   - connect from a chosen source address (127.0.0.2, 127.0.0.3, ... are all loopback on
//     Linux): the relay's per-address budgets see honest users apart from a flooder on 127.0.0.1,
//     as they would on a real network;
//   - open many streams on ONE connection (grpc-js's max concurrent streams is per connection);
//   - write bytes that are not whole gRPC messages (a length prefix that declares 1 MiB, then
//     nothing), to see where the relay refuses them.
// Frames are SessionRequest/SessionResponse, each behind gRPC's 5-byte prefix (flag, u32 length).
import { connect as h2connect, constants, type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders } from "node:http2";
import { connect as netConnect } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { status as GrpcStatus } from "@grpc/grpc-js";
import { SessionRequest, SessionResponse } from "../../src/gen/securechat/v1/chat.js";
import { PLAINTEXT_CHANNEL_BINDING, tlsChannelBinding } from "../../src/protocol/keys.js";
import { FrameInbox, type RequestFrame } from "./raw-frames.js";
import { SESSION_PATH } from "./raw-service.js";

/** The request headers of a Session call. */
export const SESSION_HEADERS = {
  [constants.HTTP2_HEADER_METHOD]: "POST",
  [constants.HTTP2_HEADER_PATH]: SESSION_PATH,
  [constants.HTTP2_HEADER_CONTENT_TYPE]: "application/grpc",
  [constants.HTTP2_HEADER_TE]: "trailers",
} as const;

/** The 5-byte gRPC message prefix: not compressed, then the length, big-endian. */
export function grpcPrefix(length: number): Buffer {
  const p = Buffer.alloc(5);
  p.writeUInt32BE(length, 1);
  return p;
}

export function grpcMessage(frame: RequestFrame): Buffer {
  const body = SessionRequest.encode({ frame }).finish();
  return Buffer.concat([grpcPrefix(body.length), body]);
}

/** One HTTP/2 connection to the relay, from `localAddress` when given. */
export class Http2Connection {
  private constructor(readonly session: ClientHttp2Session, readonly channelBinding: Uint8Array) {}

  /**
   * `tls`: the relay's certificate (relay.running.tls), trusted as a pinned client trusts it; the
   * connection is then TLS, as every default session is, and proofs bind that certificate.
   */
  static async open(port: number, localAddress?: string, host = "127.0.0.1", tls?: { readonly certPem: Buffer; readonly certDer: Buffer }): Promise<Http2Connection> {
    const source = localAddress === undefined ? {} : { localAddress };
    const session = tls === undefined
      ? h2connect(`http://${host}:${port}`, { createConnection: () => netConnect({ host, port, ...source }) })
      : h2connect(`https://${host}:${port}`, {
        createConnection: () => tlsConnect({
          host, port, ...source, ca: tls.certPem, servername: "secure-chat-relay", ALPNProtocols: ["h2"], checkServerIdentity: () => undefined,
        }),
      });
    session.on("error", () => {}); // a refused or reset connection shows in the streams' statuses
    await new Promise<void>((resolve, reject) => {
      session.once("connect", () => resolve());
      session.once("error", reject);
    });
    return new Http2Connection(session, tls === undefined ? PLAINTEXT_CHANNEL_BINDING : tlsChannelBinding(tls.certDer));
  }

  /** Opens a Session stream on this connection. */
  stream(): Http2SessionStream {
    return new Http2SessionStream(this.channelBinding, this.session.request(SESSION_HEADERS));
  }

  close(): void {
    this.session.destroy();
  }
}

/** One Session stream: raw bytes or frames out, decoded frames and the final status in. */
export class Http2SessionStream extends FrameInbox {
  readonly clientVersion = "raw-http2/test";
  /** True once the HTTP/2 stream is closed on both sides (ended by both, or reset). */
  closed = false;
  private pending = Buffer.alloc(0);

  constructor(readonly channelBinding: Uint8Array, private readonly req: ClientHttp2Stream) {
    super();
    const fromHeaders = (h: IncomingHttpHeaders): void => {
      const code = h["grpc-status"];
      if (code === undefined) return;
      const message = h["grpc-message"];
      const errorCode = h["securechat-error-code"];
      this.markEnded({
        code: Number(code) as GrpcStatus,
        details: typeof message === "string" ? decodeURIComponent(message) : "",
        errorCode: typeof errorCode === "string" ? errorCode : undefined,
      });
    };
    req.on("response", fromHeaders); // a trailers-only answer
    req.on("trailers", fromHeaders);
    req.on("data", (chunk: Buffer) => {
      this.pending = Buffer.concat([this.pending, chunk]);
      while (this.pending.length >= 5) {
        const n = this.pending.readUInt32BE(1);
        if (this.pending.length < 5 + n) break;
        const r = SessionResponse.decode(this.pending.subarray(5, 5 + n));
        this.pending = this.pending.subarray(5 + n);
        if (r.frame !== undefined) this.receive(r.frame);
      }
      this.notify();
    });
    req.on("error", () => {});
    req.on("close", () => {
      this.closed = true;
      this.notify();
    });
    req.on("close", () => this.markEnded({ code: GrpcStatus.CANCELLED, details: `stream closed (HTTP/2 code ${req.rstCode ?? "none"})`, errorCode: undefined }));
  }

  writeRaw(bytes: Uint8Array): void {
    this.req.write(bytes);
  }

  write(frame: RequestFrame): void {
    this.writeRaw(grpcMessage(frame));
  }

  close(): void {
    this.req.close(constants.NGHTTP2_CANCEL);
  }
}
