// Relay fan-out on protocol v2 (issue 12 "Performance": relay fan-out at K = 2, 10, 100
// re-measured against the ceiling, with the bytes per delivery). K members of one real MLS group
// (src/protocol/mls, X-Wing suite) each send M application messages with SendMls; every message
// reaches every other member through the relay's durable per-user queues (Delivery.mls). In the
// same run, for the same K, four loads on fresh child processes:
//   - mls relay:    the relay (dist-bench's src/server, defaults: durable, group commit), SendMls;
//   - mls ceiling:  the bare grpc-js forwarder of _relay-host.ts, the same SendMls frames;
//   - v1 relay:     the v1 workload of relay-fanout (real sealed envelopes, SendEnvelope);
//   - v1 ceiling:   the forwarder with those envelopes.
// The MLS group is made once, in-process (test/helpers/mls-room.ts: the creator adds everyone in
// one commit, each member joins from the Welcome), and registered with each fresh relay by
// replaying its bytes (PublishGroupInfo at epoch 0, then SendCommit with the add, its GroupInfo,
// Welcome, ratchet tree and membership hint); the bench waits until every member got its
// Welcome through the queue. Every message is encrypted before any clock starts, so this measures
// the relay, not the senders. Receivers do not open them (the catch-up bench does): they count
// each delivery by its AEAD tag and ack each batch, as a client does.
//
// The load is relay-fanout's closed loop (load(): at most WINDOW messages in flight, senders
// taking turns, backpressure honoured); latency is from the sender's write to a receiver's
// 'data'; bytes per delivery are the DeliverBatch bytes a receiver gets (gRPC message payloads,
// without HTTP/2 framing) over the deliveries it counts; relay CPU per delivery is the relay
// process's CPU time over the deliveries.
//
// Knobs for investigation (the defaults are the benchmark): BENCH_FANOUT_K=2,10 (only these
// sizes), BENCH_FANOUT_WINDOW=N, BENCH_FANOUT_MODES=mls-relay,v1-relay (only these loads; the
// rows of the others are then left out).
import { SessionRequest, MlsKind } from "../../src/gen/securechat/v1/chat.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { makeMlsRoom, mlsKey, registerMlsRoom, type MlsRoom } from "../../test/helpers/mls-room.js";
import {
  BenchClient, connect, encodeRequest, identities, joinAll, percentile, sealRoom, startRelayChild, ACCEPTED, MANY_USERS_FROM_LOOPBACK,
  type Row, type RunOptions, type SealedFrame,
} from "./_lib.js";
import { load, type Load } from "./relay-fanout.js";

export const name = "relay-fanout-mls";
export const description = "K members of one MLS group, every SendMls to every member: relay vs forwarder, next to v1 envelopes, same run";

const ROOM = "#fanout";

/**
 * relay-fanout's plan (messages per sender, v1 envelopes in flight, warm-up), so the two compare,
 * and the MLS loads' own window (the relay and the ceiling alike), at their knee: MLS messages
 * are ~0.4 KB where a v1 envelope for 100 is ~43 KB, so at K=100 more of them in flight still
 * add throughput (measured on the loaded machine: window 10 -> ~3,500/s, 40 -> ~8,000/s with
 * p50 ~0.35 s, 100 -> ~11,000/s with p50 ~0.8 s); at K=10, 256 gained nothing over 64.
 */
const PLAN = [
  { k: 2, m: 6000, mlsM: 6000, quickM: 1000, window: 64, mlsWindow: 64, warm: 200 },
  { k: 10, m: 400, mlsM: 400, quickM: 80, window: 64, mlsWindow: 64, warm: 20 },
  // At K=100, 3 MLS messages per sender were over in 1-3 s: too short to average out a shared
  // machine; 12 take ~5-10 s, as long as the v1 envelopes' 3.
  { k: 100, m: 3, mlsM: 12, quickM: 1, window: 10, mlsWindow: 40, warm: 1 },
];

type Wire = "mls" | "v1";
type Target = "relay" | "ceiling";

const hexOf = (id: Uint8Array): string => Buffer.from(id.buffer, id.byteOffset, id.byteLength).toString("hex");

/** SessionResponse field 3 (DeliverBatch), length-delimited: the first byte of a delivery frame. */
const DELIVER_TAG = (3 << 3) | 2;

