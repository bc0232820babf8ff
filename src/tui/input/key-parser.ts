// The terminal's input, chunk by chunk, as keys: every key and escape sequence in a chunk comes
// out, in order, however the chunks are cut (a terminal, SSH or tmux may deliver several keys in
// one read, or one escape sequence across two). Pure: no timers, no I/O; the caller decides when
// an ESC at the end of a chunk has waited long enough to be the Esc key (flush()).
//
// Recognised: runs of printable text; C0 control keys (Ctrl-A … Ctrl-Z, Enter, Tab, Backspace);
// ESC-prefixed Alt keys (Alt-b, Alt-Enter, Alt-Backspace, Alt with an arrow); CSI and SS3
// sequences of xterm, VT220, rxvt and the Linux console (arrows, Home/End, PgUp/PgDn, Insert,
// Delete, F1-F12, with Shift/Alt/Ctrl modifiers, Shift-Tab); the kitty keyboard protocol and
// xterm's modifyOtherKeys forms; bracketed paste (ESC[200~ … ESC[201~, across any number of
// chunks); SGR and X10 mouse reports (the wheel comes out, the rest is dropped); terminal replies
// (focus, cursor position, device attributes), which are dropped rather than typed.

/** A key, xterm's way: `name` is a letter for Ctrl/Alt keys ("w" for Ctrl-W), else a key name. */
export interface KeyPress {
  readonly kind: "key";
  /**
   * "enter", "tab", "backspace", "escape", "up", "down", "left", "right", "home", "end",
   * "pageup", "pagedown", "insert", "delete", "f1" … "f12", "space"; a character otherwise
   * (Ctrl-W is "w" with ctrl; Alt-B is "b" with meta; Alt-Shift-U is "U" with meta and shift).
   */
  readonly name: string;
  readonly ctrl: boolean;
  /** Alt (sent as an ESC prefix or a modifier parameter) or Meta. */
  readonly meta: boolean;
  readonly shift: boolean;
}

export type InputEvent =
  /** Printable characters typed one after another (no control characters inside). */
  | { readonly kind: "text"; readonly text: string }
  | KeyPress
  /** A bracketed paste, whole (line breaks as "\n"). */
  | { readonly kind: "paste"; readonly text: string }
  /** One notch of the mouse wheel: -1 up (towards older lines), 1 down. */
  | { readonly kind: "wheel"; readonly direction: -1 | 1 };

const ESC = "\u001b";
const PASTE_END = "\u001b[201~";
/** An unfinished sequence longer than this is garbage, not a key still arriving. */
const MAX_SEQUENCE = 64;

export function key(name: string, mods: { ctrl?: boolean; meta?: boolean; shift?: boolean } = {}): KeyPress {
  return { kind: "key", name, ctrl: mods.ctrl ?? false, meta: mods.meta ?? false, shift: mods.shift ?? false };
}

function withMeta(k: KeyPress): KeyPress {
  return { ...k, meta: true };
}

/** The key a C0 control character (or DEL) is. */
function controlKey(code: number): KeyPress {
  switch (code) {
    case 0x0d:
    case 0x0a:
      return key("enter");
    case 0x09:
      return key("tab");
    case 0x7f:
    case 0x08:
      return key("backspace");
    case 0x1b:
      return key("escape");
    case 0x00:
      return key("space", { ctrl: true });
    default:
      // 0x01-0x1a are Ctrl-A … Ctrl-Z; 0x1c-0x1f Ctrl-\ ] ^ _.
      return key(code <= 0x1a ? String.fromCharCode(code + 0x60) : String.fromCharCode(code + 0x40), { ctrl: true });
  }
}

const isControl = (code: number): boolean => code < 0x20 || code === 0x7f;
/** C1 controls (U+0080-U+009F) never stand for a key here; they are dropped like other stray bytes. */
const isC1 = (code: number): boolean => code >= 0x80 && code <= 0x9f;

/** Shift 1, Alt 2, Ctrl 4, Meta 8, as xterm encodes them (parameter = 1 + bits). */
function modifiers(param: number | undefined): { ctrl: boolean; meta: boolean; shift: boolean } {
  const bits = param === undefined || !Number.isFinite(param) || param < 1 ? 0 : param - 1;
  return { shift: (bits & 1) !== 0, meta: (bits & 2) !== 0 || (bits & 8) !== 0, ctrl: (bits & 4) !== 0 };
}

const LETTER_KEYS: Readonly<Record<string, string>> = {
  A: "up", B: "down", C: "right", D: "left", H: "home", F: "end", E: "clear",
  P: "f1", Q: "f2", R: "f3", S: "f4",
};

