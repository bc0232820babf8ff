// The protocol v2 conversation engine (src/client/mls/conversations.ts, PROTOCOL.md §7-§12)
// against an in-memory Delivery Service (test/helpers/fake-ds.ts): DMs, rooms, the lobby,
// commit races, missed commits, restarts from the store, KeyPackage top-up, and what a hostile
// relay can try (each refused or shown, and the honest members keep talking).
import { generateKeyPairSync, type KeyObject } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { MlsConversations } from "../../src/client/mls/conversations.js";
import { LEAVE_COMMIT_STEP_MS, LOBBY_STALE_MS, LOBBY_SWEEP_MS } from "../../src/client/mls/policy.js";
import type { ContentLayer } from "../../src/client/mls/content-api.js";
import type { MlsQueued } from "../../src/client/mls/ds-api.js";
import { contentLayerOver } from "../../src/client/mls/content.js";
import { MlsKeyStore } from "../../src/client/mls-store.js";
import { ClientStateStore } from "../../src/client/state-store.js";
import type { MembershipLine, SessionEvent } from "../../src/client/types.js";
import { MlsKind } from "../../src/gen/securechat/v1/chat.js";
import { jsonLineLogger, nullLogger } from "../../src/protocol/log.js";
import type { TrustHook } from "../../src/protocol/mls/index.js";
import { FakeDs } from "../helpers/fake-ds.js";
import { TestContent } from "../helpers/mls-content-double.js";
import { waitUntil } from "../helpers/wait.js";

let root: string;
let ds: FakeDs;
let now: number;
const people: Person[] = [];

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "sc-mls-conv-"));
  ds = new FakeDs();
  now = Date.now();
});
afterEach(() => {
  withPresence.clear();
  for (const p of people.splice(0)) { p.engine.close(); p.store.close(); }
  rmSync(root, { recursive: true, force: true });
});

interface Person {
  readonly name: string;
  readonly sigPrivate: KeyObject;
  store: MlsKeyStore;
  engine: MlsConversations;
  /** The content layer: the test double, or the real one (content.ts over an in-memory state db). */
  content: ContentLayer;
  readonly events: SessionEvent[];
  /** TOFU pins of this person: username → identity fingerprint hex. */
  readonly pins: Map<string, string>;
}

function trustOf(pins: Map<string, string>): TrustHook {
  return (id) => {
    const fpr = id.identityFpr.toString("hex");
    const pinned = pins.get(id.username);
    if (pinned === undefined) { pins.set(id.username, fpr); return true; }
    return pinned === fpr;
  };
}

function makeEngine(p: Omit<Person, "engine">, limits?: { lobbyMaxMembers?: number; commitBytes?: number }): MlsConversations {
  return new MlsConversations({
    ...(limits !== undefined ? { limits } : {}),
    ...(withPresence.has(p.name) ? { isOnline: (u: string) => ds.isOnline(u) } : {}),
    me: p.name, identity: { username: p.name, sigPrivate: p.sigPrivate }, store: p.store, ds: ds.api(p.name), content: p.content,
    trust: trustOf(p.pins), clock: () => now, logger: process.env["MLS_DEBUG"] ? jsonLineLogger((l) => process.stderr.write(`${p.name} ${l}`), "debug") : nullLogger, emit: (e) => p.events.push(e),
  });
}

const double = (p: Person): TestContent => {
  if (!(p.content instanceof TestContent)) throw new Error(`${p.name} has the real content layer`);
  return p.content;
};

/** People whose engine reads presence from the relay double (the lobby janitor). */
const withPresence = new Set<string>();

async function person(name: string, options: { online?: boolean; lobbyMaxMembers?: number; commitBytes?: number; realContent?: boolean; presence?: boolean } = {}): Promise<Person> {
  if (options.presence === true) withPresence.add(name);
  const { privateKey } = generateKeyPairSync("ed25519");
  const store = MlsKeyStore.open(join(root, `${name}_mls.db`), { username: name, sigPrivate: privateKey });
  const content = options.realContent === true ? contentLayerOver(ClientStateStore.open(":memory:"), name) : new TestContent();
  const base = { name, sigPrivate: privateKey, store, content, events: [] as SessionEvent[], pins: new Map<string, string>() };
  const limits = { ...(options.lobbyMaxMembers !== undefined ? { lobbyMaxMembers: options.lobbyMaxMembers } : {}), ...(options.commitBytes !== undefined ? { commitBytes: options.commitBytes } : {}) };
  const p: Person = { ...base, engine: makeEngine(base, Object.keys(limits).length > 0 ? limits : undefined) };
  people.push(p);
  if (options.online !== false) await online(p);
  return p;
}

/** Starts the engine and connects it to the relay double. */
async function online(p: Person): Promise<void> {
  await p.engine.start();
  ds.connect(p.name, p.engine);
}

/** A restart: the engine is closed and a new one made from the same files (store re-opened). */
async function restart(p: Person): Promise<void> {
  ds.disconnect(p.name);
  p.engine.close();
  p.store.close();
  p.store = MlsKeyStore.open(join(root, `${p.name}_mls.db`), { username: p.name, sigPrivate: p.sigPrivate });
  p.engine = makeEngine(p);
  await online(p);
}

async function settle(...ps: Person[]): Promise<void> {
  for (let i = 0; i < 3; i++) for (const p of ps) await p.engine.idle();
}

const texts = (p: Person, conv: string): string[] =>
  p.events.flatMap((e) => e.type === "message" && e.message.conversationId === conv && !e.message.own ? [`${e.message.from}: ${e.message.text}`] : []);
