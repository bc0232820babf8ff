// Protocol v2 membership lines (PROTOCOL.md §7, issue 12): each change of a conversation's
// group is a line naming who made it, worded by the TUI (membership-text.ts), drawn like v1's
// room lines, sanitised whatever the names hold; the room's members in the sidebar follow.
import { describe, expect, test } from "vitest";
import type { MembershipLine, PeerView, SessionEvent } from "../../src/client/types.js";
import { membershipText, nameList } from "../../src/tui/commands/membership-text.js";
import { listToArray } from "../../src/tui/state/chunked-list.js";
import { createInitialState, reducer } from "../../src/tui/state/reducer.js";
import type { Entry, TuiState } from "../../src/tui/state/state.js";
import { rowText } from "../../src/tui/view/row.js";
import { entryRows, hiddenByFilter, type ScrollbackContext } from "../../src/tui/view/scrollback-rows.js";
import { STYLE } from "../../src/tui/view/style.js";
import { conversationBar } from "../../src/tui/view/status-row.js";

const text = (segments: readonly { readonly text: string }[]): string => segments.map((x) => x.text).join("");

const T0 = 1_700_000_000_000;
const ctx: ScrollbackContext = { width: 80, me: "alice", nickWidth: 5, formatTime: () => "12:34" };
const line = (kind: MembershipLine["kind"], by: string, users: string[] = [], creator?: string): MembershipLine =>
  ({ kind, by, users, atMs: T0, ...(creator === undefined ? {} : { creator }) });
const peer = (username: string): PeerView => ({ username, online: true, trust: "unverified", you: false });

describe("membershipText: the words", () => {
  const TABLE: ReadonlyArray<readonly [string, MembershipLine, string, string]> = [
    // [conversation, line, me, sentence]
    ["#ops", line("created", "alice"), "bob", "alice created #ops"],
    ["#ops", line("created", "alice"), "alice", "you created #ops"],
    ["#ops", line("joined", "bob"), "alice", "bob joined #ops"],
    ["#ops", line("joined", "bob"), "bob", "you joined #ops"],
    ["#ops", line("added", "alice", ["carol"]), "bob", "alice added carol"],
    ["#ops", line("added", "alice", ["carol"]), "carol", "alice added you"],
    ["#ops", line("added", "alice", ["carol", "dave"]), "alice", "you added carol and dave"],
    ["#ops", line("added", "bob", ["carol", "alice", "dave"]), "alice", "bob added you, carol and dave"],
    ["#ops", line("removed", "alice", ["carol"]), "bob", "alice removed carol from #ops"],
    ["#ops", line("removed", "alice", ["carol"]), "carol", "alice removed you from #ops"],
    ["#ops", line("removed", "alice", ["carol"]), "alice", "you removed carol from #ops"],
    ["#ops", line("left", "bob"), "alice", "bob left #ops"],
    ["#ops", line("left", "bob"), "bob", "you left #ops"],
    ["#ops", line("refused", "bob", ["carol"], "alice"), "dave", "bob tried to remove carol from #ops; only alice can"],
    ["#ops", line("refused", "bob", ["carol"], "alice"), "alice", "bob tried to remove carol from #ops; only you can"],
    ["#ops", line("refused", "bob", ["carol"]), "carol", "bob tried to remove you from #ops; only its creator can"],
    // A DM's group and the lobby's.
    ["dm:alice:bob", line("created", "bob"), "alice", "bob created this conversation"],
    // A DM's group made on its first message: the conversation began (not "bob added you").
    ["dm:alice:bob", line("added", "bob", ["alice"]), "alice", "bob started this conversation"],
    ["dm:alice:bob", line("added", "alice", ["bob"]), "alice", "you started this conversation"],
    ["lobby", line("refused", "bob", ["carol"]), "alice", "bob tried to remove carol from the lobby; only its creator can"],
  ];
  test.each(TABLE)("%s %j as %s", (conversationId, l, me, sentence) => {
    expect(membershipText(l, conversationId, me)).toBe(sentence);
  });

  test("a long list names ten and counts the rest (adding 499 is one commit)", () => {
    const users = Array.from({ length: 499 }, (_, i) => `u${String(i).padStart(3, "0")}`);
    expect(membershipText(line("added", "alice", users), "#big", "bob"))
      .toBe("alice added u000, u001, u002, u003, u004, u005, u006, u007, u008, u009 and 489 others");
    expect(nameList(users.slice(0, 11), "bob")).toBe("u000, u001, u002, u003, u004, u005, u006, u007, u008, u009 and 1 other");
    expect(nameList([], "bob")).toBe("nobody");
  });

  test("names are sanitised and bounded: no escape sequence, no line break, reaches the screen", () => {
    const hostile = line("removed", "eve\u001b]0;pwned\u0007\nalice", ["carol\u001b[2J", "x".repeat(500)], "mal\u202Eory");
    for (const kind of ["removed", "refused", "added", "created"] as const) {
      const text = membershipText({ ...hostile, kind }, "#ops", "bob");
      expect(text).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u202e]/);
      expect(text.length).toBeLessThan(200);
    }
    expect(membershipText(hostile, "#ops", "bob")).toBe(`eve\ufffd]0;pwned\ufffd alice removed carol\ufffd[2J and ${"x".repeat(40)} from #ops`);
    // An empty name is still someone.
    expect(membershipText(line("left", ""), "#ops", "bob")).toBe("someone left #ops");
  });
});

