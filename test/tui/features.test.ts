// Issue 10 §3, §4, §6: presence lines and their filter, the scoped sidebar, topics, away, the
// draft mark, notify levels and highlight words, older history pages, closed conversations,
// the per-conversation nick column, and the commands irssi and weechat hands type.
import { describe, expect, test } from "vitest";
import type { ChatMessage, PeerView, SessionEvent } from "../../src/client/types.js";
import { mentions, shouldRing } from "../../src/tui/state/attention.js";
import { listToArray } from "../../src/tui/state/chunked-list.js";
import { helpLines } from "../../src/tui/commands/help-lines.js";
import { COMMANDS } from "../../src/tui/commands/index.js";
import { parseInput } from "../../src/tui/state/commands.js";
import { createInitialState, reducer, type Action } from "../../src/tui/state/reducer.js";
import { DEFAULT_SETTINGS, parseSettings, serializeSettings } from "../../src/tui/state/settings.js";
import { currentConversation, type Entry, type TuiState } from "../../src/tui/state/state.js";
import { wantsOlder, oldestMessage } from "../../src/tui/hooks/useOlderHistory.js";
import { headerRow, promptOf } from "../../src/tui/view/header-row.js";
import { inputView } from "../../src/tui/view/input-view.js";
import { rowText } from "../../src/tui/view/row.js";
import { entryRows } from "../../src/tui/view/scrollback-rows.js";
import { scrollbackContext, scrollbackWindow, scrollLayout } from "../../src/tui/view/scrollback-window.js";
import { scopedSidebarRows } from "../../src/tui/view/sidebar-rows.js";
import { statusRow } from "../../src/tui/view/status-row.js";

const T0 = 1_700_000_000_000;
const MIN = 60_000;
const peer = (username: string, extra: Partial<PeerView> = {}): PeerView => ({ username, online: true, trust: "unverified", you: false, ...extra });
const ME: PeerView = { username: "alice", online: true, trust: "verified", you: true };

function start(extra: Partial<Parameters<typeof createInitialState>[0]> = {}): TuiState {
  return createInitialState({
    me: "alice",
    serverLabel: "127.0.0.1:50051",
    snapshot: {
      connection: { state: "connected", sinceMs: T0 },
      peers: [ME, peer("bob"), peer("carol", { online: false })],
      rooms: [{ room: "#ops", members: ["alice", "bob"] }],
    },
    atMs: T0,
    ...extra,
  });
}

let nextId = 1;
function msg(extra: Partial<ChatMessage> & Pick<ChatMessage, "conversationId" | "from" | "text">): ChatMessage {
  return { id: (nextId++).toString(16).padStart(32, "0"), kind: "text", sentAtMs: T0, receivedAtMs: T0, own: extra.from === "alice", ...extra };
}
const ev = (event: SessionEvent, atMs = T0): Action => ({ type: "session", event, atMs });
const run = (state: TuiState, ...actions: Action[]): TuiState => actions.reduce(reducer, state);
const entries = (s: TuiState, id: string): readonly Entry[] => listToArray(s.conversations[id]?.entries ?? { length: 0, chunks: [] });
const shown = (s: TuiState, id: string, width = 80, height = 30): string[] => {
  const c = s.conversations[id]!;
  return scrollbackWindow(c, { ...scrollbackContext(s, width, c), formatTime: () => "12:00", formatDay: () => "day" }, height).rows.map(rowText);
};
const type = (text: string): Action => ({ type: "input-insert", text });

