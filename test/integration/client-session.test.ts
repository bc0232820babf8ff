// Real ChatClient sessions against a real relay on 127.0.0.1:0: everything a user does in the
// first version, end to end below the UI.
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { releaseUsername } from "../../src/server/users-command.js";
import { TestClient } from "../helpers/client-harness.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { TestRelay } from "../helpers/relay-harness.js";
import { describeClientError } from "../../src/client/errors.js";
import { sawJoin, waitLobby } from "../helpers/v2-waits.js";
import { waitUntil } from "../helpers/wait.js";

let alice: PrivateIdentity;
let bob: PrivateIdentity;
let carol: PrivateIdentity;
let fakeBob: PrivateIdentity;
let fixtureDave: PrivateIdentity;
const cleanups: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  [alice, bob, carol, fakeBob, fixtureDave] = await Promise.all([
    fixtureIdentity("alice"), fixtureIdentity("bob"), fixtureIdentity("carol"), fixtureIdentity("mallory", "bob"), fixtureIdentity("dave"),
  ]);
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function relay(): Promise<TestRelay> {
  const r = await TestRelay.start();
  cleanups.push(() => r.cleanup());
  return r;
}

async function client(id: PrivateIdentity, r: TestRelay, o: Parameters<typeof TestClient.start>[2] = {}): Promise<TestClient> {
  const c = await TestClient.start(id, r.running.port, o);
  cleanups.push(() => c.close());
  return c;
}

