// Relay fan-out against the ceiling of this stack, on protocol v2 (issue 12 "Performance":
// relay fan-out at K = 2, 10, 100 re-measured against the ceiling, with the bytes per delivery;
// issue 15 works from this suite's figures, under this name). K members of one real MLS group
// (src/protocol/mls, X-Wing suite) each send M application messages with SendMls; every message
// reaches every other member through the relay's durable per-user queues (Delivery.mls). The
// same frames run, in the same run, each on a fresh child process, through
//   - the relay (dist-bench's src/server) with its defaults: durability on (synchronous=FULL,
//     group commit), rate limits raised for the load; and
//   - the ceiling: a minimal grpc-js relay, one bidi stream per client that forwards every
//     frame it receives to every other stream as raw bytes, honouring backpressure
//     (_relay-host.ts). No parsing, checks, storage, acks or answers: what grpc-js and
//     HTTP/2 alone cost.
// The load generator (all K clients) runs here.
//
// The MLS group is made once, in-process (test/helpers/mls-room.ts: the creator adds everyone in
// one commit, each member joins from the Welcome), and registered with each fresh relay by
// replaying its bytes (_lib.ts registerRoom: PublishGroupInfo at epoch 0, then SendCommit with
// the add, its GroupInfo, Welcome, ratchet tree and membership hint); the bench waits until every
// member got its Welcome through the queue. Every message is encrypted before any clock starts,
// so this measures the relay, not the senders. Receivers do not open them (relay-catchup-mls
// does): they count each delivery by its AEAD tag and, against the relay, ack each batch and
// read SendResults, as a client does.
//
// Flow control is the same closed loop for both (load()): at most WINDOW messages in flight
// (written and not yet delivered to every other member), the senders taking turns, each writing
// with backpressure (waits for 'drain'). WINDOW is per room size, near the knee where more in
// flight adds latency (Little's law) but no throughput. Latency is from the sender's write to a
// receiver's 'data' event, for every delivery; deliveries/s is all deliveries over the time from
// the first write to the last delivery; bytes per delivery are the DeliverBatch bytes a receiver
// gets (gRPC message payloads, without HTTP/2 framing) over the deliveries it counts; relay CPU
// per delivery is the relay process's CPU time over the deliveries. A short warm-up (same flow,
// other messages) runs on each fresh child first. When the clients' process is saturated in the
// ceiling's runs, the load generator bounds the ceiling, and the note says so.
//
// Protocol v1 (sealed envelopes, SendEnvelope) is gone from the relay; its last figures from this
// suite (the v1 relay at K=2/10/100: 662/2,253/639 deliveries/s, 1,459/4,980/44,584 bytes per
// delivery, measured in the same run as the MLS relay's 1,008/3,955/12,075) are in PROTOCOL.md §16.
//
// Knobs for investigation (the defaults are the benchmark):
//   BENCH_FANOUT_K=2,10       only these room sizes
//   BENCH_FANOUT_WINDOW=N     messages in flight instead of the plan's
//   BENCH_FANOUT_MODES=relay  only these loads (relay, ceiling; the rows of the other are left out)
//   BENCH_RELAY_PROF=<dir>    a V8 CPU profile (--cpu-prof) of each relay child, written to <dir>
import { mkdirSync } from "node:fs";
import { SessionRequest } from "../../src/gen/securechat/v1/chat.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { makeMlsRoom, mlsKey, type MlsRoom } from "../../test/helpers/mls-room.js";
import {
  applicationItems, BenchClient, connect, encryptRoom, identities, percentile, registerRoom, startRelayChild, waitFor, ACCEPTED, MANY_USERS_FROM_LOOPBACK,
  type Row, type RunOptions, type SealedFrame,
} from "./_lib.js";

export const name = "relay-fanout";
export const description = "K members of one MLS group, every SendMls to every member: the relay (durable) vs a bare grpc-js forwarder";

const ROOM = "#fanout";

