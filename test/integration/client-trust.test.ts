// Trust decisions bound to what was compared (issue 9 §3, PROTOCOL.md §6): real ChatClients and a
// real relay; key changes come from the operator releasing a name and another key claiming it.
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { safetyHalfGroups } from "../../src/protocol/safety-number.js";
import { releaseUsername } from "../../src/server/users-command.js";
import { TestClient } from "../helpers/client-harness.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { seal } from "../helpers/raw-session.js";
import { TestRelay } from "../helpers/relay-harness.js";
import { waitUntil } from "../helpers/wait.js";
import { describeClientError } from "../../src/client/errors.js";

let alice: PrivateIdentity;
let bob: PrivateIdentity;
let carol: PrivateIdentity;
let fakeBob: PrivateIdentity;
let otherBob: PrivateIdentity;
let fakeCarol: PrivateIdentity;
const cleanups: Array<() => Promise<unknown> | unknown> = [];

beforeAll(async () => {
  [alice, bob, carol, fakeBob, otherBob, fakeCarol] = await Promise.all([
    fixtureIdentity("alice"), fixtureIdentity("bob"), fixtureIdentity("carol"),
    fixtureIdentity("mallory", "bob"), fixtureIdentity("dave", "bob"), fixtureIdentity("mallory", "carol"),
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

async function client(id: PrivateIdentity, r: TestRelay): Promise<TestClient> {
  const c = await TestClient.start(id, r.running.port);
  cleanups.push(() => c.close());
  return c;
}

const trustOf = (c: TestClient, name: string) => c.client.snapshot().peers.find((p) => p.username === name)?.trust;

describe("/trust names the keys it accepts", () => {
  it("needs the digits /verify shows; other digits are refused and change nothing", async () => {
    const r = await relay();
    const a = await client(alice, r);
    await client(bob, r);
    const v = await waitUntil(() => {
      const info = a.client.verifyInfo("bob");
      return info.ok ? info.value : undefined;
    }, "alice knows bob's keys");
    // The groups are the start of bob's half of the safety number (alice's half never changes).
    expect(v.confirmGroups).toEqual(safetyHalfGroups(bob).slice(0, 3));
    expect(v.safetyNumber.replace(/ /g, "")).toContain(safetyHalfGroups(bob).join(""));

    const none = a.client.trust("bob", []);
    expect(none.ok).toBe(false);
    expect(!none.ok && none.error).toEqual({ kind: "digits-missing", username: "bob", groups: 3 });
    const wrong = a.client.trust("bob", ["00000", "00000", "00000"]);
    expect(wrong).toEqual({ ok: false, error: { kind: "digits-mismatch", username: "bob", newKeys: false } });
    // Too few groups bind too little: refused even when they are right.
    expect(a.client.trust("bob", v.confirmGroups.slice(0, 2)).ok).toBe(false);
    expect(trustOf(a, "bob")).toBe("unverified");

    expect(a.client.trust("bob", [...v.confirmGroups])).toEqual({ ok: true, value: { username: "bob", verified: true, keyChange: false, shown: 0, discarded: 0 } });
    expect(trustOf(a, "bob")).toBe("verified");
    // The whole 60-digit number works too.
    expect(a.client.trust("bob", v.safetyNumber.split(" ")).ok).toBe(true);
  });

  it("a pending key replaced after /verify: a fresh warning, /trust with the old digits refused, /accept continues unverified", async () => {
    const r = await relay();
    const a = await client(alice, r);
    const b = await client(bob, r);
    await a.waitFor((e) => e.type === "peer" && e.peer.username === "bob" && e.peer.online, "bob online");
    await b.close();

    // First replacement key: it sends two messages, held at alice.
    expect(releaseUsername(r.dataDir, "bob")).toBe(true);
    const m1 = await r.connect(fakeBob);
    await m1.sendAccepted(seal(fakeBob, "dm:alice:bob", [alice], "from the first new key"));
    await m1.sendAccepted(seal(fakeBob, "dm:alice:bob", [alice], "again from the first new key"));
    await a.waitFor((e) => e.type === "key-change" && e.username === "bob" && e.held === 2, "two messages held");
    const shown = await a.client.verify("bob");
    if (!shown.ok) throw new Error(describeClientError(shown.error));
    expect(shown.value.confirmGroups).toEqual(safetyHalfGroups(fakeBob).slice(0, 3));

    // The relay serves yet another key before alice decides.
    await r.disconnect(m1, "bob");
    expect(releaseUsername(r.dataDir, "bob")).toBe(true);
    const m2 = await r.connect(otherBob);
    const replaced = await a.waitFor((e) => e.type === "key-change" && e.username === "bob" && e.replaced === true, "a fresh warning");
    // What was held under the replaced key can never be shown: discarded, and said so.
    expect(replaced).toMatchObject({ held: 0, discarded: 2 });

    // alice types what she compared: the digits of the first new key. Refused, nothing trusted.
    const t = a.client.trust("bob", [...shown.value.confirmGroups]);
    expect(t.ok).toBe(false);
    expect(!t.ok && t.error).toEqual({ kind: "digits-mismatch", username: "bob", newKeys: true });
    expect(trustOf(a, "bob")).toBe("key-changed");
    expect(a.client.send("dm:alice:bob", "hello?")).toEqual({
      ok: false, error: { kind: "key-changed", username: "bob" },
    });

    // Held messages are released in the order they were sent, not the order they came in.
    const now = Date.now();
    await m2.sendAccepted(seal(otherBob, "dm:alice:bob", [alice], "written second", { sentAtMs: now - 1_000 }));
    await m2.sendAccepted(seal(otherBob, "dm:alice:bob", [alice], "written first", { sentAtMs: now - 5_000 }));
    await a.waitFor((e) => e.type === "key-change" && e.username === "bob" && e.held === 2, "otherBob's two messages held");

    // Continue without comparing: its own step, never "verified".
    const accepted = a.client.acceptNewKeys("bob");
    expect(accepted).toEqual({ ok: true, value: { username: "bob", verified: false, keyChange: true, shown: 2, discarded: 0 } });
    expect(trustOf(a, "bob")).toBe("unverified");
    expect(a.messages("dm:alice:bob").map((m) => m.text)).toEqual(["written first", "written second"]);
    // Released messages keep the relay's time they came with.
    expect(a.messages("dm:alice:bob").every((m) => m.relayAtMs !== undefined && m.relayAtMs >= now - 60_000)).toBe(true);
    expect(a.messages().some((m) => m.text.includes("first new key"))).toBe(false);
    expect(a.client.acceptNewKeys("bob").ok).toBe(false); // nothing pending any more
    expect(a.client.send("dm:alice:bob", "welcome, unverified bob").ok).toBe(true);
    expect(await m2.deliveries(1)).toHaveLength(1); // otherBob receives alice's message
  });
});

describe("a key change in a room", () => {
  it("does not freeze the room: the others still receive, the room says what happens to that member", async () => {
    const r = await relay();
    const [a, b, c] = [await client(alice, r), await client(bob, r), await client(carol, r)];
    for (const x of [a, b, c]) expect((await x.client.joinRoom("#ops")).ok).toBe(true);
    await waitUntil(() => a.client.snapshot().rooms.find((x) => x.room === "#ops")?.members.length === 3, "three members");
    await waitUntil(() => a.client.verifyInfo("carol").ok && a.client.verifyInfo("bob").ok, "alice knows the keys");
    await c.close();

    expect(releaseUsername(r.dataDir, "carol")).toBe(true);
    const m = await r.connect(fakeCarol);
    m.write({ $case: "joinRoom", value: { requestId: 1, room: "#ops" } });
    await a.waitFor((e) => e.type === "key-change" && e.username === "carol", "alice warned of carol's key change");
    await a.waitFor((e) => e.type === "notice" && e.conversationId === "#ops" && e.text.startsWith("carol's keys changed: the room goes on"), "the room says so");

    const sent = a.client.send("#ops", "the room goes on");
    expect(sent.ok).toBe(true);
    if (!sent.ok) return;
    await a.waitForState(sent.value.id, "accepted");
    const atBob = await b.waitForMessage("the room goes on");
    // bob sees that carol (a member, as far as he knows) was left out of it.
    expect(atBob.notFor).toEqual(["carol"]);
    await a.waitFor((e) => e.type === "notice" && e.conversationId === "#ops" && e.text.startsWith("not sent to carol: their keys changed"), "says carol was left out");
    // The new carol got nothing of it.
    await m.barrier();
    expect(m.has("deliver")).toBe(false);

    // carol's messages in the room are held, shown once alice decides.
    await m.sendAccepted(seal(fakeCarol, "#ops", [alice, bob], "new carol here"));
    await a.waitFor((e) => e.type === "key-change" && e.username === "carol" && e.conversationId === "#ops" && e.held === 1, "held in the room");
    expect(a.client.acceptNewKeys("carol").ok).toBe(true);
    expect(a.messages("#ops").map((x) => x.text)).toContain("new carol here");
    // DMs to a member whose change is pending stay blocked until a decision; after it, the room
    // reaches carol again.
    const again = a.client.send("#ops", "everyone again");
    expect(again.ok).toBe(true);
    expect(await m.deliveries(1)).toHaveLength(1); // carol receives again
  });
});

describe("the relay's time", () => {
  it("comes with each delivery: when the relay accepted the envelope, beside the sender's claim", async () => {
    const r = await relay();
    const a = await client(alice, r);
    // bob's clock is two minutes slow: his claimed sent_at is two minutes before the relay's.
    const b = await TestClient.start(bob, r.running.port, { clock: () => Date.now() - 120_000 });
    cleanups.push(() => b.close());
    await a.waitFor((e) => e.type === "peer" && e.peer.username === "bob" && e.peer.online, "bob online");
    const before = Date.now();
    expect(b.client.send("dm:alice:bob", "what time is it?").ok).toBe(true);
    const got = await a.waitForMessage("what time is it?");
    const after = Date.now();
    expect(got.relayAtMs).toBeGreaterThanOrEqual(before - 1_000);
    expect(got.relayAtMs).toBeLessThanOrEqual(after);
    expect(got.relayAtMs! - got.sentAtMs).toBeGreaterThan(110_000);
  });
});
