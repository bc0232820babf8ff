// A hostile peer and the message kinds of issue 10 (PROTOCOL.md §11, §11;
// PROTOCOL.md §11: the kind travels encrypted in the application data): a "topic" outside a
// room and an "away" reply outside a DM are refused by the recipient's client (the relay cannot
// see the kind, and MLS authenticates mallory as their sender), and an "away" reply is never
// answered automatically, so mallory cannot make an away user's client send for her without end.
// mallory is a raw v2 session with a real MLS client of her own (helpers/mls-hostile-peer.ts):
// she makes her DM's group with bob, joins the lobby, and writes her own application data.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { TestClient } from "../helpers/client-harness.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { HostileMlsPeer } from "../helpers/mls-hostile-peer.js";
import { TestRelay } from "../helpers/relay-harness.js";
import { waitUntil } from "../helpers/wait.js";

let bob: PrivateIdentity;
let mallory: PrivateIdentity;
const cleanups: Array<() => Promise<unknown> | unknown> = [];

beforeAll(async () => {
  [bob, mallory] = await Promise.all([fixtureIdentity("bob"), fixtureIdentity("mallory")]);
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** bob (a real v2 client, in the lobby) and mallory, who made their DM's group (bob joined it from her Welcome) and joined the lobby. */
async function scene() {
  const relay = await TestRelay.start();
  cleanups.push(() => relay.cleanup());
  const dir = mkdtempSync(join(tmpdir(), "sc-kinds-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const b = await TestClient.start(bob, relay.running.port, { dir });
  cleanups.push(() => b.close());
  await relay.waitForLog("mls.key_packages.published", (l) => l.user === "bob", 10_000);
  await b.waitFor((e) => e.type === "membership" && e.conversationId === "lobby" && e.line.kind === "joined" && e.line.by === "bob", "bob in the lobby");
  const m = await HostileMlsPeer.connect(relay, mallory);
  await m.dmWith("bob", "dm:bob:mallory");
  await m.joinLobby();
  // bob's client has joined the DM from the Welcome and processed mallory's join of the lobby.
  await b.waitFor((e) => e.type === "membership" && e.conversationId === "dm:bob:mallory", "bob in the DM");
  await b.waitFor((e) => e.type === "membership" && e.conversationId === "lobby" && e.line.kind === "joined" && e.line.by === "mallory", "mallory in bob's lobby");
  return { relay, b, m };
}

describe("hostile message kinds", () => {
  it("a topic in a DM and an away reply in the lobby are refused by bob's client, not shown", async () => {
    const { b, m } = await scene();
    // Each is accepted by the relay (it cannot see the kind): send() fails otherwise.
    await m.send("dm:bob:mallory", "topic", "topic where it does not belong");
    await m.send("lobby", "away", "away where it does not belong");
    await waitUntil(() => (b.events.filter((e) => e.type === "refused" && e.from === "mallory").length >= 2 ? true : undefined), "bob refuses both");
    expect(b.messages().filter((x) => x.from === "mallory")).toEqual([]);
    // The same peer's honest message right after is shown: the refusals cost bob nothing.
    await m.send("dm:bob:mallory", "text", "an honest line");
    await b.waitForMessage("an honest line");
    expect(b.messages().filter((x) => x.from === "mallory").map((x) => x.text)).toEqual(["an honest line"]);
  });

  it("an away bob answers mallory's DM once, and never answers her away replies", async () => {
    const { b, m } = await scene();
    b.client.setAway("out");
    const own = () => b.events.filter((e) => e.type === "message" && e.message.own);
    for (let i = 0; i < 3; i++) await m.send("dm:bob:mallory", "away", `mallory is away too ${i}`);
    await waitUntil(() => b.messages("dm:bob:mallory").find((x) => x.text === "mallory is away too 2"), "bob shows mallory's away replies");
    expect(own()).toEqual([]);
    await m.send("dm:bob:mallory", "text", "a real question");
    await m.send("dm:bob:mallory", "text", "and another");
    await waitUntil(() => b.messages("dm:bob:mallory").find((x) => x.text === "and another"), "bob shows mallory's DMs");
    await waitUntil(() => (own().length >= 1 ? true : undefined), "bob's one automatic reply");
    const replies = own().map((e) => (e.type === "message" ? [e.message.kind, e.message.text] : []));
    expect(replies).toEqual([["away", "out"]]);
  });
});
