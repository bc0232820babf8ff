// The keys of the terminal over time: the key parser's events, with two decisions that need the
// clock. Pure: the caller passes the time and asks when to come back (deadline / expire).
//
// 1. A lone ESC at the end of a chunk is the Esc key only once ESCAPE_MS pass without the rest
//    of a sequence (an arrow's ESC [ A may be cut between two reads).
// 2. A paste without bracketed paste (a terminal or an SSH path that does not do it) arrives as
//    fast "typing" with line breaks inside. Nobody types a line, Enter and more text within one
//    read or a few milliseconds, so such input is a paste: it comes out as one paste event (and
//    is then one message, or asks when large, as a bracketed paste does), never as one message
//    per line. Precisely, a run of text, Enter and Tab in one chunk is a paste when it has text
//    before an Enter and anything after it (an Enter that starts the run is the Enter key: the
//    end of a line typed before, read together with the next keys by a busy client); a paste
//    takes in the chunks that follow within PASTE_GAP_MS; a read that is one long line
//    (HOLD_MIN_CHARS or more) and Enter waits HOLD_MS in case it is the first piece of a paste
//    cut by the terminal's buffer. A line and Enter typed by hand (or as the last keys of a
//    chunk) still send. Inside a paste, Tab is a tab; outside, every key acts, Tab completes.
import { createKeyParser, type InputEvent, type KeyParser } from "./key-parser.js";

/** How long an ESC at the end of a chunk waits for the rest of a sequence before it is Esc. */
export const ESCAPE_MS = 40;
/** How long a chunk of one long line and Enter waits for a continuation (then it sends). */
export const HOLD_MS = 10;
/** A line this long in one read is no typing: it may be a paste's first piece. */
export const HOLD_MIN_CHARS = 256;
/** A paste without brackets takes in what arrives this soon after its last chunk. */
export const PASTE_GAP_MS = 40;
/** A bracketed paste whose end marker never comes is delivered after this much quiet. */
export const PASTE_END_MS = 1000;

export interface KeyStreamTiming {
  readonly escapeMs: number;
  readonly holdMs: number;
  readonly pasteGapMs: number;
  readonly pasteEndMs: number;
}

const DEFAULT_TIMING: KeyStreamTiming = { escapeMs: ESCAPE_MS, holdMs: HOLD_MS, pasteGapMs: PASTE_GAP_MS, pasteEndMs: PASTE_END_MS };

/** Keys that can be part of a paste without brackets: text, Enter, Tab (no modifiers). */
function pasteable(e: InputEvent): boolean {
  if (e.kind === "text") return true;
  return e.kind === "key" && !e.ctrl && !e.meta && !e.shift && (e.name === "enter" || e.name === "tab");
}

function isEnter(e: InputEvent): boolean {
  return e.kind === "key" && e.name === "enter";
}

function textOf(run: readonly InputEvent[]): string {
  let text = "";
  for (const e of run) text += e.kind === "text" ? e.text : isEnter(e) ? "\n" : "\t";
  return text;
}

/** A line break with something after it: more than one line, which nobody types in one read. */
function multiLine(run: readonly InputEvent[]): boolean {
  const firstBreak = run.findIndex(isEnter);
  return firstBreak >= 0 && firstBreak < run.length - 1;
}

/** One long line and the Enter that ends it: the first piece of a paste, cut after its first line? */
function longLineAndEnter(run: readonly InputEvent[]): boolean {
  if (run.length < 2 || !isEnter(run[run.length - 1] as InputEvent) || run.slice(0, -1).some(isEnter)) return false;
  return textOf(run).length > HOLD_MIN_CHARS;
}

export interface KeyStream {
  /** The events a chunk read at `nowMs` releases, in order. */
  push(chunk: string | Uint8Array, nowMs: number): InputEvent[];
  /** When expire() has something to do; undefined when nothing waits. */
  deadline(): number | undefined;
  /** The events whose wait is over at `nowMs`. */
  expire(nowMs: number): InputEvent[];
}

