// Several relays sharing one store act as one service (issue 14): in-process relays on one
// SQLite store joined by a LocalClusterHub (the wiring is the same with PgCluster). The poll
// fallback is off in these relays unless a test turns it on, so whatever arrives arrived by a
// cluster event, never by the 5 s poll.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { status as GrpcStatus, type ServiceError } from "@grpc/grpc-js";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  HealthCheckResponse_ServingStatus as ServingStatus, HealthClient, type HealthCheckResponse,
} from "../../src/gen/grpc/health/v1/health.js";
import { MlsKeyStore } from "../../src/client/mls-store.js";
import { KnownRelays } from "../../src/client/known-relays.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { TestClient } from "../helpers/client-harness.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { waitMember } from "../helpers/v2-waits.js";
import { waitUntil } from "../helpers/wait.js";
import type { RelayStore } from "../../src/server/store.js";
import { PgError } from "../../src/server/store/pg/sync-client.js";
import { connectDevice, deviceListOf, makeLinkedDevice, publishDeviceListOk } from "../helpers/device-session.js";
import { mlsPerson } from "../helpers/mls-ds.js";
import type { TestRelay } from "../helpers/relay-harness.js";
import { RawSession } from "../helpers/raw-session.js";
import { RelayGroup, type GroupRelay } from "./cluster-helpers.js";

let alice: PrivateIdentity;
let bob: PrivateIdentity;
let carol: PrivateIdentity;
let dave: PrivateIdentity;
let group: RelayGroup | undefined;
let dir: string | undefined;
const clients: TestClient[] = [];
const closers: Array<{ close(): void }> = [];

