// A Delivery Service request cut off by a lost connection (PROTOCOL.md §9.3): the message that
// waited on it stays pending and goes out after the reconnect. Before the fix, the session's end
// answered every waiting request with a relay-style refusal (code UNSPECIFIED), which the v2 engine
// took for a final "no" and showed the message failed although nothing had been refused.
import { afterEach, describe, expect, it } from "vitest";
import { TestClient } from "../helpers/client-harness.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { MlsHostileProxy } from "../helpers/mls-hostile-proxy.js";
import { TestRelay } from "../helpers/relay-harness.js";
import { waitLobby } from "../helpers/v2-waits.js";
import { waitUntil } from "../helpers/wait.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe("a request waiting when the connection is lost", () => {
  it("leaves the message pending, not failed; it is sent after the reconnect and read once", { timeout: 120_000 }, async () => {
    const [alice, bob] = await Promise.all([fixtureIdentity("alice"), fixtureIdentity("bob")]);
    const relay = await TestRelay.start({ plaintext: true });
    cleanups.push(() => relay.cleanup());
    const proxy = await MlsHostileProxy.start(relay.address);
    cleanups.push(() => proxy.close());
    const b = await TestClient.start(bob, 0, { server: proxy.address, transport: { kind: "plaintext" } });
    cleanups.push(() => b.close());
    const a = await TestClient.start(alice, 0, { server: proxy.address, transport: { kind: "plaintext" }, reconnect: { initialMs: 50, maxMs: 300 } });
    cleanups.push(() => a.close());
    await waitLobby([a, b], 60_000);

    // The operator's proxy swallows alice's first KeyPackage claim, then cuts her connection.
    let cut = false;
    proxy.onRequest = (user, f, s) => {
      if (user !== "alice" || f.$case !== "claimKeyPackages" || cut) return undefined;
      cut = true;
      setImmediate(() => (s as unknown as { close(): void }).close());
      return [];
    };
    const sent = a.client.send("dm:alice:bob", "across the cut");
    expect(sent.ok).toBe(true);
    const id = sent.ok ? sent.value.id : "";
    await waitUntil(() => cut, "the claim swallowed", 30_000);
    await b.waitForMessage("across the cut", 60_000);
    await a.waitForState(id, "accepted", 60_000);
    expect(a.events.some((e) => e.type === "message-state" && e.id === id && e.state === "failed")).toBe(false);
    expect(b.messages("dm:alice:bob").filter((m) => m.text === "across the cut")).toHaveLength(1);
  });
});
