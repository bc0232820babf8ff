// Shared pieces of the relay benchmarks, one of each:
//   - startRelayChild: the relay (or the ceiling forwarder) in a child process (_relay-host.mjs);
//   - identities: many identities from the five fixture key pairs;
//   - BenchClient: a lean raw protocol client (pre-encoded frames out, raw bytes in, no trust
//     store), like test/helpers/raw-session.ts but built for load;
//   - sealRoom: real sealed envelopes, encoded as SendEnvelope frames before any clock starts;
//   - percentile.
import { fork } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { readFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { once } from "node:events";
import * as grpc from "@grpc/grpc-js";

export const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const dist = (p) => import(join(root, "dist", p));

const gen = await dist("gen/securechat/v1/chat.js");
const keys = await dist("protocol/keys.js");
const { SessionRequest, SessionResponse, SendStatus } = gen;
export { gen };

/**
 * Starts the relay ("relay", options passed to startRelay) or the ceiling ("ceiling") in a child
 * process. Resolves with {port, pid, mem(), stats(), stop()}. `execArgv` adds node flags to the
 * child (e.g. ["--cpu-prof", "--cpu-prof-dir", dir] to profile it); `gc: true` exposes gc() so
 * mem() can collect before it measures (only memory benchmarks need it; the others run the
 * child with node's defaults).
 */
/**
 * Node flags of the chat-relay bin (its shebang, src/server/main.ts), for the relay and, to
 * compare like with like, the ceiling. test/unit/relay-bin.test.ts keeps the two in step.
 */
export const RELAY_NODE_FLAGS = ["--max-semi-space-size=8"];

export async function startRelayChild(mode, opts = {}, { execArgv = [], gc = false } = {}) {
  const child = fork(join(root, "scripts", "bench", "_relay-host.mjs"), [mode, JSON.stringify(opts)], {
    execArgv: [...(gc ? ["--expose-gc"] : []), ...RELAY_NODE_FLAGS, ...execArgv], stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const exited = once(child, "exit");
  const { port } = await new Promise((resolve, reject) => {
    child.once("message", resolve);
    child.once("exit", (code) => reject(new Error(`relay host (${mode}) exited with ${code} before listening`)));
  });
  let nextId = 1;
  const ask = async (cmd) => {
    const id = nextId++;
    const answer = new Promise((resolve, reject) => {
      const onMessage = (m) => {
        if (m?.id !== id) return;
        child.off("message", onMessage);
        resolve(m);
      };
      child.on("message", onMessage);
      exited.then(() => reject(new Error(`relay host (${mode}) exited while asked for ${cmd}`)));
    });
    child.send({ cmd, id });
    return answer;
  };
  return {
    port,
    pid: child.pid,
    /** Memory of the child, after forced GCs when started with gc: true. */
    async mem() {
      const { id, ...m } = await ask("mem");
      return m;
    },
    /** {stats: relay.stats() or {sessions} for the ceiling, cpuMs: the child's CPU time so far}. */
    async stats() {
      const { stats, cpuMs } = await ask("stats");
      return { stats, cpuMs };
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.send({ cmd: "stop", id: 0 });
      const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/**
 * Relay limits for benchmarks whose many users all come from 127.0.0.1: the per-address
 * registration bucket and handshake share (PROTOCOL.md §10) would otherwise shed a connect storm
 * from one address, which is what they are for.
 */
export const MANY_USERS_FROM_LOOPBACK = { registrationBurst: 1_000_000, registrationsPerHour: 1_000_000_000, maxHandshakesPerAddress: 512 };

/**
 * n identities named u0000.., each with a signing key of its own (a relay binds one name per
 * signing key) and an RSA key from the fixtures (RSA keys are slow to make; the relay does not
 * care whether two names share one).
 */
export function identities(n, prefix = "u") {
  const pairs = ["alice", "bob", "carol", "dave", "mallory"].map((f) => {
    const pem = readFileSync(join(root, "test", "fixtures", "keys", `${f}.pem`), "utf8");
    const [sig, enc] = [...pem.matchAll(/-----BEGIN PRIVATE KEY-----[\s\S]*?-----END PRIVATE KEY-----/g)].map((m) => keys.importPrivateKeyPem(m[0]));
    return { sig, enc };
  });
  return Array.from({ length: n }, (_, i) => {
    const p = pairs[i % pairs.length];
    return keys.identityFromPrivateKeys(`${prefix}${String(i).padStart(4, "0")}`, generateKeyPairSync("ed25519").privateKey, p.enc);
  });
}

/** Encodes one client frame as the Buffer grpc-js writes. */
export function encodeRequest(frame) {
  const b = SessionRequest.encode({ frame }).finish();
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

/**
 * A raw session on its own connection. Bytes go out as given (write() honours backpressure);
 * what comes in goes to onRaw(bytes, at), which by default decodes a SessionResponse and
 * dispatches it: the handshake, DeliverBatches (to onDeliver(items, at), acked at once when
 * autoAck), SendResults (to onSendResult) and anything else to waiters of next().
 * Against the ceiling, set onRaw: it forwards client frames, not relay frames.
 */
export class BenchClient {
  constructor(port) {
    this.client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), {
      "grpc.use_local_subchannel_pool": 1, "grpc.max_receive_message_length": 64 * 1024 * 1024,
    });
    this.call = this.client.makeBidiStreamRequest(gen.ChatServiceService.session.path, (b) => b, (b) => b, new grpc.Metadata());
    this.waiters = new Set();
    this.autoAck = true;
    this.onDeliver = () => {};
    this.onSendResult = () => {};
    this.onRaw = (raw, at) => this.dispatch(SessionResponse.decode(raw).frame, at);
    this.ended = new Promise((resolve) => this.call.on("status", resolve));
    this.call.on("data", (raw) => this.onRaw(raw, performance.now()));
    this.call.on("error", () => {});
  }

  dispatch(f, at) {
    if (f === undefined) return;
    if (f.$case === "deliver") {
      if (this.autoAck) this.write(encodeRequest({ $case: "ack", value: { seqs: f.value.items.map((i) => i.seq) } }));
      this.onDeliver(f.value.items, at);
    } else if (f.$case === "sendResult") {
      this.onSendResult(f.value);
    } else {
      for (const w of [...this.waiters]) w(f);
    }
  }

  /** Writes one encoded frame; resolves at once, or after 'drain' when grpc-js's buffer is full. */
  write(bytes) {
    if (this.call.write(bytes)) return undefined;
    return once(this.call, "drain");
  }

  /** The next frame of this case (matching pred) that is not a delivery or a SendResult. */
  next(c, pred = () => true, timeoutMs = 30_000) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(w);
        reject(new Error(`bench client: no ${c} within ${timeoutMs} ms`));
      }, timeoutMs);
      const w = (f) => {
        if (f.$case !== c || !pred(f.value)) return;
        clearTimeout(timer);
        this.waiters.delete(w);
        resolve(f.value);
      };
      this.waiters.add(w);
    });
  }

  /** Hello -> Challenge -> Proof; resolves with the Welcome. */
  async handshake(id) {
    const challenge = this.next("challenge");
    this.write(encodeRequest({
      $case: "hello",
      value: { username: id.username, sigSpki: id.sigSpki, encSpki: id.encSpki, encKeySig: id.encKeySig, clientVersion: "bench", protocolVersion: 1 },
    }));
    const c = await challenge;
    const welcome = this.next("welcome");
    this.write(encodeRequest({ $case: "proof", value: { signature: keys.signProof(id, c.relayId, c.nonce, keys.PLAINTEXT_CHANNEL_BINDING) } }));
    return welcome;
  }

  close() {
    this.call.cancel();
    this.client.close();
  }
}

