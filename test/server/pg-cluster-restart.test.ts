// PgCluster across a restart of PostgreSQL itself (a private cluster: the shared one is never
// restarted): both relays' listeners are lost, health goes false, they reconnect with backoff,
// resync, and events flow again; presence written before the restart is still seen.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nullLogger } from "../../src/protocol/log.js";
import { PgCluster } from "../../src/server/store/pg/pg-cluster.js";
import { startBusMember, type BusMember } from "../helpers/pg-bus.js";
import { startPrivateCluster, type PrivateCluster } from "../helpers/pg.js";
import { waitUntil } from "../helpers/wait.js";

// A free port is probed and the start retried on another (startPrivateCluster): a fixed port of
// 56000-56999 lies in Linux's ephemeral range, and a fresh-clone CI run once found it taken by an
// outgoing connection ("could not bind IPv4 address: Address already in use").
let pg: PrivateCluster;
let url: string;
const open: PgCluster[] = [];

beforeAll(async () => {
  pg = await startPrivateCluster();
  url = pg.url;
});
afterAll(async () => {
  await Promise.allSettled(open.map((c) => c.close()));
  await pg?.stop();
});

describe("PgCluster when PostgreSQL restarts", () => {
  it("loses its listener, says unhealthy, reconnects, resyncs, and carries events again", { timeout: 60_000 }, async () => {
    const members: BusMember[] = [];
    for (const id of ["a", "b"]) {
      const cluster = new PgCluster(url, { logger: nullLogger, instanceId: id, heartbeatMs: 200, deadAfterMs: 5_000 });
      open.push(cluster);
      members.push(await startBusMember(cluster));
    }
    const [a, b] = members as [BusMember, BusMember];
    a.cluster.publish({ kind: "presence", username: "alice", address: "alice", online: true });
    await waitUntil(() => b.cluster.remoteAddresses("alice")?.has("alice"), "alice online at b");

    await pg.restart();
    await waitUntil(() => a.health.includes(false) && b.health.includes(false), "both unhealthy", 20_000);
    await waitUntil(() => a.cluster.healthy && b.cluster.healthy && a.resyncs > 0 && b.resyncs > 0, "both back and resynced", 30_000);
    expect(b.health.at(-1)).toBe(true);
    // The presence row outlived a clean restart (or was written again by a's heartbeat).
    expect(b.cluster.remoteAddresses("alice")?.has("alice")).toBe(true);
    a.cluster.publish({ kind: "user", username: "carol" });
    await waitUntil(() => b.events.some((e) => e.kind === "user" && e.username === "carol"), "an event after the restart", 10_000);
  });
});
