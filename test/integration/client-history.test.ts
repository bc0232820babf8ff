// The client's kept history and unsent messages across a restart, against a real relay
// (PROTOCOL.md §10.4): what was on screen comes back, nothing of it is in the file in the clear,
// and --no-history keeps none.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { DatabaseSync } from "node:sqlite";
import { ChatClient } from "../../src/client/chat-client.js";
import { MlsKeyStore } from "../../src/client/mls-store.js";
import { ClientStateStore } from "../../src/client/state-store.js";
import { TrustStore } from "../../src/client/trust-store.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { TestClient } from "../helpers/client-harness.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { sqliteFileBytes } from "../helpers/sqlite-bytes.js";
import { TestRelay } from "../helpers/relay-harness.js";
import { sawJoin } from "../helpers/v2-waits.js";
import { waitUntil } from "../helpers/wait.js";
import { describeClientError } from "../../src/client/errors.js";

let alice: PrivateIdentity;
let bob: PrivateIdentity;
const cleanups: Array<() => Promise<unknown> | unknown> = [];

beforeAll(async () => {
  [alice, bob] = await Promise.all([fixtureIdentity("alice"), fixtureIdentity("bob")]);
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "sc-client-history-"));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

async function relay(): Promise<TestRelay> {
  const r = await TestRelay.start();
  cleanups.push(() => r.cleanup());
  return r;
}


/** A client on the same files as before a restart, not connected: what the TUI shows at start. */
async function restarted(id: PrivateIdentity, dir: string, history = true): Promise<ChatClient> {
  const state = ClientStateStore.open(join(dir, `${id.username}_state.db`));
  const trust = await TrustStore.open(join(dir, `${id.username}_known_peers.json`));
  // v2, as chat-tui: the MLS key store beside the state db (TestClient's <dir>/<user>_mls.db).
  const v2 = { store: MlsKeyStore.open(join(dir, `${id.username}_mls.db`), { username: id.username, sigPrivate: id.sigPrivate }) };
  const client = new ChatClient({ identity: id, server: "127.0.0.1:1", trust, state, reconnect: false, history, v2 });
  cleanups.push(() => client.close());
  return client;
}

