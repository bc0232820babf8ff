// /help: every command of the registry and every key of the keymap (see help-lines.ts).
import { noArguments, type CommandSpec } from "./command.js";

export type HelpCommand = { readonly kind: "help" };

export const help: CommandSpec<HelpCommand> = {
  name: "help",
  usage: "/help",
  summary: "this list",
  parse: noArguments({ kind: "help" }),
  run(_command, { say, helpLines }) {
    say("info", helpLines().join("\n"));
    return "clear";
  },
};
