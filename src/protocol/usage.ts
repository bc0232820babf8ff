// yargs' usage messages turned into one sentence naming the option, the form both bins print
// before exiting with status 2 (a bad invocation). Pure: the arguments are passed in.

/** "Unknown argument: bogus" -> "unknown option --bogus"; other messages lower-cased, one line. */
export function usageSentence(msg: string, argv: readonly string[], missingPositional = "a required argument is missing"): string {
  const unknown = /^Unknown arguments?: (.*)$/s.exec(msg.trim());
  if (unknown) {
    const names = unknown[1]!.split(", ").map((a) => {
      const flag = a.length === 1 ? `-${a}` : `--${a}`;
      return argv.some((x) => x === flag || x.startsWith(`${flag}=`)) ? `option ${flag}` : `argument '${a}'`;
    });
    return `unknown ${names.join(", ")}`;
  }
  const choice = /^Invalid values?:\s*Argument: ([\w-]+), Given: (.*), Choices: (.*)$/s.exec(msg.trim());
  if (choice) return `--${choice[1]} must be one of ${choice[3]!.replace(/"/g, "")}, not ${choice[2]}`;
  if (/^Not enough non-option arguments/.test(msg.trim())) return missingPositional;
  const needsValue = /^Not enough arguments following: ([\w-]+)$/.exec(msg.trim());
  if (needsValue) return `--${needsValue[1]} needs a value`;
  return msg.replace(/\s+/g, " ").trim().replace(/^./, (c) => c.toLowerCase()).replace(/\.$/, "");
}
