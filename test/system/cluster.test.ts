// Many relays, one service (issue 14): three chat-relay PROCESSES on loopback share one PostgreSQL
// (a private cluster of this test: it is stopped and restarted here) and one TLS certificate.
// Five real ChatClients, spread over the relays, each naming all three in its own order
// (--server a,b,c: the first that answers, the next when a session ends), share a room; three
// of them type into it continuously. Then:
//   1. kill -9 of one relay under load: its clients move to the others; every message the relays
//      ACCEPTED reaches every other member exactly once, in the order it was typed;
//   2. the database goes down under load and comes back: while it is down, senders are refused
//      with a sentence naming the relay's database (a message refused, or the session refused:
//      an answer, not a hang; what is typed meanwhile waits in the outbox); nothing acknowledged
//      before is lost; everyone recovers and the typing goes on.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execFileSync } from "node:child_process";
import { afterEach, beforeAll, describe, expect, it, onTestFailed } from "vitest";
import type { ChatClientOptions } from "../../src/client/chat-client.js";
import { describeClientError } from "../../src/client/errors.js";
import type { ChatMessage, SessionEvent } from "../../src/client/types.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { TestClient } from "../helpers/client-harness.js";
import { fixtureIdentity, type FixtureName } from "../helpers/identities.js";
import { startPrivateCluster, type PrivateCluster } from "../helpers/pg.js";
import { RELAY_BIN, startRelayProcess, type RelayProcess } from "../helpers/relay-process.js";
import { waitMember } from "../helpers/v2-waits.js";
import { waitUntil } from "../helpers/wait.js";

const ROOM = "#cluster";
const FAST_RECONNECT = { initialMs: 50, maxMs: 300 };
const TYPING_INTERVAL_MS = 250; // 4 messages a second per typist
const TLS_DIR = join(import.meta.dirname, "..", "fixtures", "tls");
// Who is on which relay first (index into the relays): two on relay 0 and 1, one on relay 2.
// Relay 1 is the one killed: bob (a typist) and erin (a reader) move.
const PEOPLE: ReadonlyArray<{ readonly name: string; readonly fixture: FixtureName; readonly first: number; readonly types: boolean }> = [
  { name: "alice", fixture: "alice", first: 0, types: true },
  { name: "bob", fixture: "bob", first: 1, types: true },
  { name: "carol", fixture: "carol", first: 2, types: true },
  { name: "dave", fixture: "dave", first: 0, types: false },
  { name: "erin", fixture: "mallory", first: 1, types: false },
];
const KILLED = 1;

const cleanups: Array<() => Promise<unknown> | unknown> = [];
let ids: Map<string, PrivateIdentity>;

