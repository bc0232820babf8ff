// What the screen says about trust and attention: the conversation header and the prompt of a
// DM (verified, not verified, a key change that blocks sending), trust marks and counts in the
// conversation bar, mentions of my name, the "more below" marker, the paste question, and one
// line when I join a room.
import { describe, expect, test } from "vitest";
import type { PeerTrust, PeerView } from "../../src/client/types.js";
import { createInitialState, reducer, type Action } from "../../src/tui/state/reducer.js";
import { currentConversation, type Entry, type TuiState } from "../../src/tui/state/state.js";
import { headerRow, promptOf } from "../../src/tui/view/header-row.js";
import { moreBelowRow, pasteQuestionRows } from "../../src/tui/view/paste-rows.js";
import { rowText, rowWidth } from "../../src/tui/view/row.js";
import { entryRows, type ScrollbackContext } from "../../src/tui/view/scrollback-rows.js";
import { conversationBar, countSegments } from "../../src/tui/view/status-row.js";
import { STYLE } from "../../src/tui/view/style.js";

const T0 = 1_700_000_000_000;

function withBob(trust: PeerTrust, online = true): TuiState {
  const peers: PeerView[] = [{ username: "bob", online, trust, you: false }, { username: "carol", online: true, trust: "unverified", you: false }];
  const s = createInitialState({
    me: "alice", serverLabel: "relay:50051",
    snapshot: { connection: { state: "connected", sinceMs: T0 }, peers, rooms: [{ room: "#ops", members: ["alice", "bob", "carol"] }] },
    atMs: T0,
  });
  return reducer(s, { type: "open-conversation", id: "dm:alice:bob", focus: true });
}
const text = (segments: readonly { text: string }[]): string => segments.map((s) => s.text).join("");
const header = (s: TuiState, width = 120) => headerRow(s, currentConversation(s), width);

describe("the DM header and prompt", () => {
  test("not verified yet: says how to verify", () => {
    const s = withBob("unverified");
    expect(rowText(header(s))).toBe("@bob · not verified (/verify bob) ● online");
    expect(promptOf(s, currentConversation(s))).toEqual({ text: "[@bob] > ", blocked: false });
  });

  test("verified: marked, with presence", () => {
    expect(rowText(header(withBob("verified", false)))).toBe("@bob ✓ verified ○ offline (messages wait for them)");
  });

  test("a key change: loud, says the new key is refused (v2: nothing is held or blocked) and what to do; the prompt says so", () => {
    const s = withBob("key-changed");
    const row = header(s);
    expect(rowText(row)).toBe("@bob ⚠ KEY CHANGED — new key refused until you decide: /verify bob, compare with bob, then /trust (or /accept bob)");
    expect(row.segments.every((seg) => seg.style === STYLE.alarm)).toBe(true);
    expect(promptOf(s, currentConversation(s))).toEqual({ text: "[@bob ⚠ key changed] > ", blocked: true });
  });

  test("rooms, the lobby and unknown people", () => {
    let s = reducer(withBob("unverified"), { type: "open-conversation", id: "#ops", focus: true });
    expect(rowText(header(s))).toBe("#ops — 3 members: alice, bob, carol");
    s = reducer(s, { type: "open-conversation", id: "lobby", focus: true });
    expect(rowText(header(s))).toBe("lobby — everyone online reads it · 3 online");
    s = reducer(s, { type: "open-conversation", id: "dm:alice:zed", focus: true });
    expect(rowText(header(s))).toBe("@zed — zed is unknown here: messages fail until zed has connected once");
  });

  test("fits any width", () => {
    for (const width of [1, 10, 40, 200]) expect(rowWidth(header(withBob("key-changed"), width))).toBeLessThanOrEqual(width);
  });
});

describe("the conversation bar", () => {
  test("DM peers carry their trust: ✓ verified, ⚠ key changed", () => {
    let s = withBob("verified");
    s = reducer(s, { type: "open-conversation", id: "dm:alice:carol", focus: false });
    expect(text(conversationBar(s, 200))).toBe("1:lobby  2:#ops  3:@bob✓  4:@carol");
    s = reducer(s, { type: "session", atMs: T0, event: { type: "key-change", username: "carol", conversationId: "dm:alice:carol", held: 1 } });
    expect(text(conversationBar(s, 200))).toBe("1:lobby  2:#ops  3:@bob✓  4:@carol⚠ (1!)");
  });

  test("counts: unread, and how many of them are for me", () => {
    expect(text(countSegments(0, 0))).toBe("");
    expect(text(countSegments(5, 0))).toBe(" (5)");
    expect(text(countSegments(5, 2))).toBe(" (5,2!)");
    expect(text(countSegments(2, 2))).toBe(" (2!)");
    expect(countSegments(5, 2).find((seg) => seg.text === "2!")?.style).toBe(STYLE.alarm);
  });
});

