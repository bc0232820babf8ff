// Bench helper: runs a relay in its own process so the load generator does not share its CPU.
//   node --expose-gc _relay-host.mjs relay '{"limits":{...}}'   the real relay (dist/), durability on
//   node --expose-gc _relay-host.mjs ceiling                    a minimal grpc-js forwarder
// Prints one JSON line {"port": N} when listening; answers IPC {cmd:"mem"} with memory after a GC.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const mode = process.argv[2] ?? "relay";
const opts = JSON.parse(process.argv[3] ?? "{}");
let stop = async () => {};

if (mode === "relay") {
  const { startRelay } = await import(join(root, "dist", "server", "relay.js"));
  const { jsonLineLogger } = await import(join(root, "dist", "protocol", "log.js"));
  const dataDir = mkdtempSync(join(tmpdir(), "sc-bench-relay-"));
  const relay = await startRelay({ host: "127.0.0.1", port: 0, dataDir, logger: jsonLineLogger(() => {}, "error"), ...opts });
  stop = async () => {
    await relay.shutdown();
    rmSync(dataDir, { recursive: true, force: true });
  };
  console.log(JSON.stringify({ port: relay.port }));
} else if (mode === "ceiling") {
  // The ceiling of this stack: one bidi method that forwards every frame it receives to every
  // other open stream, as raw bytes, honouring backpressure (a source is paused while any
  // destination's buffer is full). No parsing, no checks, no storage.
  const grpc = await import("@grpc/grpc-js");
  const streams = new Set();
  const server = new grpc.Server({ "grpc.max_receive_message_length": 64 * 1024 * 1024, "grpc.max_send_message_length": 64 * 1024 * 1024 });
  const service = {
    session: {
      path: "/securechat.v1.ChatService/Session", requestStream: true, responseStream: true,
      requestSerialize: (b) => b, requestDeserialize: (b) => b, responseSerialize: (b) => b, responseDeserialize: (b) => b,
    },
  };
  server.addService(service, {
    session(call) {
      streams.add(call);
      let blocked = 0;
      const unblock = () => {
        if (--blocked === 0) call.resume();
      };
      call.on("data", (frame) => {
        for (const s of streams) {
          if (s === call) continue;
          if (!s.write(frame)) {
            if (blocked++ === 0) call.pause();
            s.once("drain", unblock);
          }
        }
      });
      const done = () => streams.delete(call);
      call.on("end", () => { done(); call.end(); });
      call.on("cancelled", done);
      call.on("error", done);
    },
  });
  const port = await new Promise((resolve, reject) => server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  stop = async () => server.forceShutdown();
  console.log(JSON.stringify({ port }));
}

process.on("message", async (m) => {
  if (m?.cmd === "mem") {
    for (let i = 0; i < 3; i++) globalThis.gc?.();
    const u = process.memoryUsage();
    process.send({ rss: u.rss, heapUsed: u.heapUsed, external: u.external, arrayBuffers: u.arrayBuffers });
  } else if (m?.cmd === "stop") {
    await stop();
    process.exit(0);
  }
});
