// The users sidebar: online first, then known offline users; me marked "(you)"; verified peers
// with a green ✓, a key change with a loud red ⚠.
import type { PeerView } from "../../client/types.js";
import { shownLine, shownName } from "./outside-text.js";
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
    seg(shownName(p.username), p.online ? nickStyle(p.username, me) : STYLE.info),
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

/**
 * The sidebar's rows for a column of `width` cells and `height` rows: a header (default "users
 * · N online"), the people, and when they do not all fit, a count of the rest. `footer` is a
 * last row shown when there is room (e.g. how many are offline).
 */
export function sidebarRows(peers: readonly PeerView[], me: string, width: number, height: number, header?: string, footer?: string): Row[] {
  if (height <= 0 || width <= 0) return [];
  const sorted = sortPeers(peers);
  const online = sorted.filter((p) => p.online).length;
  const rows: Row[] = [{ key: "header", segments: fitSegments([seg(header === undefined ? `users · ${online} online` : shownLine(header), STYLE.strong)], width) }];
  const room = height - 1;
  const fits = sorted.length <= room;
  const shown = fits ? sorted : sorted.slice(0, Math.max(0, room - 1));
  for (const p of shown) rows.push({ key: `peer:${p.username}`, segments: fitSegments(peerSegments(p, me, width), width) });
  if (!fits && room >= 1) {
    const rest = sorted.slice(shown.length);
    const alarm = rest.some((p) => p.trust === "key-changed");
    rows.push({ key: "more", segments: fitSegments([seg(`+${rest.length} more (/users)`, alarm ? STYLE.alarm : STYLE.info)], width) });
  } else if (footer !== undefined && rows.length < height) {
    rows.push({ key: "footer", segments: fitSegments([seg(footer, STYLE.info)], width) });
  }
  return rows;
}

/** Whose the sidebar is: the lobby (who is online), a room (its members), a DM (the two of you). */
export type SidebarScope =
  | { readonly kind: "lobby" }
  | { readonly kind: "room"; readonly room: string; readonly members: readonly string[] | undefined }
  | { readonly kind: "dm"; readonly peer: string };

/** A member's view: what the directory says, or offline and unverified for someone it does not know. */
function viewOf(peers: readonly PeerView[], me: string, username: string): PeerView {
  return peers.find((p) => p.username === username) ?? { username, online: false, trust: "unverified", you: username === me };
}

/**
 * The sidebar for the conversation on screen. In a room: its members, online first, each with
 * presence and trust; in the lobby: who is online (the offline ones counted, /users lists them);
 * in a DM: me and the peer.
 */
export function scopedSidebarRows(scope: SidebarScope, peers: readonly PeerView[], me: string, width: number, height: number): Row[] {
  switch (scope.kind) {
    case "lobby": {
      // Me too while my connection is down: the list says who I am.
      const online = peers.filter((p) => p.online || p.you);
      const offline = peers.length - online.length;
      return sidebarRows(online, me, width, height, undefined, offline > 0 ? `○ ${offline} offline (/users)` : undefined);
    }
    case "room": {
      if (scope.members === undefined) return sidebarRows([], me, width, height, `${scope.room} · not joined`);
      const members = scope.members.map((m) => viewOf(peers, me, m));
      const online = members.filter((p) => p.online).length;
      return sidebarRows(members, me, width, height, `${scope.room} · ${members.length} · ${online} online`);
    }
    case "dm":
      return sidebarRows([viewOf(peers, me, me), viewOf(peers, me, scope.peer)], me, width, height, `@${scope.peer} and you`);
  }
}
