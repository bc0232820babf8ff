// rt9: the same creator takeover without any device trick, through the held-message recovery
// (recoverNow): a commit refused at the MLS level (context-changed: mallory makes herself the
// room's creator) neither re-creates the room nor stops the conversation (not undecided, not
// awaitingList), so once what mallory sends next has been held 10 minutes, bob re-joins from the
// relay's present GroupInfo with no vouch at all (unvouched checks only "same group, later
// epoch, my leaf unchanged") and adopts the refused change: mallory is #ops's creator for him.
// Honest relay; mallory is an ordinary member. Pre-existing, but it is the baseline the round-8
// rejoinPastRefused (sameUsers) is measured against, and it is worse: no check of users at all.
import { describe, expect, it } from "vitest";
import { creatorChangeProposal, deviceWorldEachTest, oneDeviceEachInRoom, type Device, hostileCommit, hostileGroup, sendHostileCommit } from "../helpers/mls-devices.js";

const t = deviceWorldEachTest("sc-rt9-creator-held-");
const room = "#ops";

describe("review round 9: a refused creator change, adopted by the held-message re-join", () => {
  it("bob must keep alice as #ops's creator after 10 minutes of held messages", { timeout: 240_000 }, async () => {
    const { w, ds } = t;
    const [, bob, mallory] = await oneDeviceEachInRoom(w, room, ["alice", "bob", "mallory"]) as [Device, Device, Device];
    await w.settle();
    const g = await hostileGroup(ds, mallory, room);
    await sendHostileCommit(ds, mallory, await hostileCommit(g, [creatorChangeProposal(g, mallory)], false));
    g.confirmCommit();
    await bob.engine.idle();
    expect(bob.engine.creator(room)).toBe("alice"); // refused when judged
    // Something of the next epoch for bob to hold (any message of mallory's).
    const app = new TextEncoder().encode(JSON.stringify({ id: "1".padStart(32, "0"), kind: "text", text: "hello", sentAt: w.now }));
    expect((await ds.api("mallory", mallory.entry.deviceId).sendMls(await g.encrypt(app))).ok).toBe(true);
    await bob.engine.idle();
    w.now += 11 * 60_000;
    await bob.engine.checkTimers();
    await bob.engine.idle();
    expect(bob.engine.creator(room)).toBe("alice");
  });
});