describe("ChatClient against a real relay", () => {
  it("talks to everyone, privately, and back; states go pending -> accepted", async () => {
    const r = await relay();
    const a = await client(alice, r);
    const b = await client(bob, r);
    await a.waitFor((e) => e.type === "peer" && e.peer.username === "bob" && e.peer.online, "alice sees bob online");
    // v2: the lobby is an MLS group; bob reads it once his external commit is in alice's group.
    await waitLobby([a, b]);

    const lobby = a.client.send("lobby", "hello everyone");
    expect(lobby.ok).toBe(true);
    if (!lobby.ok) return;
    expect(a.messages("lobby")[0]).toMatchObject({ text: "hello everyone", own: true, state: "pending" });
    await a.waitForState(lobby.value.id, "accepted");
    expect((await b.waitForMessage("hello everyone")).conversationId).toBe("lobby");

    const dm = a.client.send("dm:alice:bob", "just for you");
    expect(dm.ok).toBe(true);
    const got = await b.waitForMessage("just for you");
    expect(got).toMatchObject({ from: "alice", conversationId: "dm:alice:bob" });
    expect(got.gap ?? false).toBe(false); // the first message of a DM chain: nothing missing (v2 says false, v1 left it out)
    b.client.send("dm:alice:bob", "thanks!");
    expect((await a.waitForMessage("thanks!")).from).toBe("bob");
    // Nobody sees their own message come back from the relay.
    expect(a.messages().filter((m) => !m.own).map((m) => m.text)).toEqual(["thanks!"]);
  });

  it("reaches a user who joins later at once", async () => {
    const r = await relay();
    const a = await client(alice, r);
    const c = await client(carol, r);
    await a.waitFor((e) => e.type === "peer" && e.peer.username === "carol" && e.peer.online, "alice learns of carol");
    const sent = a.client.send("dm:alice:carol", "welcome carol");
    expect(sent.ok).toBe(true);
    await c.waitForMessage("welcome carol");
  });

  it("sanitises what a peer sends before anyone displays it", async () => {
    const r = await relay();
    const a = await client(alice, r);
    const b = await client(bob, r);
    await a.waitFor((e) => e.type === "peer" && e.peer.username === "bob" && e.peer.online, "bob online");
    a.client.send("dm:alice:bob", "\x1b[2J\x1b]0;pwned\x07hi\u202e");
    const m = await b.waitFor((e) => e.type === "message" && !e.message.own, "bob receives");
    expect(m.type === "message" && m.message.text).toBe("\uFFFD[2J\uFFFD]0;pwned\uFFFDhi\uFFFD");
  });

  it("shows safety numbers that match on both sides and marks a peer verified", async () => {
    const r = await relay();
    const a = await client(alice, r);
    const b = await client(bob, r);
    // Presence comes first and the keys follow from a lookup; /verify (verify()) waits for that
    // lookup when it is still running, so asking right away works.
    await a.waitFor((e) => e.type === "peer" && e.peer.username === "bob", "alice knows bob");
    await b.waitFor((e) => e.type === "directory" && e.peers.some((p) => p.username === "alice"), "bob knows alice");
    const [va, vb] = await Promise.all([a.client.verify("bob"), b.client.verify("alice")]);
    expect(va.ok && vb.ok).toBe(true);
    if (!va.ok || !vb.ok) return;
    expect(va.value.safetyNumber).toMatch(/^(\d{5} ){11}\d{5}$/);
    expect(va.value.safetyNumber).toBe(vb.value.safetyNumber);
    expect(va.value.trust).toBe("unverified");
    expect(va.ok && a.client.trust("bob", va.value.confirmGroups)).toEqual({ ok: true, value: { username: "bob", verified: true, keyChange: false, shown: 0, discarded: 0 } });
    expect(a.client.snapshot().peers.find((p) => p.username === "bob")?.trust).toBe("verified");
  });

  it("never accepts a changed key silently: warns, blocks sending, releases on /trust", async () => {
    const r = await relay();
    const a = await client(alice, r);
    const b = await client(bob, r);
    await a.waitFor((e) => e.type === "peer" && e.peer.username === "bob" && e.peer.online, "bob online");
    a.client.send("dm:alice:bob", "before");
    await b.waitForMessage("before");
    b.client.send("dm:alice:bob", "old bob, on the old laptop");
    await a.waitForMessage("old bob, on the old laptop");
    await b.close();

    // The operator releases the name and someone else claims "bob" with other keys.
    expect(releaseUsername(r.dataDir, "bob")).toBe(true);
    const nb = await client(fakeBob, r);
    const change = await a.waitFor((e) => e.type === "key-change" && e.username === "bob", "alice warned of bob's key change");
    expect(change).toMatchObject({ conversationId: "dm:alice:bob" });
    expect(a.client.snapshot().peers.find((p) => p.username === "bob")?.trust).toBe("key-changed");

    const blocked = a.client.send("dm:alice:bob", "are you still bob?");
    expect(blocked).toEqual({ ok: false, error: { kind: "key-changed", username: "bob" } });
    await nb.waitFor((e) => e.type === "directory", "new bob welcomed");

    const v = a.client.verifyInfo("bob");
    expect(v.ok && v.value.pendingSafetyNumber !== undefined && v.value.pendingSafetyNumber !== v.value.safetyNumber).toBe(true);
    const t = a.client.trust("bob", v.ok ? v.value.confirmGroups : []);
    // v2 holds nothing: the new key's leaf never entered alice's group (its credential is refused
    // while the change is pending), so nothing was shown before /trust and nothing is released.
    expect(t).toEqual({ ok: true, value: { username: "bob", verified: true, keyChange: true, shown: 0, discarded: 0 } });
    expect(a.messages().filter((m) => !m.own && m.from === "bob").map((m) => m.text)).toEqual(["old bob, on the old laptop"]);
    expect(a.client.snapshot().peers.find((p) => p.username === "bob")?.trust).toBe("verified");
  }, 60_000);

  it("after /trust of a changed key, alice and the new bob talk in their DM; nothing of either reaches the other before", async () => {
    const r = await relay();
    const a = await client(alice, r);
    const b = await client(bob, r);
    await a.waitFor((e) => e.type === "peer" && e.peer.username === "bob" && e.peer.online, "bob online");
    a.client.send("dm:alice:bob", "before");
    await b.waitForMessage("before");
    await b.close();

    expect(releaseUsername(r.dataDir, "bob")).toBe(true);
    const nb = await client(fakeBob, r);
    await a.waitFor((e) => e.type === "key-change" && e.username === "bob", "alice warned of bob's key change");
    // The new bob writes first: his message waits (the relay keeps alice's DM group; he is not in it).
    const early = nb.client.send("dm:alice:bob", "it is me, on a new laptop");
    expect(early.ok).toBe(true);
    expect(a.client.send("dm:alice:bob", "not yet")).toEqual({ ok: false, error: { kind: "key-changed", username: "bob" } });

    const v = a.client.verifyInfo("bob");
    const t = a.client.trust("bob", v.ok ? v.value.confirmGroups : []);
    expect(t.ok).toBe(true);
    // The DM's old leaf goes, the new key comes in by Add + Welcome: a line says so in the DM.
    const line = await a.waitFor((e) => e.type === "notice" && e.conversationId === "dm:alice:bob" && /bob's key changed/.test(e.text), "the key change line", 30_000);
    expect(line).toMatchObject({ text: expect.stringMatching(/you verified the new key.*the new key is in this conversation/) });
    // The new bob's waiting message is sent once he is in, and alice reads it; and he reads her.
    await a.waitForMessage("it is me, on a new laptop", 30_000);
    const sent = a.client.send("dm:alice:bob", "welcome back, new bob");
    expect(sent.ok).toBe(true);
    await nb.waitForMessage("welcome back, new bob", 30_000);
    expect(nb.messages("dm:alice:bob").map((m) => m.text)).not.toContain("before");
    expect(nb.messages("dm:alice:bob").map((m) => m.text)).not.toContain("not yet");
    nb.client.send("dm:alice:bob", "and again");
    await a.waitForMessage("and again", 30_000);
  }, 90_000);

  it("refuses a second key for a bound name with a clear, final error", async () => {
    const r = await relay();
    await client(bob, r);
    await expect(TestClient.start(fakeBob, r.running.port)).rejects.toThrow(/taken/);
  });

  it("tells the user when the relay refuses (too large) without sending anything", async () => {
    const r = await relay();
    const a = await client(alice, r);
    const huge = "x".repeat(70 * 1024);
    expect(a.client.send("lobby", huge)).toEqual({ ok: false, error: { kind: "too-large", bytes: huge.length, max: 65536 } });
    // An unknown user is found out by asking the relay for their keys: the message fails then.
    const toZed = a.client.send("dm:alice:zed", "hi");
    expect(toZed.ok).toBe(true);
    if (toZed.ok) {
      const failed = await a.waitForState(toZed.value.id, "failed");
      expect(failed).toMatchObject({ failure: "no user 'zed' on this relay" });
    }
    expect(a.client.send("#ops", "hi")).toEqual({ ok: false, error: { kind: "not-a-member", room: "#ops", action: "send" } });
    expect(a.client.send("lobby", "   ")).toEqual({ ok: false, error: { kind: "empty-message" } });
  });

  it("says so when a lobby message reaches nobody, and not when someone is online", async () => {
    const r = await relay();
    const a = await client(alice, r);
    const alone = a.client.send("lobby", "anyone here?");
    if (!alone.ok) throw new Error(describeClientError(alone.error));
    const notice = await a.waitFor((e) => e.type === "notice" && e.conversationId === "lobby", "a notice in the lobby");
    expect(notice).toMatchObject({ level: "warn", text: expect.stringMatching(/^nobody else is online, so nobody will read that/) });
    await a.waitForState(alone.value.id, "accepted");

    const b = await client(bob, r);
    await a.waitFor((e) => e.type === "peer" && e.peer.username === "bob" && e.peer.online, "alice sees bob online");
    await waitLobby([a, b]);
    const heard = a.client.send("lobby", "hi bob");
    if (!heard.ok) throw new Error(describeClientError(heard.error));
    await b.waitForMessage("hi bob");
    expect(a.events.filter((e) => e.type === "notice" && e.conversationId === "lobby")).toHaveLength(1);
  });
});

describe("two sessions of one user", () => {
  it("the older one stops for good instead of fighting the newer one", async () => {
    const r = await relay();
    const first = await client(alice, r, { reconnect: { initialMs: 20, maxMs: 50 } });
    const second = await client(alice, r, { reconnect: { initialMs: 20, maxMs: 50 } });
    const failed = await first.waitFor((e) => e.type === "connection" && e.status.state === "failed", "the first session gives up");
    expect(failed.type === "connection" && failed.status.state === "failed" && failed.status.reason).toMatch(/another session of alice replaced this one/);
    expect(second.client.snapshot().connection.state).toBe("connected");
  });
});

describe("keys fetched when needed", () => {
  it("sends a first DM to someone offline the client has never seen (keys looked up, message queued)", async () => {
    const r = await relay();
    const d = await client(fixtureDave, r);
    // v2: dave leaves his KeyPackages on the relay (before he enters the lobby) for whoever writes first.
    await waitUntil(() => sawJoin(d, "lobby", "dave"), "dave published his KeyPackages and entered the lobby");
    await d.close();
    const a = await client(alice, r);
    expect(a.client.snapshot().peers.map((p) => p.username)).toEqual(["alice"]); // dave is offline: not listed
    const sent = a.client.send("dm:alice:dave", "are you around?");
    expect(sent.ok).toBe(true);
    // v2: create the DM group, claim dave's KeyPackage, add him (Welcome queued), then the message.
    if (sent.ok) expect(await a.waitForState(sent.value.id, "accepted", 60_000)).toMatchObject({ queuedFor: ["dave"] });
    const v = a.client.verifyInfo("dave");
    expect(v.ok && v.value.trust).toBe("unverified"); // pinned on first fetch
  });

  it("/verify of someone not fetched yet looks the keys up; offline, it says why it cannot", async () => {
    const r = await relay();
    const d = await client(fixtureDave, r);
    await d.close();
    const a = await client(alice, r);
    expect(a.client.verifyInfo("dave")).toEqual({ ok: false, error: { kind: "keys-not-fetched", username: "dave", why: "fetching" } });
    const v = await a.client.verify("dave");
    expect(v.ok && v.value.safetyNumber).toMatch(/^(\d{5} ){11}\d{5}$/);
    expect(await a.client.verify("zed")).toEqual({ ok: false, error: { kind: "unknown-user", username: "zed" } });
    await r.stop();
    await a.waitFor((e) => e.type === "connection" && e.status.state !== "connected", "alice sees the relay go");
    expect(await a.client.verify("carol")).toEqual({ ok: false, error: { kind: "keys-not-fetched", username: "carol", why: "not-connected" } });
  });
});
