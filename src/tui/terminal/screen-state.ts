// What the renderer has drawn, as the screen model keeps it: the cell grid, the cursor (and the
// position saved by DECSC), the scroll region, the pen (the SGR rendition in effect), whether the
// cursor shows, and which rows changed since the last diff. The operations the parser
// (screen-model.ts) plays onto it live here: printing with autowrap, line feeds and scrolling
// inside the scroll region, erasing. Moving the cursor is left to the parser, which sets `row`
// and `col` directly. Pure.
import { applySgr, plain, renditionKey } from "./sgr.js";
import type { ScreenDiff } from "./screen-diff.js";
import { eraseCells, isPrintableAscii, printedClusters, putCell } from "./screen-cells.js";
import { blankCell, blankLine, scrollLines, type Line } from "./screen-grid.js";

export class ScreenState {
  #columns: number;
  #rows: number;
  /** What the renderer has drawn. */
  #model: Line[];
  row = 0;
  col = 0;
  #saved: { row: number; col: number } = { row: 0, col: 0 };
  /** The scroll region (DECSTBM), inclusive rows. */
  #marginTop = 0;
  #marginBottom: number;
  #rendition = plain();
  #style = "";
  cursorVisible = true;
  /** The model has changed since the last diff. */
  dirty = false;
  /** Rows of the model written since the last diff (the others still match the terminal). */
  #touched: Uint8Array;
  #allTouched = true;

  constructor(columns: number, rows: number) {
    this.#columns = Math.max(1, columns);
    this.#rows = Math.max(1, rows);
    this.#model = Array.from({ length: this.#rows }, () => blankLine(this.#columns));
    this.#marginBottom = this.#rows - 1;
    this.#touched = new Uint8Array(this.#rows);
  }

  get columns(): number {
    return this.#columns;
  }

  get rows(): number {
    return this.#rows;
  }

  /** The model's text, one string per row, without styles (tests and debugging). */
  text(): string[] {
    return this.#model.map((l) => l.chars.join(""));
  }

  /** Each row's cells as "text|style" pairs, for comparing two screens exactly (tests). */
  cells(): string[] {
    return this.#model.map((l) => l.chars.map((c, x) => `${c}\u0002${l.styles[x]}\u0002${l.widths[x]}`).join("\u0003"));
  }

  /** Where the cursor is and whether it shows. */
  cursor(): { row: number; col: number; visible: boolean } {
    return { row: this.row, col: this.col, visible: this.cursorVisible };
  }

  /**
   * The terminal changed size: the model keeps what fits (as the renderer expects, it redraws
   * next). The scroll region is reset. The caller forgets what the terminal shows (touchAll).
   */
  resize(columns: number, rows: number): void {
    const c = Math.max(1, columns);
    const r = Math.max(1, rows);
    this.#model = Array.from({ length: r }, (_, i) => {
      const old = this.#model[i];
      const line = blankLine(c);
      if (old === undefined) return line;
      for (let x = 0; x < Math.min(c, this.#columns); x++) {
        line.chars[x] = old.chars[x] as string;
        line.styles[x] = old.styles[x] as string;
        line.widths[x] = old.widths[x] as number;
      }
      // A wide character cut in half at the new edge.
      if (c < this.#columns && line.widths[c - 1] === 2) blankCell(line, c - 1);
      return line;
    });
    this.#columns = c;
    this.#rows = r;
    this.row = Math.min(this.row, r - 1);
    this.col = Math.min(this.col, c);
    this.#marginTop = 0;
    this.#marginBottom = r - 1;
    this.#touched = new Uint8Array(r);
  }

  /** The whole model changed: the next diff compares every row. */
  touchAll(): void {
    this.dirty = true;
    this.#allTouched = true;
  }

  /** Empties the grid (every row to compare next diff) without marking the model changed. */
  blankAll(): void {
    this.#model = Array.from({ length: this.#rows }, () => blankLine(this.#columns));
    this.#allTouched = true;
  }

  /** RIS: an empty grid, the cursor at the top left, the default style. */
  reset(): void {
    this.#model = Array.from({ length: this.#rows }, () => blankLine(this.#columns));
    this.row = 0;
    this.col = 0;
    this.#rendition = plain();
    this.#style = "";
  }

