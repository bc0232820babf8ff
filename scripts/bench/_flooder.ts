// Bench helper: one process flooding the relay with handshakes from 127.0.0.1, as hard as it
// can (issue 9 §1). Forked by handshake-flood.ts:
//   node _flooder.js '{"port":N,"connections":C,"streamsPerConnection":S}'
// Keeps C HTTP/2 connections, each with S Session streams, and replaces every stream that ends
// (refused, timed out) at once. The streams take turns being:
//   - idle: open, and never a byte;
//   - a Hello and no Proof (a stranger who stalls after the challenge);
//   - a gRPC length prefix declaring 1 MiB, then 1 KiB and nothing more (a slowloris Hello);
//   - a whole 64 KiB Hello (too big before authentication).
// On {cmd:"stop"} it closes everything and answers {stats}: streams opened and how they ended.
import { generateKeyPairSync } from "node:crypto";
import type { ClientHttp2Session, ClientHttp2Stream, IncomingHttpHeaders } from "node:http2";
import { identityFromPrivateKeys } from "../../src/protocol/keys.js";
import { fixtureKeys } from "../../test/helpers/identities.js";
import { helloOf } from "../../test/helpers/raw-frames.js";
import { grpcMessage, grpcPrefix, Http2Connection, SESSION_HEADERS } from "../../test/helpers/raw-http2.js";

/** What handshake-flood.ts passes (argv[2], JSON). */
export interface FlooderOptions {
  readonly port: number;
  readonly connections: number;
  readonly streamsPerConnection: number;
}

/** Streams opened and how they ended (by reason), connections made and failed. */
export interface FloodStats {
  opened: number;
  ended: Record<string, number>;
  connections: number;
  connectionErrors: number;
}

const { port, connections, streamsPerConnection } = JSON.parse(process.argv[2] ?? "{}") as FlooderOptions;

const stranger = identityFromPrivateKeys("stranger", generateKeyPairSync("ed25519").privateKey, fixtureKeys("mallory")[1]!);
const payloads: Array<Buffer | null> = [
  null,
  grpcMessage({ $case: "hello", value: helloOf(stranger, "bench") }),
  Buffer.concat([grpcPrefix(1024 * 1024), Buffer.alloc(1024, 0x61)]),
  grpcMessage({ $case: "hello", value: helloOf(stranger, "bench", { clientVersion: "x".repeat(64 * 1024) }) }),
];

let stopped = false;
const stats: FloodStats = { opened: 0, ended: {}, connections: 0, connectionErrors: 0 };
const sessions = new Set<ClientHttp2Session>();

function count(reason: string): void {
  stats.ended[reason] = (stats.ended[reason] ?? 0) + 1;
}

async function connectionLoop(): Promise<void> {
  while (!stopped) {
    let session: ClientHttp2Session;
    try {
      session = (await Http2Connection.open(port, "127.0.0.1")).session;
    } catch {
      stats.connectionErrors++;
      await new Promise((r) => setTimeout(r, 50));
      continue;
    }
    stats.connections++;
    sessions.add(session);
    await new Promise<void>((resolve) => {
      const openOne = (): void => {
        if (stopped || session.closed || session.destroyed) return;
        let req: ClientHttp2Stream;
        try {
          req = session.request(SESSION_HEADERS);
        } catch {
          return;
        }
        const payload = payloads[stats.opened++ % payloads.length]!;
        let reason = "closed";
        const onStatus = (h: IncomingHttpHeaders): void => {
          if (h["grpc-status"] === undefined) return;
          const m = decodeURIComponent(String(h["grpc-message"] ?? ""));
          reason = m.startsWith("too many handshakes from your address") ? "source-busy"
            : m.startsWith("relay is busy") ? "relay-busy"
            : m.startsWith("frame too large") ? "frame-too-large"
            : m.startsWith("handshake not completed") ? "timeout"
            : `status ${h["grpc-status"]}`;
        };
        req.on("response", onStatus);
        req.on("trailers", onStatus);
        req.on("error", () => {});
        req.on("data", () => {}); // a Challenge to the stalled Hello: read and ignored
        req.on("close", () => {
          count(reason);
          setImmediate(openOne);
        });
        if (payload !== null) req.write(payload);
      };
      for (let i = 0; i < streamsPerConnection; i++) openOne();
      session.once("close", () => resolve());
    });
    sessions.delete(session);
  }
}

const loops = Array.from({ length: connections }, connectionLoop);

const stop = async (): Promise<void> => {
  stopped = true;
  for (const s of sessions) s.destroy();
  await Promise.race([Promise.all(loops), new Promise((r) => setTimeout(r, 2000))]);
};
process.on("disconnect", () => void stop().then(() => process.exit(0)));
process.on("message", (m: { cmd?: string }) => {
  if (m?.cmd !== "stop") return;
  void stop().then(() => process.send?.({ stats }, () => process.exit(0)));
});
process.send?.({ ready: true });
