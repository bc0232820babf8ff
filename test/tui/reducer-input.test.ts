// The input line in the reducer: history per conversation (Up / Down), half-typed lines that
// stay with their conversation, Tab completion that cycles, and pastes (a large one waits for
// a yes or no).
import { describe, expect, test } from "vitest";
import type { PeerView } from "../../src/client/types.js";
import { LARGE_PASTE_BYTES, LARGE_PASTE_LINES } from "../../src/tui/state/paste.js";
import { createInitialState, reducer, type Action } from "../../src/tui/state/reducer.js";
import type { TuiState } from "../../src/tui/state/state.js";

const T0 = 1_700_000_000_000;
const peer = (username: string): PeerView => ({ username, online: true, trust: "unverified", you: false });

function start(): TuiState {
  return createInitialState({
    me: "alice",
    serverLabel: "127.0.0.1:50051",
    snapshot: { connection: { state: "connected", sinceMs: T0 }, peers: [peer("bob"), peer("bobby"), peer("carol")], rooms: [{ room: "#ops", members: ["alice", "bob"] }] },
    atMs: T0,
  });
}
const run = (state: TuiState, ...actions: Action[]): TuiState => actions.reduce(reducer, state);
const type = (text: string): Action => ({ type: "input-insert", text });
const sent = (text: string, conversationId = "lobby"): Action => ({ type: "input-submitted", conversationId, text });
const up: Action = { type: "input-up" };
const down: Action = { type: "input-down" };
const tab: Action = { type: "complete", direction: 1 };
const shiftTab: Action = { type: "complete", direction: -1 };
const focus = (id: string): Action => ({ type: "open-conversation", id, focus: true });

describe("history", () => {
  test("Up walks back through what was sent here, Down comes forward to the line being typed", () => {
    let s = run(start(), sent("first"), sent("second"), sent("third"), type("draft"));
    s = run(s, up);
    expect(s.input).toEqual({ text: "third", cursor: 5 });
    s = run(s, up, up);
    expect(s.input.text).toBe("first");
    expect(run(s, up).input.text).toBe("first"); // the oldest stays
    s = run(s, down, down);
    expect(s.input.text).toBe("third");
    s = run(s, down);
    expect(s.input).toEqual({ text: "draft", cursor: 5 });
    expect(s.recall).toBeUndefined();
    expect(run(s, down)).toBe(s);
  });

  test("each conversation has its own history", () => {
    let s = run(start(), sent("in the lobby"), focus("#ops"), sent("in ops", "#ops"));
    expect(run(s, up).input.text).toBe("in ops");
    expect(run(s, up, up).input.text).toBe("in ops");
    s = run(s, focus("lobby"), up);
    expect(s.input.text).toBe("in the lobby");
  });

  test("blank lines and repeats are not remembered; the history is bounded", () => {
    let s = run(start(), sent("same"), sent("same"), sent("   "));
    expect(s.history["lobby"]).toEqual(["same"]);
    for (let i = 0; i < 600; i++) s = run(s, sent(`line ${i}`));
    expect(s.history["lobby"]).toHaveLength(500);
    expect(s.history["lobby"]?.at(-1)).toBe("line 599");
  });

  test("in a multi-line input, Up and Down move between its lines first", () => {
    let s = run(start(), sent("older"), { type: "paste", text: "one\ntwo" });
    s = run(s, up);
    expect(s.input).toEqual({ text: "one\ntwo", cursor: 3 });
    s = run(s, up);
    expect(s.input.text).toBe("older");
  });

  test("a submitted line clears the input of the conversation it was typed in", () => {
    // "/query carol" switched to @carol before the line was cleared: the lobby's input empties.
    let s = run(start(), type("/query carol"), focus("dm:alice:carol"));
    expect(s.drafts["lobby"]?.text).toBe("/query carol");
    s = run(s, sent("/query carol", "lobby"));
    expect(s.drafts["lobby"]).toBeUndefined();
    expect(s.history["lobby"]).toEqual(["/query carol"]);
    s = run(s, focus("lobby"));
    expect(s.input.text).toBe("");
  });
});