/** Connects and completes the handshake. */
export async function connect(port, id) {
  const c = new BenchClient(port);
  c.welcome = await c.handshake(id);
  return c;
}

/** Joins every client to `room` and waits until each has seen the room with all of them in it. */
export async function joinAll(clients, room) {
  const full = clients.map((c) => c.next("roomEvent", (e) => e.room === room && e.members.length === clients.length));
  for (const c of clients) c.write(encodeRequest({ $case: "joinRoom", value: { requestId: 1, room } }));
  await Promise.all(full);
}

/**
 * Seals `perSender` real envelopes from each of `ids` into `conversationId`, for all of `ids`,
 * and encodes each as a SendEnvelope frame: [sender][i] = {frame, hex (message id), bytes}.
 */
export async function sealRoom(ids, conversationId, perSender, tag) {
  const env = await dist("protocol/envelope.js");
  const { envelopeToWire } = await dist("protocol/codec.js");
  return ids.map((sender, k) => Array.from({ length: perSender }, (_, i) => {
    const { envelope } = env.sealEnvelope({
      sender, conversationId, recipients: ids, body: { kind: "text", text: `${tag} ${i} from ${k}: ${"x".repeat(120)}` },
      prev: env.ZERO_HASH, sentAtMs: Date.now(),
    });
    const frame = encodeRequest({ $case: "send", value: { envelope: envelopeToWire(envelope) } });
    return { frame, hex: envelope.header.messageId.toString("hex") };
  }));
}

export const ACCEPTED = SendStatus.SEND_STATUS_ACCEPTED;

/** The p-th percentile of an ascending array. */
export function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}
