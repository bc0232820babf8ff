// ChatClient in protocol v2 mode (src/client/mls/session.ts + conversations.ts) over a real
// relay: Hello protocol_version 2, every conversation an MLS group through the relay's durable
// queues, with the real content layer (src/client/mls/content.ts, in the state db). A DM both ways and to a peer offline (read after a restart from the MLS store), a room
// with a join, an invite, a kick and a leave shown as membership lines, the lobby.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { MlsKeyStore } from "../../src/client/mls-store.js";
import type { MembershipLine, SessionEvent } from "../../src/client/types.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { TestClient } from "../helpers/client-harness.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { TestRelay } from "../helpers/relay-harness.js";
import { waitUntil } from "../helpers/wait.js";

let alice: PrivateIdentity;
let bob: PrivateIdentity;
let carol: PrivateIdentity;
let relay: TestRelay;
let dir: string;
const clients: TestClient[] = [];

beforeAll(async () => {
  [alice, bob, carol] = await Promise.all([fixtureIdentity("alice"), fixtureIdentity("bob"), fixtureIdentity("carol")]);
});
beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "sc-mls-client-"));
  relay = await TestRelay.start();
});
afterEach(async () => {
  for (const c of clients.splice(0)) await c.close();
  await relay.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

/** A v2 ChatClient whose MLS store is `<dir>/<user>_mls.db` (kept across restarts) and whose known_peers are in `<dir>/<user>`. */
async function v2(id: PrivateIdentity): Promise<TestClient> {
  const store = MlsKeyStore.open(join(dir, `${id.username}_mls.db`), { username: id.username, sigPrivate: id.sigPrivate });
  const userDir = join(dir, id.username);
  mkdirSync(userDir, { recursive: true });
  const statePath = join(dir, `${id.username}_state.db`);
  const c = await TestClient.start(id, 0, { server: relay.address, dir: userDir, statePath, v2: { store } });
  clients.push(c);
  return c;
}

async function stop(c: TestClient): Promise<void> {
  clients.splice(clients.indexOf(c), 1);
  await c.close();
}

/** The bytes of a user's state db and its -wal (what a copy of the directory holds). */
const stateFiles = (user: string): Buffer[] =>
  [`${user}_state.db`, `${user}_state.db-wal`].map((f) => join(dir, f)).filter((f) => existsSync(f)).map((f) => readFileSync(f));

/** How many v2 messages wait in the user's kept outbox (the state db's mls_outbox table). */
function outboxRows(user: string): number {
  const db = new DatabaseSync(join(dir, `${user}_state.db`));
  try {
    return Number((db.prepare("SELECT count(*) AS n FROM mls_outbox").get() as { n: number }).n);
  } finally {
    db.close();
  }
}

const lines = (c: TestClient, conv: string): string[] =>
  c.events.flatMap((e: SessionEvent) => e.type === "membership" && e.conversationId === conv ? [text(e.line)] : []);
const text = (l: MembershipLine): string => `${l.by} ${l.kind}${l.users.length > 0 ? ` ${l.users.join(",")}` : ""}`;

function send(c: TestClient, conv: string, body: string): string {
  const r = c.client.send(conv, body);
  if (!r.ok) throw new Error(`send failed: ${JSON.stringify(r.error)}`);
  return r.value.id;
}

describe("ChatClient, protocol v2", () => {
  it("a DM both ways, then to a peer offline who reads it after a restart from its MLS store", { timeout: 120_000 }, async () => {
    const a = await v2(alice);
    let b = await v2(bob);
    const dm = "dm:alice:bob";
    const id = send(a, dm, "hi bob");
    await b.waitForMessage("hi bob", 30_000);
    await a.waitForState(id, "accepted", 30_000);
    expect(lines(b, dm)).toEqual(["alice added bob"]);
    send(b, dm, "hi alice");
    await a.waitForMessage("hi alice", 30_000);

    await stop(b);
    const id2 = send(a, dm, "while you were away");
    await a.waitForState(id2, "accepted", 30_000);
    b = await v2(bob);
    await b.waitForMessage("while you were away", 30_000);
    // The MLS deliveries count toward the caught-up line like v1 envelopes.
    const caught = await b.waitFor((e) => e.type === "caught-up", "caught up", 30_000);
    expect(caught.type === "caught-up" && caught.count).toBe(1);
    send(b, dm, "back");
    await a.waitForMessage("back", 30_000);
  });

  it("a message shown pending while the relay is down survives a restart: sent once, in order, before one sent after", { timeout: 120_000 }, async () => {
    let a = await v2(alice);
    let b = await v2(bob);
    const dm = "dm:alice:bob";
    await a.waitForState(send(a, dm, "first"), "accepted", 30_000);
    await b.waitForMessage("first", 30_000);
    await stop(b);
    await relay.stop();
    await waitUntil(() => a.events.some((e) => e.type === "connection" && e.status.state !== "connected"), "alice sees the relay gone", 30_000);
    const id = send(a, dm, "while the relay was down");
    // Shown pending, never accepted: only the durable outbox keeps it across the restart.
    await waitUntil(() => a.messages(dm).some((m) => m.id === id && m.state === "pending"), "shown pending", 10_000);
    await stop(a);
    // At rest the kept text is sealed like v1's outbox and history (PROTOCOL.md §10.4): no file holds it in the clear.
    expect(stateFiles("alice").some((f) => f.includes(Buffer.from("while the relay was down")))).toBe(false);
    expect(outboxRows("alice")).toBe(1);
    await relay.restart();
    b = await v2(bob);
    a = await v2(alice);
    // At start it is shown pending again (not "failed: not confirmed before the app closed").
    expect(a.client.backlog().filter((m) => m.id === id).map((m) => [m.text, m.state])).toEqual([["while the relay was down", "pending"]]);
    await a.waitForState(id, "accepted", 30_000);
    send(a, dm, "after the restart");
    await b.waitForMessage("after the restart", 30_000);
    const got = b.messages(dm).filter((m) => !m.own).map((m) => m.text);
    expect(got.filter((t) => t === "while the relay was down")).toHaveLength(1);
    expect(got.indexOf("while the relay was down")).toBeLessThan(got.indexOf("after the restart"));
    // Accepted: nothing waits in the kept outbox any more.
    await waitUntil(() => outboxRows("alice") === 0, "the kept outbox emptied", 10_000);
  });

  it("a room: create, join, invite, kick and leave, each a line naming who; the lobby", { timeout: 180_000 }, async () => {
    const a = await v2(alice);
    const b = await v2(bob);
    const c = await v2(carol);
    const room = "#ops";
    expect((await a.client.joinRoom(room)).ok).toBe(true);
    const jb = await b.client.joinRoom(room);
    expect(jb.ok && jb.value.members).toEqual(["alice", "bob"]);
    await waitUntil(() => lines(a, room).includes("bob joined"), "alice sees bob join", 30_000);
    expect(a.client.invite).toBeDefined();
    expect((await b.client.invite!(room, "carol")).ok).toBe(true);
    await waitUntil(() => lines(c, room).includes("bob added carol"), "carol added", 30_000);
    send(c, room, "hello room");
    await a.waitForMessage("hello room", 30_000);
    await b.waitForMessage("hello room", 30_000);

    const refused = await b.client.kick!(room, "carol");
    expect(refused.ok).toBe(false);
    expect((await a.client.kick!(room, "carol")).ok).toBe(true);
    await waitUntil(() => lines(c, room).includes("alice removed carol"), "carol sees her removal", 30_000);
    await waitUntil(() => lines(b, room).includes("alice removed carol"), "bob sees it", 30_000);
    expect((await c.client.members(room)).ok).toBe(false);

    expect((await b.client.leaveRoom(room)).ok).toBe(true);
    await waitUntil(() => lines(a, room).includes("bob left"), "alice sees bob leave", 30_000);
    const m = await a.client.members(room);
    expect(m.ok && m.value).toEqual(["alice"]);

    // The lobby: everyone online is in it.
    await waitUntil(async () => { const x = await a.client.members("lobby"); return x.ok && x.value.length === 3; }, "three in the lobby", 30_000);
    send(b, "lobby", "hello lobby");
    await a.waitForMessage("hello lobby", 30_000);
    await c.waitForMessage("hello lobby", 30_000);
  });

  it("entering the lobby is a `joined` line of mine (also after a restart); /rooms and the rooms event from the MLS groups", { timeout: 120_000 }, async () => {
    let a = await v2(alice);
    await waitUntil(() => lines(a, "lobby").includes("alice joined"), "alice's own lobby entry", 30_000);
    const inLobby = await a.client.members("lobby");
    expect(inLobby.ok && inLobby.value).toEqual(["alice"]);

    const b = await v2(bob);
    await waitUntil(() => lines(b, "lobby").includes("bob joined"), "bob's own lobby entry", 30_000);
    expect((await a.client.joinRoom("#ops")).ok).toBe(true);
    expect((await b.client.joinRoom("#ops")).ok).toBe(true);
    await waitUntil(() => lines(a, "#ops").includes("bob joined"), "alice sees bob join", 30_000);
    const listing = await a.client.listRooms();
    expect(listing.ok && listing.value).toEqual({ joined: [{ room: "#ops", members: ["alice", "bob"] }], all: [{ room: "#ops", memberCount: 2 }] });
    const roomEvents = a.events.flatMap((e) => (e.type === "rooms" ? [e.rooms] : []));
    expect(roomEvents.at(-1)).toEqual([{ room: "#ops", members: ["alice", "bob"] }]);

    // Back after a restart, from the kept lobby group: the entry is a line again.
    await stop(a);
    a = await v2(alice);
    await waitUntil(() => lines(a, "lobby").includes("alice joined"), "alice's lobby entry after a restart", 30_000);
    const again = await a.client.listRooms();
    expect(again.ok && again.value.joined).toEqual([{ room: "#ops", members: ["alice", "bob"] }]);
  });
});
