// /kick and /invite (protocol v2, PROTOCOL.md §7): parsed, completed and listed by the
// registry; the current room by default; a v1 session says in one sentence that they need v2;
// the session's refusals are worded by error-text.ts; the change itself shows as the session's
// membership line, and the sidebar follows it.
import { afterEach, describe, expect, test } from "vitest";
import type { ClientError } from "../../src/client/errors.js";
import { nullLogger } from "../../src/protocol/log.js";
import { errorText } from "../../src/tui/commands/error-text.js";
import { helpLines } from "../../src/tui/commands/help-lines.js";
import { executeCommand, type CommandContext } from "../../src/tui/controller/execute-command.js";
import { parseInput } from "../../src/tui/state/commands.js";
import { findCompletions } from "../../src/tui/state/completion.js";
import { completionSources } from "../../src/tui/state/input-reducer.js";
import { createInitialState, reducer, type Action } from "../../src/tui/state/reducer.js";
import type { TuiState } from "../../src/tui/state/state.js";
import { FakeSession } from "../helpers/fake-session.js";
import { FakeV2Session } from "../helpers/fake-session-v2.js";
import { renderApp, type RenderedApp } from "./helpers/render-app.js";
import { KEY } from "./helpers/terminal.js";
import { waitFor } from "./helpers/wait-for.js";

const T0 = 1_700_000_000_000;

function setup(session: FakeSession) {
  let state: TuiState = createInitialState({ me: session.me, serverLabel: session.serverLabel, snapshot: session.snapshot(), atMs: T0 });
  session.subscribe((event) => {
    state = reducer(state, { type: "session", event, atMs: T0 });
  });
  const actions: Action[] = [];
  const run = (line: string) => {
    const parsed = parseInput(line);
    if (!parsed.ok) throw new Error(parsed.error);
    const ctx: CommandContext = {
      session, state, now: () => T0, logger: nullLogger, quit: () => undefined,
      dispatch: (a) => {
        actions.push(a);
        state = reducer(state, a);
      },
    };
    return executeCommand(parsed.command, ctx);
  };
  const notices = () => actions.flatMap((a) => (a.type === "notice" ? [`${a.level}: ${a.text}`] : []));
  const focus = (id: string) => {
    state = reducer(state, { type: "open-conversation", id, focus: true });
  };
  return { run, notices, focus, state: () => state };
}

const v2 = () => new FakeV2Session({ peers: ["bob", "carol", "dave"], rooms: { "#ops": ["alice", "bob", "carol"], "#dev": ["bob", "alice"] } });

describe("parsing", () => {
  test("a user, then at most one room (the # optional); @ and case folded", () => {
    expect(parseInput("/kick carol")).toEqual({ ok: true, command: { kind: "kick", user: "carol" } });
    expect(parseInput("/kick @Carol ops")).toEqual({ ok: true, command: { kind: "kick", user: "carol", room: "#ops" } });
    expect(parseInput("/invite dave #dev")).toEqual({ ok: true, command: { kind: "invite", users: ["dave"], room: "#dev" } });
  });

  test("/invite takes several users (each checked, duplicates once), the room last with its #", () => {
    expect(parseInput("/invite dave @Erin dave #dev")).toEqual({ ok: true, command: { kind: "invite", users: ["dave", "erin"], room: "#dev" } });
    expect(parseInput("/invite dave erin")).toEqual({ ok: true, command: { kind: "invite", users: ["dave", "erin"] } });
    expect(parseInput("/invite #dev")).toMatchObject({ ok: false, error: expect.stringMatching(/^\/invite: '#dev' is not a username/) });
    expect(parseInput("/invite")).toEqual({ ok: false, error: "/invite needs at least one user — usage: /invite <users> [#room]" });
  });

  test("usage errors name the command's usage", () => {
    expect(parseInput("/kick")).toEqual({ ok: false, error: "/kick needs a user — usage: /kick <user> [#room]" });
    expect(parseInput("/invite dave #dev extra")).toMatchObject({ ok: false, error: expect.stringMatching(/^\/invite: '#dev' is not a username/) });
    expect(parseInput("/kick ../x")).toMatchObject({ ok: false, error: expect.stringMatching(/^\/kick: '\.\.\/x' is not a username/) });
    expect(parseInput("/invite dave #no$room")).toMatchObject({ ok: false, error: expect.stringMatching(/^\/invite: '#no\$room' is not a room name/) });
  });

  test("/help lists both (no \"protocol v2\" tag: v2 is the only protocol)", () => {
    const help = helpLines();
    expect(help).toContain("  /kick <user> [#room] — remove someone from a room you created (default: the current one; rooms are open: they can /join again)");
    expect(help).toContain("  /invite <users> [#room] — add one or more people to a room you are in (default: the current one)");
  });
});

