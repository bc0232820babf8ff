// The keys over time: a lone Esc, and pastes without bracketed paste (fast multi-line input is
// one paste, never one message per line; a line and Enter typed by hand still sends). Then every
// bound key with its effect on the input line, the whole input in one chunk and cut at every
// byte position: the same line, the same lines sent.
import { describe, expect, test } from "vitest";
import { inkKey, NO_KEY } from "../../src/tui/input/ink-key.js";
import { key, type InputEvent } from "../../src/tui/input/key-parser.js";
import { createKeyStream, ESCAPE_MS, HOLD_MIN_CHARS, HOLD_MS, PASTE_GAP_MS, type KeyStream } from "../../src/tui/input/key-stream.js";
import { keyOutcome, type KeyContext } from "../../src/tui/input/keymap.js";
import { createInitialState, reducer } from "../../src/tui/state/reducer.js";
import type { TuiState } from "../../src/tui/state/state.js";
import { scrollLayout } from "../../src/tui/view/scrollback-window.js";

const text = (t: string): InputEvent => ({ kind: "text", text: t });
const paste = (t: string): InputEvent => ({ kind: "paste", text: t });
const ENTER = key("enter");

/** Pushes chunks at the given times and lets every wait run out at the end. */
function run(chunks: readonly (readonly [number, string | Uint8Array])[], stream: KeyStream = createKeyStream()): InputEvent[] {
  const out: InputEvent[] = [];
  for (const [at, chunk] of chunks) {
    // Waits that ran out before this chunk arrived, as the hook's timer would have seen them.
    const due = stream.deadline();
    if (due !== undefined && due <= at) out.push(...stream.expire(due));
    out.push(...stream.push(chunk, at));
  }
  for (let due = stream.deadline(); due !== undefined; due = stream.deadline()) out.push(...stream.expire(due));
  return out;
}

function joinText(events: readonly InputEvent[]): InputEvent[] {
  const out: InputEvent[] = [];
  for (const e of events) {
    const last = out.at(-1);
    if (e.kind === "text" && last?.kind === "text") out[out.length - 1] = text(last.text + e.text);
    else out.push(e);
  }
  return out;
}

