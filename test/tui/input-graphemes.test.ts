// The input line by grapheme cluster: what a terminal draws as one unit (a ZWJ family, a flag, a
// keycap, an emoji with a skin tone, a letter with a combining accent, a Hangul syllable spelled
// in jamo, a CJK character) is one step of Left / Right, one Backspace or Delete, and never split
// by a word motion or a word kill; the cursor always sits on a cluster boundary, and on screen it
// stands after exactly the cells (string-width, Ink's measure) of the text before it.
import inkStringWidth from "string-width";
import { describe, expect, test } from "vitest";
import {
  backspace, deleteForward, insertText, kill, moveCursor, type CursorMove, type InputBuffer, type Kill,
} from "../../src/tui/state/input-buffer.js";
import { createInitialState, reducer, type Action } from "../../src/tui/state/reducer.js";
import type { TuiState } from "../../src/tui/state/state.js";
import { clustersAfter, clustersBefore, nextBoundary, prevBoundary } from "../../src/tui/state/graphemes.js";
import { stringWidth } from "../../src/tui/view/cell-width.js";
import { inputView } from "../../src/tui/view/input-view.js";

const segmenter = new Intl.Segmenter(undefined, { granularity: "grapheme" });
const split = (text: string): string[] => Array.from(segmenter.segment(text), (s) => s.segment);
/** Every cluster boundary of text, by Intl.Segmenter over the whole text. */
const boundaries = (text: string): Set<number> => {
  const out = new Set([text.length]);
  for (const s of segmenter.segment(text)) out.add(s.index);
  return out;
};

const FAMILY = "👨‍👩‍👧"; // man ZWJ woman ZWJ girl
const FLAG = "🇫🇷";
const FLAG2 = "🇩🇪";
const KEYCAP = "1️⃣"; // 1 VS16 COMBINING ENCLOSING KEYCAP
const THUMB = "👍🏽"; // with a skin tone modifier
const E_ACUTE = "e\u0301"; // e + COMBINING ACUTE ACCENT
const GAK = "\u1100\u1161\u11a8"; // 각 spelled in conjoining jamo (L V T)
const KAN = "漢";

const HARD: ReadonlyArray<readonly [string, string]> = [
  ["ZWJ family", FAMILY],
  ["flag", FLAG],
  ["keycap", KEYCAP],
  ["skin tone", THUMB],
  ["combining accent", E_ACUTE],
  ["Hangul jamo", GAK],
  ["CJK", KAN],
];

/** "ab|c" → { text: "abc", cursor: 2 } */
const at = (marked: string): InputBuffer => ({ text: marked.replace("|", ""), cursor: marked.indexOf("|") });
const show = (b: InputBuffer): string => `${b.text.slice(0, b.cursor)}|${b.text.slice(b.cursor)}`;

describe("each kind of cluster is one step and one deletion", () => {
  test.each(HARD)("%s: Right and Left step over it whole", (_name, c) => {
    let b = at(`a|${c}b`);
    b = moveCursor(b, "right");
    expect(show(b)).toBe(`a${c}|b`);
    b = moveCursor(b, "left");
    expect(show(b)).toBe(`a|${c}b`);
    expect(show(moveCursor(at(`${c}${c}|${c}`), "left"))).toBe(`${c}|${c}${c}`);
    expect(show(moveCursor(at(`${c}|${c}`), "right"))).toBe(`${c}${c}|`);
  });

  test.each(HARD)("%s: Backspace and Delete remove it whole, nothing dangling", (_name, c) => {
    expect(show(backspace(at(`a${c}|b`)))).toBe("a|b");
    expect(show(deleteForward(at(`a|${c}b`)))).toBe("a|b");
    expect(show(backspace(at(`${c}${c}|`)))).toBe(`${c}|`);
    expect(show(deleteForward(at(`|${c}${c}`)))).toBe(`|${c}`);
  });

  test.each(HARD)("%s: Home and End, and typing in the middle, keep it whole", (_name, c) => {
    expect(show(moveCursor(at(`x${c}|${c}`), "home"))).toBe(`|x${c}${c}`);
    expect(show(moveCursor(at(`x|${c}${c}`), "end"))).toBe(`x${c}${c}|`);
    const typed = insertText(moveCursor(at(`${c}|${c}`), "left"), "z");
    expect(show(typed)).toBe(`z|${c}${c}`);
    expect(split(typed.text)).toEqual(["z", c, c]);
  });

  test("two flags side by side are two steps of four code units, never a half flag", () => {
    let b = at(`|${FLAG}${FLAG2}`);
    b = moveCursor(b, "right");
    expect(show(b)).toBe(`${FLAG}|${FLAG2}`);
    expect(show(backspace(b))).toBe(`|${FLAG2}`);
    expect(show(deleteForward(b))).toBe(`${FLAG}|`);
  });

  test("an accent stacked on a letter goes with it, however many marks", () => {
    const zalgo = "o\u0301\u0308\u0323";
    expect(show(backspace(at(`n${zalgo}|`)))).toBe("n|");
    expect(show(moveCursor(at(`n${zalgo}|`), "left"))).toBe(`n|${zalgo}`);
  });
});

