// PgCluster against a real PostgreSQL (the run's cluster, a fresh database for this file):
// events between instances, own events ignored, presence read at start, a dead instance's
// presence announced offline exactly once, and a lost listener reconnecting with a resync.
import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { ClusterEvent } from "../../src/server/cluster.js";
import { PgCluster } from "../../src/server/store/pg/pg-cluster.js";
import { nullLogger } from "../../src/protocol/log.js";
import { cutListener, listenerBackend, startBusMember, type BusMember as Member } from "../helpers/pg-bus.js";
import { freshDatabase, pgQuery, type TestDatabase } from "../helpers/pg.js";
import { waitUntil } from "../helpers/wait.js";

let db: TestDatabase;
const open: PgCluster[] = [];

beforeAll(async () => {
  db = await freshDatabase();
});
afterEach(async () => {
  await Promise.allSettled(open.splice(0).map((c) => c.close()));
});
afterAll(async () => {
  await db.drop();
});

async function member(id: string, times: { heartbeatMs?: number; deadAfterMs?: number } = {}): Promise<Member> {
  const cluster = new PgCluster(db.url, { logger: nullLogger, instanceId: id, ...times });
  open.push(cluster);
  return startBusMember(cluster);
}

const sql = (text: string, params: unknown[] = []): Promise<pg.QueryResult> => pgQuery(db.url, text, params);

