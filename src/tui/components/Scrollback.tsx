// The messages of the current conversation: only the rows that fit. Following the newest rows
// by default; scrolled up, the view stays where the user put it and its last row says how much
// is below ("-- more below (N) --").
import { Box, Text } from "ink";
import { memo, useMemo } from "react";
import type { Conversation } from "../state/state.js";
import { moreBelowRow } from "../view/paste-rows.js";
import { scrollbackWindow, type WindowContext } from "../view/scrollback-window.js";
import { STYLE } from "../view/style.js";
import { Line } from "./Line.js";
import { Rows } from "./Rows.js";

export interface ScrollbackProps {
  readonly conversation: Conversation;
  readonly context: WindowContext;
  readonly height: number;
}

function emptyHint(conversation: Conversation): string {
  switch (conversation.kind) {
    case "lobby":
      return "Nothing here yet. What you type goes to everyone online; /help lists the commands and keys.";
    case "room":
      return `Nothing in ${conversation.title} yet. What you type goes to its members.`;
    case "dm":
      return `Private conversation with ${conversation.peer ?? conversation.title}. Only the two of you can read it.`;
  }
}

// No overflow clipping: the rows are laid out to fit the pane exactly, and clipping would make
// Ink cut every row of every frame again.
export const Scrollback = memo(function Scrollback({ conversation, context, height }: ScrollbackProps) {
  const { entries, readMarker, scroll } = conversation;
  // Recomputed when messages, the position or the size change, not on every keystroke.
  const view = useMemo(
    () => scrollbackWindow({ entries, readMarker, scroll }, context, height),
    [entries, readMarker, scroll, context, height],
  );
  const width = context.width;
  return (
    <Box flexDirection="column" width={width} height={height} justifyContent={view.more ? "flex-start" : "flex-end"}>
      {view.rows.length === 0 && height > 0 ? (
        <Text wrap="truncate" {...STYLE.info}>
          {emptyHint(conversation)}
        </Text>
      ) : (
        <Rows rows={view.rows} />
      )}
      {view.more ? (
        <Box marginTop={Math.max(0, height - 1 - view.rows.length)}>
          <Line row={moreBelowRow(view.more.below, view.more.fresh, width)} />
        </Box>
      ) : null}
    </Box>
  );
});
