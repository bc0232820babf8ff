// What the whole UI writes to the terminal (runTui on a fake 120x35 terminal): a typed
// character must not repaint the scrollback, an arriving message must not repaint the pane, and
// what is written, played on a terminal, must still show the right screen. (The byte figures
// themselves are measured on the real bin in a pty by `npm run bench -- --only tui`.)
import { Console } from "node:console";
import { afterEach, beforeAll, describe, expect, test } from "vitest";
import { nullLogger } from "../../src/protocol/log.js";
import { runTui } from "../../src/tui/run-tui.js";
import { ScreenModel } from "../../src/tui/terminal/screen-model.js";
import { FakeSession } from "../helpers/fake-session.js";
import { FakeStdin, FakeStdout, KEY } from "./helpers/terminal.js";
import { waitFor } from "./helpers/wait-for.js";

beforeAll(() => {
  (console as { Console?: typeof Console }).Console ??= Console;
});

const COLUMNS = 120;
const ROWS = 35;
/** Coarse bounds: a repaint of the scrollback is over 3,000 bytes at this size. */
const MAX_BYTES_PER_KEY = 300;
const MAX_BYTES_PER_MESSAGE = 600;

let leave: (() => Promise<void>) | undefined;
afterEach(async () => {
  await leave?.();
  leave = undefined;
});

async function start() {
  const session = new FakeSession({ peers: ["bob", "carol"] });
  const stdin = new FakeStdin();
  const stdout = new FakeStdout(COLUMNS, ROWS);
  const exit = runTui({ session, stdin: stdin.stream, stdout: stdout.stream, logger: nullLogger, bell: false });
  leave = async () => {
    stdin.write(KEY.ctrlC);
    await exit;
  };
  // The terminal: everything written, played back.
  const screen = new ScreenModel(COLUMNS, ROWS);
  let played = 0;
  const play = () => {
    for (; played < stdout.writes.length; played++) screen.write(stdout.writes[played] as string);
    return screen.text();
  };
  await waitFor(() => {
    expect(stdin.listening).toBe(true);
    expect(play().join("\n")).toContain("secure-chat");
  });
  for (let i = 0; i < 60; i++) session.receive("bob", `message ${i}: the canary looks fine`, { conversationId: "lobby" });
  await waitFor(() => expect(play().join("\n")).toContain("message 59: the canary looks fine"));
  const mark = () => stdout.writes.length;
  const since = (at: number) => stdout.writes.slice(at).join("");
  return { session, stdin, stdout, play, mark, since };
}

/** Rows (1-based) that the output moves the cursor to with CUP. */
function rowsAddressed(output: string): number[] {
  return [...output.matchAll(/\u001b\[(\d+)(?:;\d+)?H/g)].map((m) => Number(m[1]));
}

describe("bytes written to the terminal", () => {
  test("a typed character writes a few bytes and no scrollback row", async () => {
    const t = await start();
    const typed = "hello there";
    for (const [i, ch] of [...typed].entries()) {
      const at = t.mark();
      t.stdin.write(ch);
      await waitFor(() => expect(t.play().at(-1)).toContain(`${typed.slice(0, i + 1)}`));
      const out = t.since(at);
      expect(Buffer.byteLength(out)).toBeLessThan(MAX_BYTES_PER_KEY);
      // The input is the last row: nothing above it is addressed.
      expect(rowsAddressed(out).filter((r) => r < ROWS)).toEqual([]);
    }
    const screen = t.play();
    expect(screen.join("\n")).toContain("message 59: the canary looks fine");
    expect(screen.at(-1)).toContain("hello there");
  });

  test("an arriving message scrolls the pane instead of repainting it, and the screen stays right", async () => {
    const t = await start();
    for (let i = 0; i < 5; i++) {
      const at = t.mark();
      t.session.receive("carol", `news ${i}: rollout done`, { conversationId: "lobby" });
      await waitFor(() => expect(t.play().join("\n")).toContain(`news ${i}: rollout done`));
      expect(Buffer.byteLength(t.since(at))).toBeLessThan(MAX_BYTES_PER_MESSAGE);
    }
    const screen = t.play().join("\n");
    // The rows above moved up on the terminal: the older lines are still there, in order.
    const older = screen.indexOf("message 59: the canary looks fine");
    expect(older).toBeGreaterThan(0);
    expect(screen.indexOf("news 4: rollout done")).toBeGreaterThan(older);
  });

  test("a resize repaints the whole screen at the new size", async () => {
    const t = await start();
    const at = t.mark();
    t.stdout.resize(90, 20);
    await waitFor(() => expect(t.since(at)).toContain("\u001b[2J"));
    // The terminal, resized, shows the redrawn UI (as a real one after its own resize).
    await waitFor(() => {
      const screen = new ScreenModel(90, 20);
      screen.write("\u001b[?1049h");
      const out = t.since(at);
      screen.write(out.slice(out.lastIndexOf("\u001b[2J") - "\u001b[H".length));
      const text = screen.text().join("\n");
      expect(text).toContain("message 59: the canary looks fine");
      expect(text).toContain("secure-chat");
    });
  });
});
