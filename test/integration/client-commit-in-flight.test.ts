// A commit in flight when chat-tui quits (PROTOCOL.md §8.1 "A commit in flight"), with the real
// client and relay: alice's /kick reaches the relay, which takes it, but its answer is lost (a
// proxy drops everything the relay says from then on); alice quits. At her next start the kept
// commit goes again, the relay answers it as the duplicate it is, and alice is at the epoch carol
// moved to. (A removal: the commit is the first request of the change, nothing before it waits
// for an answer.)
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { TestClient } from "../helpers/client-harness.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { startRecordingProxy } from "../helpers/recording-proxy.js";
import { TestRelay } from "../helpers/relay-harness.js";
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

describe("a commit in flight when the client quits", () => {
  it("is sent again at the next start and settled: alice is where carol is, and they read each other", async () => {
    const relay = await TestRelay.start({});
    cleanups.push(() => relay.cleanup());
    const proxy = await startRecordingProxy("127.0.0.1", relay.running.port);
    cleanups.push(() => proxy.close());
    const dir = mkdtempSync(join(tmpdir(), "sc-commit-kept-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const files = { dir, statePath: join(dir, "alice_state.db") };

    const a = await TestClient.start(alice, proxy.port, files);
    const b = await TestClient.start(bob, relay.running.port);
    const c = await TestClient.start(carol, relay.running.port);
    cleanups.push(() => b.close(), () => c.close());
    expect((await a.client.joinRoom("#ops")).ok).toBe(true);
    expect((await b.client.joinRoom("#ops")).ok).toBe(true);
    expect((await c.client.joinRoom("#ops")).ok).toBe(true);
    for (const x of [a, b, c]) await waitUntil(async () => { const m = await x.client.members("#ops"); return m.ok && m.value.length === 3 ? true : undefined; }, `${x.client.me} sees three in #ops`, 20_000);
    expect(b.client.send("#ops", "all here").ok).toBe(true);
    await a.waitForMessage("all here", 20_000);
    await c.waitForMessage("all here", 20_000);

    proxy.muteAnswers();
    const kick = a.client.kick!("#ops", "bob");
    await relay.waitForLog("mls.commit.accepted", (l) => l["user"] === "alice" && l["queued"] !== 0, 20_000);
    await c.waitFor((e) => e.type === "membership" && e.conversationId === "#ops" && e.line.kind === "removed", "carol sees bob removed", 20_000);
    await a.close(); // quits before the answer
    expect((await kick).ok).toBe(false);

    const logsBefore = relay.logs.length;
    const again = await TestClient.start(alice, relay.running.port, files);
    cleanups.push(() => again.close());
    await relay.waitForLog("mls.commit.duplicate", (l) => l["user"] === "alice", 20_000);
    await again.waitFor((e) => e.type === "membership" && e.conversationId === "#ops" && e.line.kind === "removed" && e.line.users.includes("bob"), "alice's line: she removed bob");
    expect(c.client.send("#ops", "bob is out").ok).toBe(true);
    await again.waitForMessage("bob is out", 20_000);
    expect(again.client.send("#ops", "indeed").ok).toBe(true);
    await c.waitForMessage("indeed", 20_000);
    // Never a second commit of alice's for an epoch hers already holds.
    expect(relay.logs.slice(logsBefore).filter((l) => l.event === "mls.commit.epoch_taken")).toEqual([]);
  }, 90_000);
});
