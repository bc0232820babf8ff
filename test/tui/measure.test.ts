// Our layout measures text as Ink measures it (issue 11): on a corpus of hard strings, the width
// we compute equals string-width's (the package Ink measures and places text with), and no row
// we lay out is wider than its column count by that measure, so Ink never cuts or shifts a row.
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import type { ChatMessage } from "../../src/client/types.js";
import { sanitizeText } from "../../src/protocol/sanitize.js";
import type { Entry } from "../../src/tui/state/state.js";
import { clusters, expandTabs, mayJoin, padEndToWidth, stringWidth, takeWidth, truncateToWidth, wrapHanging, wrapText } from "../../src/tui/view/cell-width.js";
import { inputView } from "../../src/tui/view/input-view.js";
import { fitSegments, rowText, seg } from "../../src/tui/view/row.js";
import { entryRows } from "../../src/tui/view/scrollback-rows.js";

// string-width as Ink itself resolves it (from Ink's own directory): if an Ink upgrade brings
// another version than the one package.json pins for us, the comparisons below use Ink's.
const require = createRequire(import.meta.url);
const inkStringWidthPath = createRequire(require.resolve("ink")).resolve("string-width");
const { default: inkStringWidth } = (await import(pathToFileURL(inkStringWidthPath).href)) as typeof import("string-width");

const graphemes = new Intl.Segmenter(undefined, { granularity: "grapheme" });
const segmentsOf = (text: string): string[] => Array.from(graphemes.segment(text), (s) => s.segment);

/** Strings where a code point at a time and a grapheme at a time disagree, or that wrap badly. */
const HARD: Record<string, string> = {
  "ZWJ family": "👨\u200D👩\u200D👧\u200D👦",
  "ZWJ profession with skin tone": "👩🏽\u200D💻",
  "rainbow flag (VS16 + ZWJ)": "🏳\uFE0F\u200D🌈",
  "people holding hands": "🧑\u200D🤝\u200D🧑",
  "polar bear (ZWJ + VS16)": "🐻\u200D❄\uFE0F",
  "phoenix (Emoji 15.1 ZWJ)": "🐦\u200D🔥",
  "lime (Emoji 15.1 ZWJ)": "🍋\u200D🟩",
  "head shaking (Emoji 15.1)": "🙂\u200D↔\uFE0F",
  "newer emoji (15, 16)": "🫨🫎🪿🫆🫩",
  "flag pair": "🇫🇷",
  "flags side by side": "🇫🇷🇯🇵🇺🇸",
  "lone regional indicator": "🇫 x",
  "subdivision flag (tags)": "🏴\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}",
  "keycap": "1\uFE0F\u20E3 #\uFE0F\u20E3",
  "unqualified keycap": "1\u20E3",
  "a word of unqualified keycaps": "1\u20E3".repeat(50),
  "skin tones": "👍🏽👋🏿 a👍🏻b",
  "lone skin tone": "🏽",
  "VS16 on text symbols": "❤\uFE0F ☺\uFE0F ⚠\uFE0F ✔\uFE0F",
  "VS15 on an emoji": "❤\uFE0E",
  "combining accents": "e\u0301 a\u0300\u0301\u0302 n\u0303",
  "stacked marks": "Z\u0351\u036B\u0343\u036A\u0302\u036B\u033D\u0334\u0319\u0324a\u0308\u0324",
  "Devanagari": "नमस्ते क्षत्रिय",
  "Thai": "สวัสดีครับ",
  "Arabic": "مرحبا بالعالم",
  "CJK": "漢字かなカナ한국어",
  "halfwidth katakana with voiced marks": "ｶﾞｷﾞｸﾞ ｰ",
  "fullwidth Latin": "ＡＢＣ１２３",
  "Hangul jamo L+V+T": "\u1100\u1161\u11A8\u1100\u1161",
  "Hangul jamo, unmatched": "\u1100\u1100\u1161\u11A8",
  "ideographic variation selector": "葛\u{E0100}",
  tabs: "a\tb\t\tc 漢\td",
  "replacement characters (controls the sanitiser replaced)": sanitizeText("\u001b[31mred\u0007 \u202Eevil\u200B\u0000"),
  "ZWJ smuggling": sanitizeText("a\u200D\u200Db 👨\u200D\u200D👩"),
  "long word": "x".repeat(150),
  "long URL": "https://example.org/" + "a-very-long-path-segment/".repeat(8) + "?q=漢字&e=👍🏽",
  "long CJK run": "漢字仮名交じり文".repeat(12),
  "long emoji run": "👨\u200D👩\u200D👧🇫🇷1\uFE0F\u20E3👍🏽".repeat(12),
  "mixed scripts": "deploy 漢字 café naïve 👍 done — नमस्ते 🇯🇵 한국어 e\u0301 ｶﾞ x\u20E3 مرحبا 🏳\uFE0F\u200D🌈 ok",
  "ambiguous width": "± × ÷ ° § ¶ → ① Ω",
  "em and en spaces": "a\u2003b\u2002c\u3000d",
};
const widestCluster = (text: string): number => Math.max(0, ...segmentsOf(text).map((s) => inkStringWidth(s)));
const CORPUS = Object.entries(HARD).map(([name, raw]) => [name, sanitizeText(raw)] as const);
const WIDTHS = [2, 3, 4, 5, 7, 10, 13, 20, 33, 80];

