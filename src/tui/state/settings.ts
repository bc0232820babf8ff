// The user's choices that outlive a run: how loud each conversation is (/notify, /mute), which
// join/quit lines it shows (/filter), extra highlight words (/highlight), and which
// conversations were closed (a restart does not reopen them). Pure: parsing and defaults only;
// the session keeps the JSON text in its state database (useSettings writes it on change).
import { parseConversationId } from "../../protocol/names.js";

/** all: every message counts as unread; mentions: only DMs, mentions and highlight words; none: nothing (muted). */
export type NotifyLevel = "all" | "mentions" | "none";
/**
 * Which presence lines (came online / went offline, joined / left) a conversation shows: all;
 * smart (weechat's smart filter: only for people who spoke there in the last SMART_WINDOW_MS);
 * none.
 */
export type PresenceFilter = "all" | "smart" | "none";

export const NOTIFY_LEVELS: readonly NotifyLevel[] = ["all", "mentions", "none"];
export const PRESENCE_FILTERS: readonly PresenceFilter[] = ["all", "smart", "none"];

/** The smart filter shows presence lines of people who spoke within this time (weechat's default delay). */
export const SMART_WINDOW_MS = 5 * 60_000;
/** Highlight words kept at most, and their length. */
export const MAX_HIGHLIGHTS = 20;
export const MAX_HIGHLIGHT_LENGTH = 40;
/** Closed conversations remembered at most (the oldest are forgotten first). */
const MAX_CLOSED = 500;

export interface UiSettings {
  /** By conversation id; absent: "all". */
  readonly notify: Readonly<Record<string, NotifyLevel>>;
  /** By conversation id; absent: "all". */
  readonly filter: Readonly<Record<string, PresenceFilter>>;
  /** Lower-case words that count as mentions of me. */
  readonly highlights: readonly string[];
  /** Conversation ids closed with /close (reopened by a new message or by the user). */
  readonly closed: readonly string[];
}

export const DEFAULT_SETTINGS: UiSettings = { notify: {}, filter: {}, highlights: [], closed: [] };

/** The name the settings are kept under in the session's state database. */
export const SETTINGS_NAME = "tui";

export function notifyLevel(settings: UiSettings, conversationId: string): NotifyLevel {
  return settings.notify[conversationId] ?? "all";
}

export function presenceFilter(settings: UiSettings, conversationId: string): PresenceFilter {
  return settings.filter[conversationId] ?? "all";
}

/** A highlight word: one word (no spaces), 1..40 characters, folded to lower case; else the reason. */
export function checkHighlightWord(raw: string): { ok: true; word: string } | { ok: false; reason: string } {
  const word = raw.trim().toLowerCase();
  if (word === "") return { ok: false, reason: "a highlight word cannot be empty" };
  if (/\s/.test(word)) return { ok: false, reason: "a highlight is one word (no spaces)" };
  if ([...word].length > MAX_HIGHLIGHT_LENGTH) return { ok: false, reason: `a highlight word has at most ${MAX_HIGHLIGHT_LENGTH} characters` };
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(word)) return { ok: false, reason: "a highlight word cannot contain control characters" };
  return { ok: true, word };
}

function record<T extends string>(raw: unknown, allowed: readonly T[]): Record<string, T> {
  const out: Record<string, T> = {};
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return out;
  for (const [id, value] of Object.entries(raw)) {
    if (parseConversationId(id) !== undefined && (allowed as readonly unknown[]).includes(value)) out[id] = value as T;
  }
  return out;
}

/**
 * Reads kept settings. Anything malformed (another version, a damaged file) is dropped item by
 * item: a bad entry never stops the chat, it only falls back to the default.
 */
export function parseSettings(text: string | undefined): UiSettings {
  if (text === undefined) return DEFAULT_SETTINGS;
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return DEFAULT_SETTINGS;
  }
  if (typeof raw !== "object" || raw === null) return DEFAULT_SETTINGS;
  const o = raw as Record<string, unknown>;
  const words = Array.isArray(o["highlights"]) ? o["highlights"] : [];
  const highlights = [...new Set(words.flatMap((w) => {
    if (typeof w !== "string") return [];
    const c = checkHighlightWord(w);
    return c.ok ? [c.word] : [];
  }))].slice(0, MAX_HIGHLIGHTS);
  const closedRaw = Array.isArray(o["closed"]) ? o["closed"] : [];
  const closed = [...new Set(closedRaw.filter((id): id is string => typeof id === "string" && parseConversationId(id) !== undefined && id !== "lobby"))].slice(-MAX_CLOSED);
  return { notify: record(o["notify"], NOTIFY_LEVELS), filter: record(o["filter"], PRESENCE_FILTERS), highlights, closed };
}

export function serializeSettings(settings: UiSettings): string {
  return JSON.stringify(settings);
}

function setKey<T>(map: Readonly<Record<string, T>>, key: string, value: T | undefined): Readonly<Record<string, T>> {
  if (value === undefined) {
    if (!(key in map)) return map;
    const { [key]: _gone, ...rest } = map;
    return rest;
  }
  return map[key] === value ? map : { ...map, [key]: value };
}

export function withNotify(s: UiSettings, id: string, level: NotifyLevel): UiSettings {
  const notify = setKey(s.notify, id, level === "all" ? undefined : level);
  return notify === s.notify ? s : { ...s, notify };
}

export function withFilter(s: UiSettings, id: string, filter: PresenceFilter): UiSettings {
  const next = setKey(s.filter, id, filter === "all" ? undefined : filter);
  return next === s.filter ? s : { ...s, filter: next };
}

export function withClosed(s: UiSettings, id: string, closed: boolean): UiSettings {
  const has = s.closed.includes(id);
  if (has === closed) return s;
  return { ...s, closed: closed ? [...s.closed, id].slice(-MAX_CLOSED) : s.closed.filter((x) => x !== id) };
}
