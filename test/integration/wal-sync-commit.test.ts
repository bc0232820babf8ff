// The embedded store's group commit without the event loop waiting on the disk (group-commit.ts,
// store/wal-sync.ts): a batch commits under synchronous = NORMAL and is durable only once one
// fdatasync of the WAL (on the thread pool) returned. Until then nobody hears ACCEPTED and no
// recipient gets its rows; a failed sync refuses its batches for good; syncs are pipelined (at
// most one in flight, the next covering every commit made meanwhile) and batches settle in
// order. The sync is injected (`syncWal`), held and released or failed by each test.
import { fdatasync, mkdtempSync, rmSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode, SendStatus } from "../../src/gen/securechat/v1/chat.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { nullLogger } from "../../src/protocol/log.js";
import { GroupCommitter, type CommitResult } from "../../src/server/group-commit.js";
import { openStore, SQLITE_FULL, type AckRequest, type EnqueueRequest, type RelayStore, type SyncFile } from "../../src/server/store.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { MlsTalk } from "../helpers/mls-talk.js";
import { testStoreKind } from "../helpers/pg.js";
import { TestRelay } from "../helpers/relay-harness.js";
import { req, user } from "../helpers/store-records.js";
import { waitUntil } from "../helpers/wait.js";

/** A sync the test drives: each call waits until released or failed (or passes through when `hold` is off). */
class HeldSync {
  hold = true;
  readonly calls: Array<{ readonly release: () => void; readonly fail: (e: Error) => void }> = [];
  readonly sync: SyncFile = (fd) => {
    if (!this.hold) return new Promise((resolve, reject) => fdatasync(fd, (e) => (e === null ? resolve() : reject(e))));
    return new Promise((resolve, reject) => this.calls.push({ release: resolve, fail: reject }));
  };

  /** The n-th call (1-based), once it was made. */
  async call(n: number): Promise<{ readonly release: () => void; readonly fail: (e: Error) => void }> {
    return waitUntil(() => this.calls[n - 1], `WAL sync call ${n}`);
  }
}

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

