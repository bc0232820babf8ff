// The keymap is the one source of key handling and key help: every binding is named in its help
// line and reached by a real key, and every help line has a binding and shows in /help.
import type { Key } from "ink";
import { describe, expect, test } from "vitest";
import { helpLines } from "../../src/tui/commands/help-lines.js";
import { NO_KEY } from "../../src/tui/input/ink-key.js";
import { BINDINGS, KEYMAP, keyName, keyOutcome, wheelOutcome, type KeyContext, type KeyEntry } from "../../src/tui/input/keymap.js";
import { createInitialState, reducer } from "../../src/tui/state/reducer.js";
import type { TuiState } from "../../src/tui/state/state.js";
import { scrollLayout } from "../../src/tui/view/scrollback-window.js";

const ctx: KeyContext = { viewport: { width: 80, height: 20, layout: scrollLayout }, sidebarShown: true, sidebarAutomatic: false };
const idle: TuiState = createInitialState({ me: "alice", serverLabel: "x", snapshot: { connection: { state: "connected", sinceMs: 0 }, peers: [], rooms: [] }, atMs: 0 });
const typing = reducer(idle, { type: "input-insert", text: "half a line" });
const asking = reducer(idle, { type: "paste", text: "x\n".repeat(40) });

const entries: readonly KeyEntry[] = KEYMAP.flatMap((g) => g.keys);
const lineOf = (e: KeyEntry): string => `  ${e.keys} — ${e.summary}`;

/** The key names a help line mentions: each word-like key name, and "X-1 … X-9" as the range. */
function mentioned(line: string, name: string): boolean {
  const range = /(\S+-)1 … \1?9/.exec(line);
  if (range && new RegExp(`^${range[1]}[1-9]$`).test(name)) return true;
  const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(`(^|[^\\w-])${escaped}($|[^\\w-])`).test(line);
}

/** The key (as the parser gives it) that a binding's name stands for. */
function keyFor(name: string): { typed: string; key: Key } {
  const parts = name.split("-");
  const base = parts.pop() ?? "";
  const mods = new Set(parts);
  const key: Key = { ...NO_KEY, ctrl: mods.has("Ctrl"), meta: mods.has("Alt"), shift: mods.has("Shift") };
  const named: Record<string, keyof Key> = {
    Home: "home", End: "end", Left: "leftArrow", Right: "rightArrow", Up: "upArrow", Down: "downArrow", PgUp: "pageUp", PgDn: "pageDown",
    Enter: "return", Tab: "tab", Backspace: "backspace", Delete: "delete", Esc: "escape",
  };
  const flag = named[base];
  if (flag !== undefined) return { typed: base === "Enter" ? "\r" : "", key: { ...key, [flag]: true } };
  // Ctrl- and Alt- letters come lower-case from the parser; Alt-Shift-U upper-case.
  return { typed: mods.has("Shift") ? base.toUpperCase() : base.toLowerCase(), key };
}

describe("the keymap", () => {
  test("every help line has a binding, and /help shows every line", () => {
    const help = helpLines();
    for (const e of entries) {
      expect(Object.keys(e.bindings).length, e.keys).toBeGreaterThan(0);
      expect(help).toContain(lineOf(e));
    }
    // /help's key lines are exactly the keymap's, group by group.
    const keyLines = help.slice(help.findIndex((l) => l.startsWith("Keys — ")));
    expect(keyLines).toEqual(KEYMAP.flatMap((g) => [`Keys — ${g.group.toLowerCase()}:`, ...g.keys.map(lineOf)]));
  });

  test("every binding is named in its help line", () => {
    for (const e of entries) for (const name of Object.keys(e.bindings)) expect(mentioned(lineOf(e), name), `${name} in ${lineOf(e)}`).toBe(true);
  });

  test("every binding is reached by the key its name says, and does what the keymap says", () => {
    for (const e of entries) {
      for (const [name, binding] of Object.entries(e.bindings)) {
        const mode = e.mode ?? "main";
        if (mode === "wheel") {
          expect(wheelOutcome(idle, ctx)).toEqual(binding(idle, ctx));
          continue;
        }
        const { typed, key } = keyFor(name);
        if (mode === "main") expect(keyName(typed, key), name).toBe(name);
        for (const state of mode === "paste" ? [asking] : [idle, typing]) {
          expect(keyOutcome(typed, key, state, ctx), name).toEqual(binding(state, ctx));
          expect(keyOutcome(typed, key, state, ctx).kind, name).not.toBe("ignore");
        }
      }
    }
  });

  test("the handlers are built from the keymap alone: as many bindings as the help lines name", () => {
    const count = (mode: string) => entries.filter((e) => (e.mode ?? "main") === mode).reduce((n, e) => n + Object.keys(e.bindings).length, 0);
    expect(BINDINGS.main.size).toBe(count("main"));
    expect(BINDINGS.paste.size).toBe(count("paste"));
    expect(BINDINGS.wheel.size).toBe(count("wheel"));
  });

  test("an unbound key with Ctrl or Alt does nothing; plain text is typed", () => {
    expect(keyOutcome("z", { ...NO_KEY, ctrl: true }, idle, ctx)).toEqual({ kind: "ignore" });
    expect(keyOutcome("z", { ...NO_KEY, meta: true }, idle, ctx)).toEqual({ kind: "ignore" });
    expect(keyOutcome("z", NO_KEY, idle, ctx)).toEqual({ kind: "type", text: "z" });
  });
});
