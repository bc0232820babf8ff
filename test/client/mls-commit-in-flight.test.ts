// A commit in flight when the client quits (PROTOCOL.md §8.1 "A commit in flight"): it is kept
// on disk before it is sent and settled at the next start. Before, the pending commit lived in
// memory only: a client that quit after the relay took its commit, but before the answer came,
// restarted at the old epoch, where its own commit came back as a reflection it cannot process,
// and the conversation was stuck until a re-join.
import { describe, expect, it } from "vitest";
import { deviceWorldEachTest, linesIn, sendLine as send, textsIn, type Device } from "../helpers/mls-devices.js";
import { waitUntil } from "../helpers/wait.js";
import { DM_WELCOME_WAIT_MS } from "../../src/client/mls/engine-state.js";

const t = deviceWorldEachTest("sc-mls-commit-kept-");

const DM = "dm:alice:bob";

const reads = (d: Device, conv: string, line: string) => waitUntil(() => textsIn(d, conv).includes(line), `${d.user.name} to read "${line}" in ${conv}`, 60_000);
const troubles = (d: Device) => d.events.filter((e) => e.type === "refused" || (e.type === "message-state" && e.state === "failed") || (e.type === "notice" && e.level !== "info"));

async function people(...names: string[]): Promise<Device[]> {
  const ds: Device[] = [];
  for (const n of names) {
    const d = await t.w.device(n, `${n}pc`);
    await t.w.publish(n, [d]);
    ds.push(d);
  }
  for (const d of ds) await t.w.start(d);
  return ds;
}

/** The client quits: the engine stops (a commit waiting for its answer gives up) and closes; its store stays. */
async function quit(d: Device): Promise<void> {
  d.engine.stopping();
  await d.engine.idle();
  d.engine.close();
  t.ds.disconnect(d.user.name, d.entry.deviceId);
}

/** The next start: a new engine on the same store. */
async function restart(d: Device): Promise<void> {
  d.engine = t.w.engine(d);
  await t.w.start(d);
}

