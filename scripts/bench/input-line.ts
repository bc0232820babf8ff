// The input line's keystroke path on a long line (2,000 characters): each edit or motion of the
// input buffer (src/tui/state/input-buffer.ts) plus the input box's layout (inputView), which
// the TUI runs on every key. Edits work on grapheme clusters; plain ASCII around the cursor must
// not cost a segmenter call over the line, so the ASCII figures are the ones with a target.
import { backspace, deleteForward, insertText, kill, moveCursor, type InputBuffer } from "../../src/tui/state/input-buffer.js";
import { inputView } from "../../src/tui/view/input-view.js";
import type { Row, RunOptions } from "./_lib.js";

export const name = "input-line";
export const description = "input line keystrokes on a 2,000-character line (edit + motion + layout), ASCII and emoji/CJK/accents";

const LENGTH = 2_000;

function line(kind: "ascii" | "mixed"): string {
  const words = kind === "ascii"
    ? ["hello", "world", "secure", "chat", "terminal", "input", "line"]
    : ["héllo", "👨‍👩‍👧", "🇫🇷🇩🇪", "漢字", "1️⃣", "👍🏽", "한국어", "ascii"];
  let s = "";
  for (let i = 0; s.length < LENGTH; i++) s += `${words[i % words.length]} `;
  // Cut at a word end (the line stays whole clusters).
  return s.slice(0, s.lastIndexOf(" ", LENGTH));
}

/** Microseconds per keystroke for one lap of typical keys in the middle of the line. */
function lap(text: string, keys: number): number {
  let buf: InputBuffer = { text, cursor: text.lastIndexOf(" ", text.length >> 1) + 1 };
  const t0 = performance.now();
  for (let i = 0; i < keys; i++) {
    switch (i % 8) {
      case 0: buf = insertText(buf, "x"); break;
      case 1: buf = moveCursor(buf, "left"); break;
      case 2: buf = moveCursor(buf, "right"); break;
      case 3: buf = backspace(buf); break;
      case 4: buf = moveCursor(buf, "word-left"); break;
      case 5: buf = moveCursor(buf, "word-right"); break;
      case 6: buf = insertText(buf, "y"); break;
      case 7: buf = deleteForward(moveCursor(buf, "left")); break;
    }
    inputView("alice> ", buf, 120, 8);
  }
  const us = ((performance.now() - t0) * 1000) / keys;
  // Keep the result alive so nothing is optimised away.
  if (kill(buf, "to-end").text.length > buf.text.length) throw new Error("bench: impossible");
  return us;
}

/** Microseconds per edit alone (no layout), to see the buffer's share. */
function editsOnly(text: string, keys: number): number {
  let buf: InputBuffer = { text, cursor: text.lastIndexOf(" ", text.length >> 1) + 1 };
  const t0 = performance.now();
  for (let i = 0; i < keys; i++) {
    switch (i % 4) {
      case 0: buf = insertText(buf, "x"); break;
      case 1: buf = moveCursor(buf, "left"); break;
      case 2: buf = moveCursor(buf, "right"); break;
      case 3: buf = backspace(buf); break;
    }
  }
  return ((performance.now() - t0) * 1000) / keys;
}

/** Microseconds per word motion or word kill (Alt-B, Alt-F, Ctrl-W) in the middle of the line. */
function words(text: string, keys: number): number {
  const middle: InputBuffer = { text, cursor: text.lastIndexOf(" ", text.length >> 1) + 1 };
  let sum = 0;
  const t0 = performance.now();
  for (let i = 0; i < keys; i++) {
    const b = i % 3 === 0 ? moveCursor(middle, "word-left") : i % 3 === 1 ? moveCursor(middle, "word-right") : kill(middle, "word-back");
    sum += b.cursor;
  }
  if (sum < 0) throw new Error("bench: impossible");
  return ((performance.now() - t0) * 1000) / keys;
}

export async function run({ runs, quick, log }: RunOptions): Promise<Row[]> {
  const keys = quick ? 2_000 : 10_000;
  const ascii = line("ascii");
  const mixed = line("mixed");
  lap(ascii, 500);
  lap(mixed, 500);
  const asciiUs: number[] = [];
  const mixedUs: number[] = [];
  const asciiEditUs: number[] = [];
  const mixedEditUs: number[] = [];
  const asciiWordUs: number[] = [];
  const mixedWordUs: number[] = [];
  for (let r = 0; r < runs; r++) {
    asciiUs.push(lap(ascii, keys));
    mixedUs.push(lap(mixed, keys));
    asciiEditUs.push(editsOnly(ascii, keys * 4));
    mixedEditUs.push(editsOnly(mixed, keys * 4));
    asciiWordUs.push(words(ascii, keys));
    mixedWordUs.push(words(mixed, keys));
    log(`run ${r + 1}: ${keys} keys on ${ascii.length}- and ${mixed.length}-unit lines`);
  }
  await Promise.resolve();
  return [
    { metric: `keystroke + layout, ASCII line of ${ascii.length}`, unit: "µs", values: asciiUs, better: "lower", target: 500 },
    { metric: `keystroke + layout, emoji/CJK/accents line of ${mixed.length}`, unit: "µs", values: mixedUs, better: "lower" },
    { metric: `  edit/motion alone (insert, left, right, backspace), ASCII`, unit: "µs", values: asciiEditUs, better: "lower", target: 5 },
    { metric: `  edit/motion alone, emoji/CJK/accents`, unit: "µs", values: mixedEditUs, better: "lower" },
    { metric: `  word motion or kill alone, ASCII`, unit: "µs", values: asciiWordUs, better: "lower" },
    { metric: `  word motion or kill alone, emoji/CJK/accents`, unit: "µs", values: mixedWordUs, better: "lower" },
  ];
}
