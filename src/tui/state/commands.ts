// Parses one submitted input line into a command. Pure: no session, no state. Errors are one
// sentence for the user, with the usage or a hint. Each slash command's own arguments are parsed
// by its file in src/tui/commands/ (listed in src/tui/commands/index.ts); this file splits the
// line, resolves aliases and explains unknown commands.
import { COMMAND_NAMES, commandNamed, type SlashCommand } from "../commands/index.js";

export { COMMAND_NAMES } from "../commands/index.js";

export type Command =
  /** Plain text for the current conversation. */
  | { readonly kind: "say"; readonly text: string }
  /** A blank line: nothing to do. */
  | { readonly kind: "nothing" }
  /** A slash command: see its file in src/tui/commands/. */
  | SlashCommand;

export type ParseResult = { readonly ok: true; readonly command: Command } | { readonly ok: false; readonly error: string };

/** Edit distance with adjacent transpositions ("mgs" is one step from "msg"), for "did you mean". */
function distance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  const at = (i: number, j: number): number => d[i]?.[j] ?? Number.POSITIVE_INFINITY;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, at(i - 2, j - 2) + 1);
      const row = d[i];
      if (row) row[j] = best;
    }
  }
  return at(a.length, b.length);
}

function unknownCommand(name: string): string {
  const close = COMMAND_NAMES
    .map((n) => ({ n, d: distance(name, n) }))
    .filter(({ n, d }) => d <= (n.length <= 3 ? 1 : 2))
    .sort((x, y) => x.d - y.d)[0];
  const hint = close ? `did you mean /${close.n}? ` : "";
  return `unknown command /${name}: ${hint}type /help for the list (start with // to send a line beginning with /)`;
}

const ok = (command: Command): ParseResult => ({ ok: true, command });

/** Parses one line of input. */
export function parseInput(line: string): ParseResult {
  if (line.trim() === "") return ok({ kind: "nothing" });
  if (!line.startsWith("/")) return ok({ kind: "say", text: line });
  if (line.startsWith("//")) return ok({ kind: "say", text: line.slice(1) });

  const match = /^\/(\S*)(?:\s+([\s\S]*))?$/.exec(line);
  const word = (match?.[1] ?? "").toLowerCase();
  const rest = (match?.[2] ?? "").trim();
  if (word === "") return { ok: false, error: "a lone / is not a command: type /help for the list (start with // to send a line beginning with /)" };
  const spec = commandNamed(word);
  if (spec === undefined) return { ok: false, error: unknownCommand(word) };
  const args = rest === "" ? [] : rest.split(/\s+/);
  return spec.parse({ rest, args, usage: (what) => ({ ok: false, error: `/${spec.name} ${what} — usage: ${spec.usage}` }) });
}
