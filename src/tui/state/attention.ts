// What deserves the user's attention: mentions of my name, DMs, key changes. Pure decisions;
// the hook that receives events rings the bell.
import type { SessionEvent } from "../../client/types.js";
import { DEFAULT_SETTINGS, notifyLevel, type UiSettings } from "./settings.js";

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\-]/g, "\\$&");
}

const patterns = new Map<string, RegExp>();

/**
 * The pattern of a mention of `me` (or of one of the extra highlight `words`) as a word
 * ("alice", "@alice", "Alice:"), not inside another name; group 1 is what precedes it. Built once
 * per name and word list (a burst of 100,000 messages is tested against it). Undefined for an
 * empty name.
 */
export function mentionPattern(me: string, words: readonly string[] = []): RegExp | undefined {
  if (me === "") return undefined;
  const key = words.length === 0 ? me : `${me}\n${words.join("\n")}`;
  let p = patterns.get(key);
  if (p === undefined) {
    const names = [me, ...words].map(escapeRegExp).join("|");
    p = new RegExp(`(^|[^a-z0-9_-])@?(?:${names})(?![a-z0-9_-])`, "i");
    if (patterns.size > 64) patterns.clear();
    patterns.set(key, p);
  }
  return p;
}

/** True when text names me (or a highlight word) as a word ("alice", "@alice", "Alice:"), not inside another name. */
export function mentions(text: string, me: string, words: readonly string[] = []): boolean {
  return mentionPattern(me, words)?.test(text) ?? false;
}

/**
 * True when the event should ring the terminal bell: a DM or a mention (or highlight word) from
 * someone else, or a key change. A conversation whose notify level is "none" (muted) never rings
 * for messages; key changes always do.
 */
export function shouldRing(event: SessionEvent, me: string, settings: UiSettings = DEFAULT_SETTINGS): boolean {
  switch (event.type) {
    case "message": {
      const m = event.message;
      if (m.own || m.kind === "topic" || notifyLevel(settings, m.conversationId) === "none") return false;
      return m.conversationId.startsWith("dm:") || mentions(m.text, me, settings.highlights);
    }
    case "key-change":
      return true;
    default:
      return false;
  }
}