describe("keys over time", () => {
  test("control keys right after a word act at once, in order", () => {
    const stream = createKeyStream();
    expect(stream.push("hello wor\u0017\u0017", 0)).toEqual([text("hello wor"), key("w", { ctrl: true }), key("w", { ctrl: true })]);
    expect(stream.deadline()).toBeUndefined();
  });

  test("a lone Esc is the Esc key once ESCAPE_MS pass; an arrow cut after its ESC is the arrow", () => {
    const stream = createKeyStream();
    expect(stream.push("\u001b", 100)).toEqual([]);
    expect(stream.deadline()).toBe(100 + ESCAPE_MS);
    expect(stream.push("[A", 105)).toEqual([key("up")]);
    expect(stream.push("\u001b", 200)).toEqual([]);
    expect(stream.expire(200 + ESCAPE_MS - 1)).toEqual([]);
    expect(stream.expire(200 + ESCAPE_MS)).toEqual([key("escape")]);
  });

  test("a line and Enter typed by hand sends: key by key, or as one chunk", () => {
    expect(run([[0, "h"], [120, "i"], [260, "\r"]])).toEqual([text("h"), text("i"), ENTER]);
    const stream = createKeyStream();
    expect(stream.push("hi there\r", 0)).toEqual([text("hi there"), ENTER]);
    expect(stream.deadline()).toBeUndefined();
    expect(run([[0, "one\r"], [300, "two\r"]])).toEqual([text("one"), ENTER, text("two"), ENTER]);
  });

  test("a busy client reading the Enter of one line with the next line: the Enter still sends", () => {
    // tmux send-keys "one" Enter, then "two" Enter: the client was busy and read "\rtwo" at once.
    expect(run([[0, "one"], [30, "\rtwo"], [60, "\r"]])).toEqual([text("one"), ENTER, text("two"), ENTER]);
  });

  test("one long line and Enter in a read waits HOLD_MS: a paste cut right after its first line stays one paste", () => {
    const long = "x".repeat(HOLD_MIN_CHARS + 1);
    const stream = createKeyStream();
    expect(stream.push(`${long}\r`, 0)).toEqual([]);
    expect(stream.deadline()).toBe(HOLD_MS);
    expect(stream.expire(HOLD_MS)).toEqual([text(long), ENTER]);
    expect(run([[0, `${long}\r`], [2, "second\rthird"]])).toEqual([paste(`${long}\nsecond\nthird`)]);
  });

  test("several lines in one chunk are one paste; Tab inside it is a tab", () => {
    expect(run([[0, "first line\rsecond\tline\rthird"]])).toEqual([paste("first line\nsecond\tline\nthird")]);
    // Outside a paste, Tab completes.
    expect(run([[0, "/jo\t"]])).toEqual([text("/jo"), key("tab")]);
  });

  test("a paste cut into chunks that come within PASTE_GAP_MS is one paste, even cut right after a line", () => {
    expect(run([[0, "one\rtwo"], [1, "\rthree\r"], [3, "four"]])).toEqual([paste("one\ntwo\nthree\nfour")]);
    expect(run([[0, "a\rb"], [PASTE_GAP_MS - 1, "c\rd"], [PASTE_GAP_MS * 3, "x"]])).toEqual([paste("a\nbc\nd"), text("x")]);
  });

  test("a key after a paste ends it and comes after it", () => {
    expect(run([[0, "a\rb\r\u0017"]])).toEqual([paste("a\nb\n"), key("w", { ctrl: true })]);
    expect(run([[0, "a\rb"], [2, "\u001b[A"]])).toEqual([paste("a\nb"), key("up")]);
    expect(run([[0, "a\rb"], [2, "\u001b"]])).toEqual([paste("a\nb"), key("escape")]);
  });

  test("a 200-line paste without brackets is never 200 messages, however the reads cut it", () => {
    const lines = Array.from({ length: 200 }, (_, i) => `line ${String(i).padStart(3, "0")} of the pasted text`);
    const bytes = Buffer.from(lines.join("\r"), "utf8");
    for (let cut = 1; cut < bytes.length; cut++) {
      const events = joinText(run([[0, bytes.subarray(0, cut)], [2, bytes.subarray(cut)]]));
      // At most the first line goes on its own (when the first read ends right at its line
      // break); the rest is one paste.
      const first = (lines[0] as string).length;
      const enters = events.filter((e) => e.kind === "key");
      expect(enters.length, `cut at ${cut}`).toBeLessThanOrEqual(cut === first || cut === first + 1 ? 1 : 0);
      expect(events.filter((e) => e.kind === "paste")).toHaveLength(1);
      const all = events.map((e) => (e.kind === "text" || e.kind === "paste" ? e.text : e.kind === "key" ? "\n" : "")).join("");
      expect(all).toBe(lines.join("\n"));
    }
    // In 4 KB reads, as a pty delivers it.
    const chunks: [number, Uint8Array][] = [];
    for (let at = 0; at < bytes.length; at += 4095) chunks.push([at / 4095, bytes.subarray(at, at + 4095)]);
    expect(run(chunks)).toEqual([paste(lines.join("\n"))]);
  });

  test("a bracketed paste is unchanged", () => {
    expect(run([[0, "\u001b[200~a\rb"], [500, "c\u001b[201~"]])).toEqual([paste("a\nbc")]);
  });
});

// --- every bound key and its effect, the input cut at every byte ---------------------------------

const ctx: KeyContext = { viewport: { width: 80, height: 20, layout: scrollLayout }, sidebarShown: true, sidebarAutomatic: true };
const initial: TuiState = createInitialState({
  me: "alice", serverLabel: "x",
  snapshot: { connection: { state: "connected", sinceMs: 0 }, peers: [{ username: "bob", online: true, verified: false } as never], rooms: [] },
  atMs: 0,
});

