// Which rows of a conversation are on screen. Only entries that reach the window are laid out,
// so the cost follows the height of the pane, not the length of the conversation: following the
// newest messages walks back from the end; a scrolled view walks forward from its top entry.
// Laid-out entries are kept in a small cache (entries are immutable values), so a keystroke that
// re-renders the screen lays out nothing again.
import type { PeerView } from "../../client/types.js";
import { listGet } from "../state/chunked-list.js";
import { entryTime, type Conversation, type Entry, type ScrollPosition } from "../state/state.js";
import type { Row } from "./row.js";
import { dayRow, entryRows, hiddenByFilter, nickColumnWidth, rulerRow, type ScrollbackContext } from "./scrollback-rows.js";
import { localDay } from "./time.js";
import { presenceFilter, type UiSettings } from "../state/settings.js";

/** What the window needs of a conversation. */
export interface ScrollbackSource {
  readonly entries: Conversation["entries"];
  readonly readMarker?: number | undefined;
  readonly scroll?: ScrollPosition | undefined;
}

export interface WindowContext extends ScrollbackContext {
  /** Day number of a time, for day separators (default: the local calendar day). */
  readonly dayOf?: (ms: number) => number;
}

/**
 * The layout context for a conversation drawn `width` cells wide: its own nick column width,
 * presence filter and my highlight words. Without a conversation, the nick column fits every
 * known user.
 */
export function scrollbackContext(
  state: { readonly me: string; readonly peers?: readonly PeerView[]; readonly settings?: UiSettings },
  width: number,
  conversation?: Pick<Conversation, "id" | "nickWidth">,
): WindowContext {
  const nickWidth = conversation?.nickWidth ?? nickColumnWidth([state.me, ...(state.peers ?? []).map((p) => p.username)]);
  const presence = conversation !== undefined && state.settings !== undefined ? presenceFilter(state.settings, conversation.id) : "all";
  const highlights = state.settings?.highlights ?? [];
  return {
    width: Math.max(1, width), me: state.me, nickWidth,
    ...(presence === "all" ? {} : { presence }),
    ...(highlights.length === 0 ? {} : { highlights }),
  };
}

// --- laying out one entry, with what goes before it ------------------------------------------

interface Cached {
  readonly ctx: WindowContext;
  readonly day: boolean;
  readonly ruler: boolean;
  readonly rows: readonly Row[];
}

const CACHE_LIMIT = 4096;
/** Least recently used first (a Map keeps insertion order; a hit is moved to the end). */
const cache = new Map<Entry, Cached>();

function sameContext(a: WindowContext, b: WindowContext): boolean {
  return a === b || (a.width === b.width && a.me === b.me && a.nickWidth === b.nickWidth
    && a.formatTime === b.formatTime && a.formatDay === b.formatDay && a.dayOf === b.dayOf
    && a.presence === b.presence && a.highlights === b.highlights);
}

/**
 * The rows of entry `index`: the unread ruler when the user left the conversation just before
 * it, a day separator when it starts a day (or the conversation), then the entry itself.
 */
export function rowsAt(conversation: ScrollbackSource, index: number, ctx: WindowContext): readonly Row[] {
  const entry = listGet(conversation.entries, index);
  if (entry === undefined) return [];
  const prev = listGet(conversation.entries, index - 1);
  const dayOf = ctx.dayOf ?? localDay;
  const day = prev === undefined || dayOf(entryTime(prev)) !== dayOf(entryTime(entry));
  const marker = conversation.readMarker;
  const ruler = marker !== undefined && prev !== undefined && prev.seq <= marker && entry.seq > marker;
  const hit = cache.get(entry);
  if (hit !== undefined && hit.day === day && hit.ruler === ruler && sameContext(hit.ctx, ctx)) {
    cache.delete(entry);
    cache.set(entry, hit);
    return hit.rows;
  }
  const rows: Row[] = [];
  if (ruler) rows.push(rulerRow(`${entry.seq}.ruler`, ctx));
  // A presence line the filter hides takes no rows (its day separator goes with it; the ruler stays).
  if (!hiddenByFilter(entry, ctx)) {
    if (day) rows.push(dayRow(`${entry.seq}.day`, entryTime(entry), ctx));
    rows.push(...entryRows(entry, ctx));
  }
  cache.delete(entry);
  cache.set(entry, { ctx, day, ruler, rows });
  if (cache.size > CACHE_LIMIT) {
    const oldest = cache.keys().next();
    if (!oldest.done) cache.delete(oldest.value);
  }
  return rows;
}

// --- the window --------------------------------------------------------------------------------

