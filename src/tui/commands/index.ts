// The registry of slash commands: one line per command, in the order /help lists them. The parser
// (src/tui/state/commands.ts), Tab completion (src/tui/state/completion.ts), /help
// (help-lines.ts) and executeCommand (src/tui/controller/execute-command.ts) all read this list.
// To add a command: write src/tui/commands/<name>.ts (a CommandSpec) and add it here.
import type { CommandBase, CommandSpec, CompletionKind } from "./command.js";
import { accept } from "./accept.js";
import { away } from "./away.js";
import { clear } from "./clear.js";
import { devices } from "./devices.js";
import { close } from "./close.js";
import { filter } from "./filter.js";
import { fingerprint } from "./fingerprint.js";
import { help } from "./help.js";
import { invite } from "./invite.js";
import { highlight } from "./highlight.js";
import { join } from "./join.js";
import { kick } from "./kick.js";
import { leave } from "./leave.js";
import { lobby } from "./lobby.js";
import { me } from "./me.js";
import { members } from "./members.js";
import { mouse } from "./mouse.js";
import { msg } from "./msg.js";
import { mute } from "./mute.js";
import { notify } from "./notify.js";
import { query } from "./query.js";
import { quit } from "./quit.js";
import { reconnect } from "./reconnect.js";
import { retry } from "./retry.js";
import { rooms } from "./rooms.js";
import { search } from "./search.js";
import { switchCommand } from "./switch.js";
import { topic } from "./topic.js";
import { trust } from "./trust.js";
import { unlink } from "./unlink.js";
import { users } from "./users.js";
import { verify } from "./verify.js";

const REGISTRY = [
  msg,
  query,
  me,
  switchCommand,
  lobby,
  close,
  users,
  join,
  leave,
  invite,
  kick,
  rooms,
  members,
  topic,
  fingerprint,
  devices,
  unlink,
  verify,
  trust,
  accept,
  retry,
  search,
  clear,
  notify,
  mute,
  highlight,
  filter,
  away,
  reconnect,
  mouse,
  help,
  quit,
] as const;

type CommandOf<S> = S extends CommandSpec<infer C extends CommandBase> ? C : never;

/** What a slash command parses to, derived from the registry. */
export type SlashCommand = CommandOf<(typeof REGISTRY)[number]>;

/** Every command, in the order /help lists them. The parser accepts exactly these names and their aliases. */
export const COMMANDS: readonly CommandSpec<SlashCommand>[] = REGISTRY;

const BY_NAME: ReadonlyMap<string, CommandSpec<SlashCommand>> = new Map(
  COMMANDS.flatMap((c) => [[c.name, c] as const, ...(c.aliases ?? []).map((a) => [a, c] as const)]),
);

/** Every name the parser accepts, commands then aliases (for Tab completion and "did you mean"). */
export const COMMAND_NAMES: readonly string[] = [...COMMANDS.map((c) => c.name), ...COMMANDS.flatMap((c) => c.aliases ?? [])];

/** The command a name or an alias stands for ("exit" → /quit), lower-case. */
export function commandNamed(word: string): CommandSpec<SlashCommand> | undefined {
  return BY_NAME.get(word);
}

/** The command that parsed to this kind. */
export function commandOf(command: SlashCommand): CommandSpec<SlashCommand> {
  const spec = BY_NAME.get(command.kind);
  if (spec === undefined) throw new Error(`no command /${command.kind} in the registry`);
  return spec;
}

/**
 * What Tab completes as the first argument of `/name`. Looked up by the command's own name only,
 * as before the registry: aliases ("/q b", "/j o") complete nothing yet.
 */
export function completionOf(name: string): CompletionKind | undefined {
  return COMMANDS.find((c) => c.name === name)?.completes;
}
