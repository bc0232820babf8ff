// /link CODE, /link yes, /link no (PROTOCOL.md §4.6) against a session double: the question
// about the digits, the answers, and every refusal as one line.
import { describe, expect, it } from "vitest";
import type { LinkOutcome } from "../../src/client/linking.js";
import type { ChatSession } from "../../src/client/types.js";
import type { RunContext } from "../../src/tui/commands/command.js";
import { link, type LinkCommand } from "../../src/tui/commands/link.js";
import { parseInput } from "../../src/tui/state/commands.js";
import { waitUntil } from "../helpers/wait.js";

function harness(linkDevice?: ChatSession["linkDevice"]) {
  const said: Array<[string, string]> = [];
  const session = { linkDevice } as unknown as ChatSession;
  const ctx = { session, say: (level: string, text: string) => said.push([level, text]) } as unknown as RunContext;
  const run = (line: string): void => {
    const r = parseInput(line);
    if (!r.ok) throw new Error(r.error);
    link.run(r.command as LinkCommand, ctx);
  };
  return { said, run };
}

describe("/link", () => {
  it("parses a code, yes and no; a bare /link is a usage error", () => {
    expect(parseInput("/link abcd-efgh-jkmn-pqrs")).toEqual({ ok: true, command: { kind: "link", code: "abcd-efgh-jkmn-pqrs" } });
    expect(parseInput("/link ABCD EFGH JKMN PQRS")).toEqual({ ok: true, command: { kind: "link", code: "ABCD EFGH JKMN PQRS" } });
    expect(parseInput("/link yes")).toEqual({ ok: true, command: { kind: "link", answer: true } });
    expect(parseInput("/link No")).toEqual({ ok: true, command: { kind: "link", answer: false } });
    const bare = parseInput("/link");
    expect(bare.ok === false && bare.error).toMatch(/^\/link needs the code the new device shows/);
  });

  it("asks about the digits and links on /link yes", async () => {
    let answered: boolean | undefined;
    const h = harness(async (_code, confirm) => {
      answered = await confirm("123 456", "desktop");
      return answered ? { ok: true, name: "desktop", deviceId: "0011223344556677", version: 3, confirmed: true } : { ok: false, reason: "desktop was not linked (you answered no)" };
    });
    h.run("/link ABCD-EFGH-JKMN-PQRS");
    await waitUntil(() => h.said.some(([, t]) => t.startsWith("Does desktop show 123 456?")), "the question");
    h.run("/link ABCD-EFGH-JKMN-PQRS");
    expect(h.said.at(-1)).toEqual(["error", "/link: a linking waits for your answer first: does desktop show 123 456? /link yes or /link no"]);
    h.run("/link yes");
    await waitUntil(() => h.said.some(([, t]) => t.startsWith("Linked desktop")), "the outcome");
    expect(answered).toBe(true);
    expect(h.said.at(-1)![1]).toMatch(/device list v3\). It joins your conversations from here on; earlier messages are not on it\.$/);
    h.run("/link yes");
    expect(h.said.at(-1)).toEqual(["error", "/link: no linking is waiting for an answer (start one with /link <code>)"]);
  });

  it("says no and shows the reason", async () => {
    const h = harness(async (_code, confirm): Promise<LinkOutcome> => (await confirm("654 321", "desktop")) ? { ok: true, name: "x", deviceId: "x", version: 1, confirmed: true } : { ok: false, reason: "desktop was not linked (you answered no)" });
    h.run("/link ABCD-EFGH-JKMN-PQRS");
    await waitUntil(() => h.said.some(([, t]) => t.startsWith("Does desktop show 654 321?")), "the question");
    h.run("/link no");
    await waitUntil(() => h.said.some(([l, t]) => l === "error" && t === "/link: desktop was not linked (you answered no)"), "the refusal");
  });

  it("on a linked device: only the primary can link; without the feature: one sentence", async () => {
    const h = harness(async () => ({ ok: false, reason: "only your primary device (laptop) can link devices" }));
    h.run("/link ABCD-EFGH-JKMN-PQRS");
    await waitUntil(() => h.said.some(([, t]) => t === "/link: only your primary device (laptop) can link devices"), "the refusal");
    const none = harness(undefined);
    none.run("/link ABCD-EFGH-JKMN-PQRS");
    expect(none.said).toEqual([["error", "/link: this session cannot link devices (linking needs protocol v2)"]]);
  });
});
