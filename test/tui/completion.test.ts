import { describe, expect, test } from "vitest";
import { applyCompletion, findCompletions, type CompletionSources } from "../../src/tui/state/completion.js";
import type { InputBuffer } from "../../src/tui/state/input-buffer.js";

const sources: CompletionSources = {
  commands: ["msg", "me", "members", "query", "quit", "join", "switch", "verify", "trust", "help"],
  users: ["bob", "carol", "bobby", "dave"],
  recentSpeakers: ["dave", "bobby"],
  rooms: ["#ops", "#design", "#oncall"],
  conversations: ["lobby", "#ops", "@bob"],
};
const end = (text: string): InputBuffer => ({ text, cursor: text.length });

describe("what Tab offers", () => {
  test("command names at the start of the line", () => {
    expect(findCompletions(end("/m"), sources)).toEqual({ start: 0, candidates: ["/me", "/members", "/msg"], suffix: " " });
    expect(findCompletions(end("/q"), sources)?.candidates).toEqual(["/query", "/quit"]);
    expect(findCompletions(end("/zz"), sources)).toBeUndefined();
    expect(findCompletions(end("//m"), sources)).toBeUndefined();
  });

  test("users where a command takes one (recent speakers first), with or without @", () => {
    expect(findCompletions(end("/msg b"), sources)).toEqual({ start: 5, candidates: ["bobby", "bob"], suffix: " " });
    expect(findCompletions(end("/verify @c"), sources)?.candidates).toEqual(["carol"]);
    expect(findCompletions(end("/query "), sources)?.candidates).toEqual(["dave", "bobby", "bob", "carol"]);
  });

  test("rooms where a command takes one, the # optional", () => {
    expect(findCompletions(end("/join o"), sources)?.candidates).toEqual(["#oncall", "#ops"]);
    expect(findCompletions(end("/join #d"), sources)?.candidates).toEqual(["#design"]);
    expect(findCompletions(end("/switch @"), sources)?.candidates).toEqual(["@bob"]);
  });

  test("in text: nicks (with ': ' at the start of the line), #rooms and @users", () => {
    expect(findCompletions(end("ca"), sources)).toEqual({ start: 0, candidates: ["carol"], suffix: ": " });
    expect(findCompletions(end("ask ca"), sources)).toEqual({ start: 4, candidates: ["carol"], suffix: " " });
    expect(findCompletions(end("see #o"), sources)?.candidates).toEqual(["#oncall", "#ops"]);
    expect(findCompletions(end("thanks @b"), sources)?.candidates).toEqual(["@bobby", "@bob"]);
    expect(findCompletions(end("hello "), sources)).toBeUndefined();
    expect(findCompletions(end(""), sources)).toBeUndefined();
  });

  test("only the word before the cursor counts", () => {
    expect(findCompletions({ text: "ca and more", cursor: 2 }, sources)?.candidates).toEqual(["carol"]);
  });
});

describe("applying a completion", () => {
  test("replaces the word, adds the suffix, puts the cursor after it", () => {
    expect(applyCompletion(end("/ms"), 0, 3, "/msg", " ")).toEqual({ text: "/msg ", cursor: 5 });
    expect(applyCompletion(end("ca"), 0, 2, "carol", ": ")).toEqual({ text: "carol: ", cursor: 7 });
  });

  test("no doubled space before text that follows", () => {
    expect(applyCompletion({ text: "ca and more", cursor: 2 }, 0, 2, "carol", ": ")).toEqual({ text: "carol: and more", cursor: 6 });
  });
});
