// A catch-up saves each MLS group once per delivery batch, not once per message (issue 12
// "Performance"; PROTOCOL.md §10.4 "Client storage": history → state → ack, per batch): the
// MLS store's write (sealed, synchronous FULL) was the catch-up's cost, ~36 ms a message under
// load. The batch's messages are acked together after the save. That a crash between the
// messages shown and the save loses nothing is test/system/mls-catchup-crash.test.ts.
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { MlsKeyStore } from "../../src/client/mls-store.js";
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
  dir = mkdtempSync(join(tmpdir(), "sc-mls-catchup-"));
  relay = await TestRelay.start({ limits: { messagesPerSecond: 1000, burst: 1000 } });
});
afterEach(async () => {
  for (const c of clients.splice(0)) await c.close();
  await relay.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

/** A v2 client whose MLS store (kept across restarts) counts the saves of each conversation's group. */
async function v2(id: PrivateIdentity, saves?: Map<string, number>): Promise<TestClient> {
  const store = MlsKeyStore.open(join(dir, `${id.username}_mls.db`), { username: id.username, sigPrivate: id.sigPrivate });
  if (saves !== undefined) {
    const save = store.saveGroup.bind(store);
    store.saveGroup = (g, o) => {
      saves.set(g.conversation.id, (saves.get(g.conversation.id) ?? 0) + 1);
      save(g, o);
    };
  }
  const userDir = join(dir, id.username);
  mkdirSync(userDir, { recursive: true });
  const c = await TestClient.start(id, 0, { server: relay.address, dir: userDir, statePath: join(dir, `${id.username}_state.db`), v2: { store } });
  clients.push(c);
  return c;
}

describe("catching up on protocol v2", () => {
  it("30 queued messages: every one shown once, in order; the DM's group saved once per batch, the batch acked together", { timeout: 120_000 }, async () => {
    const a = await v2(alice);
    let b = await v2(bob);
    const dm = "dm:alice:bob";
    const r = a.client.send(dm, "hello");
    if (!r.ok) throw new Error("send failed");
    await b.waitForMessage("hello", 30_000);
    clients.splice(clients.indexOf(b), 1);
    await b.close();

    const texts = Array.from({ length: 30 }, (_, i) => `queued ${i}`);
    for (const t of texts) {
      const s = a.client.send(dm, t);
      if (!s.ok) throw new Error("send failed");
      await a.waitForState(s.value.id, "accepted", 30_000);
    }
    const acksBefore = relay.events("ack").length;
    const saves = new Map<string, number>();
    b = await v2(bob, saves);
    await b.waitForMessage("queued 29", 60_000);
    await waitUntil(() => bobAcks(acksBefore).seqs >= 30, "bob acks the 30", 30_000);
    const shown = b.events.flatMap((e) => (e.type === "message" && e.message.conversationId === dm ? [e.message.text] : []));
    expect(shown).toEqual(texts);
    // The relay delivers up to 128 per batch: the 30 come in one or two (the first may be cut short).
    expect(saves.get(dm) ?? 0).toBeGreaterThanOrEqual(1);
    expect(saves.get(dm)).toBeLessThanOrEqual(2);
    expect(bobAcks(acksBefore).frames).toBeLessThanOrEqual(4);
    // The saved state is the one after the last message: the conversation goes on, both ways.
    const after = a.client.send(dm, "still there?");
    if (!after.ok) throw new Error("send failed");
    await b.waitForMessage("still there?", 30_000);
    const back = b.client.send(dm, "yes");
    if (!back.ok) throw new Error("send failed");
    await a.waitForMessage("yes", 30_000);
  });
});

/** Ack frames and seqs bob sent since the relay's `from`-th ack log line. */
function bobAcks(from: number): { frames: number; seqs: number } {
  const mine = relay.events("ack").slice(from).filter((l) => l["user"] === "bob");
  return { frames: mine.length, seqs: mine.reduce((n, l) => n + Number(l["seqs"]), 0) };
}
