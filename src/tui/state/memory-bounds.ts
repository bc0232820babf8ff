// What the conversations keep in memory, and the one function that holds a conversation to it
// (`bounded`, called by every change that adds entries: conversations-reducer.ts, and
// open-conversations.ts for its line about a conversation it closed). Pure, like the reducer.
import { LIST_CHUNK, listDropChunks } from "./chunked-list.js";
import type { Conversation, Entry } from "./state.js";

// Everything here grows from what peers send, so each part is bounded: a lobby flooder at the
// relay's rate (20 messages/s of 64 KiB, PROTOCOL.md §13.3) must not grow every reader's chat-tui
// without end. The state db keeps the newest 500 of each conversation (§10.4); the screen keeps
// more, for this session's scrolling back, and drops its oldest lines beyond these bounds.

/**
 * Entries (messages and every other line) kept in memory per conversation. 4,096: weechat's
 * default for a buffer, eight times what the state db keeps, hours of a busy room; at ~100
 * characters a line, under half a megabyte. Dropped a chunk of the list (256) at a time, so a
 * conversation holds between 3,841 and 4,096 entries once it reached the bound.
 */
export const ENTRIES_KEPT = 4_096;

/**
 * Characters of text (messages and notices) kept in memory per conversation: 8 Mi UTF-16 code
 * units (8 to 16 MiB as V8 strings). Ordinary lines never reach it before ENTRIES_KEPT (4,096
 * lines of 2 KiB would). Checked each time a chunk of the list (256 entries) begins, and the
 * newest 256 entries always stay (a screenful and more, whatever their size): so a flood of the
 * largest messages (64 KiB, the relay's default) keeps 256 to 511 of them, at most 32 Mi
 * characters, instead of 4,096 (256 Mi).
 */
export const TEXT_KEPT = 8 * 1024 * 1024;

/**
 * Conversations open at once. Each stranger's DM and each room someone adds me to opens one, so
 * their number follows what peers do; beyond it, the quietest one (the one whose newest line is
 * oldest; never the lobby nor the one on screen) is closed as /close would: its history stays
 * kept, and its next message (or the user) opens it again. 256 is far more than anyone follows.
 */
export const OPEN_CONVERSATIONS_KEPT = 256;

/** Characters of text an entry holds (what TEXT_KEPT counts). */
function textSize(e: Entry): number {
  return e.kind === "message" ? e.message.text.length : e.kind === "notice" ? e.text.length : 0;
}

function chunkText(chunk: readonly Entry[]): number {
  let n = 0;
  for (const e of chunk) n += textSize(e);
  return n;
}

/**
 * The conversation within ENTRIES_KEPT and TEXT_KEPT: its oldest chunks of entries dropped if
 * needed. What indexes entries follows: a scrolled view stays on the same entries (on the oldest
 * kept when its own were dropped) and counts what arrived since as before; the unread ruler is a
 * seq, so it stays after the same entry (and goes with it when that entry is dropped: everything
 * left is unread); and no older page is read from disk any more (what the screen dropped is older
 * than the kept history's start, and reading it again would bring back lines in the wrong place).
 * `always`: check the text now (after a page was put in front), not only when a chunk begins.
 */
export function bounded(c: Conversation, always = false): Conversation {
  const { entries } = c;
  const chunks = entries.chunks;
  let drop = entries.length > ENTRIES_KEPT ? Math.ceil((entries.length - ENTRIES_KEPT) / LIST_CHUNK) : 0;
  if (always || drop > 0 || entries.length % LIST_CHUNK === 1) {
    let text = 0;
    for (let k = drop; k < chunks.length; k++) text += chunkText(chunks[k]!);
    // The newest LIST_CHUNK entries always stay, whatever their text.
    while (text > TEXT_KEPT && entries.length - (drop + 1) * LIST_CHUNK >= LIST_CHUNK) text -= chunkText(chunks[drop++]!);
  }
  if (drop === 0) return c;
  const kept = listDropChunks(entries, drop);
  const dropped = entries.length - kept.length;
  const { scroll: position, ...rest } = c;
  const scroll = position === undefined
    ? undefined
    : position.top >= dropped
      ? { top: position.top - dropped, skip: position.skip, seen: Math.max(0, position.seen - dropped) }
      : { top: 0, skip: 0, seen: Math.max(0, position.seen - dropped) };
  return { ...rest, entries: kept, olderDone: true, ...(scroll === undefined ? {} : { scroll }) };
}
