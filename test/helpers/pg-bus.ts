// The PostgreSQL bus (src/server/store/pg/pg-cluster.ts) seen from tests: an instance started
// with what it hears collected (events, resyncs, health changes), and an instance's LISTEN
// connection cut from the database side (its backend terminated, as a network cut or a restart
// of the backend would), to make it reconnect and resync.
import type { ClusterEvent } from "../../src/server/cluster.js";
import type { PgCluster } from "../../src/server/store/pg/pg-cluster.js";
import { pgQuery } from "./pg.js";
import { waitUntil } from "./wait.js";

/** An instance of the bus and what it has heard since it started. */
export interface BusMember {
  readonly cluster: PgCluster;
  readonly events: ClusterEvent[];
  resyncs: number;
  readonly health: boolean[];
}

/** Starts `cluster`, collecting its events, resyncs and health changes. */
export async function startBusMember(cluster: PgCluster): Promise<BusMember> {
  const m: BusMember = { cluster, events: [], resyncs: 0, health: [] };
  await cluster.start({
    onEvent: (e) => m.events.push(e),
    onResync: () => {
      m.resyncs++;
    },
    onHealth: (h) => m.health.push(h),
  });
  return m;
}

/** The backend pid of instance `instanceId`'s listener on the database at `url`, once it is connected. */
export function listenerBackend(url: string, instanceId: string): Promise<number> {
  return waitUntil(
    async () => (await pgQuery(url, "SELECT pid FROM pg_stat_activity WHERE application_name = $1", [`chat-relay cluster listener ${instanceId}`])).rows[0]?.pid as number | undefined,
    `${instanceId}'s listener backend`,
  );
}

/** Terminates instance `instanceId`'s listener backend (waiting for it to be connected first); its pid. */
export async function cutListener(url: string, instanceId: string): Promise<number> {
  const pid = await listenerBackend(url, instanceId);
  await pgQuery(url, "SELECT pg_terminate_backend($1)", [pid]);
  return pid;
}
