// The command runner without a screen: what each command asks of the session and which lines
// (actions) come back, including failures of the asynchronous room calls.
import { describe, expect, test } from "vitest";
import { nullLogger } from "../../src/protocol/log.js";
import { executeCommand, resolveConversation, type CommandContext } from "../../src/tui/controller/execute-command.js";
import { parseInput } from "../../src/tui/state/commands.js";
import { createInitialState, reducer, type Action } from "../../src/tui/state/reducer.js";
import type { TuiState } from "../../src/tui/state/state.js";
import { FakeSession } from "../helpers/fake-session.js";
import { waitFor } from "./helpers/wait-for.js";

const T0 = 1_700_000_000_000;

function setup(session = new FakeSession({ peers: ["bob"] })) {
  let state: TuiState = createInitialState({ me: session.me, serverLabel: session.serverLabel, snapshot: session.snapshot(), atMs: T0 });
  // Session events reach the state as the hook would deliver them.
  session.subscribe((event) => {
    state = reducer(state, { type: "session", event, atMs: T0 });
  });
  const actions: Action[] = [];
  const warnings: string[] = [];
  let quits = 0;
  const run = (line: string) => {
    const parsed = parseInput(line);
    if (!parsed.ok) throw new Error(parsed.error);
    const ctx: CommandContext = {
      session,
      state,
      dispatch: (a) => {
        actions.push(a);
        state = reducer(state, a);
      },
      now: () => T0,
      logger: { ...nullLogger, warn: (event) => warnings.push(event) },
      quit: () => quits++,
    };
    return executeCommand(parsed.command, ctx);
  };
  const notices = () => actions.flatMap((a) => (a.type === "notice" ? [`${a.level}: ${a.text}`] : []));
  return { session, run, actions, notices, warnings, quits: () => quits, state: () => state };
}

describe("executeCommand", () => {
  test("a session call that throws or rejects becomes an error line and a log entry", async () => {
    const t = setup();
    t.session.joinRoom = async () => {
      throw new Error("stream closed");
    };
    t.session.listRooms = () => {
      throw new Error("not connected");
    };
    expect(t.run("/join #ops")).toBe("clear");
    expect(t.run("/rooms")).toBe("clear");
    await waitFor(() => expect(t.notices()).toEqual(["error: /join #ops failed: stream closed", "error: /rooms failed: not connected"]));
    expect(t.warnings).toEqual(["tui.command-failed", "tui.command-failed"]);
  });

  test("only a refused message keeps the input", () => {
    const t = setup(new FakeSession({ peers: [{ username: "bob", trust: "key-changed" }] }));
    expect(t.run("/msg bob hi")).toBe("keep");
    expect(t.run("/msg alice hi")).toBe("keep");
    expect(t.run("/verify zed")).toBe("clear");
    expect(t.run("/switch nowhere")).toBe("clear");
    expect(t.notices()).toHaveLength(4);
  });

  test("/query of an unknown user warns but opens the conversation", () => {
    const t = setup();
    expect(t.run("/query zed")).toBe("clear");
    expect(t.notices()).toEqual(["warn: no user named zed is known yet; messages will fail until they have connected once"]);
    expect(t.state().current).toBe("dm:alice:zed");
  });

  test("/retry without a failed message, /close in the lobby, /quit", () => {
    const t = setup();
    t.run("/retry");
    t.run("/close");
    t.run("/quit");
    expect(t.notices()).toEqual([
      "error: no failed message of yours in this conversation to send again",
      "error: the lobby stays open (/quit leaves the chat)",
    ]);
    expect(t.quits()).toBe(1);
    expect(t.session.callsOf("retry")).toEqual([]);
  });

  test("/retry sends the latest failed message of the current conversation again", () => {
    const t = setup();
    t.run("first");
    t.run("second");
    const [first, second] = [...t.session.sent.keys()];
    t.session.fail(first!, "rate limited");
    t.session.fail(second!, "rate limited");
    expect(t.run("/retry")).toBe("clear");
    expect(t.session.callsOf("retry")).toEqual([{ method: "retry", conversationId: "lobby", id: second }]);
    expect(t.session.lastSent().text).toBe("second");
    // The next /retry moves on to the older failure.
    expect(t.run("/retry")).toBe("clear");
    expect(t.session.callsOf("retry").at(-1)).toEqual({ method: "retry", conversationId: "lobby", id: first });
    expect(t.run("/retry")).toBe("clear");
    expect(t.notices().at(-1)).toBe("error: no failed message of yours in this conversation to send again");
  });
});

describe("resolveConversation", () => {
  test("by number, lobby, #room, @user or a bare user name", () => {
    let s = createInitialState({ me: "alice", serverLabel: "x", snapshot: { connection: { state: "closed" }, peers: [], rooms: [] }, atMs: T0 });
    s = reducer(s, { type: "open-conversation", id: "#ops", focus: false });
    s = reducer(s, { type: "open-conversation", id: "dm:alice:bob", focus: false });
    expect(resolveConversation(s, "1")).toBe("lobby");
    expect(resolveConversation(s, "3")).toBe("dm:alice:bob");
    expect(resolveConversation(s, "4")).toBeUndefined();
    expect(resolveConversation(s, "lobby")).toBe("lobby");
    expect(resolveConversation(s, "#ops")).toBe("#ops");
    expect(resolveConversation(s, "@bob")).toBe("dm:alice:bob");
    expect(resolveConversation(s, "bob")).toBe("dm:alice:bob");
    expect(resolveConversation(s, "carol")).toBeUndefined();
  });
});
