// A message's `sent_at_ms` is its sender's clock, shown only (PROTOCOL.md §11): any u64 up to
// 2^53 - 1 decodes. It never decides anything (which topic is the room's, whether someone spoke
// recently), and every time on screen is drawn sensibly, never "NaN", whatever a sender claims.
import { describe, expect, test } from "vitest";
import type { ChatMessage, PeerView, SessionEvent } from "../../src/client/types.js";
import { createInitialState, reducer, type Action } from "../../src/tui/state/reducer.js";
import { searchMessages } from "../../src/tui/state/search.js";
import type { TuiState } from "../../src/tui/state/state.js";
import { addedDay, agoText, devicesTable } from "../../src/tui/commands/devices.js";
import { headerRow } from "../../src/tui/view/header-row.js";
import { rowText } from "../../src/tui/view/row.js";
import { scrollbackContext, scrollbackWindow } from "../../src/tui/view/scrollback-window.js";
import { formatClock, formatDay, formatStamp, localDay } from "../../src/tui/view/time.js";

const T0 = 1_700_000_000_000;
const MIN = 60_000;
/** The largest sent_at_ms that decodes (app-data.ts: a u64 within JavaScript's safe integers). */
const FAR = Number.MAX_SAFE_INTEGER;
const peer = (username: string, extra: Partial<PeerView> = {}): PeerView => ({ username, online: true, trust: "unverified", you: false, ...extra });

const start = (backlog: readonly ChatMessage[] = []): TuiState => createInitialState({
  me: "alice", serverLabel: "relay",
  snapshot: {
    connection: { state: "connected", sinceMs: T0 },
    peers: [peer("alice", { trust: "verified", you: true }), peer("bob"), peer("carol"), peer("mallory")],
    rooms: [{ room: "#ops", members: ["alice", "carol", "mallory"] }],
  },
  atMs: T0, backlog,
});
let n = 1;
const msg = (conversationId: string, from: string, text: string, extra: Partial<ChatMessage> = {}): ChatMessage =>
  ({ id: (n++).toString(16).padStart(32, "0"), conversationId, from, kind: "text", text, sentAtMs: T0, receivedAtMs: T0, own: from === "alice", ...extra });
const ev = (event: SessionEvent, atMs = T0): Action => ({ type: "session", event, atMs });
const run = (s: TuiState, ...actions: Action[]): TuiState => actions.reduce(reducer, s);
/** What the pane shows, with the real clock and day formatting. */
const screen = (s: TuiState, id: string): string[] => {
  const c = s.conversations[id]!;
  return scrollbackWindow(c, scrollbackContext(s, 100, c), 30).rows.map(rowText);
};

describe("the room's topic is the one received last", () => {
  test("a topic claiming a time far ahead does not keep the header against a later one", () => {
    let s = run(start(), ev({ type: "message", message: msg("#ops", "mallory", "send all invoices to mallory@evil", { kind: "topic", sentAtMs: FAR }) }));
    expect(s.conversations["#ops"]!.topic?.text).toBe("send all invoices to mallory@evil");
    s = run(s, ev({ type: "message", message: msg("#ops", "carol", "invoices go to finance@corp only", { kind: "topic" }) }));
    expect(s.conversations["#ops"]!.topic).toEqual({ text: "invoices go to finance@corp only", by: "carol", atMs: T0 });
    const header = rowText(headerRow(s, s.conversations["#ops"]!, 120));
    expect(header).toContain("finance@corp");
    expect(header).not.toContain("mallory@evil");
  });

  test("a live topic replaces the one kept from an earlier run, whatever the kept one claimed", () => {
    let s = start([msg("#ops", "mallory", "kept, claiming the far future", { kind: "topic", sentAtMs: FAR })]);
    expect(s.conversations["#ops"]!.topic?.text).toBe("kept, claiming the far future");
    s = run(s, ev({ type: "message", message: msg("#ops", "carol", "today's topic", { kind: "topic" }) }));
    expect(s.conversations["#ops"]!.topic?.text).toBe("today's topic");
  });
});

