// Shared pieces of the relay benchmarks, one of each:
//   - startRelayChild: the relay (or the ceiling forwarder) in a child process (_relay-host.ts);
//   - identities: many identities from the five fixture key pairs;
//   - BenchClient: the tests' raw protocol client (test/helpers/raw-session.ts) set up for load:
//     pre-encoded frames out with backpressure, deliveries and SendResults to callbacks, no
//     frame kept that nobody waits for;
//   - registerRoom / encryptRoom: a real MLS group (test/helpers/mls-room.ts) registered with a
//     fresh relay through its members' sessions, and its members' application messages
//     encrypted and encoded as SendMls frames before any clock starts (protocol v2, the only
//     one the relay speaks: PROTOCOL.md §8.3);
//   - waitFor, percentile.
import { fork } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { once } from "node:events";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { credentials } from "@grpc/grpc-js";
import { FLOW_CONTROL_WINDOW_BYTES } from "../../src/client/transport.js";
import { MlsKind, SendStatus, SessionRequest, type Delivery, type SendResult, type Welcome } from "../../src/gen/securechat/v1/chat.js";
import { identityFromPrivateKeys, PLAINTEXT_CHANNEL_BINDING, type PrivateIdentity } from "../../src/protocol/keys.js";
import type { RelayLimits } from "../../src/server/limits.js";
import type { RelayStats, StartRelayOptions } from "../../src/server/relay.js";
import { fixtureKeys } from "../../test/helpers/identities.js";
import { mlsKey, registerMlsRoom, type MlsRoom } from "../../test/helpers/mls-room.js";
import { REPO_ROOT } from "../../test/helpers/paths.js";
import type { RequestFrame, ResponseFrame } from "../../test/helpers/raw-frames.js";
import { asBuffer } from "../../test/helpers/raw-service.js";
import { RawSession, type RawTransport } from "../../test/helpers/raw-session.js";
import type { CeilingStats, HostReply, HostRequest, MemoryFigures } from "./_relay-host.js";

export const root = REPO_ROOT;
const here = dirname(fileURLToPath(import.meta.url));

/** What a suite's run() gets. */
export interface RunOptions {
  readonly runs: number;
  readonly quick: boolean;
  readonly log: (message: string) => void;
}

/** One measured figure: one value per run. */
export interface Row {
  readonly metric: string;
  readonly unit: string;
  readonly values: number[];
  /** The target is met when the median is on this side of it. */
  readonly better: "lower" | "higher";
  readonly target?: number;
  readonly note?: string;
}

/** What scripts/bench/<suite>.ts exports. */
export interface Suite {
  readonly name: string;
  readonly description: string;
  run(options: RunOptions): Promise<Row[]>;
}

/**
 * Node flags of the chat-relay bin (its shebang, src/server/main.ts), for the relay and, to
 * compare like with like, the ceiling. test/unit/relay-bin.test.ts keeps the two in step.
 */
export const RELAY_NODE_FLAGS = ["--max-semi-space-size=8"];
/** The environment the bin's shebang sets (glibc malloc tunables, read before the process starts): none now. */
export const RELAY_NODE_ENV: Readonly<Record<string, string>> = {};

/** Options of the relay in the child: startRelay's, less what the host sets itself. */
export type RelayChildOptions = Partial<Pick<StartRelayOptions, "commitMode" | "handshakeTimeoutMs">> & {
  readonly dataDir?: string;
  readonly limits?: Partial<RelayLimits>;
};

/** Node flags for the child. */
export interface ChildFlags {
  readonly execArgv?: readonly string[];
  readonly gc?: boolean;
  /** Extra environment for the child (e.g. glibc malloc tunables, which must be set before it starts). */
  readonly env?: Readonly<Record<string, string>>;
}

export interface RelayChild<S extends RelayStats | CeilingStats = RelayStats | CeilingStats> {
  readonly port: number;
  readonly pid: number;
  /** Memory of the child, after forced GCs when started with gc: true. */
  mem(): Promise<MemoryFigures>;
  /** relay.stats() (the ceiling: its stream count as sessions) and the child's CPU time so far. */
  stats(): Promise<{ stats: S; cpuMs: number }>;
  stop(): Promise<void>;
}

