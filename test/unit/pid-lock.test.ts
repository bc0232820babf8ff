// The one pid lock of the relay's data dir and a client's key directory (src/common/pid-lock.ts):
// taken, refused naming its holder, taken over only from a holder provably gone or another
// process now (pid reuse; the system injected as a ProcessProbe), never through a symlink; of
// several processes racing for it, exactly one wins (with no lock there, and with a stale one).
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from "node:child_process";
import { existsSync, lstatSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { PidLockHeld, PidLockPathUnsafe, takePidLock } from "../../src/common/pid-lock.js";
import type { ProcessProbe } from "../../src/common/pid-file.js";
import { REPO_ROOT } from "../helpers/paths.js";
import { waitUntil } from "../helpers/wait.js";

const BOOT = "0b1c2d3e-boot";
const stat = (pid: number, state: string, ticks: number): string =>
  `${pid} (node) ${state} 1 ${pid} ${pid} 0 -1 4194560 ${Array.from({ length: 12 }, () => "0").join(" ")} ${ticks} 1000 200`;

/** A Linux where pid 4242 is `kill` and started at `ticks`; this host is `host`. */
function linux(o: { kill?: "ok" | "ESRCH" | "EPERM"; ticks?: number; host?: string } = {}): ProcessProbe {
  return {
    platform: "linux", uid: 1000, hostname: o.host ?? "here",
    kill0: (pid) => (pid === 4242 ? o.kill ?? "ok" : "ESRCH"),
    readFile: (p) => p === "/proc/sys/kernel/random/boot_id" ? `${BOOT}\n`
      : p === "/proc/self/stat" ? stat(process.pid, "R", 9_000)
      : p === "/proc/4242/stat" ? stat(4242, "S", o.ticks ?? 5_000) : undefined,
    ownerUid: () => 1000,
    ps: () => undefined,
    now: () => 1_800_000_000_000,
  };
}

let dir: string;
let path: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "sc-pidlock-"));
  path = join(dir, "alice.lock");
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const holderFile = (c: Record<string, unknown>): void => writeFileSync(path, `${JSON.stringify({ pid: 4242, startedAtMs: 1, bootId: BOOT, startTicks: 5_000, hostname: "here", nonce: "n1", ...c })}\n`, { mode: 0o600 });
const onDisk = (): Record<string, unknown> => JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>;

describe("takePidLock", () => {
  it("takes a free lock: 0600, our pid and start identity, whole from the start; release removes only it", () => {
    const lock = takePidLock(path, { probe: linux(), recordHostname: true });
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(onDisk()).toMatchObject({ pid: process.pid, bootId: BOOT, startTicks: 9_000, hostname: "here", nonce: expect.stringMatching(/^[0-9a-f]{32}$/) });
    lock.release();
    expect(existsSync(path)).toBe(false);
    // No temporary file is left beside it.
    expect(spawnSync("ls", ["-A", dir], { encoding: "utf8" }).stdout).toBe("");
  });

  it("refuses a lock whose holder runs, naming it; the holder's file is untouched", () => {
    holderFile({});
    const before = readFileSync(path, "utf8");
    let refused: unknown;
    try {
      takePidLock(path, { probe: linux() });
    } catch (e) {
      refused = e;
    }
    expect(refused).toBeInstanceOf(PidLockHeld);
    expect(refused).toMatchObject({ state: "running", holder: { pid: 4242 } });
    expect((refused as Error).message).toMatch(/process 4242/);
    expect(readFileSync(path, "utf8")).toBe(before);
  });

  it("takes over a lock whose holder is gone (dead pid)", () => {
    holderFile({});
    const lock = takePidLock(path, { probe: linux({ kill: "ESRCH" }) });
    expect(onDisk()).toMatchObject({ pid: process.pid });
    lock.release();
    expect(existsSync(path)).toBe(false);
  });

  it("takes over a lock whose pid is another process now (pid reused: another start, or another boot of this host)", () => {
    holderFile({});
    takePidLock(path, { probe: linux({ ticks: 5_001 }) }).release();
    holderFile({ bootId: "an-earlier-boot" });
    const lock = takePidLock(path, { probe: linux() });
    expect(onDisk()).toMatchObject({ pid: process.pid });
    lock.release();
  });

  it("refuses a lock written on another host (a shared directory): its holder can be proven neither alive nor dead", () => {
    holderFile({ hostname: "laptop", bootId: "laptop-boot" });
    expect(() => takePidLock(path, { probe: linux({ kill: "ESRCH" }) })).toThrow(expect.objectContaining({ state: "elsewhere", holder: expect.objectContaining({ hostname: "laptop" }) }) as Error);
    expect(onDisk()).toMatchObject({ hostname: "laptop" });
  });

  it("refuses a second take in the same process until the first is released", () => {
    const lock = takePidLock(path, { probe: linux() });
    expect(() => takePidLock(path, { probe: linux() })).toThrow(expect.objectContaining({ state: "this-process" }) as Error);
    lock.release();
    takePidLock(path, { probe: linux() }).release();
  });

  it("never follows or removes a symlink at the lock's path", () => {
    const target = join(dir, "target");
    symlinkSync(target, path);
    expect(() => takePidLock(path, { probe: linux() })).toThrow(PidLockPathUnsafe);
    expect(lstatSync(path).isSymbolicLink()).toBe(true);
    expect(readlinkSync(path)).toBe(target);
    expect(existsSync(target)).toBe(false);
  });

  it("a release never removes a lock another process took over meanwhile", () => {
    const lock = takePidLock(path, { probe: linux() });
    holderFile({ nonce: "a-later-taker" });
    lock.release();
    expect(onDisk()).toMatchObject({ nonce: "a-later-taker" });
  });
});

