// The input buffer's editing keys: word moves (Alt-B / Alt-F), kills (Ctrl-W, Alt-D, Ctrl-U,
// Ctrl-K), Home / End within a multi-line input, and moving between its lines.
import { describe, expect, test } from "vitest";
import { kill, moveCursor, onEdgeLine, wordEnd, wordStart, type InputBuffer } from "../../src/tui/state/input-buffer.js";
import { parseKeys } from "../../src/tui/input/key-parser.js";

/** "hello |world" → { text: "hello world", cursor: 6 } */
const at = (marked: string): InputBuffer => ({ text: marked.replace("|", ""), cursor: marked.indexOf("|") });
const show = (b: InputBuffer): string => `${b.text.slice(0, b.cursor)}|${b.text.slice(b.cursor)}`;

describe("words", () => {
  test("Alt-B and Alt-F move by words, skipping spaces", () => {
    expect(show(moveCursor(at("hello big |world"), "word-left"))).toBe("hello |big world");
    expect(show(moveCursor(at("hello big wor|ld"), "word-left"))).toBe("hello big |world");
    expect(show(moveCursor(at("|hello"), "word-left"))).toBe("|hello");
    expect(show(moveCursor(at("hel|lo big world"), "word-right"))).toBe("hello| big world");
    expect(show(moveCursor(at("hello|  big world"), "word-right"))).toBe("hello  big| world");
    expect(show(moveCursor(at("end|"), "word-right"))).toBe("end|");
    expect(wordStart("a 漢字 b", 4)).toBe(2);
    expect(wordEnd("a 👍👍 b", 1)).toBe(6);
  });

  test("Ctrl-W deletes the word before the cursor, Alt-D the one after", () => {
    expect(show(kill(at("hello big |world"), "word-back"))).toBe("hello |world");
    expect(show(kill(at("hello big   |"), "word-back"))).toBe("hello |");
    expect(show(kill(at("|hello"), "word-back"))).toBe("|hello");
    expect(show(kill(at("hello |big world"), "word-forward"))).toBe("hello | world");
  });

  test("Ctrl-U deletes everything before the cursor, Ctrl-K everything after", () => {
    expect(show(kill(at("one\ntwo th|ree"), "to-start"))).toBe("|ree");
    expect(show(kill(at("one tw|o\nthree"), "to-end"))).toBe("one tw|");
    expect(kill(at("|x"), "to-start")).toEqual(at("|x"));
  });
});

describe("multi-line input", () => {
  test("Home / End go to the line's edge, a second press to the whole input's", () => {
    const b = at("first\nsec|ond\nthird");
    const home = moveCursor(b, "home");
    expect(show(home)).toBe("first\n|second\nthird");
    expect(show(moveCursor(home, "home"))).toBe("|first\nsecond\nthird");
    const end = moveCursor(b, "end");
    expect(show(end)).toBe("first\nsecond|\nthird");
    expect(show(moveCursor(end, "end"))).toBe("first\nsecond\nthird|");
  });

  test("up and down move between lines, keeping the column where they can", () => {
    expect(show(moveCursor(at("first\nsec|ond\nthird"), "up"))).toBe("fir|st\nsecond\nthird");
    expect(show(moveCursor(at("first\nsec|ond\nthird"), "down"))).toBe("first\nsecond\nthi|rd");
    expect(show(moveCursor(at("a\nlong|er"), "up"))).toBe("a|\nlonger");
    expect(show(moveCursor(at("fi|rst"), "up"))).toBe("fi|rst");
  });

  test("knows when the cursor is on the first or the last line (then Up / Down recall history)", () => {
    expect(onEdgeLine(at("one li|ne"), "up")).toBe(true);
    expect(onEdgeLine(at("one li|ne"), "down")).toBe(true);
    expect(onEdgeLine(at("a\nb|"), "up")).toBe(false);
    expect(onEdgeLine(at("a\nb|"), "down")).toBe(true);
    expect(onEdgeLine(at("a|\nb"), "down")).toBe(false);
  });
});

describe("mouse reports", () => {
  test("wheel notches are taken out of the input; clicks are dropped; keys stay", () => {
    expect(parseKeys("abc")).toEqual([{ kind: "text", text: "abc" }]);
    expect(parseKeys("\u001b[<64;10;5M")).toEqual([{ kind: "wheel", direction: -1 }]);
    expect(parseKeys("x\u001b[<65;1;1My\u001b[<0;3;4M\u001b[<0;3;4mz\u001b[<80;2;2M")).toEqual([
      { kind: "text", text: "x" }, { kind: "wheel", direction: 1 }, { kind: "text", text: "y" }, { kind: "text", text: "z" }, { kind: "wheel", direction: -1 },
    ]);
  });
});
