// /highlight [add|remove <word>]: extra words that count as mentions of me; alone: list them.
import { MAX_HIGHLIGHTS, checkHighlightWord } from "../state/settings.js";
import { ok, type CommandSpec } from "./command.js";

/** List, add or remove extra words that count as mentions of me. */
export type HighlightCommand =
  | { readonly kind: "highlight"; readonly op: "list" }
  | { readonly kind: "highlight"; readonly op: "add" | "remove"; readonly word: string };

export const highlight: CommandSpec<HighlightCommand> = {
  name: "highlight",
  usage: "/highlight [add|remove <word>]",
  summary: "extra words that count as mentions of you (kept on this machine); alone: list them",
  parse({ args, usage }) {
    const op = args[0]?.toLowerCase();
    if (op === undefined) return ok({ kind: "highlight", op: "list" });
    if (op !== "add" && op !== "remove") return usage(`takes add or remove, not '${args[0] ?? ""}'`);
    if (args.length !== 2) return usage(args.length === 1 ? `${op} needs a word` : "takes one word (no spaces)");
    const checked = checkHighlightWord(args[1] ?? "");
    if (!checked.ok) return usage(checked.reason);
    return ok({ kind: "highlight", op, word: checked.word });
  },
  run(command, { state, dispatch, say }) {
    const words = state.settings.highlights;
    if (command.op === "list") {
      say("info", words.length === 0
        ? "no highlight words: your name is always one; /highlight add <word> adds another"
        : `highlight words (besides your name): ${words.join(", ")}`);
      return "clear";
    }
    if (command.op === "add") {
      if (words.includes(command.word)) say("info", `'${command.word}' is already a highlight word`);
      else if (words.length >= MAX_HIGHLIGHTS) say("error", `at most ${MAX_HIGHLIGHTS} highlight words: /highlight remove one first`);
      else {
        dispatch({ type: "highlight", op: "add", word: command.word });
        say("info", `'${command.word}' now counts as a mention of you`);
      }
      return "clear";
    }
    if (!words.includes(command.word)) say("error", `'${command.word}' is not a highlight word (/highlight lists them)`);
    else {
      dispatch({ type: "highlight", op: "remove", word: command.word });
      say("info", `'${command.word}' is no longer a highlight word`);
    }
    return "clear";
  },
};
