// runTui end to end on fake terminal streams: the alternate screen, leaving cleanly in order
// (session closed, then the terminal restored), the bell, startup notices, and failures.
import { Console } from "node:console";
import { beforeAll, describe, expect, test } from "vitest";
import type { ChatMessage } from "../../src/client/types.js";
import { nullLogger } from "../../src/protocol/log.js";
import { closeSession } from "../../src/tui/hooks/useQuit.js";
import { assertInteractiveTerminal, runTui, type RunTuiOptions } from "../../src/tui/run-tui.js";
import { FakeSession } from "../helpers/fake-session.js";
import { FakeStdin, FakeStdout, KEY } from "./helpers/terminal.js";
import { waitFor } from "./helpers/wait-for.js";

// runTui lets Ink patch the console (so a dependency's console output cannot tear the screen);
// vitest's console lacks the Console constructor that patch-console needs, so lend it.
beforeAll(() => {
  (console as { Console?: typeof Console }).Console ??= Console;
});

const ENTER_ALT_SCREEN = "\u001b[?1049h";
const LEAVE_ALT_SCREEN = "\u001b[?1049l";

function start(session: FakeSession, extra: Partial<RunTuiOptions> = {}) {
  const stdin = new FakeStdin();
  const stdout = new FakeStdout(100, 20);
  const stderr = new FakeStdout(100, 20);
  const exit = runTui({ session, stdin: stdin.stream, stdout: stdout.stream, stderr: stderr.stream, logger: nullLogger, ...extra });
  const ready = () => waitFor(() => {
    expect(stdin.listening).toBe(true);
    expect(stdout.text()).toContain("secure-chat");
  });
  return { stdin, stdout, stderr, exit, ready };
}

/** A session that notes how much had been written to the terminal when close() was called. */
class WatchedSession extends FakeSession {
  writesAtClose: number | undefined;
  constructor(private readonly stdout: () => FakeStdout | undefined) {
    super({ peers: ["bob"] });
  }

  override async close(): Promise<void> {
    this.writesAtClose ??= this.stdout()?.writes.length;
    await super.close();
  }
}

describe("assertInteractiveTerminal", () => {
  test("is quiet for two terminals and names what is not one", () => {
    expect(assertInteractiveTerminal({ isTTY: true }, { isTTY: true })).toBeUndefined();
    expect(assertInteractiveTerminal({ isTTY: false }, { isTTY: true })).toBe(
      "chat-tui needs an interactive terminal, but stdin is not a terminal: run it directly in a terminal window, not through a pipe, a redirect or a non-interactive job.",
    );
    expect(assertInteractiveTerminal({ isTTY: true }, {})).toContain("but stdout is not a terminal");
    expect(assertInteractiveTerminal({}, {})).toContain("but stdin and stdout are not a terminal");
  });

  test("runTui refuses to start without a terminal", async () => {
    const session = new FakeSession();
    const stdout = new FakeStdout();
    stdout.isTTY = false;
    await expect(runTui({ session, stdin: new FakeStdin().stream, stdout: stdout.stream })).rejects.toThrow("stdout is not a terminal");
    expect(session.listenerCount).toBe(0);
    expect(stdout.writes).toEqual([]);
  });
});

