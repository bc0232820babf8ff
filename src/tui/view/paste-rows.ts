// The question a large paste asks in place of the input box, and the "more below" marker a
// scrolled conversation shows at its bottom.
import { describeSize } from "../state/paste.js";
import type { PendingPaste } from "../state/state.js";
import { stringWidth, wrapText } from "./cell-width.js";
import { fitSegments, seg, type Row } from "./row.js";
import { STYLE } from "./style.js";

/** "⚠ Paste of 57 lines, 6.1 KB for #ops — y: send it · e: edit first · n: drop it", wrapped. */
export function pasteQuestionRows(paste: PendingPaste, title: string, width: number, maxRows: number): Row[] {
  const full = `⚠ Paste of ${describeSize(paste)} for ${title} — y: send it as one message · e: edit it first · n: drop it`;
  // Short of room, the answers matter more than the words around them.
  const short = `⚠ Paste ${describeSize(paste)}? y send · e edit · n drop`;
  const fullLines = wrapText(full, Math.max(1, width));
  const lines = fullLines.length <= maxRows ? fullLines : wrapText(short, Math.max(1, width));
  const shown = lines.slice(0, Math.max(1, maxRows));
  return shown.map((line, i) => ({ key: `paste.${i}`, segments: fitSegments([seg(line, STYLE.alarm)], Math.max(1, width)) }));
}

/** "-- more below (12) --", bold when some of them arrived since the user scrolled up. */
export function moreBelowRow(below: number, fresh: number, width: number): Row {
  const label = `-- more below (${below}) --`;
  const news = fresh > 0 ? ` ${fresh} new` : "";
  const hint = " PgDn, Ctrl-End: newest";
  const w = Math.max(1, width);
  const base = stringWidth(label + news) + stringWidth(hint) <= w ? label + news + hint : label + news;
  return { key: "more", segments: fitSegments([seg(base.padEnd(w), fresh > 0 ? STYLE.moreNew : STYLE.more)], w) };
}
