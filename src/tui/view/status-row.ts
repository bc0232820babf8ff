// The status line: product, who and where, the connection state (with a live reconnect
// countdown), and the conversation bar with unread and mention counts and the trust of each DM
// peer. The bar always shows the current conversation; others are dropped quietest and
// farthest first when the line is too narrow, and counted in a "+N".
import type { ConnectionStatus, PeerTrust } from "../../client/types.js";
import type { Conversation, TuiState } from "../state/state.js";
import { stringWidth } from "./cell-width.js";
import { shownLine } from "./outside-text.js";
import { fitSegments, seg, type Row, type Segment } from "./row.js";
import { STYLE } from "./style.js";

/** The connection state as a short label; `nowMs` drives the reconnect countdown. */
export function connectionSegments(status: ConnectionStatus, nowMs: number): Segment[] {
  switch (status.state) {
    case "connecting":
      return [seg(status.attempt > 1 ? `◌ connecting (attempt ${status.attempt})…` : "◌ connecting…", STYLE.warn)];
    case "connected":
      return [seg("● connected", STYLE.ok)];
    case "reconnecting": {
      const seconds = Math.max(0, Math.ceil((status.retryAtMs - nowMs) / 1000));
      const when = seconds > 0 ? `reconnecting in ${seconds}s` : "reconnecting…";
      return [seg(`↻ ${when}`, STYLE.warn), seg(` (${shownLine(status.reason)})`, STYLE.info)];
    }
    case "failed":
      return [seg(`✗ failed: ${shownLine(status.reason)}`, STYLE.alarm)];
    case "closed":
      return [seg("○ closed", STYLE.info)];
  }
}

/** A DM peer's trust as a mark after the title: ✓ verified, ⚠ key changed. */
export function trustMark(trust: PeerTrust | undefined): Segment[] {
  if (trust === "verified") return [seg("✓", STYLE.ok)];
  if (trust === "key-changed") return [seg("⚠", STYLE.alarm)];
  return [];
}

/**
 * The counts after a title: "(5)" unread messages; "(5,2!)" of which 2 are for me (mentions,
 * DMs, key changes); "(2!)" when all are.
 */
export function countSegments(unread: number, highlights: number): Segment[] {
  if (unread === 0 && highlights === 0) return [];
  if (highlights === 0) return [seg(` (${unread})`, STYLE.strong)];
  if (highlights >= unread) return [seg(` (${highlights}!)`, STYLE.alarm)];
  return [seg(` (${unread},`, STYLE.strong), seg(`${highlights}!`, STYLE.alarm), seg(")", STYLE.strong)];
}

function barItem(c: Conversation, index: number, current: boolean, trust: PeerTrust | undefined): Segment[] {
  const label = seg(`${index + 1}:${shownLine(c.title)}`, current ? STYLE.current : undefined);
  return [label, ...(c.kind === "dm" ? trustMark(trust) : []), ...countSegments(c.unread, c.highlights)];
}

const widthOf = (segments: readonly Segment[]): number => segments.reduce((w, s) => w + stringWidth(s.text), 0);

/** The conversation bar within `width` cells: "1:lobby  2:#ops (3)  3:@bob (1!)". */
export function conversationBar(state: TuiState, width: number): Segment[] {
  const trust = new Map(state.peers.map((p) => [p.username, p.trust]));
  const items = state.order.flatMap((id, index) => {
    const c = state.conversations[id];
    return c ? [{ id, index, segments: barItem(c, index, id === state.current, c.peer === undefined ? undefined : trust.get(c.peer)), hidden: c }] : [];
  });
  const currentIndex = Math.max(0, items.findIndex((i) => i.id === state.current));
  const shown = [...items];
  const total = (list: typeof items, hiddenCount: number): number =>
    list.reduce((w, i) => w + widthOf(i.segments), 0) + 2 * Math.max(0, list.length - 1) + (hiddenCount > 0 ? 3 + String(hiddenCount).length : 0);
  let hidden: Conversation[] = [];
  const activity = (c: Conversation): number => (c.highlights > 0 ? 2 : c.unread > 0 ? 1 : 0);
  while (shown.length > 1 && total(shown, hidden.length) > width) {
    // Drop the quietest conversation, farthest from the current one first; never the current.
    let drop = -1;
    shown.forEach((item, i) => {
      if (item.id === state.current) return;
      const best = shown[drop];
      const quieter = best === undefined || activity(item.hidden) < activity(best.hidden)
        || (activity(item.hidden) === activity(best.hidden) && Math.abs(item.index - currentIndex) > Math.abs(best.index - currentIndex));
      if (quieter) drop = i;
    });
    const [removed] = shown.splice(drop, 1);
    if (removed) hidden = [...hidden, removed.hidden];
  }
  const out: Segment[] = [];
  shown.forEach((item, i) => {
    if (i > 0) out.push(seg("  "));
    out.push(...item.segments);
  });
  if (hidden.length > 0) {
    const activity = hidden.some((c) => c.highlights > 0) ? STYLE.alarm : hidden.some((c) => c.unread > 0) ? STYLE.strong : STYLE.info;
    out.push(seg(`  +${hidden.length}`, activity));
  }
  return fitSegments(out, width);
}

/** Fewer cells than this for the bar, and the left part drops its least useful words first. */
const MIN_BAR_WIDTH = 14;

/** The whole status line at `width` cells. */
export function statusRow(state: TuiState, nowMs: number, width: number): Row {
  const away = state.away === undefined || state.quitting ? [] : [seg("  away", STYLE.warn)];
  const connection = [...(state.quitting ? [seg("leaving…", STYLE.info)] : connectionSegments(state.connection, nowMs)), ...away];
  // From the most to the least complete; the connection state is kept in every one.
  const variants: Segment[][] = [
    [seg("secure-chat", STYLE.strong), seg(`  ${state.me}@${state.serverLabel}  `), ...connection],
    [seg(`${state.me}@${state.serverLabel}  `), ...connection],
    [seg(`${state.me}  `), ...connection],
    connection,
  ];
  // The richest left part beside which the whole bar fits; else one that leaves it some room.
  const fullBar = widthOf(conversationBar(state, Number.POSITIVE_INFINITY));
  const left = variants.find((v) => width - widthOf(v) - 2 >= fullBar)
    ?? variants.find((v) => width - widthOf(v) - 2 >= MIN_BAR_WIDTH)
    ?? connection;
  const barRoom = width - widthOf(left) - 2;
  if (barRoom < 6) return { key: "status", segments: fitSegments(left, width) };
  const bar = conversationBar(state, barRoom);
  const gap = Math.max(2, width - widthOf(left) - widthOf(bar));
  return { key: "status", segments: fitSegments([...left, seg(" ".repeat(gap)), ...bar], width) };
}
