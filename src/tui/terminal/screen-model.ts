// A double-buffered terminal screen, as curses keeps one: everything the renderer (Ink) writes
// is played onto a model of the screen (a grid of cells with their styles), and only what differs
// from what the real terminal shows is sent to it. A typed character then costs a few bytes
// instead of a repaint; a new message at the bottom of the scrollback becomes one scroll of the
// rows above it (a scroll region) plus the rows that really changed, instead of a repaint of the
// whole pane.
//
// This file is the first half: the parser that plays the renderer's output onto the model.
// screen-diff.ts (ScreenDiff) keeps what the terminal shows and plans the bytes that bring it to
// the model; screen-grid.ts is the grid both keep; screen-cells.ts measures the characters
// printed and writes and erases them in a row.
//
// Pure: text in, text out, no IO (frame-stdout.ts connects it to the terminal). It understands
// the part of ECMA-48 / xterm that a renderer writes: printable text (wide characters take two
// cells, measured as the layout measures them), CR, LF, BS, TAB, cursor moves (CUU, CUD, CUF,
// CUB, CNL, CPL, CHA, CUP, VPA), erasing (ED, EL), SGR, scrolling (SU, SD, RI), save/restore
// cursor, cursor visibility, synchronized output (mode 2026) and the alternate screen. Anything
// else (other mode switches, OSC, BEL) is passed through in order.
import { applySgr, plain, renditionKey } from "./sgr.js";
import { ScreenDiff } from "./screen-diff.js";
import { eraseCells, isPrintableAscii, printedClusters, putCell } from "./screen-cells.js";
import { blankCell, blankLine, scrollLines, type Line } from "./screen-grid.js";

const ESC = "\u001b";

export class ScreenModel {
  #columns: number;
  #rows: number;
  /** What the renderer has drawn. */
  #model: Line[];
  /** What the terminal shows, and the diff that brings it to the model. */
  #terminal = new ScreenDiff();
  #row = 0;
  #col = 0;
  #saved: { row: number; col: number } = { row: 0, col: 0 };
  /** The scroll region (DECSTBM), inclusive rows. */
  #marginTop = 0;
  #marginBottom: number;
  #rendition = plain();
  #style = "";
  #cursorVisible = true;
  /** Inside a synchronized update (mode 2026): the diff waits for its end. */
  #synchronized = false;
  /** The model has changed since the last diff. */
  #dirty = false;
  /** Rows of the model written since the last diff (the others still match the terminal). */
  #touched: Uint8Array;
  #allTouched = true;
  /** Output already due (passed-through sequences, diffs made before them). */
  #out = "";
  /** An escape sequence cut between two writes. */
  #pending = "";
  /**
   * After leaving the alternate screen the model steps aside: what follows (showing the cursor,
   * the shell's screen) goes to the terminal as written, until the alternate screen is entered again.
   */
  #transparent = false;

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