async function waitFor(what: string, fn: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Each member's messages, encrypted ahead as SendMls frames: [sender][i]. */
async function encryptRoom(room: MlsRoom, perSender: number, tag: string): Promise<SealedFrame[][]> {
  const out: SealedFrame[][] = [];
  for (const [k, g] of room.groups.entries()) {
    const set: SealedFrame[] = [];
    for (let i = 0; i < perSender; i++) {
      const mls = await g.encrypt(Buffer.from(`${tag} ${i} from ${k}: ${"x".repeat(120)}`));
      set.push({ frame: encodeRequest({ $case: "sendMls", value: { mls: Buffer.from(mls) } }), hex: mlsKey(mls) });
    }
    out.push(set);
  }
  return out;
}

/** Points every client's receive path at the current load; counts delivery bytes. */
function wire(w: Wire, target: Target, clients: readonly BenchClient[], current: { load?: Load; bytes: number }): void {
  for (const c of clients) {
    if (target === "relay") {
      const decode = c.onRaw;
      c.onRaw = (raw, at) => {
        if (raw[0] === DELIVER_TAG) current.bytes += raw.length;
        decode(raw, at);
      };
      c.onDeliver = (items, at) => {
        for (const item of items) {
          if (w === "v1") {
            if (item.envelope !== undefined) current.load!.onDelivered(hexOf(item.envelope.header!.messageId), at);
          } else if (item.mls?.kind === MlsKind.MLS_KIND_APPLICATION) {
            current.load!.onDelivered(mlsKey(item.mls.mls), at);
          }
        }
      };
      c.onSendResult = (r) => {
        if (r.status !== ACCEPTED) current.load!.fail(new Error(`the relay refused a message: code ${r.code}: ${r.detail}`));
      };
    } else {
      c.onRaw = (raw, at) => {
        current.bytes += raw.length;
        const f = SessionRequest.decode(raw).frame;
        if (f?.$case === "send") current.load!.onDelivered(hexOf(f.value.envelope!.header!.messageId), at);
        else if (f?.$case === "sendMls") current.load!.onDelivered(mlsKey(f.value.mls), at);
      };
    }
  }
}

interface Workload {
  readonly ids: readonly PrivateIdentity[];
  readonly room: MlsRoom;
  readonly sets: Record<Wire, { warm: SealedFrame[][]; main: SealedFrame[][] }>;
  readonly windows: Record<Wire, number>;
}

/** One measurement on a fresh child: connect (and register the group), warm up, measure. */
async function measure(w: Wire, target: Target, work: Workload) {
  const { ids, room } = work;
  const window = work.windows[w];
  const child = await startRelayChild(target, target === "relay" ? { limits: { messagesPerSecond: 1_000_000, burst: 1_000_000, ...MANY_USERS_FROM_LOOPBACK } } : {});
  const clients: BenchClient[] = [];
  try {
    if (target === "relay") {
      for (const id of ids) clients.push(await connect(child.port, id, w === "mls" ? 2 : 1));
      if (w === "v1") {
        await joinAll(clients, ROOM);
      } else {
        // Register the group (through the creator) and wait until every other member got its
        // Welcome through its queue: the set-up traffic is over before the warm-up.
        let welcomes = 0;
        for (const c of clients.slice(1)) {
          c.onDeliver = (items) => {
            for (const item of items) if (item.mls?.kind === MlsKind.MLS_KIND_WELCOME) welcomes++;
          };
        }
        await registerMlsRoom(clients[0]!, room);
        await waitFor(`${clients.length - 1} Welcomes through the queues`, () => welcomes >= clients.length - 1);
      }
    } else {
      for (let i = 0; i < ids.length; i++) clients.push(new BenchClient(child.port));
      await waitFor(`${ids.length} streams at the ceiling`, async () => (await child.stats()).stats.sessions === ids.length);
    }
    const current: { load?: Load; bytes: number } = { bytes: 0 };
    wire(w, target, clients, current);
    current.load = load(clients, work.sets[w].warm, window);
    await current.load.done;

    const before = await child.stats();
    current.bytes = 0;
    const cpu0 = process.cpuUsage();
    const res = await (current.load = load(clients, work.sets[w].main, window)).done;
    const cpu1 = process.cpuUsage(cpu0);
    const after = await child.stats();
    const cpuMs = after.cpuMs - before.cpuMs;
    return {
      deliveriesPerSecond: res.delivered / res.seconds,
      p50: percentile(res.latencies, 50),
      p99: percentile(res.latencies, 99),
      seconds: res.seconds,
      cpu: cpuMs / (res.seconds * 1000),
      clientsCpu: (cpu1.user + cpu1.system) / 1000 / (res.seconds * 1000),
      cpuUsPerDelivery: (cpuMs * 1000) / res.delivered,
      bytesPerDelivery: current.bytes / res.delivered,
    };
  } finally {
    for (const c of clients) c.close();
    await child.stop();
  }
}

type Measurement = Awaited<ReturnType<typeof measure>>;
type Figure = Exclude<keyof Measurement, never>;

export async function run({ runs, quick, log }: RunOptions): Promise<Row[]> {
  const rows: Row[] = [];
  const only = process.env.BENCH_FANOUT_K?.split(",").map(Number);
  for (const plan of PLAN) {
    if (only && !only.includes(plan.k)) continue;
    const { k, warm } = plan;
    const windows = {
      v1: Number(process.env.BENCH_FANOUT_WINDOW ?? plan.window),
      mls: Number(process.env.BENCH_FANOUT_WINDOW ?? plan.mlsWindow),
    };
    const m = quick ? plan.quickM : plan.m;
    const mlsM = quick ? plan.quickM : plan.mlsM;
    const ids = identities(k, "m");
    const t0 = performance.now();
    const room = await makeMlsRoom(ids.map((id) => ({ username: id.username, sigPrivate: id.sigPrivate })), ROOM);
    const t1 = performance.now();
    const sets: Workload["sets"] = {
      mls: { warm: await encryptRoom(room, warm, "warm"), main: await encryptRoom(room, mlsM, "fanout") },
      v1: { warm: await sealRoom(ids, ROOM, warm, "warm"), main: await sealRoom(ids, ROOM, m, "fanout") },
    };
    const t2 = performance.now();
    const mlsBytes = sets.mls.main[0]![0]!.frame.length;
    const v1Bytes = sets.v1.main[0]![0]!.frame.length;
    log(`K=${k}: MLS group of ${k} made in-process (create, one commit adding ${k - 1}, ${k - 1} joins from the Welcome) in ${((t1 - t0) / 1000).toFixed(1)} s; `
      + `${k} x ${mlsM + warm} messages encrypted (MLS, ${mlsBytes} B per SendMls) and ${k} x ${m + warm} sealed (v1, ${(v1Bytes / 1024).toFixed(1)} KB per SendEnvelope) in ${((t2 - t1) / 1000).toFixed(1)} s; `
      + `${k * (k - 1) * mlsM} MLS / ${k * (k - 1) * m} v1 deliveries per measurement, window ${windows.mls} MLS messages / ${windows.v1} envelopes`);
    const work: Workload = { ids, room, sets, windows };

    const modeFilter = process.env.BENCH_FANOUT_MODES?.split(",");
    const modes = ([["mls", "relay"], ["mls", "ceiling"], ["v1", "relay"], ["v1", "ceiling"]] as const).filter(([w, t]) => modeFilter?.includes(`${w}-${t}`) ?? true);
    const res = new Map<string, Measurement[]>(["mls relay", "mls ceiling", "v1 relay", "v1 ceiling"].map((m) => [m, []]));
    for (let r = 0; r < runs; r++) {
      // Alternate the order, so drift hits all alike.
      for (const [w, t] of r % 2 === 0 ? modes : [...modes].reverse()) {
        const x = await measure(w, t, work);
        res.get(`${w} ${t}`)!.push(x);
        log(`K=${k} run ${r + 1} ${`${w} ${t}`.padEnd(11)}: ${x.deliveriesPerSecond.toFixed(0)} deliveries/s in ${x.seconds.toFixed(1)} s, p50 ${x.p50.toFixed(1)} ms, p99 ${x.p99.toFixed(1)} ms, `
          + `${t} process ${(x.cpu * 100).toFixed(0)}% of a core (${x.cpuUsPerDelivery.toFixed(0)} µs/delivery), clients ${(x.clientsCpu * 100).toFixed(0)}%, ${x.bytesPerDelivery.toFixed(0)} B/delivery`);
      }
    }
    const col = (mode: string, key: Figure, scale = 1): number[] => res.get(mode)!.map((x) => x[key] * scale);
    const ratio = (a: string, b: string, key: Figure): number[] => res.get(a)!.map((x, i) => x[key] / (res.get(b)![i]?.[key] ?? Number.NaN));
    const measured = (r: Row): boolean => r.values.length > 0 && r.values.every(Number.isFinite);
    const all: Row[] = [
      { metric: `K=${k}: deliveries/s, MLS relay`, unit: "1/s", values: col("mls relay", "deliveriesPerSecond"), better: "higher" },
      { metric: `K=${k}: deliveries/s, MLS ceiling`, unit: "1/s", values: col("mls ceiling", "deliveriesPerSecond"), better: "higher" },
      { metric: `K=${k}: deliveries/s, v1 relay`, unit: "1/s", values: col("v1 relay", "deliveriesPerSecond"), better: "higher" },
      { metric: `K=${k}: deliveries/s, v1 ceiling`, unit: "1/s", values: col("v1 ceiling", "deliveriesPerSecond"), better: "higher" },
      { metric: `K=${k}: MLS relay / MLS ceiling deliveries/s`, unit: "ratio", values: ratio("mls relay", "mls ceiling", "deliveriesPerSecond"), better: "higher", target: 0.8 },
      { metric: `K=${k}: MLS relay / v1 relay deliveries/s`, unit: "ratio", values: ratio("mls relay", "v1 relay", "deliveriesPerSecond"), better: "higher" },
      { metric: `K=${k}: relay CPU per delivery, MLS`, unit: "µs", values: col("mls relay", "cpuUsPerDelivery"), better: "lower" },
      { metric: `K=${k}: relay CPU per delivery, v1`, unit: "µs", values: col("v1 relay", "cpuUsPerDelivery"), better: "lower" },
      { metric: `K=${k}: relay process CPU, MLS`, unit: "% core", values: col("mls relay", "cpu", 100), better: "lower" },
      { metric: `K=${k}: clients' CPU, MLS relay`, unit: "% core", values: col("mls relay", "clientsCpu", 100), better: "lower" },
      {
        metric: `K=${k}: clients' CPU, MLS ceiling`, unit: "% core", values: col("mls ceiling", "clientsCpu", 100), better: "lower",
        note: "the load generator (all K clients, one event loop): near 100% it, not the forwarder, bounds the ceiling",
      },
      { metric: `K=${k}: p50 latency, MLS relay`, unit: "ms", values: col("mls relay", "p50"), better: "lower" },
      { metric: `K=${k}: p99 latency, MLS relay`, unit: "ms", values: col("mls relay", "p99"), better: "lower" },
      { metric: `K=${k}: p50 latency, MLS ceiling`, unit: "ms", values: col("mls ceiling", "p50"), better: "lower" },
      { metric: `K=${k}: p99 latency, MLS ceiling`, unit: "ms", values: col("mls ceiling", "p99"), better: "lower" },
      { metric: `K=${k}: p50 latency, v1 relay`, unit: "ms", values: col("v1 relay", "p50"), better: "lower" },
      { metric: `K=${k}: p99 latency, v1 relay`, unit: "ms", values: col("v1 relay", "p99"), better: "lower" },
      { metric: `K=${k}: MLS relay / MLS ceiling p99`, unit: "ratio", values: ratio("mls relay", "mls ceiling", "p99"), better: "lower", target: 2 },
      { metric: `K=${k}: bytes per delivery, MLS relay`, unit: "B", values: col("mls relay", "bytesPerDelivery"), better: "lower" },
      {
        metric: `K=${k}: bytes per delivery, v1 relay`, unit: "B", values: col("v1 relay", "bytesPerDelivery"), better: "lower",
        note: `${mlsM} MLS messages / ${m} v1 envelopes per sender (${k * (k - 1) * mlsM} / ${k * (k - 1) * m} deliveries), at most ${windows.mls} MLS messages / ${windows.v1} v1 envelopes in flight, senders taking turns; MLS: ${mlsBytes} B per SendMls frame `
          + `(a ~140-byte text, padded to 256), v1: ${v1Bytes} B per SendEnvelope; relay: defaults (durable, group commit), rate limit raised; bytes = DeliverBatch payloads `
          + `received over deliveries; ratios pair the runs of the same round`,
      },
    ];
    rows.push(...all.filter(measured));
  }
  return rows;
}