const lines = (p: Person, conv: string): MembershipLine[] =>
  p.events.flatMap((e) => e.type === "membership" && e.conversationId === conv ? [e.line] : []);
const lineText = (l: MembershipLine): string => `${l.by} ${l.kind}${l.users.length > 0 ? ` ${l.users.join(",")}` : ""}`;
const states = (p: Person, id: string): string[] =>
  p.events.flatMap((e) => e.type === "message-state" && e.id === id ? [e.state] : []);
const refusals = (p: Person): SessionEvent[] => p.events.filter((e) => e.type === "refused");
const notices = (p: Person): string[] => p.events.flatMap((e) => e.type === "notice" ? [e.text] : []);

function sent(p: Person, conv: string, text: string): string {
  const r = p.engine.send(conv, text);
  if (!r.ok) throw new Error(`send failed: ${JSON.stringify(r.error)}`);
  return r.value.id;
}

async function expectText(p: Person, conv: string, line: string): Promise<void> {
  await waitUntil(() => texts(p, conv).includes(line), `${p.name} to read "${line}" in ${conv}`, 30_000);
}

describe("DMs", () => {
  it("the first send creates the group; both ways; the peer offline gets it when back", { timeout: 120_000 }, async () => {
    const alice = await person("alice");
    const bob = await person("bob");
    const dm = "dm:alice:bob";
    const id = sent(alice, dm, "hi bob");
    expect(alice.events.find((e) => e.type === "message" && e.message.id === id && e.message.state === "pending")).toBeDefined();
    await expectText(bob, dm, "alice: hi bob");
    await waitUntil(() => states(alice, id).includes("accepted"), "accepted");
    expect(lines(bob, dm).map(lineText)).toEqual(["alice added bob"]);
    sent(bob, dm, "hi alice");
    await expectText(alice, dm, "bob: hi alice");

    // bob goes offline; alice writes; bob reads it when back (from the queue, after a restart).
    ds.disconnect(bob.name);
    const id2 = sent(alice, dm, "while you were away");
    await waitUntil(() => alice.events.some((e) => e.type === "message-state" && e.id === id2 && e.state === "accepted" && (e.queuedFor ?? []).includes("bob")), "queued for bob");
    await restart(bob);
    await expectText(bob, dm, "alice: while you were away");
    sent(bob, dm, "back");
    await expectText(alice, dm, "bob: back");
    expect(ds.groupOf(dm)?.members).toEqual(["alice", "bob"]);
  });

  it("a DM to someone with no KeyPackage on the relay fails with a sentence", { timeout: 60_000 }, async () => {
    const alice = await person("alice");
    const id = sent(alice, "dm:alice:zed", "anyone?");
    await waitUntil(() => states(alice, id).includes("failed"), "failed");
    const st = alice.events.find((e) => e.type === "message-state" && e.id === id && e.state === "failed");
    expect(st?.type === "message-state" ? st.error : undefined).toEqual({ kind: "no-key-package", username: "zed" });
  });

  it("both create at once: the relay keeps the first group; the other joins by its Welcome and sends what waited", { timeout: 120_000 }, async () => {
    const alice = await person("alice");
    const bob = await person("bob");
    const dm = "dm:alice:bob";
    sent(alice, dm, "from alice");
    sent(bob, dm, "from bob");
    await expectText(bob, dm, "alice: from alice");
    await expectText(alice, dm, "bob: from bob");
    await settle(alice, bob);
    const g = ds.groupOf(dm)!;
    expect(g.members).toEqual(["alice", "bob"]);
    sent(alice, dm, "one group");
    await expectText(bob, dm, "alice: one group");
  });
  it("the peer registered the DM group long ago and never added me: after waiting for a Welcome, I join it by external commit", { timeout: 120_000 }, async () => {
    const alice = await person("alice");
    const bob = await person("bob", { online: false });
    const dm = "dm:alice:bob";
    // alice wrote when bob had no KeyPackage yet: her group is registered, with her alone.
    const first = sent(alice, dm, "are you there?");
    await waitUntil(() => states(alice, first).includes("failed"), "failed: no KeyPackage");
    expect(ds.groupOf(dm)?.members).toEqual(["alice"]);
    await online(bob);
    const id = sent(bob, dm, "now I am");
    await settle(bob);
    expect(states(bob, id)).toEqual([]);
    now += 60_000;
    await bob.engine.checkTimers();
    expect(states(bob, id)).toEqual([]);
    now += 2 * 60_000;
    await bob.engine.checkTimers();
    await expectText(alice, dm, "bob: now I am");
    await waitUntil(() => states(bob, id).includes("accepted"), "accepted");
    expect(lines(alice, dm).map(lineText)).toEqual(["bob joined"]);
    sent(alice, dm, "hello bob");
    await expectText(bob, dm, "alice: hello bob");
  });
});

