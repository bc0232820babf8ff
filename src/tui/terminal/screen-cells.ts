// Printing into one row of the screen model's grid (screen-grid.ts): the characters a text
// prints, each with its width in cells (measured as the layout measures them: grapheme clusters,
// src/tui/view/cell-width.ts), and writing or erasing cells so that a wide character is never
// left half drawn. The cursor, autowrap and scrolling stay with the model (screen-state.ts). Pure.
import { clusters } from "../view/cell-width.js";
import { blankCell, type Line } from "./screen-grid.js";

const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;

/** True when every character of `text` is printable ASCII, one cell each (the fast path). */
export function isPrintableAscii(text: string): boolean {
  return PRINTABLE_ASCII.test(text);
}

/** The grapheme clusters `text` prints, each 1 or 2 cells wide (zero-width ones are dropped). */
export function printedClusters(text: string): Array<{ readonly text: string; readonly width: number }> {
  return clusters(text).filter((c) => c.width !== 0);
}

/** Puts one character of width 1 or 2 at column x of `line` (it fits: the caller wrapped). */
export function putCell(line: Line, x: number, ch: string, width: number, style: string, columns: number): void {
  // Overwriting half of a wide character blanks its other half.
  if (line.widths[x] === 0 && x > 0) blankCell(line, x - 1);
  const end = x + width - 1;
  if (line.widths[end] === 2 && end + 1 < columns) blankCell(line, end + 1);
  if (width === 2 && line.widths[x + 1] === 2 && x + 2 < columns) blankCell(line, x + 2);
  line.chars[x] = ch;
  line.styles[x] = style;
  line.widths[x] = width;
  if (width === 2) {
    line.chars[x + 1] = "";
    line.styles[x + 1] = style;
    line.widths[x + 1] = 0;
  }
}

/** Blanks cells from..to of `line`, and the other half of a wide character cut at either end. */
export function eraseCells(line: Line, from: number, to: number, columns: number): void {
  if (from > 0 && line.widths[from] === 0) blankCell(line, from - 1);
  if (to + 1 < columns && line.widths[to + 1] === 0) blankCell(line, to + 1);
  for (let x = from; x <= to; x++) blankCell(line, x);
}
