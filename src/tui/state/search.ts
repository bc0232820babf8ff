// /search: the messages of one conversation that contain a text, newest last, as the lines of
// one notice. Pure: it reads the conversation's entries and formats; the controller shows it.
import { listGet, type ChunkedList } from "./chunked-list.js";
import type { Entry } from "./state.js";

/** Matches listed at most (the newest); the notice says how many more there were. */
export const SEARCH_LIMIT = 20;
/** Characters of a matching message shown (its first line). */
const SHOWN_CHARS = 160;

export interface SearchResult {
  /** The newest matches, oldest first. */
  readonly lines: readonly string[];
  readonly total: number;
}

/**
 * Finds `needle` (case-insensitive) in the messages of `entries`, scanning from the newest.
 * `formatTime` renders a message's time (the view's clock and day).
 */
export function searchMessages(entries: ChunkedList<Entry>, needle: string, formatTime: (ms: number) => string, limit = SEARCH_LIMIT): SearchResult {
  if (typeof needle !== "string" || needle.trim() === "") throw new TypeError("search text must not be empty");
  const wanted = needle.toLowerCase();
  const found: string[] = [];
  let total = 0;
  for (let i = entries.length - 1; i >= 0; i--) {
    const e = listGet(entries, i);
    if (e?.kind !== "message" || !e.message.text.toLowerCase().includes(wanted)) continue;
    total++;
    if (found.length >= limit) continue;
    const m = e.message;
    const firstLine = m.text.split("\n", 1)[0] ?? "";
    const more = firstLine.length > SHOWN_CHARS || m.text.includes("\n") ? " …" : "";
    const who = m.kind === "action" ? `* ${m.from}` : `${m.from}:`;
    found.push(`  ${formatTime(m.sentAtMs)} ${who} ${firstLine.slice(0, SHOWN_CHARS)}${more}`);
  }
  return { lines: found.reverse(), total };
}
