// Runs the real chat-relay binary (dist/server/main.js) and learns its port from its JSON log.
// With SECURECHAT_TEST_STORE=postgres (test/helpers/pg.ts) and no --store of the caller's own, the
// relay runs with `--store URL` on a database of its data dir: started again on the same data dir
// (kill -9 and restart), it finds the same rows; the database goes after the test file.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll } from "vitest";
import { REPO_ROOT } from "./paths.js";
import { databaseForDataDir, dropDataDirDatabases, testStoreKind } from "./pg.js";
import { waitUntil } from "./wait.js";

export const ROOT = REPO_ROOT;
export const RELAY_BIN = join(ROOT, "dist", "server", "main.js");
export const TUI_BIN = join(ROOT, "dist", "tui", "main.js");

// Databases of data dirs the test file did not own (it removes those dirs itself) go after the
// file. Only under vitest: scripts/bench imports this module too.
if (process.env["VITEST"] !== undefined) afterAll(dropDataDirDatabases);

export function assertBuilt(): void {
  if (!existsSync(RELAY_BIN) || !existsSync(TUI_BIN)) throw new Error("dist/ is missing: run npm run build (npm test does it first)");
}

/** Whether process `pid` is running (a zombie, exited but not reaped, counts as gone). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // Exited but not reaped (its starter is gone and this container's init may not reap): gone.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

export interface RelayProcess {
  readonly port: number;
  readonly proc: ChildProcess;
  /** Parsed JSON log lines so far. */
  readonly logs: Array<Record<string, unknown>>;
  /** The PostgreSQL store's URL when the relay runs on one (--store), else undefined. */
  readonly storeUrl: string | undefined;
  /** Sends a signal and waits for the exit code (null when killed by the signal). */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** The --store URL in these arguments (`--store URL` or `--store=URL`), if any. */
function storeArg(args: readonly string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--store") return args[i + 1];
    if (args[i]!.startsWith("--store=")) return args[i]!.slice("--store=".length);
  }
  return undefined;
}

export async function startRelayProcess(dataDir: string, extraArgs: string[] = [], port = 0): Promise<RelayProcess> {
  assertBuilt();
  let args = extraArgs;
  let storeUrl = storeArg(extraArgs);
  if (storeUrl === undefined && testStoreKind() === "postgres") {
    storeUrl = (await databaseForDataDir(dataDir)).url;
    args = ["--store", storeUrl, ...extraArgs];
  }
  const proc = spawn(process.execPath, [RELAY_BIN, "--host", "127.0.0.1", "--port", String(port), "--data-dir", dataDir, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  const logs: Array<Record<string, unknown>> = [];
  let buffered = "";
  let exited: number | null | undefined;
  const exit = new Promise<number | null>((resolve) => proc.on("exit", (code) => { exited = code; resolve(code); }));
  const onText = (d: Buffer) => {
    buffered += d.toString("utf8");
    let nl: number;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      try {
        logs.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        logs.push({ text: line });
      }
    }
  };
  proc.stderr.on("data", onText);
  proc.stdout.on("data", onText);
  const bound = await waitUntil(() => {
    if (exited !== undefined) throw new Error(`chat-relay exited with ${exited}: ${JSON.stringify(logs)}`);
    const start = logs.find((l) => typeof l["port"] === "number" && String(l["event"] ?? "").includes("start"));
    return start ? Number(start["port"]) : undefined;
  }, "chat-relay to log its port", 15_000);
  return {
    port: bound,
    proc,
    logs,
    storeUrl,
    async stop(signal: NodeJS.Signals = "SIGTERM") {
      if (exited !== undefined) return exited;
      proc.kill(signal);
      return exit;
    },
  };
}
