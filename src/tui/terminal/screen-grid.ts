// The grid the screen model keeps twice (what the renderer drew, what the terminal shows): rows
// of cells, each with its grapheme, its SGR style and its width. Shared by the model that draws
// into it (screen-state.ts) and the planner that compares two of them (screen-diff.ts). Pure.

/** One row of the grid: parallel arrays, one entry per cell. */
export interface Line {
  /** The grapheme drawn in the cell; "" for the right half of a wide character. */
  readonly chars: string[];
  /** The SGR parameters in effect ("" for the default style). */
  readonly styles: string[];
  /** 1 or 2 for a cell that starts a character; 0 for the right half of a wide one. */
  readonly widths: number[];
}

export function blankLine(columns: number): Line {
  return { chars: new Array<string>(columns).fill(" "), styles: new Array<string>(columns).fill(""), widths: new Array<number>(columns).fill(1) };
}

/** Blanks one cell (the default style, width 1). */
export function blankCell(line: Line, x: number): void {
  line.chars[x] = " ";
  line.styles[x] = "";
  line.widths[x] = 1;
}

/** Scrolls lines[top..bottom] by `by` rows (positive: up), filling with blank rows. */
export function scrollLines(lines: Line[], top: number, bottom: number, by: number, columns: number): void {
  const band = lines.slice(top, bottom + 1);
  const count = Math.min(Math.abs(by), band.length);
  const blanks = Array.from({ length: count }, () => blankLine(columns));
  const moved = by > 0 ? [...band.slice(count), ...blanks] : [...blanks, ...band.slice(0, band.length - count)];
  lines.splice(top, band.length, ...moved);
}
