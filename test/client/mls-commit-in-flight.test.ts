// A commit in flight when the client quits (PROTOCOL.md §8.1 "A commit in flight"): it is kept
// on disk before it is sent and settled at the next start. Before, the pending commit lived in
// memory only: a client that quit after the relay took its commit, but before the answer came,
// restarted at the old epoch, where its own commit came back as a reflection it cannot process,
// and the conversation was stuck until a re-join.
import { describe, expect, it } from "vitest";
import { deviceWorldEachTest, linesIn, sendLine as send, textsIn, type Device } from "../helpers/mls-devices.js";
import { waitUntil } from "../helpers/wait.js";

const t = deviceWorldEachTest("sc-mls-commit-kept-");

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
});
