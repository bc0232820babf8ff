import { describe, expect, test } from "vitest";
import { helpLines } from "../../src/tui/commands/help-lines.js";
import { COMMANDS } from "../../src/tui/commands/index.js";
import { KEYMAP as KEYS } from "../../src/tui/input/keymap.js";
import { parseInput, type Command } from "../../src/tui/state/commands.js";

function command(line: string): Command {
  const r = parseInput(line);
  if (!r.ok) throw new Error(`expected ${JSON.stringify(line)} to parse, got: ${r.error}`);
  return r.command;
}

function error(line: string): string {
  const r = parseInput(line);
  if (r.ok) throw new Error(`expected ${JSON.stringify(line)} to fail, got ${JSON.stringify(r.command)}`);
  return r.error;
}

describe("plain text", () => {
  test("goes to the current conversation as typed", () => {
    expect(command("hello there")).toEqual({ kind: "say", text: "hello there" });
    expect(command("  indented\tand\ttabbed  ")).toEqual({ kind: "say", text: "  indented\tand\ttabbed  " });
    expect(command("line one\nline two")).toEqual({ kind: "say", text: "line one\nline two" });
  });

  test("a blank line does nothing", () => {
    expect(command("")).toEqual({ kind: "nothing" });
    expect(command("   \t ")).toEqual({ kind: "nothing" });
  });

  test("// sends a line that starts with /", () => {
    expect(command("//usr/bin is a directory")).toEqual({ kind: "say", text: "/usr/bin is a directory" });
  });
});

describe("/msg", () => {
  test("takes a user and the rest of the line, inner spacing and newlines kept", () => {
    expect(command("/msg bob hi there")).toEqual({ kind: "msg", user: "bob", text: "hi there" });
    expect(command("/msg bob  two  spaces")).toEqual({ kind: "msg", user: "bob", text: "two  spaces" });
    expect(command("/msg bob first\nsecond")).toEqual({ kind: "msg", user: "bob", text: "first\nsecond" });
  });

  test("accepts @user and folds case (usernames are lower-case)", () => {
    expect(command("/msg @Bob hi")).toEqual({ kind: "msg", user: "bob", text: "hi" });
    expect(command("/MSG bob hi")).toEqual({ kind: "msg", user: "bob", text: "hi" });
  });

  test("without a user or text is a usage error", () => {
    expect(error("/msg")).toBe("/msg needs a user and a message — usage: /msg <user> <text>");
    expect(error("/msg bob")).toBe("/msg needs a message for bob — usage: /msg <user> <text>");
    expect(error("/msg bob    ")).toContain("usage: /msg <user> <text>");
  });

  test("refuses a name that cannot be a user", () => {
    expect(error("/msg ../etc hi")).toMatch(/^\/msg: '\.\.\/etc' is not a username/);
    expect(error("/msg system hi")).toContain("reserved");
  });
});

describe("commands with one user", () => {
  test.each(["query", "verify", "accept"] as const)("/%s <user>", (name) => {
    expect(command(`/${name} bob`)).toEqual({ kind: name, user: "bob" });
    expect(command(`/${name} @carol`)).toEqual({ kind: name, user: "carol" });
    expect(error(`/${name}`)).toBe(`/${name} needs a user — usage: /${name} <user>`);
    expect(error(`/${name} bob carol`)).toBe(`/${name} takes one user — usage: /${name} <user>`);
    expect(error(`/${name} b@d!`)).toContain("is not a username");
  });
});

describe("/trust names what it accepts (issue 9 §3)", () => {
  test("takes a user and the digits compared, as /verify shows them", () => {
    expect(command("/trust bob 15934 19362 71065")).toEqual({ kind: "trust", user: "bob", groups: ["15934", "19362", "71065"] });
    expect(command("/trust @carol 15934 19362 71065 04117")).toEqual({ kind: "trust", user: "carol", groups: ["15934", "19362", "71065", "04117"] });
  });

  test("without digits it is refused with the way to get them", () => {
    expect(error("/trust")).toBe("/trust needs a user and the digits you compared (/verify <user> shows the exact command) — usage: /trust <user> <digits>");
    expect(error("/trust bob")).toBe("/trust needs the digits you compared: /verify bob shows the exact command — usage: /trust <user> <digits>");
    expect(error("/trust bob yes")).toContain("takes a user and groups of digits");
    expect(error("/trust b@d! 12345")).toContain("is not a username");
  });
});

describe("rooms", () => {
  test("/join takes one room; the # may be left out", () => {
    expect(command("/join #ops")).toEqual({ kind: "join", room: "#ops" });
    expect(command("/join ops")).toEqual({ kind: "join", room: "#ops" });
    expect(command("/join #OPS")).toEqual({ kind: "join", room: "#ops" });
    expect(error("/join")).toBe("/join needs a room — usage: /join #room");
    expect(error("/join #a #b")).toBe("/join takes one room — usage: /join #room");
    expect(error("/join #bad/name")).toMatch(/^\/join: '#bad\/name' is not a room name/);
  });

  test("/leave and /members take an optional room", () => {
    expect(command("/leave")).toEqual({ kind: "leave" });
    expect(command("/leave #ops")).toEqual({ kind: "leave", room: "#ops" });
    expect(command("/members")).toEqual({ kind: "members" });
    expect(command("/members ops")).toEqual({ kind: "members", room: "#ops" });
    expect(error("/leave #a #b")).toBe("/leave takes at most one room — usage: /leave [#room]");
    expect(error("/members #a #b")).toBe("/members takes at most one room — usage: /members [#room]");
  });

  test("/rooms takes nothing", () => {
    expect(command("/rooms")).toEqual({ kind: "rooms" });
    expect(error("/rooms all")).toBe("/rooms takes no arguments — usage: /rooms");
  });
});

