// What deserves the user's attention: mentions of my name, DMs, key changes. Pure decisions;
// the hook that receives events rings the bell.
import type { SessionEvent } from "../../client/types.js";

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\-]/g, "\\$&");
}

const patterns = new Map<string, RegExp>();

/**
 * The pattern of a mention of `me` as a word ("alice", "@alice", "Alice:"), not inside another
 * name; group 1 is what precedes it. Built once per name (a burst of 100,000 messages is tested
 * against it). Undefined for an empty name.
 */
export function mentionPattern(me: string): RegExp | undefined {
  if (me === "") return undefined;
  let p = patterns.get(me);
  if (p === undefined) {
    p = new RegExp(`(^|[^a-z0-9_-])@?${escapeRegExp(me)}(?![a-z0-9_-])`, "i");
    patterns.set(me, p);
  }
  return p;
}

/** True when text names me as a word ("alice", "@alice", "Alice:"), not inside another name. */
export function mentions(text: string, me: string): boolean {
  return mentionPattern(me)?.test(text) ?? false;
}

/** True when the event should ring the terminal bell: a DM or a mention from someone else, or a key change. */
export function shouldRing(event: SessionEvent, me: string): boolean {
  switch (event.type) {
    case "message":
      return !event.message.own && (event.message.conversationId.startsWith("dm:") || mentions(event.message.text, me));
    case "key-change":
      return true;
    default:
      return false;
  }
}
