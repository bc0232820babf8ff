// The local history: every message shown (and every one I sent) is kept in the client's state
// database, so the conversation is still there after a restart. It never stops the chat: a write
// that fails (a full disk) is logged and the message stays on screen, only not kept. The text is encrypted at rest
// (at-rest.ts); metadata (who, when, which conversation) is stored in the clear, as the relay
// sees it anyway.
import { createHash } from "node:crypto";
import type { Field } from "../protocol/encoding.js";
import type { Logger } from "../protocol/log.js";
import { isValidUsername, parseConversationId } from "../protocol/names.js";
import { sanitizeLine } from "../protocol/sanitize.js";
import type { AtRestCipher } from "./at-rest.js";
import { parseStoredError, type ClientError } from "./errors.js";
import type { ClientStateStore, HistoryRow } from "./state-store.js";
import type { BacklogItem, ChatMessage, MembershipEvent, MembershipLine, MessageRef, MessageState, SessionEvent } from "./types.js";

/** Messages kept per conversation (older ones are dropped every 1,000 kept messages and when the session closes). */
export const BACKLOG_PER_CONVERSATION = 500;
/**
 * Messages shown at start, the newest of all conversations: opening each costs ~18 µs (a
 * cipher object per row), so 5,000 add ~120 ms to the start (measured on the 2-core dev VM).
 */
export const BACKLOG_TOTAL = 5_000;

const STATES: ReadonlySet<string> = new Set<MessageState>(["pending", "accepted", "failed"]);
/** How far back a DM's "added" line looks for my pending lines (a new DM's first lines, typed while its group was made). */
const WAITING_LOOKBACK = 50;
const MEMBERSHIP_KINDS: ReadonlySet<string> = new Set<MembershipLine["kind"]>(["created", "joined", "added", "removed", "left", "refused", "device-added", "device-removed", "refused-device"]);

function isMessage(item: BacklogItem): item is ChatMessage {
  return !("type" in item);
}

/** Who said it, whether it was me, how and when: bound to the sealed text (PROTOCOL.md §10.4). */
function boundFields(sender: string, own: boolean, kind: string, sentAtMs: number): Field[] {
  return [sender, own ? "own" : "peer", kind, { u64: Math.max(0, Math.trunc(sentAtMs)) }];
}

/** Reads one history page may take when rows do not open (another key), before it gives up. */
const MAX_PAGE_READS = 20;

/** A long session trims every this many kept messages, so a flood cannot grow the file for days. */
const TRIM_EVERY = 1_000;

export class MessageHistory {
  private recordedSinceTrim = 0;
  /** Rows the last recent() could not open (another key, or damaged). */
  unreadable = 0;

  constructor(private readonly store: ClientStateStore, private readonly cipher: AtRestCipher, private readonly log: Logger) {}

  /**
   * The session's events as the history sees them: every message shown, and every change of my
   * messages' state. The session subscribes this before any UI, and unsubscribes it when it
   * starts closing (nothing is written after that).
   */
  readonly onEvent = (e: SessionEvent): void => {
    if (e.type === "message") this.record(e.message);
    else if (e.type === "message-state") this.setState(e.id, e.state, e.failure, e.queuedFor, e.error);
    else if (e.type === "membership") this.recordMembership(e);
  };

  /**
   * What to show at start: the newest kept messages of each conversation, reconciled with the
   * outbox (`pending`, my messages still unsent, the truth about what is unsent). `knownPeer`
   * says whether a conversation's peer is known; `failed` learns each failed message of mine
   * (they can be retried after the restart too).
   */
  backlog(pending: readonly ChatMessage[], knownPeer: (conversationId: string) => boolean, failed: (m: ChatMessage) => void): BacklogItem[] {
    const kept = this.recentItems();
    // A kept "pending" that is no longer in the outbox was settled while its state change could
    // not be written; unsent ones the history lacks are added.
    const unsent = new Set(pending.map((m) => m.id));
    const settled = kept.map((m): BacklogItem => (isMessage(m) && m.own && m.state === "pending" && !unsent.has(m.id)
      ? { ...m, state: "failed", failure: "its delivery was not confirmed before the app closed" } : m));
    for (const m of settled) {
      if (isMessage(m) && m.own && m.state === "failed") failed(m);
    }
    const ids = new Set(kept.filter(isMessage).map((m) => m.id));
    // A DM with someone this client never pinned (a typo in /msg, a user who never connected)
    // does not come back at start, unless a message of mine still waits in it.
    const known = settled.filter((m) => (isMessage(m) && unsent.has(m.id)) || knownPeer(m.conversationId));
    return [...known, ...pending.filter((m) => !ids.has(m.id))];
  }

