// The mouse wheel: the terminal's reports (SGR mode: ESC [ < button ; column ; row M) are parsed
// with the keys (input/key-parser.ts); each notch scrolls this many rows.

/** Rows one notch of the wheel scrolls. */
export const WHEEL_ROWS = 3;
