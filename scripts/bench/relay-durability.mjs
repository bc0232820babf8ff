// Relay durability: what group commit buys. K clients in one room each send M real sealed
// envelopes (sealed once, before any clock starts); every envelope reaches every other member.
// The same load runs against (a) group commit, the relay's default, and (b) one transaction
// (one fsync, synchronous=FULL) per envelope, in the same run, each on a fresh relay and data
// dir. Reported: deliveries per second, p50/p99 latency from the sender's write to the
// recipient's receipt, and the ratio of the two throughputs.
//
// The relay runs in a child process (this file, started with BENCH_RELAY_CHILD=1) so that its
// event loop, which a commit's fsync blocks, is not the clients' one. The clients are lean raw
// gRPC sessions (handshake, send, ack), like test/helpers/raw-session.ts. Each keeps WINDOW
// sends unanswered at most (a closed loop, as a chat client's outbox is) and acks each batch.
import { fork } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const here = fileURLToPath(import.meta.url);
const root = join(dirname(here), "..", "..");
const dist = (p) => import(join(root, "dist", p));

export const name = "relay-durability";
export const description = "group commit vs one transaction per envelope: 10 clients in one room, every envelope to every member";

const K = 10;
const WINDOW = 16;
const ROOM = "#bench";

// ---- child: the relay ------------------------------------------------------------------------
if (process.env.BENCH_RELAY_CHILD === "1") {
  const { startRelay } = await dist("server/relay.js");
  const { nullLogger } = await dist("protocol/log.js");
  const { dataDir, commitMode } = JSON.parse(process.env.BENCH_RELAY_OPTIONS);
  const relay = await startRelay({
    host: "127.0.0.1", port: 0, dataDir, logger: nullLogger, commitMode,
    // The load is the point: no rate limit, no slow-consumer cut-off.
    limits: { messagesPerSecond: 1_000_000, burst: 1_000_000, maxOutgoing: 1_000_000 },
  });
  process.on("message", async (m) => {
    if (m === "stats") process.send({ stats: relay.stats() });
    if (m === "stop") {
      await relay.shutdown();
      process.exit(0);
    }
  });
  process.send({ port: relay.port });
}

// ---- parent: the clients ---------------------------------------------------------------------