describe("rooms", () => {
  it("create, join, invite, kick, leave: lines name who; a removed member reads nothing after", { timeout: 180_000 }, async () => {
    const alice = await person("alice");
    const bob = await person("bob");
    const carol = await person("carol");
    const dave = await person("dave");
    const room = "#ops";
    expect((await alice.engine.joinRoom(room)).ok).toBe(true);
    expect(lines(alice, room).map(lineText)).toEqual(["alice created"]);
    expect(alice.engine.creator(room)).toBe("alice");
    const jb = await bob.engine.joinRoom(room);
    expect(jb.ok && jb.value.members).toEqual(["alice", "bob"]);
    await waitUntil(() => lines(alice, room).some((l) => lineText(l) === "bob joined"), "alice sees bob join");
    expect((await bob.engine.invite(room, "carol")).ok).toBe(true);
    await waitUntil(() => carol.engine.members(room)?.length === 3, "carol in");
    await waitUntil(() => lines(alice, room).some((l) => lineText(l) === "bob added carol"), "alice sees the add");
    expect(lines(carol, room).map(lineText)).toEqual(["bob added carol"]);
    expect(carol.engine.creator(room)).toBe("alice");

    sent(carol, room, "hello room");
    await expectText(alice, room, "carol: hello room");
    await expectText(bob, room, "carol: hello room");

    // bob is not the creator: his kick is refused here, and nothing is sent.
    const k = await bob.engine.kick(room, "carol");
    expect(k.ok).toBe(false);
    expect(k.ok ? undefined : k.error).toEqual({ kind: "not-the-creator", room: "#ops", creator: "alice" });

    // alice kicks carol; everyone sees it, carol too; carol's group is gone.
    expect((await alice.engine.kick(room, "carol")).ok).toBe(true);
    await waitUntil(() => lines(carol, room).some((l) => lineText(l) === "alice removed carol"), "carol sees her removal");
    await waitUntil(() => lines(bob, room).some((l) => lineText(l) === "alice removed carol"), "bob sees it");
    expect(carol.engine.members(room)).toBeUndefined();
    expect(carol.store.conversations()).not.toContain(room);
    expect(double(carol).forgotten).toContain(room);
    // carol keeps no state to read with; a message after the removal does not reach her.
    await waitUntil(() => bob.engine.members(room)?.length === 2, "bob sees two");
    sent(bob, room, "after carol");
    await expectText(alice, room, "bob: after carol");
    await settle(carol);
    expect(texts(carol, room)).not.toContain("bob: after carol");

    // bob leaves: his proposal is committed by alice (the receiving member).
    expect((await bob.engine.leaveRoom(room)).ok).toBe(true);
    expect(lines(bob, room).map(lineText)).toContain("bob left");
    await waitUntil(() => lines(alice, room).some((l) => lineText(l) === "bob left"), "alice sees bob leave");
    await waitUntil(() => alice.engine.members(room)?.length === 1, "alice alone");
    expect(ds.groupOf(room)?.members).toEqual(["alice"]);
    // dave joins afterwards and talks with alice.
    expect((await dave.engine.joinRoom(room)).ok).toBe(true);
    sent(dave, room, "hi");
    await expectText(alice, room, "dave: hi");
  });

  it("a non-creator's removal commit (made around the engine) is refused by every member and shown", { timeout: 120_000 }, async () => {
    const alice = await person("alice");
    const bob = await person("bob");
    const carol = await person("carol");
    const room = "#ops";
    await alice.engine.joinRoom(room);
    await bob.engine.joinRoom(room);
    await carol.engine.joinRoom(room);
    await settle(alice, bob, carol);
    await waitUntil(() => alice.engine.members(room)?.length === 3 && bob.engine.members(room)?.length === 3, "three members everywhere");
    // bob's client is modified: it removes carol itself and sends the commit to the relay.
    const client = await bob.store.loadOrCreateClient();
    const g = bob.store.loadGroup(client, room)!;
    const p = await g.removeMembers(["carol"]);
    // (Its hint keeps carol on the relay's list, so the relay still delivers to her.)
    const r = await ds.api("bob").sendCommit({ commit: p.commit, groupInfo: new Uint8Array(0), added: [], removed: [] });
    expect(r.ok).toBe(true);
    for (const x of [alice, carol]) {
      await waitUntil(() => lines(x, room).some((l) => l.kind === "refused"), `${x.name} shows the refused change`);
      expect(lines(x, room).find((l) => l.kind === "refused")).toMatchObject({ kind: "refused", by: "bob", users: ["carol"], creator: "alice" });
    }
    // Nothing changed for the honest members but bob: carol is still in, and alice, the creator,
    // re-creates the room without the member whose change was refused (PROTOCOL.md §7.4; the fake
    // DS serves RecreateRoom since the multi-device round); carol follows, alice and carol talk.
    await waitUntil(() => alice.engine.members(room)?.join() === "alice,carol" && carol.engine.members(room)?.join() === "alice,carol", "alice re-created #ops with carol");
    sent(alice, room, "still here?");
    await expectText(carol, room, "alice: still here?");
    await settle(bob);
    expect(texts(bob, room)).not.toContain("alice: still here?");
  });
});

/** A room of alice (creator), bob and carol, everyone at the same epoch. */
async function roomOfThree(room = "#ops"): Promise<[Person, Person, Person]> {
  const alice = await person("alice");
  const bob = await person("bob");
  const carol = await person("carol");
  expect((await alice.engine.joinRoom(room)).ok).toBe(true);
  expect((await bob.engine.joinRoom(room)).ok).toBe(true);
  expect((await carol.engine.joinRoom(room)).ok).toBe(true);
  await waitUntil(() => [alice, bob, carol].every((p) => p.engine.members(room)?.length === 3), "three members everywhere");
  await settle(alice, bob, carol);
  return [alice, bob, carol];
}

