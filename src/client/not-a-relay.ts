// Names what answers on the relay's port when it is not a secure-chat relay (an HTTP server, an
// SSH server, an echo service, someone else's gRPC or HTTP/2 server), so the client can say so
// in one sentence instead of "reconnecting" forever. Called only when a session failed before
// Welcome. It claims "not a relay" only on positive evidence: our relay ends every failed
// session with a `securechat-error-code` trailer, never speaks before the client, and speaks
// HTTP/2 (plaintext or TLS); anything inconclusive (no answer, a refused connection, TLS,
// 502/503 from a proxy in front of a restarting relay) is left to the reconnect loop.
import { connect, type Socket } from "node:net";
import type { ServiceError } from "@grpc/grpc-js";
import { sanitizeLine } from "../protocol/sanitize.js";
import type { SessionEnd } from "./errors.js";
import { ERROR_CODE_TRAILER as RELAY_TRAILER } from "./session-end.js";
import { grpcStatus, isServiceError } from "./transport.js";

/** How long the raw probe waits for a server that speaks first, then for an answer. */
const BANNER_WAIT_MS = 300;
const ANSWER_WAIT_MS = 1_500;
/** RFC 9113 §3.4: the client connection preface, then an empty SETTINGS frame. */
const H2_PREFACE = Buffer.concat([Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1"), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]);

/** Why a server is not a relay, or undefined when that is not certain. */
export async function describeNotARelay(error: unknown, address: string): Promise<SessionEnd | undefined> {
  if (!isServiceError(error)) return undefined;
  return notARelaySentence(address, await identify(error, address));
}

/**
 * The same verdict when the TLS first contact (trust on first use) already failed, before any
 * gRPC call: only the raw probe can tell what answers there.
 */
export async function describeNotARelayByProbe(address: string): Promise<SessionEnd | undefined> {
  return notARelaySentence(address, await probe(address));
}

function notARelaySentence(address: string, what: string | undefined): SessionEnd | undefined {
  return what === undefined ? undefined : { kind: "not-a-relay", address, what };
}

async function identify(e: ServiceError, address: string): Promise<string | undefined> {
  if (e.metadata?.get(RELAY_TRAILER).length) return undefined; // our relay, ending the session
  const details = e.details ?? "";
  const http = /Received HTTP status code (\d{3})/.exec(details);
  if (http) {
    // 429, 502, 503, 504 (UNAVAILABLE): a proxy in front of a relay that is restarting.
    return e.code === grpcStatus.UNAVAILABLE ? undefined : `an HTTP server answered with status ${http[1]}`;
  }
  if (e.code === grpcStatus.UNIMPLEMENTED) return "a gRPC server without the secure-chat service answered";
  // An HTTP/2 server whose answer is not gRPC: its body read as gRPC framing.
  if (e.code === grpcStatus.RESOURCE_EXHAUSTED && /larger than max/.test(details)) return "an HTTP/2 server answered, but not with gRPC";
  // The connection could not be set up as HTTP/2 (plaintext), or the TLS handshake met something
  // that is not TLS (a TLS client): look at what is there.
  if (e.code === grpcStatus.UNAVAILABLE && /Protocol error|wrong version number|unexpected message|packet length too long/i.test(details)) return probe(address);
  return undefined;
}

function hostPort(address: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(address);
  const port = Number(m?.[3]);
  if (!m || !(port > 0 && port < 65536)) return undefined;
  return { host: m[1] ?? m[2] ?? "", port };
}

/** A readable excerpt of what a server sent. */
function excerpt(b: Buffer): string {
  const line = b.toString("latin1").split(/\r?\n/)[0] ?? "";
  return sanitizeLine(line).replace(/[^\x20-\x7e]/g, "?").slice(0, 60);
}

/**
 * Connects over plain TCP, waits briefly for a server that speaks first (SSH does), then sends
 * the HTTP/2 client preface and reads the answer. Plain TCP even for TLS clients: a TLS server
 * answers the preface with an alert, which counts as inconclusive.
 */
export async function probe(address: string): Promise<string | undefined> {
  const hp = hostPort(address);
  if (hp === undefined) return undefined;
  const socket = connect({ host: hp.host, port: hp.port });
  socket.on("error", () => {});
  try {
    const opened = await new Promise<boolean>((resolve) => {
      socket.once("connect", () => resolve(true));
      socket.once("error", () => resolve(false));
      socket.setTimeout(ANSWER_WAIT_MS, () => resolve(false));
    });
    if (!opened) return undefined;
    const banner = await readSome(socket, BANNER_WAIT_MS);
    if (banner.length > 0) return classify(banner, true);
    socket.write(H2_PREFACE);
    const answer = await readSome(socket, ANSWER_WAIT_MS);
    return answer.length > 0 ? classify(answer, false) : undefined;
  } finally {
    socket.destroy();
  }
}

function classify(b: Buffer, spokeFirst: boolean): string | undefined {
  const text = b.toString("latin1");
  if (text.startsWith("SSH-")) return `an SSH server answers there: "${excerpt(b)}"`;
  if (/^HTTP\/\d/.test(text)) return `an HTTP/1 server answers there: "${excerpt(b)}"`;
  if (!spokeFirst && b.length >= 16 && b.subarray(0, 16).equals(H2_PREFACE.subarray(0, 16))) return "it sends back what it receives, like an echo service";
  // TLS records (alert 0x15, handshake 0x16; version 3.x): maybe a relay with TLS; not our call.
  if ((b[0] === 0x15 || b[0] === 0x16) && b[1] === 0x03) return undefined;
  // An HTTP/2 frame header of type SETTINGS (RFC 9113 §4.1): an HTTP/2 server; the gRPC answer decides.
  if (b.length >= 9 && b[3] === 0x04) return undefined;
  return spokeFirst ? `a server that speaks first answers there: "${excerpt(b)}"` : `something that does not speak HTTP/2 answers there: "${excerpt(b)}"`;
}

function readSome(socket: Socket, waitMs: number): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let timer: NodeJS.Timeout | undefined;
    const finish = () => {
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("close", finish);
      resolve(Buffer.concat(chunks));
    };
    const onData = (d: Buffer) => {
      chunks.push(d);
      // Give the rest of the answer a moment to arrive (a status line, a banner).
      clearTimeout(timer);
      timer = setTimeout(finish, 50);
    };
    timer = setTimeout(finish, waitMs);
    socket.on("data", onData);
    socket.on("close", finish);
  });
}
