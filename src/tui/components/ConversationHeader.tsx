// The row under the status line: which conversation this is, and for a DM the peer's presence
// and trust (a key change in red, with what to do).
import { Box } from "ink";
import { memo } from "react";
import type { Row } from "../view/row.js";
import { Line } from "./Line.js";

export const ConversationHeader = memo(function ConversationHeader({ row, width }: { readonly row: Row; readonly width: number }) {
  return (
    <Box height={1} width={width}>
      <Line row={row} />
    </Box>
  );
});
