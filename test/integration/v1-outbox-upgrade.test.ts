// Upgrading from protocol v1 with messages still unsent (PROTOCOL.md §14: "The v1 outbox is
// sent again as v2 messages once each conversation's group exists"). alice's state db is written
// by the v1 client itself (ChatClient without `v2`: the v1 Outbox seals each message into the
// `outbox` table, text encrypted at rest, and the history keeps it pending) while no relay is
// reachable; then alice starts as a v2 ChatClient on a real relay. Each message goes as a v2
// message of the same conversation, text and kind, in order; bob reads each once; alice sees
// each accepted once and shown once (the backlog's pending line, no second copy); the v1 row is
// gone once the v2 outbox holds it; a room's message waits, pending, until alice is in the room.
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { AtRestCipher } from "../../src/client/at-rest.js";
import { ChatClient } from "../../src/client/chat-client.js";
import { MlsKeyStore } from "../../src/client/mls-store.js";
import { ClientStateStore } from "../../src/client/state-store.js";
import { TrustStore } from "../../src/client/trust-store.js";
import type { SessionEvent } from "../../src/client/types.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { TestClient } from "../helpers/client-harness.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { TestRelay } from "../helpers/relay-harness.js";
import { waitUntil } from "../helpers/wait.js";

let alice: PrivateIdentity;
let bob: PrivateIdentity;
let relay: TestRelay;
let dir: string;
const clients: TestClient[] = [];

