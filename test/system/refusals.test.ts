// Every refusal by the relay reaches the sender as a failed message with a specific sentence
// (what the TUI shows as "✗ reason"), and the session goes on.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import type { SessionEvent } from "../../src/client/types.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { TestClient } from "../helpers/client-harness.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { TestRelay, type TestRelayOptions } from "../helpers/relay-harness.js";
import { waitUntil } from "../helpers/wait.js";

let alice: PrivateIdentity;
let bob: PrivateIdentity;
let carol: PrivateIdentity;
const cleanups: Array<() => Promise<unknown> | unknown> = [];

beforeAll(async () => {
  [alice, bob, carol] = await Promise.all([fixtureIdentity("alice"), fixtureIdentity("bob"), fixtureIdentity("carol")]);
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(limits: TestRelayOptions["limits"], ...ids: PrivateIdentity[]): Promise<TestClient[]> {
  return (await setupOn(limits, ...ids)).clients;
}

/** The relay and one client per identity, each online with its KeyPackages on the relay (PROTOCOL.md §8.2: so others can add them while they are away). */
async function setupOn(limits: TestRelayOptions["limits"], ...ids: PrivateIdentity[]): Promise<{ relay: TestRelay; clients: TestClient[] }> {
  const relay = await TestRelay.start({ limits });
  cleanups.push(() => relay.cleanup());
  const dir = mkdtempSync(join(tmpdir(), "sc-refusals-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const clients: TestClient[] = [];
  for (const id of ids) {
    const c = await TestClient.start(id, relay.running.port, { dir });
    cleanups.push(() => c.close());
    clients.push(c);
    await relay.waitForLog("mls.key_packages.published", (l) => l.user === id.username, 10_000);
  }
  return { relay, clients };
}

function failures(c: TestClient): Array<SessionEvent & { type: "message-state" }> {
  return c.events.filter((e): e is SessionEvent & { type: "message-state" } => e.type === "message-state" && e.state === "failed");
}

describe("refusals reach the sender", () => {
  it("rate limit: quick messages wait their turn at the relay's pace instead of failing", async () => {
    const [a, b] = await setup({ messagesPerSecond: 2, burst: 3 }, alice, bob);
    await a!.waitFor((e) => e.type === "peer" && e.peer.username === "bob" && e.peer.online, "bob online");
    for (let i = 0; i < 5; i++) a!.client.send("dm:alice:bob", `fast ${i}`);
    await waitUntil(() => b!.messages().length === 5, "all five delivered");
    expect(b!.messages().map((m) => m.text)).toEqual(["fast 0", "fast 1", "fast 2", "fast 3", "fast 4"]);
    expect(failures(a!)).toEqual([]);
  });

  it("full queue: names the recipient whose queue is full", async () => {
    // Three rows for carol: the Welcome to the DM's group alice makes on her first send, and two messages.
    const [a, , c] = await setup({ maxQueuePerUser: 3 }, alice, bob, carol);
    await a!.waitFor((e) => e.type === "peer" && e.peer.username === "carol" && e.peer.online, "carol online");
    await c!.close(); // carol goes away; her queue fills
    await a!.waitFor((e) => e.type === "peer" && e.peer.username === "carol" && !e.peer.online, "carol away");
    for (let i = 0; i < 3; i++) a!.client.send("dm:alice:carol", `for later ${i}`);
    await waitUntil(() => failures(a!).length === 1, "one refusal");
    expect(failures(a!)[0]!.failure).toMatch(/queue for 'carol' is full/);
    // Everyone else keeps chatting.
    const ok = a!.client.send("dm:alice:bob", "still here");
    expect(ok.ok).toBe(true);
    if (ok.ok) await a!.waitForState(ok.value.id, "accepted");
  });

  it("too many recipients: a conversation past the relay's limit is refused with that limit before any message reaches the newcomer", async () => {
    // v2: a conversation is an MLS group and every message reaches each member, so the relay's
    // max_recipients bounds the group (was: the recipients of one v1 envelope).
    const { clients } = await setupOn({ maxRecipients: 2 }, alice, bob, carol);
    const [a, b, c] = clients as [TestClient, TestClient, TestClient];
    const full = (conv: string) => `${conv} would have 3 members; this relay allows at most 2, the most one message can reach`;
    // The lobby holds alice and bob: carol is told, in the relay's words, where the lobby shows.
    await c.waitFor((e) => e.type === "notice" && e.text === `you cannot enter the lobby: ${full("lobby")}`, "carol told the lobby is full");
    const sent = a.client.send("lobby", "to all who can read it");
    expect(sent.ok).toBe(true);
    if (sent.ok) await a.waitForState(sent.value.id, "accepted");
    await b.waitForMessage("to all who can read it");
    // A room: alice and bob are in #pair; carol joining or alice inviting her is refused with the limit.
    expect((await a.client.joinRoom("#pair")).ok).toBe(true);
    expect((await b.client.joinRoom("#pair")).ok).toBe(true);
    expect(await c.client.joinRoom("#pair")).toMatchObject({ ok: false, error: { kind: "refused", detail: full("#pair") } });
    expect(await a.client.invite!("#pair", "carol")).toMatchObject({ ok: false, error: { kind: "refused", detail: full("#pair") } });
    // The pair keeps talking; carol got nothing of the lobby nor of #pair.
    const ok = a.client.send("#pair", "just us");
    expect(ok.ok).toBe(true);
    await b.waitForMessage("just us");
    expect(c.messages().filter((m) => !m.own)).toEqual([]);
    expect(failures(a)).toEqual([]);
  });

  it("text too large for this relay: refused locally, naming the relay's limit", async () => {
    const [a] = await setup({ maxTextBytes: 100 }, alice, bob);
    expect(a!.client.send("dm:alice:bob", "y".repeat(101))).toEqual({ ok: false, error: { kind: "too-large", bytes: 101, max: 100 } });
  });
});
