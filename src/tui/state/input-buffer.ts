// The input line as a value: text plus a cursor (a UTF-16 index that always sits on a code
// point boundary). Pure functions, so the reducer and the key handler share them.

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

function prevBoundary(text: string, index: number): number {
  if (index <= 0) return 0;
  const low = text.charCodeAt(index - 1);
  if (low >= 0xdc00 && low <= 0xdfff && index >= 2) {
    const high = text.charCodeAt(index - 2);
    if (high >= 0xd800 && high <= 0xdbff) return index - 2;
  }
  return index - 1;
}

function nextBoundary(text: string, index: number): number {
  if (index >= text.length) return text.length;
  const cp = text.codePointAt(index) ?? 0;
  return index + (cp > 0xffff ? 2 : 1);
}

export function insertText(buf: InputBuffer, text: string): InputBuffer {
  const clean = cleanInsert(text);
  if (clean === "") return buf;
  return {
    text: buf.text.slice(0, buf.cursor) + clean + buf.text.slice(buf.cursor),
    cursor: buf.cursor + clean.length,
  };
}

/** Deletes the code point before the cursor. */
export function backspace(buf: InputBuffer): InputBuffer {
  if (buf.cursor === 0) return buf;
  const from = prevBoundary(buf.text, buf.cursor);
  return { text: buf.text.slice(0, from) + buf.text.slice(buf.cursor), cursor: from };
}

/** Deletes the code point under the cursor. */
export function deleteForward(buf: InputBuffer): InputBuffer {
  if (buf.cursor >= buf.text.length) return buf;
  const to = nextBoundary(buf.text, buf.cursor);
  return { text: buf.text.slice(0, buf.cursor) + buf.text.slice(to), cursor: buf.cursor };
}

export type CursorMove = "left" | "right" | "home" | "end";

export function moveCursor(buf: InputBuffer, move: CursorMove): InputBuffer {
  let cursor: number;
  switch (move) {
    case "left":
      cursor = prevBoundary(buf.text, buf.cursor);
      break;
    case "right":
      cursor = nextBoundary(buf.text, buf.cursor);
      break;
    case "home":
      cursor = 0;
      break;
    case "end":
      cursor = buf.text.length;
      break;
  }
  return cursor === buf.cursor ? buf : { text: buf.text, cursor };
}

export type TypedPart = { readonly kind: "text"; readonly text: string } | { readonly kind: "submit" };

/**
 * Splits one chunk of typed input into text and Enter presses. A terminal may deliver several
 * keystrokes as one chunk ("hi\r" when typing fast); a real paste arrives through bracketed
 * paste instead and keeps its newlines.
 */
export function splitTyped(chunk: string): TypedPart[] {
  const parts: TypedPart[] = [];
  for (const [i, piece] of chunk.split(/\r\n|\r|\n/).entries()) {
    if (i > 0) parts.push({ kind: "submit" });
    if (piece !== "") parts.push({ kind: "text", text: piece });
  }
  return parts;
}
