// The whole screen driven with the bytes a terminal sends: switching conversations, scrolling
// back while messages arrive, the unread ruler, completion, history, multi-line input, large
// pastes, the sidebar key, the mouse wheel, and trust shown everywhere.
import { afterEach, describe, expect, test } from "vitest";
import { dmIdFor } from "../../src/client/types.js";
import { MOUSE_REPORTING_OFF, MOUSE_REPORTING_ON } from "../../src/tui/hooks/useMouseWheel.js";
import { FakeSession, fakeConfirmGroups } from "../helpers/fake-session.js";
import { renderApp, type RenderAppOptions, type RenderedApp } from "./helpers/render-app.js";
import { KEY } from "./helpers/terminal.js";
import { waitFor } from "./helpers/wait-for.js";

let app: RenderedApp | undefined;
afterEach(() => {
  app?.unmount();
  app = undefined;
});

async function open(session: FakeSession, options: RenderAppOptions = {}): Promise<RenderedApp> {
  app = renderApp(session, options);
  await app.ready();
  return app;
}

function enter(a: RenderedApp, line: string): void {
  a.type(line);
  a.press(KEY.enter);
}

const inputLine = (a: RenderedApp): string => a.lines().at(-1) ?? "";
/** The scrollback column: rows without the sidebar. */
const body = (a: RenderedApp): string[] => a.lines().slice(2, -1).map((l) => l.replace(/ *│.*$/, ""));
const seeOnScreen = (a: RenderedApp, text: string) => waitFor(() => expect(a.frame()).toContain(text));
const notOnScreen = (a: RenderedApp, text: string) => waitFor(() => expect(a.frame()).not.toContain(text));

function lobbyMessages(session: FakeSession, n: number, prefix = "msg", from = "bob"): void {
  for (let i = 0; i < n; i++) session.receive(from, `${prefix} ${String(i).padStart(3, "0")}`, { conversationId: "lobby" });
}