export function createKeyStream(timing: Partial<KeyStreamTiming> = {}): KeyStream {
  const t: KeyStreamTiming = { ...DEFAULT_TIMING, ...timing };
  const parser: KeyParser = createKeyParser();
  /** A line and Enter held back in case more lines follow at once. */
  let held: { run: InputEvent[]; atMs: number } | undefined;
  /** A paste without brackets being collected. */
  let pasting: { text: string; atMs: number } | undefined;
  /** When the parser last got input (its unfinished sequence waits from then). */
  let lastInputMs = 0;

  /** Lets out what waits for a continuation that did not come. */
  function release(out: InputEvent[]): void {
    if (held !== undefined) {
      out.push(...held.run);
      held = undefined;
    }
    if (pasting !== undefined) {
      out.push({ kind: "paste", text: pasting.text });
      pasting = undefined;
    }
  }

  /** Events of one chunk, pastes without brackets found and gathered. */
  function classify(events: readonly InputEvent[], nowMs: number, out: InputEvent[]): void {
    let i = 0;
    // What arrives right after a held line or a paste in progress continues it.
    const continuing = (held !== undefined && nowMs - held.atMs <= t.holdMs) || (pasting !== undefined && nowMs - pasting.atMs <= t.pasteGapMs);
    if (continuing) {
      let end = 0;
      while (end < events.length && pasteable(events[end] as InputEvent)) end++;
      if (end > 0) {
        const before = held !== undefined ? textOf(held.run) : (pasting?.text ?? "");
        held = undefined;
        pasting = { text: before + textOf(events.slice(0, end)), atMs: nowMs };
        i = end;
      }
    }
    // Any other key, or input that comes too late, ends what waited (it goes out first).
    if (i < events.length || !continuing) release(out);
    while (i < events.length) {
      const e = events[i] as InputEvent;
      // Not pasteable, or an Enter before any text of this chunk: a key.
      if (!pasteable(e) || isEnter(e)) {
        out.push(e);
        i++;
        continue;
      }
      let end = i;
      while (end < events.length && pasteable(events[end] as InputEvent)) end++;
      const run = events.slice(i, end);
      const last = end === events.length;
      if (multiLine(run)) {
        if (last) pasting = { text: textOf(run), atMs: nowMs };
        else out.push({ kind: "paste", text: textOf(run) });
      } else if (last && longLineAndEnter(run)) {
        held = { run, atMs: nowMs };
      } else {
        out.push(...run);
      }
      i = end;
    }
  }

  return {
    push(chunk, nowMs) {
      lastInputMs = nowMs;
      const out: InputEvent[] = [];
      classify(parser.push(chunk), nowMs, out);
      return out;
    },
    deadline() {
      const times: number[] = [];
      if (held !== undefined) times.push(held.atMs + t.holdMs);
      if (pasting !== undefined) times.push(pasting.atMs + t.pasteGapMs);
      const waiting = parser.waiting();
      if (waiting === "escape") times.push(lastInputMs + t.escapeMs);
      if (waiting === "paste") times.push(lastInputMs + t.pasteEndMs);
      return times.length === 0 ? undefined : Math.min(...times);
    },
    expire(nowMs) {
      const out: InputEvent[] = [];
      if (held !== undefined && nowMs >= held.atMs + t.holdMs) release(out);
      if (pasting !== undefined && nowMs >= pasting.atMs + t.pasteGapMs) release(out);
      const waiting = parser.waiting();
      const waitedFor = waiting === "escape" ? t.escapeMs : waiting === "paste" ? t.pasteEndMs : undefined;
      if (waitedFor !== undefined && nowMs >= lastInputMs + waitedFor) {
        // The parser's bytes came after anything held: let that out first, keeping the order.
        release(out);
        out.push(...parser.flush());
      }
      return out;
    },
  };
}
