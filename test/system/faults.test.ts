// Nothing lost, nothing twice: real ChatClient sessions (with their on-disk state, as chat-tui
// uses them) against a relay that is killed -9 under load, a TCP connection that drops, a network
// path that goes silent, and recipients who are away.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { describeClientError } from "../../src/client/errors.js";
import type { ChatMessage } from "../../src/client/types.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { TestClient } from "../helpers/client-harness.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { startRecordingProxy } from "../helpers/recording-proxy.js";
import { TestRelay } from "../helpers/relay-harness.js";
import { startRelayProcess } from "../helpers/relay-process.js";
import { sawJoin } from "../helpers/v2-waits.js";
import { waitUntil } from "../helpers/wait.js";

let alice: PrivateIdentity;
let bob: PrivateIdentity;
let carol: PrivateIdentity;
let dir: string;
const cleanups: Array<() => Promise<unknown> | unknown> = [];
const FAST_RECONNECT = { initialMs: 50, maxMs: 300 };

beforeAll(async () => {
  [alice, bob, carol] = await Promise.all([fixtureIdentity("alice"), fixtureIdentity("bob"), fixtureIdentity("carol")]);
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "sc-faults-"));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

async function client(id: PrivateIdentity, port: number, o: Parameters<typeof TestClient.start>[2] = {}): Promise<TestClient> {
  const c = await TestClient.start(id, port, { dir, statePath: join(dir, `${id.username}_state.db`), reconnect: FAST_RECONNECT, ...o });
  cleanups.push(() => c.close());
  return c;
}

/** Sends texts prefix-0 .. prefix-(n-1) without waiting; returns their ids. */
function burst(c: TestClient, conversationId: string, prefix: string, from: number, n: number): string[] {
  const ids: string[] = [];
  for (let i = from; i < from + n; i++) {
    const r = c.client.send(conversationId, `${prefix}-${i}`);
    if (!r.ok) throw new Error(`send ${prefix}-${i} failed: ${describeClientError(r.error)}`);
    ids.push(r.value.id);
  }
  return ids;
}

function accepted(c: TestClient): Set<string> {
  return new Set(c.events.flatMap((e) => (e.type === "message-state" && e.state === "accepted" ? [e.id] : [])));
}

function received(c: TestClient, prefix: string): ChatMessage[] {
  return c.messages().filter((m) => !m.own && m.text.startsWith(`${prefix}-`));
}

/** Every text exactly once, in the order sent, none flagged as a gap. */
function expectExactlyOnceInOrder(got: ChatMessage[], prefix: string, n: number): void {
  expect(got.map((m) => m.text)).toEqual(Array.from({ length: n }, (_, i) => `${prefix}-${i}`));
  expect(new Set(got.map((m) => m.id)).size).toBe(n);
  expect(got.filter((m) => m.gap)).toEqual([]);
}

describe("the relay is killed -9 while clients send", () => {
  it("delivers every message exactly once, in order, after a restart on the same data dir", async () => {
    dir = tempDir();
    const dataDir = join(dir, "relay");
    // The relay's default limits (20/s, burst 60): the client paces its resends to them.
    const fast: string[] = [];
    let relay = await startRelayProcess(dataDir, fast);
    const port = relay.port;
    cleanups.push(() => relay.stop("SIGKILL"));
    const a = await client(alice, port);
    const b = await client(bob, port);
    await a.waitFor((e) => e.type === "peer" && e.peer.username === "bob" && e.peer.online, "alice sees bob");

    const aliceIds = burst(a, "dm:alice:bob", "a", 0, 40);
    const bobIds = burst(b, "dm:alice:bob", "b", 0, 40);
    // Kill it mid-stream: some envelopes are accepted, some in flight, some not yet read.
    await waitUntil(() => accepted(a).size >= 10, "10 of alice's messages accepted");
    expect(await relay.stop("SIGKILL")).toBe(null);
    await a.waitFor((e) => e.type === "connection" && e.status.state === "reconnecting", "alice notices");
    // Typed while the relay is down: they wait in the outbox.
    aliceIds.push(...burst(a, "dm:alice:bob", "a", 40, 10));
    expect(accepted(a).size).toBeLessThan(50);

    relay = await startRelayProcess(dataDir, fast, port);
    await waitUntil(() => aliceIds.every((id) => accepted(a).has(id)) && bobIds.every((id) => accepted(b).has(id)), "every message accepted", 20_000);
    await waitUntil(() => received(b, "a").length >= 50 && received(a, "b").length >= 40, "every message received", 20_000);
    expectExactlyOnceInOrder(received(b, "a"), "a", 50);
    expectExactlyOnceInOrder(received(a, "b"), "b", 40);
    // Nothing refused and nothing failed along the way.
    expect([...a.events, ...b.events].filter((e) => e.type === "refused" || (e.type === "message-state" && e.state === "failed"))).toEqual([]);
  }, 60_000);
});

