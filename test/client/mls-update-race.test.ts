// The update policy's commit losing its epoch's race (PROTOCOL.md §8.1, §10.2, §10.3), against
// the in-memory Delivery Service (test/helpers/fake-ds.ts). Two people typing at the same pace
// reach their 100th message together and both commit an update for the same epoch: one wins.
// The loser must take the winner from its queue, after the messages queued before it: a member
// keeps the secrets of ONE past epoch, so a loser that fetched the winner out of order and then
// committed its own update at once was two epochs ahead of its queue, and refused the winner's
// messages of the epoch before as `epoch-expired` (paced-faults' "a relay killed -9 twice" did
// this once each side had typed 100 lines: both had ACCEPTED everything, one never read 4 lines).
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, expect, it } from "vitest";
import { MlsConversations } from "../../src/client/mls/conversations.js";
import { MlsKeyStore } from "../../src/client/mls-store.js";
import type { SessionEvent } from "../../src/client/types.js";
import { nullLogger } from "../../src/protocol/log.js";
import { FakeDs } from "../helpers/fake-ds.js";
import { TestContent } from "../helpers/mls-content-double.js";
import { waitUntil } from "../helpers/wait.js";

const DM = "dm:alice:bob";
let root: string;
let ds: FakeDs;
const people: Person[] = [];

interface Person {
  readonly name: string;
  readonly store: MlsKeyStore;
  readonly engine: MlsConversations;
  readonly content: TestContent;
  readonly events: SessionEvent[];
}

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "sc-mls-update-race-"));
  ds = new FakeDs();
});
afterEach(() => {
  for (const p of people.splice(0)) { p.engine.close(); p.store.close(); }
  rmSync(root, { recursive: true, force: true });
});

async function person(name: string): Promise<Person> {
  const { privateKey } = generateKeyPairSync("ed25519");
  const store = MlsKeyStore.open(join(root, `${name}_mls.db`), { username: name, sigPrivate: privateKey });
  const content = new TestContent();
  const events: SessionEvent[] = [];
  const pins = new Map<string, string>();
  const engine = new MlsConversations({
    me: name, identity: { username: name, sigPrivate: privateKey }, store, ds: ds.api(name), content,
    trust: (id) => {
      const fpr = id.identityFpr.toString("hex");
      if (!pins.has(id.username)) pins.set(id.username, fpr);
      return pins.get(id.username) === fpr;
    },
    clock: () => Date.now(), logger: nullLogger, emit: (e) => events.push(e),
  });
  const p: Person = { name, store, engine, content, events };
  people.push(p);
  await engine.start();
  ds.connect(name, engine);
  return p;
}

const texts = (p: Person): string[] => p.events.flatMap((e) => (e.type === "message" && e.message.conversationId === DM && !e.message.own ? [e.message.text] : []));
const accepted = (p: Person, id: string): boolean => p.events.some((e) => e.type === "message-state" && e.id === id && e.state === "accepted");

function send(p: Person, text: string): string {
  const r = p.engine.send(DM, text);
  if (!r.ok) throw new Error(`send failed: ${JSON.stringify(r.error)}`);
  return r.value.id;
}

async function sendAccepted(p: Person, ...lines: string[]): Promise<void> {
  const ids = lines.map((l) => send(p, l));
  await waitUntil(() => ids.every((id) => accepted(p, id)), `${p.name}'s ${lines.join(", ")} accepted`, 30_000);
}

it("both update at once: the loser reads the winner's messages of the epoch before, then makes its own update", { timeout: 120_000 }, async () => {
  const alice = await person("alice");
  const bob = await person("bob");
  await sendAccepted(alice, "hi bob");
  await waitUntil(() => texts(bob).includes("hi bob"), "bob reads hi bob", 30_000);
  await sendAccepted(bob, "hi alice");
  await waitUntil(() => texts(alice).includes("hi alice"), "alice reads hi alice", 30_000);
  const epoch = ds.groupOf(DM)!.epoch;
  const [aliceCommits, bobCommits] = [alice.content.committedCount, bob.content.committedCount];

  // What reaches bob waits (his engine is busy, his relay's pump behind): alice writes two lines
  // in this epoch, then her update wins it and she writes on in the next.
  ds.disconnect("bob");
  await sendAccepted(alice, "a1", "a2");
  alice.content.update = true;
  await sendAccepted(alice, "a3");
  expect(alice.content.committedCount).toBe(aliceCommits + 1);
  expect(ds.groupOf(DM)!.epoch).toBe(epoch + 1);

  // bob's update is due too: his commit for the same epoch loses (EPOCH_TAKEN); his lines go.
  bob.content.update = true;
  const lost = ds.epochTaken;
  await sendAccepted(bob, "b1", "b2");
  expect(ds.epochTaken).toBeGreaterThan(lost);

  // His queue arrives: alice's lines of the epoch before her commit, her commit, her next line.
  ds.connect("bob", bob.engine);
  await waitUntil(() => texts(bob).includes("a3"), "bob reads a3", 30_000);
  expect(texts(bob)).toEqual(["hi bob", "a1", "a2", "a3"]);
  expect(bob.events.filter((e) => e.type === "refused")).toEqual([]);

  // Once in step with his queue, bob's update is made; alice reads everything he wrote.
  await sendAccepted(bob, "b3");
  expect(bob.content.committedCount).toBe(bobCommits + 1);
  expect(ds.groupOf(DM)!.epoch).toBe(epoch + 2);
  await waitUntil(() => texts(alice).includes("b3"), "alice reads b3", 30_000);
  expect(texts(alice)).toEqual(["hi alice", "b1", "b2", "b3"]);
  expect(alice.events.filter((e) => e.type === "refused")).toEqual([]);
});
