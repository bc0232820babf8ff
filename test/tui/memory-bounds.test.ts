// What the UI keeps in memory is bounded, whatever peers send: a lobby flooder at the relay's
// rate (20 messages/s of 64 KiB) must not grow every reader's chat-tui without end. Each
// conversation keeps its newest ENTRIES_KEPT entries and TEXT_KEPT characters of text; at most
// OPEN_CONVERSATIONS_KEPT conversations are open. What indexes entries (the scroll position, what
// arrived since, the unread ruler, reading older pages) stays right when the oldest are dropped.
import { describe, expect, test } from "vitest";
import type { ChatMessage, SessionEvent } from "../../src/client/types.js";
import { listGet, listToArray } from "../../src/tui/state/chunked-list.js";
import { ENTRIES_KEPT, OPEN_CONVERSATIONS_KEPT, TEXT_KEPT } from "../../src/tui/state/memory-bounds.js";
import { createInitialState, reducer, type Action } from "../../src/tui/state/reducer.js";
import { rulerIndex } from "../../src/tui/state/scroll.js";
import type { Conversation, TuiState } from "../../src/tui/state/state.js";
import { wantsOlder } from "../../src/tui/hooks/useOlderHistory.js";
import { scrollbackContext, scrollbackWindow } from "../../src/tui/view/scrollback-window.js";

const T0 = 1_700_000_000_000;
const start = (): TuiState => createInitialState({
  me: "alice", serverLabel: "relay",
  snapshot: { connection: { state: "connected", sinceMs: T0 }, peers: [], rooms: [{ room: "#ops", members: ["alice", "bob"] }] },
  atMs: T0,
});
let n = 0;
const msg = (conversationId: string, from: string, text: string): ChatMessage =>
  ({ id: (n++).toString(16).padStart(32, "0"), conversationId, from, kind: "text", text, sentAtMs: T0 + n, receivedAtMs: T0 + n, own: false });
const ev = (event: SessionEvent): Action => ({ type: "session", event, atMs: T0 + n });
/** `count` messages from mallory, in one batch (as the session hook folds a burst). */
const flood = (s: TuiState, conversationId: string, count: number, text = (i: number) => `line ${i}`): TuiState =>
  reducer(s, { type: "session-batch", events: Array.from({ length: count }, (_, i) => ({ event: { type: "message", message: msg(conversationId, "mallory", text(i)) } as SessionEvent, atMs: T0 })) });
const texts = (c: Conversation): string[] => listToArray(c.entries).flatMap((e) => (e.kind === "message" ? [e.message.text] : []));
const seqAt = (c: Conversation, i: number): number => listGet(c.entries, i)!.seq;
const withScroll = (s: TuiState, id: string, scroll: NonNullable<Conversation["scroll"]>): TuiState =>
  ({ ...s, conversations: { ...s.conversations, [id]: { ...s.conversations[id]!, scroll } } });

