// A parsed key in the shape of Ink's Key (what keyOutcome decides on), so the bindings read the
// same whichever parser found the key.
import type { Key } from "ink";
import type { KeyPress } from "./key-parser.js";

export const NO_KEY: Key = {
  upArrow: false, downArrow: false, leftArrow: false, rightArrow: false, pageDown: false, pageUp: false, home: false, end: false,
  return: false, escape: false, ctrl: false, shift: false, tab: false, backspace: false, delete: false, meta: false,
  super: false, hyper: false, capsLock: false, numLock: false,
};

const FLAG: Readonly<Record<string, keyof Key>> = {
  up: "upArrow", down: "downArrow", left: "leftArrow", right: "rightArrow", pageup: "pageUp", pagedown: "pageDown",
  home: "home", end: "end", enter: "return", escape: "escape", tab: "tab", backspace: "backspace", delete: "delete",
};

/** `typed` is the character for Ctrl- and Alt- keys ("w" for Ctrl-W), "" for named keys ("\r" for Enter). */
export function inkKey(k: KeyPress): { readonly typed: string; readonly key: Key } {
  const flag = FLAG[k.name];
  const key: Key = { ...NO_KEY, ctrl: k.ctrl, meta: k.meta, shift: k.shift, ...(flag !== undefined ? { [flag]: true } : {}) };
  if (flag !== undefined) return { typed: k.name === "enter" ? "\r" : "", key };
  if (k.name === "space") return { typed: " ", key };
  // Function keys and Insert are not bound: nothing to type.
  if ([...k.name].length > 1) return { typed: "", key };
  return { typed: k.name, key };
}