  /** SGR: the style of the characters printed from now on. */
  sgr(params: readonly string[]): void {
    applySgr(this.#rendition, params);
    this.#style = renditionKey(this.#rendition);
  }

  /** DECSC. */
  saveCursor(): void {
    this.#saved = { row: this.row, col: this.col };
  }

  /** DECRC. */
  restoreCursor(): void {
    this.row = this.#saved.row;
    this.col = this.#saved.col;
  }

  /** DECSTBM with 0-based inclusive rows; an empty region resets it to the whole screen. The cursor goes to the top left. */
  setScrollRegion(top: number, bottom: number): void {
    if (top < bottom) {
      this.#marginTop = top;
      this.#marginBottom = bottom;
    } else {
      this.#marginTop = 0;
      this.#marginBottom = this.#rows - 1;
    }
    this.row = 0;
    this.col = 0;
  }

  // --- drawing into the model ------------------------------------------------------------------

  lineFeed(): void {
    if (this.row === this.#marginBottom) this.#scroll(this.#marginTop, this.#marginBottom, 1);
    else this.row = Math.min(this.#rows - 1, this.row + 1);
  }

  /** RI: up one row, scrolling down at the top margin. */
  reverseIndex(): void {
    if (this.row === this.#marginTop) this.#scroll(this.#marginTop, this.#marginBottom, -1);
    else this.row = Math.max(0, this.row - 1);
  }

  /** SU / SD: scrolls the scroll region by `by` rows (positive: up). */
  scrollRegion(by: number): void {
    this.#scroll(this.#marginTop, this.#marginBottom, by);
  }

  /** Scrolls rows top..bottom of the model by `by` rows (positive: up). */
  #scroll(top: number, bottom: number, by: number): void {
    scrollLines(this.#model, top, bottom, by, this.#columns);
    this.#touched.fill(1, top, bottom + 1);
    this.dirty = true;
  }


  /** Puts one character of width 1 or 2 at the cursor. */
  #put(ch: string, width: number): void {
    if (this.col + width > this.#columns) {
      // Autowrap: past the last column, the character goes to the start of the next row.
      this.col = 0;
      this.lineFeed();
    }
    this.#touched[this.row] = 1;
    putCell(this.#model[this.row] as Line, this.col, ch, width, this.#style, this.#columns);
    this.col += width;
  }

  print(text: string): void {
    this.dirty = true;
    if (isPrintableAscii(text)) {
      for (let i = 0; i < text.length; i++) this.#put(text[i] as string, 1);
      return;
    }
    for (const c of printedClusters(text)) this.#put(c.text, c.width);
  }

  #eraseCells(line: Line, from: number, to: number): void {
    eraseCells(line, from, to, this.#columns);
    this.dirty = true;
  }

  /** EL. */
  eraseLine(mode: number): void {
    const line = this.#model[this.row] as Line;
    this.#touched[this.row] = 1;
    const x = Math.min(this.col, this.#columns - 1);
    if (mode === 0) this.#eraseCells(line, x, this.#columns - 1);
    else if (mode === 1) this.#eraseCells(line, 0, x);
    else this.#eraseCells(line, 0, this.#columns - 1);
  }

  /** ED. Returns true for a whole-screen clear, which the caller answers by repainting everything. */
  eraseDisplay(mode: number): boolean {
    let whole = false;
    if (mode === 0) {
      this.eraseLine(0);
      for (let r = this.row + 1; r < this.#rows; r++) this.#model[r] = blankLine(this.#columns);
      this.#touched.fill(1, this.row);
    } else if (mode === 1) {
      this.eraseLine(1);
      for (let r = 0; r < this.row; r++) this.#model[r] = blankLine(this.#columns);
      this.#touched.fill(1, 0, this.row + 1);
    } else {
      this.blankAll();
      whole = true;
    }
    this.dirty = true;
    return whole;
  }

  // --- the diff (screen-diff.ts) --------------------------------------------------------------

  /** What brings the terminal to the model, if the model changed ("" otherwise); the model is clean after. */
  diffOnto(terminal: ScreenDiff): string {
    if (!this.dirty) return "";
    this.dirty = false;
    if (this.#allTouched) this.#touched.fill(1);
    this.#allTouched = false;
    const out = terminal.diff(this.#model, this.#columns, this.#touched, this.cursor());
    this.#touched.fill(0);
    return out;
  }
}