function tempStore(syncWal: SyncFile): RelayStore {
  const dir = mkdtempSync(join(tmpdir(), "sc-wal-sync-"));
  const store = openStore(join(dir, "relay.db"), { syncWal });
  cleanups.push(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return store;
}

function committer(store: RelayStore, maxBatchBytes?: number) {
  const woken: Array<Record<string, number>> = [];
  const shown: string[][] = [];
  const failures: unknown[] = [];
  const c = new GroupCommitter({
    store, logger: nullLogger, ...(maxBatchBytes === undefined ? {} : { maxBatchBytes }),
    onCommitted: (rows) => woken.push(Object.fromEntries(rows)),
    onRowsShown: (r) => shown.push([...r].sort()),
    onSyncFailed: (e) => failures.push(e),
  });
  return { c, woken, shown, failures };
}

/** Whether a promise has settled, without waiting for it. */
async function isSettled(p: Promise<unknown>): Promise<boolean> {
  let settled = false;
  void p.then(() => (settled = true), () => (settled = true));
  await new Promise((r) => setImmediate(r));
  return settled;
}

const stored: CommitResult = { ok: true, duplicate: false };
const rows = (store: RelayStore, recipient: string): number => store.fetchQueue(recipient, 0, 100, 1 << 20).length;

describe("group commit with the WAL synced off the event loop", () => {
  it("answers a batch and shows its rows only once its WAL sync returned", async () => {
    const held = new HeldSync();
    const store = tempStore(held.sync);
    const { c, woken } = committer(store);
    const id = randomBytes(16);
    const result = c.submit(req("alice", ["bob", "carol"], 100, id));
    const sync = await held.call(1);
    // Committed (in the file, counted for queue caps, the id known), but not durable yet:
    expect(c.stats.commits).toBe(1);
    expect(store.queueDepth("bob")).toBe(1);
    // nobody heard ACCEPTED, no pump was woken, and no fetch shows the rows;
    expect(await isSettled(result)).toBe(false);
    expect(woken).toEqual([]);
    expect([rows(store, "bob"), rows(store, "carol")]).toEqual([0, 0]);
    // a pump started now counts the row as still to come (it is above lastSeq);
    expect(store.lastSeq()).toBe(0);
    // a resend meanwhile shares the batch's fate.
    expect(c.whenCommitted("alice", id)).toBe(result);
    expect(c.submit(req("alice", ["bob"], 100, id))).toBe(result);

    sync.release();
    expect(await result).toEqual(stored);
    expect(woken).toEqual([{ bob: 1, carol: 1 }]);
    expect([rows(store, "bob"), rows(store, "carol")]).toEqual([1, 1]);
    // One envelope, one seq (the same in each queue that holds it).
    expect(store.lastSeq()).toBe(1);
    expect(c.whenCommitted("alice", id)).toBeUndefined();
    expect(c.stats).toMatchObject({ commits: 1, syncs: 1, failedSyncs: 0 });
  });

  it("grows the next batch while a sync runs and commits it when the sync returned; batches settle in order", async () => {
    const held = new HeldSync();
    const store = tempStore(held.sync);
    const { c, woken } = committer(store);
    const order: string[] = [];
    const submit = (name: string, to: string, bytes = 100) => void c.submit(req(name, [to], bytes)).then((r) => order.push(`${name}:${String(r.ok)}`));
    submit("b1", "bob");
    const first = await held.call(1);
    submit("b2", "bob");
    await new Promise((r) => setImmediate(r));
    submit("b3", "carol");
    await new Promise((r) => setImmediate(r));
    // Not committed yet: they wait for the sync in flight, in one batch.
    expect(c.stats.commits).toBe(1);
    expect(c.pendingFor("bob")).toBe(1);
    first.release();
    await waitUntil(() => order.length === 1, "the first batch settled");
    expect(order).toEqual(["b1:true"]);
    const second = await held.call(2);
    expect(c.stats).toMatchObject({ commits: 2, largestBatch: 2 });
    expect(rows(store, "bob")).toBe(1); // b2's row waits for its sync
    second.release();
    await waitUntil(() => order.length === 3, "the later batch settled");
    expect(order).toEqual(["b1:true", "b2:true", "b3:true"]);
    expect(woken).toEqual([{ bob: 1 }, { bob: 1, carol: 1 }]);
    expect([rows(store, "bob"), rows(store, "carol")]).toEqual([2, 1]);
  });

  it("pipelines batches that reach maxBatchBytes: they commit while a sync runs, the next sync covers them all, in order", async () => {
    const held = new HeldSync();
    const store = tempStore(held.sync);
    const woken: Array<Record<string, number>> = [];
    const c = new GroupCommitter({ store, logger: nullLogger, maxBatchBytes: 1000, onCommitted: (r) => woken.push(Object.fromEntries(r)) });
    const order: string[] = [];
    const submit = (name: string, to: string) => void c.submit(req(name, [to], 1000)).then((r) => order.push(`${name}:${String(r.ok)}`));
    submit("b1", "bob");
    const first = await held.call(1);
    // Full batches commit at once, even while the first sync runs.
    submit("b2", "bob");
    submit("b3", "carol");
    expect(c.stats.commits).toBe(3);
    // One sync at a time: none started for them yet.
    expect(held.calls).toHaveLength(1);
    first.release();
    await waitUntil(() => order.length === 1, "the first batch settled");
    expect(rows(store, "bob")).toBe(1);
    // The next sync covers both batches committed meanwhile.
    const second = await held.call(2);
    second.release();
    await waitUntil(() => order.length === 3, "the later batches settled");
    expect(order).toEqual(["b1:true", "b2:true", "b3:true"]);
    expect(held.calls).toHaveLength(2);
    expect(woken).toEqual([{ bob: 1 }, { bob: 1 }, { carol: 1 }]);
    expect([rows(store, "bob"), rows(store, "carol")]).toEqual([2, 1]);
  });

  it("refuses every batch not yet durable when a sync fails, never shows its rows, and writes nothing more", async () => {
    const held = new HeldSync();
    const store = tempStore(held.sync);
    const { c, woken, failures } = committer(store, 1000);
    // Something durable first (it must stay visible).
    const before = c.submit(req("dave", ["bob"]));
    (await held.call(1)).release();
    expect(await before).toEqual(stored);

    const r1 = req("alice", ["bob"]);
    const first = c.submit(r1);
    const failing = await held.call(2);
    const second = c.submit(req("carol", ["bob"], 1000)); // a full batch: committed while the failing sync runs
    expect(c.stats.commits).toBe(3);
    failing.fail(Object.assign(new Error("EIO: i/o error, fdatasync"), { code: "EIO" }));

    for (const r of await Promise.all([first, second])) {
      expect(r.ok).toBe(false);
      expect(r.ok ? undefined : r.refusal.code).toBe(ErrorCode.ERROR_CODE_STORAGE_UNAVAILABLE);
      expect(r.ok ? "" : r.refusal.message).toMatch(/could not make the message durable on its disk/);
    }
    expect(failures).toHaveLength(1);
    expect(c.stats).toMatchObject({ failedSyncs: 2 });
    expect(woken).toEqual([{ bob: 1 }]);
    // The rows are in the file, but never shown: only the durable one is fetched.
    expect(store.queueDepth("bob")).toBe(3);
    expect(rows(store, "bob")).toBe(1);
    // A resend is not answered from the `accepted` table: it is a new send, and refused.
    expect(store.wasAccepted(r1.sender, r1.messageId)).toBe(false);
    const later = await c.submit(r1);
    expect(later.ok).toBe(false);
    // No transaction runs any more, FULL ones included (registrations, MLS commits).
    expect(() => store.bindUser(user("erin", 1))).toThrow(/sync of the database's write-ahead log failed/);
    expect(held.calls).toHaveLength(2);
    expect(rows(store, "bob")).toBe(1);
  });

  it("shows rows of a FULL commit that waited behind a batch's sync once that sync returned, and names who to wake", async () => {
    const held = new HeldSync();
    const store = tempStore(held.sync);
    const { c, shown } = committer(store);
    const batch = c.submit(req("alice", ["bob"]));
    const sync = await held.call(1);
    // An MLS commit's deliveries are committed with a sync of their own (FULL), after the batch.
    store.enqueueBatch([req("carol", ["dave"])]);
    // Durable, but behind a row that is not: dave's pump reads nothing yet (seq order).
    expect(rows(store, "dave")).toBe(0);
    sync.release();
    expect(await batch).toEqual(stored);
    expect(shown).toEqual([["dave"]]);
    expect(rows(store, "dave")).toBe(1);
  });

  /** A store whose WAL syncs pass through, and `spied` (a view of it with some calls replaced) behind a committer. */
  function passThrough(spy: (store: RelayStore) => Partial<RelayStore>) {
    const held = new HeldSync();
    held.hold = false;
    const store = tempStore(held.sync);
    const { c } = committer(Object.assign(Object.create(store) as RelayStore, spy(store)));
    return { store, c };
  }

  /** Stores a row for bob and has bob ack it: the ack then waits for the next commit. Returns its seqs. */
  async function rowAckedByBob(c: GroupCommitter, store: RelayStore): Promise<number[]> {
    expect(await c.submit(req("alice", ["bob"], 100))).toEqual(stored);
    const seqs = store.fetchQueue("bob", 0, 10, 1 << 20).map((i) => i.seq);
    c.ack("bob", seqs);
    return seqs;
  }

  it("commits waiting acks in the batch's own transaction: one commit, no ack transaction of their own", async () => {
    const alone: unknown[] = [];
    const { store, c } = passThrough((store) => ({
      ackBatch: (acks: readonly AckRequest[]) => {
        alone.push(acks);
        return store.ackBatch(acks);
      },
    }));
    const seqs = await rowAckedByBob(c, store);
    expect(await c.submit(req("carol", ["bob"], 100))).toEqual(stored);
    expect(alone).toEqual([]);
    expect(c.stats).toMatchObject({ commits: 2, ackCommits: 1, failedAckCommits: 0 });
    expect(store.fetchQueue("bob", 0, 10, 1 << 20).map((i) => i.seq)).not.toContain(seqs[0]);
    expect(rows(store, "bob")).toBe(1);
  });

  it("when the batch with acks fails, commits the acks alone, then tries the batch once more", async () => {
    const order: string[] = [];
    let failNext = false;
    const { store, c } = passThrough((store) => ({
      ackBatch: (acks: readonly AckRequest[]) => {
        order.push("acks alone");
        return store.ackBatch(acks);
      },
      deferred: {
        enqueueBatch: (reqs: readonly EnqueueRequest[], acks?: readonly AckRequest[]) => {
          order.push(acks !== undefined && acks.length > 0 ? "batch with acks" : "batch");
          if (failNext) {
            failNext = false;
            throw Object.assign(new Error("database or disk is full"), { errcode: SQLITE_FULL });
          }
          return store.deferred!.enqueueBatch(reqs, acks);
        },
      },
    }));
    await rowAckedByBob(c, store);
    failNext = true;
    expect(await c.submit(req("carol", ["bob"], 100))).toEqual(stored);
    expect(order).toEqual(["batch", "batch with acks", "acks alone", "batch"]);
    expect(rows(store, "bob")).toBe(1);
    expect(c.stats).toMatchObject({ commits: 2, failedCommits: 0, ackCommits: 1 });
  });

  it("syncs what still waits when the store closes, and answers it as stored", async () => {
    const held = new HeldSync();
    const dir = mkdtempSync(join(tmpdir(), "sc-wal-sync-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const store = openStore(join(dir, "relay.db"), { syncWal: held.sync });
    const { c } = committer(store);
    const result = c.submit(req("alice", ["bob"]));
    await held.call(1);
    c.close();
    store.close();
    expect(await result).toEqual(stored);
    await c.idle();
    held.calls[0]!.release(); // the thread pool's sync returns late: nothing changes
    const reopened = openStore(join(dir, "relay.db"));
    expect(rows(reopened, "bob")).toBe(1);
    reopened.close();
  });
});

let alice: PrivateIdentity;
let bob: PrivateIdentity;
let relay: TestRelay | undefined;

describe.skipIf(testStoreKind() === "postgres")("through the relay, with the WAL sync held", () => {
  beforeAll(async () => {
    [alice, bob] = await Promise.all([fixtureIdentity("alice"), fixtureIdentity("bob")]);
  });
  afterEach(async () => {
    for (const call of held?.calls ?? []) call.release();
    await relay?.cleanup();
    relay = undefined;
  });
  let held: HeldSync | undefined;

  async function dmWithHeldSync(onSyncFailed?: (e: unknown) => void) {
    held = new HeldSync();
    held.hold = false;
    relay = await TestRelay.start({ syncWal: held.sync, ...(onSyncFailed ? { onSyncFailed } : {}) });
    const a = await relay.connect(alice);
    const b = await relay.connect(bob);
    const dm = await MlsTalk.start(relay, a, [alice, bob], "dm:alice:bob", [b]);
    held.hold = true;
    return { a, b, dm, held };
  }

  it("sends no SendResult ACCEPTED and no delivery before the sync returned", async () => {
    const { a, b, dm, held } = await dmWithHeldSync();
    a.write({ $case: "sendMls", value: { mls: await dm.encrypt("alice", "after the sync") } });
    const sync = await held.call(1);
    // An ack wakes bob's pump: it reads his queue, where the row is committed but not durable.
    b.ack([2 ** 40]);
    await b.barrier();
    expect(b.has("deliver")).toBe(false);
    expect(a.has("sendResult")).toBe(false);

    sync.release();
    expect((await a.next("sendResult")).status).toBe(SendStatus.SEND_STATUS_ACCEPTED);
    expect(await dm.open("bob", await b.deliveries(1))).toEqual(["after the sync"]);
  });

  it("refuses the batch of a failed sync, never delivers it, refuses its resend, and reports the failure", async () => {
    const failures: unknown[] = [];
    const { a, b, dm, held } = await dmWithHeldSync((e) => failures.push(e));
    const mls = await dm.encrypt("alice", "never on disk");
    a.write({ $case: "sendMls", value: { mls } });
    (await held.call(1)).fail(new Error("EIO: i/o error, fdatasync"));
    const r = await a.next("sendResult");
    expect([r.status, r.code]).toEqual([SendStatus.SEND_STATUS_REFUSED, ErrorCode.ERROR_CODE_STORAGE_UNAVAILABLE]);
    expect(failures).toHaveLength(1);
    expect(relay!.events("store.sync_failed")).toHaveLength(1);
    // The resend is refused too (not ACCEPTED from the row that is not known durable).
    a.write({ $case: "sendMls", value: { mls } });
    expect((await a.next("sendResult")).status).toBe(SendStatus.SEND_STATUS_REFUSED);
    b.ack([2 ** 40]); // wakes bob's pump: it reads his queue
    await b.barrier();
    expect(b.has("deliver")).toBe(false);
  });
});
