// chat-relay on a shared PostgreSQL database (`--store postgres://…` or SECURECHAT_RELAY_STORE):
// opening the store and the cluster bus, each failure one sentence naming the database by
// host:port (never its credentials), and the operator commands' side (migrate, users) that
// other relays must hear about. chat-relay loads this module only when a store is given.
import pg from "pg";
import type { Logger } from "../protocol/log.js";
import { encodeClusterEvents } from "./cluster.js";
import { databaseHostOf, redactSecrets } from "./cluster-url.js";
import { RelayStartError } from "./startup.js";
import type { RelayStore } from "./store.js";
import { migratePg, openPgStore, type MigrateResult, type PgRelayStore } from "./store/pg/pg-store.js";
import { CLUSTER_CHANNEL, PgCluster } from "./store/pg/pg-cluster.js";
import { PgError } from "./store/pg/sync-client.js";

/** One sentence for a failure to use the database, its credentials taken out. */
export function databaseFailure(url: string, e: unknown): RelayStartError {
  const where = databaseHostOf(url);
  const raw = e instanceof Error ? (e.message === "" ? ((e as NodeJS.ErrnoException).code ?? e.name) : e.message) : String(e);
  const why = redactSecrets(raw, url);
  // PgCluster's own sentence already names the database.
  if (why.startsWith("cannot reach the database at ")) return new RelayStartError(why, { cause: e });
  const unreachable = e instanceof PgError ? e.unreachable : /ECONNREFUSED|ETIMEDOUT|ENOTFOUND|EHOSTUNREACH|timeout/i.test(raw);
  return new RelayStartError(unreachable ? `cannot reach the database at ${where}: ${why}` : `cannot use the database at ${where}: ${why}`, { cause: e });
}

export interface SharedStore {
  readonly store: RelayStore;
  readonly cluster: PgCluster;
  /** Closes the cluster (this relay's presence goes, announced offline), then the store. */
  close(): Promise<void>;
}

/** The PostgreSQL store and this relay's place in the cluster (started by startRelay). */
export function openSharedStore(url: string, logger: Logger): SharedStore {
  let store: PgRelayStore;
  try {
    store = openPgStore(url);
  } catch (e) {
    throw databaseFailure(url, e);
  }
  if (!store.durableCommits) {
    logger.warn("store.not_durable", {
      database: databaseHostOf(url),
      message: "the database commits with synchronous_commit = off: a crash of PostgreSQL can lose messages the relay already answered as stored; set it on for the relay's role (README, Several relays on PostgreSQL)",
    });
  }
  const cluster = new PgCluster(url, { logger });
  let closed: Promise<void> | undefined;
  return {
    store, cluster,
    close: () => {
      closed ??= (async () => {
        try {
          await cluster.close();
        } finally {
          store.close();
        }
      })();
      return closed;
    },
  };
}

/** chat-relay migrate: creates or upgrades the schema. */
export function migrateStore(url: string): MigrateResult {
  try {
    return migratePg(url);
  } catch (e) {
    throw databaseFailure(url, e);
  }
}

/** What `chat-relay migrate` prints. */
export function describeMigration(r: MigrateResult): string {
  return `schema at version ${r.to} (was ${r.from})\n`;
}

/** The store of an operator command (users list/release) on the shared database. */
export function openStoreForCommand(url: string): RelayStore {
  try {
    return openPgStore(url);
  } catch (e) {
    throw databaseFailure(url, e);
  }
}

/**
 * Tells the running relays that a user's binding changed (a release by the operator): they
 * reload it. Best effort: a relay that misses it reads the store at the user's next handshake.
 */
export async function announceUserChange(url: string, username: string): Promise<boolean> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2_000 });
  c.on("error", () => undefined);
  try {
    await c.connect();
    const payloads = encodeClusterEvents({ kind: "user", from: "chat-relay-users-command", username });
    await c.query("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p", [CLUSTER_CHANNEL, payloads]);
    return true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => undefined);
  }
}