/**
 * Per room size: messages per sender, messages in flight (the relay and the ceiling alike) and
 * warm-up messages per sender. The window sits at the relay's knee: MLS messages are ~0.4 KB,
 * so at K=100 more of them in flight still add throughput (measured on the loaded machine:
 * window 10 -> ~3,500/s, 40 -> ~8,000/s with p50 ~0.35 s, 100 -> ~11,000/s with p50 ~0.8 s);
 * at K=10, 256 gained nothing over 64. At K=100, 3 messages per sender were over in 1-3 s: too
 * short to average out a shared machine; 12 take ~5-10 s.
 */
const PLAN = [
  { k: 2, m: 6000, quickM: 1000, window: 64, warm: 200 },
  { k: 10, m: 400, quickM: 80, window: 64, warm: 20 },
  { k: 100, m: 12, quickM: 1, window: 40, warm: 1 },
];

const DEADLINE_MS = 180_000;

/**
 * Drives one load: the clients send the messages of `sets` (sets[s] for client s), taking
 * turns, with at most `window` messages in flight (sent and not yet delivered to every other
 * member). Each client writes with backpressure: a frame waits for 'drain' when grpc-js's buffer
 * is full, and its latency counts from the moment it is written. Receivers report each
 * delivery to onDelivered(hex, at). `done` resolves once every member got every message.
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
  /** Fills the window, one message per sender in turn. */
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
      fail(new Error(`a delivery of a message not in flight: ${hex}`));
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

type Mode = "relay" | "ceiling";

/** SessionResponse field 3 (DeliverBatch), length-delimited: the first byte of a delivery frame. */
const DELIVER_TAG = (3 << 3) | 2;

/** Points every client's receive path at the current load; counts delivery bytes. */
function wire(mode: Mode, clients: readonly BenchClient[], current: { load?: Load; bytes: number }): void {
  for (const c of clients) {
    if (mode === "relay") {
      const decode = c.onRaw;
      c.onRaw = (raw, at) => {
        if (raw[0] === DELIVER_TAG) current.bytes += raw.length;
        decode(raw, at);
      };
      c.onDeliver = (items, at) => {
        for (const item of applicationItems(items)) current.load!.onDelivered(mlsKey(item.mls!.mls), at);
      };
      c.onSendResult = (r) => {
        if (r.status !== ACCEPTED) current.load!.fail(new Error(`the relay refused a message: code ${r.code}: ${r.detail}`));
      };
    } else {
      // The ceiling forwards the senders' SessionRequest frames as they are.
      c.onRaw = (raw, at) => {
        current.bytes += raw.length;
        const f = SessionRequest.decode(raw).frame;
        if (f?.$case === "sendMls") current.load!.onDelivered(mlsKey(f.value.mls), at);
      };
    }
  }
}

interface Workload {
  readonly ids: readonly PrivateIdentity[];
  readonly room: MlsRoom;
  readonly warm: SealedFrame[][];
  readonly main: SealedFrame[][];
  readonly window: number;
}

