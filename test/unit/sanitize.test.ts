import { describe, expect, it } from "vitest";
import { isSafeText, REPLACEMENT, sanitizeLine, sanitizeText } from "../../src/protocol/sanitize.js";

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
