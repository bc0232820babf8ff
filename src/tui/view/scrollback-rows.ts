// Turns one scrollback entry into terminal rows for a given width: time, nick and wrapped text,
// delivery marks, warnings; plus the rows drawn between entries (a day separator, the unread
// ruler). Which entries are laid out at all is decided by scrollback-window.ts. Every name, label
// and text from outside (a peer, the relay, a notice of the client) goes through outside-text.ts.
import type { ChatMessage, NoticeLevel, VerifyInfo } from "../../client/types.js";
import { membershipText } from "../commands/membership-text.js";
import { mentionPattern } from "../state/attention.js";
import type { Entry } from "../state/state.js";
import { padEndToWidth, stringWidth, wrapHanging, wrapText } from "./cell-width.js";
import { shownLine, shownName, shownText } from "./outside-text.js";
import { fitSegments, seg, type Row, type Segment } from "./row.js";
import { STYLE, nickStyle, type SegmentStyle } from "./style.js";
import { formatClock, formatDay } from "./time.js";
import type { PresenceFilter } from "../state/settings.js";
import { clampNickWidth } from "../state/scroll.js";

export interface ScrollbackContext {
  readonly width: number;
  readonly me: string;
  /** Nicks are padded to this many cells so messages line up. */
  readonly nickWidth: number;
  readonly formatTime?: (ms: number) => string;
  /** The day separator's label (default: "Tuesday 25 November 2026"). */
  readonly formatDay?: (ms: number) => string;
  /** Which presence lines show (/filter); default all. */
  readonly presence?: PresenceFilter;
  /** Extra words marked like my name (/highlight). */
  readonly highlights?: readonly string[];
}

/**
 * True for a presence line (online/offline, joined/left) of someone else that the filter hides.
 * Of the v2 membership lines only joins and leaves are presence: who created a room, who added
 * or removed whom, and refused changes always show (they say who can read).
 */
export function hiddenByFilter(entry: Entry, ctx: ScrollbackContext): boolean {
  if (entry.kind === "membership") {
    if (entry.line.kind !== "joined" && entry.line.kind !== "left") return false;
    if (entry.line.by === ctx.me || ctx.presence === undefined || ctx.presence === "all") return false;
    return ctx.presence === "none" || entry.quiet === true;
  }
  if (entry.kind !== "presence" && entry.kind !== "room-event") return false;
  if (entry.username === ctx.me || ctx.presence === undefined || ctx.presence === "all") return false;
  return ctx.presence === "none" || entry.quiet === true;
}

const TIME_WIDTH = 5; // "HH:MM"
/** Beyond this difference between the relay's time and the sender's claim, both are shown. */
const CLOCK_SKEW_SHOWN_MS = 60_000;
/** Fewer text cells than this beside the nick, and the text goes on its own rows below. */
const MIN_TEXT_WIDTH = 10;

/** The nick column width for a set of names: the longest, within 4..12 cells. */
export function nickColumnWidth(names: readonly string[]): number {
  return clampNickWidth(names.reduce((w, n) => Math.max(w, stringWidth(n)), 0));
}

const LEVEL_MARK: Readonly<Record<NoticeLevel, { readonly mark: string; readonly style: SegmentStyle }>> = {
  info: { mark: "--", style: STYLE.info },
  warn: { mark: "⚠", style: STYLE.warn },
  error: { mark: "✗", style: STYLE.error },
};

class RowBuilder {
  readonly rows: Row[] = [];
  constructor(private readonly keyPrefix: string, readonly width: number) {}

  push(segments: readonly Segment[]): void {
    const fitted = fitSegments(segments, this.width);
    // An empty Text renders no line at all in Ink: keep every row at least one cell.
    this.rows.push({ key: `${this.keyPrefix}.${this.rows.length}`, segments: fitted.length === 0 ? [seg(" ")] : fitted });
  }

  /**
   * `lead` on the first row, then `text` wrapped beside it; continuation rows are indented to
   * where the text starts. When the lead leaves too little room, the text starts on the next row.
   */
  block(
    lead: readonly Segment[], text: string, style?: SegmentStyle, tail?: readonly Segment[], decorate?: (line: string) => Segment[],
    wrap: (text: string, width: number) => string[] = wrapText,
  ): void {
    const leadWidth = lead.reduce((w, s) => w + stringWidth(s.text), 0);
    const beside = this.width - leadWidth >= MIN_TEXT_WIDTH;
    const indent = beside ? leadWidth : Math.min(2, this.width - 1);
    const lines = wrap(text, Math.max(1, this.width - indent));
    const pad = " ".repeat(indent);
    if (!beside) this.push(lead);
    lines.forEach((line, i) => {
      const start = i === 0 && beside ? [...lead] : [seg(pad)];
      this.push([...start, ...(decorate ? decorate(line) : [seg(line, style)])]);
    });
    if (tail && tail.length > 0) this.appendTail(tail, indent);
  }

