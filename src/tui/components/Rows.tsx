// Rows of styled segments drawn as one Text: one node for Ink to lay out and draw instead of one
// per row, which matters because Ink redraws the whole screen for every frame. The rows are laid
// out to fit beforehand; truncate is only a guard, so a width disagreement can never make Ink
// wrap a row onto two lines (it cuts each line on its own).
import { Text } from "ink";
import { memo } from "react";
import type { Row } from "../view/row.js";

export const Rows = memo(function Rows({ rows }: { readonly rows: readonly Row[] }) {
  return (
    <Text wrap="truncate">
      {rows.map((row, r) => (
        <Text key={row.key}>
          {r > 0 ? "\n" : ""}
          {row.segments.map((segment, i) => (
            <Text key={i} {...segment.style}>
              {segment.text}
            </Text>
          ))}
        </Text>
      ))}
    </Text>
  );
});
