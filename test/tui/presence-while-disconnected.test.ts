// Presence while the session is down (seen in tmux after the relay stopped: bob's DM header said
// "alice ● online" under "connecting (attempt 2)…"): nobody's presence is known without a
// session, so everyone else shows offline, without a presence line each; the next Welcome's
// directory shows who is online again, still without lines for those who were there before.
import { describe, expect, test } from "vitest";
import type { SessionEvent } from "../../src/client/types.js";
import { createInitialState, reducer, type Action } from "../../src/tui/state/reducer.js";
import type { TuiState } from "../../src/tui/state/state.js";

const T0 = 1_700_000_000_000;
const ev = (event: SessionEvent, atMs = T0): Action => ({ type: "session", event, atMs });
const peers = [
  { username: "bob", online: true, trust: "unverified" as const, you: false },
  { username: "carol", online: false, trust: "verified" as const, you: false },
];
const notices = (s: TuiState): number => Object.values(s.conversations).reduce((n, c) => n + c.entries.length, 0);

describe("presence while disconnected", () => {
  test("a lost session shows the others offline, silently; the next directory brings them back", () => {
    let s = createInitialState({ me: "alice", serverLabel: "x", snapshot: { connection: { state: "connected", sinceMs: T0 }, peers, rooms: [] }, atMs: T0 });
    const before = notices(s);
    s = reducer(s, ev({ type: "connection", status: { state: "reconnecting", attempt: 2, retryAtMs: T0 + 1000, reason: "relay unreachable" } }));
    expect(s.peers.filter((p) => p.online).map((p) => p.username)).toEqual([]);
    expect(s.peers.find((p) => p.username === "bob")?.trust).toBe("unverified");
    expect(notices(s)).toBe(before);
    s = reducer(s, ev({ type: "connection", status: { state: "connected", sinceMs: T0 + 2000 } }));
    s = reducer(s, ev({ type: "directory", peers }));
    expect(s.peers.filter((p) => p.online).map((p) => p.username).sort()).toEqual(["alice", "bob"]);
    expect(notices(s)).toBe(before);
  });
});