describe("presence lines (§3)", () => {
  test("who came online and went offline shows in the lobby; not for me, not for a trust change", () => {
    let s = start();
    s = run(s,
      ev({ type: "peer", peer: peer("carol") }, T0 + MIN),
      ev({ type: "peer", peer: peer("bob", { online: false }) }, T0 + 2 * MIN),
      ev({ type: "peer", peer: peer("bob", { online: false, trust: "verified" }) }, T0 + 3 * MIN),
      ev({ type: "peer", peer: { ...ME, online: true } }),
      ev({ type: "peer", peer: peer("dave") }, T0 + 4 * MIN), // a new user, online at once
    );
    const lines = entries(s, "lobby").flatMap((e) => (e.kind === "presence" ? [`${e.username} ${e.change}`] : []));
    expect(lines).toEqual(["carol online", "bob offline", "dave online"]);
    expect(shown(s, "lobby").filter((r) => /came online|went offline/.test(r))).toEqual([
      "12:00 → carol came online", "12:00 ← bob went offline", "12:00 → dave came online",
    ]);
    // Not news: the presence lines neither count as unread nor move the ruler above themselves.
    expect(s.conversations.lobby!.unread).toBe(0);
  });

  test("the list after a reconnect says who went offline meanwhile; at start nobody 'comes online'", () => {
    const atStart = start({ snapshot: { connection: { state: "connecting", attempt: 1 }, peers: [ME, peer("bob", { online: false })], rooms: [] } });
    let s = run(atStart, ev({ type: "directory", peers: [ME, peer("bob"), peer("carol")] }));
    expect(entries(s, "lobby")).toHaveLength(0);
    s = run(s, ev({ type: "directory", peers: [ME, peer("bob", { online: false }), peer("carol")] }));
    expect(entries(s, "lobby").flatMap((e) => (e.kind === "presence" ? [`${e.username} ${e.change}`] : []))).toEqual(["bob offline"]);
  });

  test("after a reconnect: 'reconnected, 12 messages caught up'; at the first connection only when something waited", () => {
    let s = run(start(), ev({ type: "caught-up", count: 0, reconnect: false }));
    expect(entries(s, "lobby")).toHaveLength(0);
    s = run(s, ev({ type: "caught-up", count: 3, reconnect: false }), ev({ type: "caught-up", count: 12, reconnect: true }), ev({ type: "caught-up", count: 0, reconnect: true }));
    expect(entries(s, "lobby").flatMap((e) => (e.kind === "notice" ? [e.text] : []))).toEqual([
      "3 messages arrived while you were away", "reconnected, 12 messages caught up", "reconnected, nothing missed",
    ]);
  });

  test("/filter smart hides the lines of people who did not speak in the last 5 minutes; none hides all; all brings them back", () => {
    let s = run(start(),
      ev({ type: "message", message: msg({ conversationId: "lobby", from: "bob", text: "brb", sentAtMs: T0 }) }),
      ev({ type: "peer", peer: peer("bob", { online: false }) }, T0 + MIN),
      ev({ type: "peer", peer: peer("carol") }, T0 + MIN),
    );
    const presence = (x: TuiState) => shown(x, "lobby").filter((r) => /came online|went offline/.test(r));
    expect(presence(s)).toHaveLength(2);
    s = run(s, { type: "set-filter", conversationId: "lobby", filter: "smart" });
    expect(presence(s)).toEqual(["12:00 ← bob went offline"]);
    s = run(s, { type: "set-filter", conversationId: "lobby", filter: "none" });
    expect(presence(s)).toEqual([]);
    expect(shown(s, "lobby").some((r) => r.includes("brb"))).toBe(true);
    s = run(s, { type: "set-filter", conversationId: "lobby", filter: "all" });
    expect(presence(s)).toHaveLength(2);
    // The setting is per conversation, and "all" is the default (not stored).
    expect(s.settings.filter).toEqual({});
  });

  test("joins and leaves show in the room; a closed room is not reopened by someone else's join", () => {
    let s = run(start(), ev({ type: "room-event", room: "#ops", kind: "joined", username: "carol", members: ["alice", "bob", "carol"], atMs: T0 }));
    expect(shown(s, "#ops").at(-1)).toBe("12:00 -- carol joined #ops");
    s = run(s, { type: "set-filter", conversationId: "#ops", filter: "smart" });
    expect(shown(s, "#ops").some((r) => r.includes("carol joined"))).toBe(false); // carol never spoke
    s = run(s, { type: "close-conversation", id: "#ops" },
      ev({ type: "room-event", room: "#ops", kind: "left", username: "carol", members: ["alice", "bob"], atMs: T0 }));
    expect(s.conversations["#ops"]).toBeUndefined();
    expect(s.rooms.find((r) => r.room === "#ops")?.members).toEqual(["alice", "bob"]);
  });
});

