// Bench helper: runs a relay in its own process so the load generator does not share its event
// loop (node:sqlite's commits block it, and the clients' work would otherwise be counted as
// the relay's). Started by startRelayChild() in _lib.mjs:
//   node [--expose-gc] _relay-host.mjs relay '{"limits":{...},"commitMode":"group"}'
//        the real relay (dist/), on a fresh data dir removed at stop; options go to startRelay
//   node [--expose-gc] _relay-host.mjs ceiling
//        a minimal grpc-js forwarder: the ceiling of this stack
// Talks over IPC only: sends {ready, port} when listening, then answers {cmd, id} requests:
//   mem   -> memory (after forced GCs when started with --expose-gc)
//   stats -> relay.stats() (the ceiling: its stream count) and this process's CPU time
//   stop  -> shuts down and exits
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const mode = process.argv[2] ?? "relay";
const opts = JSON.parse(process.argv[3] ?? "{}");
let stop = async () => {};
let stats = () => ({});
let port;

if (mode === "relay") {
  // As the bin does, before anything starts libuv's pool (src/server/thread-pool.ts).
  await import(join(root, "dist", "server", "thread-pool.js"));
  const { startRelay } = await import(join(root, "dist", "server", "relay.js"));
  const { nullLogger } = await import(join(root, "dist", "protocol", "log.js"));
  const dataDir = mkdtempSync(join(tmpdir(), "sc-bench-relay-"));
  // Plaintext (--insecure-plaintext): these figures are the relay's own work; TLS, the product's
  // default, adds a handshake per connection and symmetric crypto per byte on top.
  const relay = await startRelay({ host: "127.0.0.1", port: 0, dataDir, logger: nullLogger, plaintext: true, ...opts });
  stop = async () => {
    await relay.shutdown();
    rmSync(dataDir, { recursive: true, force: true });
  };
  stats = () => relay.stats();
  port = relay.port;
} else if (mode === "ceiling") {
  // The ceiling of this stack: one bidi method that forwards every frame it receives, as raw
  // bytes, to every other open stream, honouring backpressure (a source is paused while any
  // destination's buffer is full). No parsing, no checks, no storage, no answers.
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
      // Every blocked source waits on this stream's 'drain': up to one listener per stream.
      call.setMaxListeners(0);
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
  port = await new Promise((resolve, reject) => server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  stop = async () => server.forceShutdown();
  stats = () => ({ sessions: streams.size });
} else {
  throw new Error(`unknown mode ${mode}: relay or ceiling`);
}

let stopping = false;
/** Stops the server and lets the process end (a --cpu-prof profile is written on the way out). */
const shutdown = async () => {
  if (stopping) return;
  stopping = true;
  await stop();
  // A handle left open by a bug must not keep the process alive: exit anyway after 5 s.
  if (process.connected) process.disconnect();
  process.exitCode = 0;
  setTimeout(() => process.exit(0), 5000).unref();
};
// The parent went away without asking (killed, crashed, out of memory): do not linger as an
// orphan holding a port, a data dir and memory.
process.on("disconnect", () => void shutdown());

process.on("message", async (m) => {
  const reply = (value) => process.send({ id: m.id, ...value });
  if (m?.cmd === "mem") {
    for (let i = 0; i < 3; i++) globalThis.gc?.();
    const u = process.memoryUsage();
    reply({ rss: u.rss, heapUsed: u.heapUsed, heapTotal: u.heapTotal, external: u.external, arrayBuffers: u.arrayBuffers });
  } else if (m?.cmd === "stats") {
    const cpu = process.cpuUsage();
    reply({ stats: stats(), cpuMs: (cpu.user + cpu.system) / 1000 });
  } else if (m?.cmd === "stop") {
    // Not process.exit(): that would skip writing a --cpu-prof profile.
    await shutdown();
  }
});
process.send({ ready: true, port });