  /**
   * Keeps a v2 membership line ("bob joined #ops") in place among the messages, sealed at rest
   * like a message's text (who made the change is in the clear, as a message's sender is). The
   * lobby's joins and leaves are presence, not shown, so not kept; its refused changes are. The
   * row's id is a hash of the line, so the same line reported twice is kept once.
   */
  recordMembership(e: MembershipEvent): void {
    const { conversationId, line } = e;
    const conv = parseConversationId(conversationId);
    if (conv === undefined || !isValidUsername(line.by) || !MEMBERSHIP_KINDS.has(line.kind)) return;
    if (conv.kind === "lobby" && line.kind !== "refused") return;
    const body = JSON.stringify({ kind: line.kind, users: line.users, ...(line.creator === undefined ? {} : { creator: line.creator }), ...(line.device === undefined ? {} : { device: line.device }), ...(line.thisDevice === true ? { thisDevice: true } : {}) });
    const atMs = Math.max(0, Math.trunc(line.atMs));
    const messageId = createHash("sha256").update(JSON.stringify([conversationId, line.by, atMs, body])).digest().subarray(0, 16);
    this.safely("history.write-failed", () => {
      this.store.historyAdd({
        messageId, conversationId, sender: line.by, own: false, kind: "membership", sentAtMs: atMs, receivedAtMs: atMs, gap: false,
        sealed: this.cipher.seal("history", conversationId, messageId, body, boundFields(line.by, false, "membership", atMs)),
      });
      // As on screen (session-reducer.ts): a DM's "added" line goes above my own lines still
      // pending at its end (they waited for the group it reports), so a restart replays it there.
      if (conv.kind === "dm" && line.kind === "added") this.moveWaitingAfter(conversationId);
    });
    if (++this.recordedSinceTrim >= TRIM_EVERY) this.trim();
  }

  /** Moves my pending rows at the end of a conversation (just before its newest row) after that row. */
  private moveWaitingAfter(conversationId: string): void {
    const rows = this.store.historyPage(conversationId, undefined, WAITING_LOOKBACK);
    let from = rows.length - 1;
    while (from > 0) {
      const r = rows[from - 1]!;
      if (!(r.own && r.kind !== "membership" && r.state === "pending")) break;
      from--;
    }
    this.store.historyMoveToEnd(rows.slice(from, -1).map((r) => ({ sender: r.sender, messageId: r.messageId })));
  }

  /** Keeps a message (text sealed at rest). A message already kept is left as it is. */
  record(m: ChatMessage): void {
    this.safely("history.write-failed", () => this.add(m));
    if (++this.recordedSinceTrim >= TRIM_EVERY) this.trim();
  }

  private add(m: ChatMessage): void {
    const messageId = Buffer.from(m.id, "hex");
    this.store.historyAdd({
      messageId,
      conversationId: m.conversationId,
      sender: m.from,
      own: m.own,
      kind: m.kind,
      sentAtMs: m.sentAtMs,
      receivedAtMs: m.receivedAtMs,
      ...(m.state === undefined ? {} : { state: m.state }),
      ...(m.failure === undefined ? {} : { failure: m.failure }),
      ...(m.error === undefined ? {} : { failureError: JSON.stringify(m.error) }),
      ...(m.queuedFor === undefined ? {} : { queuedFor: m.queuedFor }),
      gap: m.gap === true,
      sealed: this.cipher.seal("history", m.conversationId, messageId, m.text, boundFields(m.from, m.own, m.kind, m.sentAtMs)),
    });
  }

  setState(id: string, state: MessageState, failure: string | undefined, queuedFor: readonly string[] | undefined, error?: ClientError): void {
    const failureError = error === undefined ? undefined : JSON.stringify(error);
    this.safely("history.write-failed", () => this.store.historySetState(Buffer.from(id, "hex"), state, failure, queuedFor, failureError));
  }

  /**
   * The newest `total` messages, in the order they came; unreadable rows are skipped (and
   * counted in `unreadable`). None when the file cannot be read.
   */
  recent(total: number = BACKLOG_TOTAL): ChatMessage[] {
    return this.recentItems(total).filter(isMessage);
  }

  /** The newest `total` kept rows, messages and membership lines, in the order they came. */
  recentItems(total: number = BACKLOG_TOTAL): BacklogItem[] {
    const out: BacklogItem[] = [];
    let unreadable = 0;
    const rows = this.safely("history.read-failed", () => this.store.historyRecent(total)) ?? [];
    for (const r of rows) {
      const m = this.openItem(r);
      if (m === undefined) unreadable++;
      else out.push(m);
    }
    if (unreadable > 0) this.log.warn("history.unreadable", { rows: unreadable });
    this.unreadable = unreadable;
    return out;
  }

  /**
   * Older kept messages of one conversation, oldest first: the `limit` kept just before message
   * `before` (its id and sender; the newest ones when it is undefined or not kept). Scrolling past the top of a
   * conversation, and reopening a closed one, read these pages. Unreadable rows are skipped; a
   * page has fewer than `limit` messages only when it reached the oldest kept one.
   */
  page(conversationId: string, from: MessageRef | undefined, limit: number): ChatMessage[] {
    if (!Number.isInteger(limit) || limit <= 0) throw new RangeError("history page size must be a positive integer");
    if (from !== undefined && !/^[0-9a-f]+$/.test(from.id)) throw new TypeError("history page: message id must be hex");
    let before: { sender: string; messageId: Uint8Array } | undefined = from === undefined ? undefined : { sender: from.from, messageId: Buffer.from(from.id, "hex") };
    let out: ChatMessage[] = [];
    // Rows that do not open (sealed under another key) are skipped and the read goes on further
    // back, so a page is short only at the start of the kept history (which ends the paging).
    for (let reads = 0; out.length < limit && reads < MAX_PAGE_READS; reads++) {
      const want = limit - out.length;
      const rows = this.safely("history.read-failed", () => this.store.historyPage(conversationId, before, want)) ?? [];
      out = [...rows.flatMap((r) => this.openMessage(r) ?? []), ...out];
      if (rows.length < want || rows[0] === undefined) break;
      before = { sender: rows[0].sender, messageId: rows[0].messageId };
    }
    return out;
  }

