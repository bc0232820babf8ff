// The peers suite's workload (scripts/bench/peers.ts), the same for every server; only the
// transport differs. It follows the fan-out harness beside the project (../shared/bench/peers/,
// README.md and loadgen.mjs there), rewritten here:
//   - K clients in one room; each sends n messages per phase (warm-up ⌈M/10⌉, then M timed);
//   - window W: client i may have at most W of its own messages that its ring neighbour
//     (i + 1 mod K) has not received yet, and it also stops on transport backpressure (a write
//     that returns false waits for 'drain');
//   - every receiver checks each sender's sequence numbers: a loss, duplicate, reorder, echo or
//     message of another phase fails the run at once, with what was seen;
//   - latency of each delivery: receive time − send time, one process, one clock
//     (performance.now()); the phase ends when every delivery (and, for the relay, every
//     SendResult) arrived.
// Also the process plumbing of the suite: pinning with taskset, a process's CPU ticks from
// /proc/PID/stat, a free loopback port.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer } from "node:net";

/** What the engine asks a transport: write message `seq` of `sender` (false: wait for its 'drain'). */
export interface PeerWriter {
  send(sender: number, phase: number, seq: number): boolean;
  /** Around a burst of sends by one client (IRC corks its socket, as the harness does). */
  cork?(sender: number): void;
  uncork?(sender: number): void;
}

export interface PhaseResult {
  readonly deliveries: number;
  readonly seconds: number;
  /** Latencies of every delivery in ms, ascending. */
  readonly latencies: Float64Array;
}

/**
 * The ring-window load over K clients. A transport wires its receive path to deliver(),
 * its 'drain' events to drained() and, for the relay, its SendResults to result(); errors
 * (a closed connection, a refusal, a dead server) to fail().
 */
export class RingLoad {
  private phase = 0;
  private n = 0;
  private expected = 0;
  private expectedResults = 0;
  private got = 0;
  private results = 0;
  private readonly acked: Int32Array;
  private readonly sent: Int32Array;
  private readonly blocked: Uint8Array;
  private readonly nextSeq: Int32Array;
  private sentAt = new Float64Array(0);
  private latencies = new Float64Array(0);
  private started = 0;
  private settle: { resolve: (r: PhaseResult) => void; reject: (e: Error) => void } | undefined;
  private failure: Error | undefined;

  constructor(readonly k: number, readonly window: number, private readonly writer: PeerWriter, private readonly withResults = false) {
    this.acked = new Int32Array(k);
    this.sent = new Int32Array(k);
    this.blocked = new Uint8Array(k);
    this.nextSeq = new Int32Array(k * k);
  }

  /** The phase being run (1 = warm-up, 2 = timed), 0 before any. */
  get currentPhase(): number {
    return this.phase;
  }

  /** Sends n messages from every client; resolves when all K·(K−1)·n deliveries arrived. */
  runPhase(n: number, timeoutMs: number): Promise<PhaseResult> {
    if (this.failure) return Promise.reject(this.failure);
    const { k } = this;
    this.phase++;
    this.n = n;
    this.got = 0;
    this.results = 0;
    this.expected = k * (k - 1) * n;
    this.expectedResults = this.withResults ? k * n : 0;
    this.acked.fill(0);
    this.sent.fill(0);
    this.blocked.fill(0);
    this.nextSeq.fill(0);
    this.sentAt = new Float64Array(k * n);
    this.latencies = new Float64Array(this.expected);
    const done = new Promise<PhaseResult>((resolve, reject) => {
      this.settle = { resolve, reject };
    });
    const timer = setTimeout(() => this.fail(new Error(`phase ${this.phase} not over after ${timeoutMs / 1000} s: ${this.got} of ${this.expected} deliveries`
      + (this.withResults ? `, ${this.results} of ${this.expectedResults} SendResults` : ""))), timeoutMs);
    this.started = performance.now();
    for (let i = 0; i < k; i++) this.pump(i);
    return done.finally(() => clearTimeout(timer));
  }

  /** Client i's transport can take writes again. */
  drained(i: number): void {
    this.blocked[i] = 0;
    this.pump(i);
  }

  /**
   * Receiver `to` got message `seq` of `from` in `phase` at `at`; `sentAt` when the message
   * carries its send time (IRC), else the engine's record of when it was written.
   */
  deliver(to: number, phase: number, from: number, seq: number, at: number, sentAt?: number): void {
    if (this.settle === undefined) {
      this.fail(new Error(`client ${to}: a message from ${from} (phase ${phase}, seq ${seq}) outside a phase`));
      return;
    }
    if (phase !== this.phase) {
      this.fail(new Error(`client ${to}: a message of phase ${phase} from ${from} (seq ${seq}) during phase ${this.phase}`));
      return;
    }
    if (from === to) {
      this.fail(new Error(`client ${to}: its own message ${seq} came back`));
      return;
    }
    const key = from * this.k + to;
    if (this.nextSeq[key] !== seq) {
      const want = this.nextSeq[key]!;
      this.fail(new Error(`client ${to}: from ${from} seq ${seq} where ${want} was next (${seq > want ? "loss or reorder" : "duplicate or reorder"})`));
      return;
    }
    this.nextSeq[key] = seq + 1;
    this.latencies[this.got++] = at - (sentAt ?? this.sentAt[from * this.n + seq]!);
    if (to === (from + 1) % this.k) {
      this.acked[from]!++;
      this.pump(from);
    }
    this.check(at);
  }

