// Tab completion: what the word before the cursor could become. Commands at the start of the
// line; usernames, rooms and conversations where a command takes one; elsewhere nicks (people
// who spoke here recently first), "#rooms" and "@users". Pure: the reducer applies and cycles.
import { completionOf } from "../commands/index.js";
import type { InputBuffer } from "./input-buffer.js";

export interface CompletionSources {
  /** Command names without the "/". */
  readonly commands: readonly string[];
  /** Everyone known except me. */
  readonly users: readonly string[];
  /** The members of the current room except me (none outside a room). */
  readonly members?: readonly string[];
  /** People who spoke in this conversation, most recent first (they come first for nicks). */
  readonly recentSpeakers: readonly string[];
  /** "#room" names I know of. */
  readonly rooms: readonly string[];
  /** Titles of the open conversations ("lobby", "#ops", "@bob"), for /switch. */
  readonly conversations: readonly string[];
}

export interface CompletionMatch {
  /** Where the word being completed starts (it ends at the cursor). */
  readonly start: number;
  readonly candidates: readonly string[];
  readonly suffix: string;
}

function matching(prefix: string, options: readonly string[]): string[] {
  const p = prefix.toLowerCase();
  const seen = new Set<string>();
  const out: string[] = [];
  for (const o of options) {
    if (o.toLowerCase().startsWith(p) && !seen.has(o)) {
      seen.add(o);
      out.push(o);
    }
  }
  return out;
}

const sorted = (xs: readonly string[]): string[] => [...xs].sort();

/** The completions for the word before the cursor, or undefined when there is nothing to offer. */
export function findCompletions(input: InputBuffer, sources: CompletionSources): CompletionMatch | undefined {
  const before = input.text.slice(0, input.cursor);
  const start = Math.max(before.lastIndexOf(" "), before.lastIndexOf("\n"), before.lastIndexOf("\t")) + 1;
  const word = before.slice(start);
  const found = (candidates: string[], suffix: string): CompletionMatch | undefined =>
    candidates.length === 0 ? undefined : { start, candidates, suffix };

  // The command name itself.
  if (start === 0 && word.startsWith("/") && !word.startsWith("//")) {
    return found(matching(word.slice(1), sorted(sources.commands)).map((c) => `/${c}`), " ");
  }
  // The first argument of a command that takes a user, a room or a conversation (each command's
  // file says which: `completes`).
  const command = /^\/(\S+) +$/.exec(before.slice(0, start))?.[1]?.toLowerCase();
  const argument = command === undefined ? undefined : completionOf(command);
  // Every argument of a command that takes several users (/invite a b c [#room]).
  const listed = /^\/(\S+) +(\S+ +)*$/.exec(before.slice(0, start));
  if (listed !== null && completionOf(listed[1]?.toLowerCase() ?? "") === "users") {
    if (word.startsWith("#")) return found(matching(word, sorted(sources.rooms)), " ");
    const typed = new Set(before.slice(0, start).split(/\s+/).slice(1).map((w) => w.replace(/^@/, "").toLowerCase()));
    return found(matching(word.replace(/^@/, ""), [...sources.recentSpeakers, ...sorted(sources.users)]).filter((u) => !typed.has(u.toLowerCase())), " ");
  }
  if (argument === "user") {
    return found(matching(word.replace(/^@/, ""), [...sources.recentSpeakers, ...sorted(sources.users)]), " ");
  }
  if (argument === "member") {
    const members = sources.members ?? [];
    return found(matching(word.replace(/^@/, ""), [...sources.recentSpeakers.filter((s) => members.includes(s)), ...sorted(members)]), " ");
  }
  if (argument === "room") {
    const bare = word.startsWith("#") ? word : `#${word}`;
    return found(matching(bare, sorted(sources.rooms)), " ");
  }
  if (argument === "conversation") {
    return found(matching(word, sources.conversations), " ");
  }
  if (word === "") return undefined;
  if (word.startsWith("#")) return found(matching(word, sorted(sources.rooms)), " ");
  if (word.startsWith("@")) {
    return found(matching(word.slice(1), [...sources.recentSpeakers, ...sorted(sources.users)]).map((u) => `@${u}`), " ");
  }
  // A nick in plain text: "bob: " at the start of the line, as chat clients address people.
  return found(matching(word, [...sources.recentSpeakers, ...sorted(sources.users)]), start === 0 ? ": " : " ");
}

/** The input with the completed word replaced by candidate `index` (the cursor after it). */
export function applyCompletion(input: InputBuffer, start: number, replacedEnd: number, candidate: string, suffix: string): InputBuffer {
  const rest = input.text.slice(replacedEnd);
  // No doubled space when the cursor already sits before one.
  const tail = rest.startsWith(" ") ? suffix.trimEnd() : suffix;
  const inserted = candidate + tail;
  return { text: input.text.slice(0, start) + inserted + rest, cursor: start + inserted.length };
}
