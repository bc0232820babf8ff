// /away [text]: away, with one automatic encrypted reply per person to DMs; alone: back.
import { ok, type CommandSpec } from "./command.js";

/** Away with an automatic reply to DMs (`text`), or back (no text). */
export type AwayCommand = { readonly kind: "away"; readonly text?: string };

export const away: CommandSpec<AwayCommand> = {
  name: "away",
  usage: "/away [text]",
  summary: "away: a DM gets one automatic encrypted reply with the text per person; alone: back",
  parse: ({ rest }) => ok(rest === "" ? { kind: "away" } : { kind: "away", text: rest }),
  run(command, { session, dispatch, say }) {
    session.setAway?.(command.text);
    dispatch(command.text === undefined ? { type: "set-away" } : { type: "set-away", text: command.text });
    say("info", command.text === undefined
      ? "you are back: DMs no longer get an automatic reply"
      : `you are away: the first DM from each person gets one automatic reply "${command.text}", encrypted like any message (the relay sees only that a message was sent); /away alone: back`);
    return "clear";
  },
};
