// What deserves the user's attention: mentions of my name, DMs, key changes. Pure decisions;
// the hook that receives events rings the bell.
import type { SessionEvent } from "../../client/types.js";

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\-]/g, "\\$&");
}

/** True when text names me as a word ("alice", "@alice", "Alice:"), not inside another name. */
export function mentions(text: string, me: string): boolean {
  if (me === "") return false;
  return new RegExp(`(^|[^a-z0-9_-])@?${escapeRegExp(me)}(?![a-z0-9_-])`, "i").test(text);
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
