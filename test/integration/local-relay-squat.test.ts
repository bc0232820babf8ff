// chat-tui's zero-setup relay against a stale relay.pid and another local user's listener on its
// port (src/tui/local-relay.ts, src/common/pid-file.ts, src/tui/port-owner.ts). The squatter runs
// as uid 65534 (nobody), which needs root: those cases are skipped, saying so, otherwise; the
// same rule is covered without root by test/unit/pid-file.test.ts and the injected cases below.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { createServer, type AddressInfo } from "node:net";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ensureLocalRelay, runningLocalRelay } from "../../src/tui/local-relay.js";
import { somethingListens } from "../../src/tui/startup.js";
import { assertBuilt, RELAY_BIN } from "../helpers/relay-process.js";

const ROOT = typeof process.getuid === "function" && process.getuid() === 0;
const LINUX = process.platform === "linux";
if (!ROOT || !LINUX) console.warn("local-relay-squat: the cases with a squatter of another uid need root on Linux (they spawn uid 65534): skipped");

const dirs: string[] = [];
const kids: ChildProcess[] = [];
afterEach(() => {
  for (const k of kids.splice(0)) k.kill("SIGKILL");
  for (const d of dirs.splice(0)) {
    if (runningLocalRelay(d) !== undefined) spawnSync(process.execPath, [RELAY_BIN, "stop", "--data-dir", d], { timeout: 20_000 });
    rmSync(d, { recursive: true, force: true });
  }
});

/**
 * A TCP listener on 127.0.0.1 run as ANOTHER unix user (nobody), on a port the system picks (a
 * port picked at random here could be any socket's ephemeral port: CI once hung on one taken),
 * and that port; a squatter that fails to listen fails the test at once.
 */
async function squat(): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, ["-e", `const s=require("net").createServer(c=>c.destroy());s.listen(0,"127.0.0.1",()=>console.log(String(s.address().port)))`],
    { uid: 65534, gid: 65534, stdio: ["ignore", "pipe", "inherit"] });
  kids.push(child);
  const port = await new Promise<number>((res, rej) => {
    child.stdout!.once("data", (b: Buffer) => res(Number(b.toString().trim())));
    child.once("exit", (code) => rej(new Error(`the squatter exited (${code}) before it listened`)));
  });
  return { child, port };
}

/** A port nothing listens on now (the system's pick, closed again at once). */
async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((res) => srv.listen(0, "127.0.0.1", () => res()));
  const port = (srv.address() as AddressInfo).port;
  await new Promise<void>((res) => srv.close(() => res()));
  return port;
}

function freshDir(): string {
  const d = mkdtempSync(join(tmpdir(), "sc-squat-relay-"));
  chmodSync(d, 0o700);
  dirs.push(d);
  return d;
}

describe("local relay port held by another user", () => {
  it.skipIf(!ROOT || !LINUX)("a listener of another uid is refused with a sentence, not used", async () => {
    assertBuilt();
    const { port } = await squat();
    await expect(ensureLocalRelay({ dir: freshDir(), port, relayBin: RELAY_BIN, listens: somethingListens }))
      .rejects.toThrow(`127.0.0.1:${port} is taken by a program of another user (uid 65534): not using it; set SECURECHAT_RELAY_PORT to another port, or name a relay with --server`);
  });

  it.skipIf(!ROOT || !LINUX)("a stale relay.pid naming the squatter's pid does not make it 'this machine's relay'", async () => {
    assertBuilt();
    const { child: s, port } = await squat();
    const dir = freshDir();
    writeFileSync(join(dir, "relay.pid"), JSON.stringify({ pid: s.pid, host: "127.0.0.1", port, startedAtMs: 1 }) + "\n", { mode: 0o600 });
    expect(runningLocalRelay(dir)).toBeUndefined();
    await expect(ensureLocalRelay({ dir, port, relayBin: RELAY_BIN, listens: somethingListens })).rejects.toThrow(/taken by a program of another user \(uid 65534\)/);
  });

  it("a listener of ours not named by relay.pid is used as before; another uid's (injected) is refused", async () => {
    const dir = freshDir();
    const listens = async (): Promise<boolean> => true;
    await expect(ensureLocalRelay({ dir, port: 50051, listens, uid: 1000, portOwners: () => [1000] })).resolves.toEqual({ foreign: true, address: "127.0.0.1:50051" });
    await expect(ensureLocalRelay({ dir, port: 50051, listens, uid: 1000, portOwners: () => [1000, 1001] })).rejects.toThrow(/another user \(uid 1001\)/);
    await expect(ensureLocalRelay({ dir, port: 50051, listens, uid: 1000, portOwners: () => [] })).rejects.toThrow(/not using it/);
    // Not Linux: nobody can tell; used as before (README's Limits).
    await expect(ensureLocalRelay({ dir, port: 50051, listens, uid: 1000, portOwners: () => undefined })).resolves.toMatchObject({ foreign: true });
  });
});

describe("stale relay.pid", () => {
  it("one naming a reused pid (pid 1, started at boot) does not keep the relay from starting", async () => {
    assertBuilt();
    const port = await freePort();
    const dir = freshDir();
    writeFileSync(join(dir, "relay.pid"), JSON.stringify({ pid: 1, host: "127.0.0.1", port, startedAtMs: 1 }) + "\n", { mode: 0o600 });
    const r = await ensureLocalRelay({ dir, port, relayBin: RELAY_BIN, listens: somethingListens });
    expect(r).toMatchObject({ address: `127.0.0.1:${port}`, started: true, dataDir: dir });
    if ("foreign" in r) throw new Error("expected our own relay");
    expect(r.pid).not.toBe(1);
    expect(JSON.parse(readFileSync(join(dir, "relay.pid"), "utf8"))).toMatchObject({ pid: r.pid, port });
  }, 40_000);

  it("'chat-relay stop' signals nothing when the pid is another process now", async () => {
    assertBuilt();
    const dir = freshDir();
    const victim = spawn("sleep", ["300"], { stdio: "ignore" }); // e.g. the user's editor, now holding the old relay's pid
    kids.push(victim);
    let signalled: NodeJS.Signals | null = null;
    victim.once("exit", (_c, sig) => { signalled = sig; });
    writeFileSync(join(dir, "relay.pid"), JSON.stringify({ pid: victim.pid, host: "127.0.0.1", port: 1, startedAtMs: 1 }) + "\n", { mode: 0o600 });
    const r = spawnSync(process.execPath, [RELAY_BIN, "stop", "--data-dir", dir], { encoding: "utf8", timeout: 20_000 });
    expect(r.status).not.toBe(0);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(new RegExp(`no relay is running on the data dir .*stale: process ${victim.pid} is not the relay that wrote relay.pid \\(pid reused\\)\\); nothing was signalled`));
    await new Promise((res) => setTimeout(res, 300));
    expect(signalled).toBeNull();
    expect(victim.exitCode).toBeNull();
  });
});