describe("PgCluster", () => {
  it("carries events to the other instance and never back to the publisher", async () => {
    const a = await member("a1");
    const b = await member("b1");
    expect(a.cluster.healthy).toBe(true);
    a.cluster.publish({ kind: "rows", rows: [["bob", 2], ["carol/d1", 1]] });
    a.cluster.publish({ kind: "user", username: "dave" });
    b.cluster.publish({ kind: "session", address: "erin" });
    await waitUntil(() => b.events.length >= 2 && a.events.length >= 1, "events on both sides");
    expect(b.events).toEqual([
      { kind: "rows", from: "a1", rows: [["bob", 2], ["carol/d1", 1]] },
      { kind: "user", from: "a1", username: "dave" },
    ]);
    expect(a.events).toEqual([{ kind: "session", from: "b1", address: "erin" }]);
  });

  it("shares presence: events while running, the table at start, and the publisher's own departure at close", async () => {
    const a = await member("a2");
    const b = await member("b2");
    a.cluster.publish({ kind: "presence", username: "alice", address: "alice", online: true });
    await waitUntil(() => b.cluster.remoteAddresses("alice")?.has("alice"), "alice online at b");
    expect(a.cluster.remoteAddresses("alice")).toBeUndefined();
    // A relay starting later reads who is online from the table.
    const c = await member("c2");
    expect([...c.cluster.remoteOnlineNames()]).toEqual(["alice"]);
    await a.cluster.close();
    await waitUntil(() => b.cluster.remoteAddresses("alice") === undefined && c.cluster.remoteAddresses("alice") === undefined, "alice offline after a closed");
    expect(b.events.filter((e) => e.kind === "presence" && !e.online)).toHaveLength(1);
    expect((await sql("SELECT count(*)::int AS n FROM presence")).rows[0].n).toBe(0);
  });

  it("expires a silent instance: its presence goes offline everywhere, announced once", async () => {
    const times = { heartbeatMs: 100, deadAfterMs: 600 };
    const b = await member("b3", times);
    const c = await member("c3", times);
    // A relay killed with -9: rows in the tables, then silence.
    await sql("INSERT INTO instances (instance_id, heartbeat_ms) VALUES ('dead3', (extract(epoch from clock_timestamp()) * 1000)::bigint)");
    await sql("INSERT INTO presence (address, username, instance_id, since_ms) VALUES ('zoe', 'zoe', 'dead3', 0), ('zoe/d2', 'zoe', 'dead3', 0)");
    const watcher = await member("w3", times);
    expect(watcher.cluster.remoteAddresses("zoe")?.size).toBe(2);
    await waitUntil(async () => (await sql("SELECT count(*)::int AS n FROM presence WHERE instance_id = 'dead3'")).rows[0].n === 0, "dead3 expired", 10_000);
    await waitUntil(() => watcher.cluster.remoteAddresses("zoe") === undefined, "zoe offline at the watcher");
    // Two relays heartbeat, yet each address is announced offline exactly once.
    const offline = (m: Member): ClusterEvent[] => m.events.filter((e) => e.kind === "presence" && e.username === "zoe" && !e.online);
    await waitUntil(() => offline(watcher).length === 2, "two offline events");
    const anotherBeat = Date.now() + 300;
    await waitUntil(() => Date.now() > anotherBeat, "a few more heartbeats");
    expect(offline(watcher)).toHaveLength(2);
    expect(offline(watcher).map((e) => e.from)).toEqual(["dead3", "dead3"]);
    expect(b.cluster.healthy && c.cluster.healthy).toBe(true);
  });

  it("reconnects a lost listener, reloads presence and asks for a resync", async () => {
    const a = await member("a4");
    const b = await member("b4");
    const pid = await cutListener(db.url, "b4");
    await waitUntil(() => b.health.includes(false), "b unhealthy");
    // Presence that changes while b is not listening is learned at the resync.
    a.cluster.publish({ kind: "presence", username: "frank", address: "frank", online: true });
    await waitUntil(() => b.resyncs === 1 && b.cluster.healthy, "b resynced", 10_000);
    expect(b.health).toEqual([false, true]);
    await waitUntil(() => b.cluster.remoteAddresses("frank")?.has("frank"), "frank online at b");
    expect(await listenerBackend(db.url, "b4")).not.toBe(pid);
    // And events flow again.
    a.cluster.publish({ kind: "rescan" });
    await waitUntil(() => b.events.some((e) => e.kind === "rescan"), "rescan after the reconnect");
  });

  it("writes its presence again when it finds itself gone (a crash empties UNLOGGED tables)", async () => {
    const a = await member("a5", { heartbeatMs: 100, deadAfterMs: 1_000 });
    const b = await member("b5", { heartbeatMs: 100, deadAfterMs: 1_000 });
    a.cluster.publish({ kind: "presence", username: "gina", address: "gina", online: true });
    await waitUntil(() => b.cluster.remoteAddresses("gina")?.has("gina"), "gina online at b");
    await sql("TRUNCATE instances, presence");
    await waitUntil(async () => (await sql("SELECT instance_id FROM presence WHERE address = 'gina'")).rows[0]?.instance_id === "a5", "a5 rewrote gina's row", 5_000);
    // Both write their instance row again at their next heartbeat.
    await waitUntil(async () => (await sql("SELECT instance_id FROM instances ORDER BY 1")).rows.map((r) => r.instance_id).join() === "a5,b5", "both instances back", 5_000);
  });

  it("heals its presence rows when its listener comes back (writes lost while the database was away)", async () => {
    const a = await member("a6");
    const b = await member("b6");
    a.cluster.publish({ kind: "presence", username: "hank", address: "hank", online: true });
    await waitUntil(() => b.cluster.remoteAddresses("hank")?.has("hank"), "hank online at b");
    // What lost writes leave behind: hank's row missing, a row for a session that ended meanwhile.
    await sql("DELETE FROM presence WHERE address = 'hank'");
    await sql("INSERT INTO presence (address, username, instance_id, since_ms) VALUES ('ivy', 'ivy', 'a6', 0)");
    await cutListener(db.url, "a6");
    await waitUntil(async () => (await sql("SELECT address FROM presence WHERE instance_id = 'a6' ORDER BY 1")).rows.map((r) => r.address).join() === "hank", "a6's rows healed", 10_000);
    expect(b.cluster.remoteAddresses("hank")?.has("hank")).toBe(true);
    expect(b.cluster.remoteAddresses("ivy")).toBeUndefined();
  });

  it("refuses to start against an unreachable database with one sentence naming host:port, not the password", async () => {
    const c = new PgCluster("postgres://sc:s3cret@127.0.0.1:1/none", { logger: nullLogger, connectTimeoutMs: 500 });
    await expect(c.start({ onEvent: () => undefined, onResync: () => undefined })).rejects.toThrow(/^cannot reach the database at 127\.0\.0\.1:1: /);
    await c.start({ onEvent: () => undefined, onResync: () => undefined }).catch((e: Error) => expect(e.message).not.toContain("s3cret"));
  });
});
