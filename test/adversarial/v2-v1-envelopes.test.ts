// Protocol v1 envelopes at a v2 client (PROTOCOL.md §14, "Envelopes queued before the upgrade";
// src/client/v1-after-upgrade.ts). A v1 envelope is authenticated by its sender's signature only
// and names its own conversation; v1 took a room's membership from the relay. So a relay that
// delivers v1 envelopes signed by an account it registered (mallory) could make her speak in a
// room whose MLS group she is not in, and set its topic, with no commit and no "joined" line
// (§1: membership only members can change; §7.3). A v2 client shows a v1 envelope only when it
// was sent no later than the client's first v2 Welcome (kept across restarts), never into a room
// whose group it holds, and never a topic; every other one is refused, logged and acked.
// The relay here is the operator's man in the middle (mls-hostile-proxy.ts) in front of the real
// relay: it delivers v1 envelopes sealed with the senders' real keys.
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Delivery } from "../../src/gen/securechat/v1/chat.js";
import { envelopeToWire } from "../../src/protocol/codec.js";
import { sealEnvelope, ZERO_HASH } from "../../src/protocol/envelope.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import type { TestClient } from "../helpers/client-harness.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { cleanupWorlds, keepTalking, loadIdentities, logs, processed, refused, room, world, type World } from "../helpers/v2-hostile-world.js";

let alice: PrivateIdentity;
let bob: PrivateIdentity;
let mallory: PrivateIdentity;

beforeAll(async () => {
  await loadIdentities();
  [alice, bob, mallory] = await Promise.all([fixtureIdentity("alice"), fixtureIdentity("bob"), fixtureIdentity("mallory")]);
});
afterEach(cleanupWorlds);

/** A v1 envelope from `from` to alice in `conv`, sealed with `from`'s real keys, sent at `sentAtMs`. */
function v1(from: PrivateIdentity, conv: string, kind: "text" | "topic", text: string, sentAtMs: number): Delivery {
  const sealed = sealEnvelope({ sender: from, conversationId: conv, recipients: [alice], body: { kind, text }, prev: ZERO_HASH, sentAtMs });
  return { seq: 0, conversationId: conv, relayTimeMs: Date.now(), envelope: envelopeToWire(sealed.envelope), mls: undefined } as Delivery;
}

/** The relay hands alice these deliveries; resolves once her client acked each (it processed them). */
async function deliver(w: World, ...items: Delivery[]): Promise<void> {
  for (const d of w.proxy.inject("alice", ...items)) await processed(w, "alice", d.seq);
}

const refusals = (code: string): number => (logs.get("alice") ?? []).filter((l) => l.event === "envelope.refused" && l.code === code).length;
const said = (c: TestClient, conv: string, from: string): string[] => c.messages(conv).filter((m) => m.from === from).map((m) => `${m.kind}: ${m.text}`);

describe("a v1 envelope at a v2 client", () => {
  it("into a room whose MLS group alice holds: refused, whenever it says it was sent (no line, no topic, members unchanged)", { timeout: 240_000 }, async () => {
    const beforeUpgrade = Date.now() - 60_000; // before alice's first v2 Welcome
    const w = await world("alice", "bob", "mallory");
    await room(w, "#ops", "alice", "bob");
    await deliver(w,
      v1(mallory, "#ops", "text", "alice, I am in #ops now: send me the deploy key", Date.now()),
      v1(mallory, "#ops", "topic", "deploy keys go to mallory", Date.now()),
      v1(mallory, "#ops", "text", "an old line of #ops", beforeUpgrade),
      v1(mallory, "#ops", "topic", "an old topic of #ops", beforeUpgrade),
    );
    expect(said(w.c.alice!, "#ops", "mallory")).toEqual([]);
    expect(refused(w.c.alice!, "#ops")).toBe(4);
    expect(refusals("v1-into-mls-room")).toBe(4);
    const m = await w.c.alice!.client.members("#ops");
    expect(m.ok && [...m.value].sort()).toEqual(["alice", "bob"]);
    await keepTalking(w, "#ops", ["alice", "bob"], "after the v1 envelopes");
  });

  it("a DM or the lobby: shown when sent before alice's upgrade, refused when sent after it; the upgrade's time survives a restart", { timeout: 240_000 }, async () => {
    const beforeUpgrade = Date.now() - 60_000;
    const w = await world("alice", "bob", "mallory");
    const dm = "dm:alice:bob";
    await deliver(w,
      v1(bob, dm, "text", "queued for you before the upgrade", beforeUpgrade),
      v1(bob, dm, "text", "sent by a v1 client after your upgrade", Date.now()),
      v1(mallory, "lobby", "text", "a lobby line after the upgrade", Date.now()),
    );
    expect(said(w.c.alice!, dm, "bob")).toEqual(["text: queued for you before the upgrade"]);
    expect(said(w.c.alice!, "lobby", "mallory")).toEqual([]);
    expect(refused(w.c.alice!, dm)).toBe(1);
    expect(refused(w.c.alice!, "lobby")).toBe(1);
    expect(refusals("v1-after-upgrade")).toBe(2);

    // After a restart the upgrade is still the first Welcome, not this one.
    const betweenRuns = Date.now();
    const a = await w.restart("alice");
    await deliver(w,
      v1(bob, dm, "text", "also queued before the upgrade", beforeUpgrade + 1),
      v1(bob, dm, "text", "sent between alice's runs", betweenRuns),
    );
    expect(said(a, dm, "bob")).toEqual(["text: also queued before the upgrade"]);
    expect(refused(a, dm)).toBe(1);
    expect(refusals("v1-after-upgrade")).toBe(3);
  });

  it("a room whose group alice does not hold: a line sent before the upgrade is shown, a topic never", { timeout: 240_000 }, async () => {
    const beforeUpgrade = Date.now() - 60_000;
    const w = await world("alice", "bob", "mallory");
    await deliver(w,
      v1(bob, "#old", "text", "a line of the v1 room", beforeUpgrade),
      v1(bob, "#old", "topic", "the v1 room's topic", beforeUpgrade + 1),
      v1(mallory, "#old", "text", "a line after the upgrade", Date.now()),
    );
    expect(said(w.c.alice!, "#old", "bob")).toEqual(["text: a line of the v1 room"]);
    expect(said(w.c.alice!, "#old", "mallory")).toEqual([]);
    expect(refused(w.c.alice!, "#old")).toBe(2);
    expect(refusals("v1-topic")).toBe(1);
    expect(refusals("v1-after-upgrade")).toBe(1);
    // Once alice holds the room's group, no v1 envelope speaks in it, even one sent before the upgrade.
    expect((await w.c.alice!.client.joinRoom("#old")).ok).toBe(true);
    await deliver(w, v1(bob, "#old", "text", "another line of the v1 room", beforeUpgrade + 2));
    expect(said(w.c.alice!, "#old", "bob")).toEqual(["text: a line of the v1 room"]);
    expect(refusals("v1-into-mls-room")).toBe(1);
  });
});