  /** Appends segments to the last row when they fit there, else wraps them on rows of their own. */
  private appendTail(tail: readonly Segment[], indent: number): void {
    const last = this.rows.at(-1);
    const tailWidth = tail.reduce((w, s) => w + stringWidth(s.text), 0);
    const lastWidth = last ? last.segments.reduce((w, s) => w + stringWidth(s.text), 0) : 0;
    if (last && lastWidth + tailWidth <= this.width) {
      this.rows[this.rows.length - 1] = { key: last.key, segments: [...last.segments, ...tail] };
      return;
    }
    const pad = " ".repeat(indent);
    for (const s of tail) {
      for (const line of wrapText(s.text.trimStart(), Math.max(1, this.width - indent))) this.push([seg(pad), seg(line, s.style)]);
    }
  }
}

function timeSeg(ms: number, ctx: ScrollbackContext): Segment {
  return seg(`${(ctx.formatTime ?? formatClock)(ms)} `, STYLE.time);
}

function stateTail(m: ChatMessage, retried: boolean): Segment[] {
  if (!m.own && m.notFor !== undefined && m.notFor.length > 0) return [seg(` (not sent to ${m.notFor.map(shownName).join(", ")})`, STYLE.pending)];
  if (!m.own || m.state === undefined) return [];
  // Mine, written on another of my devices (PROTOCOL.md §11): which one, instead of a delivery mark.
  if (m.device !== undefined) return [seg(` · ${shownName(m.device)}`, STYLE.time)];
  switch (m.state) {
    case "pending":
      return [seg(" …", STYLE.pending)];
    case "accepted":
      return m.queuedFor && m.queuedFor.length > 0
        ? [seg(" ✓", STYLE.ok), seg(` queued for ${m.queuedFor.map(shownName).join(", ")}`, STYLE.pending)]
        : [seg(" ✓", STYLE.ok)];
    case "failed":
      return [seg(` ✗ ${shownLine(m.failure ?? "not sent")} ${retried ? "(sent again below)" : "(/retry to send again)"}`, STYLE.error)];
  }
}

function messageRows(b: RowBuilder, m: ChatMessage, retried: boolean, ctx: ScrollbackContext): void {
  // The client sanitised both (content layer, history); drawn through the sanitiser all the same.
  const from = shownName(m.from);
  const text = shownText(m.text);
  if (m.gap) {
    b.block([timeSeg(m.sentAtMs, ctx), seg("⚠ ", STYLE.warn)], `a message from ${from} may be missing`, STYLE.warn);
  }
  if (m.kind === "topic") {
    const who = m.own ? "you" : from;
    b.block([timeSeg(m.sentAtMs, ctx), seg("-- ", STYLE.info)], `${who} set the topic: ${text}`, STYLE.strong, stateTail(m, retried));
    return;
  }
  if (m.kind === "away") {
    const lead = [timeSeg(m.sentAtMs, ctx), seg(padEndToWidth(from, ctx.nickWidth), nickStyle(m.from, ctx.me)), seg("  ")];
    const what = m.own ? "automatic reply (you are away): " : "is away (automatic reply): ";
    b.block(lead, `${what}${text}`, STYLE.info, stateTail(m, retried));
    return;
  }
  // Someone else naming me (or a highlight word): their nick stands out and the words are marked.
  const pattern = m.own ? undefined : mentionPattern(ctx.me, ctx.highlights);
  const mentioned = pattern !== undefined && pattern.test(text);
  const nick = mentioned ? STYLE.mentionNick : nickStyle(m.from, ctx.me);
  const decorate = mentioned && pattern ? (line: string) => markMentions(line, pattern) : undefined;
  // The relay's time where the sender's claimed time is off by more than a minute: "12:01 bob
  // (sent 11:40) …" (a wrong clock, or a message held back; the claimed time is only the sender's).
  const skewed = m.relayAtMs !== undefined && Math.abs(m.relayAtMs - m.sentAtMs) > CLOCK_SKEW_SHOWN_MS;
  const time = timeSeg(skewed ? m.relayAtMs! : m.sentAtMs, ctx);
  const claimed = skewed ? [seg(`(sent ${(ctx.formatTime ?? formatClock)(m.sentAtMs)}) `, STYLE.time)] : [];
  if (m.kind === "action") {
    b.block([time, ...claimed, seg("* "), seg(from, nick), seg(" ")], text, undefined, stateTail(m, retried), decorate);
    return;
  }
  const lead = [time, seg(padEndToWidth(from, ctx.nickWidth), nick), seg("  "), ...claimed];
  b.block(lead, text, undefined, stateTail(m, retried), decorate);
}