describe("runTui", () => {
  test("draws on the alternate screen; /quit closes the session, then restores the terminal, and resolves 0", async () => {
    let stdout: FakeStdout | undefined;
    const session = new WatchedSession(() => stdout);
    const run = start(session);
    stdout = run.stdout;
    await run.ready();
    expect(run.stdout.writes[0]).toBe(ENTER_ALT_SCREEN);
    expect(run.stdin.rawMode).toBe(true);
    run.stdin.write("/quit");
    run.stdin.write(KEY.enter);
    await expect(run.exit).resolves.toBe(0);
    expect(session.closed).toBe(true);
    expect(session.listenerCount).toBe(0);
    // The terminal is handed back only after the session closed, and raw mode is off.
    const leaveAt = run.stdout.writes.indexOf(LEAVE_ALT_SCREEN);
    expect(leaveAt).toBeGreaterThan(session.writesAtClose ?? Number.POSITIVE_INFINITY);
    expect(run.stdin.rawMode).toBe(false);
  });

  test.each([["Ctrl-C", KEY.ctrlC], ["Ctrl-D", KEY.ctrlD]])("%s leaves cleanly", async (_name, key) => {
    const session = new FakeSession();
    const run = start(session);
    await run.ready();
    run.stdin.write(key);
    await expect(run.exit).resolves.toBe(0);
    expect(session.closed).toBe(true);
    expect(run.stdout.writes.join("")).toContain(LEAVE_ALT_SCREEN);
  });

  test("an aborted signal leaves cleanly", async () => {
    const session = new FakeSession();
    const controller = new AbortController();
    const run = start(session, { signal: controller.signal });
    await run.ready();
    controller.abort();
    await expect(run.exit).resolves.toBe(0);
    expect(session.closed).toBe(true);
  });

  test("a session that fails to close still restores the terminal and exits 1", async () => {
    const session = new FakeSession();
    session.closeGate = Promise.reject(new Error("disk full"));
    session.closeGate.catch(() => {});
    const run = start(session);
    await run.ready();
    run.stdin.write(KEY.ctrlC);
    await expect(run.exit).resolves.toBe(1);
    expect(run.stdout.writes.join("")).toContain(LEAVE_ALT_SCREEN);
  });

  test("shows startup notices and my pending messages", async () => {
    const session = new FakeSession({ peers: ["bob"] });
    const pending: ChatMessage = {
      id: "ab".repeat(16), conversationId: "lobby", from: "alice", kind: "text", text: "from before the restart",
      sentAtMs: Date.now(), receivedAtMs: Date.now(), own: true, state: "pending",
    };
    const run = start(session, { notices: ["Created your keys in /tmp/x/alice_key.pem"], backlog: [pending] });
    await run.ready();
    await waitFor(() => expect(run.stdout.text()).toContain("-- Created your keys in /tmp/x/alice_key.pem"));
    expect(run.stdout.text()).toContain("from before the restart …");
    run.stdin.write(KEY.ctrlC);
    await run.exit;
  });

  test("rings the bell (BEL) on a DM by default, and not when turned off", async () => {
    for (const bell of [undefined, false] as const) {
      const session = new FakeSession({ peers: ["bob"] });
      const run = start(session, bell === undefined ? {} : { bell });
      await run.ready();
      session.receive("bob", "ping");
      await waitFor(() => expect(run.stdout.text()).toContain("2:@bob (1!)"));
      expect(run.stdout.writes.includes("\u0007")).toBe(bell === undefined);
      run.stdin.write(KEY.ctrlC);
      await run.exit;
    }
  });

  test("a bell function is called instead", async () => {
    const session = new FakeSession({ peers: ["bob"] });
    const rings: string[] = [];
    const run = start(session, { bell: () => rings.push("ring") });
    await run.ready();
    session.receive("bob", "hey alice", { conversationId: "lobby" });
    session.receive("bob", "no mention here", { conversationId: "lobby" });
    await waitFor(() => expect(rings).toEqual(["ring"]));
    run.stdin.write(KEY.ctrlC);
    await run.exit;
  });

  test("a UI failure is logged, closes the session, restores the terminal and exits 1", async () => {
    const session = new FakeSession();
    session.snapshot = () => {
      throw new Error("broken snapshot");
    };
    const errors: string[] = [];
    const logger = { ...nullLogger, error: (event: string) => errors.push(event) };
    const run = start(session, { logger });
    await expect(run.exit).resolves.toBe(1);
    expect(errors).toContain("tui.crashed");
    expect(session.closed).toBe(true);
    expect(run.stdout.writes.join("")).toContain(LEAVE_ALT_SCREEN);
  });
});

test("a failure while Ink starts restores the terminal, closes the session and rejects", async () => {
  // Without the Console constructor, Ink's console patching throws inside render(), after it
  // has switched to the alternate screen: the one way to make Ink itself fail at start.
  const saved = (console as { Console?: typeof Console }).Console;
  delete (console as { Console?: typeof Console }).Console;
  try {
    const session = new FakeSession();
    const stdout = new FakeStdout();
    const errors: string[] = [];
    const logger = { ...nullLogger, error: (event: string) => errors.push(event) };
    await expect(runTui({ session, stdin: new FakeStdin().stream, stdout: stdout.stream, stderr: new FakeStdout().stream, logger })).rejects.toThrow(TypeError);
    expect(errors).toEqual(["tui.start-failed"]);
    expect(session.closed).toBe(true);
    const written = stdout.writes.join("");
    expect(written.lastIndexOf(LEAVE_ALT_SCREEN)).toBeGreaterThan(written.lastIndexOf(ENTER_ALT_SCREEN));
    expect(written.endsWith("\u001b[?25h")).toBe(true);
  } finally {
    if (saved) (console as { Console?: typeof Console }).Console = saved;
  }
});

describe("closeSession", () => {
  test("gives up after the deadline, so a stuck network cannot hold the terminal", async () => {
    const session = new FakeSession();
    session.closeGate = new Promise(() => {});
    const warnings: string[] = [];
    await expect(closeSession(session, { ...nullLogger, warn: (e: string) => warnings.push(e) }, 20)).resolves.toBe(1);
    expect(warnings).toEqual(["tui.close-timeout"]);
  });

  test("0 after a clean close", async () => {
    await expect(closeSession(new FakeSession(), nullLogger, 1_000)).resolves.toBe(0);
  });
});
