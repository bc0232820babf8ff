// Makes peer text safe for a terminal (PROTOCOL.md "Open", step 10).
// Every code point that could move the cursor, change colours, set the title, hide text or
// reorder it is replaced with a visible placeholder, so a peer can neither paint on the screen
// nor make text look different from what was sent.
//
// Replaced: C0 controls except LF and TAB (U+0000-001F), DEL (U+007F), C1 controls
// (U+0080-009F, which include the 8-bit CSI U+009B), and with them every ESC sequence (ESC is
// U+001B); zero-width and bidi controls U+200B-200F, U+202A-202E, U+2060-2069, U+FEFF; lone
// surrogates (cannot come from strict UTF-8 but can from JS strings); U+FFF9-FFFB
// (interlinear annotation) and the line/paragraph separators U+2028/2029 (some terminals break
// lines on them).

export const REPLACEMENT = "\uFFFD";

// One character class with everything above. The 'u' flag makes \u{...} match code points.
// With the 'u' flag a valid surrogate pair is one code point, so [\uD800-\uDFFF] only
// matches lone surrogates.
const UNSAFE = /[\u0000-\u0008\u000B-\u001F\u007F-\u009F\u200B-\u200F\u2028-\u202E\u2060-\u2069\uFEFF\uFFF9-\uFFFB\uD800-\uDFFF]/gu;

/** Returns text with every unsafe code point replaced by U+FFFD. Idempotent. */
export function sanitizeText(text: string): string {
  return text.replace(UNSAFE, REPLACEMENT);
}

/** Like sanitizeText, and also replaces newlines and tabs: for one-line fields. */
export function sanitizeLine(text: string): string {
  return sanitizeText(text).replace(/[\n\t]/g, " ");
}

/** True when text contains nothing sanitizeText would replace. */
export function isSafeText(text: string): boolean {
  UNSAFE.lastIndex = 0;
  const found = UNSAFE.test(text);
  UNSAFE.lastIndex = 0;
  return !found;
}