/** One measurement on a fresh child: connect (and register the group), warm up, measure; CPU of both sides. */
async function measure(mode: Mode, work: Workload) {
  const { ids, room, window } = work;
  const prof = process.env.BENCH_RELAY_PROF;
  if (prof && mode === "relay") mkdirSync(prof, { recursive: true });
  const child = await startRelayChild(mode, mode === "relay" ? { limits: { messagesPerSecond: 1_000_000, burst: 1_000_000, ...MANY_USERS_FROM_LOOPBACK } } : {}, {
    execArgv: prof && mode === "relay" ? ["--cpu-prof", "--cpu-prof-dir", prof] : [],
  });
  const clients: BenchClient[] = [];
  try {
    if (mode === "relay") {
      for (const id of ids) clients.push(await connect(child.port, id));
      await registerRoom(clients, room);
    } else {
      for (let i = 0; i < ids.length; i++) clients.push(new BenchClient(child.port));
      await waitFor(`${ids.length} streams at the ceiling`, async () => (await child.stats()).stats.sessions === ids.length);
    }
    const current: { load?: Load; bytes: number } = { bytes: 0 };
    wire(mode, clients, current);
    current.load = load(clients, work.warm, window);
    await current.load.done;

    const before = await child.stats();
    current.bytes = 0;
    const cpu0 = process.cpuUsage();
    const res = await (current.load = load(clients, work.main, window)).done;
    const cpu1 = process.cpuUsage(cpu0);
    const after = await child.stats();
    const cpuMs = after.cpuMs - before.cpuMs;
    return {
      deliveriesPerSecond: res.delivered / res.seconds,
      p50: percentile(res.latencies, 50),
      p99: percentile(res.latencies, 99),
      seconds: res.seconds,
      childCpu: cpuMs / (res.seconds * 1000),
      parentCpu: (cpu1.user + cpu1.system) / 1000 / (res.seconds * 1000),
      cpuUsPerDelivery: (cpuMs * 1000) / res.delivered,
      bytesPerDelivery: current.bytes / res.delivered,
      messagesPerCommit: "commits" in after.stats && "commits" in before.stats
        ? (after.stats.committedEnvelopes - before.stats.committedEnvelopes) / Math.max(1, after.stats.commits - before.stats.commits)
        : undefined,
    };
  } finally {
    for (const c of clients) c.close();
    await child.stop();
  }
}

type Measurement = Awaited<ReturnType<typeof measure>>;
type Figure = "deliveriesPerSecond" | "p50" | "p99" | "seconds" | "childCpu" | "parentCpu" | "cpuUsPerDelivery" | "bytesPerDelivery";

