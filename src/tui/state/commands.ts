// Parses one submitted input line into a command. Pure: no session, no state. Errors are one
// sentence for the user, with the usage or a hint.
import { checkRoomName, checkUsername } from "../../protocol/names.js";
import { LARGE_PASTE_BYTES, LARGE_PASTE_LINES } from "./paste.js";
import { NOTIFY_LEVELS, PRESENCE_FILTERS, checkHighlightWord, type NotifyLevel, type PresenceFilter } from "./settings.js";

export type Command =
  /** Plain text for the current conversation. */
  | { readonly kind: "say"; readonly text: string }
  | { readonly kind: "msg"; readonly user: string; readonly text: string }
  | { readonly kind: "me"; readonly action: string }
  | { readonly kind: "query"; readonly user: string }
  | { readonly kind: "switch"; readonly target: string }
  | { readonly kind: "lobby" }
  | { readonly kind: "close" }
  | { readonly kind: "users" }
  | { readonly kind: "help" }
  | { readonly kind: "fingerprint" }
  | { readonly kind: "verify"; readonly user: string }
  /** The digits the user compared: the groups /verify shows in its /trust command. */
  | { readonly kind: "trust"; readonly user: string; readonly groups: readonly string[] }
  /** Continue with a changed key without comparing (not verified). */
  | { readonly kind: "accept"; readonly user: string }
  | { readonly kind: "join"; readonly room: string }
  | { readonly kind: "leave"; readonly room?: string }
  | { readonly kind: "rooms" }
  | { readonly kind: "members"; readonly room?: string }
  /** `all`: every failed message of this conversation, oldest first (default: the newest one). */
  | { readonly kind: "retry"; readonly all?: boolean }
  | { readonly kind: "clear" }
  /** The messages of this conversation containing the text. */
  | { readonly kind: "search"; readonly text: string }
  /** Mouse wheel scrolling on or off; without an argument, toggles. */
  | { readonly kind: "mouse"; readonly on?: boolean }
  /** `text`: a goodbye sent to the lobby before leaving (end-to-end encrypted like any message). */
  | { readonly kind: "quit"; readonly text?: string }
  /** Connect now instead of after the backoff. */
  | { readonly kind: "reconnect" }
  /** Away with an automatic reply to DMs (`text`), or back (no text). */
  | { readonly kind: "away"; readonly text?: string }
  /** Set the room's topic, or show it (no text). */
  | { readonly kind: "topic"; readonly text?: string }
  /** Which presence lines this conversation shows, or show the setting (no argument). */
  | { readonly kind: "filter"; readonly filter?: PresenceFilter }
  /** How loud this conversation is, or show it (no argument). */
  | { readonly kind: "notify"; readonly level?: NotifyLevel }
  /** Mute this conversation (notify none), or unmute it when muted. */
  | { readonly kind: "mute" }
  /** List, add or remove extra words that count as mentions of me. */
  | { readonly kind: "highlight"; readonly op: "list" }
  | { readonly kind: "highlight"; readonly op: "add" | "remove"; readonly word: string }
  /** A blank line: nothing to do. */
  | { readonly kind: "nothing" };

/** A topic is one line of at most this many characters. */
export const MAX_TOPIC_CHARS = 300;

export type ParseResult = { readonly ok: true; readonly command: Command } | { readonly ok: false; readonly error: string };

export interface CommandHelp {
  readonly name: string;
  readonly usage: string;
  readonly summary: string;
}

