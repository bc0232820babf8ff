// A world for protocol v2 hostile-relay tests (test/adversarial/v2-hostile-relay*.test.ts): the
// real relay, the operator's man in the middle in front of it (mls-hostile-proxy.ts), and a real
// ChatClient in v2 mode per user (its MLS store on disk, the real content layer of
// PROTOCOL.md §11 over its state db, its log lines kept), with the waits those tests share.
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "vitest";
import { MlsKind, type Delivery } from "../../src/gen/securechat/v1/chat.js";
import { contentLayerOver } from "../../src/client/mls/content.js";
import { MlsKeyStore } from "../../src/client/mls-store.js";
import { ClientStateStore } from "../../src/client/state-store.js";
import type { MembershipLine, SessionEvent } from "../../src/client/types.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { jsonLineLogger } from "../../src/protocol/log.js";
import { TestClient } from "./client-harness.js";
import { fixtureIdentity, type FixtureName } from "./identities.js";
import { MlsHostileProxy } from "./mls-hostile-proxy.js";
import { TestRelay } from "./relay-harness.js";
import { waitUntil } from "./wait.js";

export const T = 60_000; // waits: MLS work on a shared 2-core machine
const NAMES: FixtureName[] = ["alice", "bob", "carol", "dave", "mallory"];
const ids = new Map<string, PrivateIdentity>();
const cleanups: Array<() => Promise<unknown> | unknown> = [];
/** Each client's log lines (parsed), by username: what the engine logged about each refusal. */
export const logs = new Map<string, Array<Record<string, unknown>>>();

/** Loads the fixture identities (call in beforeAll). */
export async function loadIdentities(): Promise<void> {
  for (const n of NAMES) ids.set(n, await fixtureIdentity(n));
}

/** Stops every client, proxy and relay the last test made (call in afterEach). */
export async function cleanupWorlds(): Promise<void> {
  for (const c of cleanups.splice(0).reverse()) await c();
  logs.clear();
}

export interface World {
  readonly relay: TestRelay;
  readonly proxy: MlsHostileProxy;
  readonly c: Record<string, TestClient>;
  /** Closes a user's client and starts it again from its files (MLS store, state db, pins). */
  restart(name: FixtureName): Promise<TestClient>;
  /** A user's directory: its MLS store `<name>_mls.db`, its state db, its pins. */
  dirOf(name: FixtureName): string;
}

/** The real relay, the operator's proxy in front of it, and a v2 ChatClient per name connected through the proxy. */
export async function world(...names: FixtureName[]): Promise<World> {
  return worldWith({}, ...names);
}

/** As world(), with a clock per user (default Date.now). */
export async function worldWith(o: { readonly clocks?: Readonly<Record<string, () => number>> }, ...names: FixtureName[]): Promise<World> {
  const dir = mkdtempSync(join(tmpdir(), "sc-v2-hostile-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const relay = await TestRelay.start({ plaintext: true });
  cleanups.push(() => relay.cleanup());
  const proxy = await MlsHostileProxy.start(relay.address);
  cleanups.push(() => proxy.close());
  const c: Record<string, TestClient> = {};
  for (const n of names) c[n] = await connect(proxy, dir, n, o.clocks?.[n]);
  const restart = async (n: FixtureName): Promise<TestClient> => {
    await c[n]!.close();
    c[n] = await connect(proxy, dir, n, o.clocks?.[n]);
    return c[n];
  };
  return { relay, proxy, c, restart, dirOf: (n) => join(dir, n) };
}

async function connect(proxy: MlsHostileProxy, dir: string, name: FixtureName, clock: (() => number) | undefined): Promise<TestClient> {
  const id = ids.get(name)!;
  const userDir = join(dir, name);
  mkdirSync(userDir, { recursive: true });
  const store = MlsKeyStore.open(join(userDir, `${name}_mls.db`), { username: name, sigPrivate: id.sigPrivate });
  const state = ClientStateStore.open(join(userDir, `${name}_state.db`));
  const log = logs.get(name) ?? [];
  logs.set(name, log);
  const t = await TestClient.start(id, 0, {
    server: proxy.address, dir: userDir, state, transport: { kind: "plaintext" },
    ...(clock !== undefined ? { clock } : {}),
    logger: jsonLineLogger((l) => log.push(JSON.parse(l) as Record<string, unknown>), "debug"),
    v2: { store, content: contentLayerOver(state, name) },
  });
  cleanups.push(() => t.close());
  return t;
}

export const lineText = (l: MembershipLine): string => `${l.by} ${l.kind}${l.users.length > 0 ? ` ${l.users.join(",")}` : ""}`;
export const lines = (c: TestClient, conv: string): string[] =>
  c.events.flatMap((e: SessionEvent) => (e.type === "membership" && e.conversationId === conv ? [lineText(e.line)] : []));
export const shown = (c: TestClient, conv: string): string[] => c.messages(conv).filter((m) => !m.own).map((m) => m.text);
export const refused = (c: TestClient, conv: string): number => c.events.filter((e) => e.type === "refused" && e.conversationId === conv).length;
export const logged = (user: string, event: string): number => (logs.get(user) ?? []).filter((l) => l.event === event).length;
export const notices = (c: TestClient): string[] => c.events.flatMap((e) => (e.type === "notice" ? [e.text] : []));

/** Sends and waits until the relay accepted it; returns the message id. */
export async function say(c: TestClient, conv: string, text: string): Promise<string> {
  const r = c.client.send(conv, text);
  if (!r.ok) throw new Error(`send failed: ${JSON.stringify(r.error)}`);
  await c.waitForState(r.value.id, "accepted", T);
  return r.value.id;
}

/** Everyone in `talkers` says something in `conv` and every other one of them reads it: the conversation goes on. */
export async function keepTalking(w: World, conv: string, talkers: string[], tag: string): Promise<void> {
  for (const from of talkers) {
    const text = `${tag}: ${from} speaking`;
    await say(w.c[from]!, conv, text);
    for (const to of talkers) if (to !== from) await w.c[to]!.waitForMessage(text, T);
  }
}

/** `owner` creates the room, the others join it (external commits); everyone has seen everyone join. */
export async function room(w: World, name: string, owner: string, ...joiners: string[]): Promise<void> {
  const r = await w.c[owner]!.client.joinRoom(name);
  expect(r.ok).toBe(true);
  for (const j of joiners) {
    expect((await w.c[j]!.client.joinRoom(name)).ok).toBe(true);
  }
  const all = [owner, ...joiners];
  for (const m of all) {
    await waitUntil(async () => {
      const x = await w.c[m]!.client.members(name);
      return x.ok && x.value.length === all.length;
    }, `${m} sees ${all.length} members in ${name}`, T);
  }
}

export const isKind = (kind: MlsKind, conv: string) => (d: Delivery): boolean => d.mls?.kind === kind && d.conversationId === conv;

/** Waits until `user`'s client acknowledged the delivery `seq` (it has processed it). */
export async function processed(w: World, user: string, seq: number): Promise<void> {
  await waitUntil(() => (w.proxy.requests.get(user) ?? []).some((f) => f.$case === "ack" && f.value.seqs.includes(seq)), `${user} processed delivery ${seq}`, T);
}

/** Waits for the first MLS delivery to `user` that matches (as the relay queued it). */
export async function deliveryTo(w: World, user: string, pred: (d: Delivery) => boolean, what: string): Promise<Delivery> {
  return waitUntil(() => w.proxy.deliveredTo(user, pred)[0], what, T);
}