describe("measure: ours equals Ink's (string-width), on hard strings", () => {
  it("we use the very string-width Ink uses (package.json pins the version Ink resolves)", () => {
    expect(require.resolve("string-width")).toBe(inkStringWidthPath);
  });

  it.each(CORPUS)("%s: same width, cut into whole grapheme clusters", (_name, text) => {
    expect(stringWidth(text)).toBe(inkStringWidth(text));
    const cs = clusters(text);
    expect(cs.map((c) => c.text)).toEqual(segmentsOf(text));
    expect(cs.map((c) => c.width)).toEqual(segmentsOf(text).map((s) => inkStringWidth(s)));
  });

  it("the sanitiser's output is what reaches the layout, and it keeps these strings whole", () => {
    // The corpus is measured after sanitising (as the client displays it); every emoji sequence
    // above survives it unchanged, so the comparison is about measuring, not about the sanitiser.
    for (const [name, raw] of Object.entries(HARD)) {
      if (name.includes("sanitiser") || name.includes("smuggling")) continue;
      expect(sanitizeText(raw), name).toBe(raw);
    }
  });
});

describe("measure without a segmenter call, where Intl.Segmenter would give one cluster per code point", () => {
  it("text of code points that mayJoin() lets through is cut by Intl.Segmenter one code point at a time", () => {
    // Joins happen between neighbours (a mark after a letter, a prepended letter before one, two
    // regional indicators, jamo): "a" c c "a" shows each kind, for every code point c. Checked
    // against the running Node's ICU, so a Unicode update that adds joining code points fails here.
    const wrong: string[] = [];
    let block = "";
    const check = (): void => {
      for (const { segment } of graphemes.segment(block)) if ([...segment].length !== 1) wrong.push(segment);
      block = "";
    };
    for (let cp = 0; cp <= 0x10ffff; cp++) {
      const c = String.fromCodePoint(cp);
      if (mayJoin(c)) continue;
      block += `a${c}${c}`;
      if (block.length > 30_000) check();
    }
    check();
    expect(wrong.map((s) => [...s].map((c) => c.codePointAt(0)?.toString(16)).join(" "))).toEqual([]);
  });

  it("widths agree with string-width over the code points of planes 0 and 1 (and a sample of the others), a block at a time", { timeout: 60_000 }, () => {
    for (let start = 0; start <= 0x10ffff; start += 0x1000) {
      let text = "";
      // Not ESC and CSI: string-width strips escape sequences from a whole string; the
      // sanitiser has replaced both before text reaches the layout.
      const step = start < 0x20000 ? 1 : 251;
      for (let cp = start; cp < start + 0x1000; cp += step) if (cp !== 0x1b && cp !== 0x9b) text += `a${String.fromCodePoint(cp)} `;
      expect(stringWidth(text), start.toString(16)).toBe(inkStringWidth(text));
      expect(clusters(text).reduce((w, u) => w + u.width, 0), start.toString(16)).toBe(inkStringWidth(text));
    }
  });
});

describe("layout: no row wider than its columns by Ink's measure, no cluster cut", () => {
  it.each(CORPUS)("%s: wrapText rows fit and keep every cluster whole", (_name, text) => {
    for (const width of WIDTHS) {
      const rows = wrapText(text, width);
      for (const row of rows) {
        // A cluster is never cut, so one wider than the row (a 2-cell emoji, or jamo that make a
        // 4-cell cluster, in 2 or 3 columns) sits alone on its row; everything else fits.
        const alone = segmentsOf(row).length === 1;
        if (!alone) expect(inkStringWidth(row), `${JSON.stringify(row)} in ${width} columns`).toBeLessThanOrEqual(width);
      }
      // Nothing lost and nothing split: the rows' clusters are the text's clusters, less the
      // spaces dropped at breaks (a cluster cut in two would show up as two pieces here).
      const fromRows = rows.flatMap(segmentsOf).filter((s) => s !== " ");
      const fromText = text.split("\n").flatMap((l) => segmentsOf(expandTabs(l))).filter((s) => s !== " ");
      expect(fromRows).toEqual(fromText);
    }
  });

  it.each(CORPUS)("%s: hanging indents, truncation, padding and fitted segments fit", (_name, text) => {
    for (const width of WIDTHS) {
      if (width >= widestCluster(text)) {
        for (const row of wrapHanging(`    ${text}`, width)) expect(inkStringWidth(row)).toBeLessThanOrEqual(width);
      }
      const cut = truncateToWidth(text, width);
      expect(inkStringWidth(cut)).toBeLessThanOrEqual(width);
      if (inkStringWidth(text) <= width) expect(cut).toBe(text);
      expect(inkStringWidth(takeWidth(text, width))).toBeLessThanOrEqual(width);
      if (inkStringWidth(text) <= width) expect(inkStringWidth(padEndToWidth(text, width))).toBe(width);
      const fitted = fitSegments([seg("nick "), seg(text), seg(" ✓")], width);
      expect(inkStringWidth(fitted.map((s) => s.text).join(""))).toBeLessThanOrEqual(width);
    }
  });

  it.each(CORPUS)("%s: a scrollback message and the input box fit their columns", (_name, text) => {
    const message: ChatMessage = { id: "01", conversationId: "lobby", from: "bob", kind: "text", text, sentAtMs: 0, receivedAtMs: 0, own: false };
    const entry: Entry = { kind: "message", seq: 1, message };
    for (const width of [24, 40, 80]) {
      const rows = entryRows(entry, { width, me: "alice", nickWidth: 5, formatTime: () => "12:34" });
      for (const row of rows) expect(inkStringWidth(rowText(row)), `${JSON.stringify(rowText(row))} in ${width} columns`).toBeLessThanOrEqual(width);
      for (const cursor of [0, text.length]) {
        const input = inputView("> ", { text, cursor }, width, 100);
        for (const row of input.rows) {
          const shown = row.lead + row.before + (row.atCursor ?? "") + row.after;
          expect(inkStringWidth(shown), `${JSON.stringify(shown)} in ${width} columns`).toBeLessThanOrEqual(width);
        }
      }
    }
  });
});