describe("commit ordering", () => {
  it("two members commit at once: the loser processes the winner and makes its change again", { timeout: 120_000 }, async () => {
    const [alice, bob, carol] = await roomOfThree();
    const dave = await person("dave");
    const erin = await person("erin");
    const before = ds.epochTaken;
    const [a, b] = await Promise.all([alice.engine.invite("#ops", "dave"), bob.engine.invite("#ops", "erin")]);
    expect(a.ok && b.ok).toBe(true);
    expect(ds.epochTaken).toBeGreaterThan(before);
    await waitUntil(() => [alice, bob, carol, dave, erin].every((p) => p.engine.members("#ops")?.length === 5), "five members everywhere");
    sent(erin, "#ops", "from erin");
    for (const p of [alice, bob, carol, dave]) await expectText(p, "#ops", "erin: from erin");
  });

  it("the update policy commits an update before sending; the peers process it and read on", { timeout: 60_000 }, async () => {
    const [alice, bob, carol] = await roomOfThree();
    const epoch = ds.groupOf("#ops")!.epoch;
    double(alice).update = true;
    sent(alice, "#ops", "after my update");
    await expectText(bob, "#ops", "alice: after my update");
    await expectText(carol, "#ops", "alice: after my update");
    expect(ds.groupOf("#ops")!.epoch).toBe(epoch + 1);
    expect(double(alice).committedCount).toBeGreaterThan(0);
  });
});

/** A room of five: alice (creator, leaf 0), then bob, carol, dave, erin by external commit (leaves 1-4). */
async function roomOfFive(room = "#ops"): Promise<Person[]> {
  const ps = [await person("alice"), await person("bob"), await person("carol"), await person("dave"), await person("erin")];
  for (const p of ps) expect((await p.engine.joinRoom(room)).ok).toBe(true);
  await waitUntil(() => ps.every((p) => p.engine.members(room)?.length === 5), "five members everywhere");
  await settle(...ps);
  return ps;
}

describe("one committer for a leave (policy.ts leaveCommitRank)", () => {
  it("a leave in a room of five is committed once, by the first member in leaf order, with no race", { timeout: 180_000 }, async () => {
    const [alice, bob, carol, dave, erin] = await roomOfFive();
    const epoch = ds.groupOf("#ops")!.epoch;
    const taken = ds.epochTaken;
    expect((await carol!.engine.leaveRoom("#ops")).ok).toBe(true);
    const rest = [alice!, bob!, dave!, erin!];
    await waitUntil(() => rest.every((p) => lines(p, "#ops").some((l) => lineText(l) === "carol left") && p.engine.members("#ops")?.length === 4), "everyone sees carol leave");
    await settle(...rest);
    expect(ds.groupOf("#ops")!.epoch).toBe(epoch + 1);
    expect(ds.epochTaken).toBe(taken); // before: every member committed it, three lost the race
    sent(erin!, "#ops", "after carol");
    for (const p of [alice!, bob!, dave!]) await expectText(p, "#ops", "erin: after carol");
  });

  it("the first committer is offline: the next in leaf order commits it after its delay, and only it; the first reads it when back", { timeout: 180_000 }, async () => {
    const [alice, bob, carol, dave, erin] = await roomOfFive();
    const epoch = ds.groupOf("#ops")!.epoch;
    const taken = ds.epochTaken;
    ds.disconnect("alice");
    expect((await carol!.engine.leaveRoom("#ops")).ok).toBe(true);
    const online = [bob!, dave!, erin!];
    await waitUntil(() => online.every((p) => ds.waiting(p.name).length === 0), "the proposal processed by the members online");
    await settle(...online);
    // Before bob's delay nobody commits it.
    now += LEAVE_COMMIT_STEP_MS - 1_000;
    for (const p of online) await p.engine.checkTimers();
    await settle(...online);
    expect(ds.groupOf("#ops")!.epoch).toBe(epoch);
    now += 1_000;
    await Promise.all(online.map((p) => p.engine.checkTimers()));
    await waitUntil(() => online.every((p) => lines(p, "#ops").some((l) => lineText(l) === "carol left") && p.engine.members("#ops")?.length === 4), "the members online see carol leave");
    // dave's and erin's later turns find it committed.
    now += 3 * LEAVE_COMMIT_STEP_MS;
    for (const p of online) await p.engine.checkTimers();
    await settle(...online);
    expect(ds.groupOf("#ops")!.epoch).toBe(epoch + 1);
    expect(ds.epochTaken).toBe(taken);
    ds.connect("alice", alice!.engine);
    await waitUntil(() => lines(alice!, "#ops").some((l) => lineText(l) === "carol left") && alice!.engine.members("#ops")?.length === 4, "alice sees it when back");
    sent(alice!, "#ops", "back");
    for (const p of online) await expectText(p, "#ops", "alice: back");
  });
});

