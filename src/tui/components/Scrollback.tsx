// The messages of the current conversation: only the rows that fit, newest at the bottom.
import { Box, Text } from "ink";
import { useMemo } from "react";
import type { Conversation } from "../state/state.js";
import { tailRows } from "../view/scrollback-rows.js";
import { STYLE } from "../view/style.js";
import { Line } from "./Line.js";

export interface ScrollbackProps {
  readonly conversation: Conversation;
  readonly me: string;
  readonly nickWidth: number;
  readonly width: number;
  readonly height: number;
}

function emptyHint(conversation: Conversation): string {
  switch (conversation.kind) {
    case "lobby":
      return "Nothing here yet. What you type goes to everyone online; /help lists the commands.";
    case "room":
      return `Nothing in ${conversation.title} yet. What you type goes to its members.`;
    case "dm":
      return `Private conversation with ${conversation.peer ?? conversation.title}. Only the two of you can read it.`;
  }
}

export function Scrollback({ conversation, me, nickWidth, width, height }: ScrollbackProps) {
  // Recomputed when messages or the size change, not on every keystroke.
  const rows = useMemo(
    () => tailRows(conversation.entries, { width, me, nickWidth }, height),
    [conversation.entries, width, me, nickWidth, height],
  );
  return (
    <Box flexDirection="column" width={width} height={height} justifyContent="flex-end" overflow="hidden">
      {rows.length === 0 && height > 0 ? (
        <Text wrap="truncate" {...STYLE.info}>
          {emptyHint(conversation)}
        </Text>
      ) : (
        rows.map((row) => <Line key={row.key} row={row} />)
      )}
    </Box>
  );
}
