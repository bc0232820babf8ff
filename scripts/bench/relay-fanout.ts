// Relay fan-out against the ceiling of this stack. K clients in one room (K = 2, 10, 100) each
// send M real sealed envelopes (sealed for all K members before any clock starts, encoded once
// as SendEnvelope frames); every envelope reaches every other member. The same workload runs,
// in the same run, through
//   - the relay (dist/), with its defaults: durability on (synchronous=FULL, group commit),
//     rate limits raised for the load; and
//   - the ceiling: a minimal grpc-js relay, one bidi stream per client that forwards every
//     frame it receives to every other stream as raw bytes, honouring backpressure
//     (_relay-host.ts). No parsing, checks, storage, acks or answers: what grpc-js and
//     HTTP/2 alone cost.
// Both run in a child process; the load generator (all K clients) runs here.
//
// The clients are the same in both cases: the same pre-encoded frames go out, and receivers
// decode every frame they get in full (a SessionResponse DeliverBatch from the relay, the
// forwarded SessionRequest from the ceiling) to find each envelope's message id. Against the
// relay they also do what the protocol asks of any client: ack each batch, read SendResults.
//
// Flow control is the same closed loop for both: at most WINDOW envelopes are in flight (written
// and not yet delivered to every other member), the senders taking turns, and each writes with
// backpressure (waits for 'drain'). WINDOW is per room size, near the knee where more in flight
// adds latency (Little's law) but no throughput. Latency is from the sender's write to a
// receiver's 'data' event, for every delivery; deliveries/s is all deliveries over the time from
// the first write to the last delivery. A short warm-up (same flow, other envelopes) runs on
// each fresh child first. The CPU time of both processes is reported too: when the clients'
// process is saturated, the load generator bounds the figure, and the note says so.
//
// Knobs for investigation (the defaults are the benchmark):
//   BENCH_FANOUT_K=2,10       only these room sizes
//   BENCH_FANOUT_WINDOW=N     envelopes in flight instead of the plan's
//   BENCH_RELAY_PROF=<dir>    a V8 CPU profile (--cpu-prof) of each relay child, written to <dir>
import { mkdirSync } from "node:fs";
import { SessionRequest } from "../../src/gen/securechat/v1/chat.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import {
  BenchClient, connect, identities, joinAll, percentile, sealRoom, startRelayChild, ACCEPTED, MANY_USERS_FROM_LOOPBACK, type Row, type RunOptions,
  type SealedFrame,
} from "./_lib.js";

export const name = "relay-fanout";
export const description = "K clients in one room, every envelope to every member: the relay (durable) vs a bare grpc-js forwarder";

const ROOM = "#fanout";

/**
 * Per room size: envelopes per sender (the relay's measurement takes a few seconds on 2 cores;
 * the ceiling's is shorter), envelopes in flight, and warm-up envelopes per sender. The window
 * sits at the relay's throughput knee (measured: K=2 gains up to ~64, K=10 up to ~64, K=100 up
 * to ~10; beyond, only latency grows), the same for the ceiling.
 */
const PLAN = [
  { k: 2, m: 6000, quickM: 1000, window: 64, warm: 200 },
  { k: 10, m: 400, quickM: 80, window: 64, warm: 20 },
  { k: 100, m: 3, quickM: 1, window: 10, warm: 1 },
];

const DEADLINE_MS = 180_000;

/**
 * Drives one load: the clients send the envelopes of `sets` (sets[s] for client s), taking
 * turns, with at most `window` envelopes in flight (sent and not yet delivered to every other
 * member). Each client writes with backpressure: a frame waits for 'drain' when grpc-js's buffer
 * is full, and its latency counts from the moment it is written. Receivers report each
 * delivery to onDelivered(hex, at). `done` resolves once every member got every envelope.
 */
export interface Load {
  onDelivered(hex: string, at: number): void;
  fail(e: Error): void;
  readonly done: Promise<{ seconds: number; delivered: number; latencies: Float64Array }>;
}

