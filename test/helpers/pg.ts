// PostgreSQL for tests: the throwaway cluster of this run (test/global-pg.ts), and a fresh
// database per caller so test files never see each other's rows.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import pg from "pg";
import { REPO_ROOT } from "./paths.js";

/** The admin URL of the run's cluster (postgres database). */
export function pgAdminUrl(): string {
  const url = process.env["SECURECHAT_TEST_PG"];
  if (url === undefined) throw new Error("SECURECHAT_TEST_PG is not set: test/global-pg.ts did not run");
  return url;
}

/** The cluster's data dir when this run started it (scripts/pg-cluster.sh restart DIR), else undefined. */
export function pgClusterDir(): string | undefined {
  return process.env["SECURECHAT_TEST_PG_DIR"];
}

function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

async function admin<T>(fn: (c: pg.Client) => Promise<T>, url: string = pgAdminUrl()): Promise<T> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

export interface TestDatabase {
  readonly name: string;
  readonly url: string;
  /** Drops the database (ending its connections first). */
  drop(): Promise<void>;
}

/** Creates an empty database `sc_<random>` on the run's cluster (or on the cluster of `adminUrl`). */
export async function freshDatabase(adminUrl: string = pgAdminUrl()): Promise<TestDatabase> {
  const name = `sc_${randomBytes(6).toString("hex")}`;
  await admin((c) => c.query(`CREATE DATABASE ${name}`), adminUrl);
  return {
    name,
    url: withDatabase(adminUrl, name),
    drop: () => admin(async (c) => {
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    }, adminUrl),
  };
}

/**
 * Which store the relay test harness runs relays on: "sqlite" (the default, relay.db in the data
 * dir) or "postgres" (SECURECHAT_TEST_STORE=postgres: a fresh database per data dir on the run's
 * cluster). The vitest project "postgres" sets it (vitest.config.ts).
 */
export type TestStoreKind = "sqlite" | "postgres";

export function testStoreKind(): TestStoreKind {
  const v = process.env["SECURECHAT_TEST_STORE"];
  if (v === undefined || v === "" || v === "sqlite") return "sqlite";
  if (v === "postgres") return "postgres";
  throw new Error(`SECURECHAT_TEST_STORE must be "sqlite" or "postgres", not ${JSON.stringify(v)}`);
}

// One database per relay data dir for this test file: a relay restarted on the same data dir (a
// restart test, a kill -9 and start again) finds the same rows, as it would find relay.db.
const byDataDir = new Map<string, Promise<TestDatabase>>();

/** The database of the relay whose data dir is `dataDir` (created on first use). */
export function databaseForDataDir(dataDir: string): Promise<TestDatabase> {
  let db = byDataDir.get(dataDir);
  if (db === undefined) {
    db = freshDatabase();
    byDataDir.set(dataDir, db);
    // A failed CREATE must not stick: the next caller tries again.
    db.catch(() => byDataDir.delete(dataDir));
  }
  return db;
}

/** Drops the database of this data dir, if one was made (the data dir's owner cleans up). */
export async function dropDatabaseOfDataDir(dataDir: string): Promise<void> {
  const db = byDataDir.get(dataDir);
  if (db === undefined) return;
  byDataDir.delete(dataDir);
  await (await db).drop();
}

/** Drops every data dir's database still held (the harness calls it after each test file). */
export async function dropDataDirDatabases(): Promise<void> {
  const dirs = [...byDataDir.keys()];
  const errors: unknown[] = [];
  for (const d of dirs) {
    try {
      await dropDatabaseOfDataDir(d);
    } catch (e) {
      errors.push(e);
    }
  }
  if (errors.length > 0) throw new Error(`could not drop ${errors.length} test database(s): ${String(errors[0])}`);
}

const PG_CLUSTER_SCRIPT = join(REPO_ROOT, "scripts", "pg-cluster.sh");
const run = promisify(execFile);

/** Whether nothing listens on 127.0.0.1:port now. */
function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once("error", () => resolve(false));
    s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
  });
}

/** A PostgreSQL cluster of one test's own (tests that stop or restart the database). */
export interface PrivateCluster {
  /** Its `postgres` database (the test's to use). */
  readonly url: string;
  readonly dir: string;
  /** Fast stop, keeping the data: the database is down until up(). */
  down(): Promise<void>;
  /** Starts again on the same data (returns once it accepts connections). */
  up(): Promise<void>;
  /** down() + up() in one go. */
  restart(): Promise<void>;
  /** Stops it and deletes its dir (idempotent). */
  stop(): Promise<void>;
}

/**
 * Starts a private cluster (scripts/pg-cluster.sh) on a free port of 56000-56999, picked from the
 * process id: never the run's shared cluster, which no test may stop.
 */
export async function startPrivateCluster(): Promise<PrivateCluster> {
  const dir = mkdtempSync(join(tmpdir(), "sc-pg-private-"));
  const script = (cmd: string, ...args: string[]) => run("bash", [PG_CLUSTER_SCRIPT, cmd, dir, ...args], { encoding: "utf8" });
  let url: string | undefined;
  let lastError: unknown;
  for (let i = 0; i < 20 && url === undefined; i++) {
    const port = 56_000 + ((process.pid + i * 37) % 1000);
    if (!(await portFree(port))) continue;
    try {
      url = (await script("start", String(port))).stdout.trim();
    } catch (e) {
      lastError = e;
      // A port taken between the probe and the bind: start over in a clean dir.
      await script("stop").catch(() => undefined);
    }
  }
  if (url === undefined) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`could not start a private PostgreSQL cluster on a port of 56000-56999: ${String((lastError as { stderr?: string } | undefined)?.stderr ?? lastError ?? "every port tried was busy")}`);
  }
  let stopped = false;
  return {
    url,
    dir,
    down: async () => { await script("down"); },
    up: async () => { await script("up"); },
    restart: async () => { await script("restart"); },
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await script("stop");
    },
  };
}