describe("switching conversations with keys", () => {
  test("Alt-digits, Ctrl-N and Ctrl-P show each conversation's own history", async () => {
    const session = new FakeSession({ peers: ["bob", "carol"], rooms: { "#ops": ["alice", "bob"] } });
    const a = await open(session);
    session.receive("bob", "lobby talk", { conversationId: "lobby" });
    session.receive("bob", "ops talk", { conversationId: "#ops" });
    session.receive("carol", "a secret for alice");
    await waitFor(() => expect(a.lines()[0]).toMatch(/1:lobby {2}2:#ops \(1\) {2}3:@carol \(1!\)$/));
    a.press(KEY.alt("2"));
    await waitFor(() => expect(inputLine(a)).toBe("[#ops] >"));
    expect(body(a).join("\n")).toContain("ops talk");
    expect(body(a).join("\n")).not.toContain("lobby talk");
    a.press(KEY.alt("3"));
    await waitFor(() => expect(inputLine(a)).toBe("[@carol] >"));
    expect(body(a).join("\n")).toContain("a secret for alice");
    expect(a.lines()[0]).toMatch(/1:lobby {2}2:#ops {2}3:@carol$/);
    a.press(KEY.ctrlN);
    await waitFor(() => expect(inputLine(a)).toBe("[lobby] >"));
    expect(body(a).join("\n")).toContain("lobby talk");
    a.press(KEY.ctrlP);
    await waitFor(() => expect(inputLine(a)).toBe("[@carol] >"));
    a.press(KEY.alt("9")); // no ninth conversation: nothing happens
    a.press(KEY.alt("1"));
    await waitFor(() => expect(inputLine(a)).toBe("[lobby] >"));
  });

  test("Alt-A goes where the activity is, mentions and DMs first", async () => {
    const session = new FakeSession({ peers: ["bob"], rooms: { "#ops": ["alice", "bob"], "#dev": ["alice", "bob"] } });
    const a = await open(session);
    session.receive("bob", "chatter", { conversationId: "#dev" });
    session.receive("bob", "alice, a question", { conversationId: "#ops" });
    await waitFor(() => expect(a.lines()[0]).toContain("(1!)"));
    a.press(KEY.alt("a"));
    await waitFor(() => expect(inputLine(a)).toBe("[#ops] >"));
    a.press(KEY.alt("a"));
    await waitFor(() => expect(inputLine(a)).toBe("[#dev] >"));
  });

  test("/query <user> opens the DM; the half-typed line stays where it was typed", async () => {
    const session = new FakeSession({ peers: ["bob"] });
    const a = await open(session);
    a.type("for the lobby, later");
    a.press(KEY.ctrlN); // only the lobby: stays
    await waitFor(() => expect(inputLine(a)).toBe("[lobby] > for the lobby, later"));
    a.press(KEY.ctrlU);
    enter(a, "/query bob");
    await waitFor(() => expect(inputLine(a)).toBe("[@bob] >"));
    a.type("half a thought");
    a.press(KEY.alt("1"));
    await waitFor(() => expect(inputLine(a)).toBe("[lobby] >"));
    a.press(KEY.alt("2"));
    // The restored line is marked as the draft it is.
    await waitFor(() => expect(inputLine(a)).toBe("[@bob] (draft) > half a thought"));
  });
});

describe("scrollback", () => {
  test("PgUp reads history; new messages do not move it and the marker counts them; Ctrl-End returns", async () => {
    const session = new FakeSession({ peers: ["bob"] });
    const a = await open(session, { columns: 80, rows: 12 });
    lobbyMessages(session, 60);
    await seeOnScreen(a, "msg 059");
    a.press(KEY.pageUp);
    await seeOnScreen(a, "-- more below (");
    const held = body(a).slice(0, -1);
    expect(held.join("\n")).not.toContain("msg 059");
    lobbyMessages(session, 5, "live");
    await seeOnScreen(a, "5 new");
    expect(body(a).slice(0, -1)).toEqual(held);
    expect(body(a).at(-1)).toMatch(/^-- more below \(\d+\) -- 5 new/);
    a.press(KEY.ctrlEnd);
    await seeOnScreen(a, "live 004");
    await notOnScreen(a, "more below");
  });

  test("Home and End edit the line (scroll when it is empty); Ctrl-Home / Alt-Home jump to the oldest message, Esc comes back", async () => {
    const session = new FakeSession({ peers: ["bob"] });
    const a = await open(session, { columns: 80, rows: 12 });
    lobbyMessages(session, 40);
    await seeOnScreen(a, "msg 039");
    a.type("abc");
    a.press(KEY.home);
    a.type(">");
    a.press(KEY.end);
    a.type("<");
    await waitFor(() => expect(inputLine(a)).toBe("[lobby] > >abc<"));
    expect(a.frame()).not.toContain("more below");
    a.press(KEY.ctrlHome);
    await seeOnScreen(a, "msg 000");
    await seeOnScreen(a, "more below (");
    a.press(KEY.ctrlEnd);
    await notOnScreen(a, "more below");
    a.press(KEY.altHome);
    await seeOnScreen(a, "msg 000");
    a.press(KEY.escape);
    await notOnScreen(a, "more below");
    // Sending brings a scrolled view down too.
    a.press(KEY.pageUp);
    await seeOnScreen(a, "more below");
    a.press(KEY.enter);
    await seeOnScreen(a, ">abc< …");
    await notOnScreen(a, "more below");
    // With nothing typed, Home and End scroll to the ends.
    a.press(KEY.home);
    await seeOnScreen(a, "msg 000");
    a.press(KEY.end);
    await notOnScreen(a, "more below");
  });

  test("the mouse wheel scrolls only after /mouse on, which turns the terminal's reporting on and off", async () => {
    const session = new FakeSession({ peers: ["bob"] });
    const a = await open(session, { columns: 80, rows: 12 });
    lobbyMessages(session, 40);
    await seeOnScreen(a, "msg 039");
    expect(a.stdout.writes.join("")).not.toContain(MOUSE_REPORTING_ON);
    enter(a, "/mouse on");
    await waitFor(() => expect(a.stdout.writes.join("")).toContain(MOUSE_REPORTING_ON));
    await seeOnScreen(a, "mouse wheel scrolling is on");
    a.press(KEY.wheelUp);
    await seeOnScreen(a, "more below (");
    // Reports mixed with typing in one chunk: the keys still arrive, the reports are not text.
    a.press(`hi${KEY.wheelUp}!`);
    await waitFor(() => expect(inputLine(a)).toBe("[lobby] > hi!"));
    a.press(KEY.wheelDown + KEY.wheelDown + KEY.wheelDown);
    await notOnScreen(a, "more below");
    a.press(KEY.ctrlU);
    enter(a, "/mouse off");
    await waitFor(() => expect(a.stdout.writes.join("")).toContain(MOUSE_REPORTING_OFF));
    // Off: a report (were one to come) is not a scroll.
    a.press(KEY.wheelUp);
    a.type("z");
    await waitFor(() => expect(inputLine(a)).toBe("[lobby] > z"));
    expect(a.frame()).not.toContain("more below");
  });

  test("the unread ruler marks where I left a conversation", async () => {
    const session = new FakeSession({ peers: ["bob"], rooms: { "#ops": ["alice", "bob"] } });
    const a = await open(session, { columns: 80, rows: 16 });
    lobbyMessages(session, 3, "seen");
    await seeOnScreen(a, "seen 002");
    a.press(KEY.alt("2"));
    await waitFor(() => expect(inputLine(a)).toBe("[#ops] >"));
    lobbyMessages(session, 2, "missed");
    await waitFor(() => expect(a.lines()[0]).toContain("1:lobby (2)"));
    a.press(KEY.alt("1"));
    await seeOnScreen(a, "missed 001");
    const rows = body(a).filter((l) => l.trim() !== "");
    const ruler = rows.findIndex((l) => /^── unread ─+$/.test(l));
    expect(ruler).toBeGreaterThan(0);
    expect(rows[ruler - 1]).toContain("seen 002");
    expect(rows[ruler + 1]).toContain("missed 000");
  });

  test("/clear empties this conversation on screen and forgets its history", async () => {
    const session = new FakeSession({ peers: ["bob"] });
    const a = await open(session);
    lobbyMessages(session, 3);
    await seeOnScreen(a, "msg 002");
    enter(a, "/clear");
    await notOnScreen(a, "msg 002");
    await seeOnScreen(a, "Nothing here yet.");
    expect(session.callsOf("forgetHistory")).toEqual([{ method: "forgetHistory", conversationId: "lobby" }]);
  });
});

describe("typing", () => {
  test("Tab completes commands, users and rooms, cycling on repeated Tab", async () => {
    const session = new FakeSession({ peers: ["bob", "bobby"], rooms: { "#ops": ["alice"] } });
    const a = await open(session);
    a.type("/ve");
    a.press(KEY.tab);
    await waitFor(() => expect(inputLine(a)).toBe("[lobby] > /verify"));
    a.type("bo");
    a.press(KEY.tab);
    await waitFor(() => expect(inputLine(a)).toBe("[lobby] > /verify bob"));
    a.press(KEY.tab);
    await waitFor(() => expect(inputLine(a)).toBe("[lobby] > /verify bobby"));
    a.press(KEY.shiftTab);
    await waitFor(() => expect(inputLine(a)).toBe("[lobby] > /verify bob"));
    a.press(KEY.ctrlU);
    a.type("see #o");
    a.press(KEY.tab);
    await waitFor(() => expect(inputLine(a)).toBe("[lobby] > see #ops"));
  });

  test("Up and Down recall the lines sent in this conversation", async () => {
    const session = new FakeSession({ peers: ["bob"], rooms: { "#ops": ["alice", "bob"] } });
    const a = await open(session);
    enter(a, "first in the lobby");
    enter(a, "second in the lobby");
    await waitFor(() => expect(session.callsOf("send")).toHaveLength(2));
    a.press(KEY.alt("2"));
    enter(a, "only in ops");
    await waitFor(() => expect(session.callsOf("send")).toHaveLength(3));
    a.press(KEY.up);
    await waitFor(() => expect(inputLine(a)).toBe("[#ops] > only in ops"));
    a.press(KEY.up);
    a.press(KEY.down);
    await waitFor(() => expect(inputLine(a)).toBe("[#ops] >"));
    a.press(KEY.alt("1"));
    a.type("draft");
    a.press(KEY.up);
    await waitFor(() => expect(inputLine(a)).toBe("[lobby] > second in the lobby"));
    a.press(KEY.up);
    await waitFor(() => expect(inputLine(a)).toBe("[lobby] > first in the lobby"));
    a.press(KEY.down);
    a.press(KEY.down);
    await waitFor(() => expect(inputLine(a)).toBe("[lobby] > draft"));
  });

  test("Ctrl-A / Ctrl-E, Alt-B / Alt-F, Ctrl-W, Ctrl-K and Ctrl-U edit the line", async () => {
    const session = new FakeSession();
    const a = await open(session);
    a.type("one two three");
    a.press(KEY.alt("b"));
    a.press(KEY.alt("b"));
    a.type("2 ");
    await waitFor(() => expect(inputLine(a)).toBe("[lobby] > one 2 two three"));
    a.press(KEY.alt("f"));
    a.press(KEY.ctrlW);
    await waitFor(() => expect(inputLine(a)).toBe("[lobby] > one 2  three"));
    a.press(KEY.ctrlA);
    a.type("[");
    a.press(KEY.ctrlE);
    a.type("]");
    await waitFor(() => expect(inputLine(a)).toBe("[lobby] > [one 2  three]"));
    a.press(KEY.ctrlLeft);
    a.press(KEY.ctrlK);
    await waitFor(() => expect(inputLine(a)).toBe("[lobby] > [one 2"));
    a.press(KEY.ctrlU);
    await waitFor(() => expect(inputLine(a)).toBe("[lobby] >"));
    a.type("x");
    a.press(KEY.ctrlD); // with text: deletes (at the end: nothing), does not leave
    a.press(KEY.left);
    a.press(KEY.ctrlD);
    await waitFor(() => expect(inputLine(a)).toBe("[lobby] >"));
    expect(session.closed).toBe(false);
  });

  test("a long line wraps in the input box, which grows a row at a time", async () => {
    const session = new FakeSession();
    const a = await open(session, { columns: 40, rows: 12 });
    a.type("a".repeat(60));
    // Two full rows; the cursor after the last character starts a third.
    await waitFor(() => expect(a.lines().slice(-3)).toEqual([`[lobby] > ${"a".repeat(30)}`, `          ${"a".repeat(30)}`, ""]));
    expect(a.lines()).toHaveLength(12);
    a.press(KEY.enter);
    await waitFor(() => expect(session.callsOf("send").map((c) => c.text)).toEqual(["a".repeat(60)]));
    await waitFor(() => expect(inputLine(a)).toBe("[lobby] >"));
  });

  test("Alt-Enter starts a new line; Enter sends both lines as one message", async () => {
    const session = new FakeSession();
    const a = await open(session);
    a.type("first line");
    a.press(KEY.altEnter);
    a.type("second line");
    await waitFor(() => expect(a.lines().slice(-2)).toEqual(["[lobby] > first line", "          second line"]));
    a.press(KEY.enter);
    await waitFor(() => expect(session.callsOf("send").map((c) => c.text)).toEqual(["first line\nsecond line"]));
  });

  test("a large paste asks first: y sends it as one message, e puts it in the line, n drops it", async () => {
    const session = new FakeSession();
    const a = await open(session, { columns: 120 });
    const big = Array.from({ length: 30 }, (_, i) => `pasted line ${i}`).join("\n");
    a.press(KEY.paste(big));
    await seeOnScreen(a, "⚠ Paste of 30 lines");
    a.type("x"); // anything else is ignored while it asks
    a.press(KEY.enter);
    expect(session.callsOf("send")).toEqual([]);
    a.type("y");
    await waitFor(() => expect(session.callsOf("send").map((c) => c.text)).toEqual([big]));
    await notOnScreen(a, "⚠ Paste of");
    a.press(KEY.paste(big));
    await seeOnScreen(a, "⚠ Paste of 30 lines");
    a.type("n");
    await notOnScreen(a, "⚠ Paste of");
    expect(inputLine(a)).toBe("[lobby] >");
    a.press(KEY.paste(big));
    await seeOnScreen(a, "⚠ Paste of 30 lines");
    a.type("e");
    await seeOnScreen(a, "pasted line 29");
    expect(session.callsOf("send")).toHaveLength(1);
  });
});

describe("the screen", () => {
  test("Alt-U hides and shows the users sidebar", async () => {
    const session = new FakeSession({ peers: ["bob"] });
    const a = await open(session, { columns: 100, rows: 12 });
    await seeOnScreen(a, "│ users · 2 online");
    a.press(KEY.alt("u"));
    await notOnScreen(a, "users ·");
    a.press(KEY.alt("u"));
    await seeOnScreen(a, "│ users · 2 online");
    // On a narrow terminal it is hidden by itself, and Alt-U can still show it.
    a.stdout.resize(50, 12);
    await notOnScreen(a, "users ·");
    a.press(KEY.alt("u"));
    await seeOnScreen(a, "users · 2 online");
  });

  test("resizing re-flows everything at every size down to 40x10, and the input keeps working", async () => {
    const session = new FakeSession({ peers: ["bob", "a-long-user-name", { username: "mallory", trust: "key-changed" }], rooms: { "#ops": ["alice", "bob"] } });
    const a = await open(session, { columns: 120, rows: 30 });
    session.receive("a-long-user-name", `${"a rather long message that wraps ".repeat(6)}漢字 and 👍 too`, { conversationId: "lobby" });
    session.receive("bob", "line one\nline two\n\tindented", { conversationId: "lobby" });
    session.emit({ type: "key-change", username: "mallory", conversationId: dmIdFor("alice", "mallory"), held: 2 });
    enter(a, "/verify bob");
    a.type("a draft that is long enough to wrap in a narrow input box, it really is");
    await seeOnScreen(a, "Safety number with bob");
    const sizes = [[40, 10], [41, 11], [45, 10], [59, 12], [60, 12], [80, 24], [100, 15], [40, 40], [200, 10], [120, 30]] as const;
    for (const [columns, rows] of sizes) {
      a.stdout.resize(columns, rows);
      await waitFor(() => {
        const lines = a.lines();
        expect(lines, `${columns}x${rows}`).toHaveLength(rows);
        for (const line of lines) expect([...line].length, `${columns}x${rows}: ${line}`).toBeLessThanOrEqual(columns);
        expect(lines[0]).toContain("● connected");
        // The end of the draft is in the input box, wherever the wrapping fell.
        expect("a draft that is long enough to wrap in a narrow input box, it really is".endsWith(lines.at(-1)!.replace(/^\[lobby\] > /, "").trim()), `${columns}x${rows}: ${lines.at(-1)}`).toBe(true);
      });
    }
    // Tiny terminals do not crash either.
    a.stdout.resize(20, 5);
    await waitFor(() => expect(a.lines().length).toBeGreaterThan(0));
    a.stdout.resize(40, 10);
    await waitFor(() => expect(a.lines()).toHaveLength(10));
    a.press(KEY.ctrlU);
    enter(a, "still works");
    await waitFor(() => expect(session.callsOf("send").map((c) => c.text)).toEqual(["still works"]));
  });

  test("a key change: the DM says the new key is refused until you decide; after /verify and /trust, verified everywhere", async () => {
    const session = new FakeSession({ peers: ["bob"] });
    const a = await open(session, { columns: 120, rows: 30 });
    session.changeKeys("bob", 0); // protocol v2 holds nothing
    await seeOnScreen(a, "@bob⚠");
    a.press(KEY.alt("2"));
    await waitFor(() => expect(inputLine(a)).toBe("[@bob ⚠ key changed] >"));
    expect(a.lines()[1]).toBe("@bob ⚠ KEY CHANGED — new key refused until you decide: /verify bob, compare with bob, then /trust (or /accept bob)");
    expect(a.frame()).toContain("WARNING: bob's keys have changed: the relay now shows another identity key for bob.");
    enter(a, "hello?");
    await seeOnScreen(a, "✗ bob's key changed: compare safety numbers with /verify bob");
    expect(inputLine(a)).toBe("[@bob ⚠ key changed] > hello?");
    a.press(KEY.ctrlU);
    enter(a, "/verify bob");
    await seeOnScreen(a, "Safety number with bob's NEW keys");
    const digits = fakeConfirmGroups("bob", "key-changed").join(" ");
    expect(a.frame()).toContain(`If every digit matches, type /trust bob ${digits}`);
    enter(a, `/trust bob ${digits}`);
    await waitFor(() => expect(inputLine(a)).toBe("[@bob] >"));
    expect(a.lines()[1]).toBe("@bob ✓ verified ● online");
    expect(a.lines()[0]).toMatch(/2:@bob✓$/);
    expect(a.frame()).toContain("│ ● bob ✓");
    enter(a, "hello again");
    await waitFor(() => expect([...session.sent.values()].map((m) => m.text)).toEqual(["hello again"]));
  });

  test("Alt-R sends the last failed message here again", async () => {
    const session = new FakeSession();
    const a = await open(session);
    enter(a, "important");
    await seeOnScreen(a, "important …");
    session.fail(session.lastSent().id, "rate limited");
    await seeOnScreen(a, "(/retry to send again)");
    a.press(KEY.alt("r"));
    await waitFor(() => expect(session.callsOf("retry")).toHaveLength(1));
    await seeOnScreen(a, "(sent again below)");
  });

  test("the bell rings for a mention or a DM, not for other messages", async () => {
    const session = new FakeSession({ peers: ["bob"] });
    const a = await open(session);
    session.receive("bob", "just chatting", { conversationId: "lobby" });
    await seeOnScreen(a, "just chatting");
    expect(a.bells).toHaveLength(0);
    session.receive("bob", "alice: look", { conversationId: "lobby" });
    await waitFor(() => expect(a.bells).toHaveLength(1));
    session.receive("bob", "psst");
    await waitFor(() => expect(a.bells).toHaveLength(2));
  });

  test("joining a room shows one line, naming the members", async () => {
    const session = new FakeSession({ peers: ["bob"], rooms: { "#ops": ["bob"] } });
    const a = await open(session);
    enter(a, "/join #ops");
    await seeOnScreen(a, "you joined #ops — members: alice, bob");
    expect(a.frame()).not.toContain("alice joined #ops");
    expect(a.frame().match(/joined #ops/g)).toHaveLength(1);
  });
});
