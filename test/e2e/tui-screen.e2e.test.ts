// The terminal UI end to end: the real relay binary and two real chat-tui in tmux (bracketed
// paste, resizes and key sequences as a terminal sends them). A multi-line paste arrives as one
// message; reading history while messages arrive keeps the view still under a "more below"
// marker; the conversation keys show each conversation's own history; a narrow terminal hides
// the sidebar. The committed test keys are used, so no RSA key is generated.
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { installFixtureKey } from "../helpers/identities.js";
import { startRelayProcess, TUI_BIN, type RelayProcess } from "../helpers/relay-process.js";
import { Tmux, tmuxAvailable } from "../helpers/tmux.js";

let dir: string;
let relay: RelayProcess;
const tmux = new Tmux();
const WIDTH = 120;
const HEIGHT = 30;

function tui(name: string): string {
  return `${process.execPath} ${TUI_BIN} ${name} --server 127.0.0.1:${relay.port} --key-dir ${join(dir, "keys")} --log-file ${join(dir, `${name}.log`)} --no-bell`;
}

/** The screen's rows, right-trimmed (capture-pane ends every row with a newline). */
const rows = (screen: string): string[] => screen.replace(/\n$/, "").split("\n").map((l) => l.trimEnd());

beforeAll(async () => {
  if (!tmuxAvailable()) throw new Error("tmux is required for the end-to-end tests (.ci/run installs it)");
  dir = mkdtempSync(join(tmpdir(), "sc-tui-e2e-"));
  for (const name of ["alice", "bob"]) installFixtureKey(join(dir, "keys"), name);
  relay = await startRelayProcess(join(dir, "relay"));
  const env = { XDG_STATE_HOME: join(dir, "state") };
  tmux.start("alice", tui("alice"), { width: WIDTH, height: HEIGHT, env });
  tmux.start("bob", tui("bob"), { width: WIDTH, height: HEIGHT, env });
  await tmux.waitForScreen("alice", /● connected/);
  await tmux.waitForScreen("bob", /● connected/);
  // Each has the other in the sidebar: both are registered and online.
  await tmux.waitForScreen("alice", /│ ● bob/);
  await tmux.waitForScreen("bob", /│ ● alice/);
  // Both are in the lobby's group (who reads a lobby line, PROTOCOL.md §7).
  await tmux.waitForScreen("alice", /2 online · 2 can read new lines/);
  await tmux.waitForScreen("bob", /2 online · 2 can read new lines/);
});

// A failure under load is rare: the clients' and the relay's logs say what became of the lines.
afterEach(({ task }) => {
  if (task.result?.state !== "fail") return;
  for (const name of ["alice", "bob"]) {
    const file = join(dir, `${name}.log`);
    const lines = existsSync(file) ? readFileSync(file, "utf8").trimEnd().split("\n").slice(-60) : ["(no log)"];
    process.stderr.write(`--- ${name}'s log, last lines ---\n${lines.join("\n")}\n`);
  }
  const relayLines = relay.logs.filter((l) => l["level"] !== "debug").slice(-40).map((l) => JSON.stringify(l));
  process.stderr.write(`--- the relay's log, last lines ---\n${relayLines.join("\n")}\n`);
});