  /**
   * Every kept message whose text contains `needle` (case-insensitive), oldest first, from all
   * conversations. The texts are sealed at rest, so each kept row is opened to look at it: the
   * per-conversation bound (BACKLOG_PER_CONVERSATION) keeps that to a few thousand rows.
   */
  search(needle: string): ChatMessage[] {
    if (typeof needle !== "string" || needle.trim() === "") throw new TypeError("search text must not be empty");
    const wanted = needle.toLowerCase();
    const rows = this.safely("history.read-failed", () => this.store.historyAll()) ?? [];
    const out: ChatMessage[] = [];
    for (const r of rows) {
      const m = this.openMessage(r);
      if (m !== undefined && m.text.toLowerCase().includes(wanted)) out.push(m);
    }
    return out;
  }

  /** Keeps only the newest `perConversation` messages of each conversation, so the file does not grow without end. */
  trim(perConversation: number = BACKLOG_PER_CONVERSATION): void {
    this.recordedSinceTrim = 0;
    this.safely("history.trim-failed", () => this.store.historyTrim(perConversation));
  }

  /** Drops one message: a failed one, sent again as a new message, is not shown twice. */
  remove(id: string): void {
    this.safely("history.write-failed", () => this.store.historyRemove(Buffer.from(id, "hex")));
  }

  forget(conversationId: string): void {
    this.safely("history.forget-failed", () => this.store.historyForget(conversationId));
  }

  /** Runs a file operation; a failure is logged under `event`, and the chat goes on. */
  private safely<T>(event: string, run: () => T): T | undefined {
    try {
      return run();
    } catch (err) {
      this.log.warn(event, { reason: err instanceof Error ? err.message : String(err) });
      return undefined;
    }
  }

  /** A kept message; undefined for a membership line (pages and searches are of messages) or an unreadable row. */
  private openMessage(r: HistoryRow): ChatMessage | undefined {
    const item = r.kind === "membership" ? undefined : this.openItem(r);
    return item !== undefined && isMessage(item) ? item : undefined;
  }

  private openItem(r: HistoryRow): BacklogItem | undefined {
    let text: string | undefined;
    try {
      text = this.cipher.open("history", r.conversationId, r.messageId, r.sealed, boundFields(r.sender, r.own, r.kind, r.sentAtMs));
    } catch {
      return undefined; // a damaged row (e.g. an id of the wrong length): skipped like one that does not open
    }
    if (text === undefined) return undefined; // sealed under another key (the user re-keyed), moved, or altered
    // The unsealed fields (states) are only shown: keep them to what the app itself writes.
    if (!isValidUsername(r.sender) || parseConversationId(r.conversationId) === undefined) return undefined;
    if (r.kind === "membership") return membershipOf(r, text);
    const error = r.failureError === undefined ? undefined : parseStoredError(r.failureError);
    return {
      id: r.messageId.toString("hex"),
      conversationId: r.conversationId,
      from: r.sender,
      kind: r.kind,
      text,
      sentAtMs: r.sentAtMs,
      receivedAtMs: r.receivedAtMs,
      own: r.own,
      ...(r.state !== undefined && STATES.has(r.state) ? { state: r.state as MessageState } : {}),
      ...(r.failure === undefined ? {} : { failure: sanitizeLine(r.failure).slice(0, 300) }),
      ...(error === undefined ? {} : { error }),
      ...(r.queuedFor === undefined ? {} : { queuedFor: r.queuedFor.filter(isValidUsername) }),
      ...(r.gap ? { gap: true } : {}),
    };
  }
}

/** A kept membership line back from its row (the text is what recordMembership sealed). */
function membershipOf(r: HistoryRow, text: string): MembershipEvent | undefined {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof body !== "object" || body === null) return undefined;
  const { kind, users, creator, device, thisDevice } = body as Record<string, unknown>;
  if (typeof kind !== "string" || !MEMBERSHIP_KINDS.has(kind) || !Array.isArray(users)) return undefined;
  const names = users.filter((u): u is string => typeof u === "string" && isValidUsername(u));
  const line: MembershipLine = {
    kind: kind as MembershipLine["kind"], by: r.sender, users: names, atMs: r.sentAtMs,
    ...(typeof creator === "string" && isValidUsername(creator) ? { creator } : {}),
    ...(typeof device === "string" ? { device } : {}),
    ...(thisDevice === true ? { thisDevice: true } : {}),
  };
  return { type: "membership", conversationId: r.conversationId, line };
}