describe("other commands", () => {
  test("/me takes an action", () => {
    expect(command("/me waves at everyone")).toEqual({ kind: "me", action: "waves at everyone" });
    expect(error("/me")).toBe("/me needs an action — usage: /me <action>");
  });

  test("/switch takes a name or a number", () => {
    expect(command("/switch 2")).toEqual({ kind: "switch", target: "2" });
    expect(command("/switch @Bob")).toEqual({ kind: "switch", target: "@bob" });
    expect(error("/switch")).toBe("/switch needs a conversation — usage: /switch <name|number>");
  });

  test.each(["lobby", "close", "users", "help", "fingerprint", "reconnect", "mute"] as const)("/%s takes no arguments", (name) => {
    expect(command(`/${name}`)).toEqual({ kind: name });
    expect(error(`/${name} please`)).toBe(`/${name} takes no arguments — usage: ${COMMANDS.find((c) => c.name === name)?.usage}`);
  });

  test("/retry takes nothing (the newest failure) or all", () => {
    expect(command("/retry")).toEqual({ kind: "retry" });
    expect(command("/retry all")).toEqual({ kind: "retry", all: true });
    expect(command("/retry ALL")).toEqual({ kind: "retry", all: true });
    expect(error("/retry please")).toBe("/retry takes nothing or all, not 'please' — usage: /retry [all]");
  });

  test("/exit is /quit; /quit and /away take an optional text", () => {
    expect(command("/exit")).toEqual({ kind: "quit" });
    expect(command("/quit  off to lunch ")).toEqual({ kind: "quit", text: "off to lunch" });
    expect(command("/away")).toEqual({ kind: "away" });
    expect(command("/away in a meeting")).toEqual({ kind: "away", text: "in a meeting" });
  });
});

describe("unknown commands", () => {
  test("say so, with a hint", () => {
    expect(error("/frobnicate")).toBe(
      "unknown command /frobnicate: type /help for the list (start with // to send a line beginning with /)",
    );
  });

  test("suggest a close match", () => {
    expect(error("/mgs bob hi")).toContain("did you mean /msg?");
    expect(error("/verfy bob")).toContain("did you mean /verify?");
    expect(error("/qiut")).toContain("did you mean /quit?");
  });

  test("a lone slash is explained", () => {
    expect(error("/")).toContain("a lone / is not a command");
    expect(error("/ hi")).toContain("a lone / is not a command");
  });
});

test("/help lists every command the parser knows, and the keys", () => {
  const help = helpLines().join("\n");
  for (const c of COMMANDS) {
    expect(help).toContain(c.usage);
    // Every listed command parses (with a plausible argument where it needs one).
    const sample = c.usage.replace("<users>", "bob carol").replace("<user>", "bob").replace("<digits>", "12345 67890 12345").replace("<text>", "hi").replace("<action>", "waves")
      .replace("<name|number>", "1").replace("[#room]", "").replace("#room", "#ops").replace("[on|off]", "on").replace("[all]", "all")
      .replace("[add|remove <word>]", "add deploy").replace(/\[(\w+)\|[^\]]*\]/, "$1").replace("[text]", "").trim();
    expect(parseInput(sample).ok, sample).toBe(true);
  }
  for (const key of KEYS.flatMap((g) => g.keys)) expect(help).toContain(key.keys);
  // Every key the issue asks for is documented.
  for (const key of [
    "Enter", "Alt-Enter", "Tab / Shift-Tab", "Up / Down", "Ctrl-A / Ctrl-E", "Ctrl-W", "Ctrl-U", "Alt-B / Alt-F", "PgUp / PgDn",
    "Ctrl-Home / Ctrl-End", "Alt-1 … Alt-9", "Ctrl-N / Ctrl-P", "Alt-A", "Alt-U", "Alt-R", "mouse wheel", "Ctrl-C", "Alt-J", "Ctrl-L",
  ]) expect(help).toContain(key);
  expect(help).toContain("/exit");
});

test("/search needs its text and keeps it whole", () => {
  expect(command("/search deploy at noon")).toEqual({ kind: "search", text: "deploy at noon" });
  expect(error("/search")).toBe("/search needs the text to look for — usage: /search <text>");
});

test("/clear and /mouse", () => {
  expect(command("/clear")).toEqual({ kind: "clear" });
  expect(command("/mouse")).toEqual({ kind: "mouse" });
  expect(command("/mouse on")).toEqual({ kind: "mouse", on: true });
  expect(command("/mouse OFF")).toEqual({ kind: "mouse", on: false });
  expect(error("/mouse sideways")).toBe("/mouse takes on or off, not 'sideways' — usage: /mouse [on|off]");
  expect(error("/clear all")).toBe("/clear takes no arguments — usage: /clear");
});
