// What chat-tui's sidebar and /invite rely on in protocol v2 (PROTOCOL.md §7): several users
// added in one go (ChatClient.inviteMany, one membership line when they fit one commit), and the
// rooms kept in `<user>_mls.db` announced as a `rooms` event right after a restart, before
// anything else happens in them. Real v2 ChatClients over a real relay.
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { MlsKeyStore } from "../../src/client/mls-store.js";
import type { SessionEvent } from "../../src/client/types.js";
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
  dir = mkdtempSync(join(tmpdir(), "sc-v2-rooms-"));
  relay = await TestRelay.start();
});
afterEach(async () => {
  for (const c of clients.splice(0)) await c.close();
  await relay.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

/** A v2 ChatClient whose MLS store and state db are kept in `dir` across restarts. */
async function v2(id: PrivateIdentity): Promise<TestClient> {
  const store = MlsKeyStore.open(join(dir, `${id.username}_mls.db`), { username: id.username, sigPrivate: id.sigPrivate });
  const userDir = join(dir, id.username);
  mkdirSync(userDir, { recursive: true });
  const c = await TestClient.start(id, 0, { server: relay.address, dir: userDir, statePath: join(dir, `${id.username}_state.db`), v2: { store } });
  clients.push(c);
  return c;
}

const lines = (c: TestClient, conv: string): string[] =>
  c.events.flatMap((e: SessionEvent) => (e.type === "membership" && e.conversationId === conv ? [`${e.line.by} ${e.line.kind} ${e.line.users.join(",")}`.trim()] : []));

describe("rooms in protocol v2, as the TUI needs them", () => {
  it("/invite of several users is one commit and one line; after a restart the kept rooms come as a rooms event unasked", { timeout: 180_000 }, async () => {
    let a = await v2(alice);
    const b = await v2(bob);
    const c = await v2(carol);
    await waitUntil(() => b.events.some((e) => e.type === "membership" && e.conversationId === "lobby"), "bob in the lobby", 30_000);
    await waitUntil(() => c.events.some((e) => e.type === "membership" && e.conversationId === "lobby"), "carol in the lobby", 30_000);
    expect((await a.client.joinRoom("#ops")).ok).toBe(true);

    expect(a.client.inviteMany).toBeDefined();
    const invited = await a.client.inviteMany!("#ops", ["bob", "carol", "bob"]);
    expect(invited).toEqual({ ok: true, value: { commits: 1 } });
    expect(lines(a, "#ops")).toEqual(["alice created", "alice added bob,carol"]);
    // Each one welcomed into the room (the Welcome's line names the one it welcomes).
    await waitUntil(() => lines(b, "#ops").includes("alice added bob"), "bob added", 30_000);
    await waitUntil(() => lines(c, "#ops").includes("alice added carol"), "carol added", 30_000);
    // Someone already in the room: nobody is added, and the refusal names them.
    const again = await a.client.inviteMany!("#ops", ["carol"]);
    expect(!again.ok && again.error).toEqual({ kind: "already-in-room", room: "#ops", username: "carol" });

    // Restart: nothing happens in #ops, yet the sidebar learns of it from a rooms event.
    clients.splice(clients.indexOf(a), 1);
    await a.client.close();
    a = await v2(alice);
    const rooms = await a.waitFor((e) => e.type === "rooms" && e.rooms.some((r) => r.room === "#ops"), "#ops in a rooms event after the restart", 30_000);
    expect(rooms.type === "rooms" && rooms.rooms).toEqual([{ room: "#ops", members: ["alice", "bob", "carol"] }]);
    expect(lines(a, "#ops")).toEqual([]);
  });
});