describe("sidebar (§3)", () => {
  const peers = [ME, peer("bob", { trust: "verified" }), peer("carol", { online: false }), peer("mallory", { trust: "key-changed" })];
  const texts = (rows: ReturnType<typeof scopedSidebarRows>) => rows.map(rowText);

  test("in a room: its members with their state, online first; someone the directory does not know is offline", () => {
    expect(texts(scopedSidebarRows({ kind: "room", room: "#ops", members: ["mallory", "carol", "alice", "zed"] }, peers, "alice", 30, 10))).toEqual([
      "#ops · 4 · 2 online", "● alice (you)", "● mallory ⚠ key changed", "○ carol", "○ zed",
    ]);
    expect(texts(scopedSidebarRows({ kind: "room", room: "#gone", members: undefined }, peers, "alice", 30, 10))).toEqual(["#gone · not joined"]);
  });

  test("in the lobby: who is online, the offline ones counted; in a DM: the two of you", () => {
    expect(texts(scopedSidebarRows({ kind: "lobby" }, peers, "alice", 30, 10))).toEqual([
      "users · 3 online", "● alice (you)", "● bob ✓", "● mallory ⚠ key changed", "○ 1 offline (/users)",
    ]);
    expect(texts(scopedSidebarRows({ kind: "dm", peer: "carol" }, peers, "alice", 30, 10))).toEqual(["@carol and you", "● alice (you)", "○ carol"]);
    // While my connection is down I am offline, and still listed.
    const down = [{ ...ME, online: false }, peer("bob")];
    expect(texts(scopedSidebarRows({ kind: "lobby" }, down, "alice", 30, 10))).toEqual(["users · 1 online", "● bob", "○ alice (you)"]);
  });
});

describe("topics (§4)", () => {
  test("a topic message sets the room's topic, shows as 'bob set the topic: …' and in the header", () => {
    let s = run(start(), { type: "open-conversation", id: "#ops", focus: true },
      ev({ type: "message", message: msg({ conversationId: "#ops", from: "bob", kind: "topic", text: "deploy friday 16:00" }) }));
    expect(currentConversation(s).topic).toEqual({ text: "deploy friday 16:00", by: "bob", atMs: T0 });
    expect(shown(s, "#ops").at(-1)).toBe("12:00 -- bob set the topic: deploy friday 16:00");
    expect(rowText(headerRow(s, currentConversation(s), 100))).toBe("#ops — deploy friday 16:00 — 2 members: alice, bob");
    // A topic is not a message to count or ring for.
    s = run(s, { type: "open-conversation", id: "lobby", focus: true },
      ev({ type: "message", message: msg({ conversationId: "#ops", from: "bob", kind: "topic", text: "alice: new topic" }) }));
    expect(s.conversations["#ops"]!.highlights).toBe(0);
    expect(shouldRing({ type: "message", message: msg({ conversationId: "#ops", from: "bob", kind: "topic", text: "alice" }) }, "alice")).toBe(false);
  });

  test("the topic received last wins, whatever time its sender's clock claims (PROTOCOL.md §11)", () => {
    // The relay delivers in the order it accepted: carol's came after bob's, though her clock is behind.
    const s = run(start(),
      ev({ type: "message", message: msg({ conversationId: "#ops", from: "bob", kind: "topic", text: "bob's", sentAtMs: T0 + 10 }) }),
      ev({ type: "message", message: msg({ conversationId: "#ops", from: "carol", kind: "topic", text: "carol's", sentAtMs: T0 }) }));
    expect(s.conversations["#ops"]!.topic?.text).toBe("carol's");
  });

  test("the topic comes back from the kept history at start", () => {
    const s = start({ backlog: [msg({ conversationId: "#ops", from: "bob", kind: "topic", text: "kept topic" })] });
    expect(s.conversations["#ops"]!.topic?.text).toBe("kept topic");
  });
});

describe("away (§4)", () => {
  test("the status line says away; an automatic reply reads as one", () => {
    let s = run(start(), { type: "set-away", text: "lunch" });
    expect(s.away).toBe("lunch");
    expect(rowText(statusRow(s, T0, 120))).toContain("● connected  away");
    s = run(s, { type: "set-away" });
    expect(s.away).toBeUndefined();
    expect(rowText(statusRow(s, T0, 120))).not.toContain("away");
    const ctx = { width: 80, me: "alice", nickWidth: 5, formatTime: () => "12:00" };
    const theirs: Entry = { kind: "message", seq: 1, message: msg({ conversationId: "dm:alice:bob", from: "bob", kind: "away", text: "back at 3" }) };
    expect(entryRows(theirs, ctx).map(rowText)).toEqual(["12:00 bob    is away (automatic reply): back at 3"]);
    const mine: Entry = { kind: "message", seq: 2, message: msg({ conversationId: "dm:alice:bob", from: "alice", kind: "away", text: "lunch", state: "accepted" }) };
    expect(entryRows(mine, ctx).map(rowText)).toEqual(["12:00 alice  automatic reply (you are away): lunch ✓"]);
  });
});

