// Scrolling past the top reads older kept history from disk: when the conversation on screen is
// scrolled to its very first row, or is shorter than the pane (a conversation just reopened
// after /close, or one with little kept), the next older page is read from the session's kept
// history and put in front. Reading is synchronous (node:sqlite) and bounded by the page size.
import { useEffect } from "react";
import type { ChatMessage, ChatSession, MessageRef } from "../../client/types.js";
import type { Logger } from "../../protocol/log.js";
import { listGet } from "../state/chunked-list.js";
import type { Action } from "../state/reducer.js";
import type { Conversation } from "../state/state.js";

/** Messages read from disk per page. */
export const HISTORY_PAGE = 100;

/** The oldest message shown in a conversation, by sender and id (older pages are read before it). */
export function oldestMessage(c: Conversation): MessageRef | undefined {
  for (let i = 0; i < c.entries.length; i++) {
    const e = listGet(c.entries, i);
    if (e?.kind === "message") return { id: e.message.id, from: e.message.from };
  }
  return undefined;
}

/** True when the conversation should get its next older page now. */
export function wantsOlder(c: Conversation, paneRows: number): boolean {
  if (c.olderDone) return false;
  const atTop = c.scroll !== undefined && c.scroll.top === 0 && c.scroll.skip === 0;
  return atTop || c.entries.length < Math.max(1, paneRows);
}

export interface UseOlderHistoryOptions {
  readonly session: ChatSession;
  readonly conversation: Conversation;
  readonly paneRows: number;
  readonly dispatch: (action: Action) => void;
  readonly logger: Logger;
}

export function useOlderHistory({ session, conversation, paneRows, dispatch, logger }: UseOlderHistoryOptions): void {
  const wanted = wantsOlder(conversation, paneRows);
  const oldest = wanted ? oldestMessage(conversation) : undefined;
  // Effect dependencies compare by value: the ref's two strings, not a new object each render.
  const beforeId = oldest?.id;
  const beforeFrom = oldest?.from;
  const id = conversation.id;
  useEffect(() => {
    // A session that keeps no history (or a test double without it) has nothing to read.
    if (!wanted || session.olderHistory === undefined) return;
    let messages: readonly ChatMessage[] = [];
    try {
      const before = beforeId === undefined || beforeFrom === undefined ? undefined : { id: beforeId, from: beforeFrom };
      messages = session.olderHistory?.(id, before, HISTORY_PAGE) ?? [];
    } catch (e) {
      logger.warn("tui.history-page-failed", { reason: e instanceof Error ? e.message : String(e) });
    }
    dispatch({ type: "older-history", conversationId: id, messages, done: messages.length < HISTORY_PAGE });
  }, [session, id, wanted, beforeId, beforeFrom, dispatch, logger]);
}