export async function run({ runs, quick, log }: RunOptions): Promise<Row[]> {
  const rows: Row[] = [];
  const only = process.env.BENCH_FANOUT_K?.split(",").map(Number);
  const modeFilter = process.env.BENCH_FANOUT_MODES?.split(",");
  const modes = (["relay", "ceiling"] as const).filter((m) => modeFilter?.includes(m) ?? true);
  for (const plan of PLAN) {
    if (only && !only.includes(plan.k)) continue;
    const { k, warm } = plan;
    const window = Number(process.env.BENCH_FANOUT_WINDOW ?? plan.window);
    const m = quick ? plan.quickM : plan.m;
    const ids = identities(k, "m");
    // Made and encrypted once, before any clock: each measurement runs on a fresh child (a fresh
    // data dir for the relay), so the same messages are new to it every time.
    const t0 = performance.now();
    const room = await makeMlsRoom(ids.map((id) => ({ username: id.username, sigPrivate: id.sigPrivate })), ROOM);
    const t1 = performance.now();
    const work: Workload = { ids, room, warm: await encryptRoom(room, warm, "warm"), main: await encryptRoom(room, m, "fanout"), window };
    const t2 = performance.now();
    const bytes = work.main[0]![0]!.frame.length;
    log(`K=${k}: MLS group of ${k} made in-process (create, one commit adding ${k - 1}, ${k - 1} joins from the Welcome) in ${((t1 - t0) / 1000).toFixed(1)} s; `
      + `${k} x ${m + warm} messages encrypted (${bytes} B per SendMls) in ${((t2 - t1) / 1000).toFixed(1)} s; ${k * (k - 1) * m} deliveries per measurement, window ${window} messages`);

    const res: Record<Mode, Measurement[]> = { relay: [], ceiling: [] };
    for (let r = 0; r < runs; r++) {
      // Alternate which goes first, so drift hits both alike.
      for (const mode of r % 2 === 0 ? modes : [...modes].reverse()) {
        const x = await measure(mode, work);
        res[mode].push(x);
        log(`K=${k} run ${r + 1} ${mode.padEnd(7)}: ${x.deliveriesPerSecond.toFixed(0)} deliveries/s in ${x.seconds.toFixed(1)} s, p50 ${x.p50.toFixed(1)} ms, p99 ${x.p99.toFixed(1)} ms; `
          + `CPU: ${mode} process ${(x.childCpu * 100).toFixed(0)}% of a core (${x.cpuUsPerDelivery.toFixed(0)} µs/delivery), clients ${(x.parentCpu * 100).toFixed(0)}%; ${x.bytesPerDelivery.toFixed(0)} B/delivery`
          + (x.messagesPerCommit === undefined ? "" : `; ${x.messagesPerCommit.toFixed(1)} messages/commit`));
      }
    }
    const col = (rs: readonly Measurement[], key: Figure, scale = 1): number[] => rs.map((x) => x[key] * scale);
    const ratio = (key: Figure): number[] => res.relay.map((x, i) => x[key] / (res.ceiling[i]?.[key] ?? Number.NaN));
    const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const ceilingClients = col(res.ceiling, "parentCpu");
    // When the clients' process is saturated in the ceiling's runs, the load generator (one
    // event loop decoding every delivery), not the forwarder, bounds the ceiling: say so.
    const generatorBound = ceilingClients.length > 0 && median(ceilingClients) >= 0.9
      ? `; the ceiling's clients used ${(median(ceilingClients) * 100).toFixed(0)}% of a core: the load generator bounds the ceiling here, so this ratio flatters the relay`
      : "";
    const measured = (row: Row): boolean => row.values.length > 0 && row.values.every(Number.isFinite);
    const all: Row[] = [
      { metric: `K=${k}: deliveries/s, relay`, unit: "1/s", values: col(res.relay, "deliveriesPerSecond"), better: "higher" },
      { metric: `K=${k}: deliveries/s, ceiling`, unit: "1/s", values: col(res.ceiling, "deliveriesPerSecond"), better: "higher" },
      { metric: `K=${k}: relay / ceiling deliveries/s`, unit: "ratio", values: ratio("deliveriesPerSecond"), better: "higher", target: 0.8 },
      { metric: `K=${k}: p50 latency, relay`, unit: "ms", values: col(res.relay, "p50"), better: "lower" },
      { metric: `K=${k}: p50 latency, ceiling`, unit: "ms", values: col(res.ceiling, "p50"), better: "lower" },
      { metric: `K=${k}: p99 latency, relay`, unit: "ms", values: col(res.relay, "p99"), better: "lower" },
      { metric: `K=${k}: p99 latency, ceiling`, unit: "ms", values: col(res.ceiling, "p99"), better: "lower" },
      {
        metric: `K=${k}: relay / ceiling p99`, unit: "ratio", values: ratio("p99"), better: "lower", target: 2,
        note: `${m} MLS messages per sender of ${bytes} B per SendMls frame (a ~140-byte text, padded; ${k * (k - 1) * m} deliveries), at most ${window} in flight (not yet delivered to all), `
          + `senders taking turns; relay: defaults (durable, group commit), rate limit raised; ratios pair the runs of the same round${generatorBound}`,
      },
      { metric: `K=${k}: relay CPU per delivery`, unit: "µs", values: col(res.relay, "cpuUsPerDelivery"), better: "lower" },
      { metric: `K=${k}: relay process CPU, relay`, unit: "% core", values: col(res.relay, "childCpu", 100), better: "lower" },
      { metric: `K=${k}: relay process CPU, ceiling`, unit: "% core", values: col(res.ceiling, "childCpu", 100), better: "lower" },
      { metric: `K=${k}: clients' CPU, relay`, unit: "% core", values: col(res.relay, "parentCpu", 100), better: "lower" },
      {
        metric: `K=${k}: clients' CPU, ceiling`, unit: "% core", values: ceilingClients.map((x) => x * 100), better: "lower",
        note: "the load generator (all K clients, one event loop): near 100% it, not the forwarder, bounds the ceiling",
      },
      {
        metric: `K=${k}: bytes per delivery, relay`, unit: "B", values: col(res.relay, "bytesPerDelivery"), better: "lower",
        note: "DeliverBatch payloads received over deliveries (gRPC message bytes, without HTTP/2 framing); the retired v1 envelopes' last figures: 1,459 / 4,980 / 44,584 B at K=2/10/100",
      },
    ];
    rows.push(...all.filter(measured));
  }
  return rows;
}
