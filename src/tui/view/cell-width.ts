// Terminal cell widths, tab expansion and wrapping: the scrollback lays out its own rows so it
// knows exactly how many fit (and renders only those), instead of letting Ink wrap and measure
// thousands of lines. This is a small wcwidth: wide East Asian ranges and emoji take two cells,
// combining marks and variation selectors none. Peer text is sanitised before it gets here, so
// there are no control characters to measure.

const COMBINING = /\p{M}/u;
const EMOJI_PRESENTATION = /\p{Emoji_Presentation}/u;
/** Drawn as nothing: zero-width characters, bidi controls, tags, selectors (the sanitiser replaces most of them). */
const IGNORABLE = /[\p{Default_Ignorable_Code_Point}\p{Bidi_Control}]/u;
const PICTOGRAPHIC = /\p{Extended_Pictographic}/u;
const EMOJI_MODIFIER = /\p{Emoji_Modifier}/u;
const isRegionalIndicator = (cp: number): boolean => cp >= 0x1f1e6 && cp <= 0x1f1ff;

/** [first, last] code point ranges that are East Asian Wide or Fullwidth. */
const WIDE_RANGES: readonly (readonly [number, number])[] = [
  [0x1100, 0x115f], // Hangul Jamo initial consonants
  [0x2e80, 0x303e], // CJK radicals, Kangxi, ideographic description, CJK symbols and punctuation
  [0x3041, 0x33ff], // Hiragana, Katakana, Bopomofo, Hangul compatibility Jamo, CJK compatibility
  [0x3400, 0x4dbf], // CJK extension A
  [0x4e00, 0x9fff], // CJK unified ideographs
  [0xa000, 0xa4cf], // Yi
  [0xac00, 0xd7a3], // Hangul syllables
  [0xf900, 0xfaff], // CJK compatibility ideographs
  [0xfe30, 0xfe4f], // CJK compatibility forms
  [0xff00, 0xff60], // Fullwidth forms
  [0xffe0, 0xffe6], // Fullwidth signs
  [0x20000, 0x2fffd], // CJK extensions B-F
  [0x30000, 0x3fffd], // CJK extension G and later
];

/** Cells one code point takes: 0, 1 or 2. */
export function codePointWidth(cp: number): 0 | 1 | 2 {
  if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0)) return 0;
  if (cp < 0x300) return cp === 0xad ? 0 : 1; // fast path: ASCII and Latin-1 (the soft hyphen is ignorable)
  const ch = String.fromCodePoint(cp);
  // Default-ignorable code points (ZWJ, variation selectors, tags, Hangul fillers, bidi marks)
  // take no cell, whatever range they sit in.
  if (IGNORABLE.test(ch)) return 0;
  if (COMBINING.test(ch)) return 0;
  for (const [first, last] of WIDE_RANGES) {
    if (cp >= first && cp <= last) return 2;
  }
  if (EMOJI_PRESENTATION.test(ch)) return 2;
  return 1;
}

export interface Cluster {
  readonly text: string;
  readonly width: number;
}

/**
 * Splits text into what the terminal draws as one unit: a code point with the zero-width ones
 * that follow it (combining marks, variation selectors; control characters such as tab and
 * newline stay units of their own). A text-style symbol followed by
 * VS16 (U+FE0F, "⚠️") is drawn as a two-cell emoji.
 */
export function clusters(text: string): Cluster[] {
  const out: Cluster[] = [];
  // An emoji ZWJ sequence (👨‍👩‍👧), an emoji with a skin tone (👍🏽) and a flag (two regional
  // indicators, 🇫🇷) are drawn as one two-cell emoji, as Ink's string-width measures them.
  let joinNext = false;
  let openFlag = false;
  for (const ch of text) {
    const cp = ch.codePointAt(0) ?? 0;
    const w = codePointWidth(cp);
    const last = out[out.length - 1];
    const control = cp < 0x20 || (cp >= 0x7f && cp < 0xa0);
    if (last !== undefined && ((joinNext && PICTOGRAPHIC.test(ch)) || (last.width === 2 && EMOJI_MODIFIER.test(ch)) || (openFlag && isRegionalIndicator(cp)))) {
      out[out.length - 1] = { text: last.text + ch, width: last.width };
      joinNext = false;
      openFlag = false;
      continue;
    }
    joinNext = cp === 0x200d && last !== undefined && last.width === 2;
    openFlag = isRegionalIndicator(cp);
    if (w === 0 && !control && last !== undefined) {
      out[out.length - 1] = { text: last.text + ch, width: cp === 0xfe0f && last.width === 1 ? 2 : last.width };
    } else {
      out.push({ text: ch, width: w });
    }
  }
  return out;
}