describe("entries kept per conversation", () => {
  test("a flood of 20,000 messages of 64 KiB keeps the newest within the text bound, in order", () => {
    const big = "x".repeat(64 * 1024);
    let s = start();
    for (let k = 0; k < 20; k++) s = flood(s, "lobby", 1_000, (i) => `${k * 1_000 + i} ${big}`);
    const lobby = s.conversations["lobby"]!;
    const kept = texts(lobby);
    const chars = kept.reduce((sum, t) => sum + t.length, 0);
    // The newest 256 always stay (a screenful and more); beyond them, the text bound, passed by
    // at most one chunk's text (256 entries) until the next chunk begins.
    expect(kept.length).toBeGreaterThanOrEqual(256);
    expect(kept.length).toBeLessThan(512);
    expect(chars).toBeLessThanOrEqual(Math.max(TEXT_KEPT, 256 * (big.length + 6)) + 256 * (big.length + 6));
    // The newest, contiguous and in order.
    const numbers = kept.map((t) => Number(t.split(" ", 1)[0]));
    expect(numbers.at(-1)).toBe(19_999);
    expect(numbers).toEqual(numbers.map((_, i) => 20_000 - numbers.length + i));
  });

  test("20,000 short lines keep the newest ENTRIES_KEPT at most, dropping the oldest", () => {
    let s = start();
    for (let k = 0; k < 20; k++) s = flood(s, "lobby", 1_000, (i) => `line ${k * 1_000 + i}`);
    const kept = texts(s.conversations["lobby"]!);
    expect(kept.length).toBeLessThanOrEqual(ENTRIES_KEPT);
    expect(kept.length).toBeGreaterThan(ENTRIES_KEPT - 256);
    expect(kept.at(-1)).toBe("line 19999");
    expect(kept[0]).toBe(`line ${20_000 - kept.length}`);
  });

  test("one message at a time (not batched) is bounded the same", () => {
    let s = start();
    for (let i = 0; i < ENTRIES_KEPT + 300; i++) s = reducer(s, ev({ type: "message", message: msg("lobby", "mallory", `m${i}`) }));
    const kept = texts(s.conversations["lobby"]!);
    expect(kept.length).toBeLessThanOrEqual(ENTRIES_KEPT);
    expect(kept.at(-1)).toBe(`m${ENTRIES_KEPT + 299}`);
  });

  test("mid-sized messages are bounded by their text, not only their number", () => {
    const text = "y".repeat(16 * 1024);
    let s = start();
    for (let k = 0; k < 4; k++) s = flood(s, "lobby", 1_000, (i) => `${k * 1_000 + i} ${text}`);
    const kept = texts(s.conversations["lobby"]!);
    const chars = kept.reduce((sum, t) => sum + t.length, 0);
    expect(chars).toBeLessThanOrEqual(TEXT_KEPT + 256 * (text.length + 6));
    expect(kept.length).toBeGreaterThanOrEqual(TEXT_KEPT / (text.length + 6) - 256);
    expect(kept.at(-1)!.startsWith("3999 ")).toBe(true);
  });

  test("notices and other lines count too", () => {
    let s = start();
    for (let i = 0; i < ENTRIES_KEPT + 300; i++) s = reducer(s, { type: "notice", level: "info", text: `n${i}`, atMs: T0, conversationId: "lobby" });
    expect(s.conversations["lobby"]!.entries.length).toBeLessThanOrEqual(ENTRIES_KEPT);
  });
});

