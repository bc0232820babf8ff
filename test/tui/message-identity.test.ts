// A message is its sender and its id, not its id alone. The content layer de-duplicates by
// (sender, message id) (PROTOCOL.md §11.1), and every member reads the others' ids, so a member
// may send a message carrying someone else's id: it is a message of its own, shown as a line of
// its own, and it must never take the other message's line, state or search hit.
import { describe, expect, test } from "vitest";
import type { ChatMessage, SessionEvent } from "../../src/client/types.js";
import { listToArray } from "../../src/tui/state/chunked-list.js";
import { createInitialState, reducer, type Action } from "../../src/tui/state/reducer.js";
import { searchEverywhere } from "../../src/tui/state/search.js";
import type { TuiState } from "../../src/tui/state/state.js";

const T0 = 1_700_000_000_000;
const ID = "c0ffee00c0ffee00c0ffee00c0ffee00";
const start = (): TuiState => createInitialState({
  me: "alice", serverLabel: "relay",
  snapshot: { connection: { state: "connected", sinceMs: T0 }, peers: [], rooms: [{ room: "#ops", members: ["alice", "carol", "mallory"] }] },
  atMs: T0,
});
const msg = (conversationId: string, from: string, text: string, extra: Partial<ChatMessage> = {}): ChatMessage =>
  ({ id: ID, conversationId, from, kind: "text", text, sentAtMs: T0, receivedAtMs: T0, own: from === "alice", ...extra });
const ev = (event: SessionEvent): Action => ({ type: "session", event, atMs: T0 });
const run = (s: TuiState, ...actions: Action[]): TuiState => actions.reduce(reducer, s);
const lines = (s: TuiState, id: string): string[] =>
  listToArray(s.conversations[id]!.entries).flatMap((e) => (e.kind === "message" ? [`${e.message.from}: ${e.message.text}${e.message.state ? ` [${e.message.state}]` : ""}`] : []));

describe("a member reuses another member's message id", () => {
  test("mallory's message under carol's id is a line of its own; carol's line stays in its place", () => {
    const s = run(start(),
      ev({ type: "message", message: msg("lobby", "carol", "meet at 5 at the north gate") }),
      ev({ type: "message", message: msg("lobby", "carol", "bring the documents", { id: "01".repeat(16) }) }),
      ev({ type: "message", message: msg("lobby", "mallory", "meet at 9 at the south gate") }));
    expect(lines(s, "lobby")).toEqual([
      "carol: meet at 5 at the north gate",
      "carol: bring the documents",
      "mallory: meet at 9 at the south gate",
    ]);
  });

  test("the same in a room I am not looking at: counted as one more unread message", () => {
    const s = run(start(),
      ev({ type: "message", message: msg("#ops", "carol", "deploy at noon") }),
      ev({ type: "message", message: msg("#ops", "mallory", "deploy cancelled") }));
    expect(lines(s, "#ops")).toEqual(["carol: deploy at noon", "mallory: deploy cancelled"]);
    expect(s.conversations["#ops"]!.unread).toBe(2);
  });

  test("the same message again from its own sender is still shown once (the kept page, then the live copy)", () => {
    const carols = msg("#ops", "carol", "deploy at noon");
    let s = run(start(), { type: "older-history", conversationId: "#ops", messages: [carols], done: true });
    s = run(s, ev({ type: "message", message: carols }));
    expect(lines(s, "#ops")).toEqual(["carol: deploy at noon"]);
  });

  test("a peer reusing my message's id neither replaces my line nor gets my delivery state", () => {
    const mine = msg("#ops", "alice", "the release is green", { state: "pending" });
    let s = run(start(),
      ev({ type: "message", message: mine }),
      ev({ type: "message", message: msg("#ops", "mallory", "the release is red") }));
    expect(lines(s, "#ops")).toEqual(["alice: the release is green [pending]", "mallory: the release is red"]);
    s = run(s, ev({ type: "message-state", conversationId: "#ops", id: ID, state: "failed", failure: "refused" }));
    expect(lines(s, "#ops")).toEqual(["alice: the release is green [failed]", "mallory: the release is red"]);
    s = run(s, { type: "message-retried", conversationId: "#ops", id: ID });
    const entries = listToArray(s.conversations["#ops"]!.entries);
    expect(entries.map((e) => (e.kind === "message" ? [e.message.from, e.retried === true] : []))).toEqual([["alice", true], ["mallory", false]]);
  });

  test("a state event for my id touches only my message, also when a peer's with that id came first", () => {
    const s = run(start(),
      ev({ type: "message", message: msg("#ops", "mallory", "first, with the id alice will use") }),
      ev({ type: "message", message: msg("#ops", "alice", "mine", { state: "pending" }) }),
      ev({ type: "message", message: msg("#ops", "carol", "after both", { id: "02".repeat(16) }) }),
      ev({ type: "message-state", conversationId: "#ops", id: ID, state: "accepted" }));
    expect(lines(s, "#ops")).toEqual(["mallory: first, with the id alice will use", "alice: mine [accepted]", "carol: after both"]);
  });

  test("my other device's message is never given this device's delivery state", () => {
    const s = run(start(),
      ev({ type: "message", message: msg("#ops", "alice", "from my desktop", { device: "desktop", state: "accepted" }) }),
      ev({ type: "message-state", conversationId: "#ops", id: ID, state: "failed", failure: "refused" }));
    expect(lines(s, "#ops")).toEqual(["alice: from my desktop [accepted]"]);
  });

  test("an older page holding another sender's message with a shown id still shows it", () => {
    const live = msg("#ops", "carol", "shown live");
    let s = run(start(), ev({ type: "message", message: live }));
    s = run(s, { type: "older-history", conversationId: "#ops", messages: [msg("#ops", "mallory", "kept earlier")], done: true });
    expect(lines(s, "#ops")).toEqual(["mallory: kept earlier", "carol: shown live"]);
  });

  test("/search lists both messages, each once", () => {
    const carols = msg("#ops", "carol", "the gate code is 1234");
    const mallorys = msg("#ops", "mallory", "the gate code is 9999");
    const s = run(start(), ev({ type: "message", message: carols }), ev({ type: "message", message: mallorys }));
    const found = searchEverywhere([s.conversations["#ops"]!.entries], [carols, mallorys], "gate code", () => "12:00", (id) => id);
    expect(found.total).toBe(2);
    expect(found.lines).toEqual(["  12:00 #ops carol: the gate code is 1234", "  12:00 #ops mallory: the gate code is 9999"]);
  });
});
