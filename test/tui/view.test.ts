import { describe, expect, test } from "vitest";
import type { ChatMessage, PeerView } from "../../src/client/types.js";
import { mentions, shouldRing } from "../../src/tui/state/attention.js";
import { backspace, cleanInsert, deleteForward, insertText, moveCursor } from "../../src/tui/state/input-buffer.js";
import { createInitialState, reducer } from "../../src/tui/state/reducer.js";
import type { Entry, TuiState } from "../../src/tui/state/state.js";
import { expandTabs, stringWidth, truncateToWidth, wrapHanging, wrapLine, wrapText } from "../../src/tui/view/cell-width.js";
import { inputView } from "../../src/tui/view/input-view.js";
import { computeLayout, SIDEBAR_MIN_COLUMNS } from "../../src/tui/view/layout.js";
import { maxInputRows } from "../../src/tui/view/input-view.js";
import { rowText, rowWidth } from "../../src/tui/view/row.js";
import { entryRows, nickColumnWidth, type ScrollbackContext } from "../../src/tui/view/scrollback-rows.js";
import { sidebarRows, sortPeers } from "../../src/tui/view/sidebar-rows.js";
import { connectionSegments, conversationBar, statusRow } from "../../src/tui/view/status-row.js";
import { NICK_PALETTE, nickStyle, STYLE } from "../../src/tui/view/style.js";

const T0 = 1_700_000_000_000;
const ctx: ScrollbackContext = { width: 60, me: "alice", nickWidth: 5, formatTime: () => "12:34" };

function message(extra: Partial<ChatMessage> = {}): Entry {
  return {
    kind: "message",
    seq: 1,
    message: { id: "01", conversationId: "lobby", from: "bob", kind: "text", text: "hello", sentAtMs: T0, receivedAtMs: T0, own: false, ...extra },
  };
}
const texts = (entry: Entry, c: ScrollbackContext = ctx): string[] => entryRows(entry, c).map(rowText);
/** The rows as one line of words: for checking wording regardless of where it wrapped. */
const flat = (rows: readonly string[]): string => rows.map((r) => r.trim()).join(" ");

describe("cell widths and wrapping", () => {
  test("wide CJK and emoji take two cells, combining marks none", () => {
    expect(stringWidth("abc")).toBe(3);
    expect(stringWidth("漢字")).toBe(4);
    expect(stringWidth("👍")).toBe(2);
    expect(stringWidth("e\u0301")).toBe(1);
    expect(stringWidth("✓ ⚠ ● …")).toBe(7);
    // A text symbol with VS16 is drawn as a two-cell emoji, as Ink measures it.
    expect(stringWidth("⚠\uFE0F")).toBe(2);
    expect(wrapLine("⚠\uFE0F⚠\uFE0F⚠\uFE0F", 4)).toEqual(["⚠\uFE0F⚠\uFE0F", "⚠\uFE0F"]);
  });

  test("tabs expand to the next stop", () => {
    expect(expandTabs("a\tb")).toBe("a   b");
    expect(expandTabs("\tx\t")).toBe("    x   ");
    expect(expandTabs("漢\tx")).toBe("漢  x");
  });

  test("wraps at spaces, breaks words only when they are too long", () => {
    expect(wrapLine("the quick brown fox", 10)).toEqual(["the quick", "brown fox"]);
    expect(wrapLine("abcdefghijkl", 5)).toEqual(["abcde", "fghij", "kl"]);
    expect(wrapLine("", 5)).toEqual([""]);
    expect(wrapLine("漢字漢字漢字", 5)).toEqual(["漢字", "漢字", "漢字"]);
    expect(wrapText("one\n\tindented", 20)).toEqual(["one", "    indented"]);
    for (const row of wrapText("a long line of words that must wrap somewhere sensible, with 漢字 too", 9)) {
      expect(stringWidth(row)).toBeLessThanOrEqual(9);
    }
  });

  test("wraps the app's indented lists with hanging indents, and plain text as before", () => {
    const help = "Keys:\n  Alt-A — next conversation with activity (mentions first)";
    expect(wrapHanging(help, 30)).toEqual(["Keys:", "  Alt-A — next conversation", "    with activity (mentions", "    first)"]);
    expect(wrapHanging("no indent here, so plain wrapping", 16)).toEqual(wrapText("no indent here, so plain wrapping", 16));
    // Too narrow for the extra indent: plain wrapping.
    expect(wrapHanging("  a b c d e f g h i j k l m n", 13)).toEqual(wrapText("  a b c d e f g h i j k l m n", 13));
    for (const row of wrapHanging("  漢字 and words that wrap, more and more of them, in a list item", 20)) {
      expect(stringWidth(row)).toBeLessThanOrEqual(20);
    }
  });

  test("truncates with an ellipsis", () => {
    expect(truncateToWidth("abcdef", 4)).toBe("abc…");
    expect(truncateToWidth("abc", 4)).toBe("abc");
    expect(truncateToWidth("漢字漢字", 5)).toBe("漢字…");
  });
});

