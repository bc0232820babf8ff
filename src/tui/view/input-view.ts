// The input box: the prompt, then the text wrapped onto as many rows as it needs (up to a
// limit, scrolled so the cursor row always shows). Continuation rows are indented under the
// text; a newline starts a new row; a tab shows as →. The cursor is one cell wide: at the end of
// a full row it moves to the start of the next one.
import type { InputBuffer } from "../state/input-buffer.js";
import { clusters, stringWidth, truncateToWidth } from "./cell-width.js";

export interface InputRow {
  readonly key: string;
  /** The prompt on the first row, blanks (or "↑3" when rows are scrolled off) on the others. */
  readonly lead: string;
  readonly before: string;
  /** The cell under the cursor (a space at the end of the text); undefined on other rows. */
  readonly atCursor?: string;
  readonly after: string;
}

export interface InputView {
  /** The prompt as shown (cut to at most half the width). */
  readonly prompt: string;
  readonly rows: readonly InputRow[];
}

interface Unit {
  readonly text: string;
  readonly width: number;
  /** UTF-16 offset of the unit in the input text. */
  readonly at: number;
}

interface VisualRow {
  readonly units: Unit[];
  /** Offset where the row starts, and where it ends (exclusive: a newline or the next row). */
  start: number;
  end: number;
  /** The row ended at a newline (the cursor can sit at its end). */
  byNewline: boolean;
}

/** The most rows the input box takes in a terminal `rows` high. */
export function maxInputRows(rows: number): number {
  return Math.max(1, Math.min(8, Math.floor((rows - 4) / 2)));
}

function displayUnit(text: string): string {
  return text === "\t" ? "→" : text;
}

/** Splits the text into rows of at most `width` cells, breaking after spaces where it can. */
function visualRows(text: string, width: number): VisualRow[] {
  const rows: VisualRow[] = [{ units: [], start: 0, end: 0, byNewline: false }];
  let used = 0;
  let at = 0;
  for (const c of clusters(text)) {
    const row = rows[rows.length - 1] as VisualRow;
    if (c.text === "\n") {
      row.end = at;
      row.byNewline = true;
      at += c.text.length;
      rows.push({ units: [], start: at, end: at, byNewline: false });
      used = 0;
      continue;
    }
    const w = Math.max(1, c.width);
    if (used + w > width && row.units.length > 0) {
      // Wrap at a word boundary: the word being typed moves whole to the next row, after the
      // row's last space. A word wider than the row is still cut where the row ends.
      let space = -1;
      if (c.text !== " ") {
        for (let j = row.units.length - 1; j >= 0; j--) {
          if (row.units[j]?.text === " ") {
            space = j;
            break;
          }
        }
      }
      const moved = space >= 0 ? row.units.splice(space + 1) : [];
      const start = moved[0]?.at ?? at;
      row.end = start;
      rows.push({ units: moved, start, end: start, byNewline: false });
      used = moved.reduce((sum, u) => sum + u.width, 0);
    }
    (rows[rows.length - 1] as VisualRow).units.push({ text: displayUnit(c.text), width: w, at });
    used += w;
    at += c.text.length;
  }
  const last = rows[rows.length - 1] as VisualRow;
  last.end = text.length;
  return rows;
}

export function inputView(prompt: string, input: InputBuffer, width: number, maxRows = 1): InputView {
  const shownPrompt = truncateToWidth(prompt, Math.max(0, Math.floor(width / 2)));
  const indent = stringWidth(shownPrompt);
  const room = Math.max(1, width - indent);
  const rows = visualRows(input.text, room);

  // The row and unit the cursor is on.
  let cursorRow = rows.findIndex((r, i) =>
    input.cursor >= r.start && (input.cursor < r.end || (input.cursor === r.end && (r.byNewline || i === rows.length - 1))));
  if (cursorRow === -1) cursorRow = rows.length - 1;
  let row = rows[cursorRow] as VisualRow;
  // At the end of a full row, the cursor cell would not fit: it goes to a row of its own.
  const rowWidth = row.units.reduce((w, u) => w + u.width, 0);
  if (input.cursor === row.end && !row.byNewline && rowWidth + 1 > room && row.units.length > 0) {
    rows.splice(cursorRow + 1, 0, { units: [], start: input.cursor, end: input.cursor, byNewline: false });
    cursorRow++;
    row = rows[cursorRow] as VisualRow;
  }

  const limit = Math.max(1, maxRows);
  const first = Math.max(0, Math.min(cursorRow, rows.length - limit));
  const shown = rows.slice(first, first + limit);
  const blank = " ".repeat(indent);
  return {
    prompt: shownPrompt,
    rows: shown.map((r, i) => {
      const index = first + i;
      const hidden = index === first && first > 0 ? truncateToWidth(`↑${first} `, indent, "") : "";
      const lead = index === 0 ? shownPrompt : hidden.length > 0 ? hidden.padStart(indent) : blank;
      if (index !== cursorRow) return { key: `input.${index}`, lead, before: r.units.map((u) => u.text).join(""), after: "" };
      const k = r.units.findIndex((u) => u.at >= input.cursor);
      const split = k === -1 ? r.units.length : k;
      return {
        key: `input.${index}`,
        lead,
        before: r.units.slice(0, split).map((u) => u.text).join(""),
        atCursor: r.units[split]?.text ?? " ",
        after: r.units.slice(split + 1).map((u) => u.text).join(""),
      };
    }),
  };
}
