// Hostile peers against trust decisions and the screen (issue 9 §5): mallory is a real user of a
// real relay; alice and bob are real ChatClients (protocol v2: mallory's client may be modified,
// test/helpers/hostile-content.ts).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { MlsKind, type Delivery } from "../../src/gen/securechat/v1/chat.js";
import { contentLayerOver } from "../../src/client/mls/content.js";
import { MlsKeyStore } from "../../src/client/mls-store.js";
import { ClientStateStore } from "../../src/client/state-store.js";
import { TestClient } from "../helpers/client-harness.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { TamperingContent } from "../helpers/hostile-content.js";
import { cleanupWorlds, loadIdentities, processed, room, say, T, world, type World } from "../helpers/v2-hostile-world.js";
import { TestRelay } from "../helpers/relay-harness.js";
import { waitUntil } from "../helpers/wait.js";
import { describeClientError } from "../../src/client/errors.js";

let alice: PrivateIdentity;
let mallory: PrivateIdentity;
const cleanups: Array<() => Promise<unknown> | unknown> = [];

beforeAll(async () => {
  [alice, mallory] = await Promise.all([fixtureIdentity("alice"), fixtureIdentity("mallory")]);
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe("the replay table is keyed by (sender, id)", () => {
  // v2: a message from a key not yet trusted cannot enter an MLS group, so nothing is held for
  // /trust any more; what a hostile peer can still try is the id: message ids travel inside the
  // encrypted application data, so mallory learns bob's as a member of the same room, and the
  // relay (colluding) holds bob's message back from alice until mallory's copy of the id is shown.
  beforeAll(loadIdentities);
  afterEach(cleanupWorlds);

  it("a peer reusing the id of someone else's message (held back by the relay) cannot make it vanish", { timeout: 240_000 }, async () => {
    const w = await world("alice", "bob");
    const content: { content?: TamperingContent } = {};
    w.c.mallory = await modifiedClient(w, mallory, content);
    await room(w, "#ops", "alice", "bob", "mallory");
    const held: Delivery[] = [];
    w.proxy.onDelivery = (user, d) => {
      if (user !== "alice" || d.conversationId !== "#ops" || d.mls?.kind !== MlsKind.MLS_KIND_APPLICATION || d.mls.sender !== "bob") return undefined;
      held.push(d);
      return [];
    };
    await say(w.c.bob!, "#ops", "hello from bob");
    const id = (await w.c.mallory.waitForMessage("hello from bob", T)).id;
    await waitUntil(() => held.length === 1, "the relay holds bob's message for alice", T);

    // mallory's modified client seals her DM to alice with bob's message id.
    content.content!.nextId = Buffer.from(id, "hex");
    const r = w.c.mallory.client.send("dm:alice:mallory", "nothing to see");
    if (!r.ok) throw new Error(describeClientError(r.error));
    expect((await w.c.alice!.waitForMessage("nothing to see", T)).id).toBe(id);

    w.proxy.onDelivery = undefined;
    const [late] = w.proxy.inject("alice", held[0]!);
    await processed(w, "alice", late!.seq);
    const shown = await w.c.alice!.waitForMessage("hello from bob", T);
    expect(shown).toMatchObject({ from: "bob", id });
    // Both are kept for the next start, too: the history is per (sender, id) as well.
    expect(w.c.alice!.client.backlog().filter((x) => x.id === id).map((x) => [x.from, x.text]).sort())
      .toEqual([["bob", "hello from bob"], ["mallory", "nothing to see"]]);
    // And a real replay of bob's message (same sender, same id) is still shown once.
    const [again] = w.proxy.inject("alice", held[0]!);
    await processed(w, "alice", again!.seq);
    await say(w.c.mallory, "dm:alice:mallory", "a marker after it");
    await w.c.alice!.waitForMessage("a marker after it", T);
    expect(w.c.alice!.messages().filter((x) => x.text === "hello from bob")).toHaveLength(1);
    expect(w.c.alice!.messages().filter((x) => x.id === id).map((x) => x.from).sort()).toEqual(["bob", "mallory"]);
  });
});

/** A modified v2 client for `id` through the world's proxy: the real content layer behind TamperingContent (set into `out.content`). */
async function modifiedClient(w: World, id: PrivateIdentity, out: { content?: TamperingContent }): Promise<TestClient> {
  const dir = mkdtempSync(join(tmpdir(), `sc-modified-${id.username}-`));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const state = ClientStateStore.open(join(dir, `${id.username}_state.db`));
  const content = new TamperingContent(contentLayerOver(state, id.username));
  out.content = content;
  const store = MlsKeyStore.open(join(dir, `${id.username}_mls.db`), { username: id.username, sigPrivate: id.sigPrivate });
  const c = await TestClient.start(id, 0, { server: w.proxy.address, dir, state, transport: { kind: "plaintext" }, v2: { store, content } });
  cleanups.push(() => c.close());
  return c;
}

describe("the screen", () => {
  it("bidi controls, tag characters and other invisible code points are neutralised; emoji sequences arrive whole", async () => {
    const relay = await TestRelay.start();
    cleanups.push(() => relay.cleanup());
    const a = await TestClient.start(alice, relay.running.port);
    cleanups.push(() => a.close());
    // v2: mallory's client sends it through her real MLS group with alice (the sender does not clean it).
    const m = await TestClient.start(mallory, relay.running.port);
    cleanups.push(() => m.close());
    await waitUntil(() => a.client.snapshot().peers.some((p) => p.username === "mallory"), "alice sees mallory");
    // U+061C (arabic letter mark), tag characters spelling "hi" (ASCII smuggling), a Hangul
    // filler (an "empty" name), variation selectors hiding bytes after an emoji.
    const hostile = "pay\u061Cme \u{E0068}\u{E0069} [\u3164] 😀\u{E0101}\u{E0102}";
    const family = "👨\u200D👩\u200D👧\u200D👦 🇫🇷 1\uFE0F\u20E3 👍🏽 ❤\uFE0F 🏴\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}";
    const r = m.client.send("dm:alice:mallory", `${hostile}\n${family}`);
    if (!r.ok) throw new Error(describeClientError(r.error));
    const got = await waitUntil(() => a.messages().find((x) => x.from === "mallory"), "mallory's message shown", 30_000);
    expect(got.text).toBe(`pay\uFFFDme \uFFFD\uFFFD [\uFFFD] 😀\uFFFD\uFFFD\n${family}`);
  });
});