const TILDE_KEYS: Readonly<Record<number, string>> = {
  1: "home", 2: "insert", 3: "delete", 4: "end", 5: "pageup", 6: "pagedown", 7: "home", 8: "end",
  11: "f1", 12: "f2", 13: "f3", 14: "f4", 15: "f5", 17: "f6", 18: "f7", 19: "f8", 20: "f9", 21: "f10", 23: "f11", 24: "f12",
};

/** The key a code point stands for in the kitty and modifyOtherKeys forms. */
function codepointKey(code: number, mods: { ctrl: boolean; meta: boolean; shift: boolean }): InputEvent | undefined {
  if (code === 13) return key("enter", mods);
  if (code === 9) return key("tab", mods);
  if (code === 27) return key("escape", mods);
  if (code === 127 || code === 8) return key("backspace", mods);
  if (code === 32 && mods.ctrl) return key("space", mods);
  if (code < 0x20 || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) return undefined;
  const ch = String.fromCodePoint(code);
  if (!mods.ctrl && !mods.meta) return { kind: "text", text: mods.shift ? ch.toUpperCase() : ch };
  return key(mods.ctrl ? ch.toLowerCase() : ch, mods);
}

type Parsed =
  | { readonly end: number; readonly event?: InputEvent; readonly paste?: true }
  | "pending";

/** A CSI sequence starting at `start` (ESC [ …). */
function parseCsi(s: string, start: number): Parsed {
  let i = start + 2;
  if (i >= s.length) return "pending";
  // Linux console F1-F5: ESC [ [ A … E.
  if (s[i] === "[") {
    if (i + 1 >= s.length) return "pending";
    const f = "ABCDE".indexOf(s[i + 1] as string);
    return { end: i + 2, ...(f >= 0 ? { event: key(`f${f + 1}`) } : {}) };
  }
  // X10 mouse: ESC [ M and three bytes (button+32, column+32, row+32).
  if (s[i] === "M") {
    if (i + 3 >= s.length) return "pending";
    const button = (s.charCodeAt(i + 1) - 32) & ~(4 | 8 | 16);
    const end = i + 4;
    if (button === 64) return { end, event: { kind: "wheel", direction: -1 } };
    if (button === 65) return { end, event: { kind: "wheel", direction: 1 } };
    return { end };
  }
  const paramsStart = i;
  while (i < s.length) {
    const c = s.charCodeAt(i);
    if (c >= 0x30 && c <= 0x3f) {
      i++;
      continue;
    }
    if (c >= 0x20 && c <= 0x2f) {
      // rxvt's shifted editing keys end in $ (ESC [ 2 $); xterm has no such sequence.
      if (c === 0x24 && i === paramsStart + 1 && "235678".includes(s[paramsStart] as string)) {
        return { end: i + 1, ...optional(csiKey(s.slice(paramsStart, i), "$")) };
      }
      i++;
      continue;
    }
    if (c >= 0x40 && c <= 0x7e) {
      const params = s.slice(paramsStart, i);
      if (params === "200" && s[i] === "~") return { end: i + 1, paste: true };
      return { end: i + 1, ...optional(csiKey(params, s[i] as string)) };
    }
    // Not a CSI sequence after all: drop what was read and go on from the odd byte.
    return { end: i };
  }
  return i - start > MAX_SEQUENCE ? { end: s.length } : "pending";
}

function optional(event: InputEvent | undefined): { event?: InputEvent } {
  return event === undefined ? {} : { event };
}

