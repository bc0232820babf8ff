// Issue 10 §3/§4 against a real relay: room topics and away replies travel sealed like any
// message (PROTOCOL.md §11), a reconnect says how many queued messages it caught up,
// /reconnect wakes the retry loop at once, and the kept history reads in pages and searches
// across every conversation.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { ChatClient } from "../../src/client/chat-client.js";
import { ClientStateStore } from "../../src/client/state-store.js";
import { TrustStore } from "../../src/client/trust-store.js";
import type { SessionEvent } from "../../src/client/types.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { TestClient } from "../helpers/client-harness.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { startRecordingProxy } from "../helpers/recording-proxy.js";
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

async function relay(): Promise<TestRelay> {
  const r = await TestRelay.start();
  cleanups.push(() => r.cleanup());
  return r;
}

async function client(id: PrivateIdentity, port: number, o: Parameters<typeof TestClient.start>[2] = {}): Promise<TestClient> {
  const c = await TestClient.start(id, port, o);
  cleanups.push(() => c.close());
  return c;
}

describe("topics and away replies", () => {
  it("carries a room topic to its members, and refuses one outside a room", async () => {
    const r = await relay();
    const a = await client(alice, r.running.port);
    const b = await client(bob, r.running.port);
    expect((await a.client.joinRoom("#ops")).ok).toBe(true);
    expect((await b.client.joinRoom("#ops")).ok).toBe(true);
    // v2: bob's external commit into the room's group is a membership line at alice.
    await waitUntil(() => sawJoin(a, "#ops", "bob"), "alice sees bob join");
    const sent = a.client.send("#ops", "deploy friday 16:00", "topic");
    expect(sent.ok).toBe(true);
    const got = await b.waitFor((e): e is Extract<SessionEvent, { type: "message" }> => e.type === "message" && e.message.kind === "topic", "bob gets the topic");
    expect(got.message).toMatchObject({ conversationId: "#ops", from: "alice", kind: "topic", text: "deploy friday 16:00" });
    expect(a.client.send("lobby", "not here", "topic")).toEqual({ ok: false, error: { kind: "topic-outside-room" } });
    expect(a.client.send("dm:alice:bob", "nor here", "topic").ok).toBe(false);
  });

  it("while away, the first DM from each person gets one automatic reply; replies are never answered", async () => {
    const r = await relay();
    const a = await client(alice, r.running.port);
    const b = await client(bob, r.running.port);
    await a.waitFor((e) => e.type === "peer" && e.peer.username === "bob" && e.peer.online, "alice sees bob");
    b.client.setAway("at lunch until 2");
    // Alice is away too: bob's automatic reply must not be answered automatically (no loop).
    a.client.setAway("also away");
    a.client.send("dm:alice:bob", "are you there?");
    const reply = await a.waitFor((e): e is Extract<SessionEvent, { type: "message" }> => e.type === "message" && e.message.kind === "away", "alice gets the away reply");
    expect(reply.message).toMatchObject({ conversationId: "dm:alice:bob", from: "bob", text: "at lunch until 2" });
    const awaysFrom = (t: TestClient, from: string) => t.events.filter((e) => e.type === "message" && e.message.kind === "away" && e.message.from === from).length;
    // Alice decided as she showed it: no automatic answer of hers exists.
    expect(awaysFrom(a, "alice")).toBe(0);
    // Alice's sends are ordered: had she answered, bob would get it before this.
    a.client.send("dm:alice:bob", "second try");
    await b.waitForMessage("second try");
    expect(awaysFrom(b, "alice")).toBe(0);
    // One reply per person: the second DM got none.
    expect(awaysFrom(a, "bob")).toBe(1);
    // Back: bob stops answering (a new person would get nothing either).
    b.client.setAway(undefined);
    a.client.setAway(undefined);
    a.client.send("dm:alice:bob", "third");
    await b.waitForMessage("third");
    const end = b.client.send("dm:alice:bob", "end");
    if (!end.ok) throw new Error(describeClientError(end.error));
    await a.waitForMessage("end");
    expect(awaysFrom(a, "bob")).toBe(1);
  });
});

