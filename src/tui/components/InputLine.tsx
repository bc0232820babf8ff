// The input box: the prompt and the text being typed, wrapped onto several rows when long. The
// terminal's own cursor marks the insertion point (so it blinks as the user likes, works without
// colours, and input methods compose in the right place). While a large paste waits for an
// answer, the question takes its place.
import { Box, Text, useCursor } from "ink";
import { memo } from "react";
import { stringWidth } from "../view/cell-width.js";
import type { InputView } from "../view/input-view.js";
import type { Row } from "../view/row.js";
import { STYLE } from "../view/style.js";
import { Line } from "./Line.js";

export interface InputLineProps {
  readonly view: InputView;
  /** Shown instead of the input (a large paste's question). */
  readonly question?: readonly Row[] | undefined;
  /** Sending here is blocked (a key change): the prompt is red. */
  readonly blocked: boolean;
  readonly width: number;
  readonly height: number;
  /** The screen row the box starts on (for placing the cursor). */
  readonly top: number;
  readonly leaving: boolean;
}

export const InputLine = memo(function InputLine({ view, question, blocked, width, height, top, leaving }: InputLineProps) {
  const { setCursorPosition } = useCursor();
  const cursorRow = view.rows.findIndex((r) => r.atCursor !== undefined);
  const row = view.rows[cursorRow];
  const typing = !leaving && question === undefined && row !== undefined;
  setCursorPosition(typing ? { x: Math.min(width - 1, stringWidth(row.lead + row.before)), y: top + cursorRow } : undefined);
  if (leaving) {
    return (
      <Box height={1} width={width}>
        <Text wrap="truncate" {...STYLE.info}>
          leaving: closing the session…
        </Text>
      </Box>
    );
  }
  if (question !== undefined) {
    return (
      <Box flexDirection="column" height={height} width={width} overflow="hidden">
        {question.map((row) => <Line key={row.key} row={row} />)}
      </Box>
    );
  }
  return (
    <Box flexDirection="column" height={height} width={width} overflow="hidden">
      {view.rows.map((row, i) => (
        <Text key={row.key} wrap="truncate">
          <Text {...(i === 0 && row.lead === view.prompt ? (blocked ? STYLE.alarm : STYLE.strong) : STYLE.info)}>{row.lead}</Text>
          {row.before}
          {row.atCursor ?? ""}
          {row.after}
        </Text>
      ))}
    </Box>
  );
});
