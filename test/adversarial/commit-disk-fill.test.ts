// Regression (red team rt-relay, rt-commit-disk-fill): one user, alone in a room of her own, filled
// the relay's whole database with commits (a PrivateMessage "commit" is, to the relay, a clear
// header and opaque bytes), for good: commits were never purged by the retention and bounded per
// user by nothing. And once the database was full, every storage write ended the requester's
// session with INTERNAL "internal relay error".
//
// Now (PROTOCOL.md §8.2, §13.2): a full storage refuses the one request with STORAGE_UNAVAILABLE
// and the session goes on; a commit is at most MAX_COMMIT_BYTES; one user's kept commits are
// bounded (her oldest go); the retention purge drops commits past it (each group's newest stays).
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode } from "../../src/gen/securechat/v1/chat.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { MlsGroup } from "../../src/protocol/mls/index.js";
import { MAX_COMMIT_BYTES } from "../../src/server/limits.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { ask, mlsPerson, must, sendCommit } from "../helpers/mls-ds.js";
import type { RawSession } from "../helpers/raw-session.js";
import { fakePrivateCommit } from "../helpers/mls-queues.js";
import { TestRelay } from "../helpers/relay-harness.js";
import { testStoreKind } from "../helpers/pg.js";

let alice: PrivateIdentity;
let mallory: PrivateIdentity;
let relay: TestRelay;
beforeAll(async () => {
  [alice, mallory] = await Promise.all([fixtureIdentity("alice"), fixtureIdentity("mallory")]);
});
afterEach(async () => {
  await relay?.cleanup();
});

/** The session still answers (a Ping): it was not ended. */
async function stillServed(s: RawSession): Promise<void> {
  s.write({ $case: "ping", value: { nonce: 7 } });
  await s.next("pong", () => true);
}

const CT = 900_000;

describe.skipIf(testStoreKind() === "postgres")("commits cannot fill the database (embedded store's budget)", () => {
  it("a full database refuses mallory's commit and alice's new room with STORAGE_UNAVAILABLE, sessions going on; the retention purge frees it", { timeout: 180_000 }, async () => {
    let now = Date.now();
    // A per-user bound above the budget: the database fills before it applies.
    relay = await TestRelay.start({ maxDatabaseBytes: 16 * 1024 * 1024, clock: () => now, logLevel: "warn", limits: { maxKeptCommitBytesPerUser: 1024 * 1024 * 1024 } });
    const m = await relay.connect(mallory);
    const pm = await mlsPerson(mallory);
    const room = await MlsGroup.create(pm.client, "#mine");
    await must(m, { $case: "publishGroupInfo", value: { requestId: 0, groupInfo: Buffer.from(await room.groupInfo()) } }, "groupInfoResult");
    let epoch = 0;
    // Big commits first, then smaller ones to top the file off; each size ends refused, never the session.
    for (const size of [CT, 100_000, 10_000, 1_000, 200]) {
      let refused: { code: number; detail: string } | undefined;
      for (let i = 0; i < 2_000 && refused === undefined; i++) {
        const r = await sendCommit(m, fakePrivateCommit(room.groupId, epoch, size));
        if (r.accepted) epoch++;
        else if (r.code === ErrorCode.ERROR_CODE_RATE_LIMITED) now += 1000;
        else refused = { code: r.code, detail: r.detail };
      }
      expect(refused).toMatchObject({ code: ErrorCode.ERROR_CODE_STORAGE_UNAVAILABLE });
      expect(refused!.detail).toMatch(/storage is full/);
      await stillServed(m);
    }
    expect(epoch).toBeGreaterThan(3);
    expect(relay.events("session.failed")).toEqual([]);

    // alice, while it is full: refused, not ended.
    const a = await relay.connect(alice);
    const pa = await mlsPerson(alice);
    const g = await MlsGroup.create(pa.client, "#alice-room");
    const publish = { $case: "publishGroupInfo" as const, value: { requestId: 0, groupInfo: Buffer.from(await g.groupInfo()) } };
    const full = await ask(a, publish, "groupInfoResult");
    expect(full.ok).toBe(false);
    expect(full.ok ? undefined : full.value.code).toBe(ErrorCode.ERROR_CODE_STORAGE_UNAVAILABLE);
    await stillServed(a);
    expect(relay.events("session.failed")).toEqual([]);

    // Past the retention, the purge drops mallory's commits (her group's newest stays): alice's room is made.
    now += 31 * 24 * 3600 * 1000;
    relay.running.purgeExpired();
    const ok = await ask(a, publish, "groupInfoResult");
    expect(ok.ok).toBe(true);
    // mallory can fetch only her group's newest commit.
    m.write({ $case: "fetchCommits", value: { requestId: 5, groupId: Buffer.from(room.groupId), fromEpoch: 0 } });
    const list = await m.next("commitList", (r) => r.requestId === 5);
    expect(list.commits.map((c) => c.epoch)).toEqual([epoch - 1]);
  });
});

describe("commits a user can make the relay keep are bounded", () => {
  it(`a commit over ${MAX_COMMIT_BYTES} bytes is refused; one user's kept commits stay within the per-user bound, her oldest dropped`, { timeout: 180_000 }, async () => {
    let now = Date.now();
    relay = await TestRelay.start({ clock: () => now, logLevel: "warn", limits: { maxKeptCommitBytesPerUser: 4 * 1024 * 1024 } });
    const m = await relay.connect(mallory);
    const pm = await mlsPerson(mallory);
    const room = await MlsGroup.create(pm.client, "#mine");
    await must(m, { $case: "publishGroupInfo", value: { requestId: 0, groupInfo: Buffer.from(await room.groupInfo()) } }, "groupInfoResult");
    const big = await sendCommit(m, fakePrivateCommit(room.groupId, 0, MAX_COMMIT_BYTES));
    expect(big).toMatchObject({ accepted: false, code: ErrorCode.ERROR_CODE_FRAME_TOO_LARGE });
    let epoch = 0;
    while (epoch < 12) {
      const r = await sendCommit(m, fakePrivateCommit(room.groupId, epoch, CT));
      if (r.accepted) epoch++;
      else {
        expect(r.code).toBe(ErrorCode.ERROR_CODE_RATE_LIMITED);
        now += 1000;
      }
    }
    // 12 accepted, never refused; 4 MiB keeps the newest 4 of ~900 KB (FetchCommits: about half a frame per answer).
    const kept: number[] = [];
    for (let from = 0, id = 5; ; id++) {
      m.write({ $case: "fetchCommits", value: { requestId: id, groupId: Buffer.from(room.groupId), fromEpoch: from } });
      const list = await m.next("commitList", (r) => r.requestId === id);
      expect(list.currentEpoch).toBe(12);
      kept.push(...list.commits.map((c) => c.epoch));
      if (!list.more) break;
      from = kept.at(-1)! + 1;
    }
    expect(kept).toEqual([8, 9, 10, 11]);
  });
});
