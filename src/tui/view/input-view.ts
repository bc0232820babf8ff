// The input line: prompt, then the text with a visible cursor, scrolled sideways so the cursor
// always shows. Newlines (from a paste) show as ↵ and tabs as →, one cell each.
import type { InputBuffer } from "../state/input-buffer.js";
import { clusters, stringWidth, truncateToWidth } from "./cell-width.js";

export interface InputView {
  readonly prompt: string;
  readonly before: string;
  /** The character under the cursor (a space at the end of the line). */
  readonly atCursor: string;
  readonly after: string;
}

function displayChar(ch: string): string {
  return ch === "\n" ? "↵" : ch === "\t" ? "→" : ch;
}

export function inputView(prompt: string, input: InputBuffer, width: number): InputView {
  const shownPrompt = truncateToWidth(prompt, Math.max(0, Math.floor(width / 2)));
  const room = Math.max(1, width - stringWidth(shownPrompt));
  // Work in drawn units, so the cursor never splits a character from its combining marks.
  const units = clusters(input.text);
  const chars = units.map((u) => displayChar(u.text));
  const cursorIndex = clusters(input.text.slice(0, input.cursor)).length;
  const cells = units.map((u) => Math.max(1, u.width));
  const cursorCells = cursorIndex < chars.length ? (cells[cursorIndex] ?? 1) : 1;

  // Walk left from the cursor while it fits (keeping the cursor cell), then right.
  let start = cursorIndex;
  let used = cursorCells;
  while (start > 0 && used + (cells[start - 1] ?? 1) <= room) {
    start--;
    used += cells[start] ?? 1;
  }
  let end = Math.min(chars.length, cursorIndex + 1);
  while (end < chars.length && used + (cells[end] ?? 1) <= room) {
    used += cells[end] ?? 1;
    end++;
  }
  return {
    prompt: shownPrompt,
    before: chars.slice(start, cursorIndex).join(""),
    atCursor: chars[cursorIndex] ?? " ",
    after: chars.slice(cursorIndex + 1, end).join(""),
  };
}