/** Cells a string takes on one terminal line. */
export function stringWidth(text: string): number {
  let width = 0;
  for (const c of clusters(text)) width += c.width;
  return width;
}

/** Replaces each tab with spaces up to the next tab stop (counted in cells from the line start). */
export function expandTabs(line: string, tabSize = 4): string {
  if (!line.includes("\t")) return line;
  let out = "";
  let column = 0;
  for (const c of clusters(line)) {
    if (c.text === "\t") {
      const spaces = tabSize - (column % tabSize);
      out += " ".repeat(spaces);
      column += spaces;
    } else {
      out += c.text;
      column += c.width;
    }
  }
  return out;
}

/** The longest prefix of text that takes at most `width` cells. */
export function takeWidth(text: string, width: number): string {
  let out = "";
  let used = 0;
  for (const c of clusters(text)) {
    if (used + c.width > width) break;
    out += c.text;
    used += c.width;
  }
  return out;
}

/** Cuts text to at most `width` cells, ending with `ellipsis` when something was cut. */
export function truncateToWidth(text: string, width: number, ellipsis = "…"): string {
  if (width <= 0) return "";
  if (stringWidth(text) <= width) return text;
  const room = width - stringWidth(ellipsis);
  return room < 0 ? "" : takeWidth(text, room) + ellipsis;
}

/** Pads with spaces on the right to `width` cells (never cuts). */
export function padEndToWidth(text: string, width: number): string {
  const missing = width - stringWidth(text);
  return missing > 0 ? text + " ".repeat(missing) : text;
}

/** Splits one word that is wider than the line into pieces of at most `width` cells. */
function hardSplit(word: string, width: number): string[] {
  const pieces: string[] = [];
  let piece = "";
  let used = 0;
  for (const c of clusters(word)) {
    if (used + c.width > width && piece !== "") {
      pieces.push(piece);
      piece = "";
      used = 0;
    }
    piece += c.text;
    used += c.width;
  }
  if (piece !== "") pieces.push(piece);
  return pieces;
}

/**
 * Wraps one line (no newlines; tabs already expanded) to rows of at most `width` cells,
 * breaking at spaces where it can and inside words only when a word is wider than a row.
 * An empty line is one empty row. Spaces at a break are dropped.
 */
export function wrapLine(line: string, width: number): string[] {
  const limit = Math.max(1, width);
  if (stringWidth(line) <= limit) return [line];
  const rows: string[] = [];
  let row = "";
  let rowWidth = 0;
  for (const token of line.split(/( +)/)) {
    if (token === "") continue;
    const tokenWidth = stringWidth(token);
    if (rowWidth + tokenWidth <= limit) {
      row += token;
      rowWidth += tokenWidth;
      continue;
    }
    if (token.startsWith(" ")) {
      // A run of spaces at the break: end the row here, drop the spaces.
      if (row !== "") rows.push(row);
      row = "";
      rowWidth = 0;
      continue;
    }
    if (row !== "") {
      rows.push(row.trimEnd());
      row = "";
      rowWidth = 0;
    }
    if (tokenWidth <= limit) {
      row = token;
      rowWidth = tokenWidth;
      continue;
    }
    const pieces = hardSplit(token, limit);
    const last = pieces.pop() ?? "";
    rows.push(...pieces);
    row = last;
    rowWidth = stringWidth(last);
  }
  if (row !== "" || rows.length === 0) rows.push(row);
  return rows;
}

/** Splits text on newlines, expands tabs, and wraps every line to `width` cells. */
export function wrapText(text: string, width: number, tabSize = 4): string[] {
  return text.split("\n").flatMap((line) => wrapLine(expandTabs(line, tabSize), width));
}

/**
 * wrapText with hanging indents, for the app's own lists (/help, /users): a line that starts
 * with two or more spaces is an item, and its continuation rows sit two cells further in than
 * the item, so each item reads as one block. Falls back to plain wrapping when that would leave
 * fewer than 12 cells.
 */
export function wrapHanging(text: string, width: number, tabSize = 4): string[] {
  return text.split("\n").flatMap((raw) => {
    const line = expandTabs(raw, tabSize);
    const lead = /^ {2,}/.exec(line)?.[0].length ?? 0;
    const indent = lead + 2;
    if (lead === 0 || width - indent < 12) return wrapLine(line, width);
    const rows = wrapLine(line.slice(lead), width - indent);
    return rows.map((row, i) => " ".repeat(i === 0 ? lead : indent) + row);
  });
}
