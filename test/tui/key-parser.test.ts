// The key parser: every bound key, as terminals send it, mixed with text in one chunk, comes out
// in order; and the same input cut at every byte position (and into random pieces) gives the
// same keys. Plus the forms of other terminals, bracketed paste across chunks, mouse reports,
// terminal replies, and a lone Esc.
import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { createKeyParser, key, parseKeys, type InputEvent } from "../../src/tui/input/key-parser.js";

const text = (t: string): InputEvent => ({ kind: "text", text: t });
const ctrl = (c: string): InputEvent => key(c, { ctrl: true });
const alt = (c: string): InputEvent => key(c, { meta: true, shift: c !== c.toLowerCase() });

/** Every key README "Commands and keys" binds, as the bytes an xterm-like terminal sends. */
const BOUND: readonly (readonly [string, string, InputEvent])[] = [
  ["Enter", "\r", key("enter")],
  ["Alt-Enter", "\u001b\r", key("enter", { meta: true })],
  ["Tab", "\t", key("tab")],
  ["Shift-Tab", "\u001b[Z", key("tab", { shift: true })],
  ["Up", "\u001b[A", key("up")],
  ["Down", "\u001b[B", key("down")],
  ["Left", "\u001b[D", key("left")],
  ["Right", "\u001b[C", key("right")],
  ["Up (application mode)", "\u001bOA", key("up")],
  ["Left (application mode)", "\u001bOD", key("left")],
  ["Alt-B", "\u001bb", alt("b")],
  ["Alt-F", "\u001bf", alt("f")],
  ["Ctrl-Left", "\u001b[1;5D", key("left", { ctrl: true })],
  ["Ctrl-Right", "\u001b[1;5C", key("right", { ctrl: true })],
  ["Home", "\u001b[H", key("home")],
  ["End", "\u001b[F", key("end")],
  ["Home (VT220)", "\u001b[1~", key("home")],
  ["End (VT220)", "\u001b[4~", key("end")],
  ["Home (application mode)", "\u001bOH", key("home")],
  ["End (rxvt)", "\u001b[8~", key("end")],
  ["Ctrl-A", "\u0001", ctrl("a")],
  ["Ctrl-E", "\u0005", ctrl("e")],
  ["Backspace", "\u007f", key("backspace")],
  ["Backspace (Ctrl-H)", "\b", key("backspace")],
  ["Delete", "\u001b[3~", key("delete")],
  ["Ctrl-W", "\u0017", ctrl("w")],
  ["Alt-D", "\u001bd", alt("d")],
  ["Alt-Backspace", "\u001b\u007f", key("backspace", { meta: true })],
  ["Ctrl-U", "\u0015", ctrl("u")],
  ["Ctrl-K", "\u000b", ctrl("k")],
  ["PgUp", "\u001b[5~", key("pageup")],
  ["PgDn", "\u001b[6~", key("pagedown")],
  ["Ctrl-Home", "\u001b[1;5H", key("home", { ctrl: true })],
  ["Ctrl-End", "\u001b[1;5F", key("end", { ctrl: true })],
  ["Alt-Home", "\u001b[1;3H", key("home", { meta: true })],
  ["Alt-End", "\u001b[1;3F", key("end", { meta: true })],
  ["Ctrl-Home (rxvt)", "\u001b[7^", key("home", { ctrl: true })],
  ["Alt-1", "\u001b1", alt("1")],
  ["Alt-9", "\u001b9", alt("9")],
  ["Alt-0", "\u001b0", alt("0")],
  ["Ctrl-N", "\u000e", ctrl("n")],
  ["Ctrl-P", "\u0010", ctrl("p")],
  ["Alt-A", "\u001ba", alt("a")],
  ["Alt-U", "\u001bu", alt("u")],
  ["Alt-R", "\u001br", alt("r")],
  ["Alt-J", "\u001bj", alt("j")],
  ["Alt-Shift-U", "\u001bU", alt("U")],
  ["Ctrl-L", "\u000c", ctrl("l")],
  ["Ctrl-C", "\u0003", ctrl("c")],
  ["Ctrl-D", "\u0004", ctrl("d")],
  ["wheel up (SGR)", "\u001b[<64;10;5M", { kind: "wheel", direction: -1 }],
  ["wheel down (SGR, with Ctrl)", "\u001b[<81;10;5M", { kind: "wheel", direction: 1 }],
  ["wheel up (X10)", "\u001b[M`!!", { kind: "wheel", direction: -1 }],
  ["bracketed paste", "\u001b[200~two\r\nlines \u001b[A\u001b[201~", { kind: "paste", text: "two\nlines \u001b[A" }],
];

