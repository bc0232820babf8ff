// The terminal's mouse reports (SGR mode: ESC [ < button ; column ; row M, or m on release) in
// a chunk of input, taken out so the rest can go on as keys. Only the wheel is used.

const REPORT = /\u001b\[<(\d+);(\d+);(\d+)([Mm])/g;

/** Rows one notch of the wheel scrolls. */
export const WHEEL_ROWS = 3;

export interface MouseSplit {
  /** The input without the mouse reports. */
  readonly rest: string;
  /** Wheel notches in order: negative scrolls up (towards older messages), positive down. */
  readonly wheel: readonly number[];
}

export function splitMouseReports(chunk: string): MouseSplit {
  if (!chunk.includes("\u001b[<")) return { rest: chunk, wheel: [] };
  const wheel: number[] = [];
  const rest = chunk.replace(REPORT, (_all, button: string) => {
    // Shift, Alt and Ctrl add 4, 8 and 16 to the button; 64 is wheel up, 65 wheel down.
    const base = Number(button) & ~(4 | 8 | 16);
    if (base === 64) wheel.push(-WHEEL_ROWS);
    else if (base === 65) wheel.push(WHEEL_ROWS);
    return "";
  });
  return { rest, wheel };
}
