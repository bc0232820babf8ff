// A client refused for opening sessions too often (PROTOCOL.md §9.1 step 4, §9.3): the relay ends
// the attempt with RATE_LIMITED and a retry-after trailer; the client says so once, shows it while
// it waits, and does not try again before the relay would take it (no spinning on a short backoff).
import { afterEach, describe, expect, it } from "vitest";
import type { SessionEvent } from "../../src/client/types.js";
import { TestClient } from "../helpers/client-harness.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { TestRelay } from "../helpers/relay-harness.js";

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const SENTENCE = /^this device opened too many sessions lately: this relay takes 2 at once, then 60 per minute; try again in 1 second$/;

describe("session opens refused for their rate", () => {
  it("the client waits for the relay's retry-after instead of its short backoff, and says why once", async () => {
    const relay = await TestRelay.start({ limits: { sessionOpenBurst: 2, sessionOpensPerMinute: 60 } });
    cleanups.push(() => relay.cleanup());
    const alice = await fixtureIdentity("alice");
    // Two opens spend alice's burst.
    for (let i = 0; i < 2; i++) await relay.disconnect(await relay.connect(alice), "alice");

    // A backoff of 20-50 ms would try again ~30 times in the second the relay asks for.
    const t = await TestClient.begin(alice, relay.running.port, { reconnect: { initialMs: 20, maxMs: 50 } });
    cleanups.push(() => t.close());
    const waiting = await t.waitFor((e) => e.type === "connection" && e.status.state === "reconnecting", "the refused attempt waits");
    const refusedAt = Date.now();
    if (waiting.type !== "connection" || waiting.status.state !== "reconnecting") throw new Error("unreachable");
    expect(waiting.status.cause).toMatchObject({ kind: "rate-limited", detail: expect.stringMatching(SENTENCE) });
    expect(waiting.status.reason).toMatch(SENTENCE);
    // Not before the relay's retry-after (up to a second: one token per second).
    expect(waiting.status.retryAtMs - refusedAt).toBeGreaterThan(500);

    await t.client.waitConnected(10_000);
    // One refused attempt, not a spin; said once in the conversation.
    expect(relay.logs.filter((l) => l.event === "handshake.refused" && l.reason === "opens-limited")).toHaveLength(1);
    const notices = t.events.filter((e): e is Extract<SessionEvent, { type: "notice" }> => e.type === "notice" && SENTENCE.test(e.text));
    expect(notices).toHaveLength(1);
    expect(notices[0]).toMatchObject({ level: "error", about: { kind: "session-ended", cause: { kind: "rate-limited" } } });
  });
});
