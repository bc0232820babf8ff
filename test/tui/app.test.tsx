// The whole screen, rendered in-process against the fake session: what the user types reaches
// the session, and what the session says reaches the screen.
import { afterEach, describe, expect, test } from "vitest";
import { FakeSession, fakeConfirmGroups, fakeSafetyNumber } from "../helpers/fake-session.js";
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

/** Types a line and presses Enter (as separate keystrokes, like a person). */
function enter(a: RenderedApp, line: string): void {
  a.type(line);
  a.press(KEY.enter);
}

/** The scrollback as one run of words (sidebar cut off, rows joined): wording, wherever it wrapped. */
const words = (a: RenderedApp): string => a.lines().map((l) => l.replace(/ *│.*$/, "").trim()).filter((l) => l !== "").join(" ");
const see = (a: RenderedApp, text: string) => waitFor(() => expect(words(a)).toContain(text));
/** For the sidebar and status line, which `words` leaves out or joins. */
const seeOnScreen = (a: RenderedApp, text: string) => waitFor(() => expect(a.frame()).toContain(text));
const lineWith = (a: RenderedApp, text: string): string => a.lines().find((l) => l.includes(text)) ?? "";
const inputLine = (a: RenderedApp): string => a.lines().at(-1) ?? "";

describe("the screen", () => {
  test("status line, sidebar, empty lobby and the prompt", async () => {
    const session = new FakeSession({ peers: ["bob", { username: "carol", online: false }] });
    const a = await open(session, { columns: 100, rows: 12 });
    const lines = a.lines();
    expect(lines).toHaveLength(12);
    expect(lines[0]).toMatch(/^secure-chat {2}alice@127\.0\.0\.1:50051 {2}● connected +1:lobby$/);
    expect(lines[1]).toBe("lobby — everyone online reads it · 2 online");
    expect(lines[2]).toMatch(/│ users · 2 online$/);
    expect(lines[3]).toMatch(/│ ● alice \(you\)$/);
    expect(lines[4]).toMatch(/│ ● bob$/);
    // The lobby's sidebar lists who is online and counts the others (/users lists them).
    expect(lines[5]).toMatch(/│ ○ 1 offline \(\/users\)$/);
    expect(a.frame()).toContain("Nothing here yet. What you type goes to everyone online");
    expect(inputLine(a)).toBe("[lobby] >");
  });

  test("a narrow terminal hides the sidebar, and resizing brings it back", async () => {
    const session = new FakeSession({ peers: ["bob"] });
    const a = await open(session, { columns: 50, rows: 10 });
    expect(a.frame()).not.toContain("users ·");
    expect(a.frame()).not.toContain("│");
    a.stdout.resize(80, 10);
    await seeOnScreen(a, "│ users · 2 online");
    a.stdout.resize(59, 10);
    await waitFor(() => expect(a.frame()).not.toContain("users ·"));
  });

  test("the reconnect countdown ticks with the clock", async () => {
    let now = 1_700_000_000_000;
    const session = new FakeSession({ peers: ["bob"], now: () => now });
    const a = await open(session, { clock: () => now });
    session.setConnection({ state: "reconnecting", attempt: 2, retryAtMs: now + 5_000, reason: "connection refused" });
    await seeOnScreen(a, "↻ reconnecting in 5s (connection refused)");
    now += 2_000;
    await seeOnScreen(a, "↻ reconnecting in 3s");
    session.setConnection({ state: "failed", reason: "username taken" });
    await seeOnScreen(a, "✗ failed: username taken");
  });

  test("startup notices show in the lobby", async () => {
    const a = await open(new FakeSession(), { notices: [{ level: "info", text: "Created your keys in /tmp/k/alice_key.pem" }] });
    expect(a.frame()).toMatch(/\d\d:\d\d -- Created your keys in \/tmp\/k\/alice_key\.pem/);
  });
});

