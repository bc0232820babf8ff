// The command registry is the one source of /help, parsing and completion: the help lists exactly
// its commands, every usage line parses (each alternative of it), every name and alias is taken
// once, and Tab completes arguments as each command's file says.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, test } from "vitest";
import { helpLines } from "../../src/tui/commands/help-lines.js";
import { COMMAND_NAMES, COMMANDS, commandNamed, completionOf } from "../../src/tui/commands/index.js";
import { findCompletions, type CompletionSources } from "../../src/tui/state/completion.js";
import { parseInput } from "../../src/tui/state/commands.js";

/** A plausible value for each placeholder a usage line may have; a new placeholder needs one here. */
const SAMPLES: Readonly<Record<string, string>> = {
  "<user>": "bob", "<users>": "bob carol", "<text>": "hi there", "<action>": "waves", "<digits>": "12345 67890 12345", "<name|number>": "2",
  "#room": "#ops", "<word>": "deploy", "<device>": "desktop",
};

/** Every line a usage stands for: each optional part present and absent, each alternative of a|b. */
function expand(usage: string): string[] {
  const optional = /\[([^\]]*)\]/.exec(usage);
  if (optional) {
    const inner = optional[1] ?? "";
    // "[add|remove <word>]": each alternative, with what follows it.
    const [first = "", ...after] = inner.split(" ");
    const choices = first.includes("|") && !first.startsWith("<") ? first.split("|").map((c) => [c, ...after].join(" ")) : [inner];
    const head = usage.slice(0, optional.index);
    const tail = usage.slice(optional.index + optional[0].length);
    return [`${head}${tail}`, ...choices.map((c) => `${head}${c}${tail}`)].flatMap(expand);
  }
  const filled = usage.replace(/<[^>]+>|#room/g, (p) => {
    const sample = SAMPLES[p];
    if (sample === undefined) throw new Error(`no sample for ${p} in ${usage}: add one to SAMPLES`);
    return sample;
  });
  return [filled.replace(/\s+/g, " ").trim()];
}

describe("the command registry", () => {
  test("/help lists exactly the registry's commands, in its order, each with its usage and summary", () => {
    const lines = helpLines();
    const keysStart = lines.findIndex((l) => l.startsWith("Keys — "));
    const commandLines = lines.slice(1, keysStart);
    expect(commandLines).toEqual(COMMANDS.map((c) => `  ${c.usage} — ${c.summary}`));
    // Each usage starts with its own name.
    for (const c of COMMANDS) expect(c.usage.split(" ")[0]).toBe(`/${c.name}`);
  });

  test("every usage line parses, each alternative of it, to the command of that name", () => {
    let lines = 0;
    for (const c of COMMANDS) {
      for (const line of expand(c.usage)) {
        const parsed = parseInput(line);
        expect(parsed.ok ? parsed.command.kind : parsed.error, line).toBe(c.name);
        lines++;
      }
    }
    expect(lines).toBeGreaterThan(COMMANDS.length);
  });

  test("every name and alias is taken once, and each resolves to its command (aliases parse like the name)", () => {
    expect(new Set(COMMAND_NAMES).size).toBe(COMMAND_NAMES.length);
    for (const c of COMMANDS) {
      expect(commandNamed(c.name)).toBe(c);
      for (const alias of c.aliases ?? []) {
        expect(commandNamed(alias)).toBe(c);
        const [, ...rest] = expand(c.usage)[0]?.split(" ") ?? [];
        expect(parseInput([`/${alias}`, ...rest].join(" "))).toEqual(parseInput(expand(c.usage)[0] ?? ""));
      }
    }
    expect(COMMAND_NAMES).toEqual([...COMMANDS.map((c) => c.name), ...COMMANDS.flatMap((c) => c.aliases ?? [])]);
  });

  test("a parse error names the command's usage from its file", () => {
    for (const c of COMMANDS.filter((c) => !c.usage.includes(" "))) {
      expect(parseInput(`/${c.name} extra`)).toEqual({ ok: false, error: `/${c.name} takes no arguments — usage: ${c.usage}` });
    }
  });

  test("Tab completes each command's first argument as its file says", () => {
    const sources: CompletionSources = { commands: COMMAND_NAMES, users: ["bob"], members: ["bob"], recentSpeakers: [], rooms: ["#ops"], conversations: ["lobby", "#ops"] };
    const expected = { user: ["bob"], users: ["bob"], member: ["bob"], room: ["#ops"], conversation: ["lobby"] } as const;
    const probe = { user: "b", users: "b", member: "b", room: "o", conversation: "l" } as const;
    for (const c of COMMANDS) {
      const kind = completionOf(c.name);
      expect(kind).toBe(c.completes);
      if (kind === undefined) continue;
      const text = `/${c.name} ${probe[kind]}`;
      expect(findCompletions({ text, cursor: text.length }, sources)?.candidates, text).toEqual(expected[kind]);
    }
    expect(COMMANDS.filter((c) => c.completes !== undefined).map((c) => c.name).sort()).toEqual(
      ["accept", "invite", "join", "kick", "leave", "members", "msg", "query", "switch", "trust", "verify"],
    );
  });
});

/** Every import path reached from `files`, following relative imports (type-only ones too). */
function reachedFrom(files: readonly string[]): { files: Set<string>; external: Set<string> } {
  const reached = new Set<string>();
  const external = new Set<string>();
  const visit = (file: string): void => {
    if (reached.has(file)) return;
    reached.add(file);
    for (const m of readFileSync(file, "utf8").matchAll(/^\s*(?:import|export)\b[^;]*?\bfrom\s+"([^"]+)"/gms)) {
      const spec = m[1] ?? "";
      if (!spec.startsWith(".")) {
        external.add(spec);
        continue;
      }
      const ts = resolve(dirname(file), spec).replace(/\.js$/, ".ts");
      visit(existsSync(ts) ? ts : ts.replace(/\.ts$/, ".tsx"));
    }
  };
  files.forEach(visit);
  return { files: reached, external };
}

test("state/ reads the registry, and reaches no view through it, not even by a type (the linter checks one import at a time)", () => {
  const tui = join(import.meta.dirname, "../../src/tui");
  const state = readdirSync(join(tui, "state")).filter((f) => f.endsWith(".ts")).map((f) => join(tui, "state", f));
  const { files, external } = reachedFrom(state);
  const names = [...files].map((f) => relative(tui, f));
  expect(names).toContain("commands/index.ts");
  expect(names.filter((f) => /^(view|components|hooks|controller|input)\//.test(f))).toEqual([]);
  expect([...external].filter((x) => /^(ink|react)(\/|$)/.test(x))).toEqual([]);
});
