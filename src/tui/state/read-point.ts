// What the user has read, for their other devices (PROTOCOL.md §11.3): the newest message from
// someone else in the conversation on screen, while the view follows the newest lines (scrolled
// up, the newest are not read yet). The lobby is never told (the session sends no marker there
// either). Pure: the session hook hands it to ChatSession.markRead when it changes.
import { listGet } from "./chunked-list.js";
import { LOBBY_ID } from "./conversations.js";
import type { TuiState } from "./state.js";

/** How far back the newest message from someone else is looked for. */
const LOOK_BACK = 2_000;

export interface ReadPoint {
  readonly conversationId: string;
  readonly from: string;
  readonly id: string;
}

export function readPoint(state: TuiState): ReadPoint | undefined {
  const id = state.current;
  const c = state.conversations[id];
  if (id === LOBBY_ID || c === undefined || c.scroll !== undefined) return undefined;
  for (let i = c.entries.length - 1, looked = 0; i >= 0 && looked < LOOK_BACK; i--, looked++) {
    const e = listGet(c.entries, i);
    if (e?.kind === "message" && !e.message.own) return { conversationId: id, from: e.message.from, id: e.message.id };
  }
  return undefined;
}
