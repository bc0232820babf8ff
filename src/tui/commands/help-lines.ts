// What /help shows: every command of the registry, then every key of the keymap.
import { KEYMAP } from "../input/keymap.js";
import { COMMANDS } from "./index.js";

/**
 * The help text, one line per command and key: "what — what it does". Not a padded table: the
 * key column would take half of an 80-column screen beside the sidebar, leaving each summary a
 * few words per row.
 */
export function helpLines(): string[] {
  return [
    "Commands (text without a leading / goes to the current conversation; start with // to send a line beginning with /):",
    ...COMMANDS.map((c) => `  ${c.usage} — ${c.summary}`),
    ...KEYMAP.flatMap((g) => [`Keys — ${g.group.toLowerCase()}:`, ...g.keys.map((k) => `  ${k.keys} — ${k.summary}`)]),
  ];
}
