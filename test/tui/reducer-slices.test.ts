// The reducer's three slices (input, conversations, session) and the root that composes them:
// each slice alone does what the root does for its actions, an action that changes nothing
// returns the very same state (the store then skips the render), and the parts of each slice
// that the behaviour tests (reducer.test.ts, reducer-input.test.ts, features.test.ts, …) reach
// only indirectly are checked here directly.
import { describe, expect, test } from "vitest";
import type { ChatMessage, PeerView, SessionEvent } from "../../src/client/types.js";
import { listToArray } from "../../src/tui/state/chunked-list.js";
import { reduceConversations, type ConversationAction, type Viewport } from "../../src/tui/state/conversations-reducer.js";
import { reduceInput, settleDraftMarks, type InputAction } from "../../src/tui/state/input-reducer.js";
import { createInitialState, reducer, type Action } from "../../src/tui/state/reducer.js";
import { reduceSession, type SessionAction } from "../../src/tui/state/session-reducer.js";
import type { TuiState } from "../../src/tui/state/state.js";

const T0 = 1_700_000_000_000;
const peer = (username: string, extra: Partial<PeerView> = {}): PeerView => ({ username, online: true, trust: "unverified", you: false, ...extra });

function start(extra: Partial<Parameters<typeof createInitialState>[0]> = {}): TuiState {
  return createInitialState({
    me: "alice",
    serverLabel: "127.0.0.1:50051",
    snapshot: { connection: { state: "connected", sinceMs: T0 }, peers: [peer("bob"), peer("carol")], rooms: [{ room: "#ops", members: ["alice", "bob"] }] },
    atMs: T0,
    ...extra,
  });
}

let nextId = 1;
function msg(extra: Partial<ChatMessage> & Pick<ChatMessage, "conversationId" | "from" | "text">): ChatMessage {
  return { id: (nextId++).toString(16).padStart(32, "0"), kind: "text", sentAtMs: T0, receivedAtMs: T0, own: extra.from === "alice", ...extra };
}

const ev = (event: SessionEvent, atMs = T0): SessionAction => ({ type: "session", event, atMs });
const run = (state: TuiState, ...actions: Action[]): TuiState => actions.reduce(reducer, state);
const notices = (s: TuiState, id: string): string[] =>
  listToArray(s.conversations[id]!.entries).flatMap((e) => (e.kind === "notice" ? [e.text] : []));
/** Every entry one row: enough to scroll by. */
const viewport: Viewport = { width: 80, height: 5, layout: () => () => 1 };

describe("the root composes the slices", () => {
  test("each slice alone gives what the root gives for its own actions", () => {
    const base = run(start(), ev({ type: "message", message: msg({ conversationId: "#ops", from: "bob", text: "hi alice" }) }));
    const input: InputAction[] = [
      { type: "input-insert", text: "hello" }, { type: "input-move", move: "home" }, { type: "input-delete" },
      { type: "input-submitted", conversationId: "lobby", text: "hello" }, { type: "input-up" }, { type: "input-down" },
      { type: "paste", text: "a\nb" }, { type: "input-kill", kill: "to-start" },
    ];
    const conversations: ConversationAction[] = [
      { type: "notice", level: "info", text: "n", atMs: T0 }, { type: "open-conversation", id: "dm:alice:bob", focus: false },
      { type: "next-active" }, { type: "cycle-conversation", delta: 1 }, { type: "scroll", move: "page-up", viewport },
      { type: "clear-conversation", id: "#ops" }, { type: "close-conversation", id: "dm:alice:bob" },
    ];
    const session: SessionAction[] = [
      ev({ type: "peer", peer: peer("dave") }), ev({ type: "caught-up", count: 2, reconnect: true }),
      { type: "set-notify", conversationId: "#ops", level: "mentions" }, { type: "highlight", op: "add", word: "deploy" },
      { type: "set-away", text: "lunch" }, { type: "toggle-sidebar", shown: true, automatic: true }, { type: "quitting" },
    ];
    let viaRoot = base;
    let viaSlices = base;
    for (const a of input) [viaRoot, viaSlices] = [reducer(viaRoot, a), settleDraftMarks(viaSlices, reduceInput(viaSlices, a))];
    for (const a of conversations) [viaRoot, viaSlices] = [reducer(viaRoot, a), settleDraftMarks(viaSlices, reduceConversations(viaSlices, a))];
    for (const a of session) [viaRoot, viaSlices] = [reducer(viaRoot, a), settleDraftMarks(viaSlices, reduceSession(viaSlices, a))];
    expect(viaSlices).toEqual(viaRoot);
    // And the sequence did something in each slice.
    expect(viaRoot.history["lobby"]).toEqual(["hello"]);
    expect(viaRoot.conversations["#ops"]!.entries.length).toBe(0);
    expect(viaRoot.away).toBe("lunch");
  });

  test("an action or session event outside the unions fails loudly instead of being ignored", () => {
    expect(() => reducer(start(), { type: "no-such-action" } as unknown as Action)).toThrow(/unhandled action/);
    expect(() => reducer(start(), ev({ type: "no-such-event" } as unknown as SessionEvent))).toThrow(/unhandled action/);
  });
});