describe("drafts (§4)", () => {
  function withDraft(): TuiState {
    return run(start(), type("half a thought"), { type: "open-conversation", id: "#ops", focus: true }, { type: "open-conversation", id: "lobby", focus: true });
  }

  test("a restored draft is marked in the prompt until it is edited", () => {
    let s = withDraft();
    expect(s.input.text).toBe("half a thought");
    expect(promptOf(s, currentConversation(s)).text).toBe("[lobby] (draft) > ");
    s = run(s, type("!"));
    expect(promptOf(s, currentConversation(s)).text).toBe("[lobby] > ");
    expect(s.input.text).toBe("half a thought!");
  });

  test("a command typed over a restored draft starts on a clean line; Up brings the draft back", () => {
    let s = run(withDraft(), type("/join #x"));
    expect(s.input.text).toBe("/join #x");
    expect(promptOf(s, currentConversation(s)).text).toBe("[lobby] (↑ draft) > ");
    s = run(s, { type: "input-kill", kill: "to-start" });
    expect(s.input.text).toBe("");
    s = run(s, { type: "input-up" });
    expect(s.input.text).toBe("half a thought");
    expect(promptOf(s, currentConversation(s)).text).toBe("[lobby] > ");
  });

  test("a / typed inside a draft the user is editing is just text", () => {
    const s = run(withDraft(), { type: "input-move", move: "left" }, type("/"));
    expect(s.input.text).toBe("half a though/t");
  });
});

describe("notify levels and highlight words (§4)", () => {
  const away = (s: TuiState) => run(s, { type: "open-conversation", id: "#ops", focus: true });
  const say = (text: string, conversationId = "lobby") => ev({ type: "message", message: msg({ conversationId, from: "bob", text }) });

  test("all counts every message; mentions only mentions and highlight words; none (mute) nothing", () => {
    let s = away(start());
    s = run(s, say("hello"), say("alice: ping"));
    expect([s.conversations.lobby!.unread, s.conversations.lobby!.highlights]).toEqual([2, 1]);
    s = run(s, { type: "open-conversation", id: "lobby", focus: true }, { type: "set-notify", conversationId: "lobby", level: "mentions" });
    s = run(away(s), say("hello"), say("alice: ping"), say("the deploy is done"));
    expect([s.conversations.lobby!.unread, s.conversations.lobby!.highlights]).toEqual([1, 1]);
    s = run(s, { type: "highlight", op: "add", word: "deploy" }, say("deploy again"));
    expect([s.conversations.lobby!.unread, s.conversations.lobby!.highlights]).toEqual([2, 2]);
    s = run(s, { type: "open-conversation", id: "lobby", focus: true }, { type: "set-notify", conversationId: "lobby", level: "none" });
    s = run(away(s), say("alice: ping"), say("deploy"));
    expect([s.conversations.lobby!.unread, s.conversations.lobby!.highlights]).toEqual([0, 0]);
    expect(s.settings.notify).toEqual({ lobby: "none" });
    expect(s.settings.highlights).toEqual(["deploy"]);
  });

  test("the bell follows the level and the highlight words; key changes always ring", () => {
    const settings = { ...DEFAULT_SETTINGS, notify: { "dm:alice:bob": "none" as const }, highlights: ["deploy"] };
    expect(shouldRing({ type: "message", message: msg({ conversationId: "lobby", from: "bob", text: "Deploy done" }) }, "alice", settings)).toBe(true);
    expect(shouldRing({ type: "message", message: msg({ conversationId: "lobby", from: "bob", text: "redeployed" }) }, "alice", settings)).toBe(false);
    expect(shouldRing({ type: "message", message: msg({ conversationId: "dm:alice:bob", from: "bob", text: "hi" }) }, "alice", settings)).toBe(false);
    expect(shouldRing({ type: "key-change", username: "bob", conversationId: "dm:alice:bob", held: 0 }, "alice", settings)).toBe(true);
    expect(mentions("ship the DEPLOY", "alice", ["deploy"])).toBe(true);
  });

  test("highlight words are marked in the text like my name", () => {
    const ctx = { width: 80, me: "alice", nickWidth: 5, formatTime: () => "12:00", highlights: ["deploy"] };
    const rows = entryRows({ kind: "message", seq: 1, message: msg({ conversationId: "lobby", from: "bob", text: "the deploy is done" }) }, ctx);
    expect(rows[0]!.segments.some((g) => g.text === "deploy" && g.style !== undefined)).toBe(true);
  });
});

