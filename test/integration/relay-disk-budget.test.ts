// The relay's disk budget (src/server/disk-budget.ts, PROTOCOL.md §13.3) and a full disk that
// drains by itself (issue 16): acks commit even when nothing more can be stored, the cap counts
// the write-ahead log, and a resend of an accepted id is ACCEPTED even then (§8.4).
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode, SendStatus, type SendResult } from "../../src/gen/securechat/v1/chat.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { nullLogger } from "../../src/protocol/log.js";
import {
  defaultBudget, DiskReserve, MAX_DEFAULT_BUDGET, MIN_DEFAULT_BUDGET, RESERVE_FILE, reserveBytesFor,
} from "../../src/server/disk-budget.js";
import { GroupCommitter } from "../../src/server/group-commit.js";
import { openStore, SQLITE_FULL, type AckRequest, type RelayStore } from "../../src/server/store.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { sendMls } from "../helpers/mls-queues.js";
import { MlsTalk } from "../helpers/mls-talk.js";
import { TestRelay } from "../helpers/relay-harness.js";
import { waitUntil } from "../helpers/wait.js";

const MIB = 1024 * 1024;
let alice: PrivateIdentity;
let bob: PrivateIdentity;
const cleanups: Array<() => Promise<unknown> | unknown> = [];

beforeAll(async () => {
  [alice, bob] = await Promise.all([fixtureIdentity("alice"), fixtureIdentity("bob")]);
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "sc-disk-"));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

/** relay.db plus its WAL, as on disk. */
function onDisk(dataDir: string): number {
  return ["relay.db", "relay.db-wal"].map((f) => join(dataDir, f)).filter((p) => existsSync(p)).reduce((n, p) => n + statSync(p).size, 0);
}

const isStorageFull = (r: SendResult) => r.status === SendStatus.SEND_STATUS_REFUSED && r.code === ErrorCode.ERROR_CODE_STORAGE_UNAVAILABLE;

describe("a full database", () => {
  it("still commits acks (even beside a failing insert), counts its WAL, and drains by itself", async () => {
    const cap = 512 * 1024;
    const relay = await TestRelay.start({ maxDatabaseBytes: cap, limits: { messagesPerSecond: 100_000, burst: 100_000 } });
    cleanups.push(() => relay.cleanup());
    const b0 = await relay.connect(bob);
    const a = await relay.connect(alice);
    const dm = await MlsTalk.start(relay, a, [alice, bob], "dm:alice:bob", [b0]);
    await relay.disconnect(b0, "bob");

    // Fill it: alice writes to offline bob until the relay says its storage is full.
    const accepted: string[] = [];
    let refusal: SendResult | undefined;
    for (let i = 0; refusal === undefined && i < 2000; i++) {
      const r = await dm.send(a, "alice", `fill ${i} ${"x".repeat(700)}`);
      if (r.status === SendStatus.SEND_STATUS_ACCEPTED) accepted.push(`fill ${i}`);
      else refusal = r;
    }
    expect(refusal).toBeDefined();
    expect(isStorageFull(refusal!)).toBe(true);
    expect(refusal!.detail).toBe("the relay could not store the message because its storage is full; it was not sent, try again later");
    expect(accepted.length).toBeGreaterThan(50);
    // The cap counts the write-ahead log: file + WAL stay within it.
    expect(onDisk(relay.dataDir)).toBeLessThanOrEqual(cap);

    // bob reads everything; then, in one go, sends (while the disk is full) and acks: both land
    // in one group commit. The acks must not ride (and roll back with) the insert: committed
    // first, they free the space that the reply may then use.
    const b = await relay.connect(bob);
    const got = await b.deliveries(accepted.length, 15_000);
    expect((await dm.open("bob", got)).map((t) => t.split(" x")[0])).toEqual(accepted);
    const blocked = await dm.encrypt("bob", `reply ${"y".repeat(20_000)}`);
    b.write({ $case: "sendMls", value: { mls: blocked } });
    b.ack(got.map((d) => d.seq));
    const answer = await b.next("sendResult");
    expect(answer.status === SendStatus.SEND_STATUS_ACCEPTED || isStorageFull(answer)).toBe(true);
    await relay.disconnect(b, "bob");

    // Nothing is delivered twice: the acked rows are gone.
    const again = await relay.connect(bob);
    expect(again.welcome.queued).toBe(0);
    await again.barrier();
    expect(again.has("deliver")).toBe(false);

    // The space the acks freed is used again: alice's messages go through, without an operator.
    const after = await waitUntil(async () => {
      const r = await dm.send(a, "alice", "after the drain");
      return r.status === SendStatus.SEND_STATUS_ACCEPTED ? r : undefined;
    }, "the relay accepts again", 5000);
    expect(after.status).toBe(SendStatus.SEND_STATUS_ACCEPTED);
    // bob gets only the message after the drain (his acked rows are gone).
    expect(await dm.open("bob", await again.deliveries(1))).toEqual(["after the drain"]);
    expect(onDisk(relay.dataDir)).toBeLessThanOrEqual(cap);
  }, 60_000);

  it("answers ACCEPTED to a resend of an accepted id while full (§8.4), and stores it once", async () => {
    const relay = await TestRelay.start({ maxDatabaseBytes: 256 * 1024, limits: { messagesPerSecond: 100_000, burst: 100_000 } });
    cleanups.push(() => relay.cleanup());
    const b0 = await relay.connect(bob);
    const a = await relay.connect(alice);
    const dm = await MlsTalk.start(relay, a, [alice, bob], "dm:alice:bob", [b0]);
    await relay.disconnect(b0, "bob");
    const first = await dm.encrypt("alice", "first");
    expect((await sendMls(a, first)).status).toBe(SendStatus.SEND_STATUS_ACCEPTED);
    let full = false;
    for (let i = 0; !full && i < 2000; i++) full = isStorageFull(await dm.send(a, "alice", `pad ${"x".repeat(700)}`));
    expect(full).toBe(true);
    const r = await sendMls(a, first);
    expect({ status: r.status, detail: r.detail }).toEqual({ status: SendStatus.SEND_STATUS_ACCEPTED, detail: "" });
    // Stored once: bob gets "first" once, then the padding accepted before the disk filled.
    const b = await relay.connect(bob);
    const queued = b.welcome.queued;
    const got = await b.deliveries(queued, 15_000);
    const texts = await dm.open("bob", got);
    expect(texts.filter((t) => t === "first")).toHaveLength(1);
    expect(texts[0]).toBe("first");
  }, 60_000);
});