describe("what indexes entries stays right when the oldest are dropped", () => {
  test("a view scrolled up stays on the same entry, and counts what arrived since", () => {
    let s = flood(start(), "lobby", 4_000);
    const before = s.conversations["lobby"]!;
    const topSeq = seqAt(before, 3_000);
    s = withScroll(s, "lobby", { top: 3_000, skip: 1, seen: 4_000 });
    s = flood(s, "lobby", 300);
    const after = s.conversations["lobby"]!;
    expect(after.entries.length).toBeLessThan(4_300);
    expect(seqAt(after, after.scroll!.top)).toBe(topSeq);
    expect(after.scroll!.skip).toBe(1);
    // "more below": the 300 that arrived since are fresh, as before the drop.
    expect(after.entries.length - after.scroll!.seen).toBe(300);
    const ctx = scrollbackContext(s, 80, after);
    expect(scrollbackWindow(after, ctx, 20).more?.fresh).toBe(300);
  });

  test("a view on entries that were dropped moves to the oldest kept", () => {
    let s = withScroll(flood(start(), "lobby", 4_000), "lobby", { top: 10, skip: 2, seen: 4_000 });
    s = flood(s, "lobby", 300);
    expect(s.conversations["lobby"]!.scroll).toMatchObject({ top: 0, skip: 0 });
  });

  test("the unread ruler stays after the same entry; when that entry is dropped, everything left is unread", () => {
    let s = flood(start(), "lobby", 3_000);
    // Leaving the lobby puts the ruler after its newest entry.
    s = reducer(s, { type: "open-conversation", id: "#ops", focus: true });
    const marker = s.conversations["lobby"]!.readMarker!;
    s = flood(s, "lobby", 1_200);
    let lobby = s.conversations["lobby"]!;
    expect(lobby.entries.length).toBeLessThan(4_200);
    const at = rulerIndex(lobby)!;
    expect(seqAt(lobby, at - 1)).toBe(marker);
    expect(lobby.unread).toBe(1_200);
    s = flood(s, "lobby", 4_000);
    lobby = s.conversations["lobby"]!;
    expect(rulerIndex(lobby)).toBeUndefined();
    expect(seqAt(lobby, 0)).toBeGreaterThan(marker);
    // Every message that arrived since is counted, also those no longer shown.
    expect(lobby.unread).toBe(5_200);
  });

  test("once lines were dropped, no older page is read from disk (it would come back in the wrong place)", () => {
    let s = flood(start(), "lobby", 100);
    expect(wantsOlder(withScroll(s, "lobby", { top: 0, skip: 0, seen: 100 }).conversations["lobby"]!, 20)).toBe(true);
    s = flood(s, "lobby", ENTRIES_KEPT);
    s = withScroll(s, "lobby", { top: 0, skip: 0, seen: 100 });
    expect(s.conversations["lobby"]!.olderDone).toBe(true);
    expect(wantsOlder(s.conversations["lobby"]!, 20)).toBe(false);
  });

  test("an older page put in front of a long conversation keeps it within the bound", () => {
    let s = flood(start(), "lobby", ENTRIES_KEPT - 10);
    const page = Array.from({ length: 100 }, (_, i) => msg("lobby", "bob", `kept ${i}`));
    s = reducer(s, { type: "older-history", conversationId: "lobby", messages: page, done: false });
    const lobby = s.conversations["lobby"]!;
    expect(lobby.entries.length).toBeLessThanOrEqual(ENTRIES_KEPT);
    expect(lobby.olderDone).toBe(true);
    expect(texts(lobby).at(-1)).toBe(`line ${ENTRIES_KEPT - 11}`);
  });
});

describe("conversations open at once", () => {
  test("DMs from 300 strangers: at most OPEN_CONVERSATIONS_KEPT open, the quietest closed, the lobby and the one on screen never", () => {
    let s = reducer(start(), { type: "open-conversation", id: "#ops", focus: true });
    s = reducer(s, ev({ type: "message", message: msg("dm:alice:bob", "bob", "a friend, early") }));
    for (let i = 0; i < 300; i++) {
      const who = `stranger${i}`;
      s = reducer(s, ev({ type: "message", message: msg(`dm:alice:${who}`, who, "hi") }));
      // bob keeps talking now and then: his conversation is never the quietest.
      if (i % 50 === 49) s = reducer(s, ev({ type: "message", message: msg("dm:alice:bob", "bob", `still here ${i}`) }));
    }
    expect(s.order.length).toBe(OPEN_CONVERSATIONS_KEPT);
    expect(Object.keys(s.conversations)).toHaveLength(OPEN_CONVERSATIONS_KEPT);
    expect(s.order[0]).toBe("lobby");
    expect(s.order).toContain("#ops");
    expect(s.order).toContain("dm:alice:bob");
    expect(s.order).toContain("dm:alice:stranger299");
    // The earliest strangers went first, as /close would: marked closed (kept across a restart
    // until a message opens them again), with a line in the lobby.
    expect(s.order).not.toContain("dm:alice:stranger0");
    expect(s.settings.closed).toContain("dm:alice:stranger0");
    const notices = listToArray(s.conversations["lobby"]!.entries).flatMap((e) => (e.kind === "notice" ? [e.text] : []));
    expect(notices.some((t) => t.startsWith("closed @stranger0: more than 256 conversations were open"))).toBe(true);
    // A message from a closed one opens it again.
    s = reducer(s, ev({ type: "message", message: msg("dm:alice:stranger0", "stranger0", "again") }));
    expect(s.order).toContain("dm:alice:stranger0");
    expect(s.order.length).toBe(OPEN_CONVERSATIONS_KEPT);
    expect(s.current).toBe("#ops");
  });
});
