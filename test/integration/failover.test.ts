// Clients that name several relays of one service (issue 14, cluster-design.md §3): two relays
// in-process on ONE shared store, real protocol v2 (MLS) clients. Alice reaches relay A through a
// proxy that, before A dies, holds back what she sends (her acks), so A dies with deliveries she
// already showed still unacked; A is shut down hard; both clients move to B at once; B redelivers
// the unacked rows from the store and alice drops them: every message of bob's is shown exactly
// once, in order, with one "moved to relay" line and no error.
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { KnownRelays } from "../../src/client/known-relays.js";
import { MlsKeyStore } from "../../src/client/mls-store.js";
import { loadOrCreateTlsIdentity } from "../../src/server/tls-identity.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { TestClient } from "../helpers/client-harness.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { waitUntil } from "../helpers/wait.js";
import { collectingLogger, HoldingProxy, RelayService, type LogLine } from "./failover-helpers.js";

const T = 60_000;
const DM = "dm:alice:bob";
let alice: PrivateIdentity;
let bob: PrivateIdentity;
let carol: PrivateIdentity;
let service: RelayService;
let proxy: HoldingProxy | undefined;
const clients: TestClient[] = [];

beforeAll(async () => {
  [alice, bob, carol] = await Promise.all([fixtureIdentity("alice"), fixtureIdentity("bob"), fixtureIdentity("carol")]);
});
beforeEach(() => {
  service = RelayService.create();
});
afterEach(async () => {
  for (const c of clients.splice(0)) await c.close();
  await proxy?.close();
  proxy = undefined;
  await service.cleanup();
});

/** A v2 client whose files (MLS store, state, pins) are kept in the service's dir across restarts. */
/**
 * A backoff of five minutes: every move in these tests must happen at once (the next address of
 * the list), never after a wait, or the test times out.
 */
const NO_WAITING = { initialMs: 300_000, maxMs: 300_000 };

async function v2(id: PrivateIdentity, servers: readonly string[], logs: LogLine[] = []): Promise<TestClient> {
  const dir = join(service.dir, id.username);
  mkdirSync(dir, { recursive: true });
  const store = MlsKeyStore.open(join(dir, "mls.db"), { username: id.username, sigPrivate: id.sigPrivate });
  const c = await TestClient.start(id, 0, {
    server: servers, dir, statePath: join(dir, "state.db"), v2: { store },
    reconnect: NO_WAITING, logger: collectingLogger(logs),
  });
  clients.push(c);
  return c;
}

async function stop(c: TestClient): Promise<void> {
  clients.splice(clients.indexOf(c), 1);
  await c.close();
}

async function say(c: TestClient, text: string): Promise<void> {
  const r = c.client.send(DM, text);
  if (!r.ok) throw new Error(`send failed: ${JSON.stringify(r.error)}`);
  await c.waitForState(r.value.id, "accepted", T);
}

/** The texts of bob's numbered messages alice was shown, in the order shown. */
const shown = (a: TestClient): string[] => a.messages(DM).filter((m) => !m.own && m.text.startsWith("m")).map((m) => m.text);
const ROOM = "#ops";
/** The membership lines of the room alice was shown. */
const roomLines = (c: TestClient): string[] =>
  c.events.flatMap((e) => (e.type === "membership" && e.conversationId === ROOM ? [`${e.line.by} ${e.line.kind}${e.line.users.length > 0 ? ` ${e.line.users.join(",")}` : ""}`] : []));
const numbered = (from: number, to: number): string[] => Array.from({ length: to - from + 1 }, (_, i) => `m${from + i}`);

