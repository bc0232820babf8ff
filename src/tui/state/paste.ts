// When a paste is large enough to ask before it goes anywhere: a paste of a whole file, or of
// something else than the user meant to copy, should not be one Enter away from being sent.

/** More lines than this, or more UTF-8 bytes than LARGE_PASTE_BYTES, and the UI asks first. */
export const LARGE_PASTE_LINES = 20;
export const LARGE_PASTE_BYTES = 4096;

/** UTF-8 length without allocating. */
export function utf8Length(text: string): number {
  let bytes = 0;
  for (const ch of text) {
    const cp = ch.codePointAt(0) ?? 0;
    bytes += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
  }
  return bytes;
}

export interface PasteSize {
  readonly lines: number;
  readonly bytes: number;
  readonly large: boolean;
}

export function pasteSize(text: string): PasteSize {
  const lines = text.split("\n").length;
  const bytes = utf8Length(text);
  return { lines, bytes, large: lines > LARGE_PASTE_LINES || bytes > LARGE_PASTE_BYTES };
}

/** "57 lines, 6.1 KB" */
export function describeSize(size: Pick<PasteSize, "lines" | "bytes">): string {
  const kb = size.bytes < 1024 ? `${size.bytes} bytes` : `${(size.bytes / 1024).toFixed(1)} KB`;
  return `${size.lines} line${size.lines === 1 ? "" : "s"}, ${kb}`;
}