describe("history across a restart", () => {
  it("shows the conversations again, with my messages' states, and keeps no text in the clear", async () => {
    const r = await relay();
    const dir = tempDir();
    const statePath = join(dir, "alice_state.db");
    const a = await TestClient.start(alice, r.running.port, { dir, statePath });
    const b = await TestClient.start(bob, r.running.port);
    cleanups.push(() => b.close());
    await a.waitFor((e) => e.type === "peer" && e.peer.username === "bob" && e.peer.online, "alice sees bob online");

    const hello = a.client.send("lobby", "hello everyone, the deploy is at noon");
    expect(hello.ok).toBe(true);
    if (!hello.ok) return;
    await a.waitForState(hello.value.id, "accepted");
    b.client.send("dm:alice:bob", "psst: the vault code is 4711");
    await a.waitForMessage("psst: the vault code is 4711");
    await a.close();

    const bytes = sqliteFileBytes(statePath);
    for (const secret of ["the deploy is at noon", "the vault code is 4711"]) expect(bytes.includes(Buffer.from(secret))).toBe(false);

    const again = await restarted(alice, dir);
    const backlog = again.backlog();
    expect(backlog.map((m) => [m.conversationId, m.from, m.text, m.own, m.state])).toEqual([
      ["lobby", "alice", "hello everyone, the deploy is at noon", true, "accepted"],
      ["dm:alice:bob", "bob", "psst: the vault code is 4711", false, undefined],
    ]);

    // /clear forgets a conversation for good.
    again.forgetHistory("dm:alice:bob");
    expect(again.backlog().map((m) => m.conversationId)).toEqual(["lobby"]);
  });

  it("keeps an unsent message's text sealed in the outbox and shows it pending after the restart", async () => {
    const r = await relay();
    const dir = tempDir();
    const statePath = join(dir, "alice_state.db");
    const b = await TestClient.start(bob, r.running.port);
    cleanups.push(() => b.close());
    const a = await TestClient.start(alice, r.running.port, { dir, statePath });
    await waitUntil(() => sawJoin(a, "lobby", "alice"), "alice in the lobby's group (v2)", 30_000);
    await r.stop();
    await a.waitFor((e) => e.type === "connection" && e.status.state !== "connected", "alice sees the relay go");
    const sent = a.client.send("lobby", "written while the relay was down");
    expect(sent.ok).toBe(true);
    await a.close();

    expect(sqliteFileBytes(statePath).includes(Buffer.from("written while the relay was down"))).toBe(false);
    // v2 keeps it in mls_outbox (src/client/mls/outbox-store.ts), its text sealed at rest.
    const db = new DatabaseSync(statePath);
    const rows = db.prepare("SELECT text FROM mls_outbox").all() as Array<{ text: unknown }>;
    db.close();
    expect(rows.map((e) => e.text instanceof Uint8Array && !Buffer.from(e.text).includes(Buffer.from("written while")))).toEqual([true]);

    const again = await restarted(alice, dir);
    expect(again.backlog().map((m) => [m.text, m.state])).toEqual([["written while the relay was down", "pending"]]);
  });

  it("shows a refused message as failed after the restart, and it can still be retried", async () => {
    // bob is away and his queue holds one envelope: the second message is refused (QUEUE_FULL).
    const r = await TestRelay.start({ limits: { maxQueuePerUser: 1 } });
    cleanups.push(() => r.cleanup());
    const dir = tempDir();
    const b = await TestClient.start(bob, r.running.port);
    const a = await TestClient.start(alice, r.running.port, { dir, statePath: join(dir, "alice_state.db") });
    await a.waitFor((e) => e.type === "peer" && e.peer.username === "bob" && e.peer.online, "alice sees bob");
    await b.close();
    await a.waitFor((e) => e.type === "peer" && e.peer.username === "bob" && !e.peer.online, "bob away");
    const first = a.client.send("dm:alice:bob", "first");
    const second = a.client.send("dm:alice:bob", "second, no room");
    if (!first.ok || !second.ok) throw new Error("not sent");
    await a.waitForState(second.value.id, "failed");
    await a.close();

    const again = await restarted(alice, dir);
    const failed = again.backlog().find((m) => m.id === second.value.id);
    expect(failed).toMatchObject({ text: "second, no room", state: "failed" });
    expect(failed?.failure).toMatch(/queue for 'bob' is full/);
    const retried = again.retry("dm:alice:bob", second.value.id);
    expect(retried.ok).toBe(true);
    // Sealed and in the outbox, waiting for the relay.
    await waitUntil(() => again.pendingMessages().length === 1, "the retried message in the outbox");
    expect(again.pendingMessages().map((m) => m.text)).toEqual(["second, no room"]);
    // Once retried, the failed copy is gone: the next start shows the text once, pending.
    expect(again.backlog().filter((m) => m.text === "second, no room").map((m) => [m.id === second.value.id, m.state])).toEqual([[false, "pending"]]);
  });

  it("with history off, shows only unsent messages and keeps nothing else", async () => {
    const r = await relay();
    const dir = tempDir();
    const statePath = join(dir, "alice_state.db");
    const a = await TestClient.start(alice, r.running.port, { dir, statePath, history: false });
    const hello = a.client.send("lobby", "not kept");
    if (!hello.ok) throw new Error(describeClientError(hello.error));
    await a.waitForState(hello.value.id, "accepted");
    await a.close();

    expect((await restarted(alice, dir, false)).backlog()).toEqual([]);
    // Turning it on later finds nothing from the run that had it off.
    expect((await restarted(alice, dir, true)).backlog()).toEqual([]);
  });
});