beforeAll(async () => {
  ids = new Map(await Promise.all(PEOPLE.map(async (p) => [p.name, await fixtureIdentity(p.fixture, p.name)] as const)));
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

/**
 * The relays in the order this client tries them, first its own. ChatClientOptions.server takes
 * a list since the failover branch (issue 14, server-list.ts); the cast keeps this file compiling
 * against a ChatClient that takes one address (it cannot run there: nobody could move).
 */
function serverList(addresses: readonly string[], first: number): ChatClientOptions["server"] {
  const ordered = [...addresses.slice(first), ...addresses.slice(0, first)];
  return ordered as unknown as ChatClientOptions["server"];
}

interface Typist {
  readonly c: TestClient;
  readonly prefix: string;
  /** Message ids in the order typed (text `${prefix}-${index}`). */
  readonly ids: string[];
  stop(): void;
}

/** A user typing a line into the room every 250 ms, whatever the connection does. */
function typist(c: TestClient): Typist {
  const prefix = c.client.me;
  const sent: string[] = [];
  const timer = setInterval(() => {
    const r = c.client.send(ROOM, `${prefix}-${sent.length}`);
    if (!r.ok) throw new Error(`${prefix}-${sent.length}: ${describeClientError(r.error)}`);
    sent.push(r.value.id);
  }, TYPING_INTERVAL_MS);
  const stop = () => clearInterval(timer);
  cleanups.push(stop);
  return { c, prefix, ids: sent, stop };
}

type StateEvent = SessionEvent & { type: "message-state" };
const states = (c: TestClient): StateEvent[] => c.events.filter((e): e is StateEvent => e.type === "message-state");
const acceptedIds = (c: TestClient): Set<string> => new Set(states(c).filter((e) => e.state === "accepted").map((e) => e.id));
const failedIds = (c: TestClient): Set<string> => new Set(states(c).filter((e) => e.state === "failed").map((e) => e.id));
const connects = (c: TestClient): number => c.events.filter((e) => e.type === "connection" && e.status.state === "connected").length;
const received = (c: TestClient, prefix: string): ChatMessage[] => c.messages(ROOM).filter((m) => !m.own && m.text.startsWith(`${prefix}-`));

/** The texts of t's messages that were accepted, in the order typed. */
function acceptedTexts(t: Typist): string[] {
  const ok = acceptedIds(t.c);
  return t.ids.flatMap((id, i) => (ok.has(id) ? [`${t.prefix}-${i}`] : []));
}

/** Every message of t has an answer (accepted or refused): nothing hangs. */
const allAnswered = (t: Typist): boolean => {
  const ok = acceptedIds(t.c);
  const no = failedIds(t.c);
  return t.ids.every((id) => ok.has(id) || no.has(id));
};

/**
 * Every other member got exactly t's accepted messages, once each, in the order typed. A message
 * flagged as a gap (one before it from the sender may be missing) is only right right after one
 * of the sender's messages that the relays refused: the receiver cannot know that one was never
 * stored, and says so.
 */
function expectDeliveredOnceInOrder(t: Typist, members: readonly TestClient[]): void {
  const want = acceptedTexts(t);
  const failedTexts = new Set(t.ids.flatMap((id, i) => (failedIds(t.c).has(id) ? [`${t.prefix}-${i}`] : [])));
  for (const m of members) {
    if (m === t.c) continue;
    const got = received(m, t.prefix);
    expect({ at: m.client.me, texts: got.map((x) => x.text) }).toEqual({ at: m.client.me, texts: want });
    expect(new Set(got.map((x) => x.id)).size).toBe(got.length);
    for (const g of got.filter((x) => x.gap)) {
      const i = Number(g.text.slice(t.prefix.length + 1));
      expect({ gapAt: g.text, previousRefused: failedTexts.has(`${t.prefix}-${i - 1}`) }).toEqual({ gapAt: g.text, previousRefused: true });
    }
  }
}

async function startRelays(n: number, storeUrl: string, root: string): Promise<RelayProcess[]> {
  const tls = ["--tls-cert", join(TLS_DIR, "relay-cert.pem"), "--tls-key", join(TLS_DIR, "relay-key.pem")];
  const relays: RelayProcess[] = [];
  for (let i = 0; i < n; i++) {
    // One after the other: the first creates the schema (the others would wait on its lock anyway).
    const r = await startRelayProcess(join(root, `relay-${i}`), ["--store", storeUrl, ...tls]);
    cleanups.push(() => r.stop("SIGKILL"));
    relays.push(r);
  }
  return relays;
}

describe("three relays on one PostgreSQL", () => {
  it("a relay killed -9 and the database restarted under load: every accepted message once, in order, everywhere", async () => {
    const pgc: PrivateCluster = await startPrivateCluster();
    cleanups.push(() => pgc.stop());
    const root = tempDir("sc-cluster-");
    // The operator's way: the schema first (chat-relay migrate), then the relays.
    // (execFileSync throws, with its stderr, on a non-zero exit.)
    execFileSync(process.execPath, [RELAY_BIN, "migrate", "--store", pgc.url], { stdio: ["ignore", "pipe", "pipe"] });
    const relays = await startRelays(3, pgc.url, root);
    // On a failure, what the relays logged above info (a session failed, a store error).
    onTestFailed(() => {
      for (const [i, r] of relays.entries()) for (const l of r.logs) if (l["level"] !== "info" && l["level"] !== "debug") process.stderr.write(`relay-${i} ${JSON.stringify(l)}\n`);
    });
    const addresses = relays.map((r) => `127.0.0.1:${r.port}`);

    const clients: TestClient[] = [];
    for (const p of PEOPLE) {
      // Its own dir: known_peers, known_relays (the pins), MLS keys and the state database.
      const dir = tempDir(`sc-cluster-${p.name}-`);
      const c = await TestClient.start(ids.get(p.name)!, relays[p.first]!.port, {
        dir,
        statePath: join(dir, `${p.name}_state.db`),
        reconnect: FAST_RECONNECT,
        server: serverList(addresses, p.first),
      });
      cleanups.push(() => c.close());
      clients.push(c);
    }
    // The room spans the three relays: each joins in turn, and is seen by everyone before the next.
    for (const [i, c] of clients.entries()) {
      const joined = await c.client.joinRoom(ROOM);
      expect(joined.ok).toBe(true);
      for (const other of clients.slice(0, i + 1)) for (const m of clients.slice(0, i + 1)) await waitMember(other, ROOM, m.client.me, 60_000);
    }

    const typists = clients.filter((_, i) => PEOPLE[i]!.types).map(typist);
    const moved = clients.filter((_, i) => PEOPLE[i]!.first === KILLED);

    // 1. kill -9 under load, once every typist has had some messages accepted.
    await waitUntil(() => typists.every((t) => acceptedIds(t.c).size >= 8), "8 accepted messages from each typist", 30_000);
    const before = moved.map(connects);
    expect(await relays[KILLED]!.stop("SIGKILL")).toBe(null);
    await waitUntil(() => moved.every((c, i) => connects(c) > before[i]!), "the killed relay's clients connected elsewhere", 30_000);
    // They keep typing on their new relay: a few more accepted from each after the move.
    const afterMove = typists.map((t) => t.ids.length);
    await waitUntil(() => typists.every((t, i) => t.ids.slice(afterMove[i]!, afterMove[i]! + 4).filter((id) => acceptedIds(t.c).has(id)).length === 4), "4 more accepted from each typist after the move", 30_000);
    // Nothing was refused: a kill loses nothing, the clients resend what was unanswered.
    expect(typists.flatMap((t) => states(t.c).filter((e) => e.state === "failed").map((e) => `${t.prefix}: ${e.failure ?? "?"}`))).toEqual([]);

    // 2. The database goes down under load.
    const ackedBeforeOutage = typists.map((t) => acceptedTexts(t));
    const eventsAtDown = typists.map((t) => t.c.events.length);
    await pgc.down();
    // Every typist is told, within a bounded time (the relay's connect and statement timeouts
    // bound each store call): a message refused, or its session refused, with the relay's
    // sentence naming its database. What was typed meanwhile waits in the client's outbox.
    const refusalsSinceDown = (t: Typist, i: number): string[] => t.c.events.slice(eventsAtDown[i]).flatMap((e) =>
      e.type === "message-state" && e.state === "failed" ? [e.failure ?? ""]
        : e.type === "connection" && e.status.state === "reconnecting" ? [e.status.reason]
          : []);
    await waitUntil(() => typists.every((t, i) => refusalsSinceDown(t, i).length > 0), "a refusal for each typist while the database is down", 20_000);
    for (const [i, t] of typists.entries()) {
      for (const why of refusalsSinceDown(t, i)) expect({ typist: t.prefix, why }).toEqual({ typist: t.prefix, why: expect.stringMatching(/database/i) as unknown });
    }
    await pgc.up();

    // Everyone recovers: each typist gets new messages accepted, and the typing goes on.
    const afterUp = typists.map((t) => t.ids.length);
    await waitUntil(() => typists.every((t, i) => t.ids.slice(afterUp[i]!).filter((id) => acceptedIds(t.c).has(id)).length >= 4), "4 accepted from each typist after the database is back", 60_000);
    for (const t of typists) t.stop();
    await waitUntil(() => typists.every(allAnswered), "every message answered", 30_000);

    // Nothing acknowledged before the outage is lost, and every accepted message reaches every
    // other member (the killed relay's too, on their new relay) once, in order.
    for (const [i, t] of typists.entries()) expect(acceptedTexts(t).slice(0, ackedBeforeOutage[i]!.length)).toEqual(ackedBeforeOutage[i]);
    await waitUntil(
      () => typists.every((t) => clients.every((m) => m === t.c || received(m, t.prefix).length >= acceptedTexts(t).length)),
      "every accepted message received by every other member",
      60_000,
    );
    for (const t of typists) expectDeliveredOnceInOrder(t, clients);
    // The load was real: messages on both sides of each fault.
    for (const t of typists) expect(acceptedTexts(t).length).toBeGreaterThanOrEqual(16);
  }, 240_000);
});
