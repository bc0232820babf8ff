// Messaging through a real relay on 127.0.0.1:0: DMs, the lobby, late joiners, offline queues,
// acks and resends, in protocol v2 (PROTOCOL.md §8.3). Clients are protocol-level raw
// sessions; every conversation is a real MLS group (test/helpers/mls-talk.ts) whose messages
// are encrypted and opened by its members, so these tests also show the relay never alters what
// it carries.
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { MlsKind, SendStatus, type Welcome } from "../../src/gen/securechat/v1/chat.js";
import { keyTag, type PrivateIdentity } from "../../src/protocol/keys.js";
import { MlsGroup } from "../../src/protocol/mls/index.js";
import { openStore } from "../../src/server/store.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { lookupOf, makeKeyPackage, mlsPerson, must, sendCommit } from "../helpers/mls-ds.js";
import { mlsId, sendMls, takeMls } from "../helpers/mls-queues.js";
import { MlsTalk } from "../helpers/mls-talk.js";
import type { RawSession } from "../helpers/raw-session.js";
import { TestRelay } from "../helpers/relay-harness.js";
import { join } from "node:path";

let alice: PrivateIdentity;
let bob: PrivateIdentity;
let carol: PrivateIdentity;
let dave: PrivateIdentity;
let relay: TestRelay;

beforeAll(async () => {
  [alice, bob, carol, dave] = await Promise.all([
    fixtureIdentity("alice"), fixtureIdentity("bob"), fixtureIdentity("carol"), fixtureIdentity("dave"),
  ]);
});

afterEach(async () => {
  await relay?.cleanup();
});

/** Rows waiting in the relay's queue for `user`, read from the database itself. */
function queuedRows(dataDir: string, user: string): number {
  const store = openStore(join(dataDir, "relay.db"));
  try {
    return store.queueDepth(user);
  } finally {
    store.close();
  }
}

/** The DM group of alice and bob, made while bob is online (he takes and acks its Welcome). */
async function dmAliceBob(a: RawSession, b: RawSession & { readonly welcome: Welcome }): Promise<MlsTalk> {
  return MlsTalk.start(relay, a, [alice, bob], "dm:alice:bob", [b]);
}

