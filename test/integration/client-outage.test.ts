// After an outage, every queued message goes through once, in order, with no refusal (issue 16):
// real ChatClients against a real relay with small limits, behind a proxy that can cut the
// network, keep it down, or lose the relay's answers.
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { describeClientError } from "../../src/client/errors.js";
import type { ChatMessage, SessionEvent } from "../../src/client/types.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { releaseUsername } from "../../src/server/users-command.js";
import { TestClient } from "../helpers/client-harness.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { startRecordingProxy, type RecordingProxy } from "../helpers/recording-proxy.js";
import { TestRelay, type TestRelayOptions } from "../helpers/relay-harness.js";
import { waitUntil } from "../helpers/wait.js";

let alice: PrivateIdentity;
let bob: PrivateIdentity;
const cleanups: Array<() => Promise<unknown> | unknown> = [];
const FAST_RECONNECT = { initialMs: 40, maxMs: 5_000 };

beforeAll(async () => {
  [alice, bob] = await Promise.all([fixtureIdentity("alice"), fixtureIdentity("bob")]);
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(o: TestRelayOptions): Promise<{ relay: TestRelay; proxy: RecordingProxy }> {
  const relay = await TestRelay.start(o);
  cleanups.push(() => relay.cleanup());
  const proxy = await startRecordingProxy("127.0.0.1", relay.running.port);
  cleanups.push(() => proxy.close());
  return { relay, proxy };
}

async function client(id: PrivateIdentity, port: number, o: Parameters<typeof TestClient.start>[2] = {}): Promise<TestClient> {
  const c = await TestClient.start(id, port, { reconnect: FAST_RECONNECT, ...o });
  cleanups.push(() => c.close());
  return c;
}

function sendAll(c: TestClient, conversationId: string, prefix: string, from: number, n: number): string[] {
  const ids: string[] = [];
  for (let i = from; i < from + n; i++) {
    const r = c.client.send(conversationId, `${prefix}-${i}`);
    if (!r.ok) throw new Error(`send ${prefix}-${i}: ${describeClientError(r.error)}`);
    ids.push(r.value.id);
  }
  return ids;
}

const accepted = (c: TestClient) => new Set(c.events.flatMap((e) => (e.type === "message-state" && e.state === "accepted" ? [e.id] : [])));
const failures = (c: TestClient) => c.events.filter((e) => e.type === "message-state" && e.state === "failed");
const received = (c: TestClient, prefix: string): ChatMessage[] => c.messages().filter((m) => !m.own && m.text.startsWith(`${prefix}-`));
const rateRefusals = (r: TestRelay) => r.logs.filter((l) => l.event === "send.refused" && l["code"] === "ERROR_CODE_RATE_LIMITED").length;
const connects = (c: TestClient) => c.events.filter((e) => e.type === "connection" && e.status.state === "connected").length;

function expectExactlyOnceInOrder(got: ChatMessage[], prefix: string, n: number): void {
  expect(got.map((m) => m.text)).toEqual(Array.from({ length: n }, (_, i) => `${prefix}-${i}`));
  expect(new Set(got.map((m) => m.id)).size).toBe(n);
  expect(got.filter((m) => m.gap)).toEqual([]);
}

describe("reconnect backoff", () => {
  it("starts again from its minimum after every session that reached Welcome, however it ended", async () => {
    const { proxy } = await setup({});
    const delays: number[] = [];
    const attempts: number[] = [];
    const a = await client(alice, proxy.port, { random: () => 1 });
    a.client.subscribe((e: SessionEvent) => {
      if (e.type === "connection" && e.status.state === "reconnecting") {
        delays.push(e.status.retryAtMs - Date.now());
        attempts.push(e.status.attempt);
      }
    });
    for (let drop = 1; drop <= 5; drop++) {
      proxy.dropAll(); // the session ends with an error (not cleanly), like a relay crash
      await waitUntil(() => connects(a) === drop + 1, `alice back after drop ${drop}`);
    }
    // Without the reset these were attempts 1..5 waiting 40, 80, 160, 320, 640 ms.
    expect(attempts).toEqual([1, 1, 1, 1, 1]);
    for (const d of delays) expect(d).toBeGreaterThan(30), expect(d).toBeLessThanOrEqual(40);
  });

  it("the countdown is honest: the next attempt starts when it reaches zero, not before", async () => {
    const { proxy } = await setup({});
    const a = await client(alice, proxy.port, { random: () => 1, reconnect: { initialMs: 200, maxMs: 1_000 } });
    const seen: Array<{ state: string; at: number; retryAtMs?: number }> = [];
    a.client.subscribe((e) => {
      if (e.type === "connection") seen.push({ state: e.status.state, at: Date.now(), ...(e.status.state === "reconnecting" ? { retryAtMs: e.status.retryAtMs } : {}) });
    });
    proxy.setDown(true);
    await waitUntil(() => seen.filter((s) => s.state === "reconnecting").length >= 3, "three failed attempts while down");
    proxy.setDown(false);
    await waitUntil(() => seen.some((s) => s.state === "connected"), "alice back");
    for (let i = 0; i + 1 < seen.length; i++) {
      const s = seen[i]!;
      if (s.state !== "reconnecting") continue;
      expect(seen[i + 1]!.state).toBe("connecting");
      expect(seen[i + 1]!.at).toBeGreaterThanOrEqual(s.retryAtMs! - 1);
    }
    // While down, the attempts count up and the waits grow: 200, 400, 800 ms.
    const waits = seen.filter((s) => s.state === "reconnecting").slice(0, 3).map((s) => Math.round((s.retryAtMs! - s.at) / 100) * 100);
    expect(waits).toEqual([200, 400, 800]);
  });
});

describe("the outbox drains at the relay's pace", () => {
  it("messages typed during repeated outages are all accepted, in order, with no refusal (rate 5/s, burst 3)", async () => {
    const { relay, proxy } = await setup({ limits: { messagesPerSecond: 5, burst: 3 } });
    const a = await client(alice, proxy.port);
    const b = await client(bob, relay.running.port);
    await a.waitFor((e) => e.type === "peer" && e.peer.username === "bob" && e.peer.online, "alice sees bob");
    const ids = sendAll(a, "dm:alice:bob", "m", 0, 1); // pins bob's keys while connected
    await a.waitForState(ids[0]!, "accepted");
    for (const [from, n] of [[1, 12], [13, 8]] as const) {
      proxy.setDown(true);
      await a.waitFor((e) => e.type === "connection" && e.status.state === "reconnecting", "alice notices the outage");
      ids.push(...sendAll(a, "dm:alice:bob", "m", from, n));
      expect(ids.filter((id) => accepted(a).has(id)).length).toBe(from);
      const before = connects(a);
      proxy.setDown(false);
      await waitUntil(() => connects(a) > before, "alice back");
      // Typing goes on while the backlog drains.
      ids.push(...sendAll(a, "dm:alice:bob", "m", from + n, 0));
      await waitUntil(() => ids.every((id) => accepted(a).has(id)), "every message accepted", 20_000);
    }
    await waitUntil(() => received(b, "m").length >= 21, "bob has them all");
    expectExactlyOnceInOrder(received(b, "m"), "m", 21);
    expect(failures(a)).toEqual([]);
    expect(rateRefusals(relay)).toBe(0);
  }, 60_000);

  // The issue's own scenario (29-39 refusals before). Whether the old client was refused here
  // depends on how fast the relay reads (on a loaded machine it reads slower than its rate); the
  // small-limits test above is the one that fails deterministically without pacing.
  it("100 messages typed while the relay was unreachable, at the relay's default limits (20/s, burst 60)", async () => {
    const { relay, proxy } = await setup({});
    const a = await client(alice, proxy.port);
    const b = await client(bob, relay.running.port);
    await a.waitFor((e) => e.type === "peer" && e.peer.username === "bob" && e.peer.online, "alice sees bob");
    const ids = sendAll(a, "dm:alice:bob", "o", 0, 1);
    await a.waitForState(ids[0]!, "accepted");
    proxy.setDown(true);
    await a.waitFor((e) => e.type === "connection" && e.status.state === "reconnecting", "alice notices the outage");
    ids.push(...sendAll(a, "dm:alice:bob", "o", 1, 100));
    await waitUntil(() => a.client.pendingMessages().length === 100, "all 100 sealed into the outbox");
    proxy.setDown(false);
    await waitUntil(() => ids.every((id) => accepted(a).has(id)), "all 101 accepted", 30_000);
    await waitUntil(() => received(b, "o").length >= 101, "bob has them all");
    expectExactlyOnceInOrder(received(b, "o"), "o", 101);
    expect(failures(a)).toEqual([]);
    expect(rateRefusals(relay)).toBe(0);
  }, 60_000);

  it("200 quick lines are delivered without a refusal, shown pending until the relay has them", async () => {
    const { relay } = await setup({ limits: { messagesPerSecond: 60, burst: 20 } });
    const a = await client(alice, relay.running.port);
    const b = await client(bob, relay.running.port);
    await a.waitFor((e) => e.type === "peer" && e.peer.username === "bob" && e.peer.online, "alice sees bob");
    const first = sendAll(a, "dm:alice:bob", "q", 0, 1);
    await a.waitForState(first[0]!, "accepted");
    const ids = [...first, ...sendAll(a, "dm:alice:bob", "q", 1, 199)];
    const later = new Set(ids.slice(1));
    expect(a.messages("dm:alice:bob").filter((m) => later.has(m.id) && m.state === "pending").length).toBe(199);
    await waitUntil(() => ids.every((id) => accepted(a).has(id)), "all 200 accepted", 30_000);
    await waitUntil(() => received(b, "q").length >= 200, "bob has all 200", 10_000);
    expectExactlyOnceInOrder(received(b, "q"), "q", 200);
    expect(failures(a)).toEqual([]);
    expect(rateRefusals(relay)).toBe(0);
  }, 60_000);

  it("a resend of messages whose answers were lost is paced too: accepted once each, never refused", async () => {
    const { relay, proxy } = await setup({ limits: { messagesPerSecond: 5, burst: 3 } });
    const a = await client(alice, proxy.port);
    const b = await client(bob, relay.running.port);
    await a.waitFor((e) => e.type === "peer" && e.peer.username === "bob" && e.peer.online, "alice sees bob");
    const ids = sendAll(a, "dm:alice:bob", "d", 0, 1);
    await a.waitForState(ids[0]!, "accepted");
    proxy.muteAnswers();
    ids.push(...sendAll(a, "dm:alice:bob", "d", 1, 9));
    // v2 sends a conversation's messages one at a time, each after the answer to the one before
    // (its MLS state moves with each): the relay stores the one in flight; alice hears nothing back.
    await waitUntil(() => received(b, "d").length >= 2, "bob has the one in flight", 20_000);
    expect(ids.slice(1).some((id) => accepted(a).has(id))).toBe(false);
    proxy.dropAll();
    await waitUntil(() => ids.every((id) => accepted(a).has(id)), "the resend is answered ACCEPTED, the rest follow", 20_000);
    await waitUntil(() => received(b, "d").length >= 10, "bob has them all", 20_000);
    expectExactlyOnceInOrder(received(b, "d"), "d", 10);
    // The one whose answer was lost went again as the same bytes and was taken once.
    expect(relay.logs.filter((l) => l.event === "send.duplicate").length).toBe(1);
    expect(failures(a)).toEqual([]);
    expect(rateRefusals(relay)).toBe(0);
  }, 60_000);

  it("when the relay says 'too fast' anyway (its clock runs slow), the message is sent again and never shown failed", async () => {
    // The relay's clock stands still: after its burst every message is refused until it moves.
    // (v2: it stands still once the DM's group exists; the KeyPackages, the lobby and the group's
    // creation are requests of their own, which v1 did not make.)
    let relayNow: number | undefined;
    const { relay } = await setup({ limits: { messagesPerSecond: 2, burst: 3 }, clock: () => relayNow ?? Date.now() });
    const a = await client(alice, relay.running.port);
    const b = await client(bob, relay.running.port);
    await a.waitFor((e) => e.type === "peer" && e.peer.username === "bob" && e.peer.online, "alice sees bob");
    const ids = sendAll(a, "dm:alice:bob", "s", 0, 1);
    await a.waitForState(ids[0]!, "accepted", 30_000);
    await b.waitForMessage("s-0", 30_000);
    relayNow = Date.now();
    ids.push(...sendAll(a, "dm:alice:bob", "s", 1, 6));
    await waitUntil(() => rateRefusals(relay) >= 2, "the relay refuses some as too fast");
    expect(failures(a)).toEqual([]);
    expect(a.messages("dm:alice:bob").filter((m) => m.own && m.state === "pending").length).toBe(7);
    // The relay's clock moves again: everything goes through, in order.
    await waitUntil(() => {
      relayNow! += 250;
      return ids.every((id) => accepted(a).has(id));
    }, "every message accepted", 30_000);
    await waitUntil(() => received(b, "s").length >= 7, "bob has them all");
    expectExactlyOnceInOrder(received(b, "s"), "s", 7);
    expect(failures(a)).toEqual([]);
  }, 60_000);
});

describe("a name taken by another key (a lost key)", () => {
  it("says what to do, keeps trying with backoff, and connects once the operator released the name", async () => {
    const { relay } = await setup({});
    const oldBob = await client(bob, relay.running.port);
    await oldBob.client.close();
    const newKey = await fixtureIdentity("mallory", "bob"); // bob's new key, after losing the old one
    const nb = await TestClient.begin(newKey, relay.running.port, { reconnect: { initialMs: 50, maxMs: 400 } });
    cleanups.push(() => nb.close());
    const taken = await nb.waitFor((e) => e.type === "connection" && e.status.state === "reconnecting", "bob's new key is refused");
    expect(taken).toMatchObject({
      status: { reason: "the name 'bob' is taken on this relay by another key. Lost your key? Ask the relay's operator to run: chat-relay users release bob (retrying until then)" },
    });
    // Said once in the conversation, not at every attempt.
    await waitUntil(() => nb.events.filter((e) => e.type === "connection" && e.status.state === "reconnecting").length >= 3, "three attempts");
    expect(nb.events.filter((e) => e.type === "notice" && e.level === "error" && /chat-relay users release bob/.test(e.text)).length).toBe(1);
    expect(nb.events.some((e) => e.type === "connection" && e.status.state === "failed")).toBe(false);
    // The operator runs `chat-relay users release bob` on the relay's data dir (the same function).
    expect(releaseUsername(relay.dataDir, "bob")).toBe(true);
    await nb.client.waitConnected(10_000);
    const a = await client(alice, relay.running.port);
    await a.waitFor((e) => e.type === "peer" && e.peer.username === "bob" && e.peer.online, "alice sees the new bob");
  }, 30_000);
});
