// Scrolling and unread tracking: which rows are on screen, the "more below" marker, new
// messages never moving a scrolled view, the unread ruler, day separators, unread and mention
// counts, and the keys that jump between conversations.
import { describe, expect, test } from "vitest";
import type { ChatMessage, PeerView, SessionEvent } from "../../src/client/types.js";
import { listFrom, listLast } from "../../src/tui/state/chunked-list.js";
import { createInitialState, reducer, type Action } from "../../src/tui/state/reducer.js";
import type { Entry, TuiState } from "../../src/tui/state/state.js";
import { rowText } from "../../src/tui/view/row.js";
import { pageRows, rowsAt, scrollbackContext, scrollbackWindow, scrollLayout, scrollPosition, type WindowContext } from "../../src/tui/view/scrollback-window.js";

const T0 = 1_700_000_000_000;
const DAY = 86_400_000;
const peer = (username: string): PeerView => ({ username, online: true, trust: "unverified", you: false });

function start(): TuiState {
  return createInitialState({
    me: "alice",
    serverLabel: "127.0.0.1:50051",
    snapshot: { connection: { state: "connected", sinceMs: T0 }, peers: [peer("bob")], rooms: [{ room: "#ops", members: ["alice", "bob"] }] },
    atMs: T0,
  });
}

let nextId = 1;
function msg(conversationId: string, text: string, extra: Partial<ChatMessage> = {}): ChatMessage {
  return { id: (nextId++).toString(16).padStart(32, "0"), conversationId, from: "bob", kind: "text", text, sentAtMs: T0, receivedAtMs: T0, own: false, ...extra };
}
const ev = (event: SessionEvent): Action => ({ type: "session", event, atMs: T0 });
const incoming = (conversationId: string, text: string, extra: Partial<ChatMessage> = {}): Action => ev({ type: "message", message: msg(conversationId, text, extra) });
const run = (state: TuiState, ...actions: Action[]): TuiState => actions.reduce(reducer, state);
const numbered = (n: number, from = 0, id = "lobby"): Action[] => Array.from({ length: n }, (_, i) => incoming(id, `m${String(from + i).padStart(3, "0")}`));

const WIDTH = 40;
const HEIGHT = 10;
const viewport = { width: WIDTH, height: HEIGHT, layout: scrollLayout };
const scroll = (move: Extract<Action, { type: "scroll" }>["move"]): Action => ({ type: "scroll", move, viewport });

/** The message texts on screen (other rows as their text), and the marker. */
function screen(s: TuiState, id = s.current, height = HEIGHT, width = WIDTH) {
  const c = s.conversations[id];
  if (!c) throw new Error(`no conversation ${id}`);
  const w = scrollbackWindow(c, scrollbackContext(s, width), height);
  const rows = w.rows.map((r) => {
    const t = rowText(r);
    return /\bm\d{3}\b/.exec(t)?.[0] ?? t.trim();
  });
  return { rows, more: w.more };
}

