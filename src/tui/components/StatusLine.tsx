// The top line: who, where, the connection state, and the conversation bar.
import { Box } from "ink";
import type { TuiState } from "../state/state.js";
import { statusRow } from "../view/status-row.js";
import { Line } from "./Line.js";

export interface StatusLineProps {
  readonly state: TuiState;
  readonly nowMs: number;
  readonly width: number;
}

export function StatusLine({ state, nowMs, width }: StatusLineProps) {
  return (
    <Box height={1} width={width}>
      <Line row={statusRow(state, nowMs, width)} />
    </Box>
  );
}
