// The other half of the screen model: what the real terminal shows (a copy of its grid, where
// its cursor is, its style, whether its cursor shows), and the planner that brings it to the
// model's grid in few bytes. Only the cells that differ are written (short runs of equal cells
// are rewritten rather than jumped over); when a band of rows moved (new messages pushed the
// scrollback up), it is scrolled on the terminal in one operation (a scroll region) if that
// writes fewer bytes. Each diff is one synchronized update (mode 2026). Pure: grids in, text out.
import { blankCell, blankLine, scrollLines, type Line } from "./screen-grid.js";

const ESC = "\u001b";
const SYNC_BEGIN = `${ESC}[?2026h`;
const SYNC_END = `${ESC}[?2026l`;
/** Equal cells shorter than this between two changes are rewritten rather than jumped over. */
const GAP = 8;
/** Fewer rows gained than this and a scroll is not worth its bytes. */
const MIN_SCROLL_GAIN = 2;

/** Rows top..bottom (inclusive) move by `by` rows, up when positive. */
interface ScrollPlan {
  readonly by: number;
  readonly top: number;
  readonly bottom: number;
}

/** Where the model's cursor is and whether it shows. */
export interface ModelCursor {
  readonly row: number;
  readonly col: number;
  readonly visible: boolean;
}

export class ScreenDiff {
  /** What the terminal shows; undefined when unknown (at start, after a resize or a clear). */
  #real: Line[] | undefined;
  // The terminal's own state as last written.
  #realRow = -1;
  #realCol = -1;
  #realStyle: string | undefined;
  #realCursorVisible: boolean | undefined;

  /** Forget what the terminal shows: the next diff repaints the whole screen. */
  forget(): void {
    this.#real = undefined;
  }

  /**
   * The terminal entered the alternate screen (`entered`: it shows an empty screen) or left it
   * (the shell's screen, which the model does not know). Where its cursor is, and after 1049
   * (`restoresCursor`) whether it shows, is not known.
   */
  switchedScreen(entered: boolean, restoresCursor: boolean, rows: number, columns: number): void {
    this.#real = entered ? Array.from({ length: rows }, () => blankLine(columns)) : undefined;
    this.#realRow = -1;
    this.#realCol = -1;
    if (restoresCursor) this.#realCursorVisible = undefined;
  }

  #moveTo(row: number, col: number): string {
    if (row === this.#realRow && col === this.#realCol) return "";
    const s = row === this.#realRow ? `${ESC}[${col + 1}G` : col === 0 ? `${ESC}[${row + 1}H` : `${ESC}[${row + 1};${col + 1}H`;
    this.#realRow = row;
    this.#realCol = col;
    return s;
  }

  #styleTo(style: string): string {
    if (style === this.#realStyle) return "";
    const from = this.#realStyle;
    this.#realStyle = style;
    if (style === "") return `${ESC}[0m`;
    // From the default style nothing needs resetting first.
    return from === "" ? `${ESC}[${style}m` : `${ESC}[0;${style}m`;
  }

