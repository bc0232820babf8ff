// A member's key change in the protocol v2 engine (src/client/mls/key-change.ts, PROTOCOL.md §6)
// against the in-memory Delivery Service: a member who has not decided on carol's new key holds
// the room's messages behind the commit that put it in, past the hold bounds, without re-joining
// (which its pins refuse) and without losing any; after its decision it applies that commit and
// reads every held message.
import { createPublicKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { MlsConversations } from "../../src/client/mls/conversations.js";
import { MlsKeyStore } from "../../src/client/mls-store.js";
import type { SessionEvent } from "../../src/client/types.js";
import { fingerprint } from "../../src/protocol/keys.js";
import { nullLogger } from "../../src/protocol/log.js";
import type { TrustHook } from "../../src/protocol/mls/index.js";
import { FakeDs } from "../helpers/fake-ds.js";
import { TestContent } from "../helpers/mls-content-double.js";
import { waitUntil } from "../helpers/wait.js";

let root: string;
let ds: FakeDs;
const engines: Array<{ engine: MlsConversations; store: MlsKeyStore }> = [];

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "sc-mls-keychange-"));
  ds = new FakeDs();
});
afterEach(() => {
  for (const e of engines.splice(0)) { e.engine.close(); e.store.close(); }
  rmSync(root, { recursive: true, force: true });
});

interface Person {
  readonly name: string;
  readonly engine: MlsConversations;
  readonly events: SessionEvent[];
  /** Pins: username → identity fingerprint hex (first use pins); `pending`: a change awaiting my decision (nothing of theirs accepted). */
  readonly pins: Map<string, string>;
  readonly pending: Set<string>;
  readonly fpr: Buffer;
}

/** As session.ts pinHook: no pin for my own name (a leaf of mine under another key is my lost device's). */
function pinHook(me: string, pins: Map<string, string>, pending: Set<string>): TrustHook {
  return (id) => {
    if (id.username === me) return true;
    if (pending.has(id.username)) return false;
    const fpr = id.identityFpr.toString("hex");
    const pinned = pins.get(id.username);
    if (pinned === undefined) { pins.set(id.username, fpr); return true; }
    return pinned === fpr;
  };
}

async function person(name: string, file: string, limits?: { holdMessages: number; holdMs: number }): Promise<Person> {
  const { privateKey } = generateKeyPairSync("ed25519");
  const store = MlsKeyStore.open(join(root, `${file}_mls.db`), { username: name, sigPrivate: privateKey as KeyObject });
  const events: SessionEvent[] = [];
  const pins = new Map<string, string>();
  const pending = new Set<string>();
  const engine = new MlsConversations({
    ...(limits !== undefined ? { limits } : {}),
    me: name, identity: { username: name, sigPrivate: privateKey }, store, ds: ds.api(name), content: new TestContent(),
    trust: pinHook(name, pins, pending), clock: () => Date.now(), logger: nullLogger, emit: (e) => events.push(e),
  });
  engines.push({ engine, store });
  await engine.start();
  ds.connect(name, engine);
  const spki = createPublicKey(privateKey).export({ format: "der", type: "spki" });
  return { name, engine, events, pins, pending, fpr: fingerprint(spki) };
}

const texts = (p: Person, conv: string): string[] =>
  p.events.flatMap((e) => e.type === "message" && e.message.conversationId === conv && !e.message.own ? [e.message.text] : []);
const notices = (p: Person): string[] => p.events.flatMap((e) => e.type === "notice" ? [e.text] : []);

describe("a key change in a room, at a member who has not decided", () => {
  it("holds every message behind the commit past the hold bounds, never re-joins, and reads them all after deciding", { timeout: 120_000 }, async () => {
    const alice = await person("alice", "alice");
    const bob = await person("bob", "bob", { holdMessages: 2, holdMs: 1 });
    const carol = await person("carol", "carol");
    for (const p of [alice, bob, carol]) expect((await p.engine.joinRoom("#ops")).ok).toBe(true);
    await waitUntil(() => [alice, bob, carol].every((p) => p.engine.members("#ops")?.length === 3), "three members everywhere");

    // carol's key is lost; "carol" comes back with another key (the relay forgot the old one's KeyPackages).
    ds.disconnect("carol");
    (ds as unknown as { keyPackages: Map<string, unknown> }).keyPackages.delete("carol");
    const newCarol = await person("carol", "carol-new");
    bob.pending.add("carol");
    alice.pins.set("carol", newCarol.fpr.toString("hex"));
    const decided = await alice.engine.keyDecided("carol", newCarol.fpr, false);
    expect(decided.rooms).toContain("#ops");
    await waitUntil(() => newCarol.engine.members("#ops")?.length === 3, "the new key is in #ops");
    await waitUntil(() => notices(bob).some((t) => /alice put a key into #ops that you have not accepted/.test(t)), "bob refused the change and said so");

    for (let i = 1; i <= 5; i++) expect(alice.engine.send("#ops", `held ${i}`).ok).toBe(true);
    await waitUntil(() => texts(newCarol, "#ops").includes("held 5"), "the new key reads alice");
    // Past both bounds (2 messages, 1 ms): bob's timers run; he neither re-joins nor drops anything.
    await bob.engine.checkTimers();
    await bob.engine.idle();
    expect(texts(bob, "#ops")).toEqual([]);
    expect(notices(bob).some((t) => /missing changes in #ops/.test(t))).toBe(false);
    expect(ds.waiting("bob").length).toBeGreaterThanOrEqual(5); // not acknowledged: still the relay's

    bob.pending.delete("carol");
    bob.pins.set("carol", newCarol.fpr.toString("hex"));
    await bob.engine.keyDecided("carol", newCarol.fpr, false);
    await waitUntil(() => texts(bob, "#ops").length === 5, "bob reads every held message");
    expect(texts(bob, "#ops")).toEqual(["held 1", "held 2", "held 3", "held 4", "held 5"]);
    expect(notices(bob).some((t) => /carol's key changed; you accepted the new key.*the new key is in #ops/.test(t))).toBe(true);
  });
});