/** A wrapped line with every mention of my name marked (a name cut by wrapping stays plain). */
function markMentions(line: string, pattern: RegExp): Segment[] {
  const out: Segment[] = [];
  const global = new RegExp(pattern.source, "gi");
  let last = 0;
  for (const match of line.matchAll(global)) {
    // The pattern includes the character before the name (start, or a non-name character).
    const lead = match[1] ?? "";
    const from = (match.index ?? 0) + lead.length;
    const to = (match.index ?? 0) + match[0].length;
    if (from > last) out.push(seg(line.slice(last, from)));
    out.push(seg(line.slice(from, to), STYLE.mention));
    last = to;
  }
  if (last < line.length || out.length === 0) out.push(seg(line.slice(last)));
  return out;
}

function noticeRows(b: RowBuilder, atMs: number, level: NoticeLevel, text: string, ctx: ScrollbackContext): void {
  const { mark, style } = LEVEL_MARK[level];
  // Notices are the app's own text: its indented lists wrap with hanging indents. They may name
  // what a peer or the relay chose: no control character or escape is drawn (a session's notice
  // comes as one line, error-text.ts withUiText, so it cannot draw a row of its own either).
  b.block([timeSeg(atMs, ctx), seg(`${mark} `, style)], shownText(text), style, undefined, undefined, wrapHanging);
}

function safetyNumberRows(b: RowBuilder, number: string, indent: number): void {
  const groups = number.split(/\s+/).filter((g) => g !== "");
  // Two rows of six groups when they fit, else three of four.
  const perRow = indent + 6 * 6 - 1 <= b.width ? 6 : 4;
  for (let i = 0; i < groups.length; i += perRow) {
    b.push([seg(" ".repeat(indent)), seg(groups.slice(i, i + perRow).join(" "), STYLE.strong)]);
  }
}

function verifyRows(b: RowBuilder, atMs: number, info: VerifyInfo, ctx: ScrollbackContext): void {
  const user = shownName(info.username);
  const indent = TIME_WIDTH + 1 + 3;
  const trustCommand = `/trust ${user} ${info.confirmGroups.join(" ")}`;
  if (info.trust === "key-changed" && info.pendingSafetyNumber !== undefined) {
    b.block([timeSeg(atMs, ctx), seg("⚠ ", STYLE.alarm)], `${user}'s keys changed. Safety number with ${user}'s NEW keys:`, STYLE.alarm);
    safetyNumberRows(b, info.pendingSafetyNumber, indent);
    b.block([seg(" ".repeat(TIME_WIDTH + 1)), seg("→ ", STYLE.alarm)],
      `Compare it with ${user} over another channel you trust (in person, or a call where you know the voice). ` +
        `If every digit matches, type ${trustCommand} to accept the new keys as verified ✓ (from then on they may join your conversations) ` +
        `(the digits are the start of ${user}'s half of the number, so a key that changes after this is refused). ` +
        `To go on with the new keys without comparing, type /accept ${user} (not verified). ` +
        `If the number does not match, do neither: someone may be intercepting.`);
    return;
  }
  const state = info.trust === "verified" ? "verified ✓" : "not verified yet";
  b.block([timeSeg(atMs, ctx), seg("-- ", STYLE.info)], `Safety number with ${user} (${state}):`, STYLE.strong);
  safetyNumberRows(b, info.safetyNumber, indent);
  const next = info.trust === "verified"
    ? `You have verified ${user}. If ${user}'s keys ever change, you will be warned here, and the new key is refused until you check again.`
    : `Compare these 60 digits with ${user} over another channel you trust (in person, or a call where you know the voice); ${user} sees the same number. ` +
      `If every digit matches, type ${trustCommand}. If not, do not trust: someone may be intercepting.`;
  b.block([seg(" ".repeat(TIME_WIDTH + 1)), seg("→ ", STYLE.ok)], next);
}