  /** One SendResult arrived (relay only): accepted, or a refusal that fails the run. */
  result(accepted: boolean, detail: string, at: number): void {
    if (!accepted) {
      this.fail(new Error(`the relay refused a message: ${detail}`));
      return;
    }
    this.results++;
    this.check(at);
  }

  fail(e: Error): void {
    this.failure ??= e;
    const s = this.settle;
    this.settle = undefined;
    s?.reject(e);
  }

  /** The first failure, if any. */
  get failed(): Error | undefined {
    return this.failure;
  }

  private check(at: number): void {
    if (this.got === this.expected && this.results === this.expectedResults && this.settle) {
      const s = this.settle;
      this.settle = undefined;
      s.resolve({ deliveries: this.got, seconds: (at - this.started) / 1000, latencies: this.latencies.sort() });
    }
  }

  private pump(i: number): void {
    if (this.blocked[i] || this.sent[i]! >= this.n || this.failure) return;
    this.writer.cork?.(i);
    while (this.sent[i]! < this.n && this.sent[i]! - this.acked[i]! < this.window) {
      const seq = this.sent[i]!++;
      this.sentAt[i * this.n + seq] = performance.now();
      if (!this.writer.send(i, this.phase, seq)) {
        this.blocked[i] = 1;
        break;
      }
    }
    this.writer.uncork?.(i);
  }
}

/** The q-quantile of an ascending array (the harness's: the element at ⌊q·n⌋). */
export function quantile(sorted: Float64Array, q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/** The `<phase> <sender> <seq> ` head of a payload padded with 'x' to `size` bytes (ASCII). */
export function padPayload(head: string, size: number): string {
  if (head.length > size) throw new Error(`payload head longer than ${size} bytes: ${head}`);
  return head + "x".repeat(size - head.length);
}

// ---------- processes ----------

const TASKSET = ((): string | undefined => {
  try {
    execFileSync("taskset", ["-V"], { stdio: "ignore" });
    return "taskset";
  } catch {
    return undefined;
  }
})();

/** Whether the suite can pin: taskset present and CPUs 0 and 1 both ours. */
export function pinning(): { readonly ok: true } | { readonly ok: false; readonly why: string } {
  if (TASKSET === undefined) return { ok: false, why: "taskset not found (util-linux): the server and the load generator were not pinned" };
  const mask = affinity(process.pid);
  if ((BigInt(`0x${mask}`) & 3n) !== 3n) return { ok: false, why: `this process may not run on both CPU 0 and 1 (affinity mask ${mask}): nothing was pinned` };
  return { ok: true };
}

/** A process's affinity mask (hex, as taskset prints it). */
export function affinity(pid: number): string {
  const out = execFileSync("taskset", ["-p", String(pid)], { encoding: "utf8" });
  const m = /mask:\s*([0-9a-f]+)/i.exec(out);
  if (m === null) throw new Error(`taskset -p ${pid}: unexpected output ${out}`);
  return m[1]!;
}

/** Pins every thread of `pid` to `cpu` (threads it starts later inherit it). */
export function pinTo(pid: number, cpu: number): void {
  execFileSync("taskset", ["-a", "-p", "-c", String(cpu), String(pid)], { stdio: "ignore" });
}

/** Gives every thread of `pid` the affinity `mask` (hex) back. */
export function restoreAffinity(pid: number, mask: string): void {
  execFileSync("taskset", ["-a", "-p", mask, String(pid)], { stdio: "ignore" });
}

/** Clock ticks per second of /proc/PID/stat (getconf CLK_TCK; 100 on Linux x86-64). */
export const CLK_TCK = ((): number => {
  try {
    const v = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());
    return Number.isFinite(v) && v > 0 ? v : 100;
  } catch {
    return 100;
  }
})();

/** utime + stime of a process, all its threads, in clock ticks (NaN when it is gone). */
export function cpuTicks(pid: number): number {
  try {
    const st = readFileSync(`/proc/${pid}/stat`, "latin1");
    const f = st.slice(st.lastIndexOf(")") + 2).split(" "); // f[11] = utime, f[12] = stime
    return Number(f[11]) + Number(f[12]);
  } catch {
    return Number.NaN;
  }
}

/** Whether a process runs (not gone, not a zombie waiting to be reaped). */
export function processAlive(pid: number): boolean {
  try {
    const st = readFileSync(`/proc/${pid}/stat`, "latin1");
    const state = st[st.lastIndexOf(")") + 2];
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

/** A loopback port that was free a moment ago. */
export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve, reject) => {
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", resolve);
  });
  const address = srv.address();
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  if (address === null || typeof address === "string") throw new Error("freePort: no port");
  return address.port;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
