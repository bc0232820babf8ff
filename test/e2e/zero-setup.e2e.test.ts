// Issue 10 §2, with the real binaries in real terminals: three people on one machine and one
// account, each under a HOME of their own, run chat-tui without --server. The first one starts
// this machine's relay as a process of its own; it outlives her. Whoever quits, nothing is lost:
// rooms, bindings and a DM queued for someone away.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { processAlive, RELAY_BIN, TUI_BIN } from "../helpers/relay-process.js";
import { Tmux, tmuxAvailable } from "../helpers/tmux.js";
import { waitUntil } from "../helpers/wait.js";

let dir: string;
let relayDir: string;
let port: number;
const tmux = new Tmux();

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      s.close(() => (a !== null && typeof a === "object" ? resolve(a.port) : reject(new Error("no port"))));
    });
  });
}

function relayPid(): number | undefined {
  try {
    return (JSON.parse(readFileSync(join(relayDir, "relay.pid"), "utf8")) as { pid: number }).pid;
  } catch {
    return undefined;
  }
}

/** chat-tui with no --server, as a new user types it, under a HOME of its own. */
function start(name: string, session: string = name): void {
  const home = join(dir, `home-${name}`);
  mkdirSync(home, { recursive: true, mode: 0o700 });
  const env = {
    HOME: home, XDG_CONFIG_HOME: join(home, ".config"), XDG_STATE_HOME: join(home, ".local", "state"),
    // One machine-wide relay: its dir and port (the defaults are the account's home and 50051,
    // which a test on a shared machine must not take).
    SECURECHAT_RELAY_DIR: relayDir, SECURECHAT_RELAY_PORT: String(port),
  };
  tmux.start(session, `${process.execPath} ${TUI_BIN} ${name} --no-bell`, { env, width: 140, height: 34 });
}

beforeAll(async () => {
  if (!tmuxAvailable()) throw new Error("tmux is required for the end-to-end tests (.ci/run installs it)");
  dir = mkdtempSync(join(tmpdir(), "sc-zero-setup-"));
  relayDir = join(dir, "machine-relay");
  port = await freePort();
});

afterAll(() => {
  tmux.kill();
  const pid = relayPid();
  if (pid !== undefined && processAlive(pid)) {
    try {
      execFileSync(process.execPath, [RELAY_BIN, "stop", "--data-dir", relayDir], { stdio: "ignore", timeout: 20_000 });
    } catch {
      process.kill(pid, "SIGKILL"); // the relay this test started, by its pid
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

describe("the zero-setup relay is this machine's chat-relay, in a process of its own", () => {
  it("outlives the chat-tui that started it: rooms, members and a DM queued for someone away are kept", async () => {
    start("alice");
    await tmux.waitForScreen("alice", /connected/, 60_000);
    await tmux.waitForScreen("alice", (s) => s.includes("Started this machine's relay"));
    const pid = relayPid();
    expect(pid).toBeDefined();
    expect(pid).not.toBe(undefined);
    // The relay is the real bin with its own log file, not part of alice's chat-tui.
    expect(readFileSync(`/proc/${pid}/cmdline`, "utf8")).toContain("server/main.js");
    await waitUntil(() => (readFileSync(join(relayDir, "relay.log"), "utf8").includes("relay.listening") ? true : undefined), "the relay's log");

    start("bob");
    await tmux.waitForScreen("bob", /connected/, 60_000);
    await tmux.waitForScreen("bob", (s) => s.includes("Using this machine's relay") && s.includes(`pid ${pid}`));
    tmux.say("alice", "/join #ops");
    await tmux.waitForScreen("alice", /#ops/);
    tmux.say("bob", "/join #ops");
    await tmux.waitForScreen("alice", (s) => s.includes("bob") && s.includes("joined"));
    tmux.say("alice", "ops room is open 4e1c");
    await tmux.waitForScreen("bob", (s) => s.includes("ops room is open 4e1c"));

    // alice, who started the relay, leaves. The relay does not.
    tmux.say("alice", "/quit");
    expect(await tmux.waitForExit("alice", 20_000)).toBe(0);
    expect(processAlive(pid!)).toBe(true);

    // bob keeps the room and can write to alice, who is away: the DM is queued, not refused.
    tmux.say("bob", "room still here 77b2");
    await tmux.waitForScreen("bob", (s) => s.includes("room still here 77b2") && !s.includes("✗"));
    tmux.say("bob", "/msg alice for when you are back 5d9a");
    await tmux.waitForScreen("bob", (s) => s.includes("for when you are back 5d9a") && s.includes("queued for alice"), 20_000);

    // carol, under a third HOME, finds the same relay and the same room.
    start("carol");
    await tmux.waitForScreen("carol", /connected/, 60_000);
    await tmux.waitForScreen("carol", (s) => s.includes(`pid ${pid}`));
    tmux.say("carol", "/join #ops");
    tmux.say("bob", "/switch #ops");
    await tmux.waitForScreen("bob", (s) => s.includes("carol") && s.includes("joined"));

    // alice comes back: her DM from bob and the room message she missed are there.
    start("alice", "alice-again");
    await tmux.waitForScreen("alice-again", /connected/, 60_000);
    await tmux.waitForScreen("alice-again", (s) => s.includes(`pid ${pid}`));
    tmux.say("alice-again", "/query bob");
    await tmux.waitForScreen("alice-again", (s) => s.includes("for when you are back 5d9a"), 20_000);
    tmux.say("alice-again", "/switch #ops");
    await tmux.waitForScreen("alice-again", (s) => s.includes("room still here 77b2"));
    expect(relayPid()).toBe(pid); // one relay all along

    // The relay dies (kill -9): the running chat-tuis start it again on the same data dir.
    process.kill(pid!, "SIGKILL"); // the relay this test's first chat-tui started
    const second = await waitUntil(() => {
      const p = relayPid();
      return p !== undefined && p !== pid && processAlive(p) ? p : undefined;
    }, "a chat-tui to start the relay again", 60_000);
    tmux.say("bob", "after the crash 3c3c");
    await tmux.waitForScreen("alice-again", (s) => s.includes("after the crash 3c3c"), 60_000);

    // Stopping it is one command; it says so and is gone.
    for (const name of ["alice-again", "bob", "carol"]) tmux.keys(name, "C-c");
    for (const name of ["alice-again", "bob", "carol"]) expect(await tmux.waitForExit(name, 20_000)).toBe(0);
    const out = execFileSync(process.execPath, [RELAY_BIN, "stop", "--data-dir", relayDir], { encoding: "utf8", timeout: 20_000 });
    expect(out).toBe(`stopped the relay (pid ${second}) of ${relayDir}\n`);
    expect(processAlive(second)).toBe(false);
  }, 300_000);
});
