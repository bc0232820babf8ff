// Colours and marks. Named ANSI colours only (every terminal theme maps them to something
// readable on its own background); yellow and bright colours are avoided for nicks because
// they vanish on light backgrounds. Red is kept for warnings.
import type { TextProps } from "ink";

export type SegmentStyle = Pick<TextProps, "color" | "bold" | "dimColor" | "inverse" | "italic" | "underline">;

const NICK_COLOURS = ["cyan", "green", "magenta", "blue"] as const;

/** FNV-1a over the UTF-16 code units: stable across runs and machines. */
function hash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/**
 * The style of a nick: a colour from a hash of the name (four colours, each plain or bold: eight
 * looks); my own nick in bold default colour, which no one else gets.
 */
export function nickStyle(nick: string, me: string): SegmentStyle {
  if (nick === me) return { bold: true };
  const h = hash(nick);
  const color = NICK_COLOURS[h % NICK_COLOURS.length] ?? "cyan";
  return (h >>> 8) % 2 === 0 ? { color } : { color, bold: true };
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
} as const satisfies Record<string, SegmentStyle>;
