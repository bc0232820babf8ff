import { describe, expect, it } from "vitest";
import { isSafeText, REPLACEMENT, sanitizeLine, sanitizeText } from "../../src/protocol/sanitize.js";
import fc from "fast-check";

const R = REPLACEMENT;

describe("sanitizeText (PROTOCOL.md Open step 10)", () => {
  it("keeps ordinary text, newlines, tabs and emoji", () => {
    const s = "hello\n\tworld — ünïcödé 🔐 日本語";
    expect(sanitizeText(s)).toBe(s);
  });

  it("neutralises ESC sequences (CSI colours, OSC title, cursor moves)", () => {
    expect(sanitizeText("\x1b[31mred\x1b[0m")).toBe(`${R}[31mred${R}[0m`);
    expect(sanitizeText("\x1b]0;pwned\x07")).toBe(`${R}]0;pwned${R}`);
    expect(sanitizeText("a\x1b[2J\x1b[Hb")).toBe(`a${R}[2J${R}[Hb`);
    expect(sanitizeText("x\x1bPq#0;2;0;0;0\x1b\\")).not.toContain("\x1b");
  });

  it("replaces C0 controls except newline and tab, DEL and C1 controls (8-bit CSI)", () => {
    expect(sanitizeText("a\rb\x08c\x00d\x7fe")).toBe(`a${R}b${R}c${R}d${R}e`);
    expect(sanitizeText("\u009b31m")).toBe(`${R}31m`);
    expect(sanitizeText("\u0085")).toBe(R);
  });

  it("replaces zero-width and bidi controls", () => {
    for (const cp of [0x200b, 0x200c, 0x200d, 0x200e, 0x200f, 0x202a, 0x202b, 0x202c, 0x202d, 0x202e,
      0x2060, 0x2061, 0x2066, 0x2067, 0x2068, 0x2069, 0xfeff, 0x2028, 0x2029]) {
      expect(sanitizeText(`a${String.fromCodePoint(cp)}b`)).toBe(`a${R}b`);
    }
    // The classic "Trojan Source" reordering.
    expect(sanitizeText("admin\u202e\u2066 // check\u2069\u2066")).not.toMatch(/[\u202e\u2066\u2069]/);
  });

  it("replaces lone surrogates but keeps pairs", () => {
    expect(sanitizeText("a\ud800b")).toBe(`a${R}b`);
    expect(sanitizeText("a\udc00b")).toBe(`a${R}b`);
    expect(sanitizeText("\ud83d\udd10")).toBe("🔐");
  });

  it("is idempotent and leaves nothing unsafe", () => {
    const nasty = "\x1b[31m\u202ehi\u200b\r\n\t\x9b\ud800";
    const once = sanitizeText(nasty);
    expect(sanitizeText(once)).toBe(once);
    expect(isSafeText(once)).toBe(true);
    expect(isSafeText(nasty)).toBe(false);
  });

  it("sanitizeLine also flattens newlines and tabs", () => {
    expect(sanitizeLine("a\nb\tc\x1b")).toBe(`a b c${R}`);
  });
});

