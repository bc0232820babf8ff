// PostgreSQL for tests: the throwaway cluster of this run (test/global-pg.ts), and a fresh
// database per caller so test files never see each other's rows.
import { randomBytes } from "node:crypto";
import pg from "pg";

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

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: pgAdminUrl() });
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

/** Creates an empty database `sc_<random>` on the run's cluster. */
export async function freshDatabase(): Promise<TestDatabase> {
  const name = `sc_${randomBytes(6).toString("hex")}`;
  await admin((c) => c.query(`CREATE DATABASE ${name}`));
  return {
    name,
    url: withDatabase(pgAdminUrl(), name),
    drop: () => admin(async (c) => {
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    }),
  };
}
