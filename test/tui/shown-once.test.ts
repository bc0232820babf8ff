// A message is shown once even when the kept history already gave it to the screen: history is
// written before the UI hears of a message, so opening a conversation with my /msg (shorter than
// the pane: an older page is read from disk at once) can read the message I just sent before
// its live event is drawn. Seen on protocol v2 (a DM's first message waits for its group).
import { describe, expect, test } from "vitest";
import type { ChatMessage } from "../../src/client/types.js";
import { listToArray } from "../../src/tui/state/chunked-list.js";
import { createInitialState, reducer } from "../../src/tui/state/reducer.js";
import type { TuiState } from "../../src/tui/state/state.js";

const T0 = 1_700_000_000_000;
const DM = "dm:alice:bob";
const mine: ChatMessage = { id: "aa01", conversationId: DM, from: "alice", kind: "text", text: "hi bob", sentAtMs: T0, receivedAtMs: T0, own: true, state: "pending" };
const start = (): TuiState => createInitialState({ me: "alice", serverLabel: "relay", snapshot: { connection: { state: "connected", sinceMs: T0 }, peers: [], rooms: [] }, atMs: T0 });
const messages = (s: TuiState) => listToArray(s.conversations[DM]!.entries).flatMap((e) => (e.kind === "message" ? [e.message] : []));

describe("a message the history page already showed", () => {
  test("my own: one line, and its state follows the live events", () => {
    let s = reducer(start(), { type: "open-conversation", id: DM, focus: true });
    s = reducer(s, { type: "older-history", conversationId: DM, messages: [mine], done: true });
    s = reducer(s, { type: "session", event: { type: "message", message: mine }, atMs: T0 });
    s = reducer(s, { type: "session", event: { type: "message-state", conversationId: DM, id: mine.id, state: "accepted" }, atMs: T0 });
    expect(messages(s).map((m) => [m.id, m.state])).toEqual([["aa01", "accepted"]]);
  });

  test("someone else's: one line, not counted twice as unread", () => {
    const theirs: ChatMessage = { ...mine, id: "bb02", from: "bob", own: false };
    let s = reducer(start(), { type: "open-conversation", id: DM, focus: false });
    s = reducer(s, { type: "older-history", conversationId: DM, messages: [theirs], done: true });
    s = reducer(s, { type: "session", event: { type: "message", message: theirs }, atMs: T0 });
    expect(messages(s).map((m) => m.id)).toEqual(["bb02"]);
    expect(s.conversations[DM]!.unread).toBe(0);
  });

  test("different ids are both shown", () => {
    let s = reducer(start(), { type: "open-conversation", id: DM, focus: true });
    s = reducer(s, { type: "older-history", conversationId: DM, messages: [mine], done: true });
    s = reducer(s, { type: "session", event: { type: "message", message: { ...mine, id: "aa02" } }, atMs: T0 });
    expect(messages(s).map((m) => m.id)).toEqual(["aa01", "aa02"]);
  });
});

describe("protocol v2: the lobby header counts who reads a lobby line", () => {
  test("v1 (nothing known): online only; v2: the lobby group's members as the session said", async () => {
    const { headerRow } = await import("../../src/tui/view/header-row.js");
    const { rowText } = await import("../../src/tui/view/row.js");
    const lobby = (s: TuiState) => rowText(headerRow(s, s.conversations["lobby"]!, 120));
    const s0 = start();
    expect(lobby(s0)).not.toContain("can read");
    const s1 = reducer(s0, { type: "lobby-members", members: ["alice", "bob", "carol"] });
    expect(lobby(s1)).toContain("3 can read new lines");
    expect(lobby(reducer(s1, { type: "lobby-members", members: ["alice"] }))).toContain("1 can read new lines");
  });
});