describe("adds that fit a frame (commit.ts addInChunks, §8.3 Sizes)", () => {
  it("six users invited at once with room for about two per commit: several commits, each under the limit and its own epoch; everyone ends in the room and talks", { timeout: 180_000 }, async () => {
    const limit = 20_000;
    const alice = await person("alice", { commitBytes: limit });
    const names = ["bob", "carol", "dave", "erin", "frank", "gina"];
    const others: Person[] = [];
    for (const n of names) others.push(await person(n));
    await settle(alice, ...others);
    expect((await alice.engine.joinRoom("#big")).ok).toBe(true);
    const epoch = ds.groupOf("#big")!.epoch;
    const from = ds.commitsSent.length;
    const r = await alice.engine.inviteMany("#big", names);
    expect(r.ok).toBe(true);
    const commits = r.ok ? r.value.commits : 0;
    expect(commits).toBeGreaterThan(1);
    const sentNow = ds.commitsSent.slice(from);
    expect(sentNow).toHaveLength(commits);
    for (const c of sentNow) expect(c.bytes).toBeLessThanOrEqual(limit);
    expect(ds.groupOf("#big")!.epoch).toBe(epoch + commits);
    // Each commit is its own "added" line; together they name everyone once.
    const added = lines(alice, "#big").filter((l) => l.kind === "added");
    expect(added).toHaveLength(commits);
    expect(added.flatMap((l) => l.users).sort()).toEqual([...names].sort());
    await waitUntil(() => [alice, ...others].every((p) => p.engine.members("#big")?.length === 7), "seven members everywhere");
    sent(others[5]!, "#big", "hello all");
    for (const p of [alice, ...others.slice(0, 5)]) await expectText(p, "#big", "gina: hello all");
  });

  it("a commit with room for its GroupInfo carries it (no PublishGroupInfo after); one over the frame is not sent and says why", { timeout: 120_000 }, async () => {
    const alice = await person("alice");
    const bob = await person("bob");
    await settle(alice, bob);
    expect((await alice.engine.joinRoom("#ops")).ok).toBe(true);
    const from = ds.commitsSent.length;
    const published = ds.groupInfoPublished;
    expect((await alice.engine.invite("#ops", "bob")).ok).toBe(true);
    expect(ds.commitsSent.slice(from).map((c) => c.withGroupInfo)).toEqual([true]);
    expect(ds.groupInfoPublished).toBe(published);
    // The relay's GroupInfo is the new epoch's: carol joins from it at once.
    const carol = await person("carol");
    expect((await carol.engine.joinRoom("#ops")).ok).toBe(true);
    await waitUntil(() => [alice, bob, carol].every((p) => p.engine.members("#ops")?.length === 3), "three members everywhere");

    const tiny = await person("dave", { commitBytes: 4_000 });
    const erin = await person("erin");
    await settle(tiny, erin);
    expect((await tiny.engine.joinRoom("#small")).ok).toBe(true);
    const before = ds.commitsSent.length;
    const epoch = ds.groupOf("#small")!.epoch;
    const r = await tiny.engine.inviteMany("#small", ["erin"]);
    expect(r.ok ? undefined : r.error).toMatchObject({ kind: "refused", detail: expect.stringMatching(/more than one relay frame carries/) });
    expect(ds.commitsSent.length).toBe(before);
    expect(ds.groupOf("#small")!.epoch).toBe(epoch);
    // Nothing half-made stays behind: no pending commit (the same refusal again, not "a commit
    // is already waiting"), and the group is as it was.
    const again = await tiny.engine.inviteMany("#small", ["erin"]);
    expect(again.ok ? undefined : again.error).toMatchObject({ kind: "refused", detail: expect.stringMatching(/more than one relay frame carries/) });
    expect(tiny.engine.members("#small")).toEqual(["dave"]);
  });
});

describe("the lobby janitor (commit.ts sweepLobby, policy.ts lobbySweepAllowed)", () => {
  it("the online member with the lowest leaf removes a user offline for more than 24 hours, once; the others accept it; the user comes back by external commit", { timeout: 180_000 }, async () => {
    const alice = await person("alice", { presence: true });
    const bob = await person("bob", { presence: true });
    const carol = await person("carol", { presence: true });
    await waitUntil(() => [alice, bob, carol].every((p) => p.engine.members("lobby")?.length === 3), "three in the lobby");
    await settle(alice, bob, carol);
    const epoch = ds.groupOf("lobby")!.epoch;
    ds.disconnect("carol");
    const tick = async (): Promise<void> => { for (const p of [alice, bob]) await p.engine.checkTimers(); await settle(alice, bob); };
    await tick(); // alice and bob start watching carol offline
    now += LOBBY_STALE_MS - 60_000;
    await tick();
    expect(ds.groupOf("lobby")!.epoch).toBe(epoch); // not yet 24 h
    now += 60_000;
    await tick();
    await waitUntil(() => [alice, bob].every((p) => p.engine.members("lobby")?.length === 2), "carol's leaf removed everywhere");
    expect(ds.groupOf("lobby")!.epoch).toBe(epoch + 1);
    expect(lines(bob, "lobby").some((l) => lineText(l) === "alice removed carol")).toBe(true);
    expect(refusals(bob)).toEqual([]);
    now += LOBBY_SWEEP_MS;
    await tick();
    expect(ds.groupOf("lobby")!.epoch).toBe(epoch + 1); // nothing more to sweep
    // carol comes back: a plain external join (her old leaf is gone), and the lobby talks.
    await restart(carol);
    await waitUntil(() => [alice, bob, carol].every((p) => p.engine.members("lobby")?.length === 3), "carol back in the lobby");
    sent(carol, "lobby", "back after a day");
    await expectText(alice, "lobby", "carol: back after a day");
  });

  it("a hostile member's commit removing an online user from the lobby is refused by the members and shown; the user stays", { timeout: 120_000 }, async () => {
    const alice = await person("alice", { presence: true });
    const bob = await person("bob", { presence: true });
    const carol = await person("carol", { presence: true });
    await waitUntil(() => [alice, bob, carol].every((p) => p.engine.members("lobby")?.length === 3), "three in the lobby");
    await settle(alice, bob, carol);
    // bob's client is modified: it removes carol (online) from the lobby itself.
    const client = await bob.store.loadOrCreateClient();
    const g = bob.store.loadGroup(client, "lobby")!;
    const p = await g.removeMembers(["carol"]);
    expect((await ds.api("bob").sendCommit({ commit: p.commit, groupInfo: new Uint8Array(0), added: [], removed: [] })).ok).toBe(true);
    for (const x of [alice, carol]) {
      await waitUntil(() => lines(x, "lobby").some((l) => l.kind === "refused"), `${x.name} shows the refused change`);
      expect(lines(x, "lobby").find((l) => l.kind === "refused")).toMatchObject({ kind: "refused", by: "bob", users: ["carol"] });
    }
    expect(alice.engine.members("lobby")).toEqual(["alice", "bob", "carol"]);
    expect(carol.engine.members("lobby")).toEqual(["alice", "bob", "carol"]);
  });
});