describe("the window", () => {
  test("follows the newest rows; only the entries that reach it are laid out", () => {
    const s = run(start(), ...numbered(100));
    const { rows, more } = screen(s);
    expect(rows).toEqual(Array.from({ length: 10 }, (_, i) => `m0${90 + i}`));
    expect(more).toBeUndefined();
  });

  test("a conversation of 100,000 entries costs what the window shows", () => {
    const base = msg("lobby", "hello");
    let reads = 0;
    const items: Entry[] = Array.from({ length: 100_000 }, (_, i) => ({ kind: "message", seq: i + 1, message: base }));
    const watched = new Proxy(items, {
      get(target, prop, receiver) {
        if (typeof prop === "string" && /^\d+$/.test(prop)) reads++;
        return Reflect.get(target, prop, receiver);
      },
    });
    // Chunks are plain arrays: watch every one.
    const list = listFrom(watched);
    const chunks = list.chunks.map((c) => new Proxy(c as Entry[], {
      get(target, prop, receiver) {
        if (typeof prop === "string" && /^\d+$/.test(prop)) reads++;
        return Reflect.get(target, prop, receiver);
      },
    }));
    reads = 0;
    const ctx: WindowContext = { width: 60, me: "alice", nickWidth: 5, formatTime: () => "12:34" };
    const conversation = { entries: { length: list.length, chunks } };
    expect(scrollbackWindow(conversation, ctx, 40).rows).toHaveLength(40);
    const atTop = scrollPosition(conversation, ctx, 40, "top");
    expect(atTop).toMatchObject({ top: 0, skip: 0 });
    expect(scrollbackWindow({ ...conversation, scroll: atTop }, ctx, 40).more).toEqual({ below: 100_000 - 39 + 1, fresh: 0 });
    // Two windows and a jump to the top: a few hundred entry reads, not 100,000.
    expect(reads).toBeLessThan(500);
  });

  test("day separators start each day; the unread ruler sits where the user left", () => {
    const entries: Entry[] = [
      { kind: "message", seq: 1, message: msg("lobby", "old", { sentAtMs: T0 }) },
      { kind: "message", seq: 2, message: msg("lobby", "same day", { sentAtMs: T0 + 1000 }) },
      { kind: "message", seq: 3, message: msg("lobby", "next day", { sentAtMs: T0 + DAY }) },
      { kind: "message", seq: 4, message: msg("lobby", "after", { sentAtMs: T0 + DAY + 1 }) },
    ];
    const ctx: WindowContext = { width: 40, me: "alice", nickWidth: 5, formatTime: () => "12:34", formatDay: (ms) => `day ${Math.floor(ms / DAY)}`, dayOf: (ms) => Math.floor(ms / DAY) };
    const c = { entries: listFrom(entries), readMarker: 3 };
    const text = scrollbackWindow(c, ctx, 20).rows.map(rowText);
    const d0 = Math.floor(T0 / DAY);
    expect(text).toEqual([
      `── day ${d0} ${"─".repeat(40 - `── day ${d0} `.length)}`,
      "12:34 bob    old",
      "12:34 bob    same day",
      `── day ${d0 + 1} ${"─".repeat(40 - `── day ${d0 + 1} `.length)}`,
      "12:34 bob    next day",
      `── unread ${"─".repeat(30)}`,
      "12:34 bob    after",
    ]);
    // The ruler's own row is part of the entry after it.
    expect(rowsAt(c, 3, ctx).map(rowText)[0]).toMatch(/^── unread/);
    // No ruler above the very first entry: there is nothing old above it.
    expect(scrollbackWindow({ entries: listFrom(entries), readMarker: 0 }, ctx, 20).rows.map(rowText).some((r) => r.includes("unread"))).toBe(false);
  });

  test("the ruler does not stand above only the answers to my own commands", () => {
    const open = (id: string): Action => ({ type: "open-conversation", id, focus: true });
    const notice = (text: string): Action => ({ type: "notice", level: "info", text, atMs: T0, conversationId: "lobby" });
    const back = run(start(), ...numbered(3), open("#ops"), open("lobby"), notice("you left #ops"));
    expect(back.conversations["lobby"]?.readMarker).toBe(listLast(back.conversations["lobby"]!.entries)?.seq);
    expect(screen(back).rows.some((r) => r.startsWith("── unread"))).toBe(false);
    // News first, then a notice: the ruler stays above the news.
    const news = run(start(), ...numbered(3), open("#ops"), incoming("lobby", "news"), open("lobby"), notice("ok"));
    const rows = screen(news).rows;
    expect(rows[rows.findIndex((r) => r.startsWith("── unread")) + 1]).toContain("news");
  });

  test("writing in a conversation moves the ruler below my own message", () => {
    const open = (id: string): Action => ({ type: "open-conversation", id, focus: true });
    const left = run(start(), ...numbered(3), open("#ops"), open("lobby"));
    expect(left.conversations["lobby"]?.readMarker).toBe(listLast(left.conversations["lobby"]!.entries)?.seq);
    const s = run(left, incoming("lobby", "my reply", { from: "alice", own: true, state: "pending" }));
    const mine = listLast(s.conversations["lobby"]!.entries)!;
    expect(s.conversations["lobby"]?.readMarker).toBe(mine.seq);
    expect(screen(s).rows.some((r) => r.includes("unread"))).toBe(false);
    // What others write after I left again is below the ruler.
    const later = run(s, open("#ops"), incoming("lobby", "news"), open("lobby"));
    const rows = screen(later).rows;
    const ruler = rows.findIndex((r) => r.startsWith("── unread"));
    expect(rows[ruler - 1]).toContain("my reply");
    expect(rows[ruler + 1]).toContain("news");
  });
});

