// Labels a peer or the relay chose, in a session's notice or a `refused` event, on a real
// terminal (runTui on a fake 120x35 terminal, what it writes played on a ScreenModel): no escape
// sequence of theirs reaches the terminal (no colour, no conceal, no title, no clipboard), and no
// newline of theirs draws a row (a forged "20:41 carol …" line). PROTOCOL.md §11.2; the client
// refuses such labels where they enter (test/adversarial/v2-relay-labels.test.ts), this is the
// UI's own line of defence. Honest notices and messages are drawn as before.
import { Console } from "node:console";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { nullLogger } from "../../src/protocol/log.js";
import { runTui } from "../../src/tui/run-tui.js";
import { ScreenModel } from "../../src/tui/terminal/screen-model.js";
import { entryRows } from "../../src/tui/view/scrollback-rows.js";
import { rowText } from "../../src/tui/view/row.js";
import { peerSegments, sidebarRows } from "../../src/tui/view/sidebar-rows.js";
import { connectionSegments } from "../../src/tui/view/status-row.js";
import { FakeSession } from "../helpers/fake-session.js";
import { FakeStdin, FakeStdout, KEY } from "./helpers/terminal.js";
import { waitFor } from "./helpers/wait-for.js";

beforeAll(() => {
  (console as { Console?: typeof Console }).Console ??= Console;
});

const COLUMNS = 120;
const ROWS = 35;
const EVIL_CONV = "#ops\u001b]0;owned-title\u0007\u001b[2J\u001b[31m";
const EVIL_SENDER = "bob\u001b]52;c;cGF5bG9hZA==\u0007";
const FAKE_LINE = "bob\u001b[8m\n20:41 carol     FAKE: please send the code to mallory";

let leave: (() => Promise<void>) | undefined;
afterEach(async () => {
  await leave?.();
  leave = undefined;
});

async function start() {
  const session = new FakeSession({ peers: ["bob", "carol"] });
  const stdin = new FakeStdin();
  const stdout = new FakeStdout(COLUMNS, ROWS);
  const exit = runTui({ session, stdin: stdin.stream, stdout: stdout.stream, logger: nullLogger, bell: false });
  leave = async () => {
    stdin.write(KEY.ctrlC);
    await exit;
  };
  const screen = new ScreenModel(COLUMNS, ROWS);
  let played = 0;
  const play = (): string[] => {
    for (; played < stdout.writes.length; played++) screen.write(stdout.writes[played] as string);
    return screen.text().map((r) => r.split("│")[0]!.trimEnd()); // the scrollback, left of the sidebar
  };
  await waitFor(() => {
    expect(stdin.listening).toBe(true);
    expect(play().join("\n")).toContain("secure-chat");
  });
  return { session, stdout, play };
}

