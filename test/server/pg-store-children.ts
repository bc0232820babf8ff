// Other relays' stores in their own processes (pg-store-child.ts), for the PostgreSQL store's
// concurrency tests: SyncPg blocks its thread, so stores that really run at the same time live in
// separate processes. Each child loads, says "ready", waits for go(), does one thing and prints
// its result.
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { waitUntil } from "../helpers/wait.js";

const DIR = import.meta.dirname;

export interface StoreChild {
  readonly proc: ChildProcess;
  /** Lets it do its one thing. */
  go(): void;
  /** Its result line, parsed (waits for it). */
  result(timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Whether it printed its result already. */
  readonly done: boolean;
  kill(): void;
}

const running = new Set<ChildProcess>();

/** Kills the children still running (afterEach). */
export function killStoreChildren(): void {
  for (const p of running) p.kill("SIGKILL");
  running.clear();
}

/** Starts a child and waits until it has loaded (so go() starts the work at once). */
export async function startStoreChild(args: readonly string[]): Promise<StoreChild> {
  const proc = spawn(process.execPath, [
    "--experimental-transform-types", "--no-warnings", "--import", join(DIR, "pg-store-child-hooks.mjs"), join(DIR, "pg-store-child.ts"), ...args,
  ], { stdio: ["pipe", "pipe", "pipe"] });
  running.add(proc);
  proc.on("exit", () => running.delete(proc));
  const lines: string[] = [];
  let err = "";
  let buffered = "";
  proc.stdout!.setEncoding("utf8").on("data", (d: string) => {
    buffered += d;
    const parts = buffered.split("\n");
    buffered = parts.pop()!;
    lines.push(...parts);
  });
  proc.stderr!.setEncoding("utf8").on("data", (d: string) => {
    err += d;
  });
  await waitUntil(() => lines.includes("ready") || (proc.exitCode !== null && !lines.includes("ready") ? Promise.reject(new Error(`the child exited: ${err}`)) : false), "the store child to load", 20_000);
  const resultLine = () => lines.find((l) => l !== "ready");
  return {
    proc,
    go: () => proc.stdin!.write("go\n"),
    result: async (timeoutMs = 20_000) => JSON.parse(await waitUntil(resultLine, `the store child's result (stderr: ${err})`, timeoutMs)) as Record<string, unknown>,
    get done() {
      return resultLine() !== undefined;
    },
    kill: () => proc.kill("SIGKILL"),
  };
}
