// One terminal row of styled segments. Rows are laid out to fit beforehand; truncate is only a
// guard so a width disagreement can never make Ink wrap a row onto two lines.
import { Text } from "ink";
import { memo } from "react";
import type { Row } from "../view/row.js";

export const Line = memo(function Line({ row }: { readonly row: Row }) {
  return (
    <Text wrap="truncate">
      {row.segments.map((segment, i) => (
        <Text key={i} {...segment.style}>
          {segment.text}
        </Text>
      ))}
    </Text>
  );
});