describe("sanitizeText by Unicode property (issue 9 §5)", () => {
  const cp = (n: number) => String.fromCodePoint(n);

  it("neutralises every default-ignorable code point and bidi control it is given alone", () => {
    // U+061C ARABIC LETTER MARK, tag characters, Hangul fillers, soft hyphen, Mongolian vowel
    // separator, invisible operators, combining grapheme joiner, variation selectors on a letter.
    for (const n of [0x061c, 0xe0001, 0xe0020, 0xe0041, 0xe007f, 0x3164, 0x115f, 0xffa0, 0x00ad, 0x180e, 0x2064, 0x034f, 0x17b4, 0xe01ef, 0x1d173]) {
      expect(sanitizeText(`a${cp(n)}b`), n.toString(16)).toBe(`a${R}b`);
    }
    expect(sanitizeText("a\uFE0Fb")).toBe(`a${R}b`); // VS16 after a letter with no emoji form
  });

  it("keeps emoji sequences whole: ZWJ families and professions, flags, keycaps, skin tones, VS16, subdivision flags", () => {
    for (const s of [
      "👨\u200D👩\u200D👧\u200D👦", "👩🏽\u200D💻", "🏳\uFE0F\u200D🌈", "❤\uFE0F\u200D🔥", "🇫🇷🇯🇵", "1\uFE0F\u20E3", "#\uFE0F\u20E3",
      "👍🏽", "❤\uFE0F", "☺\uFE0E", "🏴\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}", "🏴\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}",
      "葛\u{E0100}", "नमस्ते", "ünïcödé", "日本語",
    ]) expect(sanitizeText(s), s).toBe(s);
  });

  it("refuses what merely looks like those sequences", () => {
    expect(sanitizeText("a\u200Db")).toBe(`a${R}b`); // ZWJ between letters
    expect(sanitizeText("👨\u200D")).toBe(`👨${R}`); // a dangling joiner
    expect(sanitizeText("😀\u{E0101}\u{E0102}")).toBe(`😀${R}${R}`); // bytes hidden in selectors after an emoji
    expect(sanitizeText("❤\uFE0F\uFE0F")).toBe(`❤\uFE0F${R}`); // one selector, not a run
    expect(sanitizeText("🏴\u{E0068}\u{E0069}\u{E007F}")).toBe(`🏴${R}${R}${R}`); // tags that are no flag: hidden "hi"
    expect(sanitizeText("x\u{E0068}\u{E0069}")).toBe(`x${R}${R}`);
    expect(sanitizeText("pay\u061Cpal")).toBe(`pay${R}pal`);
  });

  it("properties: one code point out per code point in, idempotent, and nothing invisible survives outside an emoji sequence", () => {
    const allowedInvisible = (n: number) => n === 0x200d || n === 0xfe0e || n === 0xfe0f || (n >= 0xe0020 && n <= 0xe007f) || (n >= 0xe0100 && n <= 0xe01ef);
    const interesting = fc.constantFrom(
      0x0a, 0x09, 0x1b, 0x61, 0x31, 0x200d, 0xfe0f, 0xfe0e, 0x061c, 0x202e, 0x2066, 0xe0067, 0xe0062, 0xe0065, 0xe006e, 0xe007f,
      0x1f3f4, 0x1f468, 0x1f469, 0x1f3fd, 0x2764, 0x1f1eb, 0x1f1f7, 0x20e3, 0x845b, 0xe0100, 0x3164, 0xad, 0x200b,
    );
    const text = fc.array(fc.oneof(interesting, fc.integer({ min: 0, max: 0x10ffff }).filter((n) => n < 0xd800 || n > 0xdfff)), { maxLength: 40 })
      .map((cps) => String.fromCodePoint(...cps));
    fc.assert(fc.property(text, (s) => {
      const out = sanitizeText(s);
      expect([...out].length).toBe([...s].length);
      expect(sanitizeText(out)).toBe(out);
      expect(isSafeText(out)).toBe(true);
      for (const ch of out) {
        const n = ch.codePointAt(0)!;
        expect(/\p{Bidi_Control}/u.test(ch)).toBe(false);
        if (/\p{Default_Ignorable_Code_Point}/u.test(ch)) expect(allowedInvisible(n), n.toString(16)).toBe(true);
        expect(n === 0x1b || (n < 0x20 && n !== 0x0a && n !== 0x09) || (n >= 0x7f && n < 0xa0)).toBe(false);
      }
      // Text with nothing invisible or controlling passes unchanged.
      if (![...s].some((ch) => /[\p{Default_Ignorable_Code_Point}\p{Bidi_Control}\p{Cc}\u2028\u2029\uFFF9-\uFFFB]/u.test(ch))) expect(out).toBe(s);
    }), { numRuns: 2000 });
  });
});
