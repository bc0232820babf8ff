// DsTransport end to end: the client's RelayConnection (protocol_version 2) to a real relay,
// real MLS groups. alice creates a DM group and adds bob through the transport (KeyPackage
// claimed, commit with Welcome and tree), bob joins from the Welcome the relay queued, both
// talk with sendMls (answered by their SendResults), a commit race comes back as EPOCH_TAKEN with
// the winner, and refusals come back as the relay's code and sentence.
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { MlsKind, type Delivery } from "../../src/gen/securechat/v1/chat.js";
import { DsTransport, isMalformedMls, mlsQueuedOf } from "../../src/client/mls/ds-transport.js";
import type { MlsQueued } from "../../src/client/mls/ds-api.js";
import { SendPacer } from "../../src/client/pacer.js";
import { RelayConnection } from "../../src/client/relay-connection.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { nullLogger } from "../../src/protocol/log.js";
import { createMlsClient, generateKeyPackage, MlsGroup, restoreKeyPackage, type StoredKeyPackage } from "../../src/protocol/mls/index.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { TestRelay } from "../helpers/relay-harness.js";
import { waitUntil } from "../helpers/wait.js";

let alice: PrivateIdentity;
let bob: PrivateIdentity;
let relay: TestRelay;
const clients: Client[] = [];

beforeAll(async () => {
  [alice, bob] = await Promise.all([fixtureIdentity("alice"), fixtureIdentity("bob")]);
});

afterEach(async () => {
  for (const c of clients.splice(0)) await c.connection.close();
  await relay?.cleanup();
});

/** A v2 client: its connection, the transport over it, and the MLS deliveries it got (acked at once). */
class Client {
  readonly connection: RelayConnection;
  readonly ds: DsTransport;
  readonly queued: MlsQueued[] = [];
  readonly keyPackages = new Map<string, StoredKeyPackage>();

  constructor(readonly id: PrivateIdentity, address: string) {
    const pacer = new SendPacer(Date.now);
    pacer.reset(100, 100);
    this.connection = new RelayConnection({
      identity: id, server: address, transport: { kind: "plaintext" }, keepalive: undefined, reconnect: false, beforeConnect: undefined,
      clock: Date.now, random: Math.random, log: nullLogger, pacer, protocolVersion: 2,
      hooks: {
        welcomed: () => {},
        connected: () => {},
        frame: (f) => {
          if (f.$case === "sendResult") this.ds.onSendResult(f.value);
          else if (f.$case === "deliver") this.deliver(f.value.items);
          return Promise.resolve();
        },
        ended: () => this.ds.sessionEnded(),
        emit: () => {},
      },
    });
    this.ds = new DsTransport(this.connection);
    clients.push(this);
  }

  private deliver(items: Delivery[]): void {
    for (const d of items) {
      const q = mlsQueuedOf(d);
      if (q !== undefined && !isMalformedMls(q)) this.queued.push(q);
    }
    void this.connection.current?.send({ frame: { $case: "ack", value: { seqs: items.map((d) => d.seq) } } });
  }

  async take(): Promise<MlsQueued> {
    return waitUntil(() => this.queued.shift(), `an MLS delivery for ${this.id.username}`, 10_000, 5);
  }
}

async function connected(id: PrivateIdentity): Promise<Client> {
  const c = new Client(id, relay.address);
  c.connection.start();
  await c.connection.waitConnected(10_000);
  return c;
}

