// The screen stays right in a real terminal although chat-tui sends only what changed (scroll
// regions for arriving messages, single cells for typing): after typing, messages arriving,
// paging up and down and a resize, tmux's screen, colours included, is exactly the screen the
// client paints from scratch (it repaints everything after a resize).
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { installFixtureKey } from "../helpers/identities.js";
import { startRelayProcess, TUI_BIN, type RelayProcess } from "../helpers/relay-process.js";
import { Tmux, tmuxAvailable } from "../helpers/tmux.js";
import { ScreenModel } from "../../src/tui/terminal/screen-model.js";
import { stringWidth } from "../../src/tui/view/cell-width.js";

let dir: string;
let relay: RelayProcess;
const tmux = new Tmux();
const WIDTH = 120;
const HEIGHT = 35;
/** Slow on a loaded machine: many screens are waited for, each until it stops changing. */
const LONG = 120_000;

function tui(name: string): string {
  return `${process.execPath} ${TUI_BIN} ${name} --server 127.0.0.1:${relay.port} --key-dir ${join(dir, "keys")} --log-file ${join(dir, `${name}.log`)} --no-bell`;
}

/**
 * Sends a line and waits until the sender's input is empty again, so that lines typed in quick
 * succession are not taken for one pasted text.
 */
async function say(name: string, line: string): Promise<void> {
  tmux.say(name, line);
  await tmux.waitForScreen(name, (s) => {
    const lines = s.replace(/\n+$/, "").split("\n");
    return /\] > *$/.test(lines.at(-1) ?? "") && lines.slice(0, -1).some((l) => l.includes(line));
  }, 30_000);
}

/**
 * The screen with its colours and attributes as tmux holds it, and the cursor's place. tmux tells
 * a cleared cell from a written space (capture-pane -e shows them differently), which no one can
 * see: blank cells without a background count as blank, whatever else they carry.
 */
function styledScreen(name: string): string {
  const run = (args: string[]) => spawnSync("tmux", ["-L", tmux.socket, ...args], { encoding: "utf8" }).stdout;
  const capture = run(["capture-pane", "-p", "-e", "-t", name]).replace(/\n$/, "");
  const size = run(["display-message", "-p", "-t", name, "#{pane_width} #{pane_height}"]).trim().split(" ").map(Number);
  const screen = new ScreenModel(size[0] ?? WIDTH, size[1] ?? HEIGHT);
  screen.write(`\u001b[?1049h${capture}`);
  const cells = screen.cells().map((row) => row.split("\u0003").map((cell) => {
    const [ch, style] = cell.split("\u0002");
    return ch === " " && !/(^|;)(4\d|10\d|7)(;|$)/.test(style ?? "") ? " " : cell;
  }).join("\u0003"));
  return `${cells.join("\n")}\ncursor ${run(["display-message", "-p", "-t", name, "#{cursor_x},#{cursor_y}"])}`;
}

/** N of the "-- more below (N) --" marker; 0 without one. */
function linesBelow(screen: string): number {
  return Number(/-- more below \((\d+)\)/.exec(screen)?.[1] ?? 0);
}

/** Waits until the screen stops changing, and returns it. */
async function steadyScreen(name: string): Promise<string> {
  let last = styledScreen(name);
  let same = 0;
  const deadline = Date.now() + 30_000;
  while (same < 3) {
    if (Date.now() > deadline) throw new Error(`the screen of ${name} kept changing`);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const now = styledScreen(name);
    same = now === last ? same + 1 : 0;
    last = now;
  }
  return last;
}

/**
 * Whether the client has drawn its screen `width` cells wide: its status line (the conversation
 * bar ends it at the right edge) reaches the last column. Right after a resize tmux shows the
 * old frame, cut or padded, whose status line ends elsewhere.
 */
function drawnAt(width: number): (screen: string) => boolean {
  return (screen) => stringWidth((screen.split("\n")[0] ?? "").trimEnd()) === width;
}

/** Forces a repaint of every cell (a resize and back), and returns the screen painted afresh. */
async function repainted(name: string): Promise<string> {
  tmux.resize(name, WIDTH - 7, HEIGHT - 3);
  await tmux.waitForScreen(name, drawnAt(WIDTH - 7), 30_000);
  await steadyScreen(name);
  tmux.resize(name, WIDTH, HEIGHT);
  await tmux.waitForScreen(name, (s) => drawnAt(WIDTH)(s) && /│ users · 2 online/.test(s), 30_000);
  return steadyScreen(name);
}

beforeAll(async () => {
  if (!tmuxAvailable()) throw new Error("tmux is required for the end-to-end tests (.ci/run installs it)");
  dir = mkdtempSync(join(tmpdir(), "sc-tui-wire-"));
  for (const name of ["alice", "bob"]) installFixtureKey(join(dir, "keys"), name);
  relay = await startRelayProcess(join(dir, "relay"));
  const env = { XDG_STATE_HOME: join(dir, "state") };
  tmux.start("alice", tui("alice"), { width: WIDTH, height: HEIGHT, env });
  tmux.start("bob", tui("bob"), { width: WIDTH, height: HEIGHT, env });
  // A lobby line reaches who is in the lobby's MLS group when it is sent (PROTOCOL.md §7): being
  // online is not enough. Lines bob sent before alice was in the group never reach her, and with
  // too few lines on her screen the paging case has nothing to page through.
  for (const name of ["alice", "bob"]) await tmux.waitForScreen(name, /2 online · 2 can read new lines/, 60_000);
}, LONG);

afterAll(async () => {
  await tmux.quitAll(["alice", "bob"]);
  await relay?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("chat-tui sends only changes, and the terminal still shows the right screen", () => {
  it("after arriving messages, typing and wide characters", async () => {
    for (let i = 0; i < 45; i++) await say("bob", `line ${String(i).padStart(2, "0")} ${i % 7 === 0 ? "漢字 café 👍 " : ""}the canary looks fine`);
    await tmux.waitForScreen("alice", (s) => s.includes("line 44"), 60_000);
    tmux.type("alice", "half a thought, ");
    tmux.keys("alice", "BSpace", "BSpace", "Left", "Left");
    tmux.type("alice", "漢");
    await tmux.waitForScreen("alice", /half a thoug漢ht/);
    const typed = await steadyScreen("alice");
    expect(await repainted("alice")).toBe(typed);
  }, LONG);

  it("after paging up and down while messages arrive", async () => {
    tmux.keys("alice", "PPage");
    await tmux.waitForScreen("alice", /-- more below/);
    tmux.keys("alice", "PPage");
    for (let i = 0; i < 3; i++) await say("bob", `while reading ${i}`);
    const before = await tmux.waitForScreen("alice", /-- more below \(\d+\) -- 3 new/, 60_000);
    tmux.keys("alice", "NPage");
    // The page down drawn (fewer lines below, or none) before the screen counts as steady: a
    // client slow to read the key would otherwise show the screen before it as "paged".
    await tmux.waitForScreen("alice", (s) => linesBelow(s) < linesBelow(before), 30_000);
    const paged = await steadyScreen("alice");
    expect(await repainted("alice")).toBe(paged);
  }, LONG);

  it("back at the bottom, with messages pushing the pane up", async () => {
    tmux.keys("alice", "C-End");
    for (let i = 0; i < 5; i++) await say("bob", `at the bottom ${i}`);
    await tmux.waitForScreen("alice", (s) => s.includes("at the bottom 4") && !s.includes("more below"), 60_000);
    const bottom = await steadyScreen("alice");
    expect(await repainted("alice")).toBe(bottom);
  }, LONG);
});
