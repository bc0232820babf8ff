// What the UI needs to know about a conversation id: its kind, the short title shown in the
// prompt and the conversation bar ("lobby", "#ops", "@bob"), and for a DM the other person.
import { LOBBY, dmPeer, parseConversationId } from "../../protocol/names.js";

export type ConversationKind = "lobby" | "room" | "dm";

export interface ConversationRef {
  readonly id: string;
  readonly kind: ConversationKind;
  /** "lobby", "#ops" or "@bob". */
  readonly title: string;
  /** DMs: the other member. */
  readonly peer?: string;
}

export const LOBBY_ID = LOBBY;

/** Describes a conversation id from my point of view; undefined for an id that is not valid. */
export function describeConversation(id: string, me: string): ConversationRef | undefined {
  const parsed = parseConversationId(id);
  if (parsed === undefined) return undefined;
  switch (parsed.kind) {
    case "lobby":
      return { id, kind: "lobby", title: LOBBY };
    case "room":
      return { id, kind: "room", title: parsed.room };
    case "dm": {
      const peer = dmPeer(parsed, me);
      // A DM between two other people can only come from a confused session: name both.
      return peer === undefined
        ? { id, kind: "dm", title: `@${parsed.members[0]}+${parsed.members[1]}` }
        : { id, kind: "dm", title: `@${peer}`, peer };
    }
  }
}

/** The input prompt for a conversation: "[lobby] > ", "[@bob] > ", "[#ops] > ". */
export function promptFor(title: string): string {
  return `[${title}] > `;
}