describe("missed commits", () => {
  it("a message of a future epoch is held; past the bound the missing commit is fetched and the message read", { timeout: 120_000 }, async () => {
    const [alice, bob, carol] = await roomOfThree();
    // The relay drops the next commit to carol (bob's update).
    let dropped = 0;
    ds.intercept = (to, q) => (to === "carol" && q.item.kind === MlsKind.MLS_KIND_COMMIT && dropped++ === 0 ? undefined : q);
    double(bob).update = true;
    sent(bob, "#ops", "after the update");
    await expectText(alice, "#ops", "bob: after the update");
    await settle(carol);
    expect(dropped).toBe(1);
    expect(texts(carol, "#ops")).toEqual([]);
    // Not yet past the bound: still held.
    now += 60_000;
    await carol.engine.checkTimers();
    expect(texts(carol, "#ops")).toEqual([]);
    now += 10 * 60_000;
    await carol.engine.checkTimers();
    await expectText(carol, "#ops", "bob: after the update");
    expect(notices(carol)).toEqual([]);
    sent(carol, "#ops", "caught up");
    await expectText(alice, "#ops", "carol: caught up");
  });

  it("a missed commit the relay cannot give either: the member joins again by external commit and says so", { timeout: 120_000 }, async () => {
    const [alice, bob, carol] = await roomOfThree();
    let dropped = 0;
    ds.intercept = (to, q) => (to === "carol" && q.item.kind === MlsKind.MLS_KIND_COMMIT && dropped++ === 0 ? undefined : q);
    const epoch = ds.groupOf("#ops")!.epoch;
    double(bob).update = true;
    sent(bob, "#ops", "unreadable for carol");
    await expectText(alice, "#ops", "bob: unreadable for carol");
    ds.forgetCommit("#ops", epoch);
    await settle(carol);
    now += 11 * 60_000;
    await carol.engine.checkTimers();
    expect(notices(carol)).toEqual(["missing changes in #ops: joined it again; 1 message(s) sent meanwhile could not be read"]);
    await waitUntil(() => alice.engine.members("#ops")?.length === 3 && bob.engine.members("#ops")?.length === 3, "carol is back (resync: still three)");
    sent(alice, "#ops", "welcome back");
    await expectText(carol, "#ops", "alice: welcome back");
    sent(carol, "#ops", "thanks");
    await expectText(bob, "#ops", "carol: thanks");
  });
});

describe("restart from the store", () => {
  it("a member restarted mid-conversation keeps its groups and talks on", { timeout: 120_000 }, async () => {
    const [alice, bob] = await roomOfThree();
    sent(alice, "dm:alice:bob", "dm before");
    await expectText(bob, "dm:alice:bob", "alice: dm before");
    await restart(bob);
    expect(bob.engine.members("#ops")).toEqual(["alice", "bob", "carol"]);
    expect(bob.engine.creator("#ops")).toBe("alice");
    sent(alice, "#ops", "room after");
    await expectText(bob, "#ops", "alice: room after");
    sent(bob, "dm:alice:bob", "dm after");
    await expectText(alice, "dm:alice:bob", "bob: dm after");
    // The kick rule survives the restart: bob still cannot remove anyone.
    const k = await bob.engine.kick("#ops", "carol");
    expect(k.ok).toBe(false);
  });
});

describe("KeyPackages", () => {
  it("20 one-time and a last-resort one; topped up below 5; a used last-resort one replaced", { timeout: 120_000 }, async () => {
    const alice = await person("alice");
    const bob = await person("bob");
    expect(ds.oneTimeLeft("bob")).toBe(20);
    for (let i = 0; i < 17; i++) await ds.api("alice").claimKeyPackages(["bob"]);
    expect(ds.oneTimeLeft("bob")).toBe(3);
    await bob.engine.keyPackageStatus(3);
    expect(ds.oneTimeLeft("bob")).toBe(23);
    // A restart publishes one and tops up from the relay's answer.
    for (let i = 0; i < 20; i++) await ds.api("alice").claimKeyPackages(["bob"]);
    await restart(bob);
    expect(ds.oneTimeLeft("bob")).toBe(24 - 20 + 20);
    // Only the last-resort one left: a DM uses it, bob joins, and replaces it.
    for (let i = 0; i < 24; i++) await ds.api("alice").claimKeyPackages(["bob"]);
    expect(ds.oneTimeLeft("bob")).toBe(0);
    const lastResort = ds.lastResortOf("bob");
    sent(alice, "dm:alice:bob", "via last resort");
    await expectText(bob, "dm:alice:bob", "alice: via last resort");
    await settle(bob);
    expect(ds.lastResortOf("bob")).toBeDefined();
    expect(Buffer.from(ds.lastResortOf("bob")!).equals(Buffer.from(lastResort!))).toBe(false);
  });
});