describe("takePidLock, processes racing", () => {
  /** Node processes that each wait for "go" on stdin, try the lock once, say won/lost, and hold it until stdin ends. */
  function racers(n: number): ChildProcessWithoutNullStreams[] {
    const mod = join(REPO_ROOT, "dist", "common", "pid-lock.js");
    const script = `
      const { takePidLock } = await import(${JSON.stringify(mod)});
      process.stdin.once("data", () => {
        try { takePidLock(${JSON.stringify(path)}); process.stdout.write("won\\n"); }
        catch (e) { process.stdout.write((e.name === "PidLockHeld" ? "lost" : "error " + e.message) + "\\n"); }
      });
      process.stdin.on("end", () => process.exit(0));
      process.stdout.write("ready\\n");`;
    return Array.from({ length: n }, () => spawn(process.execPath, ["--input-type=module", "-e", script]));
  }

  async function race(n: number): Promise<string[]> {
    const kids = racers(n);
    const outs = kids.map(() => "");
    kids.forEach((k, i) => k.stdout.on("data", (d: Buffer) => (outs[i] += d.toString())));
    try {
      // Every racer loaded (a start costs far more than a take): then all at once.
      await waitUntil(() => outs.every((o) => o.startsWith("ready\n")), "every racer ready", 20_000);
      for (const k of kids) k.stdin.write("go\n");
      await waitUntil(() => outs.every((o) => /^ready\n.+\n$/.test(o)), "every racer's answer", 20_000);
      return outs.map((o) => o.slice("ready\n".length).trim());
    } finally {
      for (const k of kids) k.stdin.end();
      await Promise.all(kids.map((k) => new Promise((r) => (k.exitCode !== null ? r(null) : k.once("exit", r)))));
    }
  }

  it.skipIf(!existsSync(join(REPO_ROOT, "dist", "common", "pid-lock.js")))("with no lock there: exactly one wins", async () => {
    const outs = await race(6);
    expect(outs.filter((o) => o === "won")).toHaveLength(1);
    expect(outs.filter((o) => o === "lost")).toHaveLength(5);
  });

  it.skipIf(!existsSync(join(REPO_ROOT, "dist", "common", "pid-lock.js")))("with a stale lock there (its process gone): exactly one takes it over", async () => {
    const gone = spawnSync(process.execPath, ["-e", ""]).pid;
    writeFileSync(path, `${JSON.stringify({ pid: gone, startedAtMs: 1, bootId: "an-earlier-boot", startTicks: 1, nonce: "stale" })}\n`, { mode: 0o600 });
    const outs = await race(6);
    expect(outs.filter((o) => o === "won")).toHaveLength(1);
    expect(outs.filter((o) => o === "lost")).toHaveLength(5);
  });
});
