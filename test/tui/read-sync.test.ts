// Unread state across my devices (PROTOCOL.md §11.3): a read marker from another device of mine
// (the session's "read" event) takes what came before the named message off the unread counts
// and moves the ruler; a message of mine written on another device means I read what came
// before it; the read point handed to the session is the newest message from someone else in
// the conversation on screen (none for the lobby, none while scrolled up).
import { describe, expect, test } from "vitest";
import type { ChatMessage, SessionEvent } from "../../src/client/types.js";
import { createInitialState, reducer } from "../../src/tui/state/reducer.js";
import { readPoint } from "../../src/tui/state/read-point.js";
import type { TuiState } from "../../src/tui/state/state.js";

const T0 = 1_700_000_000_000;
const DM = "dm:alice:bob";
let n = 0;
const msg = (conversationId: string, from: string, text: string, over: Partial<ChatMessage> = {}): ChatMessage =>
  ({ id: (++n).toString(16).padStart(32, "0"), conversationId, from, kind: "text", text, sentAtMs: T0, receivedAtMs: T0, own: from === "alice", ...over });
const apply = (s: TuiState, ...events: SessionEvent[]): TuiState => events.reduce((st, event) => reducer(st, { type: "session", event, atMs: T0 }), s);
const start = (): TuiState => createInitialState({
  me: "alice", serverLabel: "relay", atMs: T0,
  snapshot: { connection: { state: "connected", sinceMs: T0 }, peers: [], rooms: [{ room: "#ops", members: ["alice", "bob", "carol"] }] },
});
const m = (message: ChatMessage): SessionEvent => ({ type: "message", message });

describe("a read on another device of mine", () => {
  test("takes what came before the named message off the counts; what came after stays; the ruler moves", () => {
    const [b0, b1, b2] = [msg("#ops", "bob", "one"), msg("#ops", "bob", "alice: two"), msg("#ops", "carol", "three")];
    let s = apply(start(), m(b0), m(b1), m(b2));
    expect(s.conversations["#ops"]).toMatchObject({ unread: 3, highlights: 1 });
    s = apply(s, { type: "read", conversationId: "#ops", from: "bob", id: b1.id });
    expect(s.conversations["#ops"]).toMatchObject({ unread: 1, highlights: 0 });
    s = apply(s, { type: "read", conversationId: "#ops", from: "carol", id: b2.id });
    expect(s.conversations["#ops"]).toMatchObject({ unread: 0, highlights: 0 });
  });

  test("never raises a count; a message not shown here, or another sender's id, changes nothing", () => {
    const [b0, b1] = [msg(DM, "bob", "one"), msg(DM, "bob", "two")];
    let s = apply(start(), m(b0), m(b1));
    const before = s.conversations[DM];
    s = apply(s, { type: "read", conversationId: DM, from: "bob", id: "f".repeat(32) }, { type: "read", conversationId: DM, from: "carol", id: b0.id });
    expect(s.conversations[DM]).toBe(before);
    s = apply(s, { type: "read", conversationId: DM, from: "bob", id: b0.id });
    expect(s.conversations[DM]).toMatchObject({ unread: 1, highlights: 1 });
  });

  test("my message written on another device: nothing before it is unread here, and my scrolling is left alone", () => {
    let s = apply(start(), m(msg(DM, "bob", "one")), m(msg(DM, "bob", "two")));
    expect(s.conversations[DM]).toMatchObject({ unread: 2, highlights: 2 });
    s = apply(s, m(msg(DM, "alice", "answered on the desktop", { state: "accepted", device: "desktop" })));
    expect(s.conversations[DM]).toMatchObject({ unread: 0, highlights: 0 });
    s = apply(s, m(msg(DM, "bob", "three")));
    expect(s.conversations[DM]).toMatchObject({ unread: 1, highlights: 1 });
  });
});

describe("the read point", () => {
  test("the newest message from someone else on screen; none in the lobby or while scrolled up", () => {
    const b0 = msg(DM, "bob", "one");
    let s = apply(start(), m(b0), m(msg(DM, "alice", "mine")));
    expect(readPoint(s)).toBeUndefined(); // the lobby is on screen
    s = reducer(s, { type: "open-conversation", id: DM, focus: true });
    expect(readPoint(s)).toEqual({ conversationId: DM, from: "bob", id: b0.id });
    s = { ...s, conversations: { ...s.conversations, [DM]: { ...s.conversations[DM]!, scroll: { top: 0, skip: 0, seen: 0 } } } };
    expect(readPoint(s)).toBeUndefined();
  });
});