describe("times out of Date's range are drawn, never as NaN", () => {
  const odd = [FAR, 8.64e15 + 1, 2 ** 53, -(2 ** 53), Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY];

  test("clock, day, stamp and UTC day: a placeholder of the same shape", () => {
    for (const ms of odd) {
      expect(formatClock(ms)).toBe("--:--");
      expect(formatStamp(ms)).toBe("---------- --:--");
      expect(formatDay(ms)).toBe("date out of range");
      expect(addedDay(ms)).toBe("----------");
      expect(Number.isNaN(localDay(ms))).toBe(false);
    }
    // The edges of the range are real dates, drawn as such.
    expect(formatClock(8.64e15)).toMatch(/^\d\d:\d\d$/);
    expect(formatStamp(8.64e15)).toMatch(/^275760-09-1[23] \d\d:\d\d$/);
    expect(formatClock(0)).toMatch(/^\d\d:\d\d$/);
  });

  test("two times out of range on one side share one day; in range they differ from it", () => {
    expect(localDay(FAR)).toBe(localDay(2 ** 53));
    expect(localDay(FAR)).not.toBe(localDay(T0));
    expect(localDay(T0)).toBe(localDay(T0 + 1));
  });

  test("a message, a topic and a /me claiming 2^53 - 1: the scrollback shows no NaN", () => {
    const s = run(start(),
      { type: "open-conversation", id: "#ops", focus: true },
      ev({ type: "message", message: msg("#ops", "mallory", "hello from the future", { sentAtMs: FAR }) }),
      ev({ type: "message", message: msg("#ops", "mallory", "pinned", { kind: "topic", sentAtMs: FAR }) }),
      ev({ type: "message", message: msg("#ops", "mallory", "waves", { kind: "action", sentAtMs: FAR, relayAtMs: T0 }) }));
    const rows = screen(s, "#ops");
    expect(rows.join("\n")).not.toContain("NaN");
    expect(rows).toContain("--:-- mallory  hello from the future");
    expect(rows).toContain("--:-- -- mallory set the topic: pinned");
    expect(rows.some((r) => r.includes("date out of range"))).toBe(true);
    // /topic alone and /search word the time the same way.
    expect(searchMessages(s.conversations["#ops"]!.entries, "future", formatStamp).lines).toEqual(["  ---------- --:-- mallory: hello from the future"]);
  });

  test("/devices never throws on a device added at a time out of range", () => {
    const table = devicesTable([{ deviceId: "0123456789abcdef", name: "desk", primary: true, thisDevice: true, online: true, lastSeenMs: 0, addedAtMs: FAR }], T0, "alice");
    expect(table).toContain("added ----------");
    expect(agoText(T0, FAR)).toBe("just now");
  });
});

describe("whether someone spoke recently goes by when their message arrived", () => {
  test("a member claiming an old time neither hides their own nor others' presence lines from the smart filter", () => {
    let s = run(start(), { type: "set-filter", conversationId: "lobby", filter: "smart" });
    s = run(s,
      ev({ type: "message", message: msg("lobby", "bob", "brb", { receivedAtMs: T0 }) }),
      // Arrived after bob's, claiming 1970: the look back must not stop at it.
      ev({ type: "message", message: msg("lobby", "mallory", "from the past", { sentAtMs: 0, receivedAtMs: T0 + 1 }) }),
      ev({ type: "peer", peer: peer("bob", { online: false }) }, T0 + MIN),
      ev({ type: "peer", peer: peer("mallory", { online: false }) }, T0 + MIN));
    const presence = screen(s, "lobby").filter((r) => r.includes("went offline"));
    expect(presence.map((r) => r.replace(/^\S+ /, ""))).toEqual(["← bob went offline", "← mallory went offline"]);
  });
});
