// PostgreSQL for tests: the throwaway cluster of this run (test/global-pg.ts), and a fresh
// database per caller so test files never see each other's rows (a copy of a migrated template).
import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import pg from "pg";
import { RELAY_ID_BYTES } from "../../src/protocol/keys.js";
import { migratePg } from "../../src/server/store/pg/pg-store.js";
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

/** One query on a connection of its own, opened and ended around it (`url`: the database). */
export function pgQuery<R extends pg.QueryResultRow = any>(url: string, text: string, params: unknown[] = []): Promise<pg.QueryResult<R>> {
  return admin((c) => c.query<R>(text, params), url);
}

export interface TestDatabase {
  readonly name: string;
  readonly url: string;
  /** Drops the database (ending its connections first). */
  drop(): Promise<void>;
}

// Creating the schema costs most of a test database (~0.5-1 s with CREATE DATABASE on a busy
// machine): the store's schema is migrated ONCE per cluster into a template database, and each
// test database is a copy of it (CREATE DATABASE … TEMPLATE). The template's name carries a hash
// of the schema's source, so a cluster shared by branches with different schemas (the session's
// development cluster) never hands out a wrong one. It is made under an advisory lock (test files
// start together), accepts no connections once made (PostgreSQL copies only a database nobody is
// connected to), and is marked IS_TEMPLATE only when complete: one left half-made by a killed
// run is dropped and made again.
const TEMPLATE_LOCK = 0x5ec_7e57;
const SCHEMA_SOURCES = ["schema.ts", "schema-mls.ts"].map((f) => join(REPO_ROOT, "src", "server", "store", "pg", f));
let templateName: string | undefined;
const templates = new Map<string, Promise<string>>();

/** The migrated template's name on the cluster of `adminUrl` (made on first use). */
function migratedTemplate(adminUrl: string): Promise<string> {
  let t = templates.get(adminUrl);
  if (t === undefined) {
    t = makeTemplate(adminUrl);
    templates.set(adminUrl, t);
    t.catch(() => templates.delete(adminUrl));
  }
  return t;
}

async function makeTemplate(adminUrl: string): Promise<string> {
  templateName ??= `sc_template_${createHash("sha256").update(SCHEMA_SOURCES.map((f) => readFileSync(f)).join("\0")).digest("hex").slice(0, 16)}`;
  const name = templateName;
  await admin(async (c) => {
    await c.query("SELECT pg_advisory_lock($1)", [TEMPLATE_LOCK]);
    try {
      const r = await c.query<{ ready: boolean }>("SELECT datistemplate AS ready FROM pg_database WHERE datname = $1", [name]);
      if (r.rows[0]?.ready === true) return;
      if (r.rows.length > 0) await c.query(`DROP DATABASE ${name} WITH (FORCE)`); // half-made by a killed run
      await c.query(`CREATE DATABASE ${name}`);
      migratePg(withDatabase(adminUrl, name));
      // No connection may stay (the migration's closes asynchronously): copies would be refused.
      await c.query(`ALTER DATABASE ${name} WITH ALLOW_CONNECTIONS false`);
      await c.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", [name]);
      await c.query(`ALTER DATABASE ${name} WITH IS_TEMPLATE true`);
    } finally {
      await c.query("SELECT pg_advisory_unlock($1)", [TEMPLATE_LOCK]);
    }
  }, adminUrl);
  return name;
}

/**
 * Creates a database `sc_<random>` on the run's cluster (or on the cluster of `adminUrl`): with
 * the store's schema (a copy of the migrated template, with a relay id of its own), or `empty`
 * (the tests of the migration itself).
 */
export async function freshDatabase(adminUrl: string = pgAdminUrl(), options: { readonly empty?: boolean } = {}): Promise<TestDatabase> {
  const name = `sc_${randomBytes(6).toString("hex")}`;
  const url = withDatabase(adminUrl, name);
  if (options.empty === true) {
    await admin((c) => c.query(`CREATE DATABASE ${name}`), adminUrl);
  } else {
    const template = await migratedTemplate(adminUrl);
    await admin((c) => c.query(`CREATE DATABASE ${name} TEMPLATE ${template}`), adminUrl);
    // Every database is its own relay service: the template's relay id is not shared.
    await admin((c) => c.query("UPDATE meta SET value = $1 WHERE key = 'relay_id'", [randomBytes(RELAY_ID_BYTES)]), url);
  }
  return {
    name,
    url,
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
