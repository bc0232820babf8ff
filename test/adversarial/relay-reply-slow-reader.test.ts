// Regression (rt2 review): answers to a session that never reads were bounded only by grpc-js's
// buffer (16 frames): one session sending 60 FetchCommits for its own group of 900 KB commits
// made the relay hold 13.7 MiB of unsent answers, and it was never cut off. Answers are now
// written like deliveries (session.ts reply): flushed one at a time before the next request is
// read, the big ones paced by the relay-wide write budget, and an answer unsent past the
// answer stall time ends the session as a SLOW_CONSUMER (PROTOCOL.md §13.3).
import { afterEach, describe, expect, it } from "vitest";
import { fixtureIdentity } from "../helpers/identities.js";
import { MlsGroup } from "../../src/protocol/mls/index.js";
import { mlsPerson, must, sendCommit } from "../helpers/mls-ds.js";
import { fakePrivateCommit } from "../helpers/mls-queues.js";
import { TestRelay } from "../helpers/relay-harness.js";
import { waitUntil } from "../helpers/wait.js";

let relay: TestRelay | undefined;
afterEach(async () => { await relay?.cleanup(); relay = undefined; });

describe("answers to a reader that never reads", () => {
  it("hold one answer in the relay, and the session is ended as a slow consumer", { timeout: 120_000 }, async () => {
    let now = Date.now();
    relay = await TestRelay.start({ clock: () => now, logLevel: "warn", answerStallMs: 1_000 });
    const mallory = await fixtureIdentity("mallory");
    const m = await relay.connect(mallory);
    const pm = await mlsPerson(mallory);
    const room = await MlsGroup.create(pm.client, "#mine");
    await must(m, { $case: "publishGroupInfo", value: { requestId: 0, groupInfo: Buffer.from(await room.groupInfo()) } }, "groupInfoResult");
    let epoch = 0;
    while (epoch < 30) {
      const r = await sendCommit(m, fakePrivateCommit(room.groupId, epoch, 900_000));
      if (r.accepted) epoch++; else now += 1000;
    }
    now += 10_000; // a full bucket: 60 requests
    m.pauseReading(true);
    for (let i = 0; i < 60; i++) m.write({ $case: "fetchCommits", value: { requestId: 1000 + i, groupId: Buffer.from(room.groupId), fromEpoch: i % 30 } });
    // What the relay holds for it, sampled until it is cut off.
    let most = 0;
    const sample = setInterval(() => { most = Math.max(most, relay!.running.stats().outgoingBytes); }, 10);
    try {
      const cut = await relay.waitForLog("answer.slow_consumer", (l) => l.user === "mallory", 30_000);
      expect(cut.user).toBe("mallory");
    } finally {
      clearInterval(sample);
    }
    most = Math.max(most, relay.running.stats().outgoingBytes);
    // One answer (FetchCommits: about half a frame, at most a frame), not a pile of them.
    expect(most).toBeLessThanOrEqual(1024 * 1024 + 64 * 1024);
    // And not for as long as the client keeps its connection (review round 4): the ended stream
    // is reset once it had the stall time to flush, and what it held is dropped.
    await waitUntil(() => relay!.running.stats().outgoingBytes === 0, "the ended session's unsent answer dropped", 30_000);
  });
});