describe("word wrapping (§4)", () => {
  test("the input wraps at word boundaries; a word wider than the row is still cut", () => {
    const rows = (text: string) => inputView("> ", { text, cursor: text.length }, 12, 5).rows.map((r) => r.lead + r.before + (r.atCursor ?? "") + r.after);
    expect(rows("hello wonderful world")).toEqual(["> hello ", "  wonderful ", "  world "]);
    expect(rows("abcdefghijklmn")).toEqual(["> abcdefghij", "  klmn "]);
    // The cursor stays on the character it was on when a word moves down.
    const v = inputView("> ", { text: "hello wonderful", cursor: 8 }, 12, 5);
    expect(v.rows[1]).toMatchObject({ before: "wo", atCursor: "n", after: "derful" });
  });

  test("messages wrap at word boundaries", () => {
    const ctx = { width: 30, me: "alice", nickWidth: 5, formatTime: () => "12:00" };
    const rows = entryRows({ kind: "message", seq: 1, message: msg({ conversationId: "lobby", from: "bob", text: "a sentence that certainly wraps somewhere" }) }, ctx).map(rowText);
    expect(rows).toEqual(["12:00 bob    a sentence that", "             certainly wraps", "             somewhere"]);
  });
});

describe("older history and closed conversations (§4)", () => {
  test("older kept messages go in front with seqs below every other; duplicates are skipped; an empty page ends it", () => {
    const live = msg({ conversationId: "#ops", from: "bob", text: "live" });
    let s = run(start(), ev({ type: "message", message: live }));
    const older = [msg({ conversationId: "#ops", from: "carol-the-long-name", text: "old 1" }), msg({ conversationId: "#ops", from: "bob", text: "old 2" }), live];
    s = run(s, { type: "older-history", conversationId: "#ops", messages: older, done: false });
    const list = entries(s, "#ops");
    expect(list.map((e) => (e.kind === "message" ? e.message.text : e.kind))).toEqual(["old 1", "old 2", "live"]);
    expect(list[0]!.seq).toBeLessThan(list[1]!.seq);
    expect(list[1]!.seq).toBeLessThan(list[2]!.seq);
    expect(list[1]!.seq).toBeLessThan(1);
    expect(s.conversations["#ops"]!.olderDone).toBeUndefined();
    expect(oldestMessage(s.conversations["#ops"]!)).toEqual({ id: older[0]!.id, from: older[0]!.from });
    s = run(s, { type: "older-history", conversationId: "#ops", messages: [older[1]!], done: false });
    expect(s.conversations["#ops"]!.olderDone).toBe(true);
    expect(wantsOlder(s.conversations["#ops"]!, 30)).toBe(false);
  });

  test("a scrolled view stays on the same entries when older ones come in front", () => {
    let s = start();
    for (let i = 0; i < 60; i++) s = run(s, ev({ type: "message", message: msg({ conversationId: "lobby", from: "bob", text: `m${i}` }) }));
    s = run(s, { type: "scroll", move: "top", viewport: { width: 80, height: 10, layout: scrollLayout } });
    expect(s.conversations.lobby!.scroll).toMatchObject({ top: 0, skip: 0 });
    expect(wantsOlder(s.conversations.lobby!, 10)).toBe(true);
    const messagesShown = (x: TuiState) => shown(x, "lobby", 80, 10).filter((r) => / m\d+$/.test(r));
    const before = messagesShown(s);
    s = run(s, { type: "older-history", conversationId: "lobby", messages: [msg({ conversationId: "lobby", from: "bob", text: "older" })], done: true });
    expect(s.conversations.lobby!.scroll).toMatchObject({ top: 1, skip: 0 });
    // The same first message on top (the day separator above it went to the older one).
    expect(messagesShown(s)[0]).toBe(before[0]);
    expect(messagesShown(s).slice(0, before.length)).toEqual(before);
    s = run(s, { type: "scroll", move: { rows: -1 }, viewport: { width: 80, height: 10, layout: scrollLayout } });
    expect(shown(s, "lobby", 80, 10)[0]).toContain("older");
  });

  test("the nick column belongs to each conversation", () => {
    const s = run(start(), ev({ type: "message", message: msg({ conversationId: "#ops", from: "a-long-username", text: "hi" }) }));
    expect(s.conversations["#ops"]!.nickWidth).toBe(12);
    expect(s.conversations.lobby!.nickWidth).toBe(5);
    expect(scrollbackContext(s, 80, s.conversations.lobby!).nickWidth).toBe(5);
  });

  test("a closed conversation is remembered; at start it stays closed (rooms too) until reopened", () => {
    const dm = msg({ conversationId: "dm:alice:bob", from: "bob", text: "kept" });
    let s = start({ backlog: [dm] });
    expect(s.order).toEqual(["lobby", "#ops", "dm:alice:bob"]);
    s = run(s, { type: "close-conversation", id: "dm:alice:bob" }, { type: "close-conversation", id: "#ops" });
    expect(s.settings.closed).toEqual(["dm:alice:bob", "#ops"]);
    const settings = parseSettings(serializeSettings(s.settings));
    let again = start({ backlog: [dm], settings });
    expect(again.order).toEqual(["lobby"]);
    // The rooms the relay lists on (re)connecting do not reopen it either.
    again = run(again, ev({ type: "rooms", rooms: [{ room: "#ops", members: ["alice", "bob"] }] }));
    expect(again.order).toEqual(["lobby"]);
    // A new message reopens it, and it is no longer closed.
    again = run(again, ev({ type: "message", message: msg({ conversationId: "dm:alice:bob", from: "bob", text: "new" }) }));
    expect(again.order).toEqual(["lobby", "dm:alice:bob"]);
    expect(again.settings.closed).toEqual(["#ops"]);
    // Reopened after /close, it is empty until its kept history is read (useOlderHistory).
    expect(wantsOlder(again.conversations["dm:alice:bob"]!, 30)).toBe(true);
  });

  test("kept settings are read defensively", () => {
    expect(parseSettings(undefined)).toEqual(DEFAULT_SETTINGS);
    expect(parseSettings("{not json")).toEqual(DEFAULT_SETTINGS);
    expect(parseSettings(JSON.stringify({
      notify: { lobby: "mentions", "#ops": "loud", "bad id": "none" },
      filter: { "#ops": "smart" },
      highlights: ["Deploy", "two words", 7, "deploy"],
      closed: ["dm:alice:bob", "lobby", "../etc"],
    }))).toEqual({ notify: { lobby: "mentions" }, filter: { "#ops": "smart" }, highlights: ["deploy"], closed: ["dm:alice:bob"] });
  });
});

