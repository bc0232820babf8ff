// Text that came from outside this UI (peers, the relay, the client's notices that name what they
// sent) as the view draws it: through the sanitiser (src/protocol/sanitize.ts, PROTOCOL.md §11.2)
// whatever was checked before, so no control character, ESC, CR/LF, bidi control or zero-width
// character reaches the terminal from a label or a notice. Idempotent and cheap on clean text.
import { sanitizeLine, sanitizeText } from "../../protocol/sanitize.js";

/** Longest name drawn (usernames are at most 32 characters; a longer label is not one). */
const NAME_MAX_CHARS = 40;

/** Text that may span lines (a message, a notice's list): every unsafe code point replaced, newlines and tabs kept. */
export function shownText(text: string): string {
  return sanitizeText(text);
}

/** One line: as shownText, and newlines and tabs become spaces (a title, a reason, a sentence). */
export function shownLine(text: string): string {
  return sanitizeLine(text);
}

/** A name or label: one line, cut to 40 characters (by code point). */
export function shownName(name: string): string {
  const line = sanitizeLine(name);
  if (line.length <= NAME_MAX_CHARS) return line;
  const chars = [...line];
  return chars.length <= NAME_MAX_CHARS ? line : `${chars.slice(0, NAME_MAX_CHARS - 1).join("")}…`;
}