describe("Tab completion", () => {
  test("/kick offers the current room's members (not me); /invite everyone known", () => {
    const t = setup(v2());
    t.focus("#ops");
    const sources = completionSources(t.state());
    expect(findCompletions({ text: "/kick ", cursor: 6 }, sources)?.candidates).toEqual(["bob", "carol"]);
    expect(findCompletions({ text: "/kick c", cursor: 7 }, sources)?.candidates).toEqual(["carol"]);
    expect(findCompletions({ text: "/kick d", cursor: 7 }, sources)).toBeUndefined();
    expect(findCompletions({ text: "/invite d", cursor: 9 }, sources)?.candidates).toEqual(["dave"]);
    // Every argument of /invite: the users not typed yet, then a room after "#".
    expect(findCompletions({ text: "/invite dave ", cursor: 13 }, sources)?.candidates).toEqual(["bob", "carol"]);
    expect(findCompletions({ text: "/invite dave c", cursor: 14 }, sources)).toEqual({ start: 13, candidates: ["carol"], suffix: " " });
    expect(findCompletions({ text: "/invite dave carol #d", cursor: 21 }, sources)?.candidates).toEqual(["#dev"]);
    // Outside a room there is nobody to kick.
    t.focus("lobby");
    expect(findCompletions({ text: "/kick ", cursor: 6 }, completionSources(t.state()))).toBeUndefined();
  });
});