/** Adjacent text events joined (a text run may be cut into two by a chunk boundary). */
function normalise(events: readonly InputEvent[]): InputEvent[] {
  const out: InputEvent[] = [];
  for (const e of events) {
    const last = out.at(-1);
    if (e.kind === "text" && last?.kind === "text") out[out.length - 1] = text(last.text + e.text);
    else out.push(e);
  }
  return out;
}

function parseChunks(chunks: readonly (string | Uint8Array)[]): InputEvent[] {
  const parser = createKeyParser();
  const events: InputEvent[] = [];
  for (const c of chunks) events.push(...parser.push(c));
  events.push(...parser.flush());
  return normalise(events);
}

// Every bound key, each after a piece of text (ASCII, accents, CJK, an emoji), as one input.
const WORDS = ["hello", "wörld", " ", "日本", "x🙂y", "a b", "é"];
const MIXED = BOUND.map(([, bytes], i) => `${WORDS[i % WORDS.length]}${bytes}`).join("") + "end";
const MIXED_EVENTS = normalise(BOUND.flatMap(([, , event], i) => [text(WORDS[i % WORDS.length] as string), event]).concat(text("end")));

describe("the key parser", () => {
  test.each(BOUND)("%s alone", (_name, bytes, event) => {
    expect(parseKeys(bytes)).toEqual([event]);
  });

  test("every bound key mixed with text in one chunk: all of them, in order", () => {
    expect(parseChunks([MIXED])).toEqual(MIXED_EVENTS);
  });

  test("the same bytes cut at every byte position give the same keys", () => {
    const bytes = Buffer.from(MIXED, "utf8");
    for (let cut = 1; cut < bytes.length; cut++) {
      const got = parseChunks([bytes.subarray(0, cut), bytes.subarray(cut)]);
      expect(got, `cut at byte ${cut}`).toEqual(MIXED_EVENTS);
    }
  });

  test("the same input cut at every character position (text chunks, as Ink's stdin gives them)", () => {
    for (let cut = 1; cut < MIXED.length; cut++) {
      if (/[\udc00-\udfff]/.test(MIXED[cut] as string)) continue; // a decoder never cuts a surrogate pair
      expect(parseChunks([MIXED.slice(0, cut), MIXED.slice(cut)]), `cut at ${cut}`).toEqual(MIXED_EVENTS);
    }
  });

  test("the same bytes cut into any number of pieces give the same keys (property)", () => {
    const bytes = Buffer.from(MIXED, "utf8");
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 1, max: bytes.length - 1 }), { maxLength: 40 }), (cuts) => {
        const points = [0, ...cuts.sort((a, b) => a - b), bytes.length];
        const chunks = points.slice(1).map((end, i) => bytes.subarray(points[i], end));
        expect(parseChunks(chunks)).toEqual(MIXED_EVENTS);
      }),
      { numRuns: 300 },
    );
  });

  test("any sequence of bound keys and text, in any cut, gives its keys in order (property)", () => {
    const piece = fc.oneof(
      fc.constantFrom(...BOUND.map(([, bytes, event]) => ({ bytes, events: [event] }))),
      fc.array(fc.constantFrom("a", "z", " ", "é", "日", "🙂", "q"), { minLength: 1, maxLength: 6 }).map((cs) => ({ bytes: cs.join(""), events: [text(cs.join(""))] })),
    );
    fc.assert(
      fc.property(fc.array(piece, { minLength: 1, maxLength: 30 }), fc.array(fc.nat(), { maxLength: 8 }), (pieces, rawCuts) => {
        const bytes = Buffer.from(pieces.map((p) => p.bytes).join(""), "utf8");
        const cuts = [...new Set(rawCuts.map((c) => 1 + (c % Math.max(1, bytes.length - 1))))].filter((c) => c < bytes.length).sort((a, b) => a - b);
        const points = [0, ...cuts, bytes.length];
        const chunks = points.slice(1).map((end, i) => bytes.subarray(points[i], end));
        expect(parseChunks(chunks)).toEqual(normalise(pieces.flatMap((p) => p.events)));
      }),
      { numRuns: 500 },
    );
  });

  test("two control keys together are two keys; Tab after text is the Tab key", () => {
    expect(parseKeys("one two\u0017\u0017")).toEqual([text("one two"), ctrl("w"), ctrl("w")]);
    expect(parseKeys("/jo\t")).toEqual([text("/jo"), key("tab")]);
    expect(parseKeys("ab\u0001\u0005\u0015\u000b")).toEqual([text("ab"), ctrl("a"), ctrl("e"), ctrl("u"), ctrl("k")]);
  });

  test("a lone Esc waits for the rest of a sequence; with nothing more it is the Esc key", () => {
    const parser = createKeyParser();
    expect(parser.push("abc\u001b")).toEqual([text("abc")]);
    expect(parser.waiting()).toBe("escape");
    expect(parser.flush()).toEqual([key("escape")]);
    expect(parser.waiting()).toBeUndefined();
    // An arrow cut after its ESC is still the arrow.
    expect(parser.push("\u001b")).toEqual([]);
    expect(parser.push("[A")).toEqual([key("up")]);
    // ESC [ cut off for good is dropped, not typed.
    expect(parser.push("\u001b[1;")).toEqual([]);
    expect(parser.flush()).toEqual([]);
  });

  test("bracketed paste across chunks, its end marker cut anywhere; control bytes inside stay text", () => {
    const whole = "\u001b[200~line one\rline\ttwo\u0017\u001b[201~after";
    for (let cut = 1; cut < whole.length; cut++) {
      expect(parseChunks([whole.slice(0, cut), whole.slice(cut)]), `cut at ${cut}`).toEqual([{ kind: "paste", text: "line one\nline\ttwo\u0017" }, text("after")]);
    }
    const parser = createKeyParser();
    parser.push("\u001b[200~half a paste");
    expect(parser.waiting()).toBe("paste");
    // The end never came: what arrived is delivered rather than swallowing every later key.
    expect(parser.flush()).toEqual([{ kind: "paste", text: "half a paste" }]);
    expect(parser.push("x")).toEqual([text("x")]);
  });

  test("other terminals' forms: modifiers, rxvt, the Linux console, kitty, modifyOtherKeys", () => {
    expect(parseKeys("\u001b[1;2A")).toEqual([key("up", { shift: true })]);
    expect(parseKeys("\u001b[1;7D")).toEqual([key("left", { ctrl: true, meta: true })]);
    expect(parseKeys("\u001b[5;5~")).toEqual([key("pageup", { ctrl: true })]);
    expect(parseKeys("\u001bOd")).toEqual([key("left", { ctrl: true })]);
    expect(parseKeys("\u001b[2$")).toEqual([key("insert", { shift: true })]);
    expect(parseKeys("\u001b[[A")).toEqual([key("f1")]);
    expect(parseKeys("\u001b\u001b[D")).toEqual([key("left", { meta: true })]);
    expect(parseKeys("\u001b[119;5u")).toEqual([ctrl("w")]);
    expect(parseKeys("\u001b[13;3u")).toEqual([key("enter", { meta: true })]);
    expect(parseKeys("\u001b[27;5;119~")).toEqual([ctrl("w")]);
    expect(parseKeys("\u001b\u0017")).toEqual([key("w", { ctrl: true, meta: true })]);
    expect(parseKeys("a\r\nb")).toEqual([text("a"), key("enter"), text("b")]);
    expect(parseKeys("\u0000")).toEqual([key("space", { ctrl: true })]);
  });

  test("terminal replies and clicks are dropped, never typed", () => {
    expect(parseKeys("a\u001b[I\u001b[O\u001b[12;40R\u001b[?1;2c\u001b[?1u\u001b[<0;3;4M\u001b[<0;3;4m\u001b[M !!b").filter((e) => e.kind !== "text")).toEqual([]);
    expect(normalise(parseKeys("a\u001b[I\u001b[O\u001b[12;40R\u001b[?1;2c\u001b[?1u\u001b[<0;3;4M\u001b[<0;3;4m\u001b[M !!b"))).toEqual([text("ab")]);
    expect(normalise(parseKeys("x\u0085\u009by"))).toEqual([text("xy")]);
  });
});