describe("an action that changes nothing returns the same state", () => {
  const s = start();
  const same: [string, Action][] = [
    ["backspace on an empty line", { type: "input-backspace" }],
    ["moving left at the start", { type: "input-move", move: "left" }],
    ["Up with no history", { type: "input-up" }],
    ["Down while not recalling", { type: "input-down" }],
    ["Tab with nothing to complete", { type: "complete", direction: 1 }],
    ["an answer with no paste waiting", { type: "paste-answer", answer: "insert" }],
    ["focusing an empty place in the bar", { type: "focus-index", index: 7 }],
    ["Alt-A with nothing active", { type: "next-active" }],
    ["closing the lobby", { type: "close-conversation", id: "lobby" }],
    ["closing a conversation that is not open", { type: "close-conversation", id: "#nope" }],
    ["clearing a conversation that is not open", { type: "clear-conversation", id: "#nope" }],
    ["scrolling where everything fits", { type: "scroll", move: "page-up", viewport }],
    ["opening the current conversation again", { type: "open-conversation", id: "lobby", focus: true }],
    ["older history for a conversation that is not open", { type: "older-history", conversationId: "#nope", messages: [], done: true }],
    ["the notify level it already has", { type: "set-notify", conversationId: "#ops", level: "all" }],
    ["the filter it already has", { type: "set-filter", conversationId: "#ops", filter: "all" }],
    ["removing a highlight word that is not there", { type: "highlight", op: "remove", word: "deploy" }],
    ["back while not away", { type: "set-away" }],
    ["the mouse as it is", { type: "set-mouse", on: false }],
    ["a first connection with nothing waiting", ev({ type: "caught-up", count: 0, reconnect: false })],
  ];
  test.each(same)("%s", (_name, action) => {
    expect(reducer(s, action)).toBe(s);
  });

  test("repeating a settings change is a no-op the second time", () => {
    const once = run(s, { type: "highlight", op: "add", word: "deploy" }, { type: "set-away", text: "lunch" }, { type: "set-notify", conversationId: "#ops", level: "none" });
    expect(run(once, { type: "highlight", op: "add", word: "deploy" }, { type: "set-away", text: "lunch" }, { type: "set-notify", conversationId: "#ops", level: "none" })).toBe(once);
  });
});

describe("input slice", () => {
  const typed = (s: TuiState, text: string): TuiState => reduceInput(s, { type: "input-insert", text });

  test("a restored draft loses its mark when edited in place, not when something else happens", () => {
    const before: TuiState = { ...start(), input: { text: "half", cursor: 4 }, draftRestored: true };
    const edited = typed(before, "!");
    expect(edited.draftRestored).toBe(true);
    expect(settleDraftMarks(before, edited).draftRestored).toBeUndefined();
    // A line arriving meanwhile leaves the input (and so the mark) alone.
    const arrived = reduceSession(before, ev({ type: "message", message: msg({ conversationId: "lobby", from: "bob", text: "x" }) }));
    expect(settleDraftMarks(before, arrived).draftRestored).toBe(true);
  });

  test("a draft set aside keeps its mark while the command is typed; sending, emptying, recalling or leaving ends it", () => {
    const restored: TuiState = { ...start(), input: { text: "half", cursor: 4 }, draftRestored: true };
    const aside = reducer(restored, { type: "input-insert", text: "/" });
    expect(aside).toMatchObject({ draftAside: true, input: { text: "/" }, history: { lobby: ["half"] } });
    expect(aside.draftRestored).toBeUndefined();
    expect(reducer(aside, { type: "input-insert", text: "w" }).draftAside).toBe(true);
    expect(reducer(aside, { type: "input-backspace" }).draftAside).toBeUndefined();
    expect(reducer(aside, { type: "input-up" })).toMatchObject({ input: { text: "half" } });
    expect(reducer(aside, { type: "input-up" }).draftAside).toBeUndefined();
    expect(reducer(aside, { type: "open-conversation", id: "#ops", focus: true }).draftAside).toBeUndefined();
    expect(reducer(aside, { type: "input-submitted", conversationId: "lobby", text: "/w" }).draftAside).toBeUndefined();
  });

  test("Up stops at the oldest line; Down past the newest brings back what was being typed", () => {
    let s = run(start(), { type: "input-submitted", conversationId: "lobby", text: "one" }, { type: "input-submitted", conversationId: "lobby", text: "two" });
    s = typed(s, "three");
    s = run(s, { type: "input-up" }, { type: "input-up" });
    expect(s.input.text).toBe("one");
    expect(reduceInput(s, { type: "input-up" })).toBe(s);
    s = run(s, { type: "input-down" }, { type: "input-down" });
    expect(s.input).toEqual({ text: "three", cursor: 5 });
    expect(s.recall).toBeUndefined();
  });

  test("an edit ends a Tab cycle but keeps the place in the history", () => {
    const recalled = run(start(), { type: "input-submitted", conversationId: "lobby", text: "/msg " }, { type: "input-up" });
    expect(recalled.input).toEqual({ text: "/msg ", cursor: 5 });
    const cycling = reduceInput(recalled, { type: "complete", direction: 1 });
    expect(cycling.completion?.candidates).toEqual(["bob", "carol"]);
    expect(cycling.recall).toEqual(recalled.recall);
    const edited = reduceInput(cycling, { type: "input-insert", text: "!" });
    expect(edited.completion).toBeUndefined();
    expect(edited.input.text).toBe("/msg bob !"); // the candidate came with its " "
    expect(edited.recall).toEqual(recalled.recall);
  });
});

