// The TUI's sentence for a membership change of a protocol v2 conversation (PROTOCOL.md §7):
// the client reports it as data (MembershipLine, src/client/types.ts), the screen says who did
// what: "alice created #ops", "alice added carol", "bob tried to remove carol from #ops; only
// alice can". Me is "you", as in the room lines of v1. Every name is sanitised and bounded here:
// the session checks usernames, but a line on the screen does not rely on it.
import type { MembershipLine } from "../../client/types.js";
import { LOBBY, parseConversationId } from "../../protocol/names.js";
import { sanitizeLine } from "../../protocol/sanitize.js";

/** Beyond this many names a line says "and N others" (adding 499 members is one commit). */
export const MAX_NAMED = 10;

function clean(name: string): string {
  // One line, no escape sequence, at most 40 characters (a username has at most 32).
  return sanitizeLine(name).replace(/\s+/g, " ").trim().slice(0, 40) || "someone";
}

/** "you" for me, else the sanitised name. */
function who(name: string, me: string): string {
  return name === me ? "you" : clean(name);
}

/** "carol", "carol and dave", "carol, dave and erin", "carol, …, and 489 others". */
export function nameList(names: readonly string[], me: string): string {
  // Me first ("you and carol"), then the others as given.
  const ordered = [...names.filter((n) => n === me), ...names.filter((n) => n !== me)];
  const shown = ordered.slice(0, MAX_NAMED).map((n) => who(n, me));
  const more = ordered.length - shown.length;
  if (more > 0) return `${shown.join(", ")} and ${more} other${more === 1 ? "" : "s"}`;
  if (shown.length <= 1) return shown[0] ?? "nobody";
  return `${shown.slice(0, -1).join(", ")} and ${shown.at(-1) ?? ""}`;
}

/** How a conversation is named in a line: "#ops", "the lobby", "this conversation" (a DM). */
export function placeName(conversationId: string): string {
  const parsed = parseConversationId(conversationId);
  if (parsed === undefined) return clean(conversationId);
  switch (parsed.kind) {
    case "room": return parsed.room;
    case "lobby": return `the ${LOBBY}`;
    case "dm": return "this conversation";
  }
}

/** The line for one membership change in `conversationId`, as `me` reads it. */
export function membershipText(line: MembershipLine, conversationId: string, me: string): string {
  const by = who(line.by, me);
  const where = placeName(conversationId);
  const users = nameList(line.users, me);
  switch (line.kind) {
    case "created": return `${by} created ${where}`;
    case "joined": return `${by} joined ${where}`;
    // A DM's group is made on its first message: "added" there means the conversation began
    // (or began again, after a lost state), not that someone was let into a room.
    case "added": return parseConversationId(conversationId)?.kind === "dm" ? `${by} started this conversation` : `${by} added ${users}`;
    case "removed": return `${by} removed ${users} from ${where}`;
    case "left": return `${by} left ${where}`;
    case "refused": {
      const only = line.creator === undefined ? "only its creator can" : `only ${who(line.creator, me)} can`;
      return `${by} tried to remove ${users} from ${where}; ${only}`;
    }
    // A device of a user who keeps another one in the conversation (PROTOCOL.md §4.5).
    case "device-added": return line.thisDevice === true
      ? `this device (${clean(line.device ?? "unnamed")}) was added here: it reads what is sent from now on`
      : `${who(line.users[0] ?? line.by, me)} added a device: ${clean(line.device ?? "unnamed")}`;
    case "device-removed": return `${who(line.users[0] ?? line.by, me)} removed a device: ${clean(line.device ?? "unnamed")}`;
    case "refused-device": return `${by} put a device of ${users} into ${where} that ${users} did not link (${clean(line.device ?? "unnamed")}); it was refused`;
    default: {
      const never: never = line.kind;
      return never;
    }
  }
}
