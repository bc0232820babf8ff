// The users sidebar: online first, then known offline users; me marked "(you)"; verified peers
// with a green ✓, a key change with a loud red ⚠.
import type { PeerView } from "../../client/types.js";
import { fitSegments, rowWidth, seg, type Row, type Segment } from "./row.js";
import { STYLE, nickStyle } from "./style.js";

/** Online before offline; me first within my group; then by name. */
export function sortPeers(peers: readonly PeerView[]): PeerView[] {
  return [...peers].sort((a, b) => {
    if (a.online !== b.online) return a.online ? -1 : 1;
    if (a.you !== b.you) return a.you ? -1 : 1;
    return a.username < b.username ? -1 : a.username > b.username ? 1 : 0;
  });
}

export function peerSegments(p: PeerView, me: string, width = Number.POSITIVE_INFINITY): Segment[] {
  const out: Segment[] = [
    seg(p.online ? "● " : "○ ", p.online ? STYLE.ok : STYLE.info),
    seg(p.username, p.online ? nickStyle(p.username, me) : STYLE.info),
  ];
  if (p.you) out.push(seg(" (you)", STYLE.info));
  else if (p.trust === "verified") out.push(seg(" ✓", STYLE.ok));
  else if (p.trust === "key-changed") {
    // The warning must survive a narrow column: shorten the words before the name is cut.
    const full = [...out, seg(" ⚠ key changed", STYLE.alarm)];
    return rowWidth({ key: "", segments: full }) <= width ? full : [...out, seg(" ⚠", STYLE.alarm)];
  }
  return out;
}

/** The sidebar's rows for a column of `width` cells and `height` rows. */
export function sidebarRows(peers: readonly PeerView[], me: string, width: number, height: number): Row[] {
  if (height <= 0 || width <= 0) return [];
  const sorted = sortPeers(peers);
  const online = sorted.filter((p) => p.online).length;
  const rows: Row[] = [{ key: "header", segments: fitSegments([seg(`users · ${online} online`, STYLE.strong)], width) }];
  const room = height - 1;
  const fits = sorted.length <= room;
  const shown = fits ? sorted : sorted.slice(0, Math.max(0, room - 1));
  for (const p of shown) rows.push({ key: `peer:${p.username}`, segments: fitSegments(peerSegments(p, me, width), width) });
  if (!fits && room >= 1) {
    const rest = sorted.slice(shown.length);
    const alarm = rest.some((p) => p.trust === "key-changed");
    rows.push({ key: "more", segments: fitSegments([seg(`+${rest.length} more (/users)`, alarm ? STYLE.alarm : STYLE.info)], width) });
  }
  return rows;
}
