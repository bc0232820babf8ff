// Protocol v2 (MLS, PROTOCOL.md §7-§8) end to end with the real binaries in real terminals:
// a relay and three chat-tui (v2 is all chat-tui speaks), each with its own HOME. The lobby; a DM and its reply; a room #ops that alice creates, bob
// joins and carol is invited to, with a membership line on each screen; alice kicks carol, whose
// screen says so and who never sees what follows; the relay restarted in the middle (what is sent
// while it is down and afterwards arrives); bob offline while alice writes to the DM and the room, then back: each
// message once, in order; bob leaves the room and reads nothing after. Every wait is a screen
// condition with a deadline; "does not arrive" is checked behind a later message to the same
// screen (the relay delivers each recipient's queue in order). SC_KEEP=1 keeps the directory
// (logs at debug level, the stores) for a look after a failure.
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRelayProcess, TUI_BIN, type RelayProcess } from "../helpers/relay-process.js";
import { Tmux, tmuxAvailable } from "../helpers/tmux.js";

let dir: string;
let relay: RelayProcess | undefined;
const tmux = new Tmux();
const USERS = ["alice", "bob", "carol"] as const;
type User = (typeof USERS)[number];
/** bob's second run (after /quit) is a new tmux session: his first pane stays, exited. */
type Pane = User | "bob2";

function home(user: User): string {
  return join(dir, "home", user);
}

/** chat-tui as `user`, its keys, state and log under its own HOME. */
function startTui(user: User, port: number, pane: Pane = user): void {
  tmux.start(pane, `${process.execPath} ${TUI_BIN} ${user} --server 127.0.0.1:${port} --log-file ${join(dir, `${user}.log`)} --no-bell${process.env["SC_KEEP"] === undefined ? "" : " --log-level debug"}`, {
    width: 110, height: 36,
    env: { HOME: home(user), XDG_CONFIG_HOME: join(home(user), ".config"), XDG_STATE_HOME: join(home(user), ".local", "state") },
  });
}

function count(screen: string, text: string): number {
  return screen.split(text).length - 1;
}

/** Types a line, presses Enter, and waits until the client took it. */
async function say(pane: Pane, line: string): Promise<void> {
  await tmux.sayAndWait(pane, line);
}

async function sees(pane: Pane, ...texts: string[]): Promise<string> {
  return tmux.waitForScreen(pane, (s) => texts.every((t) => s.includes(t)), 30_000);
}

beforeAll(() => {
  if (!tmuxAvailable()) throw new Error("tmux is required for the end-to-end tests (.ci/run installs it)");
  dir = mkdtempSync(join(tmpdir(), "sc-v2-e2e-"));
  for (const u of USERS) mkdirSync(home(u), { recursive: true, mode: 0o700 });
});

afterAll(async () => {
  await tmux.quitAll([...USERS, "bob2"]);
  await relay?.stop();
  if (process.env["SC_KEEP"] === undefined) rmSync(dir, { recursive: true, force: true });
});