describe("conversations slice", () => {
  test("closing a conversation I am not in keeps me where I am, drops its parked line, remembers it closed", () => {
    let s = run(start(), { type: "open-conversation", id: "#ops", focus: true }, { type: "input-insert", text: "for ops" }, { type: "open-conversation", id: "lobby", focus: true });
    expect(s.drafts["#ops"]?.text).toBe("for ops");
    s = reduceConversations(s, { type: "close-conversation", id: "#ops" });
    expect(s.current).toBe("lobby");
    expect(s.order).toEqual(["lobby"]);
    expect(s.drafts).toEqual({});
    expect(s.settings.closed).toEqual(["#ops"]);
    // Opening it again takes it off the closed list.
    expect(reduceConversations(s, { type: "open-conversation", id: "#ops", focus: false }).settings.closed).toEqual([]);
  });

  test("Alt-A prefers highlights over plain unread, and wraps around the bar", () => {
    let s = run(start(), { type: "open-conversation", id: "dm:alice:carol", focus: false }, { type: "open-conversation", id: "#ops", focus: true });
    // Order: lobby, dm:alice:carol, #ops; I am in #ops.
    s = run(s,
      ev({ type: "message", message: msg({ conversationId: "lobby", from: "bob", text: "plain" }) }),
      ev({ type: "message", message: msg({ conversationId: "dm:alice:carol", from: "carol", text: "for you" }) }));
    expect(s.conversations["lobby"]).toMatchObject({ unread: 1, highlights: 0 });
    s = reduceConversations(s, { type: "next-active" });
    expect(s.current).toBe("dm:alice:carol");
    s = reduceConversations(s, { type: "next-active" });
    expect(s.current).toBe("lobby");
  });

  test("a UI notice for an invalid conversation id lands in the current conversation and is not news", () => {
    let s = run(start(), { type: "open-conversation", id: "#ops", focus: true });
    s = reduceConversations(s, { type: "notice", level: "error", text: "nope", atMs: T0, conversationId: "not a conversation" });
    expect(notices(s, "#ops")).toEqual(["nope"]);
    expect(s.conversations["#ops"]).toMatchObject({ unread: 0, highlights: 0 });
  });
});

describe("session slice", () => {
  test("a snapshot opens the rooms I am in except the closed ones, and puts me in the list by the connection", () => {
    const s = start({ settings: { notify: {}, filter: {}, highlights: [], closed: ["#closed"] } });
    const next = reduceSession(s, {
      type: "snapshot",
      snapshot: { connection: { state: "connecting", attempt: 2 }, peers: [peer("bob")], rooms: [{ room: "#closed", members: ["alice"] }, { room: "#new", members: ["alice"] }] },
    });
    expect(next.order).toEqual(["lobby", "#ops", "#new"]);
    expect(next.peers).toEqual([{ username: "alice", online: false, trust: "verified", you: true }, peer("bob")]);
    expect(reduceSession(next, ev({ type: "connection", status: { state: "connected", sinceMs: T0 } })).peers[0]).toMatchObject({ username: "alice", online: true });
  });

  test("'1 message arrived while you were away' is singular", () => {
    expect(notices(reduceSession(start(), ev({ type: "caught-up", count: 1, reconnect: false })), "lobby")).toEqual(["1 message arrived while you were away"]);
  });

  test("my own leave confirmed after the room was closed does not reopen it; a room-event only updates the members", () => {
    let s = run(start(), { type: "close-conversation", id: "#ops" });
    s = reduceSession(s, ev({ type: "room-event", room: "#ops", username: "bob", kind: "left", members: ["alice"], atMs: T0 }));
    expect(s.order).toEqual(["lobby"]);
    expect(s.rooms).toEqual([{ room: "#ops", members: ["alice"] }]);
    s = reduceSession(s, ev({ type: "room-event", room: "#ops", username: "alice", kind: "left", members: [], atMs: T0 }));
    expect(s.order).toEqual(["lobby"]);
    expect(s.rooms).toEqual([]);
  });
});