describe("failover between relays of one service", () => {
  it("a relay dying hard moves both clients to the next relay: nothing lost, nothing shown twice, one line", { timeout: 240_000 }, async () => {
    const relayA = await service.start("a");
    proxy = await HoldingProxy.start(relayA.address);
    const viaProxy = proxy.address;
    // The conversations exist first (names bound, device lists, the DM group, a room), on A alone;
    // carol only leaves KeyPackages, so that bob can add her (and remove her later).
    const c = await v2(carol, [relayA.address]);
    await waitUntil(() => service.store.mls.keyPackageCounts("carol").oneTime > 0, "carol's KeyPackages published", T);
    await stop(c);
    let a = await v2(alice, [proxy.address]);
    let b = await v2(bob, [relayA.address]);
    expect((await b.client.joinRoom(ROOM)).ok).toBe(true);
    expect((await a.client.joinRoom(ROOM)).ok).toBe(true);
    await waitUntil(() => roomLines(b).includes("alice joined"), "bob sees alice join", T);
    expect(await b.client.invite!(ROOM, "carol")).toEqual({ ok: true });
    await waitUntil(() => roomLines(a).includes("bob added carol"), "alice sees carol added", T);
    await say(a, "hi bob");
    await b.waitForMessage("hi bob", T);
    await say(b, "hi alice");
    await a.waitForMessage("hi alice", T);
    await stop(a);
    await stop(b);

    // The second relay of the service, on the same store and certificate; the clients name both.
    const relayB = await service.start("b");
    const aliceLogs: LogLine[] = [];
    a = await v2(alice, [proxy.address, relayB.address], aliceLogs);
    b = await v2(bob, [relayA.address, relayB.address]);
    expect(a.client.serverLabel).toBe(`${proxy.address} (1 of 2)`);
    for (const text of numbered(1, 5)) await say(b, text);
    await waitUntil(() => shown(a).length === 5, "alice shown m1-m5", T);

    // From here A hears nothing from alice (her acks stay in the proxy), yet she is shown these:
    // a commit (bob removes carol from the room: it names no one new, so alice asks the relay
    // nothing about it, and her requests would go unanswered now) and five messages.
    proxy.hold();
    expect(await b.client.kick!(ROOM, "carol")).toEqual({ ok: true });
    await waitUntil(() => roomLines(a).includes("bob removed carol"), "alice shown carol removed with her acks held back", T);
    for (const text of numbered(6, 10)) await say(b, text);
    await waitUntil(() => shown(a).length === 10, "alice shown m6-m10 with her acks held back", T);

    // Relay A dies hard (no grace) with two of bob's messages perhaps in flight (their answers
    // lost: his outbox sends them again through B); bob goes on sending; both clients find B.
    const inFlight = numbered(11, 12).map((text) => b.client.send(DM, text));
    expect(inFlight.every((r) => r.ok)).toBe(true);
    await relayA.relay.shutdown();
    await proxy.close();
    proxy = undefined;
    for (const text of numbered(13, 20)) await say(b, text);
    await waitUntil(() => shown(a).length >= 20, "alice shown m11-m20 through relay B", T);
    // The redelivered m6-m10 and the commit reached alice from B's queue read and were dropped.
    await waitUntil(() => aliceLogs.filter((l) => l.event === "mls.deliver.redelivered").length >= 5, "alice dropping B's redeliveries", T);
    await waitUntil(() => aliceLogs.some((l) => l.event === "mls.deliver.stale"), "alice dropping the redelivered commit", T);
    expect(roomLines(a).filter((l) => l === "bob removed carol")).toHaveLength(1);

    expect(shown(a)).toEqual(numbered(1, 20));
    expect(a.events.filter((e) => e.type === "refused")).toEqual([]);
    expect(a.events.filter((e) => e.type === "notice" && e.level === "error")).toEqual([]);
    const moves = a.events.flatMap((e) => (e.type === "notice" && e.text.startsWith("moved to relay") ? [e.text] : []));
    expect(moves).toEqual([`moved to relay ${relayB.address}`]);
    // The catch-up line on B counts what it showed anew, not the redeliveries it dropped.
    const movedAt = a.events.findIndex((e) => e.type === "notice" && e.text.startsWith("moved to relay"));
    const caughtAt = await waitUntil(() => {
      const i = a.events.findIndex((e, j) => j > movedAt && e.type === "caught-up");
      return i < 0 ? undefined : i;
    }, "the catch-up line after the move", T);
    const newlyShown = a.events.slice(movedAt, caughtAt).filter((e) => e.type === "message" && !e.message.own).length;
    expect(a.events[caughtAt]).toEqual({ type: "caught-up", reconnect: true, count: newlyShown });
    expect(a.client.serverLabel).toBe(`${relayB.address} (2 of 2)`);
    // B showed the certificate alice pinned for the proxy's address: pinned for B too, the same.
    const pins = JSON.parse(readFileSync(join(service.dir, "alice", "alice_known_relays.json"), "utf8")) as { relays: Record<string, { sha256: string }> };
    expect(Object.keys(pins.relays).sort()).toEqual([viaProxy, relayB.address].sort());
    expect(new Set(Object.values(pins.relays).map((p) => p.sha256)).size).toBe(1);
  });

  it("an address whose certificate changed is skipped with one line while another of the list works; its pin stays", { timeout: 120_000 }, async () => {
    const relayA = await service.start("a");
    const relayB = await service.start("b");
    // Alice pinned another certificate for A's address earlier: A now shows a changed one.
    const otherDir = join(service.dir, "other-cert");
    mkdirSync(otherDir, { mode: 0o700 });
    const old = loadOrCreateTlsIdentity(otherDir);
    mkdirSync(join(service.dir, "alice"), { recursive: true });
    const pins = await KnownRelays.open(join(service.dir, "alice", "alice_known_relays.json"));
    await pins.pin(relayA.address, old.certDer);

    const a = await v2(alice, [relayA.address, relayB.address]);
    expect(a.client.serverLabel).toBe(`${relayB.address} (2 of 2)`);
    const skips = a.events.flatMap((e) => (e.type === "notice" ? [`${e.level}: ${e.text}`] : []));
    expect(skips.filter((t) => t.includes(relayA.address))).toHaveLength(1);
    expect(skips.find((t) => t.includes(relayA.address))?.startsWith(`warn: Relay ${relayA.address} is skipped for this run: `)).toBe(true);
    expect(skips.filter((t) => t.startsWith("moved to relay") || t.startsWith("error:"))).toEqual([]);
    const kept = await KnownRelays.open(join(service.dir, "alice", "alice_known_relays.json"));
    expect(kept.get(relayA.address)?.sha256).toBe(old.fingerprint); // never re-pinned
    // The session works: bob, on B alone, reaches her there.
    const b = await v2(bob, [relayB.address]);
    await say(b, "m1");
    await waitUntil(() => shown(a).length === 1, "alice shown bob's message", T);
  });
});
