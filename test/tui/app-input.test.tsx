// The whole App fed the bytes of one read holding several keys (a fast typist, SSH lag, a busy
// client, tmux send-keys): every control key acts, in order; a paste without bracketed paste is
// one message (or asks when large), never one message per line; Ctrl-L repaints the screen;
// Alt-J goes up to the unread ruler.
import { afterEach, describe, expect, test } from "vitest";
import { CLEAR_SCREEN } from "../../src/tui/App.js";
import { FakeSession } from "../helpers/fake-session.js";
import { renderApp, type RenderAppOptions, type RenderedApp } from "./helpers/render-app.js";
import { KEY, stripAnsi } from "./helpers/terminal.js";
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

const inputLine = (a: RenderedApp): string => a.lines().at(-1) ?? "";
const body = (a: RenderedApp): string[] => a.lines().slice(2, -1).map((l) => l.replace(/ *│.*$/, ""));
const sent = (s: FakeSession): string[] => s.callsOf("send").map((c) => c.text);

describe("several keys in one read", () => {
  test("control keys after a word, two control keys together, Tab after text: all act, in order", async () => {
    const session = new FakeSession({ peers: ["bob"] });
    const a = await open(session);
    a.type(`one two three${KEY.ctrlW}${KEY.ctrlW}four${KEY.ctrlA}>${KEY.ctrlE}<`);
    await waitFor(() => expect(inputLine(a)).toBe("[lobby] > >one four<"));
    a.type(`${KEY.ctrlU}x${KEY.alt("b")}[${KEY.alt("f")}]${KEY.ctrlA}${KEY.ctrlK}hi @b${KEY.tab}`);
    await waitFor(() => expect(inputLine(a)).toBe("[lobby] > hi @bob"));
    a.type(`${KEY.alt("b")}${KEY.alt("d")}bob!${KEY.enter}`);
    await waitFor(() => expect(sent(session)).toEqual(["hi bob! "]));
    expect(inputLine(a)).toBe("[lobby] >");
  });

  test("a command completed with Tab and sent, in one read", async () => {
    const session = new FakeSession({ peers: ["bob"] });
    const a = await open(session);
    a.type(`/que${KEY.tab}bo${KEY.tab}${KEY.enter}`);
    await waitFor(() => expect(inputLine(a)).toBe("[@bob] >"));
  });

  test("30 Ctrl-W right after a word, while messages arrive: none lost", async () => {
    const session = new FakeSession({ peers: ["bob"] });
    const a = await open(session);
    for (let i = 0; i < 30; i++) {
      session.receive("bob", `busy ${i}`, { conversationId: "lobby" });
      a.type(`word${i}${KEY.ctrlW}`);
    }
    a.type("done");
    await waitFor(() => expect(inputLine(a)).toBe("[lobby] > done"));
  });
});

describe("a paste without bracketed paste", () => {
  test("several lines in one read are one message, sent with Enter", async () => {
    const session = new FakeSession();
    const a = await open(session, { columns: 120 });
    a.type("first pasted line\rsecond pasted line\rthird pasted line");
    await waitFor(() => expect(a.lines().slice(-3)).toEqual(["[lobby] > first pasted line", "          second pasted line", "          third pasted line"]));
    expect(sent(session)).toEqual([]);
    a.press(KEY.enter);
    await waitFor(() => expect(sent(session)).toEqual(["first pasted line\nsecond pasted line\nthird pasted line"]));
  });

  test("200 lines in a few reads: one question, never 200 messages; y sends it as one", async () => {
    const session = new FakeSession();
    const a = await open(session, { columns: 120 });
    const lines = Array.from({ length: 200 }, (_, i) => `pasted line ${i}`);
    const raw = lines.join("\r") + "\r";
    for (let at = 0; at < raw.length; at += 1000) a.type(raw.slice(at, at + 1000));
    await waitFor(() => expect(a.frame()).toContain("⚠ Paste of 201 lines"));
    expect(sent(session)).toEqual([]);
    a.type("y");
    await waitFor(() => expect(sent(session)).toEqual([`${lines.join("\n")}\n`]));
  });

  test("what is pasted while a large paste asks joins it: nothing replaced, nothing slips into the line", async () => {
    const session = new FakeSession();
    const a = await open(session, { columns: 120 });
    const big = Array.from({ length: 30 }, (_, i) => `pasted line ${i}`).join("\n");
    a.press(KEY.paste(big));
    await waitFor(() => expect(a.frame()).toContain("⚠ Paste of 30 lines"));
    a.press(KEY.paste("\nthe rest\nof it"));
    await waitFor(() => expect(a.frame()).toContain("⚠ Paste of 32 lines"));
    a.type("y");
    await waitFor(() => expect(sent(session)).toEqual([`${big}\nthe rest\nof it`]));
  });

  test("a line and Enter typed by hand still send", async () => {
    const session = new FakeSession();
    const a = await open(session);
    a.type("by hand");
    a.press(KEY.enter);
    await waitFor(() => expect(sent(session)).toEqual(["by hand"]));
  });
});

describe("Ctrl-L and Alt-J", () => {
  test("Ctrl-L clears the terminal and draws the whole screen again", async () => {
    const session = new FakeSession({ peers: ["bob"] });
    const a = await open(session);
    a.type("half typed");
    await waitFor(() => expect(inputLine(a)).toBe("[lobby] > half typed"));
    const before = a.stdout.writes.length;
    a.press("\u000c");
    await waitFor(() => {
      const after = a.stdout.writes.slice(before);
      const clear = after.findIndex((w) => w.includes(CLEAR_SCREEN));
      expect(clear).toBeGreaterThanOrEqual(0);
      // After the clear, a whole frame: the status line, the sidebar and the input.
      const frame = stripAnsi(after.slice(clear + 1).join(""));
      expect(frame).toContain("● connected");
      expect(frame).toContain("[lobby] > half typed");
    });
    // The key typed nothing.
    expect(inputLine(a)).toBe("[lobby] > half typed");
  });

  test("Alt-J (and Alt-Shift-U) go up to the unread ruler; Esc comes back to the newest", async () => {
    const session = new FakeSession({ peers: ["bob"], rooms: { "#ops": ["alice", "bob"] } });
    const a = await open(session, { columns: 80, rows: 14 });
    for (let i = 0; i < 5; i++) session.receive("bob", `seen ${i}`, { conversationId: "lobby" });
    await waitFor(() => expect(a.frame()).toContain("seen 4"));
    a.press(KEY.alt("2"));
    await waitFor(() => expect(inputLine(a)).toBe("[#ops] >"));
    for (let i = 0; i < 30; i++) session.receive("bob", `missed ${String(i).padStart(2, "0")}`, { conversationId: "lobby" });
    await waitFor(() => expect(a.lines()[0]).toContain("1:lobby (30)"));
    a.press(KEY.alt("1"));
    await waitFor(() => expect(a.frame()).toContain("missed 29"));
    expect(a.frame()).not.toContain("── unread");
    a.press(KEY.alt("j"));
    await waitFor(() => expect(body(a).find((l) => l.trim() !== "")).toMatch(/^── unread ─+$/));
    expect(body(a).join("\n")).toContain("missed 00");
    expect(a.frame()).toContain("more below");
    a.press(KEY.escape);
    await waitFor(() => expect(a.frame()).toContain("missed 29"));
    expect(a.frame()).not.toContain("── unread");
    a.press(KEY.alt("U"));
    await waitFor(() => expect(body(a).find((l) => l.trim() !== "")).toMatch(/^── unread ─+$/));
  });
});
