// Membership lines of v2 conversations kept in the history (src/client/history.ts) with real
// ChatClients on a real relay: alice makes #ops, bob joins, they talk, bob leaves; after alice's
// restart her backlog has each line where it was among the messages.
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
  dir = mkdtempSync(join(tmpdir(), "sc-v2-history-"));
  relay = await TestRelay.start();
});
afterEach(async () => {
  for (const c of clients.splice(0)) await c.close();
  await relay.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

async function v2(id: PrivateIdentity): Promise<TestClient> {
  const userDir = join(dir, id.username);
  mkdirSync(userDir, { recursive: true });
  const store = MlsKeyStore.open(join(userDir, `${id.username}_mls.db`), { username: id.username, sigPrivate: id.sigPrivate });
  const c = await TestClient.start(id, 0, { server: relay.address, dir: userDir, statePath: join(userDir, "state.db"), v2: { store } });
  clients.push(c);
  return c;
}

describe("v2 membership lines in the kept history", () => {
  it("come back after a restart, in place among the messages", { timeout: 120_000 }, async () => {
    const a = await v2(alice);
    const b = await v2(bob);
    expect((await a.client.joinRoom("#ops")).ok).toBe(true);
    expect((await b.client.joinRoom("#ops")).ok).toBe(true);
    await waitUntil(() => a.events.some((e) => e.type === "membership" && e.conversationId === "#ops" && e.line.kind === "joined" && e.line.by === "bob"), "bob's join at alice", 30_000);
    const r = a.client.send("#ops", "welcome bob");
    if (!r.ok) throw new Error(JSON.stringify(r.error));
    await b.waitForMessage("welcome bob", 30_000);
    expect((await b.client.leaveRoom("#ops")).ok).toBe(true);
    await waitUntil(() => a.events.some((e) => e.type === "membership" && e.conversationId === "#ops" && e.line.kind === "left" && e.line.by === "bob"), "bob's leave at alice", 30_000);
    await a.waitForState(r.value.id, "accepted", 30_000);

    // What alice was shown live in #ops, in order.
    const live = a.events.flatMap((e) => (e.type === "membership" && e.conversationId === "#ops" ? [`${e.line.by} ${e.line.kind}`]
      : e.type === "message" && e.message.conversationId === "#ops" ? [e.message.text] : []));
    clients.splice(clients.indexOf(a), 1);
    await a.client.close();

    const again = await v2(alice);
    const kept = again.client.backlogLines().filter((i) => i.conversationId === "#ops")
      .map((i) => ("type" in i ? `${i.line.by} ${i.line.kind}` : i.text));
    expect(kept).toEqual(live);
    expect(kept).toEqual(["alice created", "bob joined", "welcome bob", "bob left"]);
    // backlog() (messages only) is what it was.
    expect(again.client.backlog().filter((m) => m.conversationId === "#ops").map((m) => m.text)).toEqual(["welcome bob"]);
  });
});