describe("scrollback rows", () => {
  test("a message: time, padded nick, text", () => {
    expect(texts(message())).toEqual(["12:34 bob    hello"]);
  });

  test("multi-line text is indented under the text column, tabs expanded", () => {
    expect(texts(message({ text: "first\nsecond\n\tthird" }))).toEqual([
      "12:34 bob    first",
      "             second",
      "                 third",
    ]);
  });

  test("long text wraps to the width, continuation aligned", () => {
    const rows = entryRows(message({ text: "word ".repeat(30).trim() }), ctx);
    expect(rows.length).toBeGreaterThan(2);
    for (const r of rows) expect(rowWidth(r)).toBeLessThanOrEqual(60);
    expect(rowText(rows[1]!)).toMatch(/^ {13}word/);
  });

  test("my messages carry their delivery state", () => {
    const mine = { from: "alice", own: true } as const;
    expect(texts(message({ ...mine, state: "pending" }))).toEqual(["12:34 alice  hello …"]);
    expect(texts(message({ ...mine, state: "accepted" }))).toEqual(["12:34 alice  hello ✓"]);
    expect(texts(message({ ...mine, state: "accepted", queuedFor: ["carol"] }))).toEqual(["12:34 alice  hello ✓ queued for carol"]);
    expect(texts(message({ ...mine, state: "failed", failure: "rate limited" }))).toEqual(["12:34 alice  hello ✗ rate limited (/retry to send again)"]);
    expect(texts({ ...message({ ...mine, state: "failed", failure: "rate limited" }), retried: true } as Entry)).toEqual(["12:34 alice  hello ✗ rate limited (sent again below)"]);
    const narrow = texts(message({ ...mine, state: "failed", failure: "the relay refused the message" }), { ...ctx, width: 30 });
    expect(narrow[0]).toBe("12:34 alice  hello");
    expect(flat(narrow.slice(1))).toBe("✗ the relay refused the message (/retry to send again)");
  });

  test("actions read as * nick does something", () => {
    expect(texts(message({ kind: "action", text: "waves" }))).toEqual(["12:34 * bob waves"]);
  });

  test("a gap is a warning line before the message", () => {
    expect(texts(message({ gap: true }))).toEqual(["12:34 ⚠ a message from bob may be missing", "12:34 bob    hello"]);
  });

  test("notices, refused envelopes and room events are one line each", () => {
    expect(texts({ kind: "notice", seq: 1, atMs: T0, level: "info", text: "hi" })).toEqual(["12:34 -- hi"]);
    expect(texts({ kind: "notice", seq: 1, atMs: T0, level: "warn", text: "careful" })).toEqual(["12:34 ⚠ careful"]);
    expect(texts({ kind: "notice", seq: 1, atMs: T0, level: "error", text: "no" })).toEqual(["12:34 ✗ no"]);
    expect(texts({ kind: "refused", seq: 1, atMs: T0, from: "bob" }, { ...ctx, width: 80 })).toEqual(["12:34 ⚠ a message from bob could not be verified and was dropped"]);
    expect(texts({ kind: "room-event", seq: 1, atMs: T0, room: "#ops", username: "bob", change: "joined" })).toEqual(["12:34 -- bob joined #ops"]);
  });

  test("a key change is loud and says what to do", () => {
    const rows = entryRows({ kind: "key-change", seq: 1, atMs: T0, username: "bob", held: 0 }, ctx);
    const text = flat(rows.map(rowText));
    // Protocol v2 (PROTOCOL.md §4.4, §6): nothing is held and sending is not blocked; the new key is refused.
    expect(text).toContain("WARNING: bob's keys have changed: the relay now shows another identity key for bob. Until you decide, the new key is refused: it cannot join your conversations, and nothing it sends is shown or kept.");
    expect(text).toContain("What you send to bob still reaches only the key you had pinned");
    expect(text).not.toMatch(/held|blocked|does not receive/);
    expect(text).toContain("/verify bob");
    expect(text).toContain("/trust command");
    expect(text).toContain("/accept bob goes on with the new key without comparing (not verified)");
    // Every row's text is red and bold.
    for (const row of rows) expect(row.segments.filter((s) => s.text.trim() !== "" && !/^\d\d:\d\d $/.test(s.text)).every((s) => s.style === STYLE.alarm)).toBe(true);
  });

  test("a key change in a room says the room goes on without that member; a replaced pending key says so", () => {
    const room = flat(entryRows({ kind: "key-change", seq: 1, atMs: T0, username: "carol", held: 0, inRoom: true }, ctx).map(rowText));
    expect(room).toContain("WARNING: carol's keys have changed: the relay now shows another identity key for carol. The room goes on with the carol already in it (the key you had pinned); the new key cannot join it until you decide.");
    expect(room).not.toMatch(/held|blocked|does not receive/);
    const again = flat(entryRows({ kind: "key-change", seq: 2, atMs: T0, username: "bob", held: 0, replaced: true, discarded: 2 }, ctx).map(rowText));
    expect(again).toContain("WARNING: bob's keys changed AGAIN before you decided: the relay now shows yet another key, refused like the last one. 2 messages held under the replaced key were discarded");
  });

  test("/verify shows the safety number in groups and the next step", () => {
    const number = "12345 67890 12345 67890 12345 67890 11111 22222 33333 44444 55555 66666";
    const confirmGroups = ["11111", "22222", "33333"];
    const text = texts({ kind: "verify", seq: 1, atMs: T0, info: { username: "bob", trust: "unverified", safetyNumber: number, confirmGroups } }, { ...ctx, width: 80 });
    expect(text).toContain("         12345 67890 12345 67890 12345 67890");
    expect(text).toContain("         11111 22222 33333 44444 55555 66666");
    expect(flat(text)).toContain("Compare these 60 digits with bob");
    // The exact next command, naming the digits compared (issue 9 §3).
    expect(flat(text)).toContain("If every digit matches, type /trust bob 11111 22222 33333.");
    const changed = texts({ kind: "verify", seq: 1, atMs: T0, info: { username: "bob", trust: "key-changed", safetyNumber: number, pendingSafetyNumber: number, confirmGroups } }, { ...ctx, width: 80 });
    expect(flat(changed)).toContain("bob's keys changed. Safety number with bob's NEW keys:");
    expect(flat(changed)).toContain("type /trust bob 11111 22222 33333 to accept the new keys as verified ✓");
    // Going on without comparing is its own, separate step.
    expect(flat(changed)).toContain("type /accept bob (not verified)");
  });

  test("rows never exceed the width, even when tiny", () => {
    for (const width of [1, 5, 12, 25]) {
      for (const entry of [message({ text: "a fairly long message" }), { kind: "key-change", seq: 1, atMs: T0, username: "bob", held: 1 } as const]) {
        for (const row of entryRows(entry, { ...ctx, width })) expect(rowWidth(row)).toBeLessThanOrEqual(width);
      }
    }
  });

  test("the nick column fits the longest name within 4..12 cells", () => {
    expect(nickColumnWidth(["al"])).toBe(4);
    expect(nickColumnWidth(["alice", "bob"])).toBe(5);
    expect(nickColumnWidth(["a-very-long-username-indeed"])).toBe(12);
  });
});