describe("reconnecting", () => {
  it("says how many queued messages a reconnect caught up; /reconnect does not wait for the backoff", async () => {
    const r = await relay();
    const proxy = await startRecordingProxy("127.0.0.1", r.running.port);
    cleanups.push(() => proxy.close());
    // A backoff of a minute: only reconnectNow() can bring alice back within the test.
    const a = await client(alice, proxy.port, { reconnect: { initialMs: 60_000, maxMs: 60_000 } });
    const b = await client(bob, r.running.port);
    await a.waitFor((e) => e.type === "caught-up", "the first connection");
    expect(a.events.find((e) => e.type === "caught-up")).toEqual({ type: "caught-up", count: 0, reconnect: false });
    expect(a.client.reconnectNow()).toEqual({ ok: false, error: { kind: "already-connected" } });

    proxy.dropAll();
    await a.waitFor((e) => e.type === "connection" && e.status.state === "reconnecting", "alice notices the drop");
    await b.waitFor((e) => e.type === "peer" && e.peer.username === "alice" && !e.peer.online, "bob sees alice offline");
    for (const text of ["one", "two", "three"]) {
      const s = b.client.send("dm:alice:bob", text);
      if (!s.ok) throw new Error(describeClientError(s.error));
      await b.waitForState(s.value.id, "accepted");
    }
    expect(a.client.reconnectNow()).toEqual({ ok: true, value: "reconnecting-now" });
    const caught = await a.waitFor((e) => e.type === "caught-up" && e.reconnect, "the reconnect caught up");
    expect(caught).toEqual({ type: "caught-up", count: 3, reconnect: true });
    expect(a.messages("dm:alice:bob").map((m) => m.text)).toEqual(["one", "two", "three"]);
  });
});

describe("the kept history", () => {
  it("reads in pages, older first, and searches every conversation", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sc-client-features-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const r = await relay();
    const a = await client(alice, r.running.port, { dir, statePath: join(dir, "alice_state.db") });
    const b = await client(bob, r.running.port);
    await a.waitFor((e) => e.type === "peer" && e.peer.username === "bob" && e.peer.online, "alice sees bob");
    for (let i = 0; i < 7; i++) {
      const s = a.client.send("lobby", `lobby ${i}${i === 5 ? " needle" : ""}`);
      if (!s.ok) throw new Error(describeClientError(s.error));
      await a.waitForState(s.value.id, "accepted");
    }
    b.client.send("dm:alice:bob", "a NEEDLE in the dm");
    await a.waitForMessage("a NEEDLE in the dm");

    const newest = a.client.olderHistory("lobby", undefined, 3);
    expect(newest.map((m) => m.text)).toEqual(["lobby 4", "lobby 5 needle", "lobby 6"]);
    const older = a.client.olderHistory("lobby", newest[0]!, 3);
    expect(older.map((m) => m.text)).toEqual(["lobby 1", "lobby 2", "lobby 3"]);
    expect(a.client.olderHistory("lobby", older[0]!, 3).map((m) => m.text)).toEqual(["lobby 0"]);
    expect(() => a.client.olderHistory("lobby", { id: "not hex", from: "bob" }, 3)).toThrow(TypeError);
    expect(() => a.client.olderHistory("lobby", undefined, 0)).toThrow(RangeError);

    expect(a.client.searchHistory("needle").map((m) => [m.conversationId, m.text])).toEqual([
      ["lobby", "lobby 5 needle"], ["dm:alice:bob", "a NEEDLE in the dm"],
    ]);
    // Settings are kept beside the history.
    a.client.saveSetting("tui", '{"highlights":["deploy"]}');
    expect(a.client.loadSetting("tui")).toBe('{"highlights":["deploy"]}');
  });

  it("a restart does not bring back a DM with someone never pinned here", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sc-client-features-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const r = await relay();
    const a = await client(alice, r.running.port, { dir, statePath: join(dir, "alice_state.db") });
    await waitUntil(() => a.events.find((e) => e.type === "caught-up"), "alice connected");
    // A typo'd name: the message fails (no such user) and is kept as failed.
    const typo = a.client.send("dm:alice:bobb", "hi bob?");
    if (!typo.ok) throw new Error(describeClientError(typo.error));
    await a.waitForState(typo.value.id, "failed");
    const kept = a.client.send("lobby", "kept");
    if (!kept.ok) throw new Error(describeClientError(kept.error));
    await a.waitFor((e) => e.type === "message-state" && e.id === kept.value.id, "the lobby message settled");
    await a.close();

    const state = ClientStateStore.open(join(dir, "alice_state.db"));
    const trust = await TrustStore.open(join(dir, "alice_known_peers.json"));
    const again = new ChatClient({ identity: alice, server: "127.0.0.1:1", trust, state, reconnect: false });
    cleanups.push(() => again.close());
    const backlog = again.backlog();
    expect(backlog.some((m) => m.conversationId === "dm:alice:bobb")).toBe(false);
    expect(backlog.some((m) => m.conversationId === "lobby" && m.text === "kept")).toBe(true);
  });
});
