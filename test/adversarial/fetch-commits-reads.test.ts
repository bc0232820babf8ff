// FetchCommits over big kept commits (PROTOCOL.md §8.2; red-team finding rt4): the relay answers
// with the commits that fit half a frame (at least one), and its store reads only those, not every
// commit from the epoch asked on. A user alone in a room of her own keeps a few dozen commits of
// ~980 KB (her kept-commit bound); a fetch from epoch 0 used to read them all (~65 blobs) to send one.
//
// Bytes read are counted, not timed: /proc/self/io's rchar counts every byte this process took
// through read()/pread(): relay.db's pages (the embedded store; SQLite keeps only ~2 MB of pages
// cached) or the PostgreSQL rows coming over the store's socket, and the answer the test client reads.
import { existsSync, readFileSync } from "node:fs";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode } from "../../src/gen/securechat/v1/chat.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { MlsGroup } from "../../src/protocol/mls/index.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { mlsPerson, must, sendCommit } from "../helpers/mls-ds.js";
import { fakePrivateCommit } from "../helpers/mls-queues.js";
import { TestRelay } from "../helpers/relay-harness.js";

let mallory: PrivateIdentity;
let relay: TestRelay | undefined;
beforeAll(async () => {
  mallory = await fixtureIdentity("mallory");
});
afterEach(async () => {
  await relay?.cleanup();
  relay = undefined;
});

const CT = 980_000;
const COMMITS = 32;
const MiB = 1024 * 1024;

/** Bytes this process has read through read()/pread() so far (Linux). */
function bytesRead(): number {
  const m = /^rchar:\s*(\d+)$/m.exec(readFileSync("/proc/self/io", "utf8"));
  if (m === null) throw new Error("no rchar in /proc/self/io");
  return Number(m[1]);
}

describe("FetchCommits reads only the commits it answers with", () => {
  it.skipIf(!existsSync("/proc/self/io"))(`a fetch from epoch 0 over ${COMMITS} kept commits of ~980 KB reads about one of them, not all`, { timeout: 180_000 }, async () => {
    let now = Date.now();
    relay = await TestRelay.start({ clock: () => now, logLevel: "warn" });
    const m = await relay.connect(mallory);
    const room = await MlsGroup.create((await mlsPerson(mallory)).client, "#mine");
    await must(m, { $case: "publishGroupInfo", value: { requestId: 0, groupInfo: Buffer.from(await room.groupInfo()) } }, "groupInfoResult");
    const commits: Buffer[] = [];
    while (commits.length < COMMITS) {
      const commit = fakePrivateCommit(room.groupId, commits.length, CT);
      const r = await sendCommit(m, commit);
      if (r.accepted) commits.push(commit);
      else {
        expect(r.code).toBe(ErrorCode.ERROR_CODE_RATE_LIMITED);
        now += 1000;
      }
    }
    let id = 100;
    const fetch = async (fromEpoch: number) => {
      now += 1000;
      const requestId = id++;
      m.write({ $case: "fetchCommits", value: { requestId, groupId: Buffer.from(room.groupId), fromEpoch } });
      return m.next("commitList", (r) => r.requestId === requestId);
    };
    // The answers: one ~980 KB commit per fetch (two do not fit half a frame), `more` until the last.
    const got: number[] = [];
    for (let from = 0; ;) {
      const list = await fetch(from);
      expect(list.commits).toHaveLength(1);
      expect(list.currentEpoch).toBe(COMMITS);
      const c = list.commits[0]!;
      expect(c.sender).toBe("mallory");
      expect(Buffer.from(c.commit).equals(commits[c.epoch]!)).toBe(true);
      got.push(c.epoch);
      if (!list.more) break;
      from = c.epoch + 1;
    }
    expect(got).toEqual([...Array(COMMITS).keys()]);

    // What one fetch from epoch 0 reads: the answer the client takes in (~1 MB) and what the store
    // reads. PostgreSQL: the one commit it answers with (hex on the wire: ~2 MB). Embedded: that one
    // and the next row's size, not its blob (store/mls.ts commitPage; mls-schema.ts COMMITS_TABLE): ~2 MB
    // in all (~9 MB while the blobs were in the key's B-tree, schema version 4). Reading every kept
    // commit: ~30 MB and more. The embedded bound is under what one more blob read would make.
    const read: number[] = [];
    for (let i = 0; i < 3; i++) {
      const before = bytesRead();
      const list = await fetch(0);
      read.push(bytesRead() - before);
      expect(list.commits.map((c) => c.epoch)).toEqual([0]);
      expect(list.more).toBe(true);
    }
    console.log(`store=${relay.storeKind} bytes read per FetchCommits from epoch 0 (answer ~${(CT / MiB).toFixed(2)} MiB): ${read.map((b) => (b / MiB).toFixed(2)).join(", ")} MiB`);
    const bound = relay.storeKind === "postgres" ? 4 * MiB : 2 * CT + MiB / 2;
    for (const b of read) expect(b).toBeLessThan(bound);
  });
});