beforeAll(async () => {
  [alice, bob] = await Promise.all([fixtureIdentity("alice"), fixtureIdentity("bob")]);
});
beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "sc-v1-outbox-"));
  relay = await TestRelay.start();
});
afterEach(async () => {
  for (const c of clients.splice(0)) await c.close();
  await relay.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

const statePath = (): string => join(dir, "alice_state.db");

/** Rows of a table of alice's state db. */
function rows(table: "outbox" | "mls_outbox"): number {
  const db = new DatabaseSync(statePath());
  try {
    const exists = db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = ?").get(table) as { n: number };
    if (Number(exists.n) === 0) return 0;
    return Number((db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n);
  } finally {
    db.close();
  }
}

/**
 * alice as a protocol v1 client that never reaches a relay (none would take v1 now): what she
 * sends waits in the v1 outbox. bob is pinned as a v1 client that had talked to him would have
 * him. The room message is kept as the v1 Outbox keeps one (it needs the relay's room list to
 * be sent from the UI): an envelope row with its text sealed at rest under "outbox".
 */
async function writeV1Outbox(): Promise<{ lobby: string; dm1: string; dm2: string; room: string }> {
  const aliceDir = join(dir, "alice");
  mkdirSync(aliceDir, { recursive: true });
  const trust = await TrustStore.open(join(aliceDir, "alice_known_peers.json"));
  expect(trust.observe(bob)).toBe("pinned-new");
  await trust.flush();
  const state = ClientStateStore.open(statePath());
  const v1 = new ChatClient({ identity: alice, server: "127.0.0.1:9", trust, state, reconnect: false });
  const sent = (conv: string, text: string, kind?: "action"): string => {
    const r = v1.send(conv, text, kind);
    if (!r.ok) throw new Error(`v1 send failed: ${JSON.stringify(r.error)}`);
    return r.value.id;
  };
  const lobby = sent("lobby", "v1 lobby line, never sent");
  const dm1 = sent("dm:alice:bob", "v1 dm one, never sent");
  const dm2 = sent("dm:alice:bob", "waves from v1", "action");
  await waitUntil(() => v1.pendingMessages().length === 3, "three messages sealed into the v1 outbox", 10_000);
  const roomId = Buffer.alloc(16, 0x5a);
  const at = Date.now();
  state.addOutgoing({
    id: roomId, conversationId: "#ops", envelope: Buffer.from([0x0a, 0x00]), kind: "text",
    text: new AtRestCipher(alice).seal("outbox", "#ops", roomId, "v1 room line, never sent"), createdAtMs: at, sentAtMs: at,
  }, Buffer.alloc(32, 1), "alice");
  await v1.close();
  return { lobby, dm1, dm2, room: roomId.toString("hex") };
}

async function v2(id: PrivateIdentity, o: { statePath?: string } = {}): Promise<TestClient> {
  const userDir = join(dir, id.username);
  mkdirSync(userDir, { recursive: true });
  const store = MlsKeyStore.open(join(userDir, `${id.username}_mls.db`), { username: id.username, sigPrivate: id.sigPrivate });
  const c = await TestClient.start(id, 0, { server: relay.address, dir: userDir, statePath: o.statePath ?? join(userDir, "state.db"), v2: { store } });
  clients.push(c);
  return c;
}

const states = (c: TestClient, id: string, state: "accepted" | "failed"): number =>
  c.events.filter((e: SessionEvent) => e.type === "message-state" && e.id === id && e.state === state).length;

describe("the v1 outbox, sent again as protocol v2 messages", () => {
  it("each pending v1 message reaches the peer once, in order, and is accepted once; a room's waits for the room", { timeout: 150_000 }, async () => {
    const ids = await writeV1Outbox();
    expect(rows("outbox")).toBe(4);

    const b = await v2(bob);
    await waitUntil(async () => { const m = await b.client.members("lobby"); return m.ok && m.value.includes("bob"); }, "bob in the lobby", 30_000);
    // bob's room exists before alice is back, so her room message has somewhere to go later.
    expect((await b.client.joinRoom("#ops")).ok).toBe(true);

    const a = await v2(alice, { statePath: statePath() });
    // At start every v1 row is in the v2 outbox (same ids), none left in v1.
    expect(rows("outbox")).toBe(0);
    // Shown once: the backlog has each pending message once (the history's line, the same id).
    const backlog = a.client.backlog().filter((m) => Object.values(ids).includes(m.id));
    expect(backlog.map((m) => [m.conversationId, m.text, m.kind, m.state])).toEqual([
      ["lobby", "v1 lobby line, never sent", "text", "pending"],
      ["dm:alice:bob", "v1 dm one, never sent", "text", "pending"],
      ["dm:alice:bob", "waves from v1", "action", "pending"],
      ["#ops", "v1 room line, never sent", "text", "pending"],
    ]);

    const dm1 = await b.waitForMessage("v1 dm one, never sent", 60_000);
    const dm2 = await b.waitForMessage("waves from v1", 60_000);
    expect([dm1.conversationId, dm1.from, dm1.kind, dm1.id]).toEqual(["dm:alice:bob", "alice", "text", ids.dm1]);
    expect([dm2.conversationId, dm2.kind, dm2.id]).toEqual(["dm:alice:bob", "action", ids.dm2]);
    // In order: the first DM line before the second.
    const bobDm = b.messages("dm:alice:bob").map((m) => m.text);
    expect(bobDm.indexOf("v1 dm one, never sent")).toBeLessThan(bobDm.indexOf("waves from v1"));
    const lobby = await b.waitForMessage("v1 lobby line, never sent", 60_000);
    expect([lobby.conversationId, lobby.id]).toEqual(["lobby", ids.lobby]);
    for (const id of [ids.lobby, ids.dm1, ids.dm2]) await a.waitForState(id, "accepted", 30_000);

    // The room's line waits, pending (not failed), while alice is not in #ops.
    expect(states(a, ids.room, "failed")).toBe(0);
    expect(rows("mls_outbox")).toBe(1);
    const joined = await a.client.joinRoom("#ops");
    expect(joined.ok).toBe(true);
    const room = await b.waitForMessage("v1 room line, never sent", 60_000);
    expect([room.conversationId, room.id]).toEqual(["#ops", ids.room]);
    await a.waitForState(ids.room, "accepted", 30_000);

    // Accepted once each, never failed, never shown a second time as a new message.
    for (const id of Object.values(ids)) {
      expect(states(a, id, "accepted"), `accepted events for ${id}`).toBe(1);
      expect(states(a, id, "failed")).toBe(0);
      expect(a.events.filter((e) => e.type === "message" && e.message.id === id)).toEqual([]);
    }
    // Read once each by bob.
    for (const text of ["v1 lobby line, never sent", "v1 dm one, never sent", "waves from v1", "v1 room line, never sent"]) {
      expect(b.messages().filter((m) => m.text === text && !m.own)).toHaveLength(1);
    }
    await waitUntil(() => rows("mls_outbox") === 0, "the v2 outbox empty once all are accepted", 10_000);
  });
});
