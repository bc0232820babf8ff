// Colours and marks. Nick colours come from a hash of the name into a palette of xterm-256
// colours picked to be readable on both dark and light backgrounds (each has a WCAG contrast ratio
// of at least 3.5:1 against black and against white; the tests check it), and none of them is red,
// which is kept for warnings. My own nick is bold in the terminal's default colour, which no one
// else gets.
import type { TextProps } from "ink";

export type SegmentStyle = Pick<TextProps, "color" | "backgroundColor" | "bold" | "dimColor" | "inverse" | "italic" | "underline">;

/** xterm-256 colour numbers: blues, teals, greens, olive, violets, magenta, brown; all mid-luminance. */
export const NICK_PALETTE = [27, 28, 29, 30, 31, 32, 62, 63, 64, 97, 98, 100, 128, 130, 133, 163] as const;

/** FNV-1a over the UTF-16 code units: stable across runs and machines. */
export function nickHash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

export function nickColour(nick: string): string {
  return `ansi256(${NICK_PALETTE[nickHash(nick) % NICK_PALETTE.length] ?? 30})`;
}

/** The style of a nick: its hashed colour; mine bold in the default colour. */
export function nickStyle(nick: string, me: string): SegmentStyle {
  if (nick === me) return { bold: true };
  return { color: nickColour(nick) };
}

export const STYLE = {
  time: { dimColor: true },
  info: { dimColor: true },
  warn: { color: "yellow" },
  error: { color: "red" },
  alarm: { color: "red", bold: true },
  ok: { color: "green" },
  pending: { dimColor: true },
  strong: { bold: true },
  current: { inverse: true },
  /** A message that mentions me: its nick stands out like this. */
  mentionNick: { inverse: true, bold: true },
  /** My name inside someone's message. */
  mention: { bold: true, underline: true },
  /** The unread ruler. */
  ruler: { color: "magenta" },
  /** The "-- more below --" marker. */
  more: { inverse: true },
  moreNew: { inverse: true, bold: true },
  /** The conversation header. */
  header: { bold: true },
} as const satisfies Record<string, SegmentStyle>;