describe("network faults between client and relay", () => {
  // Load-sensitive: failed in some full runs on a saturated 2-core machine, passes alone (closing
  // note of 2026-12-06). One retry so CI is not decided by machine load; two failures are real.
  it("survives dropped TCP connections with no message lost or duplicated", { retry: 1, timeout: 60_000 }, async () => {
    dir = tempDir();
    const relay = await TestRelay.start();
    cleanups.push(() => relay.cleanup());
    const proxy = await startRecordingProxy("127.0.0.1", relay.running.port);
    cleanups.push(() => proxy.close());
    const a = await client(alice, proxy.port);
    const b = await client(bob, proxy.port);
    await a.waitFor((e) => e.type === "peer" && e.peer.username === "bob" && e.peer.online, "alice sees bob");

    const connects = (c: TestClient) => c.events.filter((e) => e.type === "connection" && e.status.state === "connected").length;
    const ids = burst(a, "dm:alice:bob", "m", 0, 30);
    await waitUntil(() => accepted(a).size >= 5, "some accepted");
    proxy.dropAll();
    ids.push(...burst(a, "dm:alice:bob", "m", 30, 10));
    await waitUntil(() => connects(a) >= 2 && received(b, "m").length >= 20, "alice back and bob receiving after the first drop", 15_000);
    proxy.dropAll();
    ids.push(...burst(a, "dm:alice:bob", "m", 40, 10));
    await waitUntil(() => ids.every((id) => accepted(a).has(id)) && received(b, "m").length >= 50, "all accepted and received", 20_000);
    expectExactlyOnceInOrder(received(b, "m"), "m", 50);
    // The drops were real: alice (sending throughout) came back after each; bob (idle) after at
    // least one (the second may hit him while he is still reconnecting from the first).
    expect(connects(a)).toBeGreaterThanOrEqual(3);
    expect(connects(b)).toBeGreaterThanOrEqual(2);
  });

  it("detects a silent network path with keepalive and recovers", async () => {
    dir = tempDir();
    const relay = await TestRelay.start();
    cleanups.push(() => relay.cleanup());
    const proxy = await startRecordingProxy("127.0.0.1", relay.running.port);
    cleanups.push(() => proxy.close());
    // Production pings every 15 s and waits 10 s (a dead path is found in ~25 s); shortened here.
    const keepalive = { timeMs: 400, timeoutMs: 400 };
    const a = await client(alice, proxy.port, { keepalive });
    const b = await client(bob, relay.running.port);
    await a.waitFor((e) => e.type === "peer" && e.peer.username === "bob" && e.peer.online, "alice sees bob");
    proxy.freezeAll();
    const sent = a.client.send("dm:alice:bob", "through the silence");
    expect(sent.ok).toBe(true);
    await a.waitFor((e) => e.type === "connection" && e.status.state === "reconnecting", "alice's keepalive notices the dead path", 10_000);
    await b.waitForMessage("through the silence", 15_000);
    if (sent.ok) await a.waitForState(sent.value.id, "accepted", 15_000);
    expect(b.messages().filter((m) => m.text === "through the silence").length).toBe(1);
  }, 30_000);
});

describe("recipients who are away", () => {
  it("get their DMs and room messages in order when they come back", async () => {
    dir = tempDir();
    const relay = await TestRelay.start();
    cleanups.push(() => relay.cleanup());
    const port = relay.running.port;
    const a = await client(alice, port);
    let b = await client(bob, port);
    expect((await a.client.joinRoom("#ops")).ok).toBe(true);
    expect((await b.client.joinRoom("#ops")).ok).toBe(true);
    // v2: bob's external commit into the room's group is a membership line at alice.
    await waitUntil(() => sawJoin(a, "#ops", "bob"), "alice sees bob join");
    await b.client.close();
    await a.waitFor((e) => e.type === "peer" && e.peer.username === "bob" && !e.peer.online, "bob is away");

    const order = ["dm-1", "room-1", "dm-2", "room-2", "dm-3"];
    for (const text of order) {
      const r = a.client.send(text.startsWith("dm") ? "dm:alice:bob" : "#ops", text);
      expect(r.ok).toBe(true);
      if (r.ok) {
        const state = await a.waitForState(r.value.id, "accepted");
        expect(state).toMatchObject({ queuedFor: ["bob"] });
      }
    }
    b = await client(bob, port);
    await waitUntil(() => b.messages().filter((m) => !m.own).length >= order.length, "bob's queued messages");
    const got = b.messages().filter((m) => !m.own);
    expect(got.map((m) => m.text)).toEqual(order);
    expect(got.map((m) => m.conversationId)).toEqual(["dm:alice:bob", "#ops", "dm:alice:bob", "#ops", "dm:alice:bob"]);
  }, 30_000);

  it("a room member who joined while bob was away is part of later messages", async () => {
    dir = tempDir();
    const relay = await TestRelay.start();
    cleanups.push(() => relay.cleanup());
    const port = relay.running.port;
    const a = await client(alice, port);
    await a.client.joinRoom("#dev");
    const c = await client(carol, port);
    await c.client.joinRoom("#dev");
    await waitUntil(() => sawJoin(a, "#dev", "carol"), "alice sees carol join");
    const r = a.client.send("#dev", "hello carol");
    expect(r.ok).toBe(true);
    await c.waitForMessage("hello carol");
  });
});

describe("TLS (chat-tui --ca)", () => {
  const fixtures = join(import.meta.dirname, "..", "fixtures", "tls");
  it("connects to a TLS relay with the right CA and refuses one it cannot verify", async () => {
    dir = tempDir();
    const cert = readFileSync(join(fixtures, "relay-cert.pem"));
    const relay = await TestRelay.start({ tls: { cert, key: readFileSync(join(fixtures, "relay-key.pem")) } });
    cleanups.push(() => relay.cleanup());
    const port = relay.running.port;
    const a = await client(alice, port, { transport: { kind: "ca", ca: cert }, reconnect: false });
    const b = await client(bob, port, { transport: { kind: "ca", ca: cert }, reconnect: false });
    await a.waitFor((e) => e.type === "peer" && e.peer.username === "bob" && e.peer.online, "alice sees bob");
    a.client.send("dm:alice:bob", "over TLS");
    await b.waitForMessage("over TLS");
    // The system CAs do not know this self-signed relay: the session fails with a reason.
    await expect(client(carol, port, { transport: { kind: "ca" }, reconnect: false })).rejects.toThrow();
    // Plaintext against a TLS relay fails too.
    await expect(client(carol, port, { transport: { kind: "plaintext" }, reconnect: false })).rejects.toThrow();
  });
});
