// gRPC by hand over node:http2 for the handshake-flood benchmark: a connection from a chosen
// source address (127.0.0.2, ... are loopback too; grpc-js cannot bind one), Session streams
// on it, frames behind gRPC's 5-byte prefix. test/helpers/raw-http2.ts is the tests' twin.
import { connect as h2connect, constants } from "node:http2";
import { connect as netConnect } from "node:net";
import { once } from "node:events";
import { dist } from "./_lib.mjs";

const gen = await dist("gen/securechat/v1/chat.js");
const keys = await dist("protocol/keys.js");
const { SessionRequest, SessionResponse } = gen;

export const SESSION_HEADERS = {
  [constants.HTTP2_HEADER_METHOD]: "POST",
  [constants.HTTP2_HEADER_PATH]: "/securechat.v1.ChatService/Session",
  [constants.HTTP2_HEADER_CONTENT_TYPE]: "application/grpc",
  [constants.HTTP2_HEADER_TE]: "trailers",
};

export function grpcPrefix(length) {
  const p = Buffer.alloc(5);
  p.writeUInt32BE(length, 1);
  return p;
}

export function grpcMessage(frame) {
  const body = SessionRequest.encode({ frame }).finish();
  return Buffer.concat([grpcPrefix(body.length), body]);
}

export function helloFrame(id, over = {}) {
  return grpcMessage({
    $case: "hello",
    value: { username: id.username, sigSpki: id.sigSpki, encSpki: id.encSpki, encKeySig: id.encKeySig, clientVersion: "bench", protocolVersion: 1, ...over },
  });
}

/** An HTTP/2 connection to 127.0.0.1:port from `localAddress`. Resolves once connected. */
export async function openConnection(port, localAddress) {
  const session = h2connect(`http://127.0.0.1:${port}`, {
    createConnection: () => netConnect({ host: "127.0.0.1", port, localAddress }),
  });
  session.on("error", () => {});
  await Promise.race([once(session, "connect"), once(session, "error").then(([e]) => { throw e; })]);
  return session;
}

/**
 * Opens a Session stream on `session` and runs the honest handshake as `id`: resolves with the
 * Welcome, rejects with the status sentence when the relay ends the stream first.
 */
export function handshakeOn(session, id, timeoutMs = 30_000) {
  return new Promise((resolve, reject) => {
    const req = session.request(SESSION_HEADERS);
    let pending = Buffer.alloc(0);
    const timer = setTimeout(() => fail(new Error(`no Welcome within ${timeoutMs} ms`)), timeoutMs);
    const fail = (e) => {
      clearTimeout(timer);
      req.close();
      reject(e);
    };
    const onStatus = (h) => {
      if (h["grpc-status"] === undefined) return;
      fail(new Error(`${h["grpc-status"]}: ${decodeURIComponent(String(h["grpc-message"] ?? ""))}`));
    };
    req.on("response", onStatus);
    req.on("trailers", onStatus);
    req.on("error", (e) => fail(e));
    req.on("close", () => fail(new Error("stream closed")));
    req.on("data", (chunk) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 5) {
        const n = pending.readUInt32BE(1);
        if (pending.length < 5 + n) break;
        const f = SessionResponse.decode(pending.subarray(5, 5 + n)).frame;
        pending = pending.subarray(5 + n);
        if (f?.$case === "challenge") {
          req.write(grpcMessage({ $case: "proof", value: { signature: keys.signProof(id, f.value.relayId, f.value.nonce) } }));
        } else if (f?.$case === "welcome") {
          clearTimeout(timer);
          req.removeAllListeners("close");
          resolve({ welcome: f.value, stream: req });
        }
      }
    });
    req.write(helloFrame(id));
  });
}