describe("words by clusters", () => {
  const line = `hé\u0301llo ${FAMILY}${FLAG} ${GAK}${KAN} 👍🏽ok`;

  test("Alt-B / Alt-F stop at the same words as for ASCII and never inside a cluster", () => {
    let b: InputBuffer = { text: line, cursor: line.length };
    const stops: string[] = [];
    for (let i = 0; i < 5; i++) {
      b = moveCursor(b, "word-left");
      stops.push(show(b));
    }
    expect(stops).toEqual([
      `hé\u0301llo ${FAMILY}${FLAG} ${GAK}${KAN} |👍🏽ok`,
      `hé\u0301llo ${FAMILY}${FLAG} |${GAK}${KAN} 👍🏽ok`,
      `hé\u0301llo |${FAMILY}${FLAG} ${GAK}${KAN} 👍🏽ok`,
      `|hé\u0301llo ${FAMILY}${FLAG} ${GAK}${KAN} 👍🏽ok`,
      `|hé\u0301llo ${FAMILY}${FLAG} ${GAK}${KAN} 👍🏽ok`,
    ]);
    b = { text: line, cursor: 0 };
    const forward: number[] = [];
    for (let i = 0; i < 4; i++) {
      b = moveCursor(b, "word-right");
      forward.push(b.cursor);
    }
    expect(forward).toEqual([line.indexOf(" "), line.indexOf(" ", line.indexOf(" ") + 1), line.lastIndexOf(" "), line.length]);
  });

  test("Ctrl-W and Alt-D remove whole words of clusters", () => {
    expect(show(kill(at(`say ${FAMILY}${THUMB}|`), "word-back"))).toBe("say |");
    expect(show(kill(at(`say |${FLAG}${E_ACUTE} x`), "word-forward"))).toBe("say | x");
    // A space carrying an accent is a visible character, part of the word.
    expect(show(kill(at(`ab  \u0301cd|`), "word-back"))).toBe("ab |");
  });
});

describe("lines of a multi-line input count clusters", () => {
  test("Up and Down keep the column in clusters", () => {
    const b = at(`${FAMILY}${FLAG}x\nab|c`);
    expect(show(moveCursor(b, "up"))).toBe(`${FAMILY}${FLAG}|x\nabc`);
    expect(show(moveCursor(at(`${FAMILY}${FLAG}|x\nabc`), "down"))).toBe(`${FAMILY}${FLAG}x\nab|c`);
    expect(show(moveCursor(at(`${E_ACUTE}${E_ACUTE}|\nabc`), "down"))).toBe(`${E_ACUTE}${E_ACUTE}\nab|c`);
  });
});

describe("inserting places the cursor on a boundary", () => {
  test("a paste of clusters leaves the cursor after them", () => {
    const b = insertText(at(`a|b`), `${FAMILY}${FLAG}${E_ACUTE}`);
    expect(show(b)).toBe(`a${FAMILY}${FLAG}${E_ACUTE}|b`);
  });

  test("text that joins the cluster after it moves the cursor past that cluster", () => {
    // A lone regional indicator before a flag pairs with the flag's first half: the cursor goes
    // after the new pair, not between two halves of it.
    const b = insertText(at(`|${FLAG}`), "🇩");
    expect(boundaries(b.text).has(b.cursor)).toBe(true);
    // "e" typed before a lone accent at the start takes the accent.
    const e = insertText(at("|\u0301x"), "e");
    expect(show(e)).toBe(`${E_ACUTE}|x`);
  });

  test("history recall and a typed line, through the reducer, end on a boundary and delete by cluster", () => {
    let s: TuiState = createInitialState({
      me: "alice",
      serverLabel: "127.0.0.1:50051",
      snapshot: { connection: { state: "connected", sinceMs: 0 }, peers: [], rooms: [] },
      atMs: 0,
    });
    const run = (...actions: Action[]): void => {
      s = actions.reduce(reducer, s);
    };
    run({ type: "input-submitted", conversationId: "lobby", text: `hi ${FAMILY}` }, { type: "input-up" });
    expect(show(s.input)).toBe(`hi ${FAMILY}|`);
    run({ type: "input-backspace" });
    expect(show(s.input)).toBe("hi |");
    run({ type: "paste", text: `${FLAG}${KEYCAP}` }, { type: "input-move", move: "left" }, { type: "input-delete" });
    expect(show(s.input)).toBe(`hi ${FLAG}|`);
  });
});

describe("the cursor on screen", () => {
  test.each(HARD)("%s: the column is the width of the text before the cursor", (_name, c) => {
    const text = `ab${c}cd${c}${c} x${c}`;
    for (let b: InputBuffer = { text, cursor: 0 }; ; ) {
      const view = inputView("> ", b, 200);
      const row = view.rows.find((r) => r.atCursor !== undefined);
      expect(row?.before).toBe(text.slice(0, b.cursor));
      // InputLine places the terminal cursor at stringWidth(lead + before).
      expect(stringWidth((row?.lead ?? "") + (row?.before ?? ""))).toBe(2 + inkStringWidth(text.slice(0, b.cursor)));
      // The cell under the cursor is the whole next cluster.
      expect(row?.atCursor).toBe(split(text.slice(b.cursor))[0] ?? " ");
      if (b.cursor === text.length) break;
      b = moveCursor(b, "right");
    }
  });
});

