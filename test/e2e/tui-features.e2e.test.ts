// Presence lines, room topics and /away through the real binaries: the real relay and three
// real chat-tui in tmux, each under its own HOME and state directory (issue 10 §3, §4). The
// committed test keys are used, so no RSA key is generated.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { installFixtureKey } from "../helpers/identities.js";
import { startRelayProcess, TUI_BIN, type RelayProcess } from "../helpers/relay-process.js";
import { Tmux, tmuxAvailable } from "../helpers/tmux.js";

let dir: string;
let relay: RelayProcess;
const tmux = new Tmux();
const USERS = ["alice", "bob", "carol"] as const;

function tui(name: string): string {
  const home = join(dir, "home", name);
  return `${process.execPath} ${TUI_BIN} ${name} --server 127.0.0.1:${relay.port} --key-dir ${join(home, "keys")} --log-file ${join(home, "tui.log")} --no-bell`;
}

function start(name: string): void {
  const home = join(dir, "home", name);
  tmux.start(name, tui(name), { width: 120, height: 30, env: { HOME: home, XDG_STATE_HOME: join(home, "state") } });
}

/** The scrollback column (the sidebar cut off), rows joined with newlines. */
const scrollback = (screen: string): string => screen.split("\n").map((l) => l.replace(/ *│.*$/, "").trimEnd()).join("\n");

beforeAll(async () => {
  if (!tmuxAvailable()) throw new Error("tmux is required for the end-to-end tests (.ci/run installs it)");
  dir = mkdtempSync(join(tmpdir(), "sc-tui-features-e2e-"));
  for (const name of USERS) installFixtureKey(join(dir, "home", name, "keys"), name);
  relay = await startRelayProcess(join(dir, "relay"));
  start("alice");
  start("bob");
  await tmux.waitForScreen("alice", /│ ● bob/);
  await tmux.waitForScreen("bob", /│ ● alice/);
});

afterAll(async () => {
  await tmux.quitAll(USERS);
  await relay?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("presence, topics and away through the real binaries", () => {
  it("the lobby shows who came online and who left, with their goodbye", async () => {
    start("carol");
    const online = await tmux.waitForScreen("alice", (s) => /\d\d:\d\d → carol came online/.test(scrollback(s)));
    expect(online).toMatch(/│ ● carol/);
    await tmux.waitForScreen("carol", /│ ● alice/);
    // The goodbye is a lobby line: carol must be in the lobby's MLS group first (PROTOCOL.md §7.5).
    await tmux.waitForScreen("carol", /3 online · 3 can read new lines/, 60_000);
    tmux.say("carol", "/quit gone for the day");
    await tmux.waitForExit("carol", 10_000);
    const gone = await tmux.waitForScreen("alice", (s) => /\d\d:\d\d ← carol went offline/.test(scrollback(s)));
    expect(scrollback(gone)).toMatch(/\d\d:\d\d \* carol quit: gone for the day/);
    // The goodbye came before the offline line.
    expect(scrollback(gone).indexOf("carol quit: gone for the day")).toBeLessThan(scrollback(gone).indexOf("carol went offline"));
    // Bob hides such lines in his lobby: /filter none.
    tmux.say("bob", "/filter none");
    await tmux.waitForScreen("bob", /presence lines in lobby: hidden/);
    await tmux.waitForScreen("bob", (s) => !s.includes("carol went offline"));
  });

  it("a room topic travels encrypted to the members and stands in the room's header", async () => {
    tmux.say("alice", "/j #feat");
    await tmux.waitForScreen("alice", /\[#feat\] >/);
    tmux.say("bob", "/j #feat");
    await tmux.waitForScreen("bob", /\[#feat\] >/);
    await tmux.waitForScreen("alice", /bob joined #feat/);
    // The room's sidebar lists its members.
    await tmux.waitForScreen("alice", /│ #feat · 2 · 2 online/);
    tmux.say("alice", "/topic release at noon, freeze from 11");
    const bob = await tmux.waitForScreen("bob", (s) => s.includes("alice set the topic: release at noon, freeze from 11"));
    expect(bob.split("\n")[1]).toContain("#feat — release at noon, freeze from 11 — 2 members: alice, bob");
    await tmux.waitForScreen("alice", /you set the topic: release at noon, freeze from 11 ✓/);
  });

  it("/away answers a DM once, automatically, and the status line says away", async () => {
    tmux.say("bob", "/away at lunch until 2");
    await tmux.waitForScreen("bob", (s) => /● connected {2}away/.test(s.split("\n")[0] ?? ""));
    tmux.say("alice", "/msg bob are you there?");
    const reply = await tmux.waitForScreen("alice", (s) => s.includes("is away (automatic reply): at lunch until 2"));
    expect(scrollback(reply)).toMatch(/\d\d:\d\d bob +is away \(automatic reply\): at lunch until 2/);
    tmux.say("bob", "/q alice");
    await tmux.waitForScreen("bob", /automatic reply \(you are away\): at lunch until 2 ✓/);
    // A second DM gets no second reply.
    tmux.say("alice", "ok, later then");
    await tmux.waitForScreen("bob", /ok, later then/);
    tmux.say("bob", "/away");
    await tmux.waitForScreen("bob", (s) => !/away/.test(s.split("\n")[0] ?? ""));
    const after = await tmux.waitForScreen("alice", /ok, later then ✓/);
    expect(after.match(/is away \(automatic reply\)/g)).toHaveLength(1);
  });
});
