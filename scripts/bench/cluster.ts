// Many relays on one PostgreSQL (issue 14 "Benchmarks"): the same MLS room workload, in the same
// run, against
//   - one relay on the embedded store (SQLite in its data dir: the zero-setup default), and
//   - 1, 2 and 3 relay processes sharing one PostgreSQL (--store), the room's members spread
//     over them round-robin (member i on relay i mod N), so most deliveries cross relays
//     (committed by one, woken by a NOTIFY at another, read from the database there).
// Every relay is the real bin (dist/server/main.js) in its own process, plaintext
// (--insecure-plaintext, as relay-fanout: TLS would add the same per-byte cost to every row), rate
// limits raised for the load. PostgreSQL is a private cluster of this run (scripts/pg-cluster.sh:
// Debian's postgresql, fsync on, as production must: "on disk before ACCEPTED"), a fresh database
// per measurement.
//
// The workload is relay-fanout's (same code: load() and the _lib.ts pieces): K members of one real
// MLS group, each sends M application messages (SendMls, encrypted before any clock starts), every
// message to every other member, at most WINDOW in flight, senders taking turns, with
// backpressure. Figures per configuration:
//   - deliveries/s: all deliveries over the time from the first write to the last delivery;
//   - relay CPU per delivery: the CPU time (user + system, /proc/<pid>/stat) of ALL relay
//     processes over the deliveries, summed: what the service pays, however it is split;
//   - database CPU per delivery (PostgreSQL rows): the CPU of the cluster's server processes
//     (the postmaster and its children) over the deliveries;
//   - p50 / p99 latency: a sender's write to a receiver's 'data' event, every delivery.
// On this 2-core machine the load generator, every relay and PostgreSQL share two cores: more
// relays cannot add cores. One relay on PostgreSQL is bound by its synchronous round trips (it
// waits on each, below one core busy), so a second relay overlaps those waits; past that the
// cores are full and each added relay mostly adds the cost of crossing relays (NOTIFY, a
// database read per wake-up). CPU per delivery is the figure that carries over to a bigger
// machine. The notes under the table say so.
//
// Knobs: BENCH_CLUSTER_K=N (members), BENCH_CLUSTER_M=N (messages per sender),
// BENCH_CLUSTER_CONFIGS=embedded-1,postgres-1,postgres-2,postgres-3 (a subset).
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeMlsRoom, mlsKey } from "../../test/helpers/mls-room.js";
import { freshDatabase, startPrivateCluster, type PrivateCluster, type TestDatabase } from "../../test/helpers/pg.js";
import { startRelayProcess, type RelayProcess } from "../../test/helpers/relay-process.js";
import { applicationItems, BenchClient, connect, encryptRoom, identities, percentile, registerRoom, ACCEPTED, type Row, type RunOptions, type SealedFrame } from "./_lib.js";
import { load, type Load } from "./relay-fanout.js";

export const name = "cluster";
export const description = "one MLS room over 1, 2, 3 relay processes on one PostgreSQL vs one relay on the embedded store: deliveries/s, relay CPU per delivery, latency";

const ROOM = "#cluster";
const PLAN = { k: 10, m: 600, quickM: 150, window: 64, warm: 20 };

interface Config {
  readonly key: string;
  readonly label: string;
  readonly store: "embedded" | "postgres";
  readonly relays: number;
}
const CONFIGS: readonly Config[] = [
  { key: "embedded-1", label: "embedded store, 1 relay", store: "embedded", relays: 1 },
  { key: "postgres-1", label: "PostgreSQL, 1 relay", store: "postgres", relays: 1 },
  { key: "postgres-2", label: "PostgreSQL, 2 relays", store: "postgres", relays: 2 },
  { key: "postgres-3", label: "PostgreSQL, 3 relays", store: "postgres", relays: 3 },
];

/** The relay bin's flags for the load: rate limits and the per-address limits of one loopback source raised. */
const LOAD_ARGS = [
  "--insecure-plaintext", "--rate", "1000000", "--burst", "1000000",
  "--registration-burst", "1000000", "--registrations-per-hour", "1000000000", "--max-handshakes-per-address", "512",
];

const TICKS_PER_SECOND = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** CPU time (user + system) of a process so far, in ms; 0 once it is gone. */
function cpuMsOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // After the command: state(0) ppid(1) ... utime(11) stime(12).
    return ((Number(f[11]) + Number(f[12])) * 1000) / TICKS_PER_SECOND;
  } catch {
    return 0;
  }
}

