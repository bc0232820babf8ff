// Makes peer text safe for a terminal (PROTOCOL.md §11.2).
// Every code point that could move the cursor, change colours, set the title, hide text or
// reorder it is replaced with a visible placeholder (U+FFFD), so a peer can neither paint on the
// screen nor make text look different from what was sent, nor hide text in it.
//
// Replaced, decided by Unicode property where one exists:
// - C0 controls except LF and TAB (U+0000-001F), DEL (U+007F), C1 controls (U+0080-009F, with
//   the 8-bit CSI U+009B), so no ESC sequence can act (ESC is U+001B);
// - every Default_Ignorable_Code_Point and every Bidi_Control: zero-width characters, bidi
//   embeddings/overrides/isolates and marks (U+061C, U+200E/F, U+202A-202E, U+2066-2069), word
//   joiners and invisible operators (U+2060-206F), U+FEFF, soft hyphen, Hangul fillers (blank
//   "names"), Mongolian selectors, variation selectors and the tag characters
//   U+E0000-E007F (text hidden from the eye: "ASCII smuggling");
// - U+2028/2029 (some terminals break lines on them), U+FFF9-FFFB, lone surrogates.
// Kept, because emoji need them and they hide nothing: a ZERO WIDTH JOINER between two emoji
// (family, profession and flag sequences), one VS15/VS16 after a character that has an emoji
// form (❤️, keycaps 1️⃣), one ideographic variation selector after a Han character, and the tag
// sequences of the three RGI subdivision flags (England, Scotland, Wales) after U+1F3F4. A run
// of selectors after one emoji (bytes hidden in "variation selector smuggling") is replaced.

export const REPLACEMENT = "\uFFFD";

/** Controls and separators that are not default-ignorable, and lone surrogates ('u' flag: pairs are one code point). */
const CONTROLS = /[\u0000-\u0008\u000B-\u001F\u007F-\u009F\u2028\u2029\uFFF9-\uFFFB\uD800-\uDFFF]/u;
const INVISIBLE = /[\p{Default_Ignorable_Code_Point}\p{Bidi_Control}]/u;
const PICTOGRAPHIC = /\p{Extended_Pictographic}/u;
const EMOJI = /\p{Emoji}/u;
const EMOJI_MODIFIER = /\p{Emoji_Modifier}/u;
const IDEOGRAPHIC = /\p{Ideographic}/u;
/** Anything the code point walk below may change: text without it passes as is (fast path). */
const SUSPECT = /[\u0000-\u0008\u000B-\u001F\u007F-\u009F\u2028\u2029\uFFF9-\uFFFB\uD800-\uDFFF\p{Default_Ignorable_Code_Point}\p{Bidi_Control}]/u;

const ZWJ = 0x200d;
const BLACK_FLAG = 0x1f3f4;
/** The RGI emoji tag sequences (subdivision flags): tags "gbeng", "gbsct", "gbwls", then CANCEL TAG. */
const FLAG_TAGS: readonly string[] = ["gbeng", "gbsct", "gbwls"].map((s) => [...s].map((c) => String.fromCodePoint(0xe0000 + c.charCodeAt(0))).join("") + "\u{E007F}");

/** Returns text with every unsafe code point replaced by U+FFFD. Idempotent. */
export function sanitizeText(text: string): string {
  if (!SUSPECT.test(text)) return text;
  let out = "";
  // What the last kept code point was: an emoji (a joiner or selector may follow), a base that
  // takes one variation selector, or neither.
  let emoji = false;
  let selectable: "emoji" | "ideograph" | undefined;
  const chars = [...text];
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i]!;
    const cp = ch.codePointAt(0)!;
    if (CONTROLS.test(ch)) {
      out += REPLACEMENT;
      emoji = false;
      selectable = undefined;
      continue;
    }
    if (!INVISIBLE.test(ch)) {
      out += ch;
      if (cp === BLACK_FLAG) {
        const rest = chars.slice(i + 1, i + 7).join("");
        const tags = FLAG_TAGS.find((t) => rest.startsWith(t));
        if (tags !== undefined) {
          out += tags;
          i += 6;
          emoji = true;
          selectable = undefined;
          continue;
        }
      }
      const modifier: boolean = emoji && EMOJI_MODIFIER.test(ch);
      emoji = PICTOGRAPHIC.test(ch) || modifier;
      selectable = modifier ? undefined : EMOJI.test(ch) ? "emoji" : IDEOGRAPHIC.test(ch) ? "ideograph" : undefined;
      continue;
    }
    const next = chars[i + 1];
    if (cp === ZWJ && emoji && next !== undefined && PICTOGRAPHIC.test(next)) {
      out += ch;
      selectable = undefined;
      continue;
    }
    if ((cp === 0xfe0e || cp === 0xfe0f) && selectable === "emoji") {
      out += ch;
      emoji = cp === 0xfe0f || emoji;
      selectable = undefined;
      continue;
    }
    if (cp >= 0xe0100 && cp <= 0xe01ef && selectable === "ideograph") {
      out += ch;
      selectable = undefined;
      continue;
    }
    out += REPLACEMENT;
    emoji = false;
    selectable = undefined;
  }
  return out;
}

/** Like sanitizeText, and also replaces newlines and tabs: for one-line fields. */
export function sanitizeLine(text: string): string {
  return sanitizeText(text).replace(/[\n\t]/g, " ");
}

/** True when text contains nothing sanitizeText would replace. */
export function isSafeText(text: string): boolean {
  return sanitizeText(text) === text;
}