describe("the disk reserve", () => {
  it("is released when an ack commit fails for lack of space, and the acks then go through", () => {
    const dir = tempDir();
    const reserve = new DiskReserve(dir, 64 * 1024, () => ({ freeBytes: 100 * MIB }));
    expect(reserve.restore()).toBe(true);
    expect(statSync(join(dir, RESERVE_FILE)).size).toBe(64 * 1024);
    // A store whose disk is full until the reserve is gone (as SQLite reports it: errcode 13).
    const real = openStore(join(dir, "relay.db"));
    cleanups.push(() => real.close());
    const acked: AckRequest[][] = [];
    const store: RelayStore = Object.assign(Object.create(real) as RelayStore, {
      ackBatch: (acks: readonly AckRequest[]) => {
        if (reserve.held) throw Object.assign(new Error("database or disk is full"), { errcode: SQLITE_FULL });
        acked.push([...acks]);
        return acks.length;
      },
    });
    const c = new GroupCommitter({ store, logger: nullLogger, onCommitted: () => {}, onStorageFull: () => reserve.release() });
    c.ack("bob", [1, 2, 3]);
    c.close();
    expect(existsSync(join(dir, RESERVE_FILE))).toBe(false);
    expect(acked).toEqual([[{ recipient: "bob", seqs: [1, 2, 3] }]]);
    expect(c.stats.failedAckCommits).toBe(1);
  });

  it("keeps acks that still fail for the next commit", () => {
    const dir = tempDir();
    const real = openStore(join(dir, "relay.db"));
    cleanups.push(() => real.close());
    let failing = true;
    const acked: AckRequest[][] = [];
    const store: RelayStore = Object.assign(Object.create(real) as RelayStore, {
      ackBatch: (acks: readonly AckRequest[]) => {
        if (failing) throw Object.assign(new Error("disk I/O error"), { errcode: 10 });
        acked.push([...acks]);
        return acks.length;
      },
    });
    const c = new GroupCommitter({ store, logger: nullLogger, onCommitted: () => {}, onStorageFull: () => false });
    c.ack("bob", [1]);
    (c as unknown as { commit(): void }).commit();
    expect(acked).toEqual([]);
    failing = false;
    c.ack("bob", [2]);
    c.close();
    expect(acked).toEqual([[{ recipient: "bob", seqs: [1] }, { recipient: "bob", seqs: [2] }]]);
  });

  it("is written again only when the disk has room for it", () => {
    const dir = tempDir();
    let free = 100 * 1024;
    const reserve = new DiskReserve(dir, 64 * 1024, () => ({ freeBytes: free }));
    expect(reserve.restore()).toBe(false);
    expect(reserve.held).toBe(false);
    free = 10 * MIB;
    expect(reserve.restore()).toBe(true);
    expect(reserve.release()).toBe(true);
    expect(reserve.release()).toBe(false);
  });
});

describe("the default budget", () => {
  it("is half the free space plus what the database takes, within 64 MiB - 8 GiB", () => {
    expect(defaultBudget(1000 * MIB, 10 * MIB).bytes).toBe(510 * MIB);
    expect(defaultBudget(20 * MIB, 0).bytes).toBe(MIN_DEFAULT_BUDGET);
    expect(defaultBudget(100 * 1024 * MIB, 0).bytes).toBe(MAX_DEFAULT_BUDGET);
    expect(defaultBudget(1000 * MIB, 10 * MIB).rule).toBe("half of the 1000 MiB free at start plus the 10 MiB the database takes, within 64 MiB-8192 MiB");
    expect(reserveBytesFor(MAX_DEFAULT_BUDGET)).toBe(8 * MIB);
    expect(reserveBytesFor(256 * 1024)).toBe(64 * 1024);
  });

  it("applies when no --max-db-mb is given, and says so at start", async () => {
    const relay = await TestRelay.start({ fsSpace: () => ({ freeBytes: 300 * MIB }) });
    cleanups.push(() => relay.cleanup());
    const start = await relay.waitForLog("relay.start");
    expect(start.dbBudgetMb).toBeGreaterThanOrEqual(150);
    expect(start.dbBudgetMb).toBeLessThan(151);
    expect(start.dbBudgetRule).toMatch(/^half of the 300 MiB free at start/);
    expect(start.diskReserve).toBe(true);
    expect(statSync(join(relay.dataDir, RESERVE_FILE)).size).toBe(reserveBytesFor(150 * MIB + 0));
  });
});