/** CPU time in ms of a PostgreSQL cluster's server: its postmaster and every child of it. */
function clusterCpuMs(pgc: PrivateCluster): number {
  const postmaster = Number(readFileSync(join(pgc.dir, "data", "postmaster.pid"), "utf8").split("\n")[0]);
  let total = cpuMsOf(postmaster);
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === postmaster) total += cpuMsOf(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return total;
}

interface Workload {
  readonly ids: ReturnType<typeof identities>;
  readonly room: Awaited<ReturnType<typeof makeMlsRoom>>;
  readonly warm: SealedFrame[][];
  readonly main: SealedFrame[][];
}

interface Measurement {
  readonly deliveriesPerSecond: number;
  readonly relayCpuUsPerDelivery: number;
  readonly dbCpuUsPerDelivery: number | undefined;
  readonly relayCpuCores: number;
  readonly p50: number;
  readonly p99: number;
  readonly seconds: number;
}

/** Points every client's deliveries and SendResults at the current load. */
function wire(clients: readonly BenchClient[], current: { load?: Load }): void {
  for (const c of clients) {
    c.onDeliver = (items, at) => {
      for (const item of applicationItems(items)) current.load!.onDelivered(mlsKey(item.mls!.mls), at);
    };
    c.onSendResult = (r) => {
      if (r.status !== ACCEPTED) current.load!.fail(new Error(`a relay refused a message: code ${r.code}: ${r.detail}`));
    };
  }
}

/** One measurement on fresh relays (and a fresh database): connect, register the room, warm up, measure. */
async function measure(cfg: Config, work: Workload, pgc: PrivateCluster | undefined): Promise<Measurement> {
  const root = mkdtempSync(join(tmpdir(), "sc-bench-cluster-"));
  let db: TestDatabase | undefined;
  const relays: RelayProcess[] = [];
  const clients: BenchClient[] = [];
  try {
    if (cfg.store === "postgres") {
      if (pgc === undefined) throw new Error("no PostgreSQL cluster for a PostgreSQL configuration");
      db = await freshDatabase(pgc.url);
    }
    const storeArgs = db === undefined ? [] : ["--store", db.url];
    // One after the other: the first creates the schema.
    for (let i = 0; i < cfg.relays; i++) relays.push(await startRelayProcess(join(root, `relay-${i}`), [...LOAD_ARGS, ...storeArgs]));
    for (const [i, id] of work.ids.entries()) clients.push(await connect(relays[i % relays.length]!.port, id));
    await registerRoom(clients, work.room);
    const current: { load?: Load } = {};
    wire(clients, current);
    current.load = load(clients, work.warm, PLAN.window);
    await current.load.done;

    const relayCpu0 = relays.reduce((n, r) => n + cpuMsOf(r.proc.pid!), 0);
    const dbCpu0 = pgc !== undefined && db !== undefined ? clusterCpuMs(pgc) : 0;
    const res = await (current.load = load(clients, work.main, PLAN.window)).done;
    const relayCpuMs = relays.reduce((n, r) => n + cpuMsOf(r.proc.pid!), 0) - relayCpu0;
    const dbCpuMs = pgc !== undefined && db !== undefined ? clusterCpuMs(pgc) - dbCpu0 : undefined;
    return {
      deliveriesPerSecond: res.delivered / res.seconds,
      relayCpuUsPerDelivery: (relayCpuMs * 1000) / res.delivered,
      dbCpuUsPerDelivery: dbCpuMs === undefined ? undefined : (dbCpuMs * 1000) / res.delivered,
      relayCpuCores: relayCpuMs / (res.seconds * 1000),
      p50: percentile(res.latencies, 50),
      p99: percentile(res.latencies, 99),
      seconds: res.seconds,
    };
  } finally {
    for (const c of clients) c.close();
    for (const r of relays) await r.stop("SIGTERM");
    await db?.drop();
    rmSync(root, { recursive: true, force: true });
  }
}

