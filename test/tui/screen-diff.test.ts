// The screen model's planner on its own: grids in, bytes out. What it writes, played on a
// terminal (a ScreenModel used as the emulator), must show exactly the grid it was given, and it
// must write only what differs (screen-model.test.ts checks the same through the parser).
import { describe, expect, test } from "vitest";
import { ScreenDiff } from "../../src/tui/terminal/screen-diff.js";
import { blankLine, type Line } from "../../src/tui/terminal/screen-grid.js";
import { ScreenModel } from "../../src/tui/terminal/screen-model.js";

const ESC = "\u001b";
const COLUMNS = 40;
const ROWS = 10;

function grid(rows: readonly string[]): Line[] {
  return Array.from({ length: ROWS }, (_, y) => {
    const line = blankLine(COLUMNS);
    [...(rows[y] ?? "")].slice(0, COLUMNS).forEach((ch, x) => {
      line.chars[x] = ch;
    });
    return line;
  });
}

const text = (lines: readonly Line[]): string[] => lines.map((l) => l.chars.join(""));
const all = (): Uint8Array => new Uint8Array(ROWS).fill(1);
const only = (...rows: number[]): Uint8Array => {
  const t = new Uint8Array(ROWS);
  for (const y of rows) t[y] = 1;
  return t;
};
const cursor = { row: ROWS - 1, col: 0, visible: true };

function terminal(): ScreenModel {
  const t = new ScreenModel(COLUMNS, ROWS);
  t.write(`${ESC}[?1049h`);
  return t;
}

const chat = (from: number): string[] => Array.from({ length: ROWS }, (_, y) => `message number ${from + y}`);

describe("ScreenDiff", () => {
  test("the first diff clears and paints; the same grid again writes nothing", () => {
    const diff = new ScreenDiff();
    const screen = terminal();
    const model = grid(chat(1));
    const first = diff.diff(model, COLUMNS, all(), cursor);
    expect(first.startsWith(`${ESC}[?2026h`)).toBe(true);
    expect(first).toContain(`${ESC}[2J`);
    screen.write(first);
    expect(screen.text()).toEqual(text(model));
    expect(screen.cursor()).toEqual(cursor);
    expect(diff.diff(model, COLUMNS, all(), cursor)).toBe("");
  });

  test("one changed cell: a move and that character", () => {
    const diff = new ScreenDiff();
    const screen = terminal();
    const model = grid(chat(1));
    screen.write(diff.diff(model, COLUMNS, all(), cursor));
    model[3]!.chars[5] = "X";
    const out = diff.diff(model, COLUMNS, only(3), cursor);
    expect(out).toContain("X");
    expect(out).not.toContain("message");
    expect(out.length).toBeLessThan(40);
    screen.write(out);
    expect(screen.text()).toEqual(text(model));
  });

  test("a band that moved up is scrolled on the terminal, not repainted", () => {
    const diff = new ScreenDiff();
    const screen = terminal();
    const before = grid(chat(1));
    screen.write(diff.diff(before, COLUMNS, all(), cursor));
    const after = grid(chat(2));
    const out = diff.diff(after, COLUMNS, all(), cursor);
    // A scroll region set and reset, and only the new bottom row's text written.
    expect(out).toMatch(new RegExp(`${ESC}\\[\\d+;\\d+r`));
    expect(out).toContain(`${ESC}[r`);
    expect(out).toContain(`message number ${ROWS + 1}`);
    expect(out).not.toContain("message number 5");
    screen.write(out);
    expect(screen.text()).toEqual(text(after));
  });

  test("forget() repaints next; after entering the alternate screen the terminal is known blank", () => {
    const model = grid(chat(1));
    const diff = new ScreenDiff();
    diff.diff(model, COLUMNS, all(), cursor);
    diff.forget();
    expect(diff.diff(model, COLUMNS, all(), cursor)).toContain(`${ESC}[2J`);
    diff.switchedScreen(true, true, ROWS, COLUMNS);
    const out = diff.diff(model, COLUMNS, all(), cursor);
    expect(out).not.toContain(`${ESC}[2J`);
    // Whether the cursor shows is not known after 1049: it is said again.
    expect(out).toContain(`${ESC}[?25h`);
    const screen = terminal();
    screen.write(out);
    expect(screen.text()).toEqual(text(model));
  });

  test("the cursor's visibility is written once per change", () => {
    const diff = new ScreenDiff();
    const model = grid([]);
    diff.diff(model, COLUMNS, all(), cursor);
    const hidden = { ...cursor, visible: false };
    expect(diff.diff(model, COLUMNS, only(), hidden)).toContain(`${ESC}[?25l`);
    expect(diff.diff(model, COLUMNS, only(), hidden)).toBe("");
  });
});