/** Every command, in the order /help lists them. The parser accepts exactly these names. */
export const COMMANDS: readonly CommandHelp[] = [
  { name: "msg", usage: "/msg <user> <text>", summary: "send a private message and open the conversation with that user" },
  { name: "query", usage: "/query <user>", summary: "open the private conversation with a user (also /q)" },
  { name: "me", usage: "/me <action>", summary: "say what you are doing: * alice waves" },
  { name: "switch", usage: "/switch <name|number>", summary: "go to an open conversation: lobby, #room, @user or its number (also /win, /buffer)" },
  { name: "lobby", usage: "/lobby", summary: "go back to the lobby (everyone online)" },
  { name: "close", usage: "/close", summary: "close the current conversation (not the lobby; rooms stay joined; it stays closed after a restart until you reopen it or a message arrives; also /wc)" },
  { name: "users", usage: "/users", summary: "list known users, who is online and whom you have verified" },
  { name: "join", usage: "/join #room", summary: "join a room (it is created if nobody is in it; also /j)" },
  { name: "leave", usage: "/leave [#room]", summary: "leave a room (default: the current one; also /part)" },
  { name: "rooms", usage: "/rooms", summary: "list rooms" },
  { name: "members", usage: "/members [#room]", summary: "list the members of a room (default: the current one; also /names)" },
  { name: "topic", usage: "/topic [text]", summary: "set this room's topic (encrypted to its members, like a message), or show it" },
  { name: "fingerprint", usage: "/fingerprint", summary: "show your own key fingerprints" },
  { name: "verify", usage: "/verify <user>", summary: "show the safety number to compare with a user" },
  { name: "trust", usage: "/trust <user> <digits>", summary: "mark a user verified ✓: name the digits you compared (/verify shows the exact command); accepts a changed key" },
  { name: "accept", usage: "/accept <user>", summary: "continue with a user's changed key without comparing (NOT verified); shows held messages" },
  { name: "retry", usage: "/retry [all]", summary: "send your last failed message in this conversation again (also Alt-R); all: every failed one, in order" },
  { name: "search", usage: "/search <text>", summary: "find the text in every conversation and the whole kept history (the newest 20 hits, each with its conversation)" },
  { name: "clear", usage: "/clear", summary: "clear this conversation (screen and kept history)" },
  { name: "notify", usage: "/notify [all|mentions|none]", summary: "what counts as unread here and rings: every message, only DMs and mentions, or nothing" },
  { name: "mute", usage: "/mute", summary: "mute this conversation (/notify none); again to unmute" },
  { name: "highlight", usage: "/highlight [add|remove <word>]", summary: "extra words that count as mentions of you (kept on this machine); alone: list them" },
  { name: "filter", usage: "/filter [all|smart|none]", summary: "join/leave and online/offline lines here: all, only of people who spoke in the last 5 minutes (smart), or none" },
  { name: "away", usage: "/away [text]", summary: "away: a DM gets one automatic encrypted reply with the text per person; alone: back" },
  { name: "reconnect", usage: "/reconnect", summary: "connect to the relay now instead of waiting for the next retry" },
  { name: "mouse", usage: "/mouse [on|off]", summary: "scroll with the mouse wheel (off by default: while on, hold Shift to select text)" },
  { name: "help", usage: "/help", summary: "this list" },
  { name: "quit", usage: "/quit [text]", summary: "leave (also /exit); with text, first say goodbye in the lobby (* alice quit: text)" },
];

/** irssi and weechat names for the same commands. */
const ALIASES: Readonly<Record<string, string>> = {
  exit: "quit", j: "join", part: "leave", q: "query", names: "members", win: "switch", buffer: "switch", wc: "close",
};

/** Every name the parser accepts (for Tab completion). */
export const COMMAND_NAMES: readonly string[] = [...COMMANDS.map((c) => c.name), ...Object.keys(ALIASES)];

export interface KeyHelp {
  readonly keys: string;
  readonly summary: string;
}

/** Keys, for /help, grouped as it shows them. */
export const KEYS: readonly { readonly group: string; readonly keys: readonly KeyHelp[] }[] = [
  {
    group: "Typing",
    keys: [
      { keys: "Enter", summary: "send the line" },
      { keys: "Alt-Enter", summary: "new line inside the message (a pasted text keeps its lines and is sent as one message)" },
      { keys: "Tab / Shift-Tab", summary: "complete a command, user or room; press again for the next / previous match" },
      { keys: "Up / Down", summary: "earlier / later lines you sent in this conversation (in a multi-line message: move between its lines)" },
      { keys: "Left / Right", summary: "move by a character" },
      { keys: "Alt-B / Alt-F, Ctrl-Left / Ctrl-Right", summary: "move by a word" },
      { keys: "Home / End, Ctrl-A / Ctrl-E", summary: "start / end of the line (press again: of the whole message)" },
      { keys: "Backspace / Delete", summary: "delete before / under the cursor" },
      { keys: "Ctrl-W / Alt-D", summary: "delete the word before / after the cursor" },
      { keys: "Ctrl-U / Ctrl-K", summary: "delete everything before / after the cursor" },
      { keys: `a paste over ${LARGE_PASTE_LINES} lines or ${LARGE_PASTE_BYTES / 1024} KB`, summary: "asks first: y sends it, e puts it in the line to edit, n or Esc drops it" },
    ],
  },
  {
    group: "Reading",
    keys: [
      { keys: "PgUp / PgDn", summary: "scroll the conversation a page up / down (new messages do not move what you read)" },
      { keys: "Ctrl-Home / Ctrl-End", summary: "oldest / newest message (also Home / End with nothing typed, Alt-Home / Alt-End; Esc: newest)" },
      { keys: "Alt-J (or Alt-Shift-U)", summary: "up to the unread ruler, where you left this conversation" },
      { keys: "Ctrl-L", summary: "clear the terminal and draw the whole screen again" },
      { keys: "mouse wheel", summary: "scroll, after /mouse on" },
    ],
  },
  {
    group: "Conversations",
    keys: [
      { keys: "Alt-1 … Alt-9, Alt-0", summary: "go to conversation 1 … 9 of the bar at the top (Alt-0: the 10th)" },
      { keys: "Ctrl-N / Ctrl-P", summary: "next / previous conversation" },
      { keys: "Alt-A", summary: "next conversation with activity (mentions of you and DMs first)" },
      { keys: "Alt-U", summary: "show / hide the users sidebar (it hides by itself when the terminal is narrow)" },
      { keys: "Alt-R", summary: "send your last failed message here again (/retry)" },
      { keys: "Ctrl-C, or Ctrl-D on an empty line", summary: "leave" },
    ],
  },
];