describe("sending", () => {
  test("typing text and Enter sends to the lobby; the line shows … then ✓", async () => {
    const session = new FakeSession({ peers: ["bob"] });
    const a = await open(session);
    a.type("hello everyone");
    await waitFor(() => expect(inputLine(a)).toBe("[lobby] > hello everyone"));
    a.press(KEY.enter);
    await waitFor(() => expect(lineWith(a, "hello everyone")).toMatch(/^\d\d:\d\d alice {2}hello everyone …/));
    expect(session.callsOf("send")).toEqual([{ method: "send", conversationId: "lobby", text: "hello everyone", kind: "text" }]);
    expect(inputLine(a)).toBe("[lobby] >");
    session.accept(session.lastSent().id);
    await waitFor(() => expect(lineWith(a, "hello everyone")).toMatch(/alice {2}hello everyone ✓/));
  });

  test("a line and Enter in one chunk (fast typing) sends; several lines in one chunk are a paste, one message", async () => {
    const session = new FakeSession();
    const a = await open(session);
    a.type("first\r");
    await waitFor(() => expect(session.callsOf("send").map((c) => c.text)).toEqual(["first"]));
    // Nobody types a line, Enter and another line within one read: that is a paste without
    // bracketed paste, and it waits in the input as one message, as a bracketed paste does.
    a.type("second\rthird");
    await waitFor(() => expect(a.lines().slice(-2)).toEqual(["[lobby] > second", "          third"]));
    a.press(KEY.enter);
    await waitFor(() => expect(session.callsOf("send").map((c) => c.text)).toEqual(["first", "second\nthird"]));
  });

  test("editing: Backspace, Left/Right, Home/End, Delete", async () => {
    const session = new FakeSession();
    const a = await open(session);
    a.type("helo wrld");
    a.press(KEY.backspace); // "helo wrl"
    a.type("d"); // "helo wrld"
    a.press(KEY.left);
    a.press(KEY.left);
    a.press(KEY.left);
    a.type("o"); // "helo world"
    a.press(KEY.home);
    a.press(KEY.right);
    a.press(KEY.right);
    a.press(KEY.right);
    a.type("l"); // "hello world"
    a.press(KEY.end);
    a.type("!");
    a.press(KEY.home);
    a.press(KEY.delete); // "ello world!"
    a.type("H");
    await waitFor(() => expect(inputLine(a)).toBe("[lobby] > Hello world!"));
    a.press(KEY.enter);
    await waitFor(() => expect(session.callsOf("send").map((c) => c.text)).toEqual(["Hello world!"]));
  });

  test("a multi-line paste is one message with its newlines", async () => {
    const session = new FakeSession();
    const a = await open(session);
    a.press(KEY.paste("line one\nline two"));
    // The input box grows a row; nothing is sent yet.
    await waitFor(() => expect(a.lines().slice(-2)).toEqual(["[lobby] > line one", "          line two"]));
    expect(session.callsOf("send")).toEqual([]);
    a.press(KEY.enter);
    await waitFor(() => expect(session.callsOf("send").map((c) => c.text)).toEqual(["line one\nline two"]));
    await waitFor(() => {
      const lines = a.lines();
      const i = lines.findIndex((l) => /alice {2}line one$/.test(l.replace(/ *│.*$/, "")));
      expect(i).toBeGreaterThan(0);
      expect(lines[i + 1]).toMatch(/^ {13}line two …/);
    });
  });

  test("/me sends an action", async () => {
    const session = new FakeSession();
    const a = await open(session);
    enter(a, "/me waves");
    await see(a, "* alice waves …");
    expect(session.callsOf("send")).toEqual([{ method: "send", conversationId: "lobby", text: "waves", kind: "action" }]);
  });

  test("a refused send is an error line and the text stays in the input", async () => {
    const session = new FakeSession({ peers: [{ username: "bob", trust: "key-changed" }] });
    const a = await open(session);
    enter(a, "/msg bob are you there?");
    await see(a, "✗ bob's key changed: compare safety numbers with /verify bob (it shows the /trust command), or /accept bob to continue unverified");
    expect(inputLine(a)).toBe("[lobby] > /msg bob are you there?");
    expect(session.sent.size).toBe(0);
  });

  test("a failed delivery shows ✗ with the reason, and /retry sends again", async () => {
    const session = new FakeSession();
    const a = await open(session);
    enter(a, "important");
    await see(a, "important …");
    session.fail(session.lastSent().id, "rate limited");
    await see(a, "important ✗ rate limited (/retry to send again)");
    enter(a, "/retry");
    await waitFor(() => expect(session.callsOf("retry")).toHaveLength(1));
    await waitFor(() => expect(a.lines().filter((l) => l.includes("important"))).toHaveLength(2));
  });
});

