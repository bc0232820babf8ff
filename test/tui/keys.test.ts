// What each key does (keyOutcome), as Ink parses it; the app tests press the real bytes.
import type { Key } from "ink";
import { describe, expect, test } from "vitest";
import { keyOutcome, type KeyContext } from "../../src/tui/input/keymap.js";
import { createInitialState, reducer } from "../../src/tui/state/reducer.js";
import type { TuiState } from "../../src/tui/state/state.js";
import { scrollLayout } from "../../src/tui/view/scrollback-window.js";

const NO_KEY: Key = {
  upArrow: false, downArrow: false, leftArrow: false, rightArrow: false, pageDown: false, pageUp: false, home: false, end: false,
  return: false, escape: false, ctrl: false, shift: false, tab: false, backspace: false, delete: false, meta: false,
  super: false, hyper: false, capsLock: false, numLock: false,
};
const key = (k: Partial<Key> = {}): Key => ({ ...NO_KEY, ...k });
const ctx: KeyContext = { viewport: { width: 80, height: 20, layout: scrollLayout }, sidebarShown: true, sidebarAutomatic: true };
const state: TuiState = createInitialState({ me: "alice", serverLabel: "x", snapshot: { connection: { state: "connected", sinceMs: 0 }, peers: [], rooms: [] }, atMs: 0 });
const action = (typed: string, k: Partial<Key>, s = state) => {
  const o = keyOutcome(typed, key(k), s, ctx);
  return o.kind === "action" ? o.action : o;
};

describe("keys", () => {
  test("scrolling: PgUp / PgDn by pages, Ctrl- or Alt-Home / End to the ends, Esc to the newest", () => {
    expect(action("", { pageUp: true })).toEqual({ type: "scroll", move: "page-up", viewport: ctx.viewport });
    expect(action("", { pageDown: true })).toEqual({ type: "scroll", move: "page-down", viewport: ctx.viewport });
    expect(action("", { home: true, ctrl: true })).toMatchObject({ type: "scroll", move: "top" });
    expect(action("", { end: true, meta: true })).toMatchObject({ type: "scroll", move: "bottom" });
    expect(action("", { escape: true })).toMatchObject({ type: "scroll", move: "bottom" });
  });

  test("Home / End move in a typed line, and scroll to the ends when nothing is typed", () => {
    const typing = reducer(state, { type: "input-insert", text: "half a sentence" });
    expect(action("", { home: true }, typing)).toEqual({ type: "input-move", move: "home" });
    expect(action("", { end: true }, typing)).toEqual({ type: "input-move", move: "end" });
    expect(action("", { home: true })).toEqual({ type: "scroll", move: "top", viewport: ctx.viewport });
    expect(action("", { end: true })).toEqual({ type: "scroll", move: "bottom", viewport: ctx.viewport });
  });

  test("conversations: Alt-digits, Ctrl-N / Ctrl-P, Alt-A; the sidebar: Alt-U; retry: Alt-R", () => {
    expect(action("3", { meta: true })).toEqual({ type: "focus-index", index: 2 });
    expect(action("0", { meta: true })).toEqual({ type: "focus-index", index: 9 });
    expect(action("n", { ctrl: true })).toEqual({ type: "cycle-conversation", delta: 1 });
    expect(action("p", { ctrl: true })).toEqual({ type: "cycle-conversation", delta: -1 });
    expect(action("a", { meta: true })).toEqual({ type: "next-active" });
    expect(action("u", { meta: true })).toEqual({ type: "toggle-sidebar", shown: true, automatic: true });
    expect(action("r", { meta: true })).toEqual({ kind: "run", command: { kind: "retry" } });
  });

  test("Alt-J and Alt-Shift-U go up to the unread ruler; Ctrl-L redraws", () => {
    expect(action("j", { meta: true })).toEqual({ type: "scroll", move: "unread", viewport: ctx.viewport });
    expect(action("U", { meta: true, shift: true })).toEqual({ type: "scroll", move: "unread", viewport: ctx.viewport });
    expect(action("l", { ctrl: true })).toEqual({ kind: "redraw" });
  });

  test("editing", () => {
    expect(action("\r", { return: true, meta: true })).toEqual({ type: "input-insert", text: "\n" });
    expect(action("\r", { return: true })).toEqual({ kind: "submit" });
    expect(action("", { tab: true })).toEqual({ type: "complete", direction: 1 });
    expect(action("", { tab: true, shift: true })).toEqual({ type: "complete", direction: -1 });
    expect(action("", { upArrow: true })).toEqual({ type: "input-up" });
    expect(action("w", { ctrl: true })).toEqual({ type: "input-kill", kill: "word-back" });
    expect(action("u", { ctrl: true })).toEqual({ type: "input-kill", kill: "to-start" });
    expect(action("k", { ctrl: true })).toEqual({ type: "input-kill", kill: "to-end" });
    expect(action("d", { meta: true })).toEqual({ type: "input-kill", kill: "word-forward" });
    expect(action("b", { meta: true })).toEqual({ type: "input-move", move: "word-left" });
    expect(action("", { rightArrow: true, ctrl: true })).toEqual({ type: "input-move", move: "word-right" });
    expect(action("hello", {})).toEqual({ kind: "type", text: "hello" });
  });

  test("Ctrl-D leaves on an empty line and deletes otherwise; Ctrl-C always leaves", () => {
    expect(action("d", { ctrl: true })).toEqual({ kind: "quit" });
    const typing = reducer(state, { type: "input-insert", text: "x" });
    expect(action("d", { ctrl: true }, typing)).toEqual({ type: "input-delete" });
    expect(action("c", { ctrl: true }, typing)).toEqual({ kind: "quit" });
  });

  test("while a large paste asks, only its answers (and Ctrl-C) do anything", () => {
    const asking = reducer(state, { type: "paste", text: "x\n".repeat(30) });
    expect(action("y", {}, asking)).toEqual({ kind: "paste-send" });
    expect(action("E", { shift: true }, asking)).toEqual({ type: "paste-answer", answer: "insert" });
    expect(action("n", {}, asking)).toEqual({ type: "paste-answer", answer: "drop" });
    expect(action("", { escape: true }, asking)).toEqual({ type: "paste-answer", answer: "drop" });
    expect(action("\r", { return: true }, asking)).toEqual({ kind: "ignore" });
    expect(action("2", { meta: true }, asking)).toEqual({ kind: "ignore" });
    expect(action("n", { ctrl: true }, asking)).toEqual({ kind: "ignore" });
    expect(action("c", { ctrl: true }, asking)).toEqual({ kind: "quit" });
  });
});