describe("scrolling", () => {
  test("PgUp moves a page up and leaves the last row for the marker", () => {
    const s = run(start(), ...numbered(100), scroll("page-up"));
    expect(pageRows(HEIGHT)).toBe(8);
    const { rows, more } = screen(s);
    // Following showed m090..m099; a page up the top is 8 rows higher; 9 rows + the marker.
    expect(rows).toEqual(Array.from({ length: 9 }, (_, i) => `m0${82 + i}`));
    expect(more).toEqual({ below: 9, fresh: 0 });
  });

  test("new messages never move a scrolled view; the marker counts them", () => {
    let s = run(start(), ...numbered(100), scroll("page-up"));
    const before = screen(s).rows;
    s = run(s, ...numbered(5, 100));
    expect(screen(s).rows).toEqual(before);
    expect(screen(s).more).toEqual({ below: 14, fresh: 5 });
    // Even a burst folded into one batch.
    s = run(s, { type: "session-batch", events: Array.from({ length: 50 }, (_, i) => ({ event: { type: "message", message: msg("lobby", `b${i}`) }, atMs: T0 }) as const) });
    expect(screen(s).rows).toEqual(before);
    expect(screen(s).more).toEqual({ below: 64, fresh: 55 });
  });

  test("PgDn comes back down and follows again at the end; End-style keys jump", () => {
    let s = run(start(), ...numbered(100), scroll("page-up"), scroll("page-up"));
    s = run(s, scroll("page-down"));
    expect(screen(s).rows[0]).toBe("m082");
    s = run(s, scroll("page-down"));
    expect(s.conversations["lobby"]?.scroll).toBeUndefined();
    expect(screen(s).more).toBeUndefined();
    s = run(s, scroll("top"));
    expect(screen(s).rows.slice(0, 3)).toEqual([expect.stringMatching(/^── /), "m000", "m001"]);
    expect(screen(s).more).toEqual({ below: 92, fresh: 0 });
    expect(run(s, scroll("page-up"))).toBe(s); // nothing above the top
    s = run(s, scroll("bottom"));
    expect(s.conversations["lobby"]?.scroll).toBeUndefined();
  });

  test("the wheel moves by rows; everything fitting means there is nothing to scroll", () => {
    let s = run(start(), ...numbered(100), scroll({ rows: -3 }));
    expect(screen(s).rows[0]).toBe("m087");
    s = run(s, scroll({ rows: 1 }));
    expect(screen(s).rows[0]).toBe("m088");
    const short = run(start(), ...numbered(5));
    expect(run(short, scroll("page-up"))).toBe(short);
    expect(run(short, scroll("top"))).toBe(short);
  });

  test("sending a message brings the view back down", () => {
    let s = run(start(), ...numbered(100), scroll("page-up"));
    s = run(s, incoming("lobby", "mine", { from: "alice", own: true, state: "pending" }));
    expect(s.conversations["lobby"]?.scroll).toBeUndefined();
    expect(screen(s).rows.at(-1)).toMatch(/alice +mine …$/);
  });

  test("carrying out a command brings the view down too, where its answer shows", () => {
    const s = run(start(), ...numbered(100), scroll("page-up"), { type: "input-submitted", conversationId: "lobby", text: "/users" });
    expect(s.conversations["lobby"]?.scroll).toBeUndefined();
  });

  test("each conversation keeps its own position", () => {
    let s = run(start(), ...numbered(100), ...numbered(50, 0, "#ops"), scroll("page-up"));
    const lobby = screen(s).rows;
    s = run(s, { type: "open-conversation", id: "#ops", focus: true });
    expect(screen(s).more).toBeUndefined();
    s = run(s, { type: "cycle-conversation", delta: -1 });
    expect(screen(s).rows).toEqual(lobby);
  });

  test("after a resize the position still makes a valid view", () => {
    const s = run(start(), ...numbered(100), incoming("lobby", "a long message ".repeat(20)), scroll("page-up"), scroll("page-up"));
    for (const [width, height] of [[20, 5], [120, 40], [40, 3], [40, 2]] as const) {
      const { rows } = screen(s, "lobby", height, width);
      expect(rows.length).toBeLessThanOrEqual(height);
    }
  });

  test("a position the pane has outgrown (the terminal grew) moves from what is drawn", () => {
    const s = run(start(), ...numbered(100), scroll("page-up"));
    // Drawn 60 rows high, the view reaches the newest rows: it is drawn as the bottom...
    const tall = { width: WIDTH, height: 60, layout: scrollLayout };
    const c = s.conversations["lobby"]!;
    expect(scrollbackWindow(c, scrollbackContext(s, WIDTH), 60).more).toBeUndefined();
    // ...so PgUp moves a page (58 rows) up from the bottom (m040..m099 drawn), which reaches
    // the very start; from the stale position (top m082) it would have shown m024 onwards.
    const up = run(s, { type: "scroll", move: "page-up", viewport: tall });
    const { rows, more } = screen(up, "lobby", 60);
    expect(rows[0]).toMatch(/^── /);
    expect(rows[1]).toBe("m000");
    expect(rows.at(-1)).toBe("m057");
    expect(more).toEqual({ below: 42, fresh: 0 });
  });

  test("/clear empties the conversation and its position", () => {
    const s = run(start(), ...numbered(100), scroll("page-up"), { type: "clear-conversation", id: "lobby" });
    expect(s.conversations["lobby"]).toMatchObject({ entries: { length: 0 }, unread: 0 });
    expect(s.conversations["lobby"]?.scroll).toBeUndefined();
    expect(screen(s).rows).toEqual([]);
  });
});

