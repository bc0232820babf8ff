// Renders the real App against a FakeSession on fake streams, in Ink's debug mode (every frame
// written whole), and exposes the latest frame as plain text.
import { render } from "ink";
import type { ChatMessage } from "../../../src/client/types.js";
import { nullLogger } from "../../../src/protocol/log.js";
import { App } from "../../../src/tui/App.js";
import type { StartupNotice } from "../../../src/tui/state/reducer.js";
import type { FakeSession } from "../../helpers/fake-session.js";
import { FakeStdin, FakeStdout, stripAnsi } from "./terminal.js";
import { waitFor } from "./wait-for.js";

export interface RenderAppOptions {
  readonly columns?: number;
  readonly rows?: number;
  readonly clock?: () => number;
  readonly notices?: readonly StartupNotice[];
  readonly backlog?: readonly ChatMessage[];
  readonly signal?: AbortSignal;
}

export interface RenderedApp {
  readonly stdin: FakeStdin;
  readonly stdout: FakeStdout;
  readonly bells: number[];
  /** The latest frame, escape sequences removed. */
  frame(): string;
  /** The latest frame's lines, right-trimmed. */
  lines(): string[];
  /** Types text (one chunk) and optionally presses Enter as a separate keystroke. */
  type(text: string): void;
  press(key: string): void;
  /** Resolves once the first frame is drawn and the UI reads keys. */
  ready(): Promise<void>;
  /** Settles with the code the App exited with. */
  readonly exited: Promise<unknown>;
  unmount(): void;
}

const CONTROL_ONLY = /^(?:\u001B\[\?[0-9;]*[hl])+$/;

export function renderApp(session: FakeSession, options: RenderAppOptions = {}): RenderedApp {
  const stdin = new FakeStdin();
  const stdout = new FakeStdout(options.columns ?? 100, options.rows ?? 24);
  const stderr = new FakeStdout();
  const bells: number[] = [];
  const clock = options.clock ?? Date.now;
  const instance = render(
    <App
      session={session}
      clock={clock}
      bell={() => bells.push(clock())}
      logger={nullLogger}
      {...(options.notices ? { notices: options.notices } : {})}
      {...(options.backlog ? { backlog: options.backlog } : {})}
      {...(options.signal ? { signal: options.signal } : {})}
    />,
    {
      stdin: stdin.stream,
      stdout: stdout.stream,
      stderr: stderr.stream,
      debug: true,
      exitOnCtrlC: false,
      patchConsole: false,
      interactive: true,
    },
  );
  const frame = (): string => {
    // In debug mode each render writes one whole frame; skip mode switches like bracketed paste.
    const frames = stdout.writes.filter((w) => w.trim() !== "" && !CONTROL_ONLY.test(w));
    return stripAnsi(frames.at(-1) ?? "");
  };
  return {
    stdin,
    stdout,
    bells,
    frame,
    lines: () => frame().split("\n").map((l) => l.trimEnd()),
    type: (text) => stdin.write(text),
    press: (key) => stdin.write(key),
    ready: async () => {
      await waitFor(() => {
        if (!stdin.listening || frame() === "") throw new Error("the UI is not reading keys yet");
      });
    },
    exited: instance.waitUntilExit(),
    unmount: () => instance.unmount(),
  };
}
