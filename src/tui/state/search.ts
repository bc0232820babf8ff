// /search: the messages of one conversation that contain a text, newest last, as the lines of
// one notice. Pure: it reads the conversation's entries and formats; the controller shows it.
import type { ChatMessage } from "../../client/types.js";
import { listGet, type ChunkedList } from "./chunked-list.js";
import { messageKey, type Entry } from "./state.js";

/** How a message's author reads in a search hit: "* alice" for /me, "alice set the topic:", "alice:". */
function whoSaid(m: ChatMessage): string {
  switch (m.kind) {
    case "action":
      return `* ${m.from}`;
    case "topic":
      return `${m.from} set the topic:`;
    case "away":
      return `${m.from} (away):`;
    default:
      return `${m.from}:`;
  }
}

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
    const who = whoSaid(m);
    found.push(`  ${formatTime(m.sentAtMs)} ${who} ${firstLine.slice(0, SHOWN_CHARS)}${more}`);
  }
  return { lines: found.reverse(), total };
}

/**
 * /search over every conversation: the messages on screen in all open conversations and the
 * kept history on disk (`kept`, which includes conversations closed since), each message once.
 * Each hit names its conversation (`titleOf`): "12:01 #ops alice: text".
 */
export function searchEverywhere(
  open: readonly ChunkedList<Entry>[], kept: readonly ChatMessage[], needle: string,
  formatTime: (ms: number) => string, titleOf: (conversationId: string) => string, limit = SEARCH_LIMIT,
): SearchResult {
  if (typeof needle !== "string" || needle.trim() === "") throw new TypeError("search text must not be empty");
  const wanted = needle.toLowerCase();
  // By time sent; messages sent in the same millisecond in the order they arrived (entry seq).
  // Each message once, by conversation, sender and id: another sender's message may carry the
  // same id (ids are unique per sender, PROTOCOL.md §11.1) and is a hit of its own.
  const byKey = new Map<string, { readonly m: ChatMessage; readonly order: number }>();
  for (const m of kept) if (m.text.toLowerCase().includes(wanted)) byKey.set(messageKey(m), { m, order: Number.NEGATIVE_INFINITY });
  for (const entries of open) {
    for (let i = 0; i < entries.length; i++) {
      const e = listGet(entries, i);
      if (e?.kind === "message" && e.message.text.toLowerCase().includes(wanted)) byKey.set(messageKey(e.message), { m: e.message, order: e.seq });
    }
  }
  const all = [...byKey.values()].sort((a, b) => a.m.sentAtMs - b.m.sentAtMs || a.order - b.order || 0).map((x) => x.m);
  const lines = all.slice(-limit).map((m) => {
    const firstLine = m.text.split("\n", 1)[0] ?? "";
    const more = firstLine.length > SHOWN_CHARS || m.text.includes("\n") ? " …" : "";
    return `  ${formatTime(m.sentAtMs)} ${titleOf(m.conversationId)} ${whoSaid(m)} ${firstLine.slice(0, SHOWN_CHARS)}${more}`;
  });
  return { lines, total: all.length };
}
