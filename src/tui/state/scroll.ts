// Scroll arithmetic: where the top of the scrollback view is after a move (a page, a wheel step,
// the top, the unread ruler). It counts rows; how many rows one entry takes is the row layout's
// business, which lives in view/. The caller passes that measure in (`ScrollLayout`, carried on
// the scroll action's viewport), so state never imports view.
import { listGet } from "./chunked-list.js";
import type { Conversation, ScrollPosition, TuiState } from "./state.js";

/** What the scroll arithmetic needs of a conversation. */
export interface ScrollbackSource {
  readonly entries: Conversation["entries"];
  readonly readMarker?: number | undefined;
  readonly scroll?: ScrollPosition | undefined;
}

/** "unread": up to the unread ruler (Alt-J), which then heads the view. */
export type ScrollMove = "page-up" | "page-down" | "top" | "bottom" | "unread" | { readonly rows: number };

/** How many rows entry `index` takes on screen (its ruler and day separator included). */
export type RowCount = (index: number) => number;

/** The row measure of `conversation` drawn `width` cells wide for `state` (view/ provides it). */
export type ScrollLayout = (state: TuiState, conversation: Conversation, width: number) => RowCount;

const NICK_WIDTH_MIN = 4;
const NICK_WIDTH_MAX = 12;

/** The nick column width for the longest name, `longest` cells: within 4..12 cells. */
export function clampNickWidth(longest: number): number {
  return Math.min(NICK_WIDTH_MAX, Math.max(NICK_WIDTH_MIN, longest));
}

/**
 * The nick column width for a set of usernames. Usernames are ASCII (protocol/names.ts), one
 * cell per character, so no cell-width table is needed (view/ measures other text).
 */
export function usernameColumnWidth(names: readonly string[]): number {
  return clampNickWidth(names.reduce((w, n) => Math.max(w, [...n].length), 0));
}

/** Rows a page moves: the pane less one row kept for context and one for the marker. */
export function pageRows(height: number): number {
  return Math.max(1, height - 2);
}

/** A position with its entry and row inside the conversation (positions outlive a resize). */
export function clampPosition(conversation: ScrollbackSource, rowCount: RowCount, p: Pick<ScrollPosition, "top" | "skip">): { top: number; skip: number } {
  const top = Math.min(Math.max(0, p.top), conversation.entries.length - 1);
  const rows = rowCount(top);
  return { top, skip: Math.min(Math.max(0, p.skip), Math.max(0, rows - 1)) };
}

/** How many rows there are from a position to the end, counting no further than `limit`. */
function rowsFrom(conversation: ScrollbackSource, rowCount: RowCount, p: { top: number; skip: number }, limit: number): number {
  let count = -p.skip;
  for (let i = p.top; i < conversation.entries.length && count <= limit; i++) count += rowCount(i);
  return count;
}

/** Where the top of the view is while following the newest rows; undefined when all fits. */
function followTop(conversation: ScrollbackSource, rowCount: RowCount, height: number): { top: number; skip: number } | undefined {
  let count = 0;
  for (let i = conversation.entries.length - 1; i >= 0; i--) {
    count += rowCount(i);
    if (count >= height) return { top: i, skip: count - height };
  }
  return undefined;
}

/** The index of the entry the unread ruler stands above, if the conversation shows one. */
export function rulerIndex(conversation: ScrollbackSource): number | undefined {
  const marker = conversation.readMarker;
  if (marker === undefined) return undefined;
  // The unread part is at the end: walk back to the newest entry the user had seen.
  for (let i = conversation.entries.length - 1; i > 0; i--) {
    const prev = listGet(conversation.entries, i - 1);
    if (prev !== undefined && prev.seq <= marker) {
      const entry = listGet(conversation.entries, i);
      return entry !== undefined && entry.seq > marker ? i : undefined;
    }
  }
  return undefined;
}

/**
 * The scroll position after a move in a pane `height` rows high; undefined means following
 * the newest messages (reached by moving down to the end, or when everything fits anyway).
 */
export function moveScroll(conversation: ScrollbackSource, rowCount: RowCount, height: number, move: ScrollMove): ScrollPosition | undefined {
  const length = conversation.entries.length;
  if (height < 2 || length === 0 || move === "bottom") return undefined;
  const seen = conversation.scroll?.seen ?? length;
  let at: { top: number; skip: number } | undefined;
  if (move === "top") {
    at = { top: 0, skip: 0 };
  } else if (move === "unread") {
    const index = rulerIndex(conversation);
    // No ruler: the view stays where it is.
    if (index === undefined) return conversation.scroll;
    at = { top: index, skip: 0 };
  } else {
    const delta = move === "page-up" ? -pageRows(height) : move === "page-down" ? pageRows(height) : move.rows;
    // Where the view is as drawn: a stored position so near the end that the pane shows the
    // newest rows anyway (say, after the terminal grew) is the bottom.
    const stored = conversation.scroll === undefined ? undefined : clampPosition(conversation, rowCount, conversation.scroll);
    at = stored !== undefined && rowsFrom(conversation, rowCount, stored, height - 1) > height - 1 ? stored : followTop(conversation, rowCount, height);
    if (at === undefined) return undefined;
    let { top, skip } = at;
    if (delta < 0) {
      skip += delta;
      while (skip < 0 && top > 0) {
        top--;
        skip += rowCount(top);
      }
      skip = Math.max(0, skip);
    } else {
      skip += delta;
      while (top < length && skip >= rowCount(top)) {
        skip -= rowCount(top);
        top++;
      }
      if (top >= length) return undefined;
    }
    at = { top, skip };
  }
  // Near enough to the end that the pane shows it all: follow again.
  if (rowsFrom(conversation, rowCount, at, height) <= height) return undefined;
  return { top: at.top, skip: at.skip, seen };
}
