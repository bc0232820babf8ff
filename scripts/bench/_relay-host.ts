// Bench helper: runs a relay in its own process so the load generator does not share its event
// loop (node:sqlite's commits block it, and the clients' work would otherwise be counted as
// the relay's). Started by startRelayChild() in _lib.ts:
//   node [--expose-gc] _relay-host.js relay '{"limits":{...},"commitMode":"group"}'
//        the real relay, on a fresh data dir removed at stop; options go to startRelay
//   node [--expose-gc] _relay-host.js ceiling
//        a minimal grpc-js forwarder: the ceiling of this stack
// Talks over IPC only: sends {ready, port} when listening, then answers {cmd, id} requests:
//   mem   -> memory (after forced GCs when started with --expose-gc)
//   stats -> relay.stats() (the ceiling: its stream count) and this process's CPU time
//   stop  -> shuts down and exits
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { RelayStats } from "../../src/server/relay.js";
import type { RelayChildOptions } from "./_lib.js";

/** What the parent asks (id 0: stop, no answer). */
export interface HostRequest {
  readonly cmd: "mem" | "stats" | "stop";
  readonly id: number;
}

/** Memory of the host process, in bytes. */
export interface MemoryFigures {
  readonly rss: number;
  readonly heapUsed: number;
  readonly heapTotal: number;
  readonly external: number;
  readonly arrayBuffers: number;
}

/** What the ceiling counts: its open streams. */
export interface CeilingStats {
  readonly sessions: number;
}

/** What the host sends: {ready, port} once listening, then one answer per request, by id. */
export interface HostReply {
  readonly id?: number;
  readonly ready?: true;
  readonly port?: number;
  readonly memory?: MemoryFigures;
  readonly stats?: RelayStats | CeilingStats;
  readonly cpuMs?: number;
}

const mode = process.argv[2] ?? "relay";
const opts = JSON.parse(process.argv[3] ?? "{}") as RelayChildOptions;
let stop = async (): Promise<void> => {};
let stats = (): RelayStats | CeilingStats => ({ sessions: 0 });
let port: number;

if (mode === "relay") {
  // As the bin does, before anything starts libuv's pool (src/server/thread-pool.ts).
  await import("../../src/server/thread-pool.js");
  const { startRelay } = await import("../../src/server/relay.js");
  const { nullLogger } = await import("../../src/protocol/log.js");
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
  const { RAW_SESSION_SERVICE } = await import("../../test/helpers/raw-service.js");
  const streams = new Set<import("@grpc/grpc-js").ServerDuplexStream<Buffer, Buffer>>();
  const server = new grpc.Server({ "grpc.max_receive_message_length": 64 * 1024 * 1024, "grpc.max_send_message_length": 64 * 1024 * 1024 });
  server.addService(RAW_SESSION_SERVICE, {
    session(call: import("@grpc/grpc-js").ServerDuplexStream<Buffer, Buffer>) {
      streams.add(call);
      // Every blocked source waits on this stream's 'drain': up to one listener per stream.
      call.setMaxListeners(0);
      let blocked = 0;
      const unblock = (): void => {
        if (--blocked === 0) call.resume();
      };
      call.on("data", (frame: Buffer) => {
        for (const s of streams) {
          if (s === call) continue;
          if (!s.write(frame)) {
            if (blocked++ === 0) call.pause();
            s.once("drain", unblock);
          }
        }
      });
      const done = (): void => {
        streams.delete(call);
      };
      call.on("end", () => { done(); call.end(); });
      call.on("cancelled", done);
      call.on("error", done);
    },
  });
  port = await new Promise<number>((resolve, reject) => server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  stop = async () => server.forceShutdown();
  stats = () => ({ sessions: streams.size });
} else {
  throw new Error(`unknown mode ${mode}: relay or ceiling`);
}

// BENCH_RELAY_ALLOC=<dir>: a sampling heap profile of every allocation (the objects collected
// since included, unlike --heap-prof's survivors only), written to <dir>/relay-<pid>.heapprofile
// at stop: where the garbage the GC spends its time on is made.
const allocDir = process.env["BENCH_RELAY_ALLOC"];
let allocStop = async (): Promise<void> => {};
if (allocDir !== undefined && allocDir !== "") {
  const { Session } = await import("node:inspector/promises");
  const { mkdirSync, writeFileSync } = await import("node:fs");
  const session = new Session();
  session.connect();
  await session.post("HeapProfiler.startSampling", { samplingInterval: 16_384, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
  allocStop = async () => {
    const { profile } = await session.post("HeapProfiler.stopSampling");
    mkdirSync(allocDir, { recursive: true });
    writeFileSync(join(allocDir, `relay-${process.pid}.heapprofile`), JSON.stringify(profile));
    session.disconnect();
  };
}

let stopping = false;
/** Stops the server and lets the process end (a --cpu-prof profile is written on the way out). */
const shutdown = async (): Promise<void> => {
  if (stopping) return;
  stopping = true;
  await stop();
  await allocStop();
  // A handle left open by a bug must not keep the process alive: exit anyway after 5 s.
  if (process.connected) process.disconnect();
  process.exitCode = 0;
  setTimeout(() => process.exit(0), 5000).unref();
};
// The parent went away without asking (killed, crashed, out of memory): do not linger as an
// orphan holding a port, a data dir and memory.
process.on("disconnect", () => void shutdown());

const send = (reply: HostReply): void => {
  process.send?.(reply);
};
process.on("message", (m: HostRequest) => {
  if (m?.cmd === "mem") {
    const gc = (globalThis as { gc?: () => void }).gc;
    for (let i = 0; i < 3; i++) gc?.();
    const u = process.memoryUsage();
    send({ id: m.id, memory: { rss: u.rss, heapUsed: u.heapUsed, heapTotal: u.heapTotal, external: u.external, arrayBuffers: u.arrayBuffers } });
  } else if (m?.cmd === "stats") {
    const cpu = process.cpuUsage();
    send({ id: m.id, stats: stats(), cpuMs: (cpu.user + cpu.system) / 1000 });
  } else if (m?.cmd === "stop") {
    // Not process.exit(): that would skip writing a --cpu-prof profile.
    void shutdown();
  }
});
send({ ready: true, port });
