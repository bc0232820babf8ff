// /mute: mute this conversation (/notify none), or unmute it when muted.
import { noArguments, type CommandSpec } from "./command.js";
import { setNotify } from "./notify.js";

/** Mute this conversation (notify none), or unmute it when muted. */
export type MuteCommand = { readonly kind: "mute" };

export const mute: CommandSpec<MuteCommand> = {
  name: "mute",
  usage: "/mute",
  summary: "mute this conversation (/notify none); again to unmute",
  parse: noArguments({ kind: "mute" }),
  run: (_command, ctx) => setNotify(ctx, (current) => (current === "none" ? "all" : "none")),
};
