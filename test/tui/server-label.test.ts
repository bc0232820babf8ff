// Several relays (--server a,b, issue 14): the status row names the relay in use, and follows a
// move (the session's label changes; useChatSession dispatches server-label on connection events).
import { describe, expect, test } from "vitest";
import { createInitialState, reducer } from "../../src/tui/state/reducer.js";
import { statusRow } from "../../src/tui/view/status-row.js";

const T0 = 1_700_000_000_000;

describe("server label", () => {
  test("a move to another relay changes the status row's relay; the same label changes nothing", () => {
    let s = createInitialState({ me: "alice", serverLabel: "a:50051 (1 of 2)", snapshot: { connection: { state: "connected", sinceMs: T0 }, peers: [], rooms: [] }, atMs: T0 });
    const before = s;
    expect(reducer(s, { type: "server-label", label: "a:50051 (1 of 2)" })).toBe(before);
    s = reducer(s, { type: "server-label", label: "b:50051 (2 of 2)" });
    expect(s.serverLabel).toBe("b:50051 (2 of 2)");
    const text = JSON.stringify(statusRow(s, T0, 120));
    expect(text).toContain("alice@b:50051 (2 of 2)");
    expect(text).not.toContain("a:50051");
  });
});
