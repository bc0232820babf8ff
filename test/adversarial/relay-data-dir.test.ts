// chat-relay's data dir (src/server/startup.ts, pid-lock.ts, main.ts): a relay.pid whose pid is
// another process now (pid reuse after a crash or a reboot, or a planted file) neither keeps the
// relay from starting nor gets that process signalled by `chat-relay stop`; a data dir others
// may write, and a relay.db that is a symbolic link, are refused.
import { spawn, spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ensurePrivateDataDir, RelayStartError } from "../../src/server/startup.js";
import { assertBuilt, RELAY_BIN } from "../helpers/relay-process.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) {
    spawnSync(process.execPath, [RELAY_BIN, "stop", "--data-dir", d], { timeout: 20_000 });
    rmSync(d, { recursive: true, force: true });
  }
});
function freshDir(): string {
  const d = mkdtempSync(join(tmpdir(), "sc-relay-dir-"));
  dirs.push(d);
  return d;
}

/** Starts the relay bin; resolves once relay.pid names it and its port (or it exited). */
async function startRelay(dataDir: string): Promise<{ pid: number; exit: Promise<number | null>; stderr: () => string }> {
  let err = "";
  const child = spawn(process.execPath, [RELAY_BIN, "--host", "127.0.0.1", "--port", "0", "--data-dir", dataDir], { stdio: ["ignore", "ignore", "pipe"] });
  child.stderr.on("data", (b: Buffer) => { err += b.toString(); });
  let exited = false;
  const exit = new Promise<number | null>((r) => child.once("exit", (c) => { exited = true; r(c); }));
  for (let i = 0; i < 400 && !exited; i++) {
    try {
      const f = JSON.parse(readFileSync(join(dataDir, "relay.pid"), "utf8")) as { pid: number; port?: number };
      if (f.pid === child.pid && f.port !== undefined) break;
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { pid: child.pid!, exit, stderr: () => err };
}

describe("relay.pid naming a process that is not the relay", () => {
  it("the relay takes the data dir over, and 'chat-relay stop' stops the relay, never the other process", async () => {
    assertBuilt();
    const dataDir = freshDir();
    const victim = spawn("sleep", ["60"], { stdio: "ignore" });
    let victimSignal: NodeJS.Signals | null = null;
    victim.once("exit", (_c, sig) => { victimSignal = sig; });
    try {
      writeFileSync(join(dataDir, "relay.pid"), `${JSON.stringify({ pid: victim.pid, startedAtMs: 1, host: "127.0.0.1", port: 1 })}\n`, { mode: 0o600 });
      const relay = await startRelay(dataDir);
      const pidFile = JSON.parse(readFileSync(join(dataDir, "relay.pid"), "utf8")) as { pid: number; port?: number; bootId?: string; startTicks?: number };
      expect(pidFile.pid, relay.stderr()).toBe(relay.pid);
      if (process.platform === "linux") expect(typeof pidFile.startTicks).toBe("number");
      const stop = spawnSync(process.execPath, [RELAY_BIN, "stop", "--data-dir", dataDir], { encoding: "utf8", timeout: 20_000 });
      expect(stop.stdout).toBe(`stopped the relay (pid ${relay.pid}) of ${dataDir}\n`);
      expect(await relay.exit).toBe(0);
      expect(victimSignal).toBeNull();
      expect(victim.exitCode).toBeNull();
    } finally {
      victim.kill("SIGKILL");
    }
  }, 60_000);
});

describe("the data dir must be private", () => {
  it("a data dir others may write is refused with the chmod to run; one others may read is tightened", () => {
    const dataDir = freshDir();
    chmodSync(dataDir, 0o777);
    const r = spawnSync(process.execPath, [RELAY_BIN, "--host", "127.0.0.1", "--port", "0", "--data-dir", dataDir], { encoding: "utf8", timeout: 20_000 });
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(`chat-relay: cannot use data directory ${dataDir}: other users may write in it (mode 0777) and could replace the relay's files; run: chmod 700 '${dataDir}'\n`);
    expect(statSync(dataDir).mode & 0o777).toBe(0o777);
    chmodSync(dataDir, 0o755);
    ensurePrivateDataDir(dataDir);
    expect(statSync(dataDir).mode & 0o777).toBe(0o700);
  });

  it("a data dir of another uid is refused", () => {
    const dataDir = freshDir();
    const mine = statSync(dataDir).uid;
    expect(() => ensurePrivateDataDir(dataDir, mine + 1)).toThrow(new RelayStartError(`cannot use data directory ${dataDir}: it belongs to another user (uid ${mine}), who could replace the relay's files; use a directory of your own (--data-dir)`));
  });

  it("a relay.db that is a symbolic link is not followed", () => {
    const dataDir = freshDir();
    const elsewhere = join(freshDir(), "target.db");
    writeFileSync(elsewhere, "");
    symlinkSync(elsewhere, join(dataDir, "relay.db"));
    const r = spawnSync(process.execPath, [RELAY_BIN, "--host", "127.0.0.1", "--port", "0", "--data-dir", dataDir], { encoding: "utf8", timeout: 20_000 });
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(`chat-relay: refusing to open ${join(dataDir, "relay.db")}: it is a symbolic link (remove it; the relay's files are plain files)\n`);
    expect(statSync(elsewhere).size).toBe(0);
  });
});