  /** Where the cursor is and whether it shows (tests). */
  cursor(): { row: number; col: number; visible: boolean } {
    return { row: this.#row, col: this.#col, visible: this.#cursorVisible };
  }

  /**
   * The terminal changed size: the model keeps what fits (as the renderer expects, it redraws
   * next), and the terminal's content is unknown now (terminals differ in what they keep), so
   * the next diff repaints everything.
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
    this.#row = Math.min(this.#row, r - 1);
    this.#col = Math.min(this.#col, c);
    this.#marginTop = 0;
    this.#marginBottom = r - 1;
    this.#touched = new Uint8Array(r);
    this.invalidate();
  }

  /** Forget what the terminal shows: the next diff repaints the whole screen. */
  invalidate(): void {
    this.#terminal.forget();
    this.#dirty = true;
    this.#allTouched = true;
  }

  /**
   * Plays renderer output onto the model. Returns what must go to the terminal now: the diff at
   * the end of a synchronized update, and sequences passed through (with the diff before them).
   * Outside a synchronized update the diff waits for flush().
   */
  write(data: string): string {
    if (this.#transparent) {
      if (!data.includes(`${ESC}[?1049h`)) return data;
      const at = data.indexOf(`${ESC}[?1049h`);
      this.#transparent = false;
      return data.slice(0, at) + this.write(data.slice(at));
    }
    const text = this.#pending + data;
    this.#pending = "";
    this.#parse(text);
    if (this.#transparent && this.#pending !== "") {
      this.#out += this.#pending;
      this.#pending = "";
    }
    const out = this.#out;
    this.#out = "";
    return out;
  }

  /** Whether a diff is waiting for flush(). */
  get needsFlush(): boolean {
    return this.#dirty && !this.#synchronized && !this.#transparent;
  }

  /** The diff between the model and the terminal (empty when nothing changed). */
  flush(): string {
    if (!this.#transparent) this.#diff();
    const out = this.#out;
    this.#out = "";
    return out;
  }

  // --- parsing ---------------------------------------------------------------------------------

  #parse(text: string): void {
    let i = 0;
    let textStart = -1;
    const n = text.length;
    while (i < n) {
      if (this.#transparent) {
        if (textStart >= 0) this.#print(text.slice(textStart, i));
        this.#out += this.write(text.slice(i));
        return;
      }
      const code = text.charCodeAt(i);
      if (code >= 0x20 && code !== 0x7f) {
        if (textStart < 0) textStart = i;
        i++;
        continue;
      }
      if (textStart >= 0) {
        this.#print(text.slice(textStart, i));
        textStart = -1;
      }
      if (code === 0x1b) {
        const end = this.#escape(text, i);
        if (end < 0) {
          this.#pending = text.slice(i);
          return;
        }
        i = end;
        continue;
      }
      this.#control(code);
      i++;
    }
    if (textStart >= 0) this.#print(text.slice(textStart));
  }

  #control(code: number): void {
    switch (code) {
      case 0x0a: // LF: the tty's output processing (ONLCR) makes it CR LF
        this.#col = 0;
        this.#lineFeed();
        return;
      case 0x0d:
        this.#col = 0;
        return;
      case 0x08:
        this.#col = Math.max(0, Math.min(this.#col, this.#columns - 1) - 1);
        return;
      case 0x09:
        this.#col = Math.min(this.#columns - 1, (Math.floor(this.#col / 8) + 1) * 8);
        return;
      case 0x07: // BEL: passed through, in order
        this.#passThrough("\u0007");
        return;
      default:
        return; // other C0 controls draw nothing
    }
  }

  /** Parses one escape sequence starting at `start`; returns the index after it, or -1 when cut off. */
  #escape(text: string, start: number): number {
    const next = text[start + 1];
    if (next === undefined) return -1;
    if (next === "[") {
      let i = start + 2;
      while (i < text.length) {
        const c = text.charCodeAt(i);
        if (c >= 0x40 && c <= 0x7e) break;
        i++;
      }
      if (i >= text.length) return -1;
      this.#csi(text.slice(start + 2, i), text[i] as string, text.slice(start, i + 1));
      return i + 1;
    }
    if (next === "]" || next === "P" || next === "_" || next === "^") {
      // OSC / DCS / APC / PM: up to BEL or ST; passed through whole.
      for (let i = start + 2; i < text.length; i++) {
        if (text[i] === "\u0007") {
          this.#passThrough(text.slice(start, i + 1));
          return i + 1;
        }
        if (text[i] === ESC) {
          if (i + 1 >= text.length) return -1;
          if (text[i + 1] === "\\") {
            this.#passThrough(text.slice(start, i + 2));
            return i + 2;
          }
        }
      }
      return -1;
    }
    switch (next) {
      case "7":
        this.#saved = { row: this.#row, col: this.#col };
        return start + 2;
      case "8":
        this.#row = this.#saved.row;
        this.#col = this.#saved.col;
        return start + 2;
      case "M": // RI: up one row, scrolling down at the top margin
        if (this.#row === this.#marginTop) this.#scroll(this.#marginTop, this.#marginBottom, -1);
        else this.#row = Math.max(0, this.#row - 1);
        return start + 2;
      case "D": // IND
        this.#lineFeed();
        return start + 2;
      case "E": // NEL
        this.#col = 0;
        this.#lineFeed();
        return start + 2;
      case "c": // RIS: the terminal resets itself
        this.#passThrough(text.slice(start, start + 2));
        this.#model = Array.from({ length: this.#rows }, () => blankLine(this.#columns));
        this.#row = 0;
        this.#col = 0;
        this.#rendition = plain();
        this.#style = "";
        this.invalidate();
        return start + 2;
      default: {
        // Two-byte sequences (keypad modes, charsets with one more byte): passed through.
        const length = next === "(" || next === ")" || next === "#" ? 3 : 2;
        if (start + length > text.length) return -1;
        this.#passThrough(text.slice(start, start + length));
        return start + length;
      }
    }
  }