describe("conversations", () => {
  test("/msg bob hi sends to dm:alice:bob and shows the DM conversation", async () => {
    const session = new FakeSession({ peers: ["bob"] });
    const a = await open(session);
    enter(a, "/msg bob hi");
    await waitFor(() => expect(inputLine(a)).toBe("[@bob] >"));
    expect(session.callsOf("send")).toEqual([{ method: "send", conversationId: "dm:alice:bob", text: "hi", kind: "text" }]);
    expect(lineWith(a, "alice  hi")).toMatch(/^\d\d:\d\d alice {2}hi …/);
    expect(a.lines()[0]).toMatch(/1:lobby {2}2:@bob$/);
    // Plain text now goes to bob.
    enter(a, "still there?");
    await waitFor(() => expect(session.callsOf("send").at(-1)).toMatchObject({ conversationId: "dm:alice:bob", text: "still there?" }));
  });

  test("an incoming DM opens its conversation with an unread count; Ctrl-N shows it", async () => {
    const session = new FakeSession({ peers: ["bob"] });
    const a = await open(session);
    session.receive("bob", "psst, alice");
    await waitFor(() => expect(a.lines()[0]).toMatch(/1:lobby {2}2:@bob \(1!\)$/));
    expect(a.frame()).not.toContain("psst");
    expect(a.bells).toHaveLength(1);
    a.press(KEY.ctrlN);
    await see(a, "bob    psst, alice");
    expect(inputLine(a)).toBe("[@bob] >");
    expect(a.lines()[0]).toMatch(/1:lobby {2}2:@bob$/);
    a.press(KEY.ctrlP);
    await waitFor(() => expect(inputLine(a)).toBe("[lobby] >"));
  });

  test("/query, /switch and /lobby move between conversations; /close closes one", async () => {
    const session = new FakeSession({ peers: ["bob", "carol"] });
    const a = await open(session);
    enter(a, "/query carol");
    await waitFor(() => expect(inputLine(a)).toBe("[@carol] >"));
    await see(a, "Private conversation with carol.");
    enter(a, "/lobby");
    await waitFor(() => expect(inputLine(a)).toBe("[lobby] >"));
    enter(a, "/switch 2");
    await waitFor(() => expect(inputLine(a)).toBe("[@carol] >"));
    enter(a, "/switch lobby");
    await waitFor(() => expect(inputLine(a)).toBe("[lobby] >"));
    enter(a, "/switch @carol");
    await waitFor(() => expect(inputLine(a)).toBe("[@carol] >"));
    enter(a, "/close");
    await waitFor(() => expect(inputLine(a)).toBe("[lobby] >"));
    expect(a.lines()[0]).toMatch(/1:lobby$/);
    enter(a, "/switch dave");
    await see(a, "no open conversation 'dave'");
  });

  test("rooms: /join, room messages, /members, /rooms, /leave", async () => {
    const session = new FakeSession({ peers: ["bob"], rooms: { "#ops": ["bob"], "#dev": ["bob"] } });
    const a = await open(session);
    enter(a, "/join ops");
    await waitFor(() => expect(inputLine(a)).toBe("[#ops] >"));
    await see(a, "you joined #ops — members: alice, bob");
    session.receive("bob", "welcome", { conversationId: "#ops" });
    await see(a, "bob    welcome");
    enter(a, "/members");
    await see(a, "#ops: 2 members: alice, bob");
    enter(a, "/rooms");
    await see(a, "rooms (2):");
    expect(a.frame()).toMatch(/#ops +2 members {2}\(joined\)/);
    expect(a.frame()).toMatch(/#dev +1 member(?!s)/);
    enter(a, "/leave");
    await waitFor(() => expect(inputLine(a)).toBe("[lobby] >"));
    await see(a, "you left #ops");
    expect(session.callsOf("leaveRoom")).toEqual([{ method: "leaveRoom", room: "#ops" }]);
  });

  test("room command errors are lines, not crashes", async () => {
    const session = new FakeSession({ peers: ["bob"] });
    const a = await open(session);
    enter(a, "/leave");
    await see(a, "/leave without a room works inside a room");
    enter(a, "/leave #nowhere");
    await see(a, "✗ you are not in #nowhere");
    enter(a, "/members #nowhere");
    await see(a, "✗ no room named #nowhere");
  });
});

describe("receiving", () => {
  test("incoming text renders as sanitised by the session: newlines indented, tabs expanded", async () => {
    const session = new FakeSession({ peers: ["bob"] });
    const a = await open(session);
    // What the session hands over after sanitising "\x1b[2Jgotcha\u202e": controls replaced.
    session.receive("bob", "\uFFFD[2Jgotcha\uFFFD\nsecond\tline", { conversationId: "lobby" });
    await see(a, "bob    \uFFFD[2Jgotcha\uFFFD");
    expect(lineWith(a, "second")).toMatch(/^ {13}second {2}line/);
    expect(a.stdout.writes.join("")).not.toContain("\u001b[2J");
  });

  test("a gap, a refused envelope and notices each show as a line", async () => {
    const session = new FakeSession({ peers: ["bob"] });
    const a = await open(session);
    session.receive("bob", "after a gap", { conversationId: "lobby", gap: true });
    session.emit({ type: "refused", conversationId: "lobby", from: "mallory" });
    session.emit({ type: "notice", level: "warn", text: "relay: slow down" });
    session.emit({ type: "notice", level: "error", text: "the relay lists keys for you that are not yours" });
    await see(a, "⚠ a message from bob may be missing");
    await see(a, "⚠ a message from mallory could not be verified and was dropped");
    await see(a, "⚠ relay: slow down");
    await see(a, "✗ the relay lists keys for you that are not yours");
  });

  test("a key change is an unmissable warning that says what to do, and the sidebar marks it", async () => {
    const session = new FakeSession({ peers: ["bob"] });
    const a = await open(session, { columns: 120 });
    session.changeKeys("bob", 0); // protocol v2 holds nothing
    await seeOnScreen(a, "│ ● bob ⚠ key changed");
    await see(a, "bob's keys changed — see @bob: /verify bob shows the safety number and the exact /trust command");
    a.press(KEY.ctrlN);
    await see(a, "⚠ WARNING: bob's keys have changed: the relay now shows another identity key for bob. Until you decide, the new key is refused");
    expect(words(a)).not.toMatch(/held|blocked/);
    expect(words(a)).toContain("Type /verify bob: it shows the safety number to compare with bob over another channel and the exact /trust command; /accept bob goes on with the new key without comparing (not verified).");
  });
});

describe("trust commands", () => {
  test("/verify bob shows the safety number and what to do next; /trust bob marks him verified", async () => {
    const session = new FakeSession({ peers: ["bob"] });
    const a = await open(session, { columns: 120, rows: 30 });
    enter(a, "/verify bob");
    await see(a, "Safety number with bob (not verified yet):");
    const groups = fakeSafetyNumber("alice", "bob").split(" ");
    expect(a.frame()).toContain(groups.slice(0, 6).join(" "));
    expect(a.frame()).toContain(groups.slice(6).join(" "));
    expect(words(a)).toContain("Compare these 60 digits with bob over another channel you trust");
    const digits = fakeConfirmGroups("bob", "unverified").join(" ");
    expect(words(a)).toContain(`If every digit matches, type /trust bob ${digits}.`);
    enter(a, "/trust bob");
    await see(a, "✗ /trust needs the digits you compared: /verify bob shows the exact command");
    a.press(KEY.ctrlU);
    enter(a, "/trust bob 12345 12345 12345");
    await see(a, "✗ those digits do not match bob's keys as they are now");
    a.press(KEY.ctrlU);
    enter(a, `/trust bob ${digits}`);
    await see(a, "bob is now marked verified ✓");
    await seeOnScreen(a, "│ ● bob ✓");
  });

  test("/verify and /trust for unknown users are error lines", async () => {
    const a = await open(new FakeSession());
    enter(a, "/verify zed");
    await see(a, "✗ no keys known for zed");
    enter(a, "/trust zed 12345 12345 12345");
    await waitFor(() => expect(words(a).match(/no keys known for zed/g)).toHaveLength(2));
    expect(inputLine(a)).toBe("[lobby] >");
  });

  test("/fingerprint shows my fingerprints", async () => {
    const a = await open(new FakeSession());
    enter(a, "/fingerprint");
    await see(a, "your key fingerprints: signing key 1a2b 3c4d 5e6f 7a8b · encryption key 9c0d 1e2f 3a4b 5c6d");
  });

  test("/users lists everyone with presence and trust", async () => {
    const session = new FakeSession({ peers: [{ username: "bob", trust: "verified" }, { username: "carol", online: false }, { username: "mallory", trust: "key-changed" }] });
    const a = await open(session, { rows: 30 });
    enter(a, "/users");
    await see(a, "users: 3 online, 1 offline");
    expect(a.frame()).toMatch(/● alice +online +you/);
    expect(a.frame()).toMatch(/● bob +online +verified ✓/);
    expect(a.frame()).toMatch(/● mallory +online +KEY CHANGED ⚠ — \/verify, then \/trust/);
    expect(a.frame()).toMatch(/○ carol +offline +not verified/);
  });
});

describe("errors and help", () => {
  test("an unknown command is an error line with a hint, and the text stays for fixing (Ctrl-U clears it)", async () => {
    const a = await open(new FakeSession());
    enter(a, "/mgs bob hi");
    await see(a, "✗ unknown command /mgs: did you mean /msg?");
    expect(inputLine(a)).toBe("[lobby] > /mgs bob hi");
    a.press(KEY.ctrlU);
    await waitFor(() => expect(inputLine(a)).toBe("[lobby] >"));
  });

  test("usage errors are lines", async () => {
    const a = await open(new FakeSession());
    enter(a, "/msg bob");
    await see(a, "✗ /msg needs a message for bob — usage: /msg <user> <text>");
  });

  test("/msg to myself is refused", async () => {
    const session = new FakeSession();
    const a = await open(session);
    enter(a, "/msg alice hi");
    await see(a, "that is you");
    expect(session.sent.size).toBe(0);
  });

  test("/help lists the commands and keys", async () => {
    const a = await open(new FakeSession(), { rows: 80, columns: 160 });
    enter(a, "/help");
    await see(a, "Commands");
    for (const text of ["/msg <user> <text>", "/verify <user>", "/trust <user>", "/join #room", "/clear", "/me <action>", "/quit", "Ctrl-N / Ctrl-P", "PgUp / PgDn", "Alt-1 … Alt-9", "Alt-Enter", "Ctrl-U"]) {
      expect(a.frame()).toContain(text);
    }
  });

  test("the scrollback shows only the newest rows that fit", async () => {
    const session = new FakeSession();
    const a = await open(session, { rows: 8 });
    for (let i = 0; i < 200; i++) session.receive("bob", `message number ${i}`, { conversationId: "lobby" });
    await see(a, "message number 199");
    // Status line, header and input take three of the eight rows.
    const shown = a.lines().filter((l) => l.includes("message number"));
    expect(shown).toHaveLength(5);
    expect(shown[0]).toContain("message number 195");
    expect(a.lines()).toHaveLength(8);
  });
});

describe("leaving", () => {
  test.each([
    ["/quit", (a: RenderedApp) => enter(a, "/quit")],
    ["/exit", (a: RenderedApp) => enter(a, "/exit")],
    ["Ctrl-C", (a: RenderedApp) => a.press(KEY.ctrlC)],
    ["Ctrl-D", (a: RenderedApp) => a.press(KEY.ctrlD)],
  ])("%s closes the session and exits with 0", async (_name, leave) => {
    const session = new FakeSession();
    const a = await open(session);
    leave(a);
    await expect(a.exited).resolves.toBe(0);
    expect(session.closed).toBe(true);
    expect(session.listenerCount).toBe(0);
  });

  test("while the session closes the screen says so and keys are ignored", async () => {
    const session = new FakeSession();
    let release!: () => void;
    session.closeGate = new Promise((resolve) => {
      release = resolve;
    });
    const a = await open(session);
    a.press(KEY.ctrlC);
    await see(a, "leaving: closing the session…");
    enter(a, "too late");
    a.press(KEY.ctrlC);
    release();
    await expect(a.exited).resolves.toBe(0);
    expect(session.callsOf("send")).toEqual([]);
    expect(session.callsOf("close")).toHaveLength(1);
  });

  test("an aborted signal leaves the same way", async () => {
    const session = new FakeSession();
    const controller = new AbortController();
    const a = await open(session, { signal: controller.signal });
    controller.abort();
    await expect(a.exited).resolves.toBe(0);
    expect(session.closed).toBe(true);
  });
});