export interface ScrollbackWindow {
  readonly rows: readonly Row[];
  /** Set while scrolled up: entries below the view, and how many of them arrived since. */
  readonly more?: { readonly below: number; readonly fresh: number };
}

/** The newest `height` rows. */
function tail(conversation: ScrollbackSource, ctx: WindowContext, height: number): Row[] {
  const chunks: (readonly Row[])[] = [];
  let count = 0;
  for (let i = conversation.entries.length - 1; i >= 0 && count < height; i--) {
    const rows = rowsAt(conversation, i, ctx);
    chunks.push(rows);
    count += rows.length;
  }
  const all = chunks.reverse().flat();
  return all.slice(Math.max(0, all.length - height));
}

/** A position with its entry and row inside the conversation (positions outlive a resize). */
function clampPosition(conversation: ScrollbackSource, ctx: WindowContext, p: Pick<ScrollPosition, "top" | "skip">): { top: number; skip: number } {
  const top = Math.min(Math.max(0, p.top), conversation.entries.length - 1);
  const rows = rowsAt(conversation, top, ctx).length;
  return { top, skip: Math.min(Math.max(0, p.skip), Math.max(0, rows - 1)) };
}

/** How many rows there are from a position to the end, counting no further than `limit`. */
function rowsFrom(conversation: ScrollbackSource, ctx: WindowContext, p: { top: number; skip: number }, limit: number): number {
  let count = -p.skip;
  for (let i = p.top; i < conversation.entries.length && count <= limit; i++) count += rowsAt(conversation, i, ctx).length;
  return count;
}

/**
 * The rows to draw in a pane `height` rows high. While scrolled up, the last row of the pane is
 * left for the "more below" marker (`more` says what it counts).
 */
export function scrollbackWindow(conversation: ScrollbackSource, ctx: WindowContext, height: number): ScrollbackWindow {
  if (height <= 0 || conversation.entries.length === 0) return { rows: [] };
  const scroll = conversation.scroll;
  if (scroll === undefined || height < 2) return { rows: tail(conversation, ctx, height) };
  const { top, skip } = clampPosition(conversation, ctx, scroll);
  const content = height - 1;
  const length = conversation.entries.length;
  const rows: Row[] = [];
  let lastWhole = top - 1;
  for (let i = top; i < length && rows.length < content; i++) {
    const all = rowsAt(conversation, i, ctx);
    const part = i === top ? all.slice(skip) : all;
    const room = content - rows.length;
    for (let r = 0; r < part.length && r < room; r++) rows.push(part[r] as Row);
    if (part.length <= room) lastWhole = i;
  }
  // Everything down to the newest entry fits: that is simply the bottom.
  if (lastWhole === length - 1) return { rows: tail(conversation, ctx, height) };
  const below = length - 1 - lastWhole;
  return { rows, more: { below, fresh: Math.min(below, Math.max(0, length - scroll.seen)) } };
}

// --- moving ------------------------------------------------------------------------------------

/** "unread": up to the unread ruler (Alt-J), which then heads the view. */
export type ScrollMove = "page-up" | "page-down" | "top" | "bottom" | "unread" | { readonly rows: number };

/** Rows a page moves: the pane less one row kept for context and one for the marker. */
export function pageRows(height: number): number {
  return Math.max(1, height - 2);
}

/** Where the top of the view is while following the newest rows; undefined when all fits. */
function followTop(conversation: ScrollbackSource, ctx: WindowContext, height: number): { top: number; skip: number } | undefined {
  let count = 0;
  for (let i = conversation.entries.length - 1; i >= 0; i--) {
    count += rowsAt(conversation, i, ctx).length;
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
export function scrollPosition(conversation: ScrollbackSource, ctx: WindowContext, height: number, move: ScrollMove): ScrollPosition | undefined {
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
    const stored = conversation.scroll === undefined ? undefined : clampPosition(conversation, ctx, conversation.scroll);
    at = stored !== undefined && rowsFrom(conversation, ctx, stored, height - 1) > height - 1 ? stored : followTop(conversation, ctx, height);
    if (at === undefined) return undefined;
    let { top, skip } = at;
    if (delta < 0) {
      skip += delta;
      while (skip < 0 && top > 0) {
        top--;
        skip += rowsAt(conversation, top, ctx).length;
      }
      skip = Math.max(0, skip);
    } else {
      skip += delta;
      while (top < length && skip >= rowsAt(conversation, top, ctx).length) {
        skip -= rowsAt(conversation, top, ctx).length;
        top++;
      }
      if (top >= length) return undefined;
    }
    at = { top, skip };
  }
  // Near enough to the end that the pane shows it all: follow again.
  if (rowsFrom(conversation, ctx, at, height) <= height) return undefined;
  return { top: at.top, skip: at.skip, seen };
}
