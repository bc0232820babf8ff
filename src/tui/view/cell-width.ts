// Terminal cell widths, tab expansion and wrapping: the scrollback lays out its own rows so it
// knows exactly how many fit (and renders only those), instead of letting Ink wrap and measure
// thousands of lines.
//
// The measure is Ink's own: text is cut into grapheme clusters with Intl.Segmenter (what a
// terminal draws as one unit: a ZWJ family, a flag, a keycap, a letter with its accents, a Hangul
// syllable made of jamo) and each cluster is measured by string-width, the package (and version)
// Ink measures and places text with. So a row we lay out to fit N cells is N cells for Ink too,
// and nothing here keeps its own table of wide ranges. Peer text is sanitised before it gets here
// (src/protocol/sanitize.ts), so the only control characters left are newline and tab.
import inkStringWidth from "string-width";
// MAY_JOIN: the code points that may join a neighbour into one cluster (shared with the input
// line's cursor). Text without any is one cluster per code point, so it is measured a code point
// at a time (each by string-width) without a segmenter call, which costs ~20 µs whatever the length.
import { MAY_JOIN } from "../state/graphemes.js";

const segmenter = new Intl.Segmenter(undefined, { granularity: "grapheme" });
/** Printable ASCII only: one cluster and one cell per character, no segmenting needed (the hot path). */
const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;

/**
 * Widths of single code points met so far, by pages of 4,096 code points (255: not measured
 * yet). A string-width call costs a segmenter call (~20 µs), so each code point is measured once
 * per process; all of Unicode would take 1.1 MB.
 */
const codePointPages = new Map<number, Uint8Array>();
const UNMEASURED = 255;
/** Widths of the longer clusters met so far. Bounded: cleared when full (peers choose the text). */
const clusterWidths = new Map<string, number>();
const MAX_CACHED_CLUSTERS = 4096;

/** True when text may hold a cluster of more than one code point (so it is cut by Intl.Segmenter). */
export function mayJoin(text: string): boolean {
  return MAY_JOIN.test(text);
}

/** Cells one grapheme cluster takes, as string-width (and so Ink) measures it. */
function clusterWidth(cluster: string): number {
  const cp = cluster.codePointAt(0) ?? 0;
  if (cluster.length === 1 || (cluster.length === 2 && cp > 0xffff)) {
    if (cp >= 0x20 && cp < 0x7f) return 1;
    let page = codePointPages.get(cp >> 12);
    if (page === undefined) {
      page = new Uint8Array(4096).fill(UNMEASURED);
      codePointPages.set(cp >> 12, page);
    }
    const known = page[cp & 0xfff] ?? UNMEASURED;
    if (known !== UNMEASURED) return known;
    const width = inkStringWidth(cluster);
    if (width < UNMEASURED) page[cp & 0xfff] = width;
    return width;
  }
  let width = clusterWidths.get(cluster);
  if (width === undefined) {
    width = inkStringWidth(cluster);
    if (clusterWidths.size >= MAX_CACHED_CLUSTERS) clusterWidths.clear();
    clusterWidths.set(cluster, width);
  }
  return width;
}

export interface Cluster {
  readonly text: string;
  readonly width: number;
}

/**
 * Splits text into grapheme clusters (Unicode UAX #29, by Intl.Segmenter), each with the cells it
 * takes: 0 (newline, tab, a lone zero-width character), 1 or 2. Control characters such as tab
 * and newline are clusters of their own.
 */
export function clusters(text: string): Cluster[] {
  if (PRINTABLE_ASCII.test(text)) return Array.from(text, (ch) => ({ text: ch, width: 1 }));
  const out: Cluster[] = [];
  if (!MAY_JOIN.test(text)) {
    for (const ch of text) out.push({ text: ch, width: clusterWidth(ch) });
    return out;
  }
  for (const { segment } of segmenter.segment(text)) out.push({ text: segment, width: clusterWidth(segment) });
  return out;
}

/** Cells a string takes on one terminal line: the sum of its clusters' widths (equal to string-width's). */
export function stringWidth(text: string): number {
  if (PRINTABLE_ASCII.test(text)) return text.length;
  let width = 0;
  if (!MAY_JOIN.test(text)) {
    for (const ch of text) width += clusterWidth(ch);
    return width;
  }
  for (const { segment } of segmenter.segment(text)) width += clusterWidth(segment);
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

/** The longest prefix of text that takes at most `width` cells (never cutting a cluster). */
export function takeWidth(text: string, width: number): string {
  if (PRINTABLE_ASCII.test(text)) return text.slice(0, Math.max(0, width));
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

/** A run of plain spaces, or a run of other clusters (a word), with its width. */
interface Token {
  readonly text: string;
  readonly width: number;
  readonly spaces: boolean;
  readonly units: readonly Cluster[];
}

/** Cuts a line into words and runs of spaces, cluster by cluster (a space with a mark on it is part of a word). */
function tokens(units: readonly Cluster[]): Token[] {
  const out: Token[] = [];
  let start = 0;
  while (start < units.length) {
    const spaces = units[start]?.text === " ";
    let end = start;
    let text = "";
    let width = 0;
    while (end < units.length && (units[end]?.text === " ") === spaces) {
      const u = units[end] as Cluster;
      text += u.text;
      width += u.width;
      end++;
    }
    out.push({ text, width, spaces, units: units.slice(start, end) });
    start = end;
  }
  return out;
}

/** Splits one word that is wider than the line into pieces of at most `width` cells. */
function hardSplit(units: readonly Cluster[], width: number): Array<{ text: string; width: number }> {
  const pieces: Array<{ text: string; width: number }> = [];
  let piece = "";
  let used = 0;
  for (const c of units) {
    if (used + c.width > width && piece !== "") {
      pieces.push({ text: piece, width: used });
      piece = "";
      used = 0;
    }
    piece += c.text;
    used += c.width;
  }
  if (piece !== "") pieces.push({ text: piece, width: used });
  return pieces;
}

/**
 * Wraps one line (no newlines; tabs already expanded) to rows of at most `width` cells,
 * breaking at spaces where it can and inside words only when a word is wider than a row (and
 * then between clusters, never inside one). An empty line is one empty row. Spaces at a break
 * are dropped.
 */
export function wrapLine(line: string, width: number): string[] {
  const limit = Math.max(1, width);
  if (PRINTABLE_ASCII.test(line) && line.length <= limit) return [line];
  const units = clusters(line);
  let total = 0;
  for (const u of units) total += u.width;
  if (total <= limit) return [line];
  const rows: string[] = [];
  let row = "";
  let rowWidth = 0;
  for (const token of tokens(units)) {
    if (rowWidth + token.width <= limit) {
      row += token.text;
      rowWidth += token.width;
      continue;
    }
    if (token.spaces) {
      // A run of spaces at the break: end the row here, drop the spaces.
      if (row !== "") rows.push(row);
      row = "";
      rowWidth = 0;
      continue;
    }
    if (row !== "") {
      rows.push(row.replace(/ +$/, ""));
      row = "";
      rowWidth = 0;
    }
    if (token.width <= limit) {
      row = token.text;
      rowWidth = token.width;
      continue;
    }
    const pieces = hardSplit(token.units, limit);
    const last = pieces.pop() ?? { text: "", width: 0 };
    for (const p of pieces) rows.push(p.text);
    row = last.text;
    rowWidth = last.width;
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
