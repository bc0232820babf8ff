// The real chat-tui bin (dist/tui/main.js) in a pseudo-terminal made by script(1), for the
// benchmarks that must see what a terminal sees: every byte the client writes to the terminal,
// its RSS (read from /proc), the time to its first frame. Keys go in through the pty as typed.
import { spawn, type ChildProcessByStdio } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable, Writable } from "node:stream";
import { installFixtureKey } from "../../test/helpers/identities.js";
import { TUI_BIN } from "../../test/helpers/relay-process.js";

/** The real chat-tui bin, as npm run build made it. */
export const BIN = TUI_BIN;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** As a user runs it: no NODE_ENV (the UI then runs React's production build). */
export function withoutNodeEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const { NODE_ENV: _unset, ...rest } = env;
  return rest;
}

/** A fresh key directory holding the committed test key of `username`. */
export function freshKeyDir(username = "alice"): { dir: string; keys: string } {
  const dir = mkdtempSync(join(tmpdir(), "sc-bench-tui-"));
  const keys = join(dir, "keys");
  installFixtureKey(keys, username);
  return { dir, keys };
}

export interface PtyTuiOptions {
  readonly port: number;
  readonly dir: string;
  readonly keys: string;
  readonly username?: string;
  readonly columns?: number;
  readonly rows?: number;
  /** Node flags instead of the bin's shebang (undefined: run the bin as it is). */
  readonly nodeFlags?: readonly string[] | undefined;
}

export class PtyTui {
  /** Every byte the client wrote to the terminal (after the pty's own newline translation). */
  bytes = 0;
  /** The text written since the last mark() (kept whole: the benchmarks read it back). */
  output = "";
  /** performance.now() of the latest write. */
  lastWriteAt = 0;
  readonly startedAt: number;
  readonly #child: ChildProcessByStdio<Writable, Readable, Readable>;
  readonly #exited: Promise<unknown>;
  readonly #pidFile: string;

  /**
   * Starts `chat-tui alice` against the relay on `port`, in a terminal `columns` x `rows`.
   * `keys` is a key dir from freshKeyDir (its parent holds the pid file, log and state).
   */
  constructor({ port, dir, keys, username = "alice", columns = 120, rows = 40, nodeFlags }: PtyTuiOptions) {
    this.#pidFile = join(dir, "tui.pid");
    const node = nodeFlags === undefined ? BIN : `${process.execPath} ${nodeFlags.join(" ")} ${BIN}`;
    // `exec` keeps the shell's pid for node, so the pid file names the client's process.
    const command = `stty cols ${columns} rows ${rows}; echo $$ > ${this.#pidFile}; exec ${node} ${username} --server 127.0.0.1:${port} --key-dir ${keys} --log-file ${join(dir, `${username}.log`)} --no-bell`;
    this.startedAt = performance.now();
    this.#child = spawn("script", ["-qfec", command, "/dev/null"], {
      stdio: ["pipe", "pipe", "pipe"],
      env: withoutNodeEnv({ ...process.env, TERM: "xterm-256color", XDG_STATE_HOME: join(dir, "state") }),
    });
    this.#exited = new Promise((resolve) => this.#child.on("exit", resolve));
    this.#child.stdout.on("data", (chunk: Buffer) => {
      this.bytes += chunk.length;
      this.output += chunk.toString("utf8");
      this.lastWriteAt = performance.now();
    });
  }

  /** The client's own pid (not script's). */
  pid(): number {
    return Number(readFileSync(this.#pidFile, "utf8").trim());
  }

  /** The client's resident set size in MB, from /proc. */
  rssMb(): number {
    const status = readFileSync(`/proc/${this.pid()}/status`, "utf8");
    const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1]);
    return kb / 1024;
  }

  /** Starts counting afresh: returns the byte count so far. */
  mark(): number {
    this.output = "";
    return this.bytes;
  }

  type(text: string): void {
    this.#child.stdin.write(text);
  }

  /** Waits until `test(output)` holds (output since the last mark). */
  async waitFor(test: (output: string) => boolean, what: string, timeoutMs = 20_000): Promise<number> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      if (test(this.output)) return performance.now();
      if (performance.now() > deadline) throw new Error(`chat-tui: timed out waiting for ${what}; it wrote: ${JSON.stringify(this.output.slice(-400))}`);
      if (this.#child.exitCode !== null) throw new Error(`chat-tui exited (${this.#child.exitCode}) while waiting for ${what}: ${JSON.stringify(this.output.slice(-400))}`);
      await sleep(2);
    }
  }

  /** Waits until the client has written nothing for `quietMs` (its frame for the last input is complete). */
  async settle(quietMs = 120, timeoutMs = 10_000): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (performance.now() - this.lastWriteAt < quietMs) {
      if (performance.now() > deadline) throw new Error("chat-tui kept writing");
      await sleep(10);
    }
  }

  /** Leaves as a user would (Ctrl-C), killing it if it does not go in time. */
  async quit(): Promise<void> {
    this.#child.stdin.write("\u0003");
    const done = await Promise.race([this.#exited.then(() => true), sleep(10_000).then(() => false)]);
    if (!done) this.#child.kill("SIGKILL");
  }
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