/**
 * Starts the relay ("relay", options passed to startRelay) or the ceiling ("ceiling") in a child
 * process. `execArgv` adds node flags to the child (e.g. ["--cpu-prof", "--cpu-prof-dir", dir]
 * to profile it); `gc: true` exposes gc() so mem() can collect before it measures (only memory
 * benchmarks need it; the others run the child with node's defaults).
 */
export function startRelayChild(mode: "relay", opts?: RelayChildOptions, o?: ChildFlags): Promise<RelayChild<RelayStats>>;
export function startRelayChild(mode: "ceiling", opts?: RelayChildOptions, o?: ChildFlags): Promise<RelayChild<CeilingStats>>;
export function startRelayChild(mode: "relay" | "ceiling", opts?: RelayChildOptions, o?: ChildFlags): Promise<RelayChild>;
export async function startRelayChild(mode: "relay" | "ceiling", opts: RelayChildOptions = {}, { execArgv = [], gc = false, env }: ChildFlags = {}): Promise<RelayChild> {
  const child = fork(join(here, "_relay-host.js"), [mode, JSON.stringify(opts)], {
    env: { ...process.env, ...RELAY_NODE_ENV, ...env },
    execArgv: [...(gc ? ["--expose-gc"] : []), ...RELAY_NODE_FLAGS, ...execArgv], stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const exited = once(child, "exit");
  const { port } = await new Promise<HostReply>((resolve, reject) => {
    child.once("message", (m) => resolve(m as HostReply));
    child.once("exit", (code) => reject(new Error(`relay host (${mode}) exited with ${code} before listening`)));
  });
  if (port === undefined || child.pid === undefined) throw new Error(`relay host (${mode}) did not say its port`);
  let nextId = 1;
  const ask = async (cmd: HostRequest["cmd"]): Promise<HostReply> => {
    const id = nextId++;
    const answer = new Promise<HostReply>((resolve, reject) => {
      const onMessage = (m: HostReply): void => {
        if (m?.id !== id) return;
        child.off("message", onMessage);
        resolve(m);
      };
      child.on("message", onMessage);
      exited.then(() => reject(new Error(`relay host (${mode}) exited while asked for ${cmd}`)), reject);
    });
    child.send({ cmd, id } satisfies HostRequest);
    return answer;
  };
  return {
    port,
    pid: child.pid,
    async mem() {
      const { memory } = await ask("mem");
      if (memory === undefined) throw new Error("relay host: no memory figures");
      return memory;
    },
    async stats() {
      const { stats, cpuMs } = await ask("stats");
      if (stats === undefined || cpuMs === undefined) throw new Error("relay host: no stats");
      return { stats, cpuMs };
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.send({ cmd: "stop", id: 0 } satisfies HostRequest);
      const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/**
 * Relay limits for benchmarks whose many users all come from 127.0.0.1: the per-address
 * registration bucket and handshake share (PROTOCOL.md §13.3) would otherwise shed a connect storm
 * from one address, which is what they are for.
 */
export const MANY_USERS_FROM_LOOPBACK = { registrationBurst: 1_000_000, registrationsPerHour: 1_000_000_000, maxHandshakesPerAddress: 512 } as const;

/**
 * n identities named u0000.., each with a signing key of its own (a relay binds one name per
 * signing key) and an RSA key from the fixtures (RSA keys are slow to make; the relay does not
 * care whether two names share one).
 */
export function identities(n: number, prefix = "u"): PrivateIdentity[] {
  const encKeys = ["alice", "bob", "carol", "dave", "mallory"].map((f) => fixtureKeys(f)[1]!);
  return Array.from({ length: n }, (_, i) =>
    identityFromPrivateKeys(`${prefix}${String(i).padStart(4, "0")}`, generateKeyPairSync("ed25519").privateKey, encKeys[i % encKeys.length]!));
}

/** Encodes one client frame as the Buffer grpc-js writes. */
export function encodeRequest(frame: RequestFrame): Buffer {
  return asBuffer(SessionRequest.encode({ frame }).finish());
}

/** Plaintext, like the relay host, with room for a Welcome that lists thousands of users. */
const BENCH_TRANSPORT: RawTransport = {
  creds: credentials.createInsecure(),
  // The real client's receive window (src/client/transport.ts), for the relay's and the forwarder's clients alike.
  options: { "grpc.max_receive_message_length": 64 * 1024 * 1024, "grpc-node.flow_control_window": FLOW_CONTROL_WINDOW_BYTES },
  channelBinding: PLAINTEXT_CHANNEL_BINDING,
};

/**
 * A raw session on its own connection (the tests' RawSession). Bytes go out as given
 * (writeFrame() honours backpressure); what comes in goes to onRaw(bytes, at), which by default
 * decodes a SessionResponse: DeliverBatches go to onDeliver(items, at) (acked at once when
 * autoAck), SendResults to onSendResult, anything else to whoever waits for it with next().
 * Against the ceiling, set onRaw: it forwards client frames, not relay frames.
 */
export class BenchClient extends RawSession {
  override readonly clientVersion = "bench";
  autoAck = true;
  onDeliver: (items: Delivery[], at: number) => void = () => {};
  onSendResult: (result: SendResult) => void = () => {};
  /** The Welcome, once connect() has it (relay-scale drops it: each lists everyone online). */
  welcome: Welcome | undefined;

  constructor(port: number) {
    super(`127.0.0.1:${port}`, BENCH_TRANSPORT);
    this.keepFrames = false;
    this.copyWrites = false;
    this.waitMs = 30_000;
  }

  protected override receive(f: ResponseFrame, at?: number): void {
    if (f.$case === "deliver") {
      if (this.autoAck) this.writeRaw(encodeRequest({ $case: "ack", value: { seqs: f.value.items.map((i) => i.seq) } }));
      this.onDeliver(f.value.items, at ?? performance.now());
    } else if (f.$case === "sendResult") {
      this.onSendResult(f.value);
    } else {
      super.receive(f);
    }
  }

  /** Writes one encoded frame: undefined at once, or a promise of grpc-js's 'drain' when its buffer is full. */
  writeFrame(bytes: Buffer): Promise<void> | undefined {
    return this.writeRaw(bytes) ? undefined : this.drained();
  }
}

/**
 * Connects and completes the handshake as a protocol v2 session (PROTOCOL.md §8.3; the relay
 * refuses any other protocol_version).
 */
export async function connect(port: number, id: PrivateIdentity, protocolVersion = 2): Promise<BenchClient> {
  const c = new BenchClient(port);
  c.welcome = await c.handshake(id, c.waitMs, { protocolVersion });
  return c;
}

/** Polls `fn` every 20 ms until it is true; fails after `timeoutMs` saying what it waited for. */
export async function waitFor(what: string, fn: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Registers `room` (made in-process by makeMlsRoom for these members, in this order) with the
 * relay through clients[0], its creator (PublishGroupInfo at epoch 0, then the commit adding
 * the others with its Welcome: PROTOCOL.md §8.1, §8.2), and waits until every other member got
 * its Welcome through its queue (acked when autoAck): the set-up traffic is over when this
 * resolves. The clients' onDeliver is replaced while it runs; set your own afterwards.
 */
export async function registerRoom(clients: readonly BenchClient[], room: MlsRoom): Promise<void> {
  if (clients.length !== room.groups.length) throw new Error(`registerRoom: ${clients.length} sessions for a group of ${room.groups.length}`);
  let welcomes = 0;
  for (const c of clients.slice(1)) {
    c.onDeliver = (items) => {
      for (const item of items) if (item.mls?.kind === MlsKind.MLS_KIND_WELCOME) welcomes++;
    };
  }
  await registerMlsRoom(clients[0]!, room);
  await waitFor(`${clients.length - 1} Welcomes to ${room.conversationId} through the queues`, () => welcomes >= clients.length - 1);
}

/** One encrypted message as a SendMls frame, and its key (its AEAD tag in hex: mlsKey). */
export interface SealedFrame {
  readonly frame: Buffer;
  readonly hex: string;
}

/**
 * Each member's application messages in `room` (perSender each, a ~140-byte text, padded by the
 * wrapper), encrypted ahead with the member's own epoch-1 group and encoded as SendMls frames:
 * [sender][i]. The relay cannot tell them from a client's; every fresh relay (a fresh data dir)
 * that registered the room takes them as new.
 */
export async function encryptRoom(room: MlsRoom, perSender: number, tag: string): Promise<SealedFrame[][]> {
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

/** The application messages of a Delivery list (Welcomes, commits and proposals left out). */
export function applicationItems(items: readonly Delivery[]): Delivery[] {
  return items.filter((i) => i.mls?.kind === MlsKind.MLS_KIND_APPLICATION);
}

export const ACCEPTED = SendStatus.SEND_STATUS_ACCEPTED;

/** The p-th percentile of an ascending array. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