/** The key of a complete CSI sequence: its parameters and final byte. */
function csiKey(params: string, final: string): InputEvent | undefined {
  // SGR mouse report: ESC [ < button ; column ; row M/m.
  if (params.startsWith("<")) {
    if (final !== "M") return undefined;
    const button = Number(params.slice(1).split(";")[0]) & ~(4 | 8 | 16);
    if (button === 64) return { kind: "wheel", direction: -1 };
    if (button === 65) return { kind: "wheel", direction: 1 };
    return undefined;
  }
  // Private replies (ESC [ ? … c, kitty flags) and anything with odd parameters: not keys.
  if (!/^[0-9;:]*$/.test(params)) return undefined;
  const fields = params === "" ? [] : params.split(";");
  const num = (i: number): number | undefined => {
    const f = fields[i];
    if (f === undefined || f === "") return undefined;
    const n = Number(f.split(":")[0]);
    return Number.isFinite(n) ? n : undefined;
  };
  switch (final) {
    case "~": {
      const code = num(0);
      if (code === 27) {
        // xterm modifyOtherKeys: ESC [ 27 ; modifiers ; code ~
        const cp = num(2);
        return cp === undefined ? undefined : codepointKey(cp, modifiers(num(1)));
      }
      const name = code === undefined ? undefined : TILDE_KEYS[code];
      return name === undefined ? undefined : key(name, modifiers(num(1)));
    }
    // rxvt: ^ Ctrl, @ Ctrl-Shift, $ Shift on the editing keys.
    case "^":
    case "@":
    case "$": {
      const code = num(0);
      const name = code === undefined ? undefined : TILDE_KEYS[code];
      if (name === undefined || fields.length > 1) return undefined;
      return key(name, { ctrl: final !== "$", shift: final !== "^" });
    }
    case "Z":
      return key("tab", { ...modifiers(num(1)), shift: true });
    case "u": {
      // kitty keyboard protocol: ESC [ code ; modifiers u
      const cp = num(0);
      return cp === undefined ? undefined : codepointKey(cp, modifiers(num(1)));
    }
    // rxvt: Shift with an arrow.
    case "a":
    case "b":
    case "c":
    case "d":
      return fields.length === 0 ? key(rxvtArrow(final), { shift: true }) : undefined;
    default: {
      const name = LETTER_KEYS[final];
      if (name === undefined || name === "clear") return undefined;
      // ESC [ row ; col R is a cursor position reply, not F3: only ESC [ 1 ; m R is the key.
      if (final === "R" && fields.length > 0 && num(0) !== 1) return undefined;
      if (fields.length > 2) return undefined;
      return key(name, modifiers(num(1)));
    }
  }
}

function rxvtArrow(final: string): string {
  return final === "a" ? "up" : final === "b" ? "down" : final === "c" ? "right" : "left";
}

/** An SS3 sequence starting at `start` (ESC O …): keypad and application cursor keys, F1-F4. */
function parseSs3(s: string, start: number): Parsed {
  let i = start + 2;
  if (i >= s.length) return "pending";
  const paramsStart = i;
  while (i < s.length && /[0-9;]/.test(s[i] as string)) i++;
  if (i >= s.length) return i - start > MAX_SEQUENCE ? { end: s.length } : "pending";
  const final = s[i] as string;
  const c = final.charCodeAt(0);
  if (c < 0x40 || c > 0x7e) return { end: i };
  const params = s.slice(paramsStart, i);
  const mods = modifiers(params === "" ? undefined : Number(params.split(";").at(-1)));
  const end = i + 1;
  // rxvt: Ctrl with an arrow is ESC O a … d.
  if ("abcd".includes(final)) return { end, event: key(rxvtArrow(final), { ctrl: true }) };
  if (final === "M") return { end, event: key("enter", mods) };
  const name = LETTER_KEYS[final];
  return name === undefined || name === "clear" ? { end } : { end, event: key(name, mods) };
}

/** The sequence starting with ESC at `start`. */
function parseEscape(s: string, start: number): Parsed {
  if (start + 1 >= s.length) return "pending";
  const next = s[start + 1] as string;
  if (next === "[") return parseCsi(s, start);
  if (next === "O") return parseSs3(s, start);
  if (next === ESC) {
    // ESC ESC [ A: Alt with an arrow in some terminals; ESC ESC alone: Alt-Esc.
    if (start + 2 >= s.length) return "pending";
    const third = s[start + 2];
    if (third === "[" || third === "O") {
      const inner = third === "[" ? parseCsi(s, start + 1) : parseSs3(s, start + 1);
      if (inner === "pending") return "pending";
      // ESC then a bracketed paste: the Esc key, then the paste.
      if (inner.paste) return { end: start + 1, event: key("escape") };
      return inner.event?.kind === "key" ? { end: inner.end, event: withMeta(inner.event) } : inner;
    }
    return { end: start + 2, event: key("escape", { meta: true }) };
  }
  const code = s.codePointAt(start + 1) as number;
  const end = start + 1 + (code > 0xffff ? 2 : 1);
  if (isControl(code)) return { end, event: withMeta(controlKey(code)) };
  if (isC1(code)) return { end };
  const ch = String.fromCodePoint(code);
  return { end, event: key(ch, { meta: true, shift: ch !== ch.toLowerCase() }) };
}

/** The key a sequence left unfinished at the end of the input stands for, once no more comes. */
function flushedKey(pending: string): InputEvent | undefined {
  if (pending === ESC) return key("escape");
  if (pending === `${ESC}${ESC}`) return key("escape", { meta: true });
  // ESC [ or ESC O alone: Alt-[ / Alt-Shift-O pressed; anything longer is a cut-off sequence.
  if (pending === `${ESC}[`) return key("[", { meta: true });
  if (pending === `${ESC}O`) return key("O", { meta: true, shift: true });
  return undefined;
}

