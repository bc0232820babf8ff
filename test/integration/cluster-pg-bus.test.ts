// In-process relays on one shared store whose bus is PgCluster over a real PostgreSQL (a fresh
// database): the relay wiring end to end over LISTEN/NOTIFY. No poll: what arrives came by a
// notification. A lost listener (its backend terminated) comes back with a resync.
import { status as GrpcStatus } from "@grpc/grpc-js";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { nullLogger } from "../../src/protocol/log.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { PgCluster } from "../../src/server/store/pg/pg-cluster.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { cutListener } from "../helpers/pg-bus.js";
import { freshDatabase, type TestDatabase } from "../helpers/pg.js";
import { waitUntil } from "../helpers/wait.js";
import { RelayGroup } from "./cluster-helpers.js";

let db: TestDatabase;
let alice: PrivateIdentity;
let bob: PrivateIdentity;
let carol: PrivateIdentity;
let group: RelayGroup | undefined;
let next = 0;

beforeAll(async () => {
  db = await freshDatabase();
  [alice, bob, carol] = await Promise.all([fixtureIdentity("alice"), fixtureIdentity("bob"), fixtureIdentity("carol")]);
});
afterEach(async () => {
  await group?.cleanup();
  group = undefined;
});
afterAll(async () => {
  await db.drop();
});

function pgGroup(n: number): Promise<RelayGroup> {
  return RelayGroup.start(n, { pollMs: 0 }, (s) => s, () => new PgCluster(db.url, { logger: nullLogger, instanceId: `relay-${process.pid}-${next++}` }));
}

describe("relays over PgCluster", () => {
  it("presence and replaced sessions cross relays by NOTIFY", async () => {
    group = await pgGroup(2);
    const sa = await group.connect(0, alice);
    // Presence is eventually consistent across relays: once relay 1 heard it, its Welcomes say so.
    await waitUntil(() => group?.relays[1]!.cluster.remoteAddresses("alice")?.has("alice"), "relay 1 heard alice");
    const sb = await group.connect(1, bob);
    expect(sb.welcome.directory.find((e) => e.username === "alice")?.online).toBe(true);
    await sa.nextPresence("bob", true);
    // (bob's registration on relay 1 may reach relay 0 as a user event before his presence does:
    // a new user shown offline, then online. What follows must never show him offline.)
    const online = sa.presenceMark();
    // bob's device moves to relay 0: its session on relay 1 ends as replaced.
    await group.connect(0, bob);
    expect((await sb.status()).code).toBe(GrpcStatus.ABORTED);
    const sc = await group.connect(1, carol);
    await sa.nextPresence("carol", true);
    sc.close();
    await sa.nextPresence("carol", false);
    expect(sa.sawPresence("bob", false, online)).toBe(false);
  });

  it("a relay whose listener is cut resyncs: presence changed meanwhile is announced", async () => {
    group = await pgGroup(2);
    const sb = await group.connect(1, bob);
    const r1 = group.relays[1]!;
    await cutListener(db.url, r1.cluster.instanceId);
    await waitUntil(() => !r1.cluster.healthy, "relay 1's bus down");
    await group.connect(0, alice);
    await waitUntil(() => r1.logs.some((l) => l.event === "cluster.resync"), "relay 1 resynced", 10_000);
    await sb.nextPresence("alice", true);
  });
});
