// The command runner without a screen: what each command asks of the session and which lines
// (actions) come back, including failures of the asynchronous room calls.
import { describe, expect, test } from "vitest";
import { nullLogger } from "../../src/protocol/log.js";
import { resolveConversation } from "../../src/tui/commands/switch.js";
import { executeCommand, type CommandContext } from "../../src/tui/controller/execute-command.js";
import { listFrom } from "../../src/tui/state/chunked-list.js";
import { parseInput } from "../../src/tui/state/commands.js";
import { searchMessages } from "../../src/tui/state/search.js";
import { createInitialState, reducer, type Action } from "../../src/tui/state/reducer.js";
import type { Entry, TuiState } from "../../src/tui/state/state.js";
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

describe("/search", () => {
  test("lists the newest matching messages of every conversation, case-insensitively, oldest first, each with its conversation", () => {
    const session = new FakeSession({ peers: ["bob"], now: () => T0 });
    const t = setup(session);
    for (let i = 0; i < 40; i++) session.receive("bob", i % 2 === 0 ? `Deploy step ${i}` : `other ${i}`, { conversationId: "lobby" });
    session.receive("bob", "deploy in the DM only");
    session.receive("bob", "a long one about the deploy\nwith a second line", { conversationId: "lobby" });
    t.run("/search DEPLOY");
    const [head, ...lines] = (t.notices().at(-1) ?? "").split("\n");
    // 20 steps and the long one in the lobby, one in the DM: the newest 20 are listed, oldest first.
    expect(head).toBe('info: 22 messages contain "DEPLOY"; the newest 20:');
    expect(lines).toHaveLength(20);
    expect(lines[0]).toMatch(/lobby bob: Deploy step 4$/);
    expect(lines.filter((l) => /\d lobby bob: /.test(l))).toHaveLength(19);
    expect(lines.filter((l) => /\d @bob bob: deploy in the DM only$/.test(l))).toHaveLength(1);
    expect(lines.at(-1)).toMatch(/^ {2}\d{4}-\d\d-\d\d \d\d:\d\d lobby bob: a long one about the deploy …$/);
  });

  test("shows actions as actions, and refuses an empty text", () => {
    const entries = listFrom<Entry>([
      { kind: "notice", seq: 1, atMs: T0, level: "info", text: "a notice about waves is not a message" },
      { kind: "message", seq: 2, message: { id: "01", conversationId: "lobby", from: "bob", kind: "action", text: "waves", sentAtMs: T0, receivedAtMs: T0, own: false } },
    ]);
    expect(searchMessages(entries, "WAVES", () => "12:00")).toEqual({ lines: ["  12:00 * bob waves"], total: 1 });
    expect(() => searchMessages(entries, "  ", () => "12:00")).toThrow(TypeError);
  });

  test("says so when nothing matches", () => {
    const t = setup();
    t.run("/search nothing like this");
    expect(t.notices()).toEqual(['info: no message in any conversation contains "nothing like this"']);
  });
});

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

  test("only a refused message keeps the input", async () => {
    const t = setup(new FakeSession({ peers: [{ username: "bob", trust: "key-changed" }] }));
    expect(t.run("/msg bob hi")).toBe("keep");
    expect(t.run("/msg alice hi")).toBe("keep");
    expect(t.run("/verify zed")).toBe("clear");
    expect(t.run("/switch nowhere")).toBe("clear");
    // /verify answers once the keys were looked up.
    await waitFor(() => expect(t.notices()).toHaveLength(4));
    expect(t.notices()).toContain("error: no keys known for zed: run /verify zed first");
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

  test("/retry all sends every failed message of the current conversation again, oldest first, once", () => {
    const t = setup();
    for (const text of ["one", "two", "three", "fine"]) t.run(text);
    const [one, two, three] = [...t.session.sent.keys()];
    t.session.fail(one!, "rate limited");
    t.session.fail(three!, "rate limited");
    t.session.fail(two!, "rate limited");
    expect(t.run("/retry all")).toBe("clear");
    expect(t.session.callsOf("retry")).toEqual([
      { method: "retry", conversationId: "lobby", id: one },
      { method: "retry", conversationId: "lobby", id: two },
      { method: "retry", conversationId: "lobby", id: three },
    ]);
    expect(t.notices().at(-1)).toBe("info: 3 failed messages sent again, in their order");
    // Each was sent again once: another /retry all (or /retry) finds nothing left.
    expect(t.run("/retry all")).toBe("clear");
    expect(t.run("/retry")).toBe("clear");
    expect(t.session.callsOf("retry")).toHaveLength(3);
    expect(t.notices().slice(-2)).toEqual([
      "error: no failed message of yours in this conversation to send again",
      "error: no failed message of yours in this conversation to send again",
    ]);
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

describe("/trust and /accept (issue 9 §3)", () => {
  test("/trust passes the digits typed to the session and says what it did; /accept is a separate, unverified step", () => {
    const t = setup(new FakeSession({ peers: [{ username: "bob", trust: "key-changed" }] }));
    t.run("/trust bob 11111 22222 33333");
    expect(t.session.callsOf("trust")).toEqual([{ method: "trust", username: "bob", groups: ["11111", "22222", "33333"] }]);
    expect(t.notices().at(-1)).toMatch(/^error: those digits do not match bob's keys/);
    expect(t.state().peers.find((p) => p.username === "bob")?.trust).toBe("key-changed");
    t.run("/accept bob");
    expect(t.notices().at(-1)).toBe("warn: continuing with bob's new key, NOT verified (compare with /verify bob when you can); from now on it may join your conversations; anything it sent before was refused (ask bob to send it again)");
    expect(t.state().peers.find((p) => p.username === "bob")?.trust).toBe("unverified");
    t.run("/accept bob");
    expect(t.notices().at(-1)).toBe("error: bob's keys have not changed: nothing to accept (/verify bob to compare safety numbers)");
  });
});
