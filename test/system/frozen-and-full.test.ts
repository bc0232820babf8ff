// Two more faults (issue 5): a client process that freezes (SIGSTOP) while messages pour in, and
// a relay whose disk fills up. In both, nothing the relay acknowledged is lost, nothing shows
// twice, and the refusal of what could not be stored is clear.
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import type { SessionEvent } from "../../src/client/types.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { TestClient } from "../helpers/client-harness.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { assertBuilt, ROOT } from "../helpers/relay-process.js";
import { TestRelay } from "../helpers/relay-harness.js";
import { sawJoin } from "../helpers/v2-waits.js";
import { waitUntil } from "../helpers/wait.js";

let alice: PrivateIdentity;
const cleanups: Array<() => Promise<unknown> | unknown> = [];

beforeAll(async () => {
  alice = await fixtureIdentity("alice");
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "sc-frozen-"));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

interface ChildLine { type: string; text?: string; id?: string; state?: string; gap?: boolean }

/** bob's ChatClient in its own process, its events as parsed JSON lines. */
function bobProcess(port: number, dir: string): { proc: ChildProcessWithoutNullStreams; lines: ChildLine[] } {
  assertBuilt();
  const proc = spawn(process.execPath, [join(ROOT, "test", "helpers", "client-child.mjs"), String(port), "bob", dir]);
  const lines: ChildLine[] = [];
  let buf = "";
  proc.stdout.on("data", (d: Buffer) => {
    buf += d.toString("utf8");
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      lines.push(JSON.parse(buf.slice(0, nl)) as ChildLine);
      buf = buf.slice(nl + 1);
    }
  });
  cleanups.push(() => {
    proc.kill("SIGCONT");
    proc.kill("SIGKILL");
  });
  return { proc, lines };
}

const accepted = (c: TestClient) => new Set(c.events.flatMap((e) => (e.type === "message-state" && e.state === "accepted" ? [e.id] : [])));

describe("a client that freezes", () => {
  // Load-sensitive: failed in some full runs on a saturated 2-core machine, passes alone (closing
  // note of 2026-12-06). One retry so CI is not decided by machine load; two failures are real.
  it("is dropped by the relay's keepalive; on waking it gets every message once, in order", { retry: 1, timeout: 150_000 }, async () => {
    const dir = tempDir();
    // Short relay pings so the test sees the frozen client dropped in about two seconds (not
    // shorter: alice shares this process's event loop, and a loaded machine stalls it for 300 ms).
    const relay = await TestRelay.start({ keepalive: { timeMs: 1000, timeoutMs: 1000 }, limits: { messagesPerSecond: 1000, burst: 1000 } });
    cleanups.push(() => relay.cleanup());
    const bob = bobProcess(relay.running.port, dir);
    await waitUntil(() => bob.lines.some((l) => l.type === "connection" && l.state === "connected"), "bob connected", 15_000);
    const a = await TestClient.start(alice, relay.running.port, { dir, statePath: join(dir, "alice_state.db") });
    cleanups.push(() => a.close());
    await waitUntil(() => a.client.snapshot().peers.some((p) => p.username === "bob" && p.online), "alice sees bob");

    bob.proc.kill("SIGSTOP");
    const ids: string[] = [];
    for (let i = 0; i < 120; i++) {
      const r = a.client.send("dm:alice:bob", `while frozen ${i}`);
      if (r.ok) ids.push(r.value.id);
    }
    // The relay notices bob does not answer its pings and lets him go; alice's messages wait.
    await relay.waitForLog("session.close", (l) => l.user === "bob", 15_000);
    // v2 sends one message per round trip (PROTOCOL.md §17): 120 take seconds on a loaded machine.
    await waitUntil(() => ids.every((id) => accepted(a).has(id)), "every message accepted", 60_000);

    bob.proc.kill("SIGCONT");
    const got = await waitUntil(() => {
      const m = bob.lines.filter((l) => l.type === "message");
      return m.length >= 120 ? m : undefined;
    }, "bob catches up", 30_000);
    expect(got.map((m) => m.text)).toEqual(Array.from({ length: 120 }, (_, i) => `while frozen ${i}`));
    expect(new Set(got.map((m) => m.id)).size).toBe(120);
    expect(got.some((m) => m.gap)).toBe(false);
  });
});

describe("a relay whose disk is full", () => {
  it("refuses new messages clearly, loses nothing it accepted, and stays uncorrupted", async () => {
    const dir = tempDir();
    const dataDir = join(dir, "relay");
    const bob = await fixtureIdentity("bob");
    // relay.db capped at 512 KiB: a full disk on purpose (v2: room for the KeyPackages of two
    // users and the lobby's group first, ~300 KiB; the messages then fill the rest).
    let relay = await TestRelay.start({ dataDir, maxDatabaseBytes: 512 * 1024, limits: { messagesPerSecond: 10_000, burst: 10_000 } });
    const b = await TestClient.start(bob, relay.running.port, { dir });
    // v2: bob's KeyPackages are on the relay (they go up before he enters the lobby), so alice can open the DM.
    await waitUntil(() => sawJoin(b, "lobby", "bob"), "bob's KeyPackages published", 30_000);
    await b.close(); // bob is away: everything for him is stored
    const a = await TestClient.start(alice, relay.running.port, { dir, statePath: join(dir, "alice_state.db"), reconnect: false });
    const failed = (): Array<SessionEvent & { type: "message-state" }> =>
      a.events.filter((e): e is SessionEvent & { type: "message-state" } => e.type === "message-state" && e.state === "failed");
    const sent: string[] = [];
    for (let round = 0; failed().length === 0 && round < 40; round++) {
      const ids: string[] = [];
      for (let i = 0; i < 25; i++) {
        const r = a.client.send("dm:alice:bob", `stored ${sent.length + ids.length} ${"x".repeat(600)}`);
        if (r.ok) ids.push(r.value.id);
      }
      sent.push(...ids);
      await waitUntil(() => ids.every((id) => a.events.some((e) => e.type === "message-state" && e.id === id)), "answers for a round", 30_000);
    }
    expect(failed().length).toBeGreaterThan(0);
    expect(failed()[0]!.failure).toMatch(/storage is full/);
    const ok = sent.filter((id) => accepted(a).has(id));
    expect(ok.length).toBeGreaterThan(20);
    await a.close();
    await relay.cleanup();

    // The database is intact, and after the restart (more room) bob gets exactly what was accepted.
    const db = new DatabaseSync(join(dataDir, "relay.db"));
    expect((db.prepare("PRAGMA integrity_check").get() as { integrity_check: string }).integrity_check).toBe("ok");
    db.close();
    relay = await TestRelay.start({ dataDir });
    cleanups.push(() => relay.cleanup());
    const b2 = await TestClient.start(bob, relay.running.port, { dir });
    cleanups.push(() => b2.close());
    const got = await waitUntil(() => {
      const m = b2.messages().filter((x) => !x.own);
      return m.length >= ok.length ? m : undefined;
    }, "bob receives what was accepted", 20_000);
    expect(got.map((m) => m.id).sort()).toEqual([...ok].sort());
    expect(new Set(got.map((m) => m.id)).size).toBe(got.length);
  }, 60_000);
});
