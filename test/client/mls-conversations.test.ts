// The protocol v2 conversation engine (src/client/mls/conversations.ts, PROTOCOL-v2.md §4-§9)
// against an in-memory Delivery Service (test/helpers/fake-ds.ts): DMs, rooms, the lobby,
// commit races, missed commits, restarts from the store, KeyPackage top-up, and what a hostile
// relay can try (each refused or shown, and the honest members keep talking).
import { generateKeyPairSync, randomBytes, type KeyObject } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { MlsConversations } from "../../src/client/mls/conversations.js";
import type { ContentLayer, OpenedContent } from "../../src/client/mls/content-api.js";
import { MlsKeyStore } from "../../src/client/mls-store.js";
import type { MembershipLine, SessionEvent } from "../../src/client/types.js";
import { MlsKind } from "../../src/gen/securechat/v1/chat.js";
import { jsonLineLogger, nullLogger } from "../../src/protocol/log.js";
import { MlsGroup, type AppKind, type TrustHook } from "../../src/protocol/mls/index.js";
import { FakeDs } from "../helpers/fake-ds.js";
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
  for (const p of people.splice(0)) { p.engine.close(); p.store.close(); }
  rmSync(root, { recursive: true, force: true });
});

/**
 * A trivial content layer: the app data is JSON {id, kind, text, sentAt}; duplicates by id; a
 * configurable update policy. (The real one, with chains and drop detection, is content.ts.)
 */
class TestContent implements ContentLayer {
  readonly seen = new Set<string>();
  update = false;
  committedCount = 0;
  readonly forgotten: string[] = [];
  seal(_c: string, _g: Uint8Array, kind: AppKind, text: string, nowMs: number) {
    const messageId = randomBytes(16);
    return { app: new TextEncoder().encode(JSON.stringify({ id: messageId.toString("hex"), kind, text, sentAt: nowMs })), messageId, sentAtMs: nowMs };
  }
  accepted(): void {}
  open(_c: string, _g: Uint8Array, _sender: string, app: Uint8Array): { content: OpenedContent; own: { confirmed: string[]; lost: string[] } } {
    const j = JSON.parse(new TextDecoder().decode(app)) as { id: string; kind: AppKind; text: string; sentAt: number };
    const duplicate = this.seen.has(j.id);
    this.seen.add(j.id);
    return { content: { messageId: Buffer.from(j.id, "hex"), kind: j.kind, text: j.text, sentAtMs: j.sentAt, gap: false, duplicate }, own: { confirmed: [], lost: [] } };
  }
  membersChanged(): void {}
  shouldUpdate(): boolean { return this.update; }
  committed(): void { this.committedCount++; }
  forget(c: string): void { this.forgotten.push(c); }
}

interface Person {
  readonly name: string;
  readonly sigPrivate: KeyObject;
  store: MlsKeyStore;
  engine: MlsConversations;
  content: TestContent;
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

function makeEngine(p: Omit<Person, "engine">): MlsConversations {
  return new MlsConversations({
    me: p.name, identity: { username: p.name, sigPrivate: p.sigPrivate }, store: p.store, ds: ds.api(p.name), content: p.content,
    trust: trustOf(p.pins), clock: () => now, logger: process.env["MLS_DEBUG"] ? jsonLineLogger((l) => process.stderr.write(`${p.name} ${l}`), "debug") : nullLogger, emit: (e) => p.events.push(e),
  });
}

async function person(name: string, options: { online?: boolean } = {}): Promise<Person> {
  const { privateKey } = generateKeyPairSync("ed25519");
  const store = MlsKeyStore.open(join(root, `${name}_mls.db`), { username: name, sigPrivate: privateKey });
  const base = { name, sigPrivate: privateKey, store, content: new TestContent(), events: [] as SessionEvent[], pins: new Map<string, string>() };
  const p: Person = { ...base, engine: makeEngine(base) };
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
    expect(st?.type === "message-state" ? st.failure : "").toBe("zed has no KeyPackage on this relay");
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
    expect(k.ok ? "" : k.error.kind === "refused" && k.error.detail).toBe("only alice, who created #ops, can remove members");

    // alice kicks carol; everyone sees it, carol too; carol's group is gone.
    expect((await alice.engine.kick(room, "carol")).ok).toBe(true);
    await waitUntil(() => lines(carol, room).some((l) => lineText(l) === "alice removed carol"), "carol sees her removal");
    await waitUntil(() => lines(bob, room).some((l) => lineText(l) === "alice removed carol"), "bob sees it");
    expect(carol.engine.members(room)).toBeUndefined();
    expect(carol.store.conversations()).not.toContain(room);
    expect(carol.content.forgotten).toContain(room);
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
    const r = await ds.api("bob").sendCommit({ commit: p.commit, groupInfo: new Uint8Array(0), added: [], removed: ["carol"] });
    expect(r.ok).toBe(true);
    for (const x of [alice, carol]) {
      await waitUntil(() => lines(x, room).some((l) => l.kind === "refused"), `${x.name} shows the refused change`);
      expect(lines(x, room).find((l) => l.kind === "refused")).toMatchObject({ kind: "refused", by: "bob", users: ["carol"], creator: "alice" });
    }
    // Nothing changed for the honest members: carol is still in, alice and carol still talk.
    expect(alice.engine.members(room)).toEqual(["alice", "bob", "carol"]);
    expect(carol.engine.members(room)).toEqual(["alice", "bob", "carol"]);
    sent(alice, room, "still here?");
    await expectText(carol, room, "alice: still here?");
  });
});
