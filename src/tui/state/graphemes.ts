// Grapheme cluster boundaries for the input line: what a terminal draws as one unit (a ZWJ
// family, a flag, a keycap, a letter with its accents, a Hangul syllable made of jamo) is one
// step of the cursor and one Backspace. Clusters are Unicode's (UAX #29) as Intl.Segmenter cuts
// them, the same cut the layout measures by (src/tui/view/cell-width.ts).
//
// The keystroke path must not segment the whole line: a boundary is certain between two code
// points when neither may join a neighbour (MAY_JOIN), so a step over plain text looks at the two
// code points around the cursor only, and a step among joining code points segments just the
// stretch between the nearest certain boundaries.

const segmenter = new Intl.Segmenter(undefined, { granularity: "grapheme" });

/**
 * Code points that UAX #29 may join with a neighbour into one cluster: CR (CR LF), marks and
 * other extenders, format characters (ZWJ, tags, prepended concatenation marks), emoji modifiers,
 * regional indicators, Hangul jamo, the spacing marks that are letters (Thai and Lao SARA AM) and
 * the prepended letters (Unicode 17, as Node 24's ICU segments). Every joining rule of UAX #29
 * has one of these on one side, so between two code points outside this set there is always a
 * boundary. Text without any is one cluster per code point. test/tui/measure.test.ts checks this
 * set against Intl.Segmenter for every code point, so an ICU update that joins more fails there.
 */
export const MAY_JOIN = /[\r\p{M}\p{Grapheme_Extend}\p{Cf}\p{Emoji_Modifier}\p{Regional_Indicator}\u1100-\u11ff\ua960-\ua97f\ud7b0-\ud7ff\u0e33\u0eb3\u0d4e\u{111c2}\u{111c3}\u{1193f}\u{11941}\u{11a3a}\u{11a84}-\u{11a89}\u{11d46}\u{11f02}\u{113d1}\u{16d63}-\u{16d6a}]/u;

const isHigh = (u: number): boolean => u >= 0xd800 && u <= 0xdbff;
const isLow = (u: number): boolean => u >= 0xdc00 && u <= 0xdfff;

/** Start of the code point before index. */
function cpBack(text: string, index: number): number {
  return index >= 2 && isLow(text.charCodeAt(index - 1)) && isHigh(text.charCodeAt(index - 2)) ? index - 2 : index - 1;
}

/** End of the code point at index. */
function cpForward(text: string, index: number): number {
  return isHigh(text.charCodeAt(index)) && isLow(text.charCodeAt(index + 1)) ? index + 2 : index + 1;
}

/** Printable ASCII: never joins (the fast path). */
const plain = (u: number): boolean => u >= 0x20 && u < 0x7f;

/** True when index (a code point boundary) is a cluster boundary whatever the text around it. */
function certain(text: string, index: number): boolean {
  if (index <= 0 || index >= text.length) return true;
  const a = text.charCodeAt(index - 1);
  const b = text.charCodeAt(index);
  if (plain(a) && plain(b)) return true;
  return !MAY_JOIN.test(text.slice(cpBack(text, index), index)) && !MAY_JOIN.test(text.slice(index, cpForward(text, index)));
}

/** The cluster that holds the code unit at index (0 <= index < text.length): [start, end). */
function clusterAt(text: string, index: number): [number, number] {
  let start = index > 0 && isLow(text.charCodeAt(index)) && isHigh(text.charCodeAt(index - 1)) ? index - 1 : index;
  while (!certain(text, start)) start = cpBack(text, start);
  let end = cpForward(text, index);
  while (!certain(text, end)) end = cpForward(text, end);
  if (end === cpForward(text, start)) return [start, end];
  // Between two certain boundaries the clusters are those of the whole text.
  const seg = segmenter.segment(text.slice(start, end)).containing(index - start);
  if (seg === undefined) return [start, end];
  return [start + seg.index, start + seg.index + seg.segment.length];
}

/** The cluster boundary before index (the start of the cluster before the cursor). */
export function prevBoundary(text: string, index: number): number {
  if (index <= 0) return 0;
  return clusterAt(text, Math.min(index, text.length) - 1)[0];
}

/** The cluster boundary after index (the end of the cluster under the cursor). */
export function nextBoundary(text: string, index: number): number {
  if (index >= text.length) return text.length;
  return clusterAt(text, Math.max(0, index))[1];
}

/** Index if it is a cluster boundary, else the end of the cluster it falls in. */
export function snapForward(text: string, index: number): number {
  if (index <= 0) return 0;
  if (index >= text.length) return text.length;
  const [start, end] = clusterAt(text, index);
  return start === index ? index : end;
}

/** Index if it is a cluster boundary, else the start of the cluster it falls in. */
export function snapBack(text: string, index: number): number {
  if (index <= 0) return 0;
  if (index >= text.length) return text.length;
  return clusterAt(text, index)[0];
}

/**
 * The clusters of text (which must start and end on cluster boundaries of the text it was cut
 * from): one per code point when nothing in it may join, else as Intl.Segmenter cuts them.
 */
export function graphemes(text: string): string[] {
  if (!MAY_JOIN.test(text)) return Array.from(text);
  return Array.from(segmenter.segment(text), (s) => s.segment);
}

/**
 * The clusters before index (a cluster boundary), nearest first. Each stretch between certain
 * boundaries is segmented once, so a walk costs what it covers, however long the line.
 */
export function* clustersBefore(text: string, index: number): Generator<string> {
  let i = index;
  while (i > 0) {
    const end = i;
    let start = cpBack(text, end);
    const one = start;
    while (!certain(text, start)) start = cpBack(text, start);
    if (start === one) yield text.slice(start, end);
    else {
      // A boundary depends only on what precedes it and the code point after it, so the stretch
      // up to `end` (a boundary) cuts as in the whole text.
      const parts = graphemes(text.slice(start, end));
      for (let k = parts.length - 1; k >= 0; k--) yield parts[k] as string;
    }
    i = start;
  }
}

/** The clusters after index (a cluster boundary), nearest first, like clustersBefore. */
export function* clustersAfter(text: string, index: number): Generator<string> {
  let i = index;
  while (i < text.length) {
    const start = i;
    const one = cpForward(text, start);
    let end = one;
    while (!certain(text, end)) end = cpForward(text, end);
    if (end === one) yield text.slice(start, end);
    else yield* graphemes(text.slice(start, end));
    i = end;
  }
}
