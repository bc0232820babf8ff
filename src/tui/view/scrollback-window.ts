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
import { clampPosition, moveScroll, type ScrollbackSource, type ScrollLayout, type ScrollMove } from "../state/scroll.js";

export { pageRows, rulerIndex, type ScrollbackSource, type ScrollMove } from "../state/scroll.js";

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

/**
 * The rows to draw in a pane `height` rows high. While scrolled up, the last row of the pane is
 * left for the "more below" marker (`more` says what it counts).
 */
export function scrollbackWindow(conversation: ScrollbackSource, ctx: WindowContext, height: number): ScrollbackWindow {
  if (height <= 0 || conversation.entries.length === 0) return { rows: [] };
  const scroll = conversation.scroll;
  if (scroll === undefined || height < 2) return { rows: tail(conversation, ctx, height) };
  const { top, skip } = clampPosition(conversation, (index) => rowsAt(conversation, index, ctx).length, scroll);
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
// The arithmetic is state/scroll.ts; here it gets this layout's row measure.

/** The row layout's measure, for the reducer's scroll actions (it rides on their viewport). */
export const scrollLayout: ScrollLayout = (state, conversation, width) => {
  const ctx = scrollbackContext(state, width, conversation);
  return (index) => rowsAt(conversation, index, ctx).length;
};

/**
 * The scroll position after a move in a pane `height` rows high, laid out with `ctx`;
 * undefined means following the newest messages.
 */
export function scrollPosition(conversation: ScrollbackSource, ctx: WindowContext, height: number, move: ScrollMove): ScrollPosition | undefined {
  return moveScroll(conversation, (index) => rowsAt(conversation, index, ctx).length, height, move);
}