afterAll(async () => {
  await tmux.quitAll(["alice", "bob"]);
  await relay?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("the terminal UI through the real binaries", () => {
  it("a multi-line paste arrives as one message on the other screen", async () => {
    tmux.paste("alice", "first pasted line\nsecond pasted line\nthird pasted line");
    // The paste waits in alice's input box, three rows high, until Enter.
    await tmux.waitForScreen("alice", (s) => /\[lobby\] > first pasted line\n {10}second pasted line\n {10}third pasted line/.test(s));
    tmux.keys("alice", "Enter");
    const screen = await tmux.waitForScreen("bob", (s) => s.includes("third pasted line"));
    const lines = rows(screen).map((l) => l.replace(/ *│.*$/, ""));
    const first = lines.findIndex((l) => /^\d\d:\d\d alice +first pasted line$/.test(l));
    expect(first, screen).toBeGreaterThan(0);
    // The next two rows continue the same message: no time, no nick, aligned under its text.
    expect(lines[first + 1]).toMatch(/^ {13}second pasted line$/);
    expect(lines[first + 2]).toMatch(/^ {13}third pasted line$/);
    expect(screen.match(/\d\d:\d\d alice /g)).toHaveLength(1);
    // And alice sees it accepted by the relay, as one message.
    await tmux.waitForScreen("alice", /third pasted line ✓/);
  });

  it("scrolling back while messages arrive keeps the view still and shows the more-below marker", async () => {
    for (let i = 0; i < 40; i++) {
      tmux.say("bob", `scroll ${String(i).padStart(2, "0")}`);
      // At a person's pace: lines typed faster than the client reads are one paste.
      await tmux.waitForScreen("bob", (s) => s.includes(`scroll ${String(i).padStart(2, "0")}`) && /\] >\s*$/.test(s));
    }
    await tmux.waitForScreen("alice", (s) => s.includes("scroll 39"));
    tmux.keys("alice", "PPage");
    const before = await tmux.waitForScreen("alice", /-- more below \(\d+\) --/);
    expect(before).not.toContain("scroll 39");
    const still = (s: string) => rows(s).filter((l) => !l.includes("more below"));
    for (let i = 0; i < 3; i++) {
      tmux.say("bob", `arrived while reading ${i}`);
      await tmux.waitForScreen("bob", (s) => s.includes(`arrived while reading ${i}`) && /\] >\s*$/.test(s));
    }
    await tmux.waitForScreen("bob", (s) => s.includes("arrived while reading 2 ✓"));
    const after = await tmux.waitForScreen("alice", /-- more below \(\d+\) -- 3 new/);
    // Everything but the marker row is exactly as it was.
    expect(still(after)).toEqual(still(before));
    expect(after).not.toContain("arrived while reading");
    tmux.keys("alice", "C-End");
    const bottom = await tmux.waitForScreen("alice", (s) => s.includes("arrived while reading 2") && !s.includes("more below"));
    expect(bottom).toContain("scroll 39");
  });

  it("switching conversations with the keys shows each one's own history", async () => {
    tmux.say("alice", "/join #e2e");
    await tmux.waitForScreen("alice", /\[#e2e\] >/);
    tmux.keys("alice", "M-1");
    await tmux.waitForScreen("alice", /\[lobby\] >/);
    tmux.say("bob", "/join #e2e");
    await tmux.waitForScreen("bob", /\[#e2e\] >/);
    // Taken before the next line is typed: two lines in one read are one paste (tmux.ts sayAndWait).
    await tmux.sayAndWait("bob", "room hello e2e");
    tmux.say("bob", "/msg alice dm hello e2e");
    // Unread counts in alice's bar: the room's message, the DM addressed to her.
    await tmux.waitForScreen("alice", /1:lobby {2}2:#e2e \(1\) {2}3:@bob \(1!\)/);
    tmux.keys("alice", "M-2");
    const room = await tmux.waitForScreen("alice", (s) => /\[#e2e\] >/.test(s) && s.includes("room hello e2e"));
    expect(room).not.toContain("dm hello e2e");
    expect(room).not.toContain("scroll 39");
    tmux.keys("alice", "M-3");
    const dm = await tmux.waitForScreen("alice", (s) => /\[@bob\] >/.test(s) && s.includes("dm hello e2e"));
    expect(dm).not.toContain("room hello e2e");
    tmux.keys("alice", "C-n");
    const lobby = await tmux.waitForScreen("alice", /\[lobby\] >/);
    expect(lobby).toContain("arrived while reading 2");
    expect(lobby).not.toContain("dm hello e2e");
    tmux.keys("alice", "C-p");
    await tmux.waitForScreen("alice", (s) => /\[@bob\] >/.test(s) && s.includes("dm hello e2e"));
  });

  it("a narrow terminal hides the sidebar; widening brings it back; 40x10 still works", async () => {
    // In the DM with bob, the sidebar shows the two of them.
    await tmux.waitForScreen("alice", /│ @bob and you/);
    tmux.resize("alice", 50, 20);
    // Redrawn for the new size: no sidebar, nothing left over from the wide screen.
    const narrow = await tmux.waitForScreen("alice", (s) => !s.includes("│") && /^@bob · /m.test(s) && /\[@bob\] >/.test(s));
    expect(rows(narrow)).toHaveLength(20);
    expect(narrow).not.toContain("@bob and you");
    tmux.resize("alice", 40, 10);
    const tiny = await tmux.waitForScreen("alice", (s) => /● connected/.test(s) && /\[@bob\] >/.test(s));
    for (const line of rows(tiny)) expect([...line].length).toBeLessThanOrEqual(40);
    tmux.say("alice", "still usable at 40x10");
    await tmux.waitForScreen("bob", (s) => s.includes("still usable at 40x10"));
    tmux.resize("alice", WIDTH, HEIGHT);
    await tmux.waitForScreen("alice", /│ @bob and you/);
  });
});