function startRelayProcess(commitMode) {
  const dataDir = mkdtempSync(join(tmpdir(), "sc-bench-durability-"));
  const child = fork(here, [], {
    env: { ...process.env, BENCH_RELAY_CHILD: "1", BENCH_RELAY_OPTIONS: JSON.stringify({ dataDir, commitMode }) },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const next = () => new Promise((resolve, reject) => {
    child.once("message", resolve);
    child.once("exit", (code) => reject(new Error(`relay child exited with ${code}`)));
  });
  return next().then(({ port }) => ({
    port,
    stats: async () => {
      const p = next();
      child.send("stats");
      return (await p).stats;
    },
    stop: async () => {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.send("stop");
      await exited;
      rmSync(dataDir, { recursive: true, force: true });
    },
  }));
}

/** A raw session: Hello/Challenge/Proof, then frames by case; acks every DeliverBatch at once. */
class BenchClient {
  constructor(grpc, gen, address) {
    this.gen = gen;
    this.client = new grpc.Client(address, grpc.credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 });
    this.call = this.client.makeBidiStreamRequest(
      gen.ChatServiceService.session.path, (b) => Buffer.from(b), (b) => gen.SessionResponse.decode(b), new grpc.Metadata(),
    );
    this.waiters = [];
    this.onDeliver = () => {};
    this.onSendResult = () => {};
    this.call.on("data", (r) => {
      const f = r.frame;
      if (f === undefined) return;
      if (f.$case === "deliver") {
        const at = performance.now();
        this.write({ $case: "ack", value: { seqs: f.value.items.map((i) => i.seq) } });
        this.onDeliver(f.value.items, at);
        return;
      }
      if (f.$case === "sendResult") {
        this.onSendResult(f.value);
        return;
      }
      for (const w of [...this.waiters]) w(f);
    });
    this.call.on("error", () => {});
  }

  write(frame) {
    this.call.write(this.gen.SessionRequest.encode({ frame }).finish());
  }

  next(c, pred = () => true) {
    return new Promise((resolve) => {
      const w = (f) => {
        if (f.$case === c && pred(f.value)) {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          resolve(f.value);
        }
      };
      this.waiters.push(w);
    });
  }

  async handshake(id, signProof) {
    const challenge = this.next("challenge");
    this.write({ $case: "hello", value: { username: id.username, sigSpki: id.sigSpki, encSpki: id.encSpki, encKeySig: id.encKeySig, clientVersion: "bench", protocolVersion: 1 } });
    const c = await challenge;
    const welcome = this.next("welcome");
    this.write({ $case: "proof", value: { signature: signProof(id, c.relayId, c.nonce) } });
    await welcome;
  }

  close() {
    this.call.cancel();
    this.client.close();
  }
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/**
 * Every client sends its envelopes of `sets`, keeping at most `window` unanswered; resolves once
 * every member got every envelope, with the elapsed time and each delivery's latency.
 */
async function load(clients, sets, window, gen) {
  const expected = sets.reduce((n, set) => n + set.length, 0) * (K - 1);
  const sentAt = new Map();
  const latencies = [];
  let delivered = 0;
  let refused = 0;
  let done;
  const finished = new Promise((resolve) => {
    done = resolve;
  });
  for (const c of clients) {
    c.onDeliver = (items, at) => {
      for (const item of items) latencies.push(at - sentAt.get(Buffer.from(item.envelope.header.messageId).toString("hex")));
      delivered += items.length;
      if (delivered >= expected) done();
    };
  }
  const started = performance.now();
  await Promise.all(clients.map((c, k) => new Promise((resolve) => {
    const mine = sets[k];
    let next = 0;
    let answered = 0;
    const sendOne = () => {
      const w = mine[next++];
      sentAt.set(w.hex, performance.now());
      c.write({ $case: "send", value: { envelope: w.wire } });
    };
    c.onSendResult = (r) => {
      if (r.status !== gen.SendStatus.SEND_STATUS_ACCEPTED) refused++;
      answered++;
      if (next < mine.length) sendOne();
      if (answered === mine.length) resolve();
    };
    for (let i = 0; i < Math.min(window, mine.length); i++) sendOne();
  })));
  if (refused > 0) throw new Error(`${refused} envelopes were refused`);
  await finished;
  latencies.sort((a, b) => a - b);
  return { seconds: (performance.now() - started) / 1000, delivered, latencies };
}

/**
 * One measurement on a fresh relay in this mode: the saturating load (WINDOW unanswered per
 * client), then a light one (each client sends one envelope at a time, as people type).
 */
async function measure(commitMode, ids, sealed, deps) {
  const { grpc, gen, signProof } = deps;
  const relay = await startRelayProcess(commitMode);
  const address = `127.0.0.1:${relay.port}`;
  const clients = ids.map(() => new BenchClient(grpc, gen, address));
  try {
    for (const [i, c] of clients.entries()) await c.handshake(ids[i], signProof);
    // Everyone joins, and waits until the room has all K members: then every seal is current.
    const full = clients.map((c) => c.next("roomEvent", (e) => e.room === ROOM && e.members.length === K));
    for (const c of clients) c.write({ $case: "joinRoom", value: { requestId: 1, room: ROOM } });
    await Promise.all(full);

    const heavy = await load(clients, sealed.heavy, WINDOW, gen);
    const stats = await relay.stats();
    const light = await load(clients, sealed.light, 1, gen);
    return {
      deliveriesPerSecond: heavy.delivered / heavy.seconds,
      p50: percentile(heavy.latencies, 50),
      p99: percentile(heavy.latencies, 99),
      envelopesPerCommit: stats.committedEnvelopes / Math.max(1, stats.commits),
      commitShare: stats.commitMs / 1000 / heavy.seconds,
      lightP50: percentile(light.latencies, 50),
      lightP99: percentile(light.latencies, 99),
    };
  } finally {
    for (const c of clients) c.close();
    await relay.stop();
  }
}

export async function run({ runs, quick, log }) {
  const grpc = await import("@grpc/grpc-js");
  const gen = await dist("gen/securechat/v1/chat.js");
  const { decodeKeyFile } = await dist("protocol/keyfile.js");
  const { signProof } = await dist("protocol/keys.js");
  const env = await dist("protocol/envelope.js");
  const { envelopeToWire } = await dist("protocol/codec.js");

  // K users; the fixture keys are reused under K names (the relay binds names, not keys).
  const pems = ["alice", "bob", "carol", "dave", "mallory"].map((n) => readFileSync(join(root, "test", "fixtures", "keys", `${n}.pem`), "utf8"));
  const ids = await Promise.all(Array.from({ length: K }, (_, i) => decodeKeyFile(`user${String(i).padStart(2, "0")}`, pems[i % pems.length])));

  // Sealed before any clock starts, once: each measurement uses a fresh relay, so the same
  // envelopes (same ids) are new to it.
  const m = quick ? 60 : 200;
  const light = quick ? 10 : 20;
  const sealStarted = performance.now();
  const seal = (n, tag) => ids.map((sender, k) => Array.from({ length: n }, (_, i) => {
    const { envelope } = env.sealEnvelope({
      sender, conversationId: ROOM, recipients: ids, body: { kind: "text", text: `${tag} ${i} from ${k}: ${"x".repeat(120)}` },
      prev: env.ZERO_HASH, sentAtMs: Date.now(),
    });
    return { wire: envelopeToWire(envelope), hex: envelope.header.messageId.toString("hex") };
  }));
  const sealed = { heavy: seal(m, "heavy"), light: seal(light, "light") };
  log(`sealed ${K} x ${m + light} envelopes for ${K} recipients in ${((performance.now() - sealStarted) / 1000).toFixed(1)} s; ${K * (K - 1) * m} deliveries per measurement under load`);

  const deps = { grpc, gen, signProof };
  const results = { group: [], "per-envelope": [] };
  for (let r = 0; r < runs; r++) {
    // Alternate which mode goes first, so drift (disk caches, CPU clocks) hits both alike.
    const order = r % 2 === 0 ? ["group", "per-envelope"] : ["per-envelope", "group"];
    for (const mode of order) {
      const res = await measure(mode, ids, sealed, deps);
      results[mode].push(res);
      log(`run ${r + 1} ${mode}: ${res.deliveriesPerSecond.toFixed(0)} deliveries/s, p50 ${res.p50.toFixed(1)} ms, p99 ${res.p99.toFixed(1)} ms, `
        + `${res.envelopesPerCommit.toFixed(1)} envelopes/commit, ${(res.commitShare * 100).toFixed(0)}% of the time in commits; `
        + `one at a time: p50 ${res.lightP50.toFixed(1)} ms, p99 ${res.lightP99.toFixed(1)} ms`);
    }
  }

  const g = results.group;
  const p = results["per-envelope"];
  const col = (rs, k) => rs.map((x) => x[k]);
  const rows = [];
  for (const [label, rs] of [["group commit", g], ["per-envelope commit", p]]) {
    rows.push(
      { metric: `${label}: deliveries/s (loaded)`, unit: "1/s", values: col(rs, "deliveriesPerSecond"), better: "higher" },
      { metric: `${label}: send->delivery p50 (loaded)`, unit: "ms", values: col(rs, "p50"), better: "lower" },
      { metric: `${label}: send->delivery p99 (loaded)`, unit: "ms", values: col(rs, "p99"), better: "lower" },
      { metric: `${label}: envelopes per commit (loaded)`, unit: "mean", values: col(rs, "envelopesPerCommit"), better: "higher" },
      { metric: `${label}: share of time in commits (loaded)`, unit: "%", values: col(rs, "commitShare").map((x) => x * 100), better: "lower" },
      { metric: `${label}: send->delivery p50 (one at a time)`, unit: "ms", values: col(rs, "lightP50"), better: "lower" },
      { metric: `${label}: send->delivery p99 (one at a time)`, unit: "ms", values: col(rs, "lightP99"), better: "lower" },
    );
  }
  rows.push({
    metric: "group / per-envelope deliveries/s (loaded)", unit: "ratio", values: g.map((x, i) => x.deliveriesPerSecond / p[i].deliveriesPerSecond),
    better: "higher", target: 1,
    note: `${K} clients in one room; loaded: ${m} envelopes each, at most ${WINDOW} unanswered per client; one at a time: ${light} each, `
      + "sent after the previous one's answer. Both modes fsync every commit (synchronous=FULL); the relay runs in its own process.",
  });
  return rows;
}
