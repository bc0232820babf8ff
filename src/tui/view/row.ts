// A row is one terminal line, built of styled segments. Everything the UI draws in the
// scrollback, the sidebar and the status line is computed as rows by pure functions, so the
// components only render, and the layout is tested without a terminal.
import { stringWidth, takeWidth } from "./cell-width.js";
import type { SegmentStyle } from "./style.js";

export interface Segment {
  readonly text: string;
  readonly style?: SegmentStyle;
}

export interface Row {
  /** Unique among its siblings (a React key). */
  readonly key: string;
  readonly segments: readonly Segment[];
}

export function seg(text: string, style?: SegmentStyle): Segment {
  return style === undefined ? { text } : { text, style };
}

/** The plain text of a row (tests, and measuring). */
export function rowText(row: Row): string {
  return row.segments.map((s) => s.text).join("");
}

export function rowWidth(row: Row): number {
  return row.segments.reduce((w, s) => w + stringWidth(s.text), 0);
}

/** Cuts segments so the row is at most `width` cells, ending with "…" when something was cut. */
export function fitSegments(segments: readonly Segment[], width: number): Segment[] {
  const total = segments.reduce((w, s) => w + stringWidth(s.text), 0);
  if (total <= width) return [...segments];
  const out: Segment[] = [];
  let room = width;
  for (const s of segments) {
    const w = stringWidth(s.text);
    if (w < room) {
      out.push(s);
      room -= w;
      continue;
    }
    // This segment reaches the edge and more follows: cut it and mark the cut.
    if (room >= 1) out.push({ ...s, text: `${takeWidth(s.text, room - 1)}…` });
    break;
  }
  return out;
}