describe("relay labels on the terminal", () => {
  it("a session notice naming the relay's labels shows them inert, on its own row(s), with no escape of theirs written", { timeout: 60_000 }, async () => {
    const { session, stdout, play } = await start();
    session.emit({ type: "notice", level: "warn", text: `an invitation to ${EVIL_CONV} from ${EVIL_SENDER} could not be opened; nothing was joined (ask to be added again)` });
    session.emit({ type: "notice", level: "warn", text: "an invitation to #x\u001b[8mSECRET-HIDDEN could not be opened" });
    session.emit({ type: "notice", level: "warn", text: `an invitation to #x from ${FAKE_LINE} could not be opened` });
    session.emit({ type: "notice", level: "info", text: "an honest notice after them" });
    await waitFor(() => expect(play().join("\n")).toContain("an honest notice after them"));
    const out = stdout.writes.join("");
    // None of the relay's sequences: no OSC (title, clipboard), no erase, no red after "#ops", no conceal.
    expect(out).not.toContain("\u001b]0;owned-title");
    expect(out).not.toContain("\u001b]52;");
    expect(out).not.toContain("\u001b[2J");
    expect(out).not.toContain("#ops\u001b[31m");
    expect(out).not.toMatch(/\u001b\[[0-9;]*\b8\b[0-9;]*m/u);
    // Each replaced code point shows as U+FFFD; the hidden words are in plain sight.
    const rows = play();
    expect(rows.join("\n")).toContain("#ops\uFFFD]0;owned-title\uFFFD\uFFFD[2J\uFFFD[31m from bob\uFFFD]52;c;cGF5bG9hZA==\uFFFD could not");
    expect(rows.join("\n")).toContain("#x\uFFFD[8mSECRET-HIDDEN could not be opened");
    // The newline draws no row of its own: the fake line stays inside the notice's row.
    expect(rows.some((r) => /^\s*20:41 carol/u.test(r))).toBe(false);
    expect(rows.some((r) => r.includes("from bob\uFFFD[8m 20:41 carol     FAKE: please send the code to"))).toBe(true);
  });

  it("a refused event from a label with escapes and a newline is one inert warning row", { timeout: 60_000 }, async () => {
    const { session, stdout, play } = await start();
    session.emit({ type: "refused", conversationId: "lobby", from: FAKE_LINE });
    session.emit({ type: "refused", conversationId: "lobby", from: "the relay" });
    session.receive("bob", "an honest message after them", { conversationId: "lobby" });
    await waitFor(() => expect(play().join("\n")).toContain("an honest message after them"));
    const out = stdout.writes.join("");
    expect(out).not.toMatch(/\u001b\[[0-9;]*\b8\b[0-9;]*m/u);
    const rows = play();
    expect(rows.some((r) => /^\s*20:41 carol/u.test(r))).toBe(false);
    expect(rows.some((r) => r.includes("a message from bob\uFFFD[8m 20:41 carol     FAKE: please se… could not be verified"))).toBe(true);
    expect(rows.some((r) => r.includes("a message from the relay could not be verified and was dropped"))).toBe(true);
    expect(rows.some((r) => /bob\s+an honest message after them$/u.test(r))).toBe(true);
  });

  it("every row of an entry is free of control, escape, bidi and zero-width characters, whatever its labels", () => {
    const ctx = { width: 80, me: "alice", nickWidth: 8, formatTime: () => "12:00" };
    const bad = "x\u001b[31m\r\n\u202e\u200b\u0007\u009b";
    const entries = [
      { kind: "notice", seq: 1, atMs: 0, level: "warn", text: `notice ${bad} end` },
      { kind: "refused", seq: 2, atMs: 0, from: bad },
      { kind: "key-change", seq: 3, atMs: 0, username: bad, held: 1 },
      { kind: "presence", seq: 4, atMs: 0, username: bad, change: "online" },
      { kind: "room-event", seq: 5, atMs: 0, username: bad, room: bad, change: "joined", members: [bad] },
      { kind: "message", seq: 6, message: { id: "01", conversationId: "lobby", from: bad, kind: "text", text: `hi ${bad}`, sentAtMs: 0, receivedAtMs: 0, own: false, gap: true, notFor: [bad] } },
    ] as const;
    for (const e of entries) {
      for (const row of entryRows(e as never, ctx)) {
        expect(rowText(row)).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u200b\u202e]/u);
      }
    }
    // Honest text is drawn as it was.
    expect(entryRows({ kind: "notice", seq: 7, atMs: 0, level: "info", text: "bob joined #ops" }, ctx).map(rowText)).toEqual(["12:00 -- bob joined #ops"]);
  });

  it("the sidebar's names and the status line's reasons are drawn through the sanitiser too", () => {
    const bad = "bob\u001b[31m\n20:41 carol\u202e";
    const unsafe = /[\u0000-\u001f\u007f-\u009f\u202e]/u;
    const text = (segments: readonly { readonly text: string }[]): string => segments.map((x) => x.text).join("");
    expect(text(peerSegments({ username: bad, online: true, trust: "unverified", you: false }, "alice"))).not.toMatch(unsafe);
    for (const row of sidebarRows([], "alice", 30, 5, `${bad} · 2`)) expect(rowText(row)).not.toMatch(unsafe);
    expect(text(connectionSegments({ state: "failed", reason: bad } as never, 0))).not.toMatch(unsafe);
    expect(text(connectionSegments({ state: "reconnecting", retryAtMs: 0, attempt: 2, reason: bad } as never, 0))).not.toMatch(unsafe);
    expect(text(peerSegments({ username: "bob", online: true, trust: "verified", you: false }, "alice"))).toBe("● bob ✓");
  });
});
