// /me <action>: "* alice waves" in the current conversation.
import { ok, type CommandSpec } from "./command.js";

export type MeCommand = { readonly kind: "me"; readonly action: string };

export const me: CommandSpec<MeCommand> = {
  name: "me",
  usage: "/me <action>",
  summary: "say what you are doing: * alice waves",
  parse: ({ rest, usage }) => (rest === "" ? usage("needs an action") : ok({ kind: "me", action: rest })),
  run: (command, { here, send }) => send(here, command.action, "action"),
};