export async function run({ runs, quick, log }: RunOptions): Promise<Row[]> {
  const only = process.env.BENCH_CLUSTER_CONFIGS?.split(",");
  const unknown = only?.filter((k) => !CONFIGS.some((c) => c.key === k)) ?? [];
  if (unknown.length > 0) throw new Error(`BENCH_CLUSTER_CONFIGS: no configuration ${unknown.join(", ")}; the configurations: ${CONFIGS.map((c) => c.key).join(", ")}`);
  const configs = CONFIGS.filter((c) => only?.includes(c.key) ?? true);
  const k = Number(process.env.BENCH_CLUSTER_K ?? PLAN.k);
  const m = Number(process.env.BENCH_CLUSTER_M ?? (quick ? PLAN.quickM : PLAN.m));
  if (!Number.isInteger(k) || k < 2 || !Number.isInteger(m) || m < 1) throw new Error(`BENCH_CLUSTER_K must be an integer >= 2 and BENCH_CLUSTER_M >= 1 (got ${k}, ${m})`);

  const ids = identities(k, "c");
  const t0 = performance.now();
  const room = await makeMlsRoom(ids.map((id) => ({ username: id.username, sigPrivate: id.sigPrivate })), ROOM);
  const work: Workload = { ids, room, warm: await encryptRoom(room, PLAN.warm, "warm"), main: await encryptRoom(room, m, "cluster") };
  log(`K=${k}: MLS group made and ${k} x ${m + PLAN.warm} messages encrypted in ${((performance.now() - t0) / 1000).toFixed(1)} s; `
    + `${k * (k - 1) * m} deliveries per measurement, window ${PLAN.window}`);

  const pgc = configs.some((c) => c.store === "postgres") ? await startPrivateCluster() : undefined;
  if (pgc !== undefined) log(`PostgreSQL: a private cluster at ${new URL(pgc.url).host} (fsync on)`);
  const res = new Map<string, Measurement[]>(configs.map((c) => [c.key, []]));
  try {
    for (let r = 0; r < runs; r++) {
      // Alternate the order, so drift hits every configuration alike.
      for (const cfg of r % 2 === 0 ? configs : [...configs].reverse()) {
        const x = await measure(cfg, work, pgc);
        res.get(cfg.key)!.push(x);
        log(`run ${r + 1} ${cfg.label.padEnd(24)}: ${x.deliveriesPerSecond.toFixed(0)} deliveries/s in ${x.seconds.toFixed(1)} s, `
          + `relays ${x.relayCpuUsPerDelivery.toFixed(0)} µs CPU/delivery (${(x.relayCpuCores * 100).toFixed(0)}% of a core in all)`
          + (x.dbCpuUsPerDelivery === undefined ? "" : `, PostgreSQL ${x.dbCpuUsPerDelivery.toFixed(0)} µs/delivery`)
          + `, p50 ${x.p50.toFixed(1)} ms, p99 ${x.p99.toFixed(1)} ms`);
      }
    }
  } finally {
    await pgc?.stop();
  }

  const rows: Row[] = [];
  const note = `K=${k} members of one MLS room, ${m} messages per sender (${k * (k - 1) * m} deliveries), at most ${PLAN.window} in flight; `
    + "members spread round-robin over the relays; fresh relays (and database) per measurement; 2 cores shared by the load generator, the relays and PostgreSQL";
  for (const cfg of configs) {
    const xs = res.get(cfg.key)!;
    const col = (f: (x: Measurement) => number): number[] => xs.map(f);
    rows.push(
      {
        metric: `${cfg.label}: deliveries/s`, unit: "1/s", values: col((x) => x.deliveriesPerSecond), better: "higher",
        ...(cfg === configs[0] ? { note } : cfg.relays > 1 ? { note: "the relays, PostgreSQL and the load generator share 2 cores: a relay on PostgreSQL waits on each synchronous round trip (below one core busy), so a second one overlaps those waits, and beyond that the cores are full; this is not scale-out onto more cores, and each added relay pays for crossing relays (NOTIFY, a read per wake-up): CPU per delivery is what carries over to a bigger machine" } : {}),
      },
      { metric: `${cfg.label}: relay CPU per delivery (all relays)`, unit: "µs", values: col((x) => x.relayCpuUsPerDelivery), better: "lower" },
    );
    if (cfg.store === "postgres") {
      rows.push({
        metric: `${cfg.label}: PostgreSQL CPU per delivery`, unit: "µs", values: col((x) => x.dbCpuUsPerDelivery ?? Number.NaN), better: "lower",
        ...(cfg.relays === 1 ? { note: "the cluster's server processes (postmaster and children), fsync on" } : {}),
      });
    }
    rows.push(
      { metric: `${cfg.label}: p50 latency`, unit: "ms", values: col((x) => x.p50), better: "lower" },
      { metric: `${cfg.label}: p99 latency`, unit: "ms", values: col((x) => x.p99), better: "lower" },
    );
  }
  return rows;
}
