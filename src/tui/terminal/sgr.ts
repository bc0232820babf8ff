// SGR (ECMA-48 "select graphic rendition", CSI … m) as the screen model keeps it: the attributes
// in effect, applied from parameters and written back as one canonical parameter string, so two
// cells look alike exactly when their keys are equal. Pure.

/** Current graphic rendition, kept as attributes so it can be written as one canonical SGR. */
export interface Rendition {
  bold: boolean;
  dim: boolean;
  italic: boolean;
  underline: boolean;
  blink: boolean;
  inverse: boolean;
  hidden: boolean;
  strike: boolean;
  fg: string;
  bg: string;
}

export const plain = (): Rendition => ({ bold: false, dim: false, italic: false, underline: false, blink: false, inverse: false, hidden: false, strike: false, fg: "", bg: "" });

export function renditionKey(r: Rendition): string {
  const parts: string[] = [];
  if (r.bold) parts.push("1");
  if (r.dim) parts.push("2");
  if (r.italic) parts.push("3");
  if (r.underline) parts.push("4");
  if (r.blink) parts.push("5");
  if (r.inverse) parts.push("7");
  if (r.hidden) parts.push("8");
  if (r.strike) parts.push("9");
  if (r.fg !== "") parts.push(r.fg);
  if (r.bg !== "") parts.push(r.bg);
  return parts.join(";");
}

/** Applies SGR parameters (already split on ';') to a rendition. */
export function applySgr(r: Rendition, params: readonly string[]): void {
  for (let i = 0; i < params.length; i++) {
    const p = params[i] === "" ? 0 : Number(params[i]);
    if (p === 0) Object.assign(r, plain());
    else if (p === 1) r.bold = true;
    else if (p === 2) r.dim = true;
    else if (p === 3) r.italic = true;
    else if (p === 4) r.underline = true;
    else if (p === 5) r.blink = true;
    else if (p === 7) r.inverse = true;
    else if (p === 8) r.hidden = true;
    else if (p === 9) r.strike = true;
    else if (p === 21 || p === 22) { r.bold = false; r.dim = false; }
    else if (p === 23) r.italic = false;
    else if (p === 24) r.underline = false;
    else if (p === 25) r.blink = false;
    else if (p === 27) r.inverse = false;
    else if (p === 28) r.hidden = false;
    else if (p === 29) r.strike = false;
    else if ((p >= 30 && p <= 37) || (p >= 90 && p <= 97)) r.fg = String(p);
    else if (p === 39) r.fg = "";
    else if ((p >= 40 && p <= 47) || (p >= 100 && p <= 107)) r.bg = String(p);
    else if (p === 49) r.bg = "";
    else if (p === 38 || p === 48) {
      // 38;5;n or 38;2;r;g;b (and the same for the background).
      const mode = params[i + 1];
      const count = mode === "5" ? 2 : mode === "2" ? 4 : 0;
      if (count === 0) break;
      const value = params.slice(i, i + 1 + count).join(";");
      if (p === 38) r.fg = value;
      else r.bg = value;
      i += count;
    }
  }
}