describe("relay messaging", () => {
  it("carries a DM from alice to bob and a lobby message to everyone online, never back to its sender", async () => {
    relay = await TestRelay.start();
    const a = await relay.connect(alice);
    const b = await relay.connect(bob);
    const c = await relay.connect(carol);
    // alice saw both arrive before anything else happens.
    await a.nextPresence("bob", true);
    await a.nextPresence("carol", true);
    const dm = await dmAliceBob(a, b);
    const lobby = await MlsTalk.start(relay, a, [alice, bob, carol], "lobby", [b, c]);

    const dmResult = await dm.sendAccepted(a, "alice", "hi bob");
    expect(dmResult.queuedFor).toEqual([]);
    const [d] = await b.deliveries(1);
    expect(d!.conversationId).toBe("dm:alice:bob");
    expect(d!.mls).toMatchObject({ kind: MlsKind.MLS_KIND_APPLICATION, sender: "alice" });
    expect(await dm.open("bob", [d!])).toEqual(["hi bob"]);
    b.ack([d!.seq]);

    await lobby.sendAccepted(a, "alice", "hello everyone");
    const [lb] = await b.deliveries(1);
    const [lc] = await c.deliveries(1);
    expect(await lobby.open("bob", [lb!])).toEqual(["hello everyone"]);
    expect(await lobby.open("carol", [lc!])).toEqual(["hello everyone"]);
    expect(lb!.conversationId).toBe("lobby");

    // The sender is a member of its own groups but the relay never hands its messages back:
    // after a round trip nothing was delivered to alice, and nothing waits for her.
    await a.barrier();
    expect(a.has("deliver")).toBe(false);
    expect(queuedRows(relay.dataDir, "alice")).toBe(0);
  });

  it("lets a user who joins later be reached at once: peers see the light entry, then fetch the keys", async () => {
    relay = await TestRelay.start();
    const a = await relay.connect(alice);
    const d = await relay.connect(dave);
    expect(d.welcome.directory.map((e) => [e.username, e.online]).sort()).toEqual([["alice", true], ["dave", true]]);
    // dave's client publishes a KeyPackage as it comes online.
    const pd = await mlsPerson(dave);
    await must(d, { $case: "publishKeyPackages", value: { requestId: 0, oneTime: [await makeKeyPackage(pd)], lastResort: Buffer.alloc(0) } }, "keyPackageStatus");

    // alice sees dave come online (a light entry with his key tag), fetches his identity keys,
    // claims his KeyPackage, and makes their DM's group with him in it.
    const light = await a.nextPresence("dave", true);
    expect(light.keyTag.equals(keyTag(dave.sigFpr, dave.encFpr))).toBe(true);
    expect(light.sigSpki.length).toBe(0);
    const [entry] = await a.lookupKeys(["dave", "nobody"]);
    expect(entry!.sigSpki.equals(dave.sigSpki)).toBe(true);
    const pa = await mlsPerson(alice);
    const ga = await MlsGroup.create(pa.client, "dm:alice:dave");
    await must(a, { $case: "publishGroupInfo", value: { requestId: 0, groupInfo: Buffer.from(await ga.groupInfo()) } }, "groupInfoResult");
    const kps = await must(a, { $case: "claimKeyPackages", value: { requestId: 0, usernames: ["dave"], deviceIds: [] } }, "keyPackageList");
    expect(kps.entries.map((e) => e.username)).toEqual(["dave"]);
    const add = await ga.addMembers(kps.entries.map((e) => e.keyPackage), { expectUsernames: ["dave"] });
    expect(await sendCommit(a, add.commit, undefined, { added: ["dave"], welcome: add.welcome, ratchetTree: add.ratchetTree })).toMatchObject({ accepted: true });
    ga.confirmCommit();
    await sendMls(a, await ga.encrypt(Buffer.from("welcome, dave")));

    const [w, m] = await takeMls(d, 2);
    expect([w!.mls.kind, m!.mls.kind]).toEqual([MlsKind.MLS_KIND_WELCOME, MlsKind.MLS_KIND_APPLICATION]);
    const gd = (await MlsGroup.joinFromWelcome(pd.client, w!.mls.mls, w!.mls.ratchetTree, lookupOf(pd))).group;
    const got = await gd.process(m!.mls.mls);
    expect(got.kind === "application" && got.plaintext.toString("utf8")).toBe("welcome, dave");
  });

  it("queues DMs for an offline user, delivers them in order in one batch on connect, and deletes them on ack", async () => {
    relay = await TestRelay.start();
    const first = await relay.connect(bob); // binds bob
    const a = await relay.connect(alice);
    const dm = await dmAliceBob(a, first);
    first.close();
    await a.nextPresence("bob", false);

    const texts = ["one", "two", "three"];
    for (const t of texts) {
      const r = await dm.sendAccepted(a, "alice", t);
      expect(r.queuedFor).toEqual(["bob"]);
    }
    expect(queuedRows(relay.dataDir, "bob")).toBe(3);

    const b = await relay.connect(bob);
    expect(b.welcome.queued).toBe(3);
    // Coalesced: what was queued goes out as one DeliverBatch, oldest first.
    const batch = await b.next("deliver");
    expect(await dm.open("bob", batch.items)).toEqual(texts);
    const seqs = batch.items.map((i) => i.seq);
    expect([...seqs].sort((x, y) => x - y)).toEqual(seqs);

    b.ack(seqs);
    await b.barrier(); // the ack was processed before the pong
    expect(queuedRows(relay.dataDir, "bob")).toBe(0);
    b.close();
    await a.nextPresence("bob", false);

    // Reconnecting shows nothing twice.
    const again = await relay.connect(bob);
    expect(again.welcome.queued).toBe(0);
    await again.barrier();
    expect(again.has("deliver")).toBe(false);
  });

  it("redelivers unacked envelopes after a reconnect (at least once)", async () => {
    relay = await TestRelay.start();
    const b1 = await relay.connect(bob);
    const a = await relay.connect(alice);
    const dm = await dmAliceBob(a, b1);
    await dm.sendAccepted(a, "alice", "are you there?");
    const [d1] = await b1.deliveries(1);
    b1.close(); // without acking
    await a.nextPresence("bob", false);

    const b2 = await relay.connect(bob);
    expect(b2.welcome.queued).toBe(1);
    const [d2] = await b2.deliveries(1);
    expect(d2!.seq).toBe(d1!.seq);
    expect(Buffer.from(d2!.mls!.mls).equals(Buffer.from(d1!.mls!.mls))).toBe(true);
    expect(await dm.open("bob", [d2!])).toEqual(["are you there?"]);
  });

  it("answers a resend of the same message id ACCEPTED again and stores it once", async () => {
    relay = await TestRelay.start();
    const first = await relay.connect(bob);
    const a = await relay.connect(alice);
    const dm = await dmAliceBob(a, first);
    await relay.disconnect(first, "bob"); // bob is in the group, and offline

    const m = await dm.encrypt("alice", "only once");
    const r1 = await sendMls(a, m);
    const r2 = await sendMls(a, m);
    expect(r1.status).toBe(SendStatus.SEND_STATUS_ACCEPTED);
    expect(r2.status).toBe(SendStatus.SEND_STATUS_ACCEPTED);
    expect(Buffer.from(r2.messageId).equals(mlsId(m))).toBe(true);
    expect(queuedRows(relay.dataDir, "bob")).toBe(1);

    const b = await relay.connect(bob);
    expect(b.welcome.queued).toBe(1);
    const [d] = await b.deliveries(1);
    expect(await dm.open("bob", [d!])).toEqual(["only once"]);
    await b.barrier();
    expect(b.has("deliver")).toBe(false);
  });

  it("stores a lobby message only for the recipients online when it arrives (issue 9: no lobby rows for offline users)", async () => {
    relay = await TestRelay.start({ limits: { lobbyGraceMs: 0 } }); // carol left a moment ago: no grace here
    const a = await relay.connect(alice);
    const b = await relay.connect(bob);
    const c0 = await relay.connect(carol);
    // carol is a member of the lobby's group (she joined while online), then goes offline.
    const lobby = await MlsTalk.start(relay, a, [alice, bob, carol], "lobby", [b, c0]);
    await relay.disconnect(c0, "carol");
    await a.nextPresence("carol", false);
    const r = await lobby.sendAccepted(a, "alice", "who is here?");
    expect(r.queuedFor).toEqual([]);
    expect(await lobby.open("bob", await b.deliveries(1))).toEqual(["who is here?"]);
    expect(queuedRows(relay.dataDir, "carol")).toBe(0);
    const c = await relay.connect(carol);
    expect(c.welcome.queued).toBe(0);
    await c.barrier();
    expect(c.has("deliver")).toBe(false);
  });

  it("keeps at most the delivery window unacked in flight; acks open it again and nothing is lost", async () => {
    relay = await TestRelay.start({ deliveryWindow: 4 });
    const b = await relay.connect(bob);
    const a = await relay.connect(alice);
    const dm = await dmAliceBob(a, b);
    const texts = Array.from({ length: 10 }, (_, i) => `m${i}`);
    for (const t of texts) await dm.sendAccepted(a, "alice", t);

    const received: number[] = [];
    const items: Parameters<MlsTalk["open"]>[1][number][] = [];
    const drain = (): void => {
      for (const f of b.inbox.splice(0)) {
        if (f.$case === "deliver") {
          received.push(...f.value.items.map((i) => i.seq));
          items.push(...f.value.items);
        }
      }
    };
    await b.barrier();
    drain();
    expect(received).toHaveLength(4);

    b.ack(received.slice(0, 2));
    await b.barrier();
    drain();
    expect(received).toHaveLength(6);

    b.ack(received.slice(2));
    await b.barrier();
    drain();
    expect(received).toHaveLength(10);
    expect(new Set(received).size).toBe(10);
    expect([...received].sort((x, y) => x - y)).toEqual(received);
    expect(await dm.open("bob", items)).toEqual(texts);
    b.ack(received.slice(6));
    await b.barrier();
    expect(queuedRows(relay.dataDir, "bob")).toBe(0);
  });

  it("deletes only the acking user's own rows", async () => {
    relay = await TestRelay.start();
    const first = await relay.connect(bob);
    const a = await relay.connect(alice);
    const c = await relay.connect(carol);
    const dm = await dmAliceBob(a, first);
    await relay.disconnect(first, "bob");
    await dm.sendAccepted(a, "alice", "for bob only");
    // carol guesses bob's seqs and acks them.
    c.ack(Array.from({ length: 50 }, (_, i) => i + 1));
    await c.barrier();
    expect(queuedRows(relay.dataDir, "bob")).toBe(1);
    const b = await relay.connect(bob);
    const [d] = await b.deliveries(1);
    expect(await dm.open("bob", [d!])).toEqual(["for bob only"]);
  });

  it("stops writing to a client that does not read (backpressure); the rest waits in the database", async () => {
    relay = await TestRelay.start({ limits: { messagesPerSecond: 1000, burst: 1000 } });
    const b = await relay.connect(bob);
    const a = await relay.connect(alice);
    const dm = await dmAliceBob(a, b);
    const written = (): number[] => relay.events("deliver.batch").filter((l) => l.user === "bob").map((l) => Number(l.items));
    const before = written().length; // the Welcome's batch
    b.pauseReading(true);
    const n = 80; // 80 messages of ~60 KB: ~5 MB, far more than HTTP/2 windows and socket buffers hold
    for (let i = 0; i < n; i++) await dm.sendAccepted(a, "alice", `${i}:`.padEnd(60_000, "x"));
    await a.barrier();
    // The pump wrote only what the transport accepted, then waited; it did not buffer the rest.
    const whilePaused = written().slice(before).reduce((x, y) => x + y, 0);
    expect(whilePaused).toBeLessThan(n);

    b.pauseReading(false);
    const got = await b.deliveries(n, 15_000);
    expect((await dm.open("bob", got)).map((t) => t.split(":")[0])).toEqual(Array.from({ length: n }, (_, i) => String(i)));
    // Once the client reads again, what waited goes out coalesced: fewer writes than messages.
    expect(written().length - before).toBeLessThan(n);
  });

  // Over TLS more bytes fit in the buffers on the way, so filling them takes more operations.
  // Load-sensitive: failed in some full runs on a saturated 2-core machine, passes alone (closing
  // note of 2026-12-06). One retry so CI is not decided by machine load; two failures are real.
  // The v1 test "disconnects a client that stops reading once its buffer is full" flooded her
  // with RoomEvents (v1 JoinRoom/LeaveRoom); on protocol v2 a peer has no unprompted frame it can
  // make the relay write to someone without bound (deliveries wait for acks: maxOutgoing;
  // presence updates are batched every 100 ms; her own requests' answers stop her requests
  // by HTTP/2 flow control). SLOW_CONSUMER on v2 is tested where it can happen: a reader that
  // stops reading while others send (relay-slow-reader.test.ts) and a stuck hostile reader
  // (hostile-peers.test.ts "a reader that never reads is cut off").
});
