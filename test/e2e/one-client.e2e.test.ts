// One chat-tui per user and key directory (PROTOCOL.md §4.3), with the real binaries in real
// terminals: alice runs in one terminal; a second `chat-tui alice` under the same HOME says in
// one sentence that she is open already (naming the first's pid), draws no screen, exits
// non-zero and leaves the first working; once the first quits, the next one starts.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRelayProcess, TUI_BIN, type RelayProcess } from "../helpers/relay-process.js";
import { Tmux, tmuxAvailable } from "../helpers/tmux.js";

let dir: string;
let home: string;
let relay: RelayProcess;
const tmux = new Tmux();

beforeAll(async () => {
  if (!tmuxAvailable()) throw new Error("tmux is required for the end-to-end tests (.ci/run installs it)");
  dir = mkdtempSync(join(tmpdir(), "sc-e2e-onelock-"));
  home = join(dir, "home");
  mkdirSync(home, { recursive: true, mode: 0o700 });
  relay = await startRelayProcess(join(dir, "relay"));
});

afterAll(async () => {
  await tmux.quitAll(["first", "third"]);
  tmux.kill();
  await relay?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/**
 * chat-tui alice under the test's HOME (its key directory: $HOME/.config/secure-chat). `hold`:
 * once it exits, its status is printed and the terminal kept open (tmux may drop what a pane
 * printed just before it closed), until the test presses Ctrl-D.
 */
function start(session: string, hold = false): void {
  const env = { HOME: home, XDG_CONFIG_HOME: join(home, ".config"), XDG_STATE_HOME: join(home, ".local", "state") };
  const tui = `${process.execPath} ${TUI_BIN} alice --server 127.0.0.1:${relay.port} --no-bell`;
  tmux.start(session, hold ? `${tui}; echo "[exit $?]"; cat` : tui, { env, width: 160, height: 32 });
}

const keyDir = (): string => join(home, ".config", "secure-chat");
const peers = (): string => {
  const p = join(keyDir(), "alice_known_peers.json");
  return existsSync(p) ? readFileSync(p, "utf8") : "(none)";
};

describe("a second chat-tui of the same user and directory", () => {
  it("is refused with one sentence before any screen, and the first goes on", async () => {
    start("first");
    await tmux.waitForScreen("first", /connected/, 90_000);
    const lock = JSON.parse(readFileSync(join(keyDir(), "alice.lock"), "utf8")) as { pid: number };
    const peersBefore = peers();

    start("second", true);
    const shown = await tmux.waitForScreen("second", /\[exit \d+\]/, 30_000);
    tmux.keys("second", "C-d");
    // All it printed: one sentence (no screen drawn), and a non-zero status.
    expect(shown.split("\n").filter((l) => l.trim() !== "")).toEqual([
      `chat-tui: alice is already open in another chat-tui on this machine (pid ${lock.pid}). Use that one, or quit it first.`,
      "[exit 3]",
    ]);
    // Nothing of the user's was touched by it, and the lock is still the first's.
    expect(peers()).toBe(peersBefore);
    expect(JSON.parse(readFileSync(join(keyDir(), "alice.lock"), "utf8"))).toMatchObject({ pid: lock.pid });

    // The first still works: a line sent to the lobby shows there.
    await tmux.sayAndWait("first", "still here after the second one");
    await tmux.waitForScreen("first", /alice.*still here after the second one/, 15_000);
    expect(tmux.exitStatus("first")).toBeUndefined();

    // Quitting the first releases the lock: the next chat-tui alice starts.
    tmux.keys("first", "C-c");
    expect(await tmux.waitForExit("first", 20_000)).toBe(0);
    start("third");
    await tmux.waitForScreen("third", /connected/, 60_000);
  }, 240_000);
});