describe("drawn like v1's room lines", () => {
  const entry = (l: MembershipLine, conversationId = "#ops", extra: Partial<Entry> = {}): Entry =>
    ({ kind: "membership", seq: 1, atMs: T0, conversationId, line: l, ...extra }) as Entry;

  test("time, '--' and the sentence in the info style; a refused change is a warning", () => {
    const rows = entryRows(entry(line("removed", "alice", ["carol"])), ctx);
    expect(rows.map(rowText)).toEqual(["12:34 -- you removed carol from #ops"]);
    expect(rows[0]?.segments.at(-1)?.style).toEqual(STYLE.info);
    // The same look as a v1 room line.
    const v1 = entryRows({ kind: "room-event", seq: 1, atMs: T0, room: "#ops", username: "bob", change: "joined" }, ctx);
    expect(entryRows(entry(line("joined", "bob")), ctx).map((r) => r.segments.map((s) => s.style)))
      .toEqual(v1.map((r) => r.segments.map((s) => s.style)));
    const refused = entryRows(entry(line("refused", "bob", ["carol"], "alice")), ctx);
    expect(refused.map(rowText)).toEqual(["12:34 ⚠ bob tried to remove carol from #ops; only you can"]);
    expect(refused[0]?.segments.at(-1)?.style).toEqual(STYLE.warn);
  });

  test("/filter hides quiet joins and leaves of others, never who added, removed or was refused", () => {
    const quiet = { quiet: true } as Partial<Entry>;
    expect(hiddenByFilter(entry(line("joined", "bob"), "#ops", quiet), { ...ctx, presence: "smart" })).toBe(true);
    expect(hiddenByFilter(entry(line("left", "bob"), "#ops"), { ...ctx, presence: "smart" })).toBe(false);
    expect(hiddenByFilter(entry(line("left", "bob"), "#ops"), { ...ctx, presence: "none" })).toBe(true);
    expect(hiddenByFilter(entry(line("left", "alice"), "#ops"), { ...ctx, presence: "none" })).toBe(false);
    for (const kind of ["created", "added", "removed", "refused"] as const) {
      expect(hiddenByFilter(entry(line(kind, "bob", ["carol"]), "#ops", quiet), { ...ctx, presence: "none" })).toBe(false);
    }
  });
});