describe("the lobby", () => {
  it("entered with one KeyPackage on the relay (a DM to me opens at once), the other 19 published after; the entry is a joined line of mine", { timeout: 120_000 }, async () => {
    const alice = await person("alice");
    const bob = await person("bob", { online: false });
    let leftAtEntry: number | undefined;
    const push = bob.events.push.bind(bob.events);
    bob.events.push = (...es: SessionEvent[]): number => {
      for (const e of es) {
        if (e.type !== "membership" || e.conversationId !== "lobby" || e.line.by !== "bob" || e.line.kind !== "joined" || leftAtEntry !== undefined) continue;
        leftAtEntry = ds.oneTimeLeft("bob");
        sent(alice, "dm:alice:bob", "welcome in");
      }
      return push(...es);
    };
    await online(bob);
    expect(leftAtEntry).toBe(1);
    await expectText(bob, "dm:alice:bob", "alice: welcome in");
    // The other 19 go up after the entry, in the background, racing alice's claim of the one that
    // was there: count what was published (left + claimed), not what is left at one moment.
    const published = (): number => ds.oneTimeLeft("bob") + (ds.claims.get("bob") ?? 0);
    await waitUntil(() => (published() >= 20 ? true : undefined), "bob's other 19 KeyPackages published", 30_000);
    expect(published()).toBe(20);
  });

  it("everyone online joins it; a message reaches those online; one who comes later joins and talks; the cap is a sentence", { timeout: 120_000 }, async () => {
    const alice = await person("alice");
    const bob = await person("bob");
    const carol = await person("carol", { online: false });
    await waitUntil(() => alice.engine.members("lobby")?.length === 2, "two in the lobby");
    sent(alice, "lobby", "hello lobby");
    await expectText(bob, "lobby", "alice: hello lobby");
    await online(carol);
    await waitUntil(() => alice.engine.members("lobby")?.length === 3 && bob.engine.members("lobby")?.length === 3, "three in the lobby");
    expect(texts(carol, "lobby")).toEqual([]);
    sent(carol, "lobby", "hi all");
    await expectText(alice, "lobby", "carol: hi all");
    await expectText(bob, "lobby", "carol: hi all");
    // bob restarts (missed nothing): comes back with resync, still three leaves' worth of users.
    await restart(bob);
    sent(alice, "lobby", "again");
    await expectText(bob, "lobby", "alice: again");
    const dave = await person("dave", { lobbyMaxMembers: 3 });
    expect(notices(dave)).toEqual(["the lobby is full (3 members); it cannot be joined now"]);
    expect(dave.engine.members("lobby")).toBeUndefined();
  });
});

describe("a hostile relay", () => {
  it("a Welcome handed to someone nobody added: a notice, nothing joined", { timeout: 120_000 }, async () => {
    const [alice] = await roomOfThree();
    const dave = await person("dave");
    const erin = await person("erin");
    let welcome: MlsQueuedLike | undefined;
    ds.intercept = (to, q) => {
      if (to === "dave" && q.item.kind === MlsKind.MLS_KIND_WELCOME) welcome = q;
      return q;
    };
    expect((await alice.engine.invite("#ops", "dave")).ok).toBe(true);
    await waitUntil(() => welcome !== undefined && dave.engine.members("#ops")?.length === 4, "dave joined");
    ds.inject("erin", "#ops", welcome!.item);
    await settle(erin);
    expect(notices(erin)).toEqual(["an invitation to #ops from alice could not be opened; nothing was joined (ask to be added again)"]);
    expect(erin.engine.members("#ops")).toBeUndefined();
    expect(erin.store.conversations()).not.toContain("#ops");
  });

  it("a Welcome whose relay sender is not a member of the group: a notice, nothing joined", { timeout: 120_000 }, async () => {
    const [alice] = await roomOfThree();
    const dave = await person("dave");
    ds.intercept = (to, q) => (to === "dave" && q.item.kind === MlsKind.MLS_KIND_WELCOME ? { ...q, item: { ...q.item, sender: "mallory" } } : q);
    expect((await alice.engine.invite("#ops", "dave")).ok).toBe(true);
    await settle(dave);
    await waitUntil(() => notices(dave).length > 0, "a notice");
    expect(notices(dave)).toEqual(["an invitation to #ops did not come from a member of it; nothing was joined"]);
    expect(dave.engine.members("#ops")).toBeUndefined();
    expect(dave.store.conversations()).not.toContain("#ops");
  });

  it("a replayed commit changes nothing and shows nothing; a replayed message is not shown twice", { timeout: 120_000 }, async () => {
    const [alice, bob, carol] = await roomOfThree();
    const dave = await person("dave");
    await settle(alice, bob, carol, dave);
    const seen: MlsQueuedLike[] = [];
    ds.intercept = (to, q) => { if (to === "carol" && q.conversationId === "#ops") seen.push(q); return q; };
    expect((await alice.engine.invite("#ops", dave.name)).ok).toBe(true);
    sent(bob, "#ops", "once");
    await expectText(carol, "#ops", "bob: once");
    await settle(carol);
    const commit = seen.find((q) => q.item.kind === MlsKind.MLS_KIND_COMMIT && q.item.sender === "alice")!;
    const message = seen.find((q) => q.item.kind === MlsKind.MLS_KIND_APPLICATION)!;
    const linesBefore = lines(carol, "#ops").length;
    const epoch = ds.groupOf("#ops")!.epoch;
    ds.intercept = undefined;
    ds.inject("carol", "#ops", commit.item);
    ds.inject("carol", "#ops", message.item);
    await settle(carol);
    expect(lines(carol, "#ops").length).toBe(linesBefore);
    expect(texts(carol, "#ops").filter((t) => t === "bob: once")).toHaveLength(1);
    // Both are dropped without a word (the replayed message's key is used: it could not open again).
    expect(refusals(carol)).toEqual([]);
    expect(carol.engine.members("#ops")).toHaveLength(4);
    expect(ds.groupOf("#ops")!.epoch).toBe(epoch);
    sent(alice, "#ops", "still fine");
    await expectText(carol, "#ops", "alice: still fine");
  });

  it("a message whose relay-authenticated sender is not its MLS sender is refused", { timeout: 120_000 }, async () => {
    const [alice, bob, carol] = await roomOfThree();
    ds.intercept = (to, q) => (to === "carol" && q.item.kind === MlsKind.MLS_KIND_APPLICATION && q.item.sender === "bob" ? { ...q, item: { ...q.item, sender: "alice" } } : q);
    sent(bob, "#ops", "who am i");
    await expectText(alice, "#ops", "bob: who am i");
    await settle(carol);
    expect(texts(carol, "#ops")).toEqual([]);
    expect(refusals(carol)).toEqual([{ type: "refused", conversationId: "#ops", from: "alice" }]);
    ds.intercept = undefined;
    sent(bob, "#ops", "honest");
    await expectText(carol, "#ops", "bob: honest");
  });

  it("a message sent before I joined, queued to me as I joined, is dropped without a warning; later ones show", { timeout: 120_000 }, async () => {
    const [alice, bob] = await roomOfThree();
    let early: MlsQueued | undefined;
    ds.intercept = (to, q) => {
      if (to === "bob" && q.item.kind === MlsKind.MLS_KIND_APPLICATION && q.item.sender === "alice") early ??= q;
      return q;
    };
    sent(alice, "#ops", "before dave");
    await expectText(bob, "#ops", "alice: before dave");
    ds.intercept = undefined;
    const dave = await person("dave");
    expect((await dave.engine.joinRoom("#ops")).ok).toBe(true);
    await waitUntil(() => dave.engine.members("#ops")?.length === 4, "dave in #ops");
    ds.inject("dave", "#ops", early!.item);
    await settle(dave);
    expect(refusals(dave)).toEqual([]);
    expect(texts(dave, "#ops")).toEqual([]);
    await settle(alice);
    sent(alice, "#ops", "after dave");
    await expectText(dave, "#ops", "alice: after dave");
  });

  it("a commit whose relay-authenticated sender is not its committer is refused", { timeout: 120_000 }, async () => {
    const [alice, bob, carol] = await roomOfThree();
    ds.intercept = (to, q) => (to === "carol" && q.item.kind === MlsKind.MLS_KIND_COMMIT && q.item.sender === "bob" ? { ...q, item: { ...q.item, sender: "alice" } } : q);
    double(bob).update = true;
    sent(bob, "#ops", "x");
    await expectText(alice, "#ops", "bob: x");
    await settle(carol);
    expect(refusals(carol)).toContainEqual({ type: "refused", conversationId: "#ops", from: "alice" });
    expect(texts(carol, "#ops")).toEqual([]);
  });
});