export function load(clients: readonly BenchClient[], sets: readonly SealedFrame[][], window: number): Load {
  const k = clients.length;
  const expected = sets.reduce((n, s) => n + s.length, 0) * (k - 1);
  const latencies = new Float64Array(expected);
  const byHex = new Map<string, { count: number; sentAt: number }>();
  const next: number[] = new Array<number>(k).fill(0);
  const queued = Array.from({ length: k }, (): SealedFrame[] => []);
  const draining: boolean[] = new Array<boolean>(k).fill(false);
  let turn = 0;
  let inFlight = 0;
  let delivered = 0;
  let lastAt = 0;
  let fail: (e: Error) => void = () => {};
  let finish = (): void => {};
  const finished = new Promise<void>((resolve, reject) => {
    finish = resolve;
    fail = reject;
  });

  /** Writes client s's queued frames until grpc-js asks it to wait. */
  const flush = (s: number): void => {
    while (!draining[s] && queued[s]!.length > 0) {
      const e = queued[s]!.shift()!;
      byHex.set(e.hex, { count: 0, sentAt: performance.now() });
      const drained = clients[s]!.writeFrame(e.frame);
      if (drained !== undefined) {
        draining[s] = true;
        drained.then(() => {
          draining[s] = false;
          flush(s);
        }, fail);
      }
    }
  };
  /** Fills the window, one envelope per sender in turn. */
  const fill = (): void => {
    for (let tried = 0; inFlight < window && tried < k; ) {
      const s = turn;
      turn = (turn + 1) % k;
      if (next[s]! >= sets[s]!.length) {
        tried++;
        continue;
      }
      tried = 0;
      inFlight++;
      queued[s]!.push(sets[s]![next[s]!++]!);
      flush(s);
    }
  };

  const onDelivered = (hex: string, at: number): void => {
    const rec = byHex.get(hex);
    if (rec === undefined) {
      fail(new Error(`a delivery of an envelope not in flight: ${hex}`));
      return;
    }
    latencies[delivered++] = at - rec.sentAt;
    lastAt = at;
    if (++rec.count === k - 1) {
      byHex.delete(hex);
      inFlight--;
      fill();
    }
    if (delivered === expected) finish();
  };

  const timer = setTimeout(() => fail(new Error(`load did not finish within ${DEADLINE_MS / 1000} s: ${delivered} of ${expected} deliveries`)), DEADLINE_MS);
  const started = performance.now();
  fill();
  return {
    onDelivered,
    fail: (e: Error) => fail(e),
    done: finished.then(() => {
      clearTimeout(timer);
      latencies.sort();
      return { seconds: (lastAt - started) / 1000, delivered, latencies };
    }, (e) => {
      clearTimeout(timer);
      throw e;
    }),
  };
}

const hexOf = (id: Uint8Array): string => Buffer.from(id.buffer, id.byteOffset, id.byteLength).toString("hex");

/** Points every client's receive path at the current load. */
type Mode = "relay" | "ceiling";

function wire(mode: Mode, clients: readonly BenchClient[], current: { load?: Load }): void {
  for (const c of clients) {
    if (mode === "relay") {
      c.onDeliver = (items, at) => {
        for (const item of items) current.load!.onDelivered(hexOf(item.envelope!.header!.messageId), at);
      };
      c.onSendResult = (r) => {
        if (r.status !== ACCEPTED) current.load!.fail(new Error(`the relay refused an envelope: code ${r.code}: ${r.detail}`));
      };
    } else {
      // The ceiling forwards the senders' SessionRequest frames as they are.
      c.onRaw = (raw, at) => {
        const f = SessionRequest.decode(raw).frame;
        if (f?.$case === "send") current.load!.onDelivered(hexOf(f.value.envelope!.header!.messageId), at);
      };
    }
  }
}