describe("the reducer: lines in the conversation, members in the sidebar", () => {
  function start(rooms = [{ room: "#ops", members: ["alice", "bob"] }]): TuiState {
    return createInitialState({
      me: "alice",
      serverLabel: "relay",
      snapshot: { connection: { state: "connected", sinceMs: T0 }, peers: [peer("bob"), peer("carol")], rooms },
      atMs: T0,
    });
  }
  const membership = (conversationId: string, l: MembershipLine): SessionEvent => ({ type: "membership", conversationId, line: l });
  const apply = (s: TuiState, ...events: SessionEvent[]): TuiState =>
    events.reduce((st, event) => reducer(st, { type: "session", event, atMs: T0 }), s);
  const lines = (s: TuiState, id: string): MembershipLine[] => {
    const c = s.conversations[id];
    return c === undefined ? [] : listToArray(c.entries).flatMap((e) => (e.kind === "membership" ? [e.line] : []));
  };
  const members = (s: TuiState, room: string): readonly string[] | undefined => s.rooms.find((r) => r.room === room)?.members;

  test("adds, removals, joins and leaves change the room's members; a refused change does not", () => {
    let s = apply(start(), membership("#ops", line("added", "alice", ["carol", "dave"])));
    expect(members(s, "#ops")).toEqual(["alice", "bob", "carol", "dave"]);
    s = apply(s, membership("#ops", line("refused", "bob", ["carol"], "alice")));
    expect(members(s, "#ops")).toEqual(["alice", "bob", "carol", "dave"]);
    s = apply(s, membership("#ops", line("removed", "alice", ["carol"])), membership("#ops", line("left", "dave")), membership("#ops", line("joined", "erin")));
    expect(members(s, "#ops")).toEqual(["alice", "bob", "erin"]);
    expect(lines(s, "#ops").map((l) => l.kind)).toEqual(["added", "refused", "removed", "left", "joined"]);
  });

  test("a room I create, join or am added to joins my list; removed or left, it leaves it (its lines stay)", () => {
    let s = apply(start([]), membership("#new", line("created", "alice")));
    expect(members(s, "#new")).toEqual(["alice"]);
    expect(s.order).toContain("#new");
    s = apply(s, membership("#dev", line("added", "bob", ["alice"])));
    expect(members(s, "#dev")).toEqual(["alice", "bob"]);
    s = apply(s, membership("#dev", line("removed", "bob", ["alice"])));
    expect(members(s, "#dev")).toBeUndefined();
    expect(lines(s, "#dev").map((l) => l.kind)).toEqual(["added", "removed"]);
    // Someone else adding me or removing me is addressed to me: it counts where I am not looking.
    expect(s.conversations["#dev"]?.highlights).toBe(2);
  });

  test("a closed room is not reopened for others' changes nor for my own leave; it is for being added or removed, and for a refused change", () => {
    let s = reducer(start(), { type: "close-conversation", id: "#ops" });
    s = apply(s, membership("#ops", line("joined", "carol")));
    expect(s.order).toEqual(["lobby"]);
    expect(members(s, "#ops")).toEqual(["alice", "bob", "carol"]);
    s = apply(s, membership("#ops", line("left", "alice")));
    expect(s.order).toEqual(["lobby"]);
    expect(members(s, "#ops")).toBeUndefined();
    s = apply(s, membership("#ops", line("added", "bob", ["alice"])));
    expect(s.order).toEqual(["lobby", "#ops"]);
    // Someone trying what only the creator may opens it too.
    s = reducer(s, { type: "close-conversation", id: "#ops" });
    s = apply(s, membership("#ops", line("refused", "bob", ["carol"], "alice")));
    expect(s.order).toEqual(["lobby", "#ops"]);
  });

  test("the lobby shows only refused changes (presence lines already say who comes and goes)", () => {
    const s = apply(start(), membership("lobby", line("joined", "bob")), membership("lobby", line("removed", "carol", ["dave"])),
      membership("lobby", line("refused", "carol", ["bob"])));
    expect(lines(s, "lobby").map((l) => l.kind)).toEqual(["refused"]);
  });

  test("a line for no valid conversation is dropped; names that are not usernames never reach the member list", () => {
    const before = start();
    expect(apply(before, membership("#bad name\u001b", line("added", "alice", ["carol"])))).toBe(before);
    const s = apply(before, membership("#ops", line("added", "alice", ["carol", "Not A Name\u001b[2J", ""])));
    expect(members(s, "#ops")).toEqual(["alice", "bob", "carol"]);
  });

  test("a DM's group lines go into the DM (opened)", () => {
    const s = apply(start(), membership("dm:alice:bob", line("created", "bob")), membership("dm:alice:bob", line("added", "bob", ["alice"])));
    expect(lines(s, "dm:alice:bob").map((l) => l.kind)).toEqual(["created", "added"]);
    expect(s.order).toContain("dm:alice:bob");
  });

  test("a DM started by the peer counts its message, not its membership lines: one DM is (1!), not (2!)", () => {
    const dm = "dm:alice:bob";
    const msg: SessionEvent = { type: "message", message: { id: "ab".repeat(16), conversationId: dm, from: "bob", kind: "text", text: "hi", sentAtMs: T0, receivedAtMs: T0, own: false } };
    const s = apply(start(), membership(dm, line("created", "bob")), membership(dm, line("added", "bob", ["alice"])), msg);
    expect(s.current).toBe("lobby");
    expect(s.conversations[dm]).toMatchObject({ unread: 1, highlights: 1 });
    expect(text(conversationBar(s, 200))).toContain("@bob (1!)");
  });

  test("joins and leaves of someone who has not spoken here are quiet (the smart filter hides them)", () => {
    const s = apply(start(), membership("#ops", line("joined", "carol")), membership("#ops", line("added", "alice", ["dave"])));
    const entries = listToArray(s.conversations["#ops"]!.entries).filter((e) => e.kind === "membership");
    expect(entries.map((e) => (e.kind === "membership" ? e.quiet === true : undefined))).toEqual([true, false]);
  });
});