describe("DsTransport over a real relay", () => {
  it("adds bob to a DM, both talk, a commit race is EPOCH_TAKEN with the winner, refusals keep their code", async () => {
    relay = await TestRelay.start({ plaintext: true });
    const [a, b] = [await connected(alice), await connected(bob)];
    expect(relay.events("session.open").map((l) => l.protocol)).toEqual([2, 2]);
    const [ma, mb] = [await createMlsClient({ username: "alice", sigPrivate: alice.sigPrivate }), await createMlsClient({ username: "bob", sigPrivate: bob.sigPrivate })];

    const kp = await generateKeyPackage(mb);
    b.keyPackages.set(Buffer.from(kp.ref).toString("hex"), await restoreKeyPackage(mb, kp.stored));
    expect(await b.ds.publishKeyPackages([kp.keyPackage], undefined)).toEqual({ ok: true, oneTimeLeft: 1, lastResortPresent: false });

    const ga = await MlsGroup.create(ma, "dm:alice:bob");
    expect(await a.ds.publishGroupInfo(await ga.groupInfo())).toMatchObject({ ok: true, groupInfoEpoch: 0, currentEpoch: 0 });
    const claimed = await a.ds.claimKeyPackages(["bob"]);
    if (!claimed.ok) throw new Error(claimed.detail);
    expect(claimed.missing).toEqual([]);
    const add = await ga.addMembers([claimed.entries[0]!.keyPackage], { expectUsernames: ["bob"] });
    expect(await a.ds.sendCommit({ commit: add.commit, groupInfo: new Uint8Array(0), added: ["bob"], removed: [], welcome: add.welcome!, ratchetTree: add.ratchetTree! }))
      .toEqual({ ok: true, epoch: 0, currentEpoch: 1 });
    ga.confirmCommit();
    expect(await a.ds.publishGroupInfo(await ga.groupInfo())).toMatchObject({ ok: true, groupInfoEpoch: 1 });

    const w = await b.take();
    expect([w.conversationId, w.item.kind, w.item.sender]).toEqual(["dm:alice:bob", MlsKind.MLS_KIND_WELCOME, "alice"]);
    const gb = (await MlsGroup.joinFromWelcome(mb, w.item.mls, w.item.ratchetTree, (ref) => b.keyPackages.get(Buffer.from(ref).toString("hex")))).group;

    expect(await a.ds.sendMls(await ga.encrypt(Buffer.from("hi bob")))).toEqual({ ok: true, queuedFor: [] });
    const m1 = await b.take();
    const opened = await gb.process(m1.item.mls);
    expect(opened.kind === "application" && opened.plaintext.toString()).toBe("hi bob");
    expect(await b.ds.sendMls(await gb.encrypt(Buffer.from("hi alice")))).toEqual({ ok: true, queuedFor: [] });
    const back = await ga.process((await a.take()).item.mls);
    expect(back.kind === "application" && back.plaintext.toString()).toBe("hi alice");

    // Both commit for epoch 1 at once: one wins, the other hears EPOCH_TAKEN, who won and where the group is.
    const [ua, ub] = [await ga.selfUpdate(), await gb.selfUpdate()];
    const [ra, rb] = await Promise.all([
      a.ds.sendCommit({ commit: ua.commit, groupInfo: new Uint8Array(0), added: [], removed: [] }),
      b.ds.sendCommit({ commit: ub.commit, groupInfo: new Uint8Array(0), added: [], removed: [] }),
    ]);
    const lost = ra.ok ? rb : ra;
    const winner = ra.ok ? "alice" : "bob";
    expect([ra.ok, rb.ok].filter(Boolean)).toHaveLength(1);
    expect(lost).toMatchObject({ ok: false, code: "EPOCH_TAKEN", currentEpoch: 2, winner });

    // Refusals carry the relay's code and its sentence.
    expect(await a.ds.sendMls(Buffer.from("garbage"))).toEqual({ ok: false, code: "BAD_MLS_MESSAGE", detail: "the MLS message does not decode as an MLS message" });
    expect(await a.ds.fetchGroupInfo({ conversationId: "#nowhere" })).toEqual({ ok: false, code: "UNKNOWN_GROUP", detail: "this relay keeps no group for #nowhere" });
    const commits = await b.ds.fetchCommits(gb.groupId, 0);
    expect(commits.ok && commits.commits.map((c) => [c.epoch, c.sender])).toEqual([[0, "alice"], [1, winner]]);
  });

  it("a SendMls waiting when the session ends is answered CONNECTION_LOST or sent; nothing waits forever", async () => {
    relay = await TestRelay.start({ plaintext: true });
    const a = await connected(alice);
    const pending = a.ds.sendMls(Buffer.from("garbage in flight"));
    await relay.stop();
    const r = await pending;
    // Either the relay answered before it stopped (a refusal: garbage), or the session ended first.
    expect(["BAD_MLS_MESSAGE", "CONNECTION_LOST", "NOT_CONNECTED"]).toContain((r as { code: string }).code);
    expect(a.ds.pendingSends).toBe(0);
    expect(await a.ds.sendMls(Buffer.from("after"))).toMatchObject({ ok: false, code: "NOT_CONNECTED" });
  });
});
