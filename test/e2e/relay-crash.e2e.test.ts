// On screen, with the real binaries: the relay is killed -9 while alice sends and restarted on
// the same data dir; every message shows exactly once on bob's screen, and alice's screen says
// pending while the relay is gone and accepted once it is back.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRelayProcess, TUI_BIN, type RelayProcess } from "../helpers/relay-process.js";
import { Tmux, tmuxAvailable } from "../helpers/tmux.js";

let dir: string;
let relay: RelayProcess;
const tmux = new Tmux();

function tui(name: string, port: number): string {
  return `${process.execPath} ${TUI_BIN} ${name} --server 127.0.0.1:${port} --key-dir ${join(dir, "keys")} --log-file ${join(dir, `${name}.log`)} --no-bell`;
}

function count(screen: string, text: string): number {
  return screen.split(text).length - 1;
}

beforeAll(async () => {
  if (!tmuxAvailable()) throw new Error("tmux is required for the end-to-end tests (.ci/run installs it)");
  dir = mkdtempSync(join(tmpdir(), "sc-crash-e2e-"));
});

afterAll(async () => {
  tmux.kill();
  await relay?.stop("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

describe("relay killed -9 under real terminals", () => {
  it("shows every message exactly once after the relay comes back", async () => {
    const dataDir = join(dir, "relay");
    relay = await startRelayProcess(dataDir);
    const port = relay.port;
    const env = { XDG_STATE_HOME: join(dir, "state") };
    tmux.start("alice", tui("alice", port), { env, width: 110, height: 30 });
    tmux.start("bob", tui("bob", port), { env, width: 110, height: 30 });
    await tmux.waitForScreen("alice", /● bob/, 60_000);
    await tmux.waitForScreen("bob", /● alice/, 60_000);
    // A lobby line is for who is in the lobby's group when it is sent (PROTOCOL.md §7).
    await tmux.waitForScreen("alice", /2 online · 2 can read new lines/, 60_000);

    for (const i of [1, 2, 3]) {
      tmux.say("alice", `before the crash ${i}`);
      // At a person's pace: lines typed faster than the client reads are one paste.
      await tmux.waitForScreen("alice", (s) => s.includes(`before the crash ${i}`) && /\] >\s*$/.test(s));
    }
    await tmux.waitForScreen("bob", (s) => s.includes("before the crash 3"));
    await tmux.waitForScreen("alice", (s) => count(s, "✓") >= 3);

    expect(await relay.stop("SIGKILL")).toBe(null);
    await tmux.waitForScreen("alice", /reconnecting/);
    for (const i of [4, 5]) {
      tmux.say("alice", `while it was down ${i}`);
      await tmux.waitForScreen("alice", (s) => s.includes(`while it was down ${i}`) && /\] >\s*$/.test(s));
    }
    await tmux.waitForScreen("alice", (s) => s.includes("while it was down 5"));

    relay = await startRelayProcess(dataDir, [], port);
    await tmux.waitForScreen("alice", (s) => /● connected/.test(s) && count(s, "✓") >= 5, 30_000);
    const bobScreen = await tmux.waitForScreen("bob", (s) => s.includes("while it was down 5"), 30_000);
    for (const text of ["before the crash 1", "before the crash 2", "before the crash 3", "while it was down 4", "while it was down 5"]) {
      expect(count(bobScreen, text), `"${text}" on bob's screen`).toBe(1);
    }
  }, 120_000);
});
