// Relay durability: what group commit buys, on protocol v2. K members of one real MLS group
// (src/protocol/mls, X-Wing suite) each send M application messages with SendMls (encrypted
// once, before any clock starts); every message reaches every other member through the relay's
// durable per-user queues. The same load runs against (a) group commit, the relay's default, and
// (b) one transaction (one fsync, synchronous=FULL) per message, in the same run, each on a
// fresh relay and data dir. Reported: deliveries per second, p50/p99 latency from the sender's
// write to the recipient's receipt, and the ratio of the two throughputs.
//
// The relay runs in a child process (_lib.ts startRelayChild) so that its event loop, which a
// commit's fsync blocks, is not the clients' one. The clients are lean raw gRPC sessions
// (_lib.ts BenchClient: v2 handshake, SendMls, ack). The group is made once in-process and
// registered with each fresh relay (_lib.ts registerRoom); every member's Welcome is through
// its queue before the clock starts. Each client keeps WINDOW sends unanswered at most (a closed
// loop, as a chat client's outbox is) and acks each batch.
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import type { StartRelayOptions } from "../../src/server/relay.js";
import { makeMlsRoom, mlsKey, type MlsRoom } from "../../test/helpers/mls-room.js";
import {
  ACCEPTED, applicationItems, connect, encryptRoom, identities, percentile, registerRoom, startRelayChild, MANY_USERS_FROM_LOOPBACK, type BenchClient, type Row,
  type RunOptions, type SealedFrame,
} from "./_lib.js";

export const name = "relay-durability";
export const description = "group commit vs one transaction per stored message: 10 members of one MLS group, every SendMls to every member";

const K = 10;
const WINDOW = 16;
const ROOM = "#bench";

/**
 * Every client sends its messages of `sets`, keeping at most `window` unanswered; resolves once
 * every member got every message, with the elapsed time and each delivery's latency.
 */
async function load(clients: readonly BenchClient[], sets: readonly SealedFrame[][], window: number): Promise<{ seconds: number; delivered: number; latencies: number[] }> {
  const expected = sets.reduce((n, set) => n + set.length, 0) * (K - 1);
  const sentAt = new Map<string, number>();
  const latencies: number[] = [];
  let delivered = 0;
  let refused = 0;
  let done = (): void => {};
  const finished = new Promise<void>((resolve) => {
    done = resolve;
  });
  for (const c of clients) {
    c.onDeliver = (items, at) => {
      for (const item of applicationItems(items)) {
        const sent = sentAt.get(mlsKey(item.mls!.mls));
        if (sent === undefined) throw new Error("a delivery of a message this load did not send");
        latencies.push(at - sent);
        delivered++;
      }
      if (delivered >= expected) done();
    };
  }
  const started = performance.now();
  await Promise.all(clients.map((c, k) => new Promise<void>((resolve) => {
    const mine = sets[k]!;
    let next = 0;
    let answered = 0;
    const sendOne = () => {
      const w = mine[next++]!;
      sentAt.set(w.hex, performance.now());
      c.writeRaw(w.frame);
    };
    c.onSendResult = (r) => {
      if (r.status !== ACCEPTED) refused++;
      answered++;
      if (next < mine.length) sendOne();
      if (answered === mine.length) resolve();
    };
    for (let i = 0; i < Math.min(window, mine.length); i++) sendOne();
  })));
  if (refused > 0) throw new Error(`${refused} messages were refused`);
  await finished;
  latencies.sort((a, b) => a - b);
  return { seconds: (performance.now() - started) / 1000, delivered, latencies };
}

/**
 * One measurement on a fresh relay in this mode: the saturating load (WINDOW unanswered per
 * client), then a light one (each client sends one message at a time, as people type).
 */
async function measure(commitMode: CommitMode, ids: readonly PrivateIdentity[], room: MlsRoom, sealed: Sealed) {
  const relay = await startRelayChild("relay", {
    commitMode,
    // The load is the point: no rate limit, no slow-consumer cut-off.
    limits: { messagesPerSecond: 1_000_000, burst: 1_000_000, maxOutgoing: 1_000_000, ...MANY_USERS_FROM_LOOPBACK },
  });
  const clients: BenchClient[] = [];
  try {
    for (const id of ids) clients.push(await connect(relay.port, id));
    // The group is registered and every member holds its Welcome: the set-up's commits are over.
    await registerRoom(clients, room);

    const { stats: before } = await relay.stats();
    const heavy = await load(clients, sealed.heavy, WINDOW);
    const { stats } = await relay.stats();
    const light = await load(clients, sealed.light, 1);
    const commits = stats.commits - before.commits;
    return {
      deliveriesPerSecond: heavy.delivered / heavy.seconds,
      p50: percentile(heavy.latencies, 50),
      p99: percentile(heavy.latencies, 99),
      messagesPerCommit: (stats.committedEnvelopes - before.committedEnvelopes) / Math.max(1, commits),
      commitShare: (stats.commitMs - before.commitMs) / 1000 / heavy.seconds,
      lightP50: percentile(light.latencies, 50),
      lightP99: percentile(light.latencies, 99),
    };
  } finally {
    for (const c of clients) c.close();
    await relay.stop();
  }
}

