// A commit whose answer was lost (PROTOCOL.md §8.1, §8.4): the relay may have accepted it. Found
// by the paced fault test (the network drops with the relay's answers lost): alice's commit was
// taken at the relay, she discarded it, her next commit lost the epoch to it, and her own commit
// came back as "a reflection" she cannot process: her DM was stuck, every later message held.
// Now the same bytes go again until the relay answers (an identical resend is accepted again).
import { describe, expect, it } from "vitest";
import { deviceWorldEachTest, hostileGroup, sendHostileCommit, sendLine as send, textsIn, type Device } from "../helpers/mls-devices.js";
import { waitUntil } from "../helpers/wait.js";

const t = deviceWorldEachTest("sc-mls-commit-lost-");

const DM = "dm:alice:bob";

const reads = (d: Device, conv: string, line: string) => waitUntil(() => textsIn(d, conv).includes(line), `${d.user.name} to read "${line}" in ${conv}`, 60_000);
const troubles = (d: Device) => d.events.filter((e) => e.type === "refused" || (e.type === "message-state" && e.state === "failed") || (e.type === "notice" && e.level !== "info"));

async function aliceAndBob(): Promise<{ alice: Device; bob: Device }> {
  const alice = await t.w.device("alice", "laptop");
  const bob = await t.w.device("bob", "bobpc");
  await t.w.publish("alice", [alice]);
  await t.w.publish("bob", [bob]);
  for (const d of [alice, bob]) await t.w.start(d);
  return { alice, bob };
}

describe("a commit whose answer was lost (§8.1)", () => {
  it("the DM's first commit, taken by the relay but its answer lost: sent again as the same bytes, and the DM works", async () => {
    const { alice, bob } = await aliceAndBob();
    t.ds.loseCommitAnswers = 1;
    send(alice, DM, "hi bob");
    await reads(bob, DM, "alice: hi bob");
    send(bob, DM, "hi alice");
    await reads(alice, DM, "bob: hi alice");
    expect(t.ds.loseCommitAnswers).toBe(0);
    expect(t.ds.epochTaken).toBe(0); // never a second commit for the same epoch
    expect([...troubles(alice), ...troubles(bob)]).toEqual([]);
  }, 120_000);

  it("a room's commit adding bob, its answer lost twice: the same commit again, bob in, both ways readable", async () => {
    const { alice, bob } = await aliceAndBob();
    expect((await alice.engine.joinRoom("#ops")).ok).toBe(true);
    t.ds.loseCommitAnswers = 2;
    const added = await alice.engine.inviteMany("#ops", ["bob"]);
    expect(added.ok).toBe(true);
    await waitUntil(() => bob.engine.conversations().includes("#ops"), "bob in #ops", 60_000);
    send(alice, "#ops", "welcome");
    await reads(bob, "#ops", "alice: welcome");
    send(bob, "#ops", "thanks");
    await reads(alice, "#ops", "bob: thanks");
    expect(t.ds.epochTaken).toBe(0);
    expect([...troubles(alice), ...troubles(bob)]).toEqual([]);
  }, 120_000);

  it("a room's registration, taken by the relay but its answer lost: /join works, and the room is mine", async () => {
    const { alice, bob } = await aliceAndBob();
    t.ds.losePublishAnswers = 1;
    expect((await alice.engine.joinRoom("#ops")).ok).toBe(true);
    expect(alice.engine.creator("#ops")).toBe("alice");
    expect((await alice.engine.inviteMany("#ops", ["bob"])).ok).toBe(true);
    await waitUntil(() => bob.engine.conversations().includes("#ops"), "bob in #ops", 60_000);
    send(alice, "#ops", "mine");
    await reads(bob, "#ops", "alice: mine");
    send(bob, "#ops", "yours");
    await reads(alice, "#ops", "bob: yours");
    // One leaf per device: no leaf of alice's that nobody holds the keys of.
    expect(bob.engine.memberIdentities("#ops")?.map((m) => m.username).sort()).toEqual(["alice", "bob"]);
    expect([...troubles(alice), ...troubles(bob)]).toEqual([]);
  }, 120_000);

  it("a DM's registration, taken by the relay but its answer lost: the first message still goes at once", async () => {
    const { alice, bob } = await aliceAndBob();
    t.ds.losePublishAnswers = 1;
    send(alice, DM, "first words");
    await reads(bob, DM, "alice: first words"); // before: only after the 2-minute Welcome wait
    send(bob, DM, "heard you");
    await reads(alice, DM, "bob: heard you");
    expect([...troubles(alice), ...troubles(bob)]).toEqual([]);
  }, 120_000);

  it("a room's re-creation, done by the relay but its answer lost: the creator's new group is the room's, and carol follows", async () => {
    const { alice, bob } = await aliceAndBob();
    const carol = await t.w.device("carol", "carolpc");
    await t.w.publish("carol", [carol]);
    await t.w.start(carol);
    expect((await alice.engine.joinRoom("#ops")).ok).toBe(true);
    expect((await alice.engine.inviteMany("#ops", ["bob", "carol"])).ok).toBe(true);
    await waitUntil(() => [bob, carol].every((d) => d.engine.members("#ops")?.length === 3), "bob and carol in #ops", 60_000);
    await t.w.settle();
    // bob's client, modified, removes carol: refused by every member; alice, the creator,
    // re-creates the room without bob, and the answer to that is lost.
    const g = await hostileGroup(t.ds, bob, "#ops");
    t.ds.loseRecreateAnswers = 1;
    await sendHostileCommit(t.ds, bob, await g.removeMembers(["carol"]));
    await waitUntil(() => alice.engine.members("#ops")?.join() === "alice,carol" && carol.engine.members("#ops")?.join() === "alice,carol", "alice re-created #ops with carol", 60_000);
    expect(t.ds.loseRecreateAnswers).toBe(0);
    send(alice, "#ops", "still here?");
    await reads(carol, "#ops", "alice: still here?");
    send(carol, "#ops", "yes");
    await reads(alice, "#ops", "carol: yes");
    expect(alice.events.filter((e) => e.type === "notice" && e.text.includes("could not be re-created"))).toEqual([]);
  }, 120_000);

  it("a client closing while its commit waits for an answer that never comes is not held up", async () => {
    const { alice } = await aliceAndBob();
    t.ds.loseCommitAnswers = Number.POSITIVE_INFINITY;
    send(alice, DM, "into the void");
    await waitUntil(() => t.ds.commitsSent.length > 0, "alice's commit sent", 30_000);
    // The resend loop runs in the engine's queue: stopping ends it, so the queue drains.
    const started = Date.now();
    alice.engine.stopping();
    await alice.engine.idle();
    expect(Date.now() - started).toBeLessThan(5_000);
  }, 60_000);
});
