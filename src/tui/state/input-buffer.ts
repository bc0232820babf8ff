// The input line as a value: text plus a cursor (a UTF-16 index that always sits on a grapheme
// cluster boundary: every motion and deletion steps over whole clusters, so a family emoji, a
// flag or a letter with its accent is never split). Pure functions, so the reducer and the key
// handler share them.
import { clustersAfter, clustersBefore, graphemes, nextBoundary, prevBoundary, snapBack, snapForward } from "./graphemes.js";

export interface InputBuffer {
  readonly text: string;
  readonly cursor: number;
}

export const EMPTY_INPUT: InputBuffer = { text: "", cursor: 0 };

// C0 controls other than tab and newline, DEL, and C1 controls: never part of a message.
const CONTROLS = /[\u0000-\u0008\u000B-\u001F\u007F-\u009F]/g;

/** Normalises typed or pasted text: CRLF and CR become LF, other control characters go. */
export function cleanInsert(text: string): string {
  return text.replace(/\r\n?/g, "\n").replace(CONTROLS, "");
}

export function insertText(buf: InputBuffer, text: string): InputBuffer {
  const clean = cleanInsert(text);
  if (clean === "") return buf;
  const next = buf.text.slice(0, buf.cursor) + clean + buf.text.slice(buf.cursor);
  // The cursor goes after the inserted text; when that joins the cluster after it (an accent
  // typed before a mark, a lone regional indicator before a flag), after that cluster.
  return { text: next, cursor: snapForward(next, buf.cursor + clean.length) };
}

/** Deletes the grapheme cluster before the cursor. */
export function backspace(buf: InputBuffer): InputBuffer {
  if (buf.cursor === 0) return buf;
  const from = prevBoundary(buf.text, buf.cursor);
  return { text: buf.text.slice(0, from) + buf.text.slice(buf.cursor), cursor: from };
}

/** Deletes the grapheme cluster under the cursor. */
export function deleteForward(buf: InputBuffer): InputBuffer {
  if (buf.cursor >= buf.text.length) return buf;
  const to = nextBoundary(buf.text, buf.cursor);
  return { text: buf.text.slice(0, buf.cursor) + buf.text.slice(to), cursor: buf.cursor };
}

export type CursorMove = "left" | "right" | "home" | "end" | "word-left" | "word-right" | "up" | "down";

/** A cluster that is one whitespace character (a space with an accent on it is not). */
const isSpace = (cluster: string | undefined): boolean => cluster !== undefined && /^\s$/u.test(cluster);

/** Start of the word before index (readline's backward-word), by clusters: skip spaces, then the word. */
export function wordStart(text: string, index: number): number {
  let i = snapBack(text, Math.min(index, text.length));
  let inWord = false;
  for (const c of clustersBefore(text, i)) {
    const space = isSpace(c);
    if (!space) inWord = true;
    else if (inWord) break;
    i -= c.length;
  }
  return i;
}

/** End of the word after index (readline's forward-word), by clusters. */
export function wordEnd(text: string, index: number): number {
  let i = snapForward(text, Math.max(0, index));
  let inWord = false;
  for (const c of clustersAfter(text, i)) {
    const space = isSpace(c);
    if (!space) inWord = true;
    else if (inWord) break;
    i += c.length;
  }
  return i;
}

function lineStart(text: string, index: number): number {
  return text.lastIndexOf("\n", index - 1) + 1;
}

function lineEnd(text: string, index: number): number {
  const nl = text.indexOf("\n", index);
  return nl === -1 ? text.length : nl;
}

/** The index `column` clusters into the line that starts at `start` (clamped to the line). */
function atColumn(text: string, start: number, column: number): number {
  const end = lineEnd(text, start);
  let i = start;
  for (let c = 0; c < column && i < end; c++) i = nextBoundary(text, i);
  return Math.min(i, end);
}

/** Clusters between the start of index's line and index. */
function columnOf(text: string, index: number): number {
  return graphemes(text.slice(lineStart(text, index), index)).length;
}

/** True when the cursor is on the first (or, for "down", last) line of a multi-line input. */
export function onEdgeLine(buf: InputBuffer, edge: "up" | "down"): boolean {
  return edge === "up" ? !buf.text.slice(0, buf.cursor).includes("\n") : !buf.text.slice(buf.cursor).includes("\n");
}

/**
 * Moves the cursor. Home and End go to the start or end of the current line of a multi-line
 * input, and a second press to the start or end of the whole input; up and down move between
 * the lines of a multi-line input.
 */
export function moveCursor(buf: InputBuffer, move: CursorMove): InputBuffer {
  const { text } = buf;
  let cursor: number;
  switch (move) {
    case "left":
      cursor = prevBoundary(text, buf.cursor);
      break;
    case "right":
      cursor = nextBoundary(text, buf.cursor);
      break;
    case "home": {
      const start = lineStart(text, buf.cursor);
      cursor = start === buf.cursor ? 0 : start;
      break;
    }
    case "end": {
      const end = lineEnd(text, buf.cursor);
      cursor = end === buf.cursor ? text.length : end;
      break;
    }
    case "word-left":
      cursor = wordStart(text, buf.cursor);
      break;
    case "word-right":
      cursor = wordEnd(text, buf.cursor);
      break;
    case "up": {
      const start = lineStart(text, buf.cursor);
      cursor = start === 0 ? buf.cursor : atColumn(text, lineStart(text, start - 1), columnOf(text, buf.cursor));
      break;
    }
    case "down": {
      const end = lineEnd(text, buf.cursor);
      cursor = end === text.length ? buf.cursor : atColumn(text, end + 1, columnOf(text, buf.cursor));
      break;
    }
  }
  return cursor === buf.cursor ? buf : { text, cursor };
}

export type Kill = "word-back" | "word-forward" | "to-start" | "to-end";

/**
 * Deletes a stretch of the input: the word before the cursor (Ctrl-W), the word after it
 * (Alt-D), everything before the cursor (Ctrl-U) or everything after it (Ctrl-K).
 */
export function kill(buf: InputBuffer, what: Kill): InputBuffer {
  const { text, cursor } = buf;
  let from = cursor;
  let to = cursor;
  switch (what) {
    case "word-back":
      from = wordStart(text, cursor);
      break;
    case "word-forward":
      to = wordEnd(text, cursor);
      break;
    case "to-start":
      from = 0;
      break;
    case "to-end":
      to = text.length;
      break;
  }
  if (from === to) return buf;
  return { text: text.slice(0, from) + text.slice(to), cursor: from };
}
