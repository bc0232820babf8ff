// A key the relay serves for a member (the operator released the name; another key claimed it)
// enters a room's MLS group only at the members who decided on it (PROTOCOL.md §6, key-change.ts):
// a member who decided (here mallory, colluding) replaces the old leaf in one commit; alice and
// bob, who did not decide, refuse that commit, say so in the room, and keep talking in the epoch
// before it, which the substituted key never reads. Real v2 ChatClients and relay.
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { TestClient } from "../helpers/client-harness.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { queuedRows } from "../helpers/mls-queues.js";
import { TestRelay } from "../helpers/relay-harness.js";
import { waitMember } from "../helpers/v2-waits.js";
import { waitUntil } from "../helpers/wait.js";

let alice: PrivateIdentity;
let bob: PrivateIdentity;
let carol: PrivateIdentity;
let mallory: PrivateIdentity;
let relayCarol: PrivateIdentity;
const cleanups: Array<() => Promise<unknown> | unknown> = [];

beforeAll(async () => {
  [alice, bob, carol, mallory, relayCarol] = await Promise.all([
    fixtureIdentity("alice"), fixtureIdentity("bob"), fixtureIdentity("carol"), fixtureIdentity("mallory"), fixtureIdentity("dave", "carol"),
  ]);
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function client(id: PrivateIdentity, r: TestRelay): Promise<TestClient> {
  const c = await TestClient.start(id, r.running.port);
  cleanups.push(() => c.close());
  return c;
}

describe("a substituted key in a room", () => {
  it("is refused by every member who did not decide on it, even when another member put it in", async () => {
    const r = await TestRelay.start();
    cleanups.push(() => r.cleanup());
    const [a, b, c, m] = [await client(alice, r), await client(bob, r), await client(carol, r), await client(mallory, r)];
    for (const x of [a, b, c, m]) expect((await x.client.joinRoom("#ops")).ok).toBe(true);
    for (const x of [a, b, c, m]) for (const u of ["alice", "bob", "carol", "mallory"]) await waitMember(x, "#ops", u);
    await waitUntil(() => [a, b, m].every((x) => x.client.verifyInfo("carol").ok), "everyone knows carol's keys");
    await c.close();

    // The relay's operator hands "carol" to another key; mallory, a member, accepts it at once.
    expect(r.releaseUser("carol")).toBe(true);
    const fake = await client(relayCarol, r);
    await m.waitFor((e) => e.type === "key-change" && e.username === "carol", "mallory sees the key change");
    expect(m.client.acceptNewKeys("carol").ok).toBe(true);
    await m.waitFor((e) => e.type === "notice" && e.conversationId === "#ops" && /the new key is in #ops/.test(e.text), "mallory put the new key in", 30_000);
    await waitMember(fake, "#ops", "mallory");

    // alice and bob never decided: the commit is refused at both, and said in the room.
    for (const x of [a, b]) {
      await x.waitFor((e) => e.type === "notice" && e.conversationId === "#ops" && /mallory put a key into #ops that you have not accepted/.test(e.text), "the refusal line", 30_000);
      expect(x.client.snapshot().peers.find((p) => p.username === "carol")?.trust).toBe("key-changed");
    }
    // They go on in the epoch before it: bob reads alice; the substituted key reads nothing of theirs.
    expect(a.client.send("#ops", "for the members we know").ok).toBe(true);
    await b.waitForMessage("for the members we know", 30_000);
    expect(b.client.send("#ops", "agreed").ok).toBe(true);
    await a.waitForMessage("agreed", 30_000);
    await waitUntil(() => queuedRows(r, "carol") === 0, "the substituted key's queue drained", 30_000);
    expect(fake.messages("#ops").map((x) => x.text)).toEqual([]);
    // What the substituted key sends reaches mallory only: alice and bob hold it behind the refused commit.
    expect(fake.client.send("#ops", "hi all, it is carol").ok).toBe(true);
    await m.waitForMessage("hi all, it is carol", 30_000);
    expect(a.messages("#ops").map((x) => x.text)).not.toContain("hi all, it is carol");
    expect(b.messages("#ops").map((x) => x.text)).not.toContain("hi all, it is carol");
  }, 120_000);
});