/** What the app does with the events: the keys' outcomes through the reducer; lines submitted. */
function apply(events: readonly InputEvent[]): { state: TuiState; sent: string[]; other: string[] } {
  let state = initial;
  const sent: string[] = [];
  const other: string[] = [];
  const onKey = (typed: string, k: typeof NO_KEY): void => {
    const o = keyOutcome(typed, k, state, ctx);
    if (o.kind === "action") state = reducer(state, o.action);
    else if (o.kind === "type") state = reducer(state, { type: "input-insert", text: o.text });
    else if (o.kind === "submit") {
      sent.push(state.input.text);
      state = reducer(state, { type: "input-submitted", conversationId: state.current, text: state.input.text });
    } else if (o.kind !== "ignore") other.push(o.kind === "run" ? `run ${o.command.kind}` : o.kind);
  };
  for (const e of events) {
    if (e.kind === "text") onKey(e.text, NO_KEY);
    else if (e.kind === "key") {
      const { typed, key: k } = inkKey(e);
      onKey(typed, k);
    } else if (e.kind === "paste") state = reducer(state, { type: "paste", text: e.text });
  }
  return { state, sent, other };
}

// Typed fast, as one burst: words and the editing keys between them; one Enter, at the end.
const KEYS = [
  "hello world", "\u0017", // Ctrl-W: "hello "
  "there", "\u0001", "[", "\u0005", "]", // Ctrl-A, Ctrl-E: "[hello there]"
  "\u001bb", "\u001bb", "X", // Alt-B twice: before "hello"
  "\u001bf", "\u001bd", // Alt-F, Alt-D: delete " there"
  "\u001b[D", "\u001b[D", "\u007f", // Left, Left, Backspace
  "\u001b[1;5D", "\u001b[1;5C", "\u001b[3~", // Ctrl-Left, Ctrl-Right, Delete
  "\u001b[H", "<", "\u001b[F", ">", // Home, End
  "\r", // Enter in the middle of the burst: sends "<X[helo>"
  "\u001b\r", "second line", // Alt-Enter: a new line in the message
  "\u001b\u007f", "row", // Alt-Backspace
  "\u001b[A", "\u001b[B", // Up, Down (move between the message's lines)
  "\u0015", "\u000b", // Ctrl-U, Ctrl-K: everything before / after the cursor
  "last", "\u001b[5~", "\u001b[6~", "\u001b[1;5H", "\u001b[1;5F", // scrolling keys leave the line alone
  " @b", "\t", // Tab completes the nick
  "\u001b[Z", "\u001b[Z", // Shift-Tab: previous matches (only one: stays)
  "\u001bj", "\u001bU", "\u001ba", "\u001bu", "\u001b1", "\u000e", "\u0010", // keys that move around
  "\u000c", // Ctrl-L
  "\r",
];

const BURST = KEYS.join("");

describe("every bound key in one burst", () => {
  test("in one chunk: the same line as typed key by key", () => {
    const keyByKey = apply(run(KEYS.map((k, i) => [i * 200, k] as const)));
    const burst = apply(run([[0, BURST]]));
    expect(burst.sent).toEqual(keyByKey.sent);
    expect(burst.other).toEqual(keyByKey.other);
    expect(burst.sent).toEqual(["<X[helo>", "last @bob "]);
    expect(burst.other).toEqual(["redraw"]);
  });

  test("cut at every byte position: the same line, the same keys", () => {
    const whole = apply(run([[0, BURST]]));
    const bytes = Buffer.from(BURST, "utf8");
    for (let cut = 1; cut < bytes.length; cut++) {
      const got = apply(run([[0, bytes.subarray(0, cut)], [1, bytes.subarray(cut)]]));
      expect(got.sent, `cut at ${cut}`).toEqual(whole.sent);
      expect(got.other).toEqual(whole.other);
    }
  });
});