function keyChangeRows(b: RowBuilder, entry: Extract<Entry, { kind: "key-change" }>, ctx: ScrollbackContext): void {
  const { held } = entry;
  const user = shownName(entry.username);
  const lead = [timeSeg(entry.atMs, ctx), seg("⚠ ", STYLE.alarm)];
  const heldText = held === 0 ? "" : held === 1 ? ` 1 message from ${user} is held.` : ` ${held} messages from ${user} are held.`;
  const discarded = entry.discarded ?? 0;
  const discardedText = discarded === 0 ? ""
    : ` ${discarded} message${discarded === 1 ? "" : "s"} held under the replaced key ${discarded === 1 ? "was" : "were"} discarded (no key you could accept signed ${discarded === 1 ? "it" : "them"}).`;
  const what = entry.replaced === true
    ? `WARNING: ${user}'s keys changed AGAIN before you decided: the relay now shows yet another key, refused like the last one.${discardedText}`
    : `WARNING: ${user}'s keys have changed: the relay now shows another identity key for ${user}.${heldText}`;
  // Protocol v2 (PROTOCOL.md §4.4, §6): nothing is held; the new key is refused until a decision,
  // and the conversations go on with the group members as they are (the key pinned before).
  const effect = entry.inRoom === true
    ? ` The room goes on with the ${user} already in it (the key you had pinned); the new key cannot join it until you decide.`
    : ` Until you decide, the new key is refused: it cannot join your conversations, and nothing it sends is shown or kept. ` +
      `What you send to ${user} still reaches only the key you had pinned (if ${user} really changed devices, they will not read it there).`;
  b.block(lead, what + effect, STYLE.alarm);
  b.block([seg(" ".repeat(TIME_WIDTH + 1)), seg("→ ", STYLE.alarm)],
    `A new device or a reinstall does this — and so does someone intercepting. ` +
      `Type /verify ${user}: it shows the safety number to compare with ${user} over another channel and the exact /trust command; ` +
      `/accept ${user} goes on with the new key without comparing (not verified). Either way, the new key may join your conversations from then on.`,
    STYLE.alarm);
}

/** The rows of one entry at the context's width. */
export function entryRows(entry: Entry, ctx: ScrollbackContext): Row[] {
  const b = new RowBuilder(String(entry.seq), Math.max(1, ctx.width));
  switch (entry.kind) {
    case "message":
      messageRows(b, entry.message, entry.retried === true, ctx);
      break;
    case "notice":
      noticeRows(b, entry.atMs, entry.level, entry.text, ctx);
      break;
    case "refused":
      b.block([timeSeg(entry.atMs, ctx), seg("⚠ ", STYLE.warn)], `a message from ${shownName(entry.from)} could not be verified and was dropped`, STYLE.warn);
      break;
    case "key-change":
      keyChangeRows(b, entry, ctx);
      break;
    case "room-event": {
      const mine = entry.username === ctx.me;
      const room = shownName(entry.room);
      const text = mine && entry.change === "joined" && entry.members !== undefined
        ? `you joined ${room} — members: ${entry.members.map(shownName).join(", ")}`
        : `${mine ? "you" : shownName(entry.username)} ${entry.change} ${room}`;
      b.block([timeSeg(entry.atMs, ctx), seg("-- ", STYLE.info)], text, STYLE.info);
      break;
    }
    case "membership": {
      const text = membershipText(entry.line, entry.conversationId, ctx.me);
      // A refused change is a warning (someone tried what only the creator may); the others look like v1's room lines.
      const refused = entry.line.kind === "refused";
      b.block([timeSeg(entry.atMs, ctx), seg(refused ? "⚠ " : "-- ", refused ? STYLE.warn : STYLE.info)], text, refused ? STYLE.warn : STYLE.info);
      break;
    }
    case "presence":
      b.block([timeSeg(entry.atMs, ctx), seg(entry.change === "online" ? "→ " : "← ", entry.change === "online" ? STYLE.ok : STYLE.info)],
        `${shownName(entry.username)} ${entry.change === "online" ? "came online" : "went offline"}`, STYLE.info);
      break;
    case "verify":
      verifyRows(b, entry.atMs, entry.info, ctx);
      break;
  }
  return b.rows;
}

/** A full-width rule with a label: "── Tuesday 25 November 2026 ──────". */
function labelledRule(key: string, label: string, width: number, style: SegmentStyle): Row {
  const w = Math.max(1, width);
  const text = `── ${label} `;
  const fill = Math.max(0, w - stringWidth(text));
  return { key, segments: fitSegments([seg(text + "─".repeat(fill), style)], w) };
}

/** The row that starts a new day, before the first entry of that day. */
export function dayRow(key: string, atMs: number, ctx: ScrollbackContext): Row {
  return labelledRule(key, (ctx.formatDay ?? formatDay)(atMs), ctx.width, STYLE.info);
}

/** The unread ruler: what is below it arrived after the user last left the conversation. */
export function rulerRow(key: string, ctx: ScrollbackContext): Row {
  return labelledRule(key, "unread", ctx.width, STYLE.ruler);
}
