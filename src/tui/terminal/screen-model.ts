// A double-buffered terminal screen, as curses keeps one: everything the renderer (Ink) writes
// is played onto a model of the screen (a grid of cells with their styles), and only what differs
// from what the real terminal shows is sent to it. A typed character then costs a few bytes
// instead of a repaint; a new message at the bottom of the scrollback becomes one scroll of the
// rows above it (a scroll region) plus the rows that really changed, instead of a repaint of the
// whole pane.
//
// This file is the first half: the parser that plays the renderer's output onto the model.
// screen-state.ts (ScreenState) is the model itself (the grid, the cursor, the scroll region, the
// pen) and the drawing operations the parser calls; screen-diff.ts (ScreenDiff) keeps what the
// terminal shows and plans the bytes that bring it to the model; screen-grid.ts is the grid both
// keep; screen-cells.ts measures the characters printed and writes and erases them in a row.
//
// Pure: text in, text out, no IO (frame-stdout.ts connects it to the terminal). It understands
// the part of ECMA-48 / xterm that a renderer writes: printable text (wide characters take two
// cells, measured as the layout measures them), CR, LF, BS, TAB, cursor moves (CUU, CUD, CUF,
// CUB, CNL, CPL, CHA, CUP, VPA), erasing (ED, EL), SGR, scrolling (SU, SD, RI), save/restore
// cursor, cursor visibility, synchronized output (mode 2026) and the alternate screen. Anything
// else (other mode switches, OSC, BEL) is passed through in order.
import { ScreenDiff } from "./screen-diff.js";
import { ScreenState } from "./screen-state.js";

const ESC = "\u001b";

export class ScreenModel {
  /** What the renderer has drawn. */
  #screen: ScreenState;
  /** What the terminal shows, and the diff that brings it to the model. */
  #terminal = new ScreenDiff();
  /** Inside a synchronized update (mode 2026): the diff waits for its end. */
  #synchronized = false;
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
    this.#screen = new ScreenState(columns, rows);
  }

  get columns(): number {
    return this.#screen.columns;
  }

  get rows(): number {
    return this.#screen.rows;
  }

  /** The model's text, one string per row, without styles (tests and debugging). */
  text(): string[] {
    return this.#screen.text();
  }

  /** Each row's cells as "text|style" pairs, for comparing two screens exactly (tests). */
  cells(): string[] {
    return this.#screen.cells();
  }

  /** Where the cursor is and whether it shows (tests). */
  cursor(): { row: number; col: number; visible: boolean } {
    return this.#screen.cursor();
  }

  /**
   * The terminal changed size: the model keeps what fits (as the renderer expects, it redraws
   * next), and the terminal's content is unknown now (terminals differ in what they keep), so
   * the next diff repaints everything.
   */
  resize(columns: number, rows: number): void {
    this.#screen.resize(columns, rows);
    this.invalidate();
  }

  /** Forget what the terminal shows: the next diff repaints the whole screen. */
  invalidate(): void {
    this.#terminal.forget();
    this.#screen.touchAll();
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
    return this.#screen.dirty && !this.#synchronized && !this.#transparent;
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
        if (textStart >= 0) this.#screen.print(text.slice(textStart, i));
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
        this.#screen.print(text.slice(textStart, i));
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
    if (textStart >= 0) this.#screen.print(text.slice(textStart));
  }

  #control(code: number): void {
    const s = this.#screen;
    switch (code) {
      case 0x0a: // LF: the tty's output processing (ONLCR) makes it CR LF
        s.col = 0;
        s.lineFeed();
        return;
      case 0x0d:
        s.col = 0;
        return;
      case 0x08:
        s.col = Math.max(0, Math.min(s.col, s.columns - 1) - 1);
        return;
      case 0x09:
        s.col = Math.min(s.columns - 1, (Math.floor(s.col / 8) + 1) * 8);
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
        this.#screen.saveCursor();
        return start + 2;
      case "8":
        this.#screen.restoreCursor();
        return start + 2;
      case "M": // RI: up one row, scrolling down at the top margin
        this.#screen.reverseIndex();
        return start + 2;
      case "D": // IND
        this.#screen.lineFeed();
        return start + 2;
      case "E": // NEL
        this.#screen.col = 0;
        this.#screen.lineFeed();
        return start + 2;
      case "c": // RIS: the terminal resets itself
        this.#passThrough(text.slice(start, start + 2));
        this.#screen.reset();
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
    const s = this.#screen;
    const n = Math.max(1, num(0, 1));
    const clampCol = (): number => Math.min(s.col, s.columns - 1);
    switch (final) {
      case "m":
        s.sgr(params);
        return;
      case "A":
        s.row = Math.max(0, s.row - n);
        s.col = clampCol();
        return;
      case "B":
        s.row = Math.min(s.rows - 1, s.row + n);
        s.col = clampCol();
        return;
      case "C":
        s.col = Math.min(s.columns - 1, s.col + n);
        return;
      case "D":
        s.col = Math.max(0, clampCol() - n);
        return;
      case "E":
        s.row = Math.min(s.rows - 1, s.row + n);
        s.col = 0;
        return;
      case "F":
        s.row = Math.max(0, s.row - n);
        s.col = 0;
        return;
      case "G":
      case "`":
        s.col = Math.min(s.columns - 1, n - 1);
        return;
      case "d":
        s.row = Math.min(s.rows - 1, n - 1);
        return;
      case "H":
      case "f":
        s.row = Math.min(s.rows - 1, Math.max(1, num(0, 1)) - 1);
        s.col = Math.min(s.columns - 1, Math.max(1, num(1, 1)) - 1);
        return;
      case "J":
        if (s.eraseDisplay(num(0, 0))) {
          // A whole-screen clear is how a program asks for a clean screen (Ctrl-L): repaint it all.
          this.#terminal.forget();
        }
        return;
      case "K":
        s.eraseLine(num(0, 0));
        return;
      case "S":
        s.scrollRegion(n);
        return;
      case "T":
        s.scrollRegion(-n);
        return;
      case "r": {
        // DECSTBM: the renderer never sets margins, but a model that plays our own output back
        // (the tests) must follow them. The cursor goes to the top left.
        const top = Math.max(1, num(0, 1)) - 1;
        const bottom = Math.min(s.rows, num(1, s.rows)) - 1;
        s.setScrollRegion(top, bottom);
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
        this.#screen.cursorVisible = set;
        this.#screen.dirty = true;
      } else if (p === "2026") {
        this.#synchronized = set;
        if (!set) this.#diff();
      } else if (p === "1049" || p === "1047" || p === "47") {
        this.#diff();
        this.#out += `${ESC}[?${p}${set ? "h" : "l"}`;
        this.#screen.blankAll();
        // Entering: the terminal shows an empty screen. Leaving: the shell's screen, which the
        // model does not know.
        this.#terminal.switchedScreen(set, p === "1049", this.#screen.rows, this.#screen.columns);
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

  // --- the diff (screen-diff.ts) --------------------------------------------------------------

  /** Sends the terminal what differs from the model, if the model changed. */
  #diff(): void {
    this.#out += this.#screen.diffOnto(this.#terminal);
  }
}
