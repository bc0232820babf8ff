// Bench helper: one process flooding the relay with handshakes from 127.0.0.1, as hard as it
// can (issue 9 §1). Forked by handshake-flood.mjs:
//   node _flooder.mjs '{"port":N,"connections":C,"streamsPerConnection":S}'
// Keeps C HTTP/2 connections, each with S Session streams, and replaces every stream that ends
// (refused, timed out) at once. The streams take turns being:
//   - idle: open, and never a byte;
//   - a Hello and no Proof (a stranger who stalls after the challenge);
//   - a gRPC length prefix declaring 1 MiB, then 1 KiB and nothing more (a slowloris Hello);
//   - a whole 64 KiB Hello (too big before authentication).
// On {cmd:"stop"} it closes everything and answers {stats}: streams opened and how they ended.
import { generateKeyPairSync } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { dist, root } from "./_lib.mjs";
import { grpcPrefix, helloFrame, openConnection, SESSION_HEADERS } from "./_http2-raw.mjs";

const keys = await dist("protocol/keys.js");
const { port, connections, streamsPerConnection } = JSON.parse(process.argv[2] ?? "{}");

const pem = readFileSync(join(root, "test", "fixtures", "keys", "mallory.pem"), "utf8");
const [, enc] = [...pem.matchAll(/-----BEGIN PRIVATE KEY-----[\s\S]*?-----END PRIVATE KEY-----/g)].map((m) => keys.importPrivateKeyPem(m[0]));
const stranger = keys.identityFromPrivateKeys("stranger", generateKeyPairSync("ed25519").privateKey, enc);
const payloads = [
  null,
  helloFrame(stranger),
  Buffer.concat([grpcPrefix(1024 * 1024), Buffer.alloc(1024, 0x61)]),
  helloFrame(stranger, { clientVersion: "x".repeat(64 * 1024) }),
];

let stopped = false;
const stats = { opened: 0, ended: {}, connections: 0, connectionErrors: 0 };
const sessions = new Set();

function count(reason) {
  stats.ended[reason] = (stats.ended[reason] ?? 0) + 1;
}

async function connectionLoop() {
  while (!stopped) {
    let session;
    try {
      session = await openConnection(port, "127.0.0.1");
    } catch {
      stats.connectionErrors++;
      await new Promise((r) => setTimeout(r, 50));
      continue;
    }
    stats.connections++;
    sessions.add(session);
    await new Promise((resolve) => {
      const openOne = () => {
        if (stopped || session.closed || session.destroyed) return;
        let req;
        try {
          req = session.request(SESSION_HEADERS);
        } catch {
          return;
        }
        const payload = payloads[stats.opened++ % payloads.length];
        let reason = "closed";
        const onStatus = (h) => {
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
      session.once("close", resolve);
    });
    sessions.delete(session);
  }
}

const loops = Array.from({ length: connections }, connectionLoop);

const stop = async () => {
  stopped = true;
  for (const s of sessions) s.destroy();
  await Promise.race([Promise.all(loops), new Promise((r) => setTimeout(r, 2000))]);
};
process.on("disconnect", () => void stop().then(() => process.exit(0)));
process.on("message", async (m) => {
  if (m?.cmd !== "stop") return;
  await stop();
  process.send({ stats }, () => process.exit(0));
});
process.send({ ready: true });
