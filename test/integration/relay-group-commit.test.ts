// Group commit (src/server/group-commit.ts): envelopes admitted together are stored in one
// transaction before any of them is answered; ids stay unique within and across batches; a
// failed commit (a full disk) refuses its whole batch, stores none of it, and the relay goes on.
// The first tests drive the committer over a real SQLite file; the rest go through a relay. The
// store's own reads and acks (bytes from a copy, a dropped envelope's bytes never served again,
// acks of others' rows) are in the store contract (test/store-contract/core.contract.ts).
import { mkdtempSync, rmSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode, SendStatus } from "../../src/gen/securechat/v1/chat.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { nullLogger } from "../../src/protocol/log.js";
import { GroupCommitter, type CommitResult } from "../../src/server/group-commit.js";
import { openStore, type RelayStore } from "../../src/server/store.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { mlsId, sendMls } from "../helpers/mls-queues.js";
import { grpcMessage, Http2Connection } from "../helpers/raw-http2.js";
import { MlsTalk } from "../helpers/mls-talk.js";
import { TestRelay } from "../helpers/relay-harness.js";
import { req } from "../helpers/store-records.js";

let alice: PrivateIdentity;
let bob: PrivateIdentity;
let carol: PrivateIdentity;
let dave: PrivateIdentity;
let relay: TestRelay | undefined;
const cleanups: Array<() => void> = [];

beforeAll(async () => {
  [alice, bob, carol, dave] = await Promise.all([
    fixtureIdentity("alice"), fixtureIdentity("bob"), fixtureIdentity("carol"), fixtureIdentity("dave"),
  ]);
});

afterEach(async () => {
  await relay?.cleanup();
  relay = undefined;
  for (const c of cleanups.splice(0)) c();
});

