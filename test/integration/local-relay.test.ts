// chat-tui's zero-setup relay (src/tui/local-relay.ts) with the real chat-relay bin: two chat-tui
// racing to start it end with one relay; a running one is found through its relay.pid; one data
// dir can be used by one relay at a time.
import { execFile, spawnSync } from "node:child_process";
import { promisify } from "node:util";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ensureLocalRelay, runningLocalRelay } from "../../src/tui/local-relay.js";
import { somethingListens } from "../../src/tui/startup.js";
import { assertBuilt, processAlive, RELAY_BIN } from "../helpers/relay-process.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) {
    const running = runningLocalRelay(d);
    if (running !== undefined) spawnSync(process.execPath, [RELAY_BIN, "stop", "--data-dir", d], { timeout: 20_000 });
    rmSync(d, { recursive: true, force: true });
  }
});

async function run(args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  try {
    const r = await promisify(execFile)(process.execPath, [RELAY_BIN, ...args], { encoding: "utf8", timeout: 20_000 });
    return { status: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { status: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

describe("this machine's relay", () => {
  it("two chat-tui racing to start it end with one relay, which both use", async () => {
    assertBuilt();
    const dir = mkdtempSync(join(tmpdir(), "sc-local-relay-"));
    dirs.push(dir);
    const o = { dir, port: 0, relayBin: RELAY_BIN, listens: somethingListens };
    const [a, b] = await Promise.all([ensureLocalRelay(o), ensureLocalRelay(o)]);
    if ("foreign" in a || "foreign" in b) throw new Error("expected our own relay");
    expect(a.pid).toBe(b.pid);
    expect(a.port).toBe(b.port);
    expect([a.started, b.started].filter(Boolean).length).toBeLessThanOrEqual(1);
    expect(JSON.parse(readFileSync(join(dir, "relay.pid"), "utf8"))).toMatchObject({ pid: a.pid, port: a.port });
    // A third finds it without starting anything.
    const c = await ensureLocalRelay(o);
    expect(c).toMatchObject({ pid: a.pid, started: false });
    // The loser's relay (if the race got that far) said why it stepped back, in the shared log.
    const log = readFileSync(join(dir, "relay.log"), "utf8");
    expect(log.match(/"event":"relay.listening"/g)).toHaveLength(1);

    // One data dir, one relay: starting another by hand is refused with who holds it.
    // (Asynchronously: the relay is this process's child, and only a free event loop reaps it.)
    const second = await run(["--host", "127.0.0.1", "--port", "0", "--data-dir", dir]);
    expect(second.status).toBe(3);
    expect(second.stderr).toBe(`chat-relay: another relay (pid ${a.pid}, port ${a.port}) already uses the data dir ${dir}; stop it with: chat-relay stop --data-dir '${dir}'\n`);

    const out = (await run(["stop", "--data-dir", dir])).stdout;
    expect(out).toBe(`stopped the relay (pid ${a.pid}) of ${dir}\n`);
    expect(processAlive(a.pid)).toBe(false);
    expect(runningLocalRelay(dir)).toBeUndefined();
    const again = await run(["stop", "--data-dir", dir]);
    expect({ status: again.status, stderr: again.stderr }).toEqual({ status: 1, stderr: `chat-relay: no relay is running on the data dir ${dir}\n` });
  }, 60_000);
});