describe("nick colours", () => {
  /** sRGB of an xterm-256 colour of the 6x6x6 cube (16..231). */
  function xtermRgb(n: number): [number, number, number] {
    const level = [0, 95, 135, 175, 215, 255];
    const i = n - 16;
    return [level[Math.floor(i / 36)] ?? 0, level[Math.floor(i / 6) % 6] ?? 0, level[i % 6] ?? 0];
  }
  /** WCAG 2 relative luminance. */
  function luminance([r, g, b]: [number, number, number]): number {
    const lin = (c: number) => {
      const v = c / 255;
      return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
    };
    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
  }

  test("stable per name, from the palette, bold default colour for me", () => {
    expect(nickStyle("bob", "alice")).toEqual(nickStyle("bob", "alice"));
    expect(nickStyle("alice", "alice")).toEqual({ bold: true });
    const palette = NICK_PALETTE.map((n) => `ansi256(${n})`);
    const names = ["bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "oscar", "peggy"];
    for (const n of names) expect(palette).toContain(nickStyle(n, "alice").color);
    expect(new Set(names.map((n) => nickStyle(n, "alice").color)).size).toBeGreaterThan(6);
  });

  test("every nick colour is readable on a black and on a white background (contrast >= 3.5)", () => {
    for (const n of NICK_PALETTE) {
      const l = luminance(xtermRgb(n));
      const onBlack = (l + 0.05) / 0.05;
      const onWhite = 1.05 / (l + 0.05);
      expect(Math.min(onBlack, onWhite), `colour ${n}`).toBeGreaterThanOrEqual(3.5);
      // And none is red, which is kept for warnings: red dominates neither channel alone.
      const [r, g, b] = xtermRgb(n);
      expect(r > 0 && g === 0 && b === 0, `colour ${n} is pure red`).toBe(false);
    }
  });
});

describe("layout", () => {
  test("the sidebar shows from 60 columns and hides below", () => {
    expect(computeLayout(100, 30)).toEqual({ columns: 100, rows: 30, sidebarWidth: 22, scrollbackWidth: 77, headerHeight: 1, bodyHeight: 27, inputHeight: 1 });
    expect(computeLayout(SIDEBAR_MIN_COLUMNS, 24).sidebarWidth).toBe(18);
    expect(computeLayout(SIDEBAR_MIN_COLUMNS - 1, 24)).toMatchObject({ sidebarWidth: 0, scrollbackWidth: 59 });
    expect(computeLayout(300, 24).sidebarWidth).toBe(28);
  });

  test("Alt-U's choice: hidden on a wide terminal, shown on a narrow one down to 40 columns", () => {
    expect(computeLayout(100, 30, { sidebar: false })).toMatchObject({ sidebarWidth: 0, scrollbackWidth: 100 });
    expect(computeLayout(50, 30, { sidebar: true })).toMatchObject({ sidebarWidth: 18, scrollbackWidth: 31 });
    expect(computeLayout(39, 30, { sidebar: true })).toMatchObject({ sidebarWidth: 0 });
  });

  test("the input box takes the rows it needs, the scrollback the rest; the header goes below 8 rows", () => {
    expect(computeLayout(80, 24, { inputRows: 3 })).toMatchObject({ headerHeight: 1, inputHeight: 3, bodyHeight: 19 });
    expect(computeLayout(40, 10, { inputRows: 3 })).toMatchObject({ headerHeight: 1, inputHeight: 3, bodyHeight: 5 });
    expect(computeLayout(40, 7, { inputRows: 1 })).toMatchObject({ headerHeight: 0, inputHeight: 1, bodyHeight: 5 });
    expect(maxInputRows(10)).toBe(3);
    expect(maxInputRows(24)).toBe(8);
    expect(maxInputRows(5)).toBe(1);
  });

  test("tiny terminals still get a valid layout", () => {
    expect(computeLayout(10, 2)).toMatchObject({ sidebarWidth: 0, bodyHeight: 0 });
    expect(computeLayout(0, 0)).toMatchObject({ columns: 1, rows: 1, bodyHeight: 0 });
    for (const [c, r] of [[40, 10], [41, 11], [20, 5], [200, 60]] as const) {
      const l = computeLayout(c, r, { inputRows: 8 });
      expect(1 + l.headerHeight + l.bodyHeight + l.inputHeight).toBeLessThanOrEqual(Math.max(2, r));
      expect(l.scrollbackWidth + (l.sidebarWidth > 0 ? l.sidebarWidth + 1 : 0)).toBe(c);
    }
  });
});

describe("status line", () => {
  const text = (segments: { text: string }[]): string => segments.map((s) => s.text).join("");

  test("names each connection state; the reconnect countdown follows the clock", () => {
    expect(text(connectionSegments({ state: "connecting", attempt: 1 }, T0))).toBe("◌ connecting…");
    expect(text(connectionSegments({ state: "connecting", attempt: 3 }, T0))).toBe("◌ connecting (attempt 3)…");
    expect(text(connectionSegments({ state: "connected", sinceMs: T0 }, T0))).toBe("● connected");
    const reconnecting = { state: "reconnecting", attempt: 2, retryAtMs: T0 + 5_000, reason: "connection refused" } as const;
    expect(text(connectionSegments(reconnecting, T0))).toBe("↻ reconnecting in 5s (connection refused)");
    expect(text(connectionSegments(reconnecting, T0 + 3_200))).toBe("↻ reconnecting in 2s (connection refused)");
    expect(text(connectionSegments(reconnecting, T0 + 6_000))).toBe("↻ reconnecting… (connection refused)");
    expect(text(connectionSegments({ state: "failed", reason: "username taken" }, T0))).toBe("✗ failed: username taken");
    expect(text(connectionSegments({ state: "closed" }, T0))).toBe("○ closed");
  });

  function stateWith(...ids: string[]): TuiState {
    let s = createInitialState({ me: "alice", serverLabel: "127.0.0.1:50051", snapshot: { connection: { state: "connected", sinceMs: T0 }, peers: [], rooms: [] }, atMs: T0 });
    for (const id of ids) s = reducer(s, { type: "open-conversation", id, focus: false });
    return s;
  }

  test("the bar numbers conversations and shows unread counts, ! for DMs and mentions", () => {
    let s = stateWith("#ops");
    s = reducer(s, { type: "session", atMs: T0, event: { type: "message", message: { id: "1", conversationId: "dm:alice:bob", from: "bob", kind: "text", text: "hi", sentAtMs: T0, receivedAtMs: T0, own: false } } });
    s = reducer(s, { type: "session", atMs: T0, event: { type: "message", message: { id: "2", conversationId: "#ops", from: "bob", kind: "text", text: "x", sentAtMs: T0, receivedAtMs: T0, own: false } } });
    expect(text(conversationBar(s, 100))).toBe("1:lobby  2:#ops (1)  3:@bob (1!)");
    expect(rowText(statusRow(s, T0, 100))).toMatch(/^secure-chat {2}alice@127\.0\.0\.1:50051 {2}● connected +1:lobby {2}2:#ops \(1\) {2}3:@bob \(1!\)$/);
    expect(rowWidth(statusRow(s, T0, 100))).toBe(100);
  });

  test("a narrow bar keeps the current conversation and counts the rest", () => {
    let s = stateWith("#one", "#two", "#three", "#four");
    s = reducer(s, { type: "open-conversation", id: "#four", focus: true });
    const bar = text(conversationBar(s, 20));
    expect(bar).toContain("5:#four");
    expect(bar).toMatch(/\+\d$/);
    expect(stringWidth(bar)).toBeLessThanOrEqual(20);
  });

  test("a narrow status line drops the product name and server before the bar, never the connection state", () => {
    const s = reducer(stateWith("#ops"), { type: "session", atMs: T0, event: { type: "message", message: { id: "1", conversationId: "dm:alice:bob", from: "bob", kind: "text", text: "hi", sentAtMs: T0, receivedAtMs: T0, own: false } } });
    expect(rowText(statusRow(s, T0, 50))).toMatch(/^alice {2}● connected +1:lobby {2}2:#ops {2}3:@bob \(1!\)$/);
    expect(rowText(statusRow(s, T0, 64))).toMatch(/^alice@127\.0\.0\.1:50051 {2}● connected +1:lobby {2}2:#ops {2}3:@bob \(1!\)$/);
    // Short of room, quiet conversations go first: the DM with a highlight stays in sight.
    expect(text(conversationBar(s, 24))).toBe("1:lobby  3:@bob (1!)  +1");
    expect(rowText(statusRow(s, T0, 44))).toMatch(/^● connected +1:lobby {2}2:#ops {2}3:@bob \(1!\)$/);
    expect(rowText(statusRow(s, T0, 36))).toMatch(/^alice {2}● connected +1:lobby {2}\+2$/);
    for (const width of [10, 20, 30, 40, 50, 64, 80]) {
      const row = statusRow(s, T0, width);
      expect(rowWidth(row)).toBeLessThanOrEqual(width);
      if (width >= 12) expect(rowText(row)).toContain("● connected");
    }
  });

  test("the reconnect countdown stays in sight down to 40 columns, with many conversations open", () => {
    let s = stateWith("#one", "#two", "#three");
    s = reducer(s, { type: "session", atMs: T0, event: { type: "connection", status: { state: "reconnecting", attempt: 3, retryAtMs: T0 + 7_000, reason: "connection refused" } } });
    for (const width of [40, 60, 100]) {
      const row = rowText(statusRow(s, T0, width));
      expect(row, `${width}`).toContain("↻ reconnecting in 7s");
      expect(stringWidth(row)).toBeLessThanOrEqual(width);
    }
  });
});

describe("sidebar", () => {
  const peers: PeerView[] = [
    { username: "zed", online: false, trust: "unverified", you: false },
    { username: "bob", online: true, trust: "verified", you: false },
    { username: "mallory", online: true, trust: "key-changed", you: false },
    { username: "alice", online: true, trust: "verified", you: true },
    { username: "carol", online: true, trust: "unverified", you: false },
  ];

  test("online first, me first among them, then by name; offline last", () => {
    expect(sortPeers(peers).map((p) => p.username)).toEqual(["alice", "bob", "carol", "mallory", "zed"]);
  });

  test("marks me, verified peers and key changes", () => {
    expect(sidebarRows(peers, "alice", 24, 10).map(rowText)).toEqual([
      "users · 4 online",
      "● alice (you)",
      "● bob ✓",
      "● carol",
      "● mallory ⚠ key changed",
      "○ zed",
    ]);
    const mallory = sidebarRows(peers, "alice", 24, 10)[4];
    expect(mallory?.segments.at(-1)?.style).toBe(STYLE.alarm);
    // In a narrow column the warning shortens rather than being cut off.
    expect(rowText(sidebarRows(peers, "alice", 16, 10)[4]!)).toBe("● mallory ⚠");
  });

  test("too many users for the height: the rest are counted", () => {
    const rows = sidebarRows(peers, "alice", 24, 4).map(rowText);
    expect(rows).toEqual(["users · 4 online", "● alice (you)", "● bob ✓", "+3 more (/users)"]);
  });
});

describe("input box", () => {
  const texts = (v: ReturnType<typeof inputView>) => v.rows.map((r) => r.lead + r.before + (r.atCursor ?? "") + r.after);

  test("shows prompt, text and where the cursor is", () => {
    expect(inputView("[lobby] > ", { text: "hello", cursor: 5 }, 40).rows).toEqual([
      { key: "input.0", lead: "[lobby] > ", before: "hello", atCursor: " ", after: "" },
    ]);
    expect(inputView("[lobby] > ", { text: "hello", cursor: 1 }, 40).rows).toEqual([
      { key: "input.0", lead: "[lobby] > ", before: "h", atCursor: "e", after: "llo" },
    ]);
  });

  test("a long line wraps onto rows indented under the text", () => {
    const v = inputView("> ", { text: "abcdefghijklmnopqrstuvwxyz", cursor: 26 }, 12, 5);
    expect(texts(v)).toEqual(["> abcdefghij", "  klmnopqrst", "  uvwxyz "]);
    for (const row of texts(v)) expect(stringWidth(row)).toBeLessThanOrEqual(12);
  });

  test("newlines start rows; the cursor at the end of a full row moves to the next", () => {
    expect(texts(inputView("> ", { text: "one\ntwo", cursor: 0 }, 20, 5))).toEqual(["> one", "  two"]);
    expect(inputView("> ", { text: "one\ntwo", cursor: 3 }, 20, 5).rows[0]).toMatchObject({ before: "one", atCursor: " " });
    const full = inputView("> ", { text: "abcd", cursor: 4 }, 6, 5);
    expect(full.rows.map((r) => r.atCursor)).toEqual([undefined, " "]);
  });

  test("more rows than allowed: the window follows the cursor and says how many are above", () => {
    const text = Array.from({ length: 10 }, (_, i) => `line ${i}`).join("\n");
    const end = inputView("[#ops] > ", { text, cursor: text.length }, 30, 3);
    expect(end.rows).toHaveLength(3);
    expect(end.rows.map((r) => r.before + (r.atCursor ?? "") + r.after)).toEqual(["line 7", "line 8", "line 9 "]);
    expect(end.rows[0]?.lead.trim()).toBe("↑7");
    const start = inputView("[#ops] > ", { text, cursor: 0 }, 30, 3);
    expect(start.rows[0]?.lead).toBe("[#ops] > ");
  });

  test("wide characters and tabs take their cells", () => {
    const v = inputView("> ", { text: "漢字漢字漢\tx", cursor: 0 }, 8, 5);
    for (const row of texts(v)) expect(stringWidth(row)).toBeLessThanOrEqual(8);
    expect(texts(v).join("|")).toContain("→x");
  });
});

describe("input editing", () => {
  test("moves and deletes whole code points", () => {
    let b = insertText({ text: "", cursor: 0 }, "a👍b");
    expect(b).toEqual({ text: "a👍b", cursor: 4 });
    b = moveCursor(b, "left");
    b = moveCursor(b, "left");
    expect(b.cursor).toBe(1);
    expect(deleteForward(b)).toEqual({ text: "ab", cursor: 1 });
    expect(backspace(moveCursor(b, "right"))).toEqual({ text: "ab", cursor: 1 });
    expect(backspace({ text: "x", cursor: 0 })).toEqual({ text: "x", cursor: 0 });
  });

  test("pastes keep newlines and lose controls (typed chunks are split by the key parser)", () => {
    expect(cleanInsert("one\r\ntwo\rthree\u001b[31m\u0007")).toBe("one\ntwo\nthree[31m");
  });
});

describe("attention", () => {
  test("mentions are whole names", () => {
    expect(mentions("hey alice!", "alice")).toBe(true);
    expect(mentions("@alice ping", "alice")).toBe(true);
    expect(mentions("ALICE: hi", "alice")).toBe(true);
    expect(mentions("malice", "alice")).toBe(false);
    expect(mentions("alice_bot says", "alice")).toBe(false);
  });

  test("the bell rings for DMs, mentions and key changes from others", () => {
    const m = (extra: Partial<ChatMessage>): ChatMessage => ({ id: "1", conversationId: "lobby", from: "bob", kind: "text", text: "hi", sentAtMs: T0, receivedAtMs: T0, own: false, ...extra });
    expect(shouldRing({ type: "message", message: m({ conversationId: "dm:alice:bob" }) }, "alice")).toBe(true);
    expect(shouldRing({ type: "message", message: m({ text: "alice?" }) }, "alice")).toBe(true);
    expect(shouldRing({ type: "message", message: m({}) }, "alice")).toBe(false);
    expect(shouldRing({ type: "message", message: m({ conversationId: "dm:alice:bob", from: "alice", own: true }) }, "alice")).toBe(false);
    expect(shouldRing({ type: "key-change", username: "bob", conversationId: "dm:alice:bob", held: 0 }, "alice")).toBe(true);
    expect(shouldRing({ type: "peer", peer: { username: "bob", online: true, trust: "unverified", you: false } }, "alice")).toBe(false);
  });
});