/**
 * The help text, one line per command and key: "what — what it does". Not a padded table: the
 * key column would take half of an 80-column screen beside the sidebar, leaving each summary a
 * few words per row.
 */
export function helpLines(): string[] {
  return [
    "Commands (text without a leading / goes to the current conversation; start with // to send a line beginning with /):",
    ...COMMANDS.map((c) => `  ${c.usage} — ${c.summary}`),
    ...KEYS.flatMap((g) => [`Keys — ${g.group.toLowerCase()}:`, ...g.keys.map((k) => `  ${k.keys} — ${k.summary}`)]),
  ];
}

function usageOf(name: string): string {
  return COMMANDS.find((c) => c.name === name)?.usage ?? `/${name}`;
}

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
  const names = [...COMMANDS.map((c) => c.name), ...Object.keys(ALIASES)];
  const close = names
    .map((n) => ({ n, d: distance(name, n) }))
    .filter(({ n, d }) => d <= (n.length <= 3 ? 1 : 2))
    .sort((x, y) => x.d - y.d)[0];
  const hint = close ? `did you mean /${close.n}? ` : "";
  return `unknown command /${name}: ${hint}type /help for the list (start with // to send a line beginning with /)`;
}

/** A username argument: "@" allowed in front, case folded (usernames are lower-case). */
function userArg(raw: string, command: string): ParseResult | string {
  const user = raw.replace(/^@/, "").toLowerCase();
  const check = checkUsername(user);
  if (!check.ok) return { ok: false, error: `/${command}: '${raw}' is not a username (${check.reason})` };
  return user;
}

/** A room argument: the "#" may be left out ("/join ops"), case folded. */
function roomArg(raw: string, command: string): ParseResult | string {
  const room = (raw.startsWith("#") ? raw : `#${raw}`).toLowerCase();
  const check = checkRoomName(room);
  if (!check.ok) return { ok: false, error: `/${command}: '${raw}' is not a room name (${check.reason})` };
  return room;
}

const ok = (command: Command): ParseResult => ({ ok: true, command });
const usage = (name: string, what: string): ParseResult => ({ ok: false, error: `/${name} ${what} — usage: ${usageOf(name)}` });