describe("no edit splits or changes a cluster it does not remove or add", () => {
  // Clusters that never join their neighbours in any order (so the expected clusters after an edit
  // are known): each starts with a base and ends where no following piece can attach.
  const PIECES = ["a", "b", " ", "Z", FAMILY, FLAG, FLAG2, KEYCAP, THUMB, E_ACUTE, GAK, KAN, "한", "\n", "é"];
  const MOVES: CursorMove[] = ["left", "right", "home", "end", "word-left", "word-right", "up", "down"];
  const KILLS: Kill[] = ["word-back", "word-forward"];

  // A small deterministic generator (xorshift), so a failure reproduces.
  let seed = 0x2545f491;
  const rand = (n: number): number => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) % n;
  };

  test("3,000 random edits and motions over random lines of hard clusters", () => {
    for (let round = 0; round < 60; round++) {
      const pieces = Array.from({ length: 1 + rand(12) }, () => PIECES[rand(PIECES.length)] as string);
      let b: InputBuffer = { text: pieces.join(""), cursor: 0 };
      let cs = pieces;
      for (let step = 0; step < 50; step++) {
        const before = b;
        // The cursor's index in clusters.
        const k = split(before.text.slice(0, before.cursor)).length;
        const op = rand(6);
        let expected: string[];
        if (op === 0) {
          const piece = PIECES[rand(PIECES.length)] as string;
          b = insertText(before, piece);
          expected = [...cs.slice(0, k), piece, ...cs.slice(k)];
          expect(b.cursor).toBe(before.cursor + piece.length);
        } else if (op === 1) {
          b = backspace(before);
          expected = k === 0 ? cs : [...cs.slice(0, k - 1), ...cs.slice(k)];
        } else if (op === 2) {
          b = deleteForward(before);
          expected = [...cs.slice(0, k), ...cs.slice(k + 1)];
        } else if (op === 3) {
          b = kill(before, KILLS[rand(KILLS.length)] as Kill);
          // A kill removes a run of whole clusters next to the cursor.
          const after = split(b.text);
          const removed = cs.length - after.length;
          const from = split(b.text.slice(0, b.cursor)).length;
          expected = [...cs.slice(0, from), ...cs.slice(from + removed)];
        } else {
          b = moveCursor(before, MOVES[rand(MOVES.length)] as CursorMove);
          expected = cs;
        }
        const context = `${JSON.stringify(show(before))} op ${op} → ${JSON.stringify(show(b))}`;
        expect(boundaries(b.text).has(b.cursor), context).toBe(true);
        expect(split(b.text), context).toEqual(expected);
        cs = expected;
      }
    }
  });
});

describe("boundaries found locally agree with Intl.Segmenter over the whole text", () => {
  // Loose pieces that join in every way UAX #29 knows: marks, ZWJ, variation selectors, skin
  // tones, lone regional indicators (pairs form by parity), jamo L / V / T, a prepended
  // concatenation mark, CR LF, a virama between Devanagari consonants, tag characters.
  const LOOSE = ["a", " ", "\u0301", "\u200d", "\ufe0f", "🏽", "👨", "🇫", "🇷", "\u1100", "\u1161", "\u11a8", "가", "\u0600", "\r", "\n", "क", "\u094d", "\u{e0067}", "漢", "1", "\u20e3"];
  let seed = 0x1234567;
  const rand = (n: number): number => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) % n;
  };

  test("prevBoundary, nextBoundary and the cluster walks, on 400 random strings of joining pieces", () => {
    for (let round = 0; round < 400; round++) {
      const text = Array.from({ length: 1 + rand(16) }, () => LOOSE[rand(LOOSE.length)] as string).join("");
      const cuts = [...boundaries(text)].sort((x, y) => x - y);
      for (let j = 0; j < cuts.length; j++) {
        const here = cuts[j] as number;
        expect(prevBoundary(text, here), JSON.stringify(text)).toBe(cuts[Math.max(0, j - 1)]);
        expect(nextBoundary(text, here), JSON.stringify(text)).toBe(cuts[Math.min(cuts.length - 1, j + 1)]);
        expect([...clustersBefore(text, here)].reverse(), JSON.stringify(text)).toEqual(split(text.slice(0, here)));
        expect([...clustersAfter(text, here)], JSON.stringify(text)).toEqual(split(text).slice(j));
      }
    }
  });

  test("a word of 1,000 flags is one word, walked in one pass", () => {
    const flags = `${FLAG}${FLAG2}`.repeat(500);
    const text = `go ${flags} now`;
    expect(show(moveCursor({ text, cursor: text.length - 4 }, "word-left"))).toBe(`go |${flags} now`);
    expect(show(moveCursor({ text, cursor: 3 }, "word-right"))).toBe(`go ${flags}| now`);
    expect(show(backspace({ text, cursor: text.length - 4 }))).toBe(`go ${flags.slice(0, -4)}| now`);
  });
});
