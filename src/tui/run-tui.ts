// The entry point of the full-screen UI: renders the App on the alternate screen and settles
// with the exit code once the user has left, the session is closed and Ink has restored the
// terminal. The bin (main.tsx) builds the session and everything else and calls this.
// First, before ink and react load: their production build unless NODE_ENV says otherwise. (This
// file has no JSX on purpose: the compiler would put the react/jsx-runtime import above this one.)
import "./production-mode.js";
import { render } from "ink";
import { createElement } from "react";
import type { BacklogItem, ChatSession, NoticeLevel } from "../client/types.js";
import { nullLogger, type Logger } from "../protocol/log.js";
import { App } from "./App.js";
import { FrameStdout } from "./terminal/frame-stdout.js";
import { idleMemory } from "./terminal/idle-memory.js";
import { closeSession, CLOSE_DEADLINE_MS } from "./hooks/useQuit.js";
import type { StartupNotice } from "./state/reducer.js";

export interface RunTuiOptions {
  readonly session: ChatSession;
  readonly stdin?: NodeJS.ReadableStream;
  readonly stdout?: NodeJS.WritableStream;
  readonly stderr?: NodeJS.WritableStream;
  /** Milliseconds since the epoch; defaults to Date.now. */
  readonly clock?: () => number;
  /**
   * The terminal bell on a DM, a mention of my name, or a key change: true (default) writes BEL
   * to stdout, false turns it off, a function replaces it.
   */
  readonly bell?: boolean | (() => void);
  /** Where the UI logs (never the terminal: that would corrupt the screen). */
  readonly logger?: Logger;
  /** Lines shown in the lobby at start, e.g. that keys were created or a relay is hosted here. */
  readonly notices?: readonly (string | StartupNotice)[];
  /**
   * Messages from earlier runs, shown again at start (the kept history, my unsent messages
   * among them as pending); they do not count as unread.
   */
  readonly backlog?: readonly BacklogItem[];
  /** Aborting leaves cleanly, as /quit does (wire SIGTERM and SIGHUP to it). */
  readonly signal?: AbortSignal;
  /**
   * Mouse wheel scrolling from the start (default off: while the terminal reports the mouse, a
   * plain drag no longer selects text). /mouse turns it on and off while running.
   */
  readonly mouse?: boolean;
}

/**
 * Frames per second at most (Ink's default is 30). A key is drawn at once unless a frame was
 * drawn less than 1/MAX_FPS s before, then at the end of that interval; incoming messages are
 * drawn at most every EVENT_FRAME_MS (useChatSession), so keys rarely wait at all.
 */
export const MAX_FPS = 250;

const LEAVE_ALTERNATE_SCREEN = "\u001b[?1049l";
const SHOW_CURSOR = "\u001b[?25h";

function isTty(stream: unknown): boolean {
  return typeof stream === "object" && stream !== null && (stream as { isTTY?: unknown }).isTTY === true;
}

/** One sentence when stdin or stdout is not a terminal (the UI needs both), else undefined. */
export function assertInteractiveTerminal(stdin: unknown, stdout: unknown): string | undefined {
  const missing = [isTty(stdin) ? undefined : "stdin", isTty(stdout) ? undefined : "stdout"].filter((s) => s !== undefined);
  if (missing.length === 0) return undefined;
  return `chat-tui needs an interactive terminal, but ${missing.join(" and ")} ${missing.length === 1 ? "is" : "are"} not a terminal: run it directly in a terminal window, not through a pipe, a redirect or a non-interactive job.`;
}

function toNotice(n: string | StartupNotice): StartupNotice {
  return typeof n === "string" ? { level: "info" as NoticeLevel, text: n } : n;
}

/**
 * Runs the chat UI until the user leaves (/quit, /exit, Ctrl-C, Ctrl-D, or `signal`). Resolves
 * with the exit code: 0 after a clean close, 1 when the session failed to close in time or the
 * UI itself failed (the error is logged; the terminal is restored either way).
 */
export async function runTui(options: RunTuiOptions): Promise<number> {
  const stdin = options.stdin ?? process.stdin;
  const stdout = options.stdout ?? process.stdout;
  const stderr = options.stderr ?? process.stderr;
  const notTerminal = assertInteractiveTerminal(stdin, stdout);
  if (notTerminal !== undefined) throw new Error(notTerminal);

  const logger = options.logger ?? nullLogger;
  const clock = options.clock ?? Date.now;
  const bell = typeof options.bell === "function"
    ? options.bell
    : options.bell === false
      ? () => {}
      : () => {
          stdout.write("\u0007");
        };

  // Ink draws on a model of the screen; only the cells that changed reach the terminal. Once
  // nothing has been drawn for a while, the garbage of the busy spell is collected.
  const idle = idleMemory({ onCollect: (ms) => logger.debug("tui.idle-collect", { ms: Math.round(ms) }) });
  const screen = new FrameStdout(stdout, () => idle.activity());
  let instance: ReturnType<typeof render>;
  try {
    instance = render(
      createElement(App, {
        session: options.session,
        clock,
        bell,
        logger,
        notices: (options.notices ?? []).map(toNotice),
        backlog: options.backlog ?? [],
        mouse: options.mouse ?? false,
        // Ctrl-L: the screen model forgets what the terminal shows, so the next frame clears it
        // and paints every cell again (whatever else was written on it is gone).
        clearScreen: () => screen.invalidate(),
        ...(options.signal ? { signal: options.signal } : {}),
      }),
      {
        stdin,
        stdout: screen as unknown as NodeJS.WriteStream,
        stderr,
        alternateScreen: true,
        exitOnCtrlC: false,
        maxFps: MAX_FPS,
        // Ink sends only the lines that changed; the screen model then finds the cells.
        incrementalRendering: true,
        // Both streams are terminals (checked above); without this Ink would fall back to
        // non-interactive output whenever a CI variable is set, e.g. in the tmux end-to-end test.
        interactive: true,
      },
    );
  } catch (e) {
    // Ink failed while starting, possibly after switching screens: switch back and show the
    // cursor (best effort), so the user's shell is usable, then let the caller report it.
    idle.stop();
    screen.close();
    stdout.write(`${LEAVE_ALTERNATE_SCREEN}${SHOW_CURSOR}`);
    logger.error("tui.start-failed", { reason: e instanceof Error ? e.message : String(e) });
    await closeSession(options.session, logger, CLOSE_DEADLINE_MS);
    throw e;
  }

  try {
    const result = await instance.waitUntilExit();
    return typeof result === "number" ? result : 0;
  } catch (e) {
    // A render error: Ink has unmounted and restored the terminal; close the session too.
    logger.error("tui.crashed", { reason: e instanceof Error ? e.message : String(e) });
    await closeSession(options.session, logger, CLOSE_DEADLINE_MS);
    return 1;
  } finally {
    idle.stop();
    screen.close();
  }
}