type CommitMode = NonNullable<StartRelayOptions["commitMode"]>;

interface Sealed {
  readonly heavy: SealedFrame[][];
  readonly light: SealedFrame[][];
}

type Measurement = Awaited<ReturnType<typeof measure>>;

export async function run({ runs, quick, log }: RunOptions): Promise<Row[]> {
  // K users, each with a signing key of its own, and their MLS group.
  const ids = identities(K, "user");
  const t0 = performance.now();
  const room = await makeMlsRoom(ids.map((id) => ({ username: id.username, sigPrivate: id.sigPrivate })), ROOM);

  // Encrypted before any clock starts, once: each measurement uses a fresh relay, so the same
  // messages (same ids) are new to it.
  const m = quick ? 60 : 200;
  const light = quick ? 10 : 20;
  const t1 = performance.now();
  const sealed: Sealed = { heavy: await encryptRoom(room, m, "heavy"), light: await encryptRoom(room, light, "light") };
  log(`MLS group of ${K} made in ${((t1 - t0) / 1000).toFixed(1)} s; ${K} x ${m + light} messages encrypted (${sealed.heavy[0]![0]!.frame.length} B per SendMls) in `
    + `${((performance.now() - t1) / 1000).toFixed(1)} s; ${K * (K - 1) * m} deliveries per measurement under load`);

  const results: Record<CommitMode, Measurement[]> = { group: [], "per-envelope": [] };
  for (let r = 0; r < runs; r++) {
    // Alternate which mode goes first, so drift (disk caches, CPU clocks) hits both alike.
    const order: CommitMode[] = r % 2 === 0 ? ["group", "per-envelope"] : ["per-envelope", "group"];
    for (const mode of order) {
      const res = await measure(mode, ids, room, sealed);
      results[mode].push(res);
      log(`run ${r + 1} ${mode}: ${res.deliveriesPerSecond.toFixed(0)} deliveries/s, p50 ${res.p50.toFixed(1)} ms, p99 ${res.p99.toFixed(1)} ms, `
        + `${res.messagesPerCommit.toFixed(1)} messages/commit, ${(res.commitShare * 100).toFixed(0)}% of the time in commits; `
        + `one at a time: p50 ${res.lightP50.toFixed(1)} ms, p99 ${res.lightP99.toFixed(1)} ms`);
    }
  }

  const g = results.group;
  const p = results["per-envelope"];
  const col = (rs: readonly Measurement[], k: keyof Measurement): number[] => rs.map((x) => x[k]);
  const rows: Row[] = [];
  for (const [label, rs] of [["group commit", g], ["per-envelope commit", p]] as const) {
    rows.push(
      { metric: `${label}: deliveries/s (loaded)`, unit: "1/s", values: col(rs, "deliveriesPerSecond"), better: "higher" },
      { metric: `${label}: send->delivery p50 (loaded)`, unit: "ms", values: col(rs, "p50"), better: "lower" },
      { metric: `${label}: send->delivery p99 (loaded)`, unit: "ms", values: col(rs, "p99"), better: "lower" },
      { metric: `${label}: messages per commit (loaded)`, unit: "mean", values: col(rs, "messagesPerCommit"), better: "higher" },
      { metric: `${label}: share of time in commits (loaded)`, unit: "%", values: col(rs, "commitShare").map((x) => x * 100), better: "lower" },
      { metric: `${label}: send->delivery p50 (one at a time)`, unit: "ms", values: col(rs, "lightP50"), better: "lower" },
      { metric: `${label}: send->delivery p99 (one at a time)`, unit: "ms", values: col(rs, "lightP99"), better: "lower" },
    );
  }
  rows.push({
    metric: "group / per-envelope deliveries/s (loaded)", unit: "ratio", values: g.map((x, i) => x.deliveriesPerSecond / p[i]!.deliveriesPerSecond),
    better: "higher", target: 1,
    note: `${K} members of one MLS group, SendMls; loaded: ${m} messages each, at most ${WINDOW} unanswered per client; one at a time: ${light} each, `
      + "sent after the previous one's answer. Both modes make every commit durable before its answer (group: one fdatasync of the WAL off the event loop per batch, store/wal-sync.ts; per-envelope: the relay's commitMode that commits each stored message on its own, synchronous=FULL); the relay runs in its own process.",
  });
  return rows;
}