describe("message rows", () => {
  const ctx: ScrollbackContext = { width: 60, me: "alice", nickWidth: 5, formatTime: () => "12:34" };
  const message = (from: string, textValue: string, own = false): Entry => ({
    kind: "message", seq: 1,
    message: { id: "1", conversationId: "lobby", from, kind: "text", text: textValue, sentAtMs: T0, receivedAtMs: T0, own },
  });

  test("a mention of my name: the nick stands out and the name is marked in the text", () => {
    const [row] = entryRows(message("bob", "hey @alice, and Alice again; not malice"), ctx);
    expect(rowText(row!)).toBe("12:34 bob    hey @alice, and Alice again; not malice");
    expect(row!.segments.find((seg) => seg.text.startsWith("bob"))?.style).toBe(STYLE.mentionNick);
    expect(row!.segments.filter((seg) => seg.style === STYLE.mention).map((seg) => seg.text)).toEqual(["@alice", "Alice"]);
  });

  test("no mention, or my own message: plain", () => {
    const [plain] = entryRows(message("bob", "nothing for malice here"), ctx);
    expect(plain!.segments.some((seg) => seg.style === STYLE.mention || seg.style === STYLE.mentionNick)).toBe(false);
    const [mine] = entryRows(message("alice", "I am alice", true), ctx);
    expect(mine!.segments.some((seg) => seg.style === STYLE.mention)).toBe(false);
    expect(mine!.segments.find((seg) => seg.text.startsWith("alice"))?.style).toEqual({ bold: true });
  });

  test("joining a room is one line that names the members", () => {
    let s = withBob("unverified");
    const join: Action = { type: "session", atMs: T0, event: { type: "room-event", room: "#dev", kind: "joined", username: "alice", members: ["alice", "bob"], atMs: T0 } };
    s = reducer(s, join);
    const entries = s.conversations["#dev"]?.entries;
    expect(entries?.length).toBe(1);
    const entry = entries?.chunks[0]?.[0];
    expect(entry && entryRows(entry, ctx).map(rowText)).toEqual(["12:34 -- you joined #dev — members: alice, bob"]);
    const other = reducer(s, { type: "session", atMs: T0, event: { type: "room-event", room: "#dev", kind: "joined", username: "carol", members: ["alice", "bob", "carol"], atMs: T0 } });
    const second = other.conversations["#dev"]?.entries.chunks[0]?.[1];
    expect(second && entryRows(second, ctx).map(rowText)).toEqual(["12:34 -- carol joined #dev"]);
  });
});

describe("markers and questions", () => {
  test("-- more below (N) --, with what is new and how to get there when it fits", () => {
    expect(rowText(moreBelowRow(12, 0, 60))).toBe("-- more below (12) -- PgDn, Ctrl-End: newest".padEnd(60));
    expect(rowText(moreBelowRow(12, 3, 60))).toBe("-- more below (12) -- 3 new PgDn, Ctrl-End: newest".padEnd(60));
    expect(moreBelowRow(12, 3, 60).segments[0]?.style).toBe(STYLE.moreNew);
    expect(rowText(moreBelowRow(12, 0, 30))).toBe("-- more below (12) --".padEnd(30));
    expect(rowWidth(moreBelowRow(123456, 7, 12))).toBeLessThanOrEqual(12);
  });

  test("a large paste asks: size, where, and the three answers", () => {
    const rows = pasteQuestionRows({ text: "", lines: 57, bytes: 6300, conversationId: "#ops" }, "#ops", 200, 3);
    expect(rows.map(rowText)).toEqual(["⚠ Paste of 57 lines, 6.2 KB for #ops — y: send it as one message · e: edit it first · n: drop it"]);
    const narrow = pasteQuestionRows({ text: "", lines: 57, bytes: 6300, conversationId: "#ops" }, "#ops", 40, 3);
    expect(narrow.length).toBe(3);
    for (const row of narrow) expect(rowWidth(row)).toBeLessThanOrEqual(40);
    // One row only: the short question, answers first.
    expect(pasteQuestionRows({ text: "", lines: 57, bytes: 6300, conversationId: "#ops" }, "#ops", 60, 1).map(rowText)).toEqual(["⚠ Paste 57 lines, 6.2 KB? y send · e edit · n drop"]);
  });
});