describe("unread tracking", () => {
  test("unread and mention counts for conversations not on screen; cleared on arrival", () => {
    const s = run(start(), incoming("#ops", "deploying"), incoming("#ops", "alice: look"), incoming("dm:alice:bob", "psst"));
    expect(s.conversations["#ops"]).toMatchObject({ unread: 2, highlights: 1 });
    expect(s.conversations["dm:alice:bob"]).toMatchObject({ unread: 1, highlights: 1 });
    expect(s.conversations["lobby"]).toMatchObject({ unread: 0, highlights: 0 });
    const there = run(s, { type: "open-conversation", id: "#ops", focus: true });
    expect(there.conversations["#ops"]).toMatchObject({ unread: 0, highlights: 0 });
  });

  test("the ruler goes after what was there when the user left", () => {
    let s = run(start(), ...numbered(3), { type: "open-conversation", id: "#ops", focus: true }, ...numbered(2, 3));
    const marker = s.conversations["lobby"]?.readMarker;
    expect(marker).toBe(3);
    s = run(s, { type: "cycle-conversation", delta: -1 });
    expect(screen(s).rows).toEqual([expect.stringMatching(/^── /), "m000", "m001", "m002", expect.stringMatching(/^── unread ─+$/), "m003", "m004"]);
    // Leaving again moves it to the end: nothing new, no ruler.
    s = run(s, { type: "cycle-conversation", delta: 1 }, { type: "cycle-conversation", delta: -1 });
    expect(screen(s).rows.some((r) => r.includes("unread"))).toBe(false);
  });

  test("Alt-A goes to the next conversation with activity, mentions and DMs first", () => {
    let s = run(start(), { type: "open-conversation", id: "#dev", focus: false }, incoming("#ops", "busy"), incoming("#dev", "hey alice"));
    s = run(s, { type: "next-active" });
    expect(s.current).toBe("#dev");
    s = run(s, { type: "next-active" });
    expect(s.current).toBe("#ops");
    expect(run(s, { type: "next-active" })).toBe(s);
  });

  test("Alt-digits go to that place in the bar; a place with nothing changes nothing", () => {
    let s = run(start(), { type: "open-conversation", id: "dm:alice:bob", focus: false });
    expect(s.order).toEqual(["lobby", "#ops", "dm:alice:bob"]);
    s = run(s, { type: "focus-index", index: 2 });
    expect(s.current).toBe("dm:alice:bob");
    expect(run(s, { type: "focus-index", index: 7 })).toBe(s);
  });
});

describe("screen choices", () => {
  test("Alt-U hides a shown sidebar and shows a hidden one; /mouse", () => {
    const s = start();
    const hidden = run(s, { type: "toggle-sidebar", shown: true, automatic: true });
    expect(hidden.sidebar).toBe(false);
    // Shown again where it would show anyway: back to automatic (it hides when the terminal narrows).
    expect(run(hidden, { type: "toggle-sidebar", shown: false, automatic: true }).sidebar).toBeUndefined();
    // Shown on a narrow terminal: the user's choice.
    expect(run(s, { type: "toggle-sidebar", shown: false, automatic: false }).sidebar).toBe(true);
    expect(s.mouse).toBe(false);
    expect(run(s, { type: "set-mouse", on: true }).mouse).toBe(true);
    expect(run(s, { type: "set-mouse", on: false })).toBe(s);
  });
});