describe("§12 epoch views after my own changes (commit.ts)", () => {
  it("creating a room, joining it by external commit and committing an add record my view of the new epoch at once, before any delivery", { timeout: 120_000 }, async () => {
    const alice = await person("alice");
    const bob = await person("bob");
    const carol = await person("carol");
    await settle(alice, bob, carol);
    const room = "#ops";
    expect((await alice.engine.joinRoom(room)).ok).toBe(true);
    expect(double(alice).views.get(room)).toBe(0);
    expect((await bob.engine.joinRoom(room)).ok).toBe(true);
    expect(ds.groupOf(room)!.epoch).toBe(1);
    expect(double(bob).views.get(room)).toBe(1);
    await waitUntil(() => lines(alice, room).some((l) => lineText(l) === "bob joined"), "alice sees bob join");
    await settle(alice, bob);
    expect((await alice.engine.invite(room, "carol")).ok).toBe(true);
    // No delivery reached alice since her commit was accepted: the view is taken by the commit itself.
    expect(ds.groupOf(room)!.epoch).toBe(2);
    expect(double(alice).views.get(room)).toBe(2);
  });
});

describe("with the real content layer (content.ts)", () => {
  it("a DM message the relay drops is flagged lost on the sender's side once the peer has written twice (§11), and the peer sees the gap", { timeout: 120_000 }, async () => {
    const alice = await person("alice", { realContent: true });
    const bob = await person("bob", { realContent: true });
    const dm = "dm:alice:bob";
    sent(alice, dm, "one");
    await expectText(bob, dm, "alice: one");
    sent(bob, dm, "ack one");
    await expectText(alice, dm, "bob: ack one");
    // The relay drops alice's next message for bob (accepted, never delivered).
    ds.intercept = (to, q) => (to === "bob" && q.item.kind === MlsKind.MLS_KIND_APPLICATION ? undefined : q);
    const lost = sent(alice, dm, "dropped");
    await waitUntil(() => states(alice, lost).includes("accepted"), "accepted by the relay");
    ds.intercept = undefined;
    sent(bob, dm, "bob 1");
    await expectText(alice, dm, "bob: bob 1");
    sent(bob, dm, "bob 2");
    await expectText(alice, dm, "bob: bob 2");
    await waitUntil(() => states(alice, lost).includes("failed"), "alice's dropped message flagged");
    sent(alice, dm, "after the drop");
    await expectText(bob, dm, "alice: after the drop");
    const m = bob.events.find((e) => e.type === "message" && e.message.text === "after the drop");
    expect(m?.type === "message" && m.message.gap).toBe(true);
  });
});

type MlsQueuedLike = Parameters<NonNullable<FakeDs["intercept"]>>[1];
