// Cell widths of what the sanitiser lets through (issue 9 §5): ignorable code points take no
// cell; emoji sequences are one two-cell emoji; everything as Ink's own string-width measures it
// (the corpus of hard strings and the layout's rows are in measure.test.ts).
import fc from "fast-check";
import stringWidthOfInk from "string-width";
import { describe, expect, it } from "vitest";
import { sanitizeText } from "../../src/protocol/sanitize.js";
import { clusters, stringWidth } from "../../src/tui/view/cell-width.js";

describe("cell widths by Unicode property", () => {
  it("default-ignorable code points and bidi controls take no cell", () => {
    for (const n of [0x061c, 0x200b, 0x200d, 0x2066, 0xfeff, 0xe0067, 0xe007f, 0xe0001, 0x3164, 0x115f, 0xffa0, 0xad, 0xfe0f, 0xe0100, 0x180e]) {
      expect(stringWidth(String.fromCodePoint(n)), n.toString(16)).toBe(0);
    }
    expect(stringWidth("a\u{E0068}\u{E0069}b")).toBe(2);
  });

  it("known answers: emoji sequences are two cells, whole", () => {
    const cases: Array<[string, number]> = [
      ["👨\u200D👩\u200D👧\u200D👦", 2], ["👩🏽\u200D💻", 2], ["🏳\uFE0F\u200D🌈", 2], ["🇫🇷", 2], ["🇫🇷🇯🇵", 4], ["1\uFE0F\u20E3", 2],
      ["👍🏽", 2], ["❤\uFE0F", 2], ["🏴\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}", 2], ["a👍🏽b", 4], ["漢字", 4],
    ];
    for (const [s, w] of cases) {
      expect(stringWidth(s), s).toBe(w);
      expect(stringWidthOfInk(s), `Ink agrees on ${s}`).toBe(w);
    }
    expect(clusters("👨\u200D👩\u200D👧 x").map((c) => c.text)).toEqual(["👨\u200D👩\u200D👧", " ", "x"]);
    expect(clusters("🇫🇷🇯🇵").map((c) => c.text)).toEqual(["🇫🇷", "🇯🇵"]);
  });

  it("property: text with emoji sequences and ignorable code points measures as Ink measures it, raw and sanitised", () => {
    // An ignorable code point right after an emoji joins its grapheme cluster and can change how
    // string-width (so Ink) measures it ("1️⃣" + tags is one cell): we follow Ink there, since
    // what matters is that both agree. Displayed text is sanitised first, which replaces those.
    const unit = fc.constantFrom("a", "漢", "é", "👨\u200D👩\u200D👧", "👩🏽\u200D💻", "👍🏽", "❤\uFE0F", "🇫🇷", "1\uFE0F\u20E3", "🏴\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}");
    const gap = fc.constantFrom(" ", " \u061C", "\u{E0067}\u{E0069} ", "\u2066 ", "\u200B", "\u3164");
    fc.assert(fc.property(fc.array(fc.tuple(unit, gap), { maxLength: 10 }), (parts) => {
      const text = parts.map(([u, g]) => u + g).join("");
      expect(stringWidth(text)).toBe(stringWidthOfInk(text));
      expect(stringWidth(sanitizeText(text))).toBe(stringWidthOfInk(sanitizeText(text)));
      expect(clusters(text).map((c) => c.text).join("")).toBe(text);
      // Ignorables after a space or at the start stand alone and take no cell.
      const visible = parts.map(([u, g]) => u + g.replace(/[\p{Default_Ignorable_Code_Point}\p{Bidi_Control}]/gu, "")).join("");
      if (parts.every(([, g]) => g.startsWith(" ") || g === "\u200B" || g === "\u3164")) expect(stringWidth(text)).toBe(stringWidth(visible));
    }), { numRuns: 1500 });
  });
});
