// What one slash command is: its names and help (for /help and "did you mean"), what Tab completes
// as its first argument, how its arguments parse, and what it does. One file per command
// (src/tui/commands/<name>.ts) fills this in; src/tui/commands/index.ts lists them.
//
// Layering: src/tui/state imports the registry (to parse and complete), so a command file imports
// nothing of the view, components, hooks, Ink or React (checked by npm run lint). What `run` needs
// of the session and the screen comes in its RunContext, built by src/tui/controller/execute-command.ts.
import { checkRoomName, checkUsername } from "../../protocol/names.js";
import type { ChatSession, Outcome, PeerView } from "../../client/types.js";
import type { Logger } from "../../protocol/log.js";
import type { Action } from "../state/reducer.js";
import type { TuiState } from "../state/state.js";

/** What a command parses to: its kind is its name ("msg" for /msg). */
export interface CommandBase {
  readonly kind: string;
}

export type ParseResult<C> = { readonly ok: true; readonly command: C } | { readonly ok: false; readonly error: string };
export type ParseFailure = { readonly ok: false; readonly error: string };

/** A command line split for a command's parser. */
export interface ParseInput {
  /** Everything after the command word, trimmed ("" when nothing). */
  readonly rest: string;
  /** `rest` split on whitespace ([] when nothing). */
  readonly args: readonly string[];
  /** "/name <what> — usage: <usage>": the error for a line this command cannot take. */
  readonly usage: (what: string) => ParseFailure;
}

/**
 * What the input line should do after a command: clear, or keep the text when a message the
 * user wrote was not sent (so it is not lost and can be fixed or sent again).
 */
export type InputFate = "clear" | "keep";

/** What executeCommand is given: the session, the state and how to act on it. */
export interface CommandContext {
  readonly session: ChatSession;
  /** The state when the line was submitted. */
  readonly state: TuiState;
  readonly dispatch: (action: Action) => void;
  readonly now: () => number;
  readonly logger: Logger;
  /** Leaves the app (closes the session, restores the terminal). */
  readonly quit: () => void;
}

/** What a command may use when it runs (built per command by executeCommand). */
export interface RunContext extends CommandContext {
  /** The conversation the command was typed in. */
  readonly here: string;
  /** A notice line, in `here` unless another conversation is named. */
  readonly say: (level: "info" | "warn" | "error", text: string, conversationId?: string) => void;
  /** Runs an async session call; its answer (or failure) lands where the command was typed. */
  readonly later: <T>(what: string, run: () => Promise<Outcome<T>>, done: (value: T) => void) => void;
  /** Sends a line to a conversation; "keep" when the session refused it (the error is shown). */
  readonly send: (conversationId: string, text: string, kind: "text" | "action" | "topic") => InputFate;
  /** The current conversation when it is a room. */
  readonly currentRoom: () => string | undefined;
  /** What /help shows (the commands of the registry and the keys of the keymap). */
  readonly helpLines: () => string[];
  /** From the view, passed in (a command file does not import the view): "2026-11-25 14:02". */
  readonly formatStamp: (ms: number) => string;
  /** From the view, passed in: peers in the sidebar's order. */
  readonly sortPeers: (peers: readonly PeerView[]) => PeerView[];
}

/**
 * What Tab completes as a command's first argument ("member": the current room's members but me);
 * "users": every argument is a user (the ones not typed yet), or a room once it starts with "#".
 */
export type CompletionKind = "user" | "users" | "member" | "room" | "conversation";

export interface CommandSpec<C extends CommandBase> {
  /** The name after the "/", which is also the parsed command's kind. */
  readonly name: C["kind"];
  /** Other names for it (irssi's and weechat's), resolved before parsing. */
  readonly aliases?: readonly string[];
  /** As /help shows it: "/msg <user> <text>". */
  readonly usage: string;
  /** One line for /help. */
  readonly summary: string;
  readonly completes?: CompletionKind;
  parse(input: ParseInput): ParseResult<C>;
  /** Carries the command out; never throws (failures become error lines). */
  run(command: C, ctx: RunContext): InputFate;
}

export const ok = <C>(command: C): { readonly ok: true; readonly command: C } => ({ ok: true, command });

/** A username argument: "@" allowed in front, case folded (usernames are lower-case). */
export function userArg(raw: string, command: string): ParseFailure | string {
  const user = raw.replace(/^@/, "").toLowerCase();
  const check = checkUsername(user);
  if (!check.ok) return { ok: false, error: `/${command}: '${raw}' is not a username (${check.reason})` };
  return user;
}

/** A room argument: the "#" may be left out ("/join ops"), case folded. */
export function roomArg(raw: string, command: string): ParseFailure | string {
  const room = (raw.startsWith("#") ? raw : `#${raw}`).toLowerCase();
  const check = checkRoomName(room);
  if (!check.ok) return { ok: false, error: `/${command}: '${raw}' is not a room name (${check.reason})` };
  return room;
}

/** The parser of a command that takes no arguments. */
export function noArguments<C extends CommandBase>(command: C): (input: ParseInput) => ParseResult<C> {
  return ({ args, usage }) => (args.length === 0 ? ok(command) : usage("takes no arguments"));
}

/** Exactly one user (/query, /verify, /accept). */
export function oneUser<K extends string>(kind: K, { args, usage }: ParseInput): ParseResult<{ readonly kind: K; readonly user: string }> {
  if (args.length !== 1) return usage(args.length === 0 ? "needs a user" : "takes one user");
  const user = userArg(args[0] ?? "", kind);
  return typeof user === "string" ? ok({ kind, user }) : user;
}

/** At most one room (/leave, /members; none: the current one). */
export function optionalRoom<K extends string>(kind: K, { args, usage }: ParseInput): ParseResult<{ readonly kind: K; readonly room?: string }> {
  if (args.length > 1) return usage("takes at most one room");
  if (args.length === 0) return ok({ kind });
  const room = roomArg(args[0] ?? "", kind);
  return typeof room === "string" ? ok({ kind, room }) : room;
}

/** A user, then at most one room (/kick, /invite; no room: the current one). */
export function userAndOptionalRoom<K extends string>(
  kind: K, { args, usage }: ParseInput,
): ParseResult<{ readonly kind: K; readonly user: string; readonly room?: string }> {
  if (args.length === 0) return usage("needs a user");
  if (args.length > 2) return usage("takes a user and at most one room");
  const user = userArg(args[0] ?? "", kind);
  if (typeof user !== "string") return user;
  if (args.length === 1) return ok({ kind, user });
  const room = roomArg(args[1] ?? "", kind);
  return typeof room === "string" ? ok({ kind, user, room }) : room;
}