export interface KeyParser {
  /** The events a chunk completes, in order. A chunk may be bytes (UTF-8, cut anywhere) or text. */
  push(chunk: string | Uint8Array): InputEvent[];
  /**
   * What is waiting for more input: "escape" for an unfinished escape sequence (a lone ESC is
   * the Esc key if nothing follows soon), "paste" for a bracketed paste whose end has not come.
   */
  waiting(): "escape" | "paste" | undefined;
  /**
   * Nothing more came: an unfinished sequence becomes its key (ESC: Esc), an unfinished paste is
   * delivered as it is.
   */
  flush(): InputEvent[];
}

export function createKeyParser(): KeyParser {
  const decoder = new TextDecoder("utf-8");
  /** An unfinished escape sequence (or bytes of one) carried into the next chunk. */
  let pending = "";
  /** Inside a bracketed paste: what has arrived of it so far, its length, and its end. */
  let paste: string[] | undefined;
  let pasteLength = 0;
  let pasteTail = "";
  /** A CR ended the last chunk: an LF starting the next one belongs to it (CRLF is one Enter). */
  let afterCr = false;

  const normalisePaste = (text: string): string => text.replace(/\r\n?/g, "\n");

  function parse(s: string, out: InputEvent[]): void {
    let i = 0;
    let textStart = -1;
    const endText = (at: number): void => {
      if (textStart >= 0 && at > textStart) out.push({ kind: "text", text: s.slice(textStart, at) });
      textStart = -1;
    };
    while (i < s.length) {
      if (paste !== undefined) {
        // Look for the end marker, which may have been cut between chunks: in the last few
        // characters of the paste so far and this chunk (a long paste is not searched again).
        const rest = s.slice(i);
        const window = pasteTail + rest;
        const at = window.indexOf(PASTE_END);
        if (at < 0) {
          paste.push(rest);
          pasteLength += rest.length;
          pasteTail = window.slice(-(PASTE_END.length - 1));
          return;
        }
        const whole = paste.join("") + rest;
        const markerStart = pasteLength - pasteTail.length + at;
        out.push({ kind: "paste", text: normalisePaste(whole.slice(0, markerStart)) });
        i += markerStart + PASTE_END.length - pasteLength;
        paste = undefined;
        continue;
      }
      const code = s.charCodeAt(i);
      if (code === 0x1b) {
        endText(i);
        const parsed = parseEscape(s, i);
        if (parsed === "pending") {
          pending = s.slice(i);
          return;
        }
        if (parsed.paste) {
          paste = [];
          pasteLength = 0;
          pasteTail = "";
        } else if (parsed.event !== undefined) {
          out.push(parsed.event);
        }
        i = parsed.end;
        afterCr = false;
        continue;
      }
      if (isControl(code)) {
        endText(i);
        // CR LF is one Enter (a paste from some clipboards); LF after a CR that ended the
        // previous chunk too.
        if (code === 0x0a && (afterCr || (i > 0 && s.charCodeAt(i - 1) === 0x0d))) {
          afterCr = false;
          i++;
          continue;
        }
        out.push(controlKey(code));
        afterCr = code === 0x0d;
        i++;
        continue;
      }
      afterCr = false;
      if (isC1(code)) {
        endText(i);
        i++;
        continue;
      }
      if (textStart < 0) textStart = i;
      i++;
    }
    endText(s.length);
  }

  return {
    push(chunk) {
      const text = typeof chunk === "string" ? chunk : decoder.decode(chunk, { stream: true });
      if (text === "") return [];
      const out: InputEvent[] = [];
      const s = pending + text;
      pending = "";
      parse(s, out);
      return out;
    },
    waiting() {
      if (paste !== undefined) return "paste";
      return pending !== "" ? "escape" : undefined;
    },
    flush() {
      const out: InputEvent[] = [];
      if (paste !== undefined) {
        // The terminal never sent the end marker: deliver what came rather than swallow input.
        const text = paste.join("");
        paste = undefined;
        if (text !== "") out.push({ kind: "paste", text: normalisePaste(text) });
        return out;
      }
      if (pending === "") return out;
      // A lone ESC is the Esc key; a sequence cut off for good is dropped (its end, if it ever
      // comes, is not a sequence and is read as it is).
      const k = flushedKey(pending);
      pending = "";
      if (k !== undefined) out.push(k);
      return out;
    },
  };
}

/** All events of one input given whole (for tests and tools): push, then flush. */
export function parseKeys(input: string | Uint8Array): InputEvent[] {
  const parser = createKeyParser();
  return [...parser.push(input), ...parser.flush()];
}