describe("running them", () => {
  test("/kick in the room I created removes the member: one line from the session, the members follow", async () => {
    const session = v2();
    const t = setup(session);
    t.focus("#ops");
    expect(t.run("/kick carol")).toBe("clear");
    await waitFor(() => expect(session.membershipCalls).toEqual([{ method: "kick", room: "#ops", username: "carol" }]));
    expect(t.state().rooms.find((r) => r.room === "#ops")?.members).toEqual(["alice", "bob"]);
    expect(t.notices()).toEqual([]);
  });

  test("named from elsewhere, the room is the one named, and the outcome is said where it was typed", async () => {
    const session = v2();
    const t = setup(session);
    t.run("/invite dave #ops");
    await waitFor(() => expect(t.notices()).toEqual(["info: dave was added to #ops"]));
    expect(session.membershipCalls).toEqual([{ method: "invite", room: "#ops", username: "dave" }]);
    expect(t.state().rooms.find((r) => r.room === "#ops")?.members).toEqual(["alice", "bob", "carol", "dave"]);
  });

  test("several users: one call, one line where it was typed; a refusal says nobody was added", async () => {
    const session = v2();
    const t = setup(session);
    t.run("/invite dave erin #ops");
    await waitFor(() => expect(t.notices()).toEqual(["info: dave and erin were added to #ops"]));
    expect(session.membershipCalls).toEqual([{ method: "inviteMany", room: "#ops", username: "dave,erin" }]);
    expect(t.state().rooms.find((r) => r.room === "#ops")?.members).toEqual(["alice", "bob", "carol", "dave", "erin"]);
    t.run("/invite frank bob #ops");
    await waitFor(() => expect(t.notices()).toHaveLength(2));
    expect(t.notices()[1]).toBe("error: nobody was added to #ops: bob is already in #ops");
    expect(t.state().rooms.find((r) => r.room === "#ops")?.members).not.toContain("frank");
  });

  test("several users in the current room: the session's one membership line says it, nothing else", async () => {
    const session = v2();
    const t = setup(session);
    t.focus("#ops");
    t.run("/invite dave erin");
    await waitFor(() => expect(session.membershipCalls).toHaveLength(1));
    await waitFor(() => expect(t.state().rooms.find((r) => r.room === "#ops")?.members).toContain("erin"));
    expect(t.notices()).toEqual([]);
  });

  test("outside a room without one: a usage sentence, nothing asked of the session", () => {
    const session = v2();
    const t = setup(session);
    t.run("/kick carol");
    t.run("/invite dave");
    expect(t.notices()).toEqual([
      "error: /kick without a room works inside a room — usage: /kick <user> [#room]",
      "error: /invite without a room works inside a room — usage: /invite <users> [#room]",
    ]);
    expect(session.membershipCalls).toEqual([]);
  });

  test("a v1 session (no kick/invite): one sentence that this needs protocol v2", () => {
    const t = setup(new FakeSession({ peers: ["bob"], rooms: { "#ops": ["alice", "bob"] } }));
    t.focus("#ops");
    t.run("/kick bob");
    t.run("/invite carol");
    expect(t.notices()).toEqual([
      "error: /kick needs secure-chat protocol v2 and this session speaks v1, where a room has no creator and nobody can remove a member",
      "error: /invite needs secure-chat protocol v2 and this session speaks v1, where people join a room themselves (/join #ops)",
    ]);
  });

  test("myself: said, not asked", () => {
    const session = v2();
    const t = setup(session);
    t.focus("#ops");
    t.run("/kick alice");
    t.run("/invite alice");
    expect(t.notices()).toEqual(["error: that is you: /leave #ops leaves the room", "error: that is you: /invite adds someone else to #ops"]);
    expect(session.membershipCalls).toEqual([]);
  });

  test("the session's refusals, in error-text.ts's words", async () => {
    const session = new FakeV2Session({
      peers: ["bob", "carol", "dave"], rooms: { "#ops": ["alice", "bob", "carol"], "#dev": ["bob", "alice"] }, withoutKeyPackage: ["dave"],
    });
    const t = setup(session);
    const expected: ClientError[] = [
      { kind: "not-the-creator", room: "#dev", creator: "bob" },
      { kind: "not-in-room", room: "#ops", username: "dave" },
      { kind: "no-key-package", username: "dave" },
      { kind: "already-in-room", room: "#ops", username: "bob" },
    ];
    t.run("/kick bob #dev");
    await waitFor(() => expect(t.notices()).toHaveLength(1));
    t.run("/kick dave #ops");
    await waitFor(() => expect(t.notices()).toHaveLength(2));
    t.run("/invite dave #ops");
    await waitFor(() => expect(t.notices()).toHaveLength(3));
    t.run("/invite bob #ops");
    await waitFor(() => expect(t.notices()).toHaveLength(4));
    expect(t.notices()).toEqual(expected.map((e) => `error: ${errorText(e)}`));
    expect(t.notices()[0]).toBe("error: only bob, who created #dev, can remove its members");
    // Nothing changed.
    expect(t.state().rooms.find((r) => r.room === "#dev")?.members).toEqual(["bob", "alice"]);
  });
});

describe("on the screen", () => {
  let app: RenderedApp | undefined;
  afterEach(() => {
    app?.unmount();
    app = undefined;
  });
  const words = (a: RenderedApp): string => a.lines().map((l) => l.replace(/ *│.*$/, "").trim()).filter((l) => l !== "").join(" ");
  const sidebar = (a: RenderedApp): string[] => a.lines().flatMap((l) => (l.includes("│") ? [l.replace(/^.*│ ?/, "").trim()] : [])).filter((l) => l !== "");

  test("/kick with Tab, the line, the sidebar; someone else's refused removal shows as a warning", async () => {
    const session = v2();
    app = renderApp(session, { columns: 100, rows: 16 });
    await app.ready();
    app.press(KEY.alt("3"));
    await waitFor(() => expect(sidebar(app!)[0]).toBe("#ops · 3 · 3 online"));
    app.type("/kick ca");
    app.press(KEY.tab);
    await waitFor(() => expect(words(app!)).toContain("/kick carol"));
    app.press(KEY.enter);
    await waitFor(() => expect(words(app!)).toContain("-- you removed carol from #ops"));
    await waitFor(() => expect(sidebar(app!)[0]).toBe("#ops · 2 · 2 online"));
    session.membership("#ops", { kind: "refused", by: "bob", users: ["alice"], creator: "alice" });
    await waitFor(() => expect(words(app!)).toContain("⚠ bob tried to remove you from #ops; only you can"));
    session.membership("#ops", { kind: "added", by: "bob", users: ["dave"] });
    await waitFor(() => expect(words(app!)).toContain("-- bob added dave"));
    await waitFor(() => expect(sidebar(app!)[0]).toBe("#ops · 3 · 3 online"));
  });
});