describe("a commit in flight when the client quits (§8.1)", () => {
  it("taken by the relay, its answer lost: sent again at the next start, and alice is at its epoch", async () => {
    const [alice, bob] = (await people("alice", "bob")) as [Device, Device];
    expect((await alice.engine.joinRoom("#ops")).ok).toBe(true);
    t.ds.loseCommitAnswers = Number.POSITIVE_INFINITY;
    const sent = t.ds.commitsSent.length;
    const invite = alice.engine.inviteMany("#ops", ["bob"]);
    await waitUntil(() => t.ds.commitsSent.length > sent, "alice's commit sent", 30_000);
    await quit(alice);
    expect((await invite).ok).toBe(false); // the invite did not learn its fate
    expect(alice.store.pendingCommits()).toEqual(["#ops"]);

    t.ds.loseCommitAnswers = 0;
    await restart(alice);
    expect(alice.store.pendingCommits()).toEqual([]);
    await waitUntil(() => bob.engine.conversations().includes("#ops"), "bob in #ops", 60_000);
    send(alice, "#ops", "welcome");
    await reads(bob, "#ops", "alice: welcome");
    send(bob, "#ops", "thanks");
    await reads(alice, "#ops", "bob: thanks");
    // The line of the change is shown once it is known to have happened.
    expect(linesIn(alice, "#ops").filter((l) => l.kind === "added")).toEqual([expect.objectContaining({ by: "alice", users: ["bob"] })]);
    expect(t.ds.epochTaken).toBe(0);
    expect([...troubles(alice), ...troubles(bob)]).toEqual([]);
  }, 120_000);

  it("lost on the way while bob changed the room: refused at the next start, discarded, and alice says so and follows bob's change", async () => {
    const [alice, bob, carol] = (await people("alice", "bob", "carol")) as [Device, Device, Device];
    expect((await alice.engine.joinRoom("#ops")).ok).toBe(true);
    expect((await alice.engine.inviteMany("#ops", ["bob"])).ok).toBe(true);
    await waitUntil(() => bob.engine.conversations().includes("#ops"), "bob in #ops", 60_000);
    t.ds.dropCommits = Number.POSITIVE_INFINITY;
    const invite = alice.engine.inviteMany("#ops", ["carol"]);
    await waitUntil(() => alice.store.pendingCommits().length > 0, "alice's commit kept", 30_000);
    await quit(alice);
    expect((await invite).ok).toBe(false);
    expect(alice.store.pendingCommits()).toEqual(["#ops"]);
    t.ds.dropCommits = 0;
    // Meanwhile bob adds carol himself: his commit takes the epoch alice's was made in.
    expect((await bob.engine.inviteMany("#ops", ["carol"])).ok).toBe(true);

    await restart(alice);
    expect(alice.store.pendingCommits()).toEqual([]);
    await waitUntil(() => troubles(alice).length > 0, "alice's warning", 30_000);
    expect(troubles(alice)).toEqual([expect.objectContaining({ type: "notice", level: "warn", conversationId: "#ops",
      text: "a change you made to #ops before the connection was lost did not go through (another change came first); make it again if it is still needed" })]);
    send(alice, "#ops", "hi both");
    await reads(bob, "#ops", "alice: hi both");
    await reads(carol, "#ops", "alice: hi both");
    expect(linesIn(alice, "#ops").filter((l) => l.kind === "added").map((l) => [l.by, l.users])).toEqual([["alice", ["bob"]], ["bob", ["carol"]]]);
  }, 120_000);

  it("a room registered at the relay while alice quit before the answer: her next /join takes her old leaf's place, and the room is hers", async () => {
    const [alice, bob] = (await people("alice", "bob")) as [Device, Device];
    t.ds.losePublishAnswers = Number.POSITIVE_INFINITY;
    const join = alice.engine.joinRoom("#ops");
    await waitUntil(() => t.ds.groupInfoPublished > 0, "alice's registration sent", 30_000);
    await quit(alice);
    expect((await join).ok).toBe(false);
    t.ds.losePublishAnswers = 0;
    await restart(alice);
    // The relay keeps her group, with a leaf of her MLS key whose secrets went with the quit.
    expect((await alice.engine.joinRoom("#ops")).ok).toBe(true);
    expect(alice.engine.creator("#ops")).toBe("alice");
    expect(alice.engine.memberIdentities("#ops")?.map((m) => m.username)).toEqual(["alice"]);
    expect((await alice.engine.inviteMany("#ops", ["bob"])).ok).toBe(true);
    await waitUntil(() => bob.engine.conversations().includes("#ops"), "bob in #ops", 60_000);
    send(bob, "#ops", "hello");
    await reads(alice, "#ops", "bob: hello");
    expect([...troubles(alice), ...troubles(bob)]).toEqual([]);
  }, 120_000);

  it("a DM registered at the relay while alice quit before the answer: her message goes once the Welcome wait ends, into her old group", async () => {
    const [alice, bob] = (await people("alice", "bob")) as [Device, Device];
    t.ds.losePublishAnswers = Number.POSITIVE_INFINITY;
    send(alice, DM, "before the quit");
    await waitUntil(() => t.ds.groupInfoPublished > 0, "alice's registration sent", 30_000);
    await quit(alice);
    t.ds.losePublishAnswers = 0;
    await restart(alice);
    send(alice, DM, "after the restart");
    // The relay keeps her first group: hers is refused as taken, and she waits for a Welcome...
    await waitUntil(() => t.ds.groupInfoPublished > 1, "alice's second registration", 30_000);
    await alice.engine.idle();
    // ...until the wait ends: then she joins the kept group, drops her dead leaf and adds bob.
    t.w.now += DM_WELCOME_WAIT_MS;
    await alice.engine.checkTimers();
    await reads(bob, DM, "alice: after the restart");
    send(bob, DM, "got it");
    await reads(alice, DM, "bob: got it");
    expect(bob.engine.memberIdentities(DM)?.map((m) => m.username).sort()).toEqual(["alice", "bob"]);
    expect([...troubles(alice), ...troubles(bob)]).toEqual([]);
  }, 120_000);
});