beforeAll(async () => {
  [alice, bob, carol, dave] = await Promise.all([fixtureIdentity("alice"), fixtureIdentity("bob"), fixtureIdentity("carol"), fixtureIdentity("dave")]);
});
afterEach(async () => {
  for (const c of clients.splice(0)) await c.close();
  for (const c of closers.splice(0)) c.close();
  await group?.cleanup();
  group = undefined;
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

/** A v2 ChatClient on relay `r` (its certificate pinned on first use, as chat-tui does). */
async function v2(id: PrivateIdentity, r: GroupRelay): Promise<TestClient> {
  dir ??= mkdtempSync(join(tmpdir(), "sc-cluster-clients-"));
  const store = MlsKeyStore.open(join(dir, `${id.username}_mls.db`), { username: id.username, sigPrivate: id.sigPrivate });
  const transport = { kind: "pinned" as const, pins: await KnownRelays.open(join(dir, `${id.username}_known_relays.json`)) };
  const c = await TestClient.start(id, 0, { server: r.address, dir, statePath: join(dir, `${id.username}_state.db`), v2: { store }, transport });
  clients.push(c);
  return c;
}

function send(c: TestClient, conv: string, body: string): string {
  const r = c.client.send(conv, body);
  if (!r.ok) throw new Error(`send failed: ${JSON.stringify(r.error)}`);
  return r.value.id;
}

function check(r: GroupRelay): Promise<ServingStatus> {
  const c = new HealthClient(r.address, r.transport.creds, r.transport.options);
  closers.push(c);
  return new Promise((resolve, reject) => {
    c.check({ service: "" }, (err: ServiceError | null, res?: HealthCheckResponse) => (err !== null ? reject(err) : resolve(res!.status)));
  });
}

describe("relays sharing one store", () => {
  it("a DM from a client on relay A reaches a client on relay B by a cluster event (no poll)", { timeout: 90_000 }, async () => {
    group = await RelayGroup.start(2);
    const [ra, rb] = group.relays as [GroupRelay, GroupRelay];
    const a = await v2(alice, ra);
    const b = await v2(bob, rb);
    const dm = "dm:alice:bob";
    await a.waitForState(send(a, dm, "across relays"), "accepted", 30_000);
    await b.waitForMessage("across relays", 30_000);
    send(b, dm, "and back");
    await a.waitForMessage("and back", 30_000);
    // Each side's rows were stored by the other relay: published, not polled.
    expect(ra.logs.some((l) => l.event === "cluster.resync")).toBe(false);
  });

  it("presence: a user online on A is online for a session on B, in its Welcome and in updates; offline once gone everywhere", async () => {
    group = await RelayGroup.start(2);
    const sa = await group.connect(0, alice);
    const sb = await group.connect(1, bob);
    expect(sb.welcome.directory.find((e) => e.username === "alice")?.online).toBe(true);
    await sa.nextPresence("bob", true);
    sb.close();
    await sa.nextPresence("bob", false);
    // A second device-less user on B: alice (on A) sees carol come and go too.
    const sc = await group.connect(1, carol);
    await sa.nextPresence("carol", true);
    sc.close();
    await sa.nextPresence("carol", false);
  });

  it("the same device connecting to B ends its session on A as replaced; its peers never see it offline", async () => {
    group = await RelayGroup.start(3);
    const watcher = await group.connect(2, bob);
    const onA = await group.connect(0, alice);
    await watcher.nextPresence("alice", true);
    const onB = await group.connect(1, alice);
    const ended = await onA.status();
    expect(ended.code).toBe(GrpcStatus.ABORTED);
    expect(ended.details).toBe("replaced by a newer session");
    expect(ended.errorCode).toBe("ERROR_CODE_SESSION_REPLACED");
    // Later presence news (dave) arrives after any for alice would have: none said offline.
    await group.connect(0, dave);
    await watcher.nextPresence("dave", true);
    expect(watcher.sawPresence("alice", false)).toBe(false);
    // The session on B serves.
    expect((await onB.lookupKeys(["bob"]))[0]?.online).toBe(true);
  });

  it("a room spanning three relays: every member reads every member", { timeout: 120_000 }, async () => {
    group = await RelayGroup.start(3);
    const [r0, r1, r2] = group.relays as [GroupRelay, GroupRelay, GroupRelay];
    const a = await v2(alice, r0);
    const b = await v2(bob, r1);
    const c = await v2(carol, r2);
    const room = "#ops";
    expect((await a.client.joinRoom(room)).ok).toBe(true);
    expect((await b.client.joinRoom(room)).ok).toBe(true);
    const jc = await c.client.joinRoom(room);
    expect(jc.ok && [...jc.value.members].sort()).toEqual(["alice", "bob", "carol"]);
    // Each member's group has the others (the join commits crossed relays by events).
    for (const x of [a, b, c]) for (const y of ["alice", "bob", "carol"]) await waitMember(x, room, y);
    send(a, room, "from A");
    send(b, room, "from B");
    send(c, room, "from C");
    await Promise.all([b.waitForMessage("from A", 30_000), c.waitForMessage("from A", 30_000)]);
    await Promise.all([a.waitForMessage("from B", 30_000), c.waitForMessage("from B", 30_000)]);
    await Promise.all([a.waitForMessage("from C", 30_000), b.waitForMessage("from C", 30_000)]);
  });

  it("rows whose event was lost are delivered at the resync", { timeout: 90_000 }, async () => {
    group = await RelayGroup.start(2);
    const [ra, rb] = group.relays as [GroupRelay, GroupRelay];
    const a = await v2(alice, ra);
    const b = await v2(bob, rb);
    await b.waitFor((e) => e.type === "caught-up", "bob caught up", 30_000);
    rb.cluster.dropping.add("rows");
    const dm = "dm:alice:bob";
    await a.waitForState(send(a, dm, "while B was deaf"), "accepted", 30_000);
    await waitUntil(() => rb.cluster.dropped > 0, "B missed the rows event");
    expect(b.messages(dm)).toEqual([]);
    rb.cluster.dropping.clear();
    rb.cluster.resync();
    await b.waitForMessage("while B was deaf", 30_000);
  });

  it("the poll fallback delivers rows whose event was lost, without a resync", { timeout: 90_000 }, async () => {
    group = await RelayGroup.start(2, { pollMs: 200 });
    const [ra, rb] = group.relays as [GroupRelay, GroupRelay];
    const a = await v2(alice, ra);
    const b = await v2(bob, rb);
    await b.waitFor((e) => e.type === "caught-up", "bob caught up", 30_000);
    rb.cluster.dropping.add("rows");
    await a.waitForState(send(a, "dm:alice:bob", "polled"), "accepted", 30_000);
    await b.waitForMessage("polled", 30_000);
    expect(rb.cluster.dropped).toBeGreaterThan(0);
  });

  it("health follows the cluster: NOT_SERVING while its bus is down, SERVING once it is back", async () => {
    group = await RelayGroup.start(2);
    const rb = group.relays[1]!;
    expect(await check(rb)).toBe(ServingStatus.SERVING);
    rb.cluster.health(false);
    expect(await check(rb)).toBe(ServingStatus.NOT_SERVING);
    expect(await check(group.relays[0]!)).toBe(ServingStatus.SERVING);
    rb.cluster.health(true);
    expect(await check(rb)).toBe(ServingStatus.SERVING);
  });

  it("shutdown in a cluster: NOT_SERVING, a notice that clients move to another relay, UNAVAILABLE; peers see the user offline", async () => {
    group = await RelayGroup.start(2);
    const watcher = await group.connect(1, bob);
    const leaving = await group.connect(0, alice);
    await watcher.nextPresence("alice", true);
    const stopping = group.relays[0]!.relay.shutdown();
    const notice = await leaving.next("notice");
    expect(notice.text).toBe("it is stopping; you will be moved to another relay (messages are kept)");
    const ended = await leaving.status();
    expect(ended.code).toBe(GrpcStatus.UNAVAILABLE);
    await stopping;
    await watcher.nextPresence("alice", false);
  });

  it("a database that goes away: handshakes refused with a storage sentence, NOT_SERVING; SERVING again once a probe reaches it", async () => {
    // The store as a relay sees it when the network to its database is cut: every call fails as
    // sync-client.ts fails it (a PgError with a connection SQLSTATE), until the cut heals.
    let down = false;
    const cut = (s: RelayStore): RelayStore => {
      const fail = (): never => {
        throw new PgError("Connection terminated unexpectedly", "08006");
      };
      const wrap = <T extends object>(t: T): T => new Proxy(t, {
        get(target, prop, receiver) {
          const v: unknown = Reflect.get(target, prop, receiver);
          if (prop === "mls" || prop === "devices") return wrap(v as object);
          if (typeof v !== "function") return v;
          return (...args: unknown[]) => (down && prop !== "close" ? fail() : (v as (...a: unknown[]) => unknown).apply(target, args));
        },
      });
      return wrap(s);
    };
    group = await RelayGroup.start(1, { pollMs: 0, probeMs: 50 }, cut);
    const r = group.relays[0]!;
    expect(await check(r)).toBe(ServingStatus.SERVING);
    const early = await group.connect(0, bob);
    down = true;
    // A session that ends while the database is away ends cleanly (its last-seen write fails, logged).
    early.close();
    await waitUntil(() => r.logs.some((l) => l.event === "session.close" && l["user"] === "bob"), "bob's session closed");
    expect(r.logs.some((l) => l.event === "session.last_seen_failed")).toBe(true);
    const s = await group.connect(0, alice).then(() => undefined, (e: Error) => e);
    expect(s?.message).toContain("the relay cannot reach its database right now; try again in a moment");
    expect(await check(r)).toBe(ServingStatus.NOT_SERVING);
    expect(r.logs.some((l) => l.event === "session.failed")).toBe(false);
    down = false;
    await waitUntil(async () => (await check(r)) === ServingStatus.SERVING, "SERVING again");
    const back = await group.connect(0, alice);
    expect(back.welcome.username).toBe("alice");
  });

  it("a device list kept on A: B's sessions see the new version, and a device it drops ends on B as unlinked", async () => {
    group = await RelayGroup.start(2);
    const rb = group.relays[1]!;
    // connectDevice only opens a session on what it is given.
    const onB = { open: () => new RawSession(rb.address, rb.transport) } as unknown as TestRelay;
    const primary = await group.connect(0, alice);
    const watcher = await group.connect(1, bob);
    const laptop = await mlsPerson(alice);
    const desktop = await makeLinkedDevice(alice, "desktop");
    await publishDeviceListOk(primary, deviceListOf(alice, laptop, [desktop], 1));
    const d = await connectDevice(onB, alice, desktop);
    expect(d.welcome.deviceId).toBe(desktop.deviceId);
    expect(d.welcome.deviceListVersion).toBe(1);
    await publishDeviceListOk(primary, deviceListOf(alice, laptop, [], 2));
    const ended = await d.status();
    expect(ended.code).toBe(GrpcStatus.PERMISSION_DENIED);
    expect(ended.details).toBe("this device was unlinked by alice's primary device");
    await waitUntil(() => watcher.presence.get("alice")?.deviceListVersion === 2, "bob on B sees alice's list v2");
    d.close();
  });
});
