// The scroll arithmetic in state/ (state/scroll.ts) on its own: it counts rows through the
// measure it is given, so it is checked here with plain numbers and no layout.
import { describe, expect, test } from "vitest";
import { listFrom } from "../../src/tui/state/chunked-list.js";
import { moveScroll, usernameColumnWidth, type RowCount } from "../../src/tui/state/scroll.js";
import type { Entry } from "../../src/tui/state/state.js";
import { nickColumnWidth } from "../../src/tui/view/scrollback-rows.js";

const entries = (n: number) => listFrom(Array.from({ length: n }, (_, i) => ({ seq: i }) as unknown as Entry));
const two: RowCount = () => 2;

describe("state/scroll.ts", () => {
  test("a page up from the bottom moves height-2 rows, counted with the given measure", () => {
    // 10 entries of 2 rows = 20 rows, pane of 6: following shows rows 14..19 (top entry 7);
    // a page (4 rows) up puts the top at row 10, entry 5.
    expect(moveScroll({ entries: entries(10) }, two, 6, "page-up")).toEqual({ top: 5, skip: 0, seen: 10 });
  });

  test("moving down past the end follows again, and everything that fits never scrolls", () => {
    const at = { top: 5, skip: 0, seen: 10 };
    expect(moveScroll({ entries: entries(10), scroll: at }, two, 6, { rows: 100 })).toBeUndefined();
    expect(moveScroll({ entries: entries(2) }, two, 6, "top")).toBeUndefined();
  });

  test("the username column width matches the view's measure for every valid username", () => {
    for (const names of [["al"], ["alice", "bob"], ["a-very-long-username_12345"], ["x".repeat(12)], ["x".repeat(13)]]) {
      expect(usernameColumnWidth(names)).toBe(nickColumnWidth(names));
    }
  });
});
