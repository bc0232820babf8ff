// The prompt and the line being typed, with a block cursor.
import { Box, Text } from "ink";
import type { InputBuffer } from "../state/input-buffer.js";
import { inputView } from "../view/input-view.js";
import { STYLE } from "../view/style.js";

export interface InputLineProps {
  readonly prompt: string;
  readonly input: InputBuffer;
  readonly width: number;
  readonly leaving: boolean;
}

export function InputLine({ prompt, input, width, leaving }: InputLineProps) {
  if (leaving) {
    return (
      <Box height={1} width={width}>
        <Text wrap="truncate" {...STYLE.info}>
          leaving: closing the session…
        </Text>
      </Box>
    );
  }
  const view = inputView(prompt, input, width);
  return (
    <Box height={1} width={width}>
      <Text wrap="truncate">
        <Text {...STYLE.strong}>{view.prompt}</Text>
        {view.before}
        <Text inverse>{view.atCursor}</Text>
        {view.after}
      </Text>
    </Box>
  );
}