  #same(m: Line, r: Line, x: number): boolean {
    return m.chars[x] === r.chars[x] && m.styles[x] === r.styles[x] && m.widths[x] === r.widths[x];
  }

  /**
   * The bytes that make the terminal show `model` (empty when nothing differs), as one
   * synchronized update. Only rows marked in `touched` (written since the last diff) can differ,
   * besides those a scroll moves.
   */
  diff(model: readonly Line[], columns: number, touched: Uint8Array, cursor: ModelCursor): string {
    const rows = model.length;
    let body = "";
    let real = this.#real;
    if (real === undefined) {
      body += `${this.#styleTo("")}${ESC}[H${ESC}[2J`;
      this.#realRow = 0;
      this.#realCol = 0;
      real = Array.from({ length: rows }, () => blankLine(columns));
      this.#real = real;
    }
    let count = 0;
    for (let y = 0; y < rows; y++) count += touched[y] as number;
    const plan = count > MIN_SCROLL_GAIN ? this.#scrollPlan(model, real, columns) : undefined;
    if (plan === undefined) {
      for (let y = 0; y < rows; y++) if (touched[y]) body += this.#diffLine(y, model[y] as Line, real[y] as Line, columns);
    } else {
      // Scrolling costs a repaint of what moved with the band but should not have (a sidebar
      // beside it): take whichever way writes fewer bytes.
      const start = { row: this.#realRow, col: this.#realCol, style: this.#realStyle };
      const direct = real.map((l) => ({ chars: [...l.chars], styles: [...l.styles], widths: [...l.widths] }));
      let directBody = "";
      for (let y = 0; y < rows; y++) if (touched[y]) directBody += this.#diffLine(y, model[y] as Line, direct[y] as Line, columns);
      const afterDirect = { row: this.#realRow, col: this.#realCol, style: this.#realStyle };
      this.#realRow = start.row;
      this.#realCol = start.col;
      this.#realStyle = start.style;
      let scrolledBody = this.#applyScroll(real, plan, columns);
      // The terminal's rows in the band moved: compare them all.
      for (let y = 0; y < rows; y++) {
        if (touched[y] || (y >= plan.top && y <= plan.bottom)) scrolledBody += this.#diffLine(y, model[y] as Line, real[y] as Line, columns);
      }
      if (directBody.length <= scrolledBody.length) {
        this.#real = direct;
        this.#realRow = afterDirect.row;
        this.#realCol = afterDirect.col;
        this.#realStyle = afterDirect.style;
        body += directBody;
      } else {
        body += scrolledBody;
      }
    }
    if (cursor.visible) {
      body += this.#moveTo(cursor.row, Math.min(cursor.col, columns - 1));
      if (this.#realCursorVisible !== true) body += `${ESC}[?25h`;
      this.#realCursorVisible = true;
    } else if (this.#realCursorVisible !== false) {
      body += `${ESC}[?25l`;
      this.#realCursorVisible = false;
    }
    // Leave the terminal in the default style, so nothing written after us inherits a colour.
    body += this.#styleTo("");
    return body === "" ? "" : `${SYNC_BEGIN}${body}${SYNC_END}`;
  }

  /** Rewrites the cells of row `y` that differ; runs of few equal cells are rewritten too. */
  #diffLine(y: number, m: Line, r: Line, cols: number): string {
    let s = "";
    let x = 0;
    while (x < cols) {
      if (this.#same(m, r, x)) {
        x++;
        continue;
      }
      let start = x;
      if (m.widths[start] === 0 && start > 0) start--;
      let last = x;
      for (let j = x + 1; j < cols && j - last <= GAP; j++) if (!this.#same(m, r, j)) last = j;
      if (m.widths[last] === 2 && last + 1 < cols) last++;
      // Blank to the end of the row: erase it instead of writing spaces.
      let lastInk = cols - 1;
      while (lastInk >= start && m.chars[lastInk] === " " && m.styles[lastInk] === "") lastInk--;
      const erase = lastInk < last && cols - 1 - lastInk > 3;
      const to = erase ? lastInk : last;
      s += this.#moveTo(y, start);
      for (let c = start; c <= to; c++) {
        const w = m.widths[c] as number;
        r.chars[c] = m.chars[c] as string;
        r.styles[c] = m.styles[c] as string;
        r.widths[c] = w;
        if (w === 0) continue;
        s += this.#styleTo(m.styles[c] as string) + (m.chars[c] as string);
        this.#realCol += w;
      }
      if (erase) {
        s += this.#moveTo(y, lastInk + 1) + this.#styleTo("") + `${ESC}[K`;
        for (let c = lastInk + 1; c < cols; c++) blankCell(r, c);
        x = cols;
      } else {
        x = to + 1;
      }
      // Past the last column the terminal's cursor waits to wrap: its position is not known.
      if (this.#realCol >= cols) this.#realRow = -1;
    }
    return s;
  }

  /**
   * When a band of rows moved up or down (new messages pushed the scrollback up, a page was
   * scrolled), scrolls that band on the terminal in one operation. Rows are compared by their
   * left half, so a band still counts as moved when a column beside it (the sidebar) did not.
   */
  #scrollPlan(model: readonly Line[], real: readonly Line[], columns: number): ScrollPlan | undefined {
    const rows = model.length;
    const half = Math.max(1, Math.floor(columns / 2));
    const key = (l: Line): string => `${l.chars.slice(0, half).join("")}\u0000${l.styles.slice(0, half).join("\u0001")}`;
    const modelKeys = model.map(key);
    const realKeys = real.map(key);
    let changed = 0;
    for (let y = 0; y < rows; y++) if (modelKeys[y] !== realKeys[y]) changed++;
    if (changed < MIN_SCROLL_GAIN + 1) return undefined;
    let best = { gain: 0, by: 0, top: 0, bottom: 0 };
    for (let by = -(rows - 2); by <= rows - 2; by++) {
      if (by === 0) continue;
      let runStart = -1;
      let gain = 0;
      for (let y = 0; y <= rows; y++) {
        const source = y + by;
        const matches = y < rows && source >= 0 && source < rows && modelKeys[y] === realKeys[source];
        if (matches) {
          if (runStart < 0) {
            runStart = y;
            gain = 0;
          }
          if (modelKeys[y] !== realKeys[y]) gain++;
          continue;
        }
        if (runStart >= 0 && gain > best.gain) {
          // Model rows runStart..y-1 come from real rows runStart+by..y-1+by.
          const top = by > 0 ? runStart : runStart + by;
          const bottom = by > 0 ? y - 1 + by : y - 1;
          best = { gain, by, top, bottom };
        }
        runStart = -1;
      }
    }
    if (best.gain < MIN_SCROLL_GAIN) return undefined;
    return { by: best.by, top: best.top, bottom: best.bottom };
  }

  /** Scrolls the band on the terminal (and in `real`, its copy here). */
  #applyScroll(real: Line[], { by, top, bottom }: ScrollPlan, columns: number): string {
    let s = this.#styleTo(""); // rows scrolled in take the current background
    s += `${ESC}[${top + 1};${bottom + 1}r`;
    if (by > 0) s += `${ESC}[${bottom + 1}H${"\n".repeat(by)}`;
    else s += `${ESC}[${top + 1}H${`${ESC}M`.repeat(-by)}`;
    s += `${ESC}[r`;
    // Setting and resetting the margins leaves the cursor at the top left.
    this.#realRow = 0;
    this.#realCol = 0;
    scrollLines(real, top, bottom, by, columns);
    return s;
  }
}