function tempStore(maxBytes?: number): RelayStore {
  const dir = mkdtempSync(join(tmpdir(), "sc-group-commit-"));
  const store = openStore(join(dir, "relay.db"), maxBytes === undefined ? {} : { maxBytes });
  cleanups.push(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return store;
}

/** The committer over `store`, recording what each commit woke. */
function committer(store: RelayStore, mode: "group" | "per-envelope" = "group") {
  const woken: Array<Record<string, number>> = [];
  const c = new GroupCommitter({ store, logger: nullLogger, mode, onCommitted: (rows) => woken.push(Object.fromEntries(rows)) });
  return { c, woken };
}

const stored: CommitResult = { ok: true, duplicate: false };

describe("group commit, over a real database", () => {
  it("stores what is submitted in one turn in ONE transaction, in order, and settles only after it committed", async () => {
    const store = tempStore();
    const { c, woken } = committer(store);
    const reqs = [req("alice", ["bob", "carol"]), req("carol", ["bob"]), req("alice", ["bob"])];
    const results = reqs.map((r) => c.submit(r));
    // Nothing is stored yet, and nobody was answered: the batch waits for this turn to end.
    expect(store.queueDepth("bob")).toBe(0);
    expect(c.pendingFor("bob")).toBe(3);
    let settled = 0;
    for (const r of results) void r.then(() => settled++);
    await Promise.resolve();
    expect(settled).toBe(0);

    expect(await Promise.all(results)).toEqual([stored, stored, stored]);
    expect(c.stats).toMatchObject({ commits: 1, envelopes: 3, largestBatch: 3, failedCommits: 0 });
    expect(c.pendingFor("bob")).toBe(0);
    // The recipients were woken once, after the commit, with what each got.
    expect(woken).toEqual([{ bob: 3, carol: 1 }]);
    const queued = store.fetchQueue("bob", 0, 10, 1 << 20);
    const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
    expect(queued.map((q) => hex(q.envelope))).toEqual(reqs.map((r) => hex(r.envelope)));
  });

  it("stores a (sender, id) once: a repeat in the same batch shares the first's fate, a later one is a duplicate", async () => {
    const store = tempStore();
    const { c } = committer(store);
    const id = randomBytes(16);
    const first = c.submit(req("alice", ["bob"], 100, id));
    expect(c.whenCommitted("alice", id)).toBe(first);
    const again = c.submit(req("alice", ["bob"], 100, id));
    expect(again).toBe(first);
    // Another sender may use the same id bytes: ids are per sender.
    const other = c.submit(req("carol", ["bob"], 100, id));
    expect(await Promise.all([first, again, other])).toEqual([stored, stored, stored]);
    expect(store.queueDepth("bob")).toBe(2);
    expect(c.whenCommitted("alice", id)).toBeUndefined();

    // A later batch: the store finds it accepted inside the transaction.
    expect(await c.submit(req("alice", ["bob"], 100, id))).toEqual({ ok: true, duplicate: true });
    expect(store.queueDepth("bob")).toBe(2);
    expect(c.stats.commits).toBe(2);
  });

  it("refuses every envelope of a failed commit (disk full), stores none of them, and commits the next batch", async () => {
    const store = tempStore(256 * 1024);
    const { c, woken } = committer(store);
    const small1 = req("alice", ["bob"], 1000);
    const tooBig = req("carol", ["bob", "dave"], 400 * 1024);
    const small2 = req("dave", ["bob"], 1000);
    const results = await Promise.all([c.submit(small1), c.submit(tooBig), c.submit(small2)]);
    for (const r of results) {
      expect(r.ok).toBe(false);
      if (r.ok) continue;
      expect(r.refusal.code).toBe(ErrorCode.ERROR_CODE_STORAGE_UNAVAILABLE);
      expect(r.refusal.message).toBe("the relay could not store the message because its storage is full; it was not sent, try again later");
    }
    expect(c.stats).toMatchObject({ commits: 0, failedCommits: 1 });
    expect(woken).toEqual([]);
    // Nothing of the batch stayed: no rows, and no id counts as accepted (a resend will be stored).
    expect([store.queueDepth("bob"), store.queueDepth("dave")]).toEqual([0, 0]);
    expect(store.fetchQueue("bob", 0, 10, 1 << 20)).toEqual([]);
    for (const r of [small1, tooBig, small2]) expect(store.wasAccepted(r.sender, r.messageId)).toBe(false);

    // The next batch starts afresh: the small ones, resent, are stored.
    expect(await Promise.all([c.submit(small1), c.submit(small2)])).toEqual([stored, stored]);
    expect(store.queueDepth("bob")).toBe(2);
    expect(woken).toEqual([{ bob: 2 }]);
  });

  it("commits each envelope on its own in per-envelope mode (the benchmark's baseline)", async () => {
    const store = tempStore();
    const { c, woken } = committer(store, "per-envelope");
    const results = [c.submit(req("alice", ["bob"])), c.submit(req("carol", ["bob"]))];
    // Committed before submit returned.
    expect(store.queueDepth("bob")).toBe(2);
    expect(await Promise.all(results)).toEqual([stored, stored]);
    expect(c.stats).toMatchObject({ commits: 2, envelopes: 2, largestBatch: 1 });
    expect(woken).toEqual([{ bob: 1 }, { bob: 1 }]);
  });

  it("refuses submissions once closed, after committing what was waiting", async () => {
    const store = tempStore();
    const { c } = committer(store);
    const waiting = c.submit(req("alice", ["bob"]));
    c.close();
    expect(store.queueDepth("bob")).toBe(1);
    expect(await waiting).toEqual(stored);
    const late = await c.submit(req("alice", ["bob"]));
    expect(late.ok).toBe(false);
    expect(late.ok ? "" : late.refusal.message).toMatch(/^the relay is shutting down and did not store the message/);
  });
});

describe("delivery reads, from the file", () => {
  const bytesOf = (store: RelayStore, recipient: string): string[] =>
    store.fetchQueue(recipient, 0, 100, 1 << 24).map((q) => q.envelope.toString("hex"));

  it("reads what no longer fits in memory from the file, the same bytes in the same order", () => {
    const dir = mkdtempSync(join(tmpdir(), "sc-recent-"));
    const path = join(dir, "relay.db");
    const small = openStore(path, { recentEnvelopeBytes: 2500 });
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const reqs = Array.from({ length: 6 }, () => req("alice", ["bob"], 1000));
    for (const r of reqs) small.enqueueBatch([r]);
    const want = reqs.map((r) => Buffer.from(r.envelope).toString("hex"));
    expect(bytesOf(small, "bob")).toEqual(want);
    small.close();
    // A restarted relay has nothing in memory: everything comes from the file.
    const reopened = openStore(path);
    expect(bytesOf(reopened, "bob")).toEqual(want);
    reopened.close();
  });
});

describe("group commit, through the relay", () => {
  it("commits bursts from many sessions together; every member gets every envelope once, in each sender's order", async () => {
    relay = await TestRelay.start({ limits: { messagesPerSecond: 10_000, burst: 10_000 } });
    const ids = [alice, bob, carol, dave];
    const sessions = await Promise.all(ids.map((id) => relay!.connect(id)));
    // The room's MLS group: alice makes it with all four members; each takes its Welcome.
    const room = await MlsTalk.start(relay, sessions[0]!, ids, "#burst", sessions.slice(1));
    const before = relay.running.stats();

    const perSender = 15;
    // Each session writes its whole burst at once, without waiting for answers.
    const messages: Buffer[][] = [];
    for (const id of ids) {
      const mine = [];
      for (let i = 0; i < perSender; i++) mine.push(await room.encrypt(id.username, `${id.username} ${i}`));
      messages.push(mine);
    }
    sessions.forEach((s, k) => {
      for (const m of messages[k]!) s.write({ $case: "sendMls", value: { mls: m } });
    });
    // Every send is answered ACCEPTED, in the order it was sent.
    for (const [k, s] of sessions.entries()) {
      const answers = [];
      for (let i = 0; i < perSender; i++) answers.push(await s.next("sendResult"));
      expect(answers.map((a) => a.status)).toEqual(Array(perSender).fill(SendStatus.SEND_STATUS_ACCEPTED));
      expect(answers.map((a) => Buffer.from(a.messageId).toString("hex"))).toEqual(messages[k]!.map((m) => mlsId(m).toString("hex")));
    }
    // Each member gets the other three senders' messages, each once, each sender's in order.
    for (const [k, s] of sessions.entries()) {
      const got = await s.deliveries(3 * perSender);
      const texts = await room.open(ids[k]!.username, got);
      expect(new Set(texts).size).toBe(texts.length);
      for (const [j, sender] of ids.entries()) {
        const fromSender = texts.filter((t) => t.startsWith(`${sender.username} `));
        expect(fromSender).toEqual(j === k ? [] : Array.from({ length: perSender }, (_, i) => `${sender.username} ${i}`));
      }
      s.ack(got.map((d) => d.seq));
    }
    const stats = relay.running.stats();
    expect(stats.committedEnvelopes - before.committedEnvelopes).toBe(4 * perSender);
    // Bursts written at once were stored in fewer transactions than messages.
    expect(stats.commits - before.commits).toBeLessThan(stats.committedEnvelopes - before.committedEnvelopes);
    expect(stats.largestBatch).toBeGreaterThan(1);
  });

  it("answers a resend that arrives while the first copy waits for its commit ACCEPTED, stores it once, and answers in frame order", async () => {
    relay = await TestRelay.start();
    const b0 = await relay.connect(bob);
    const a = await relay.connect(alice);
    const dm = await MlsTalk.start(relay, a, [alice, bob], "dm:alice:bob", [b0]);
    await relay.disconnect(b0, "bob");
    const mls = await dm.encrypt("alice", "twice in a row");
    a.write({ $case: "sendMls", value: { mls } });
    a.write({ $case: "sendMls", value: { mls } });
    a.write({ $case: "ping", value: { nonce: 7 } });
    // Frames after a send are answered after it: the Pong follows both SendResults.
    await a.next("pong", (p) => p.nonce === 7);
    // Answers in frame order (directory updates about others may come in between).
    expect(a.inbox.filter((f) => f.$case !== "directoryUpdate").map((f) => f.$case)).toEqual(["sendResult", "sendResult"]);
    const [r1, r2] = [await a.next("sendResult"), await a.next("sendResult")];
    expect([r1.status, r2.status]).toEqual([SendStatus.SEND_STATUS_ACCEPTED, SendStatus.SEND_STATUS_ACCEPTED]);
    expect(relay.events("send.accepted")).toHaveLength(1);
    expect(relay.events("send.duplicate")).toHaveLength(1);

    const b = await relay.connect(bob);
    expect(b.welcome.queued).toBe(1);
    expect(await dm.open("bob", await b.deliveries(1))).toEqual(["twice in a row"]);
    await b.barrier();
    expect(b.has("deliver")).toBe(false);
  });

  it("takes acks at once, without waiting for the sends before them to be stored", async () => {
    relay = await TestRelay.start({ limits: { messagesPerSecond: 1000, burst: 1000 } });
    const a = await relay.connect(alice);
    const b = await relay.connect(bob);
    await a.nextPresence("bob", true);
    const dm = await MlsTalk.start(relay, b, [bob, alice], "dm:alice:bob", [a]);
    const n = 12;
    for (let i = 0; i < n; i++) await sendMls(b, await dm.encrypt("bob", `to alice ${i}`));
    const got = await a.deliveries(n);
    expect(await dm.open("alice", got)).toEqual(Array.from({ length: n }, (_, i) => `to alice ${i}`));
    const before = relay.running.stats();
    const from = relay.logs.length; // alice's ack of her Welcome is before

    // A chatting client: each send followed by an ack of something it received. Written as ONE
    // write of the stream (a second session of alice's, by hand over HTTP/2, replacing the
    // first), so the relay reads them all at once: a SendMls is checked synchronously, and a
    // send and its ack read in separate turns would show nothing about the order.
    const mine: Buffer[] = [];
    for (let i = 0; i < n; i++) mine.push(await dm.encrypt("alice", `to bob ${i}`));
    const conn = await Http2Connection.open(relay.running.port, undefined, "127.0.0.1", relay.running.tls);
    try {
      const h = conn.stream();
      await h.handshake(alice);
      h.writeRaw(Buffer.concat(mine.flatMap((m, i) => [
        grpcMessage({ $case: "sendMls", value: { mls: m } }), grpcMessage({ $case: "ack", value: { seqs: [got[i]!.seq] } }),
      ])));
      const answers = [];
      for (let i = 0; i < n; i++) answers.push(await h.next("sendResult"));
      expect(answers.map((r) => r.status)).toEqual(Array(n).fill(SendStatus.SEND_STATUS_ACCEPTED));
      expect(answers.map((r) => Buffer.from(r.messageId).toString("hex"))).toEqual(mine.map((m) => mlsId(m).toString("hex")));
      const after = relay.running.stats();
      expect(after.committedEnvelopes - before.committedEnvelopes).toBe(n);
      // An ack that waited for the sends before it would always be logged after the i-th send's
      // acceptance. Taken as it is read, acks come before (all of them, unless the network split
      // every send from its ack and the relay stored each send in between: the check asks for one).
      const at = (event: string): number[] => relay!.logs.flatMap((l, i) => (i >= from && l["user"] === "alice" && l.event === event ? [i] : []));
      const [acks, accepted] = [at("ack"), at("send.accepted")];
      expect([acks.length, accepted.length]).toEqual([n, n]);
      expect(acks.some((ackAt, i) => ackAt < accepted[i]!)).toBe(true);
      // And the acks took effect: nothing is delivered to alice again after she reconnects.
      h.write({ $case: "ping", value: { nonce: 5 } });
      await h.next("pong", (p) => p.nonce === 5);
      h.close();
      await relay.waitForLog("session.close", (l) => l.user === "alice" && l.reason !== "replaced");
    } finally {
      conn.close();
    }
    const again = await relay.connect(alice);
    expect(again.welcome.queued).toBe(0);
    expect(await dm.open("bob", await b.deliveries(n))).toEqual(mine.map((_, i) => `to bob ${i}`));
  });

  it("on a full disk refuses with STORAGE_UNAVAILABLE, stores nothing half, keeps serving, and stores again once there is room", async () => {
    relay = await TestRelay.start({ maxDatabaseBytes: 640 * 1024, limits: { messagesPerSecond: 1000, burst: 1000 } });
    const b0 = await relay.connect(bob);
    const a = await relay.connect(alice);
    const c = await relay.connect(carol);
    const d = await relay.connect(dave);
    const dm = await MlsTalk.start(relay, a, [alice, bob], "dm:alice:bob", [b0]);
    await relay.disconnect(b0, "bob");

    // alice fills bob's queue with ~60 KB messages until the database is full.
    const accepted: string[] = [];
    let refusal;
    for (let i = 0; i < 40 && refusal === undefined; i++) {
      const text = `${i}:`.padEnd(60_000, "x");
      const r = await dm.send(a, "alice", text);
      if (r.status === SendStatus.SEND_STATUS_ACCEPTED) accepted.push(text);
      else refusal = r;
    }
    expect(refusal).toMatchObject({
      status: SendStatus.SEND_STATUS_REFUSED,
      code: ErrorCode.ERROR_CODE_STORAGE_UNAVAILABLE,
      detail: "the relay could not store the message because its storage is full; it was not sent, try again later",
    });
    expect(accepted.length).toBeGreaterThan(2);
    expect(relay.events("store.commit_failed")).toHaveLength(1);

    // The relay keeps serving: sessions answer, room requests work, presence flows.
    await c.barrier();
    c.write({ $case: "listRooms", value: { requestId: 9 } });
    expect((await c.next("roomList")).requestId).toBe(9);
    await d.barrier();

    // bob gets exactly what was accepted, nothing of the refused message; his acks make room.
    const b = await relay.connect(bob);
    await c.nextPresence("bob", true);
    expect(b.welcome.queued).toBe(accepted.length);
    const got = await b.deliveries(accepted.length);
    expect(await dm.open("bob", got)).toEqual(accepted);
    b.ack(got.map((x) => x.seq));
    await b.barrier();
    await b.barrier();
    expect(b.has("deliver")).toBe(false);
    const retry = await dm.send(a, "alice", "room again");
    expect(retry.status).toBe(SendStatus.SEND_STATUS_ACCEPTED);
    expect(await dm.open("bob", await b.deliveries(1))).toEqual(["room again"]);
  });
});