  #csi(body: string, final: string, whole: string): void {
    const prefix = /^[<=>?]/.test(body) ? (body[0] as string) : "";
    const params = (prefix === "" ? body : body.slice(1)).split(";");
    const num = (i: number, fallback: number): number => {
      const v = Number(params[i] === "" || params[i] === undefined ? NaN : params[i]);
      return Number.isFinite(v) ? v : fallback;
    };
    if (prefix === "?" && (final === "h" || final === "l")) {
      this.#privateModes(params, final === "h", whole);
      return;
    }
    if (prefix !== "" || /[ -/]/.test(body)) {
      this.#passThrough(whole);
      return;
    }
    const n = Math.max(1, num(0, 1));
    const clampCol = (): number => Math.min(this.#col, this.#columns - 1);
    switch (final) {
      case "m":
        applySgr(this.#rendition, params);
        this.#style = renditionKey(this.#rendition);
        return;
      case "A":
        this.#row = Math.max(0, this.#row - n);
        this.#col = clampCol();
        return;
      case "B":
        this.#row = Math.min(this.#rows - 1, this.#row + n);
        this.#col = clampCol();
        return;
      case "C":
        this.#col = Math.min(this.#columns - 1, this.#col + n);
        return;
      case "D":
        this.#col = Math.max(0, clampCol() - n);
        return;
      case "E":
        this.#row = Math.min(this.#rows - 1, this.#row + n);
        this.#col = 0;
        return;
      case "F":
        this.#row = Math.max(0, this.#row - n);
        this.#col = 0;
        return;
      case "G":
      case "`":
        this.#col = Math.min(this.#columns - 1, n - 1);
        return;
      case "d":
        this.#row = Math.min(this.#rows - 1, n - 1);
        return;
      case "H":
      case "f":
        this.#row = Math.min(this.#rows - 1, Math.max(1, num(0, 1)) - 1);
        this.#col = Math.min(this.#columns - 1, Math.max(1, num(1, 1)) - 1);
        return;
      case "J":
        this.#eraseDisplay(num(0, 0));
        return;
      case "K":
        this.#eraseLine(num(0, 0));
        return;
      case "S":
        this.#scroll(this.#marginTop, this.#marginBottom, n);
        return;
      case "T":
        this.#scroll(this.#marginTop, this.#marginBottom, -n);
        return;
      case "r": {
        // DECSTBM: the renderer never sets margins, but a model that plays our own output back
        // (the tests) must follow them. The cursor goes to the top left.
        const top = Math.max(1, num(0, 1)) - 1;
        const bottom = Math.min(this.#rows, num(1, this.#rows)) - 1;
        if (top < bottom) {
          this.#marginTop = top;
          this.#marginBottom = bottom;
        } else {
          this.#marginTop = 0;
          this.#marginBottom = this.#rows - 1;
        }
        this.#row = 0;
        this.#col = 0;
        return;
      }
      default:
        this.#passThrough(whole);
    }
  }

  #privateModes(params: readonly string[], set: boolean, whole: string): void {
    const rest: string[] = [];
    for (const p of params) {
      if (p === "25") {
        this.#cursorVisible = set;
        this.#dirty = true;
      } else if (p === "2026") {
        this.#synchronized = set;
        if (!set) this.#diff();
      } else if (p === "1049" || p === "1047" || p === "47") {
        this.#diff();
        this.#out += `${ESC}[?${p}${set ? "h" : "l"}`;
        this.#model = Array.from({ length: this.#rows }, () => blankLine(this.#columns));
        this.#allTouched = true;
        // Entering: the terminal shows an empty screen. Leaving: the shell's screen, which the
        // model does not know.
        this.#terminal.switchedScreen(set, p === "1049", this.#rows, this.#columns);
        if (!set && p === "1049") this.#transparent = true;
      } else {
        rest.push(p);
      }
    }
    if (rest.length > 0) this.#passThrough(rest.length === params.length ? whole : `${ESC}[?${rest.join(";")}${set ? "h" : "l"}`);
  }

  /** Sequences the model does not draw go out in order: the diff so far first. */
  #passThrough(sequence: string): void {
    if (!this.#synchronized) this.#diff();
    this.#out += sequence;
  }

  // --- drawing into the model ------------------------------------------------------------------

  #lineFeed(): void {
    if (this.#row === this.#marginBottom) this.#scroll(this.#marginTop, this.#marginBottom, 1);
    else this.#row = Math.min(this.#rows - 1, this.#row + 1);
  }

  /** Scrolls rows top..bottom of the model by `by` rows (positive: up). */
  #scroll(top: number, bottom: number, by: number): void {
    scrollLines(this.#model, top, bottom, by, this.#columns);
    this.#touched.fill(1, top, bottom + 1);
    this.#dirty = true;
  }


  /** Puts one character of width 1 or 2 at the cursor. */
  #put(ch: string, width: number): void {
    if (this.#col + width > this.#columns) {
      // Autowrap: past the last column, the character goes to the start of the next row.
      this.#col = 0;
      this.#lineFeed();
    }
    this.#touched[this.#row] = 1;
    putCell(this.#model[this.#row] as Line, this.#col, ch, width, this.#style, this.#columns);
    this.#col += width;
  }

  #print(text: string): void {
    this.#dirty = true;
    if (isPrintableAscii(text)) {
      for (let i = 0; i < text.length; i++) this.#put(text[i] as string, 1);
      return;
    }
    for (const c of printedClusters(text)) this.#put(c.text, c.width);
  }