describe("three people on protocol v2 in real terminals", () => {
  it("lobby, a DM, a room with invite, kick and leave, a relay restart and an offline member catching up", async () => {
    const dataDir = join(dir, "relay");
    relay = await startRelayProcess(dataDir);
    const port = relay.port;
    for (const u of USERS) startTui(u, port);
    // First run: keys are made, the MLS client and its KeyPackages published, the lobby joined.
    for (const u of USERS) await tmux.waitForScreen(u, /● connected/, 60_000);
    await tmux.waitForScreen("alice", (s) => s.includes("● bob") && s.includes("● carol"), 30_000);
    for (const u of USERS) expect(existsSync(join(home(u), ".config", "secure-chat", `${u}_mls.db`)), `${u}_mls.db beside the key file`).toBe(true);
    // A lobby line reaches who is in the lobby's group when it is sent: the header counts them.
    for (const u of USERS) await tmux.waitForScreen(u, /3 online · 3 can read new lines/, 60_000);

    // The lobby: everyone online reads it.
    await say("alice", "good morning lobby 41c7");
    await sees("bob", "alice  good morning lobby 41c7");
    await sees("carol", "alice  good morning lobby 41c7");

    // A DM: the first message makes the group (bob's screen says alice started the conversation), and the reply.
    await say("alice", "/msg bob the dm key is under the mat 5e2a");
    await tmux.waitForScreen("alice", (s) => s.includes("[@bob] >") && /the dm key is under the mat 5e2a ✓/.test(s), 30_000);
    await tmux.waitForScreen("bob", /2:@alice \(\d+!\)/, 30_000);
    await say("bob", "/query alice");
    await sees("bob", "alice started this conversation", "alice  the dm key is under the mat 5e2a");
    await say("bob", "thanks alice, found it 8b13");
    const aliceDm = await sees("alice", "bob    thanks alice, found it 8b13");
    expect(count(aliceDm, "the dm key is under the mat 5e2a"), "alice's DM line shown once").toBe(1);

    // A room: alice creates #ops, bob joins, alice invites carol; each change is a line naming who.
    await say("alice", "/join #ops");
    await sees("alice", "you created #ops");
    await say("bob", "/join #ops");
    await sees("bob", "you joined #ops");
    await sees("alice", "bob joined #ops");
    await say("alice", "/invite carol");
    await sees("alice", "you added carol");
    await sees("bob", "alice added carol");
    await tmux.waitForScreen("carol", /#ops/, 30_000);
    await say("carol", "/switch #ops");
    await sees("carol", "alice added you");
    await say("alice", "deploy at noon, ops 3f90");
    await sees("bob", "alice  deploy at noon, ops 3f90");
    await sees("carol", "alice  deploy at noon, ops 3f90");
    await say("carol", "carol here, on it 77aa");
    await sees("alice", "carol  carol here, on it 77aa");

    // alice kicks carol: carol's screen says so, and she reads nothing of #ops afterwards.
    await say("alice", "/kick carol");
    await sees("alice", "you removed carol from #ops");
    await sees("bob", "alice removed carol from #ops");
    await sees("carol", "alice removed you from #ops");
    await say("alice", "not for carol: the new door code 9d04");
    await sees("bob", "alice  not for carol: the new door code 9d04");
    // Behind it in carol's queue: a lobby line. Once she has it, the room message would have come first.
    await say("alice", "/switch lobby");
    await say("alice", "lobby barrier one c2e8");
    await say("carol", "/switch lobby");
    await sees("carol", "alice  lobby barrier one c2e8");
    await say("carol", "/switch #ops");
    const carolOps = await sees("carol", "alice removed you from #ops");
    expect(carolOps).not.toContain("new door code");

    // The relay restarts (SIGTERM, same data dir and port): every client reconnects; what is sent afterwards arrives.
    expect(await relay.stop()).toBe(0);
    await tmux.waitForScreen("alice", /reconnecting/, 30_000);
    await say("alice", "/switch #ops");
    await say("alice", "sent while the relay was down 4e7d");
    relay = await startRelayProcess(dataDir, [], port);
    for (const u of USERS) await tmux.waitForScreen(u, /● connected/, 60_000);
    await sees("bob", "alice  sent while the relay was down 4e7d");
    await tmux.waitForScreen("alice", /sent while the relay was down 4e7d ✓/, 30_000);
    await say("alice", "after the restart, ops 6a1b");
    await sees("bob", "alice  after the restart, ops 6a1b");
    await say("alice", "/msg bob after the restart, dm 0c55");
    await say("bob", "/switch @alice");
    await sees("bob", "alice  after the restart, dm 0c55");

    // bob goes offline; alice writes to the DM and to #ops; bob comes back and catches up, in order, once each.
    tmux.say("bob", "/quit");
    expect(await tmux.waitForExit("bob", 15_000)).toBe(0);
    await tmux.waitForScreen("alice", /○ bob|bob went offline/, 30_000);
    await say("alice", "while you were away 1 a001");
    await say("alice", "while you were away 2 a002");
    await tmux.waitForScreen("alice", (s) => /while you were away 2 a002 ✓/.test(s), 30_000);
    await say("alice", "/switch #ops");
    await say("alice", "ops while bob was away b003");
    await tmux.waitForScreen("alice", (s) => /ops while bob was away b003 ✓/.test(s), 30_000);
    startTui("bob", port, "bob2");
    const back = await tmux.waitForScreen("bob2", (s) => /● connected/.test(s) && /\d+ messages? arrived while you were away/.test(s), 60_000);
    expect(Number(/(\d+) messages? arrived while you were away/.exec(back)?.[1])).toBeGreaterThanOrEqual(3);
    await say("bob2", "/query alice");
    const bobDm = await sees("bob2", "while you were away 2 a002");
    for (const t of ["the dm key is under the mat 5e2a", "after the restart, dm 0c55", "while you were away 1 a001", "while you were away 2 a002"]) {
      expect(count(bobDm, t), `"${t}" on bob's DM screen`).toBe(1);
    }
    expect(bobDm.indexOf("while you were away 1 a001")).toBeLessThan(bobDm.indexOf("while you were away 2 a002"));
    // The membership lines are kept in the history like messages: back after the restart, in place.
    expect(count(bobDm, "alice started this conversation"), "the DM's membership line after bob's restart").toBe(1);
    expect(bobDm.indexOf("alice started this conversation")).toBeLessThan(bobDm.indexOf("the dm key is under the mat 5e2a"));
    await say("bob2", "/switch #ops");
    const bobOps = await sees("bob2", "ops while bob was away b003");
    expect(count(bobOps, "ops while bob was away b003")).toBe(1);
    expect(count(bobOps, "after the restart, ops 6a1b")).toBe(1);
    expect(bobOps.indexOf("after the restart, ops 6a1b")).toBeLessThan(bobOps.indexOf("ops while bob was away b003"));
    for (const t of ["you joined #ops", "alice added carol", "alice removed carol from #ops"]) expect(count(bobOps, t), `"${t}" kept`).toBe(1);
    expect(bobOps.indexOf("alice removed carol from #ops")).toBeLessThan(bobOps.indexOf("not for carol: the new door code 9d04"));

    // bob leaves #ops: alice sees it; bob reads nothing of #ops afterwards (a message for it would
    // open it again in his bar), checked behind a DM queued for him after it.
    await say("bob2", "/leave");
    await sees("alice", "bob left #ops");
    await say("alice", "only me here now e5f1");
    await tmux.waitForScreen("alice", /only me here now e5f1 ✓/, 30_000);
    await say("alice", "/msg bob dm barrier two d9c0");
    await say("bob2", "/query alice");
    const bobLast = await sees("bob2", "alice  dm barrier two d9c0");
    expect(bobLast).not.toContain("only me here now");
    expect(bobLast.split("\n")[0]).not.toContain("#ops");
    // The lobby reaches bob again after his return.
    await say("alice", "/switch lobby");
    await say("alice", "welcome back bob f00d");
    await say("bob2", "/switch lobby");
    await sees("bob2", "alice  welcome back bob f00d");
  }, 240_000);
});