describe("commands (§4, §6)", () => {
  const command = (line: string) => {
    const r = parseInput(line);
    if (!r.ok) throw new Error(r.error);
    return r.command;
  };

  test("irssi and weechat names", () => {
    expect(command("/j #ops")).toEqual({ kind: "join", room: "#ops" });
    expect(command("/part")).toEqual({ kind: "leave" });
    expect(command("/q bob")).toEqual({ kind: "query", user: "bob" });
    expect(command("/names")).toEqual({ kind: "members" });
    expect(command("/win 3")).toEqual({ kind: "switch", target: "3" });
    expect(command("/buffer 2")).toEqual({ kind: "switch", target: "2" });
    expect(command("/wc")).toEqual({ kind: "close" });
    expect(command("/reconnect")).toEqual({ kind: "reconnect" });
  });

  test("/topic, /notify, /mute, /filter, /highlight", () => {
    expect(command("/topic")).toEqual({ kind: "topic" });
    expect(command("/topic deploy friday")).toEqual({ kind: "topic", text: "deploy friday" });
    expect(parseInput(`/topic ${"x".repeat(301)}`)).toMatchObject({ ok: false, error: expect.stringContaining("at most 300") });
    expect(command("/notify MENTIONS")).toEqual({ kind: "notify", level: "mentions" });
    expect(parseInput("/notify loud")).toEqual({ ok: false, error: "/notify takes all, mentions, none, not 'loud' — usage: /notify [all|mentions|none]" });
    expect(command("/filter smart")).toEqual({ kind: "filter", filter: "smart" });
    expect(command("/mute")).toEqual({ kind: "mute" });
    expect(command("/highlight")).toEqual({ kind: "highlight", op: "list" });
    expect(command("/highlight add Deploy")).toEqual({ kind: "highlight", op: "add", word: "deploy" });
    expect(parseInput("/highlight add")).toMatchObject({ ok: false, error: expect.stringContaining("add needs a word") });
    expect(parseInput("/highlight add two words")).toMatchObject({ ok: false, error: expect.stringContaining("one word") });
  });

  test("/help lists Alt-0 and the new commands", () => {
    const help = helpLines().join("\n");
    expect(help).toContain("Alt-0");
    for (const name of ["topic", "away", "notify", "mute", "highlight", "filter", "reconnect"]) expect(COMMANDS.some((c) => c.name === name)).toBe(true);
    expect(help).toMatch(/\/j\b/);
    expect(help).toMatch(/\/wc\b/);
  });
});
