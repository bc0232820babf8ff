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