async function waitFor(what: string, fn: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** One measurement of one mode on a fresh child: connect, warm up, measure; CPU of both sides. */
async function measure(mode: Mode, ids: readonly PrivateIdentity[], sealed: { warm: SealedFrame[][]; main: SealedFrame[][] }, window: number) {
  const prof = process.env.BENCH_RELAY_PROF;
  if (prof && mode === "relay") mkdirSync(prof, { recursive: true });
  const child = await startRelayChild(mode, mode === "relay" ? { limits: { messagesPerSecond: 1_000_000, burst: 1_000_000, ...MANY_USERS_FROM_LOOPBACK } } : {}, {
    execArgv: prof && mode === "relay" ? ["--cpu-prof", "--cpu-prof-dir", prof] : [],
  });
  const clients: BenchClient[] = [];
  try {
    if (mode === "relay") {
      for (const id of ids) clients.push(await connect(child.port, id));
      await joinAll(clients, ROOM);
    } else {
      for (let i = 0; i < ids.length; i++) clients.push(new BenchClient(child.port));
      await waitFor(`${ids.length} streams at the ceiling`, async () => (await child.stats()).stats.sessions === ids.length);
    }
    const current: { load?: Load } = {};
    wire(mode, clients, current);
    current.load = load(clients, sealed.warm, window);
    await current.load.done;

    const before = await child.stats();
    const cpu0 = process.cpuUsage();
    current.load = load(clients, sealed.main, window);
    const res = await current.load.done;
    const cpu1 = process.cpuUsage(cpu0);
    const after = await child.stats();
    return {
      deliveriesPerSecond: res.delivered / res.seconds,
      p50: percentile(res.latencies, 50),
      p99: percentile(res.latencies, 99),
      seconds: res.seconds,
      childCpu: (after.cpuMs - before.cpuMs) / (res.seconds * 1000),
      parentCpu: (cpu1.user + cpu1.system) / 1000 / (res.seconds * 1000),
      envelopesPerCommit: "commits" in after.stats && "commits" in before.stats
        ? (after.stats.committedEnvelopes - before.stats.committedEnvelopes) / Math.max(1, after.stats.commits - before.stats.commits)
        : undefined,
    };
  } finally {
    for (const c of clients) c.close();
    await child.stop();
  }
}

type Measurement = Awaited<ReturnType<typeof measure>>;

export async function run({ runs, quick, log }: RunOptions): Promise<Row[]> {
  const rows: Row[] = [];
  const only = process.env.BENCH_FANOUT_K?.split(",").map(Number);
  for (const plan of PLAN) {
    if (only && !only.includes(plan.k)) continue;
    const { k, warm } = plan;
    const window = Number(process.env.BENCH_FANOUT_WINDOW ?? plan.window);
    const m = quick ? plan.quickM : plan.m;
    const ids = identities(k, "f");
    // Sealed once, before any clock: each measurement runs on a fresh child (a fresh data dir
    // for the relay), so the same envelopes are new to it every time.
    const t0 = performance.now();
    const sealed = { warm: await sealRoom(ids, ROOM, warm, "warm"), main: await sealRoom(ids, ROOM, m, "fanout") };
    const bytes = sealed.main[0]![0]!.frame.length;
    log(`K=${k}: sealed ${k} x ${m + warm} envelopes for ${k} recipients (${(bytes / 1024).toFixed(1)} KB per frame) in ${((performance.now() - t0) / 1000).toFixed(1)} s; `
      + `${k * (k - 1) * m} deliveries per measurement, window ${window} envelopes`);

    const res: Record<Mode, Measurement[]> = { relay: [], ceiling: [] };
    for (let r = 0; r < runs; r++) {
      // Alternate which goes first, so drift hits both alike.
      for (const mode of r % 2 === 0 ? ["relay", "ceiling"] as const : ["ceiling", "relay"] as const) {
        const x = await measure(mode, ids, sealed, window);
        res[mode].push(x);
        log(`K=${k} run ${r + 1} ${mode.padEnd(7)}: ${x.deliveriesPerSecond.toFixed(0)} deliveries/s in ${x.seconds.toFixed(1)} s, p50 ${x.p50.toFixed(1)} ms, p99 ${x.p99.toFixed(1)} ms; `
          + `CPU: ${mode} process ${(x.childCpu * 100).toFixed(0)}%, clients ${(x.parentCpu * 100).toFixed(0)}% of a core`
          + (x.envelopesPerCommit === undefined ? "" : `; ${x.envelopesPerCommit.toFixed(1)} envelopes/commit`));
      }
    }
    type Figure = "deliveriesPerSecond" | "p50" | "p99" | "seconds" | "childCpu" | "parentCpu";
    const col = (rs: readonly Measurement[], key: Figure): number[] => rs.map((x) => x[key]);
    const ratio = (key: Figure): number[] => res.relay.map((x, i) => x[key] / res.ceiling[i]![key]);
    const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    // When the clients' process is saturated in the ceiling's runs, the load generator (one
    // event loop decoding every delivery), not the forwarder, bounds the ceiling: say so.
    const generatorBound = median(col(res.ceiling, "parentCpu")) >= 0.9
      ? `; the ceiling's clients used ${(median(col(res.ceiling, "parentCpu")) * 100).toFixed(0)}% of a core: the load generator bounds the ceiling here, so this ratio flatters the relay`
      : "";
    rows.push(
      { metric: `K=${k}: deliveries/s, relay`, unit: "1/s", values: col(res.relay, "deliveriesPerSecond"), better: "higher" },
      { metric: `K=${k}: deliveries/s, ceiling`, unit: "1/s", values: col(res.ceiling, "deliveriesPerSecond"), better: "higher" },
      { metric: `K=${k}: relay / ceiling deliveries/s`, unit: "ratio", values: ratio("deliveriesPerSecond"), better: "higher", target: 0.8 },
      { metric: `K=${k}: p50 latency, relay`, unit: "ms", values: col(res.relay, "p50"), better: "lower" },
      { metric: `K=${k}: p50 latency, ceiling`, unit: "ms", values: col(res.ceiling, "p50"), better: "lower" },
      { metric: `K=${k}: p99 latency, relay`, unit: "ms", values: col(res.relay, "p99"), better: "lower" },
      { metric: `K=${k}: p99 latency, ceiling`, unit: "ms", values: col(res.ceiling, "p99"), better: "lower" },
      {
        metric: `K=${k}: relay / ceiling p99`, unit: "ratio", values: ratio("p99"), better: "lower", target: 2,
        note: `${m} envelopes per sender of ${(bytes / 1024).toFixed(1)} KB (${k * (k - 1) * m} deliveries), at most ${window} in flight (not yet delivered to all), senders taking turns; `
          + `relay: defaults (durable, group commit), rate limit raised; ratios pair the runs of the same round${generatorBound}`,
      },
      { metric: `K=${k}: relay process CPU, relay`, unit: "% core", values: col(res.relay, "childCpu").map((x) => x * 100), better: "lower" },
      { metric: `K=${k}: relay process CPU, ceiling`, unit: "% core", values: col(res.ceiling, "childCpu").map((x) => x * 100), better: "lower" },
      { metric: `K=${k}: clients' CPU, relay`, unit: "% core", values: col(res.relay, "parentCpu").map((x) => x * 100), better: "lower" },
      { metric: `K=${k}: clients' CPU, ceiling`, unit: "% core", values: col(res.ceiling, "parentCpu").map((x) => x * 100), better: "lower" },
    );
  }
  return rows;
}