/** Parses one line of input. */
export function parseInput(line: string): ParseResult {
  if (line.trim() === "") return ok({ kind: "nothing" });
  if (!line.startsWith("/")) return ok({ kind: "say", text: line });
  if (line.startsWith("//")) return ok({ kind: "say", text: line.slice(1) });

  const match = /^\/(\S*)(?:\s+([\s\S]*))?$/.exec(line);
  const word = (match?.[1] ?? "").toLowerCase();
  const rest = (match?.[2] ?? "").trim();
  if (word === "") return { ok: false, error: "a lone / is not a command: type /help for the list (start with // to send a line beginning with /)" };
  const name = ALIASES[word] ?? word;
  const args = rest === "" ? [] : rest.split(/\s+/);

  switch (name) {
    case "msg": {
      const m = /^(\S+)\s+([\s\S]*\S[\s\S]*)$/.exec(rest);
      if (rest === "") return usage(name, "needs a user and a message");
      if (!m) return usage(name, `needs a message for ${rest}`);
      const user = userArg(m[1] ?? "", name);
      return typeof user === "string" ? ok({ kind: "msg", user, text: m[2] ?? "" }) : user;
    }
    case "me":
      return rest === "" ? usage(name, "needs an action") : ok({ kind: "me", action: rest });
    case "search":
      return rest === "" ? usage(name, "needs the text to look for") : ok({ kind: "search", text: rest });
    case "trust": {
      if (args.length === 0) return usage(name, "needs a user and the digits you compared (/verify <user> shows the exact command)");
      const user = userArg(args[0] ?? "", name);
      if (typeof user !== "string") return user;
      const groups = args.slice(1);
      if (groups.length === 0) return usage(name, `needs the digits you compared: /verify ${user} shows the exact command`);
      if (!groups.every((g) => /^\d+$/.test(g))) return usage(name, "takes a user and groups of digits, as /verify shows them");
      return ok({ kind: "trust", user, groups });
    }
    case "query":
    case "verify":
    case "accept": {
      if (args.length !== 1) return usage(name, args.length === 0 ? "needs a user" : "takes one user");
      const user = userArg(args[0] ?? "", name);
      return typeof user === "string" ? ok({ kind: name, user }) : user;
    }
    case "switch":
      if (args.length !== 1) return usage(name, args.length === 0 ? "needs a conversation" : "takes one conversation");
      return ok({ kind: "switch", target: (args[0] ?? "").toLowerCase() });
    case "join": {
      if (args.length !== 1) return usage(name, args.length === 0 ? "needs a room" : "takes one room");
      const room = roomArg(args[0] ?? "", name);
      return typeof room === "string" ? ok({ kind: "join", room }) : room;
    }
    case "leave":
    case "members": {
      if (args.length > 1) return usage(name, "takes at most one room");
      if (args.length === 0) return ok({ kind: name });
      const room = roomArg(args[0] ?? "", name);
      return typeof room === "string" ? ok({ kind: name, room }) : room;
    }
    case "mouse": {
      if (args.length > 1) return usage(name, "takes on or off");
      const arg = args[0]?.toLowerCase();
      if (arg === undefined) return ok({ kind: "mouse" });
      if (arg === "on" || arg === "off") return ok({ kind: "mouse", on: arg === "on" });
      return usage(name, `takes on or off, not '${args[0] ?? ""}'`);
    }
    case "retry":
      if (args.length === 1 && args[0]?.toLowerCase() === "all") return ok({ kind: "retry", all: true });
      return args.length === 0 ? ok({ kind: "retry" }) : usage(name, `takes nothing or all, not '${args.join(" ")}'`);
    case "quit":
      return ok(rest === "" ? { kind: "quit" } : { kind: "quit", text: rest });
    case "away":
      return ok(rest === "" ? { kind: "away" } : { kind: "away", text: rest });
    case "topic":
      if (rest === "") return ok({ kind: "topic" });
      if (rest.includes("\n")) return usage(name, "takes one line");
      if ([...rest].length > MAX_TOPIC_CHARS) return usage(name, `takes at most ${MAX_TOPIC_CHARS} characters`);
      return ok({ kind: "topic", text: rest });
    case "filter":
    case "notify": {
      if (args.length > 1) return usage(name, "takes one setting");
      const arg = args[0]?.toLowerCase();
      const allowed: readonly string[] = name === "filter" ? PRESENCE_FILTERS : NOTIFY_LEVELS;
      if (arg === undefined) return ok({ kind: name });
      if (!allowed.includes(arg)) return usage(name, `takes ${allowed.join(", ")}, not '${args[0] ?? ""}'`);
      return ok(name === "filter" ? { kind: "filter", filter: arg as PresenceFilter } : { kind: "notify", level: arg as NotifyLevel });
    }
    case "highlight": {
      const op = args[0]?.toLowerCase();
      if (op === undefined) return ok({ kind: "highlight", op: "list" });
      if (op !== "add" && op !== "remove") return usage(name, `takes add or remove, not '${args[0] ?? ""}'`);
      if (args.length !== 2) return usage(name, args.length === 1 ? `${op} needs a word` : "takes one word (no spaces)");
      const checked = checkHighlightWord(args[1] ?? "");
      if (!checked.ok) return usage(name, checked.reason);
      return ok({ kind: "highlight", op, word: checked.word });
    }
    case "lobby":
    case "close":
    case "users":
    case "help":
    case "fingerprint":
    case "rooms":
    case "clear":
    case "reconnect":
    case "mute":
      return args.length === 0 ? ok({ kind: name }) : usage(name, "takes no arguments");
    default:
      return { ok: false, error: unknownCommand(word) };
  }
}