  #eraseCells(line: Line, from: number, to: number): void {
    eraseCells(line, from, to, this.#columns);
    this.#dirty = true;
  }

  #eraseLine(mode: number): void {
    const line = this.#model[this.#row] as Line;
    this.#touched[this.#row] = 1;
    const x = Math.min(this.#col, this.#columns - 1);
    if (mode === 0) this.#eraseCells(line, x, this.#columns - 1);
    else if (mode === 1) this.#eraseCells(line, 0, x);
    else this.#eraseCells(line, 0, this.#columns - 1);
  }

  #eraseDisplay(mode: number): void {
    if (mode === 0) {
      this.#eraseLine(0);
      for (let r = this.#row + 1; r < this.#rows; r++) this.#model[r] = blankLine(this.#columns);
      this.#touched.fill(1, this.#row);
    } else if (mode === 1) {
      this.#eraseLine(1);
      for (let r = 0; r < this.#row; r++) this.#model[r] = blankLine(this.#columns);
      this.#touched.fill(1, 0, this.#row + 1);
    } else {
      this.#model = Array.from({ length: this.#rows }, () => blankLine(this.#columns));
      this.#allTouched = true;
      // A whole-screen clear is how a program asks for a clean screen (Ctrl-L): repaint it all.
      this.#terminal.forget();
    }
    this.#dirty = true;
  }

  // --- the diff (screen-diff.ts) --------------------------------------------------------------

  /** Sends the terminal what differs from the model, if the model changed. */
  #diff(): void {
    if (!this.#dirty) return;
    this.#dirty = false;
    if (this.#allTouched) this.#touched.fill(1);
    this.#allTouched = false;
    this.#out += this.#terminal.diff(this.#model, this.#columns, this.#touched, { row: this.#row, col: this.#col, visible: this.#cursorVisible });
    this.#touched.fill(0);
  }
}
