// Hostile peers against trust decisions and the screen (issue 9 §5): mallory is a real user of a
// real relay; alice and bob are real ChatClients.
import { randomBytes } from "node:crypto";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { releaseUsername } from "../../src/server/users-command.js";
import { TestClient } from "../helpers/client-harness.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { seal } from "../helpers/raw-session.js";
import { TestRelay } from "../helpers/relay-harness.js";
import { waitUntil } from "../helpers/wait.js";
import { describeClientError } from "../../src/client/errors.js";

let alice: PrivateIdentity;
let bob: PrivateIdentity;
let newBob: PrivateIdentity;
let mallory: PrivateIdentity;
const cleanups: Array<() => Promise<unknown> | unknown> = [];

beforeAll(async () => {
  [alice, bob, newBob, mallory] = await Promise.all([
    fixtureIdentity("alice"), fixtureIdentity("bob"), fixtureIdentity("dave", "bob"), fixtureIdentity("mallory"),
  ]);
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe("the replay table is keyed by (sender, id)", () => {
  it("a peer reusing the id of someone else's held message cannot make it vanish after /trust", async () => {
    const relay = await TestRelay.start();
    cleanups.push(() => relay.cleanup());
    const a = await TestClient.start(alice, relay.running.port);
    cleanups.push(() => a.close());
    const b = await TestClient.start(bob, relay.running.port);
    await a.waitFor((e) => e.type === "peer" && e.peer.username === "bob" && e.peer.online, "bob online");
    await b.close();

    // bob's new device: its first message is held at alice until she decides.
    expect(releaseUsername(relay.dataDir, "bob")).toBe(true);
    const nb = await relay.connect(newBob);
    const heldId = randomBytes(16);
    await nb.sendAccepted(seal(newBob, "dm:alice:bob", [alice], "hello from my new laptop", { messageId: heldId }));
    await a.waitFor((e) => e.type === "key-change" && e.username === "bob" && e.held === 1, "bob's message held");

    // mallory learns the id (the relay or a recipient sees it in the clear) and sends her own
    // message with it first: alice shows mallory's message, and its id is seen — for mallory.
    const m = await relay.connect(mallory);
    await m.sendAccepted(seal(mallory, "dm:alice:mallory", [alice], "nothing to see", { messageId: heldId }));
    await a.waitForMessage("nothing to see");

    const v = await a.client.verify("bob");
    if (!v.ok) throw new Error(describeClientError(v.error));
    const t = a.client.trust("bob", [...v.value.confirmGroups]);
    expect(t).toEqual({ ok: true, value: { username: "bob", verified: true, keyChange: true, shown: 1, discarded: 0 } });
    const shown = await a.waitForMessage("hello from my new laptop");
    expect(shown).toMatchObject({ from: "bob", id: heldId.toString("hex") });
    // Both are kept for the next start, too: the history is per (sender, id) as well.
    expect(a.client.backlog().filter((x) => x.id === heldId.toString("hex")).map((x) => [x.from, x.text]))
      .toEqual([["mallory", "nothing to see"], ["bob", "hello from my new laptop"]]);
    // And a real replay of bob's message (same sender, same id) is still refused.
    const before = a.messages().length;
    await nb.sendAccepted(seal(newBob, "dm:alice:bob", [alice], "hello again, same id", { messageId: heldId }));
    await m.sendAccepted(seal(mallory, "dm:alice:mallory", [alice], "a marker after it"));
    await a.waitForMessage("a marker after it");
    expect(a.messages().slice(before).map((x) => x.text)).toEqual(["a marker after it"]);
  });
});

describe("the screen", () => {
  it("bidi controls, tag characters and other invisible code points are neutralised; emoji sequences arrive whole", async () => {
    const relay = await TestRelay.start();
    cleanups.push(() => relay.cleanup());
    const a = await TestClient.start(alice, relay.running.port);
    cleanups.push(() => a.close());
    const m = await relay.connect(mallory);
    await waitUntil(() => a.client.snapshot().peers.some((p) => p.username === "mallory"), "alice sees mallory");
    // U+061C (arabic letter mark), tag characters spelling "hi" (ASCII smuggling), a Hangul
    // filler (an "empty" name), variation selectors hiding bytes after an emoji.
    const hostile = "pay\u061Cme \u{E0068}\u{E0069} [\u3164] 😀\u{E0101}\u{E0102}";
    const family = "👨\u200D👩\u200D👧\u200D👦 🇫🇷 1\uFE0F\u20E3 👍🏽 ❤\uFE0F 🏴\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}";
    await m.sendAccepted(seal(mallory, "dm:alice:mallory", [alice], `${hostile}\n${family}`));
    const got = await waitUntil(() => a.messages().find((x) => x.from === "mallory"), "mallory's message shown");
    expect(got.text).toBe(`pay\uFFFDme \uFFFD\uFFFD [\uFFFD] 😀\uFFFD\uFFFD\n${family}`);
  });
});