describe("half-typed lines", () => {
  test("stay with their conversation while the user is elsewhere", () => {
    let s = run(start(), type("for the lobby"), focus("#ops"));
    expect(s.input.text).toBe("");
    s = run(s, type("for ops"), { type: "cycle-conversation", delta: -1 });
    expect(s.current).toBe("lobby");
    expect(s.input.text).toBe("for the lobby");
    expect(s.drafts).toEqual({ "#ops": { text: "for ops", cursor: 7 } });
    s = run(s, { type: "close-conversation", id: "#ops" });
    expect(s.drafts).toEqual({});
  });
});

describe("Tab completion", () => {
  test("completes, and repeated Tab cycles through the candidates (Shift-Tab backwards)", () => {
    let s = run(start(), type("/m"), tab);
    expect(s.input.text).toBe("/me ");
    s = run(s, tab);
    expect(s.input.text).toBe("/members ");
    s = run(s, tab);
    expect(s.input.text).toBe("/mouse ");
    s = run(s, tab, tab, tab);
    expect(s.input.text).toBe("/me "); // round again (past /msg and /mute)
    s = run(s, shiftTab);
    expect(s.input.text).toBe("/mute ");
    s = run(s, shiftTab);
    expect(s.input.text).toBe("/msg ");
    // Another key ends the cycle: the next Tab completes the next word.
    s = run(s, type("bo"), tab);
    expect(s.input.text).toBe("/msg bob ");
    s = run(s, tab);
    expect(s.input.text).toBe("/msg bobby ");
  });

  test("a single candidate is final; nothing to offer changes nothing", () => {
    let s = run(start(), type("ca"), tab);
    expect(s.input).toEqual({ text: "carol: ", cursor: 7 });
    expect(s.completion).toBeUndefined();
    s = run(start(), type("zzz"));
    expect(run(s, tab)).toBe(s);
  });

  test("knows the rooms and who spoke here last", () => {
    let s = run(start(), type("/join o"), tab);
    expect(s.input.text).toBe("/join #ops ");
    s = run(start(),
      { type: "session", atMs: T0, event: { type: "message", message: { id: "1", conversationId: "lobby", from: "bobby", kind: "text", text: "hi", sentAtMs: T0, receivedAtMs: T0, own: false } } },
      type("b"), tab);
    expect(s.input.text).toBe("bobby: ");
  });
});

describe("pastes", () => {
  test("a normal paste goes into the line as it is, newlines included", () => {
    const s = run(start(), type("> "), { type: "paste", text: "line one\r\nline two\u001b[2J" });
    expect(s.input).toEqual({ text: "> line one\nline two[2J", cursor: 22 });
    expect(s.pendingPaste).toBeUndefined();
  });

  test(`more than ${LARGE_PASTE_LINES} lines or ${LARGE_PASTE_BYTES} bytes waits for an answer`, () => {
    const many = Array.from({ length: LARGE_PASTE_LINES + 1 }, (_, i) => `line ${i}`).join("\n");
    let s = run(start(), { type: "paste", text: many });
    expect(s.pendingPaste).toMatchObject({ lines: 21, conversationId: "lobby" });
    expect(s.input.text).toBe("");
    expect(run(s, { type: "paste-answer", answer: "drop" })).toMatchObject({ input: { text: "" } });
    expect(run(s, { type: "paste-answer", answer: "drop" }).pendingPaste).toBeUndefined();
    s = run(s, { type: "paste-answer", answer: "insert" });
    expect(s.input.text).toBe(many);
    expect(s.pendingPaste).toBeUndefined();
    // Exactly at the limits is still a normal paste; one byte more is not.
    const twenty = Array.from({ length: LARGE_PASTE_LINES }, () => "x").join("\n");
    expect(run(start(), { type: "paste", text: twenty }).pendingPaste).toBeUndefined();
    expect(run(start(), { type: "paste", text: "é".repeat(LARGE_PASTE_BYTES / 2) }).pendingPaste).toBeUndefined();
    expect(run(start(), { type: "paste", text: `${"é".repeat(LARGE_PASTE_BYTES / 2)}x` }).pendingPaste).toMatchObject({ bytes: LARGE_PASTE_BYTES + 1, lines: 1 });
  });

  test("switching conversations drops a pending question", () => {
    const many = "x\n".repeat(30);
    const s = run(start(), { type: "paste", text: many }, focus("#ops"));
    expect(s.pendingPaste).toBeUndefined();
  });
});
