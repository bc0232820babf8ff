// A catch-up killed in the middle (issue 12, PROTOCOL.md §10.4 "Client storage"): the client
// saves each group once per delivery batch and acks the batch after, so a SIGKILL after some of a
// batch's messages were shown (kept in the history, their ids in the content layer) but before
// the save leaves the saved MLS state behind them and the relay still holding them. After the
// restart they come again: they must open (the saved state still derives their keys), none may
// be shown twice, none lost, none refused, and the conversation goes on without a gap.
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { MlsKeyStore } from "../../src/client/mls-store.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { TestClient } from "../helpers/client-harness.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { assertBuilt, ROOT } from "../helpers/relay-process.js";
import { TestRelay } from "../helpers/relay-harness.js";
import { waitUntil } from "../helpers/wait.js";

let alice: PrivateIdentity;
const cleanups: Array<() => Promise<unknown> | unknown> = [];

beforeAll(async () => {
  alice = await fixtureIdentity("alice");
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Line { type: string; text?: string; texts?: string[]; gap?: boolean; state?: string }

/** bob's v2 ChatClient in its own process; with killAt, it SIGKILLs itself when that message is shown. */
function bob(port: number, dir: string, killAt?: string): { proc: ChildProcessWithoutNullStreams; lines: Line[]; exited: Promise<NodeJS.Signals | null> } {
  assertBuilt();
  const proc = spawn(process.execPath, [join(ROOT, "test", "helpers", "client-crash-child.mjs"), String(port), "bob", dir, ...(killAt === undefined ? [] : [killAt])]);
  const lines: Line[] = [];
  let buf = "";
  proc.stdout.on("data", (d: Buffer) => {
    buf += d.toString("utf8");
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      lines.push(JSON.parse(buf.slice(0, nl)) as Line);
      buf = buf.slice(nl + 1);
    }
  });
  const exited = new Promise<NodeJS.Signals | null>((resolve) => proc.on("exit", (_code, signal) => resolve(signal)));
  cleanups.push(() => { proc.kill("SIGKILL"); });
  return { proc, lines, exited };
}

/** Seqs bob acked since the relay's `from`-th ack log line. */
const ackedByBob = (relay: TestRelay, from: number): number =>
  relay.events("ack").slice(from).filter((l) => l["user"] === "bob").reduce((n, l) => n + Number(l["seqs"]), 0);

const shown = (lines: readonly Line[]): string[] => lines.flatMap((l) => (l.type === "message" ? [l.text!] : []));

describe("a catch-up killed in the middle of a delivery batch", () => {
  it("loses nothing and shows nothing twice after the restart; the conversation goes on", { timeout: 180_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), "sc-catchup-crash-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const relay = await TestRelay.start({ limits: { messagesPerSecond: 1000, burst: 1000 } });
    cleanups.push(() => relay.cleanup());
    const port = relay.running.port;
    const dm = "dm:alice:bob";

    // bob's first run: the DM group is made and one message read.
    const b1 = bob(port, dir);
    await waitUntil(() => b1.lines.some((l) => l.type === "connection" && l.state === "connected"), "bob connected", 30_000);
    const aliceDir = join(dir, "alice");
    mkdirSync(aliceDir);
    const store = MlsKeyStore.open(join(dir, "alice_mls.db"), { username: "alice", sigPrivate: alice.sigPrivate });
    const a = await TestClient.start(alice, port, { dir: aliceDir, statePath: join(dir, "alice_state.db"), v2: { store } });
    cleanups.push(() => a.close());
    const first = a.client.send(dm, "hello bob");
    if (!first.ok) throw new Error("send failed");
    await waitUntil(() => shown(b1.lines).includes("hello bob"), "bob reads the first message", 60_000);
    b1.proc.kill("SIGTERM");
    await b1.exited;

    // 40 messages wait for bob; his second run dies as the 18th is shown.
    const texts = Array.from({ length: 40 }, (_, i) => `burst ${i}`);
    for (const t of texts) {
      const r = a.client.send(dm, t);
      if (!r.ok) throw new Error("send failed");
      await a.waitForState(r.value.id, "accepted", 30_000);
    }
    const acksBefore = relay.events("ack").length;
    const b2 = bob(port, dir, "burst 17");
    expect(await b2.exited).toBe("SIGKILL");
    expect(shown(b2.lines)).toEqual(texts.slice(0, 18));

    // The third run: what the history kept is there once, the rest is shown once, in order. The
    // kill came while burst 17 was being shown, inside its state-db transaction (its content-layer
    // rows and history row commit together, receive.ts): that one was not kept, so it is not a
    // duplicate now but shown again; the 17 before it were kept and are not shown again.
    const b3 = bob(port, dir);
    await waitUntil(() => shown(b3.lines).includes("burst 39"), "bob catches up after the crash", 60_000);
    // All 40 came again and were acked only now: the kill came after 17 were kept but before
    // their batch was saved and acked, so they were replayed from the relay (and opened again).
    await waitUntil(() => ackedByBob(relay, acksBefore) >= 40, "bob acks the whole burst after the restart", 30_000);
    expect(b3.lines.find((l) => l.type === "backlog")?.texts).toEqual(["hello bob", ...texts.slice(0, 17)]);
    const after = a.client.send(dm, "after the crash");
    if (!after.ok) throw new Error("send failed");
    await waitUntil(() => shown(b3.lines).includes("after the crash"), "bob reads on after the crash", 30_000);
    expect(shown(b3.lines)).toEqual([...texts.slice(17), "after the crash"]);
    expect(b3.lines.filter((l) => l.type === "message" && l.gap === true)).toEqual([]);
    expect([...b2.lines, ...b3.lines].filter((l) => l.type === "refused" || l.type === "notice")).toEqual([]);
    b3.proc.kill("SIGTERM");
    expect(await b3.exited).toBe(null);

    // And the kept history holds each message exactly once.
    const b4 = bob(port, dir);
    await waitUntil(() => b4.lines.some((l) => l.type === "backlog"), "bob's fourth start", 30_000);
    expect(b4.lines.find((l) => l.type === "backlog")?.texts).toEqual(["hello bob", ...texts, "after the crash"]);
  });
});
