// Trust decisions bound to what was compared (issue 9 §3, PROTOCOL.md §6): real ChatClients and a
// real relay; key changes come from the operator releasing a name and another key claiming it.
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { safetyHalfGroups } from "../../src/protocol/safety-number.js";
import { releaseUsername } from "../../src/server/users-command.js";
import { TestClient } from "../helpers/client-harness.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { queuedRows } from "../helpers/mls-queues.js";
import { waitMember } from "../helpers/v2-waits.js";
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

    // First replacement key: its client comes online (v2: its presence and keys reach alice; a
    // message of a key not yet trusted cannot enter an MLS group, so none is held).
    expect(releaseUsername(r.dataDir, "bob")).toBe(true);
    const m1 = await client(fakeBob, r);
    await a.waitFor((e) => e.type === "key-change" && e.username === "bob", "alice warned of the first new key");
    const shown = await a.client.verify("bob");
    if (!shown.ok) throw new Error(describeClientError(shown.error));
    expect(shown.value.confirmGroups).toEqual(safetyHalfGroups(fakeBob).slice(0, 3));

    // The relay serves yet another key before alice decides.
    await m1.close();
    expect(releaseUsername(r.dataDir, "bob")).toBe(true);
    await client(otherBob, r);
    const replaced = await a.waitFor((e) => e.type === "key-change" && e.username === "bob" && e.replaced === true, "a fresh warning");
    expect(replaced).toMatchObject({ held: 0, discarded: 0 });

    // alice types what she compared: the digits of the first new key. Refused, nothing trusted.
    const t = a.client.trust("bob", [...shown.value.confirmGroups]);
    expect(t.ok).toBe(false);
    expect(!t.ok && t.error).toEqual({ kind: "digits-mismatch", username: "bob", newKeys: true });
    expect(trustOf(a, "bob")).toBe("key-changed");
    expect(a.client.send("dm:alice:bob", "hello?")).toEqual({
      ok: false, error: { kind: "key-changed", username: "bob" },
    });

    // Continue without comparing: its own step, never "verified".
    const accepted = a.client.acceptNewKeys("bob");
    expect(accepted).toEqual({ ok: true, value: { username: "bob", verified: false, keyChange: true, shown: 0, discarded: 0 } });
    expect(trustOf(a, "bob")).toBe("unverified");
    expect(a.client.acceptNewKeys("bob").ok).toBe(false); // nothing pending any more
    expect(a.client.send("dm:alice:bob", "welcome, unverified bob").ok).toBe(true);
    // (v1 went on: otherBob reads it. v2: the DM's group still holds the old key's leaf; the gap is
    // reported, see client-session.test.ts's todo.)
  }, 60_000);
});

describe("a key change in a room", () => {
  it("does not freeze the room: the others still receive; the new key reads nothing", async () => {
    const r = await relay();
    const [a, b, c] = [await client(alice, r), await client(bob, r), await client(carol, r)];
    for (const x of [a, b, c]) expect((await x.client.joinRoom("#ops")).ok).toBe(true);
    for (const x of [a, b, c]) for (const u of ["alice", "bob", "carol"]) await waitMember(x, "#ops", u);
    await waitUntil(() => a.client.verifyInfo("carol").ok && a.client.verifyInfo("bob").ok, "alice knows the keys");
    await c.close();

    expect(releaseUsername(r.dataDir, "carol")).toBe(true);
    const m = await client(fakeCarol, r);
    await a.waitFor((e) => e.type === "key-change" && e.username === "carol", "alice warned of carol's key change");

    const sent = a.client.send("#ops", "the room goes on");
    expect(sent.ok).toBe(true);
    if (!sent.ok) return;
    await a.waitForState(sent.value.id, "accepted", 30_000);
    await b.waitForMessage("the room goes on", 30_000);
    // The relay dropped the released name's memberships (store/mls.ts releaseUser): the room's
    // traffic goes to bob only, and the new carol reads none of it (her key has no leaf there).
    expect(r.logs.some((l) => l.event === "send.accepted" && l.user === "alice" && l.mls === "application" && l.stored === 1)).toBe(true);
    await waitUntil(() => queuedRows(r, "carol") === 0, "the new carol's queue drained", 30_000);
    expect(m.messages("#ops")).toEqual([]);
    const again = b.client.send("#ops", "and on");
    expect(again.ok).toBe(true);
    await a.waitForMessage("and on", 30_000);
  }, 60_000);

  it("a member's key change in a v2 room: said in the room; after /accept the new key is a member; who has not decided holds on, then catches up", async () => {
    const r = await relay();
    const [a, b, c] = [await client(alice, r), await client(bob, r), await client(carol, r)];
    for (const x of [a, b, c]) expect((await x.client.joinRoom("#ops")).ok).toBe(true);
    for (const x of [a, b, c]) for (const u of ["alice", "bob", "carol"]) await waitMember(x, "#ops", u);
    await waitUntil(() => a.client.verifyInfo("carol").ok && b.client.verifyInfo("carol").ok, "alice and bob know carol's keys");
    await c.close();

    expect(releaseUsername(r.dataDir, "carol")).toBe(true);
    const m = await client(fakeCarol, r);
    for (const x of [a, b]) {
      // Said in the room (as v1 did).
      await x.waitFor((e) => e.type === "notice" && e.conversationId === "#ops" && e.about?.kind === "room-key-changed", "the key change said in #ops");
    }

    // alice accepts the new key: her client replaces carol's old leaf by the new key's in one commit.
    expect(a.client.acceptNewKeys("carol").ok).toBe(true);
    await a.waitFor((e) => e.type === "notice" && e.conversationId === "#ops" && /carol's key changed; you accepted the new key.*the new key is in #ops/.test(e.text), "alice's line", 30_000);
    await waitMember(m, "#ops", "alice");
    // bob has not decided: the commit is refused at his end, said in the room, and he stays where he was.
    await b.waitFor((e) => e.type === "notice" && e.conversationId === "#ops" && /you have not accepted/.test(e.text), "bob's refusal line", 30_000);

    expect(a.client.send("#ops", "hello, new carol").ok).toBe(true);
    await m.waitForMessage("hello, new carol", 30_000);
    // bob's messages, still in the epoch before the change, reach alice and never the new key.
    expect(b.client.send("#ops", "not sure about that key").ok).toBe(true);
    await a.waitForMessage("not sure about that key", 30_000);
    expect(b.messages("#ops").map((x) => x.text)).not.toContain("hello, new carol"); // held behind the refused commit

    // bob accepts: he applies the change he refused and reads what was held behind it.
    expect(b.client.acceptNewKeys("carol").ok).toBe(true);
    await b.waitForMessage("hello, new carol", 30_000);
    await b.waitFor((e) => e.type === "notice" && e.conversationId === "#ops" && /the new key is in #ops/.test(e.text), "bob's line", 30_000);
    expect(m.client.send("#ops", "thanks, both").ok).toBe(true);
    await a.waitForMessage("thanks, both", 30_000);
    await b.waitForMessage("thanks, both", 30_000);
    expect(m.messages("#ops").map((x) => x.text)).not.toContain("not sure about that key");
    expect(a.client.snapshot().peers.find((p) => p.username === "carol")?.trust).toBe("unverified");
  }, 120_000);
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