describe("a new DM's first line: the conversation's start comes before it", () => {
  const DM = "dm:alice:bob";
  const start = (me: string): TuiState => createInitialState({
    me,
    serverLabel: "relay",
    snapshot: { connection: { state: "connected", sinceMs: T0 }, peers: [peer("alice"), peer("bob")], rooms: [] },
    atMs: T0,
  });
  const apply = (s: TuiState, ...events: SessionEvent[]): TuiState =>
    events.reduce((st, event) => reducer(st, { type: "session", event, atMs: T0 }), s);
  const msg = (id: string, from: string, text: string, own: boolean, atMs: number): SessionEvent => ({
    type: "message",
    message: { id: id.repeat(32), conversationId: DM, from, kind: "text", text, sentAtMs: atMs, receivedAtMs: atMs, own, ...(own ? { state: "pending" as const } : {}) },
  });
  const started = (by: string, peerName: string, atMs: number): SessionEvent =>
    ({ type: "membership", conversationId: DM, line: { kind: "added", by, users: [peerName], atMs } });
  const accepted = (id: string): SessionEvent => ({ type: "message-state", conversationId: DM, id: id.repeat(32), state: "accepted" });
  /** The DM as its lines read, each with its seq. */
  const shown = (s: TuiState, me: string): string[] => listToArray(s.conversations[DM]!.entries).map((e) =>
    e.kind === "message" ? `${e.message.from}: ${e.message.text}` : e.kind === "membership" ? `-- ${membershipText(e.line, DM, me)}` : e.kind);
  const seqs = (s: TuiState): number[] => listToArray(s.conversations[DM]!.entries).map((e) => e.seq);

  test("alice's /msg bob hi: 'you started this conversation' above her line, though the group was made after she wrote it", () => {
    // The session shows the message pending at once; the group (and its line) is made to send it.
    let s = reducer(start("alice"), { type: "open-conversation", id: DM, focus: true });
    s = apply(s, msg("a", "alice", "hi", true, T0), msg("b", "alice", "are you there?", true, T0 + 1), started("alice", "bob", T0 + 40), accepted("a"), accepted("b"));
    expect(shown(s, "alice")).toEqual(["-- you started this conversation", "alice: hi", "alice: are you there?"]);
    // Seqs still grow down the list (the unread ruler and the rows' keys rely on it).
    expect(seqs(s)).toEqual([...seqs(s)].sort((x, y) => x - y));
    expect(new Set(seqs(s)).size).toBe(3);
    // Bob's answer comes after, as ever.
    s = apply(s, msg("c", "bob", "yes", false, T0 + 90));
    expect(shown(s, "alice")).toEqual(["-- you started this conversation", "alice: hi", "alice: are you there?", "bob: yes"]);
  });

  test("only my lines still waiting for the group move below it: those already sent stay above (a DM's group made again)", () => {
    let s = reducer(start("alice"), { type: "open-conversation", id: DM, focus: true });
    s = apply(s, msg("a", "alice", "old", true, T0), accepted("a"), msg("b", "bob", "old too", false, T0 + 1), msg("c", "alice", "again", true, T0 + 2), started("alice", "bob", T0 + 40));
    expect(shown(s, "alice")).toEqual(["alice: old", "bob: old too", "-- you started this conversation", "alice: again"]);
    expect(seqs(s)).toEqual([...seqs(s)].sort((x, y) => x - y));
  });

  test("the unread ruler below my line stays below it; a conversation I left has its ruler kept on the same line", () => {
    // Writing puts the ruler below my own line; the start moved above it is not unread either.
    let s = reducer(start("alice"), { type: "open-conversation", id: DM, focus: true });
    s = apply(s, msg("x", "bob", "earlier", false, T0 - 10));
    s = reducer(s, { type: "open-conversation", id: "lobby", focus: true });
    s = reducer(s, { type: "open-conversation", id: DM, focus: true });
    expect(s.conversations[DM]!.readMarker).toBeDefined();
    s = apply(s, msg("a", "alice", "hi", true, T0), started("alice", "bob", T0 + 40));
    const entries = listToArray(s.conversations[DM]!.entries);
    expect(shown(s, "alice")).toEqual(["bob: earlier", "-- you started this conversation", "alice: hi"]);
    expect(s.conversations[DM]!.readMarker).toBe(entries.at(-1)!.seq);
  });

  test("a view scrolled up to my waiting line stays on it when the start goes in above", () => {
    let s = reducer(start("alice"), { type: "open-conversation", id: DM, focus: true });
    s = apply(s, msg("x", "bob", "earlier", false, T0 - 10), msg("a", "alice", "hi", true, T0));
    const c = s.conversations[DM]!;
    s = { ...s, conversations: { ...s.conversations, [DM]: { ...c, scroll: { top: 1, skip: 0, seen: 2 } } } };
    s = apply(s, started("alice", "bob", T0 + 40));
    expect(shown(s, "alice")).toEqual(["bob: earlier", "-- you started this conversation", "alice: hi"]);
    const top = s.conversations[DM]!.scroll!.top;
    expect(listToArray(s.conversations[DM]!.entries)[top]).toMatchObject({ kind: "message", message: { text: "hi" } });
  });

  test("bob, who receives it: 'alice started this conversation' before her first line", () => {
    const s = apply(start("bob"), started("alice", "bob", T0 + 40), msg("a", "alice", "hi", false, T0));
    expect(shown(s, "bob")).toEqual(["-- alice started this conversation", "alice: hi"]);
  });

  test("bob wrote first too (both made the group; alice's won): her start goes above his waiting line, her line after", () => {
    let s = reducer(start("bob"), { type: "open-conversation", id: DM, focus: true });
    s = apply(s, msg("b", "bob", "hello?", true, T0 + 5), started("alice", "bob", T0 + 40), msg("a", "alice", "hi", false, T0));
    expect(shown(s, "bob")).toEqual(["-- alice started this conversation", "bob: hello?", "alice: hi"]);
  });
});
