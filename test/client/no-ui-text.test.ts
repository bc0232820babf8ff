// The client is a library: its sentences say what happened, never what to type in chat-tui. Every
// string the client's source can produce (the code of src/client without its comments) is checked
// for chat-tui's slash commands (taken from the command registry), its command-line options (taken
// from its yargs definition) and its name. The TUI adds those hints (src/tui/commands/error-text.ts).
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { COMMAND_NAMES } from "../../src/tui/commands/index.js";

const ROOT = join(import.meta.dirname, "..", "..");
const CLIENT = join(ROOT, "src", "client");

/** chat-tui's options, as src/tui/cli.tsx declares them to yargs (with their --no- forms). */
function tuiOptions(): string[] {
  const cli = readFileSync(join(ROOT, "src", "tui", "cli.tsx"), "utf8");
  const names = [...cli.matchAll(/\.option\("([a-z-]+)"/g)].map((m) => m[1]!);
  return [...names, ...names.map((n) => `no-${n}`)];
}

/**
 * The code of a source file without its comments (comments may name UI commands: they explain
 * who words what), line by line. What is left that could name a command is string text.
 */
function codeLines(file: string): Array<{ text: string; line: number }> {
  const text = readFileSync(file, "utf8")
    // Block comments, keeping their line breaks so line numbers stay true.
    .replace(/\/\*[\s\S]*?\*\//g, (c) => c.replace(/[^\n]/g, " "));
  // Line comments, of TypeScript and of the SQL inside strings ("-- " then words).
  return text.split("\n").map((l, i) => ({ text: l.replace(/(^|\s)\/\/.*$/, "").replace(/(^|\s)-- .*$/, ""), line: i + 1 }));
}

function uiTextIn(text: string, commands: readonly string[], options: readonly string[]): string | undefined {
  for (const c of commands) if (new RegExp(`(^|[\\s("'\`])/${c}\\b`).test(text)) return `/${c}`;
  for (const o of options) if (new RegExp(`(^|[^a-z-])--${o}\\b`).test(text)) return `--${o}`;
  if (/\bchat-tui\b/.test(text)) return "chat-tui";
  return undefined;
}

describe("the client's own strings", () => {
  const files = readdirSync(CLIENT).filter((f) => f.endsWith(".ts")).map((f) => join(CLIENT, f));
  const options = tuiOptions();

  it("the check finds what it looks for (the registry and the options are read)", () => {
    expect(COMMAND_NAMES).toEqual(expect.arrayContaining(["verify", "trust", "accept", "join", "msg"]));
    expect(options).toEqual(expect.arrayContaining(["server", "insecure-plaintext", "accept-relay-cert"]));
    expect(uiTextIn("compare with /verify bob", COMMAND_NAMES, options)).toBe("/verify");
    expect(uiTextIn("start it with --insecure-plaintext too", COMMAND_NAMES, options)).toBe("--insecure-plaintext");
    expect(uiTextIn("did you start chat-tui alice twice?", COMMAND_NAMES, options)).toBe("chat-tui");
    expect(uiTextIn("the relay refused this identity", COMMAND_NAMES, options)).toBeUndefined();
  });

  it("name no chat-tui command, option or program", () => {
    expect(files.length).toBeGreaterThan(10);
    const offending = files.flatMap((file) => codeLines(file).flatMap(({ text, line }) => {
      const hit = uiTextIn(text, COMMAND_NAMES, options);
      return hit === undefined ? [] : [`${file.slice(ROOT.length + 1)}:${line}: ${hit} in ${JSON.stringify(text)}`];
    }));
    expect(offending).toEqual([]);
  });
});
