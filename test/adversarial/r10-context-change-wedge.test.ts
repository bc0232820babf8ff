// rt10 (round 9, 5338a8f): a commit refused as "context-changed" (any ordinary member proposes
// group_context_extensions) now marks the room `rejoinable`, whose only way on is the vouched
// re-join; but every later state of the group descends from the refused commit, so
// `sameSettingsAs` refuses each of them for good. Unlike "device" and "policy" refusals, a
// "context-changed" (or "refused-change") refusal never calls Recreator.refused, so the creator,
// online the whole time, never re-creates the room. One commit by any member stops a room for
// every member, creator included, for good (before round 9 the plain re-join adopted the change:
// the takeover that round 9 closed; now it is a permanent room kill instead).
import { describe, expect, it } from "vitest";
import { creatorChangeProposal, deviceWorldEachTest, oneDeviceEachInRoom, type Device, hostileCommit, hostileGroup, sendHostileCommit, sendLine, textsIn } from "../helpers/mls-devices.js";
import { waitUntil } from "../helpers/wait.js";

const t = deviceWorldEachTest("sc-rt10-ctx-wedge-");
const room = "#ops";

describe("review round 10: a refused creator change stops the room for everyone, for good", () => {
  it("alice (creator, online) and bob can talk in #ops again after mallory's context change", { timeout: 240_000 }, async () => {
    const { w, ds } = t;
    const [alice, bob, mallory] = await oneDeviceEachInRoom(w, room, ["alice", "bob", "mallory"]) as [Device, Device, Device];
    await w.settle();
    const g = await hostileGroup(ds, mallory, room);
    await sendHostileCommit(ds, mallory, await hostileCommit(g, [creatorChangeProposal(g, mallory)], false));
    g.confirmCommit();
    // A second (empty) commit on her own line: messages of the epoch alice and bob hold are no longer taken.
    await sendHostileCommit(ds, mallory, await hostileCommit(g, [], false));
    g.confirmCommit();
    await alice.engine.idle();
    await bob.engine.idle();
    await w.settle();
    expect(bob.engine.creator(room)).toBe("alice");
    // Time passes (held messages overdue, timers tick): nothing moves.
    for (let i = 0; i < 3; i++) {
      w.now += 11 * 60_000;
      await alice.engine.checkTimers();
      await bob.engine.checkTimers();
      await w.settle();
    }
    try { sendLine(alice, room, "still here?"); } catch { /* refused send: the room is stopped */ }
    let got = false;
    try {
      await waitUntil(async () => { await w.settle(); return textsIn(bob, room).some((x) => x === "alice: still here?"); }, "bob reads alice", 20_000);
      got = true;
    } catch { got = false; }
    const notices = [...alice.events, ...bob.events].flatMap((e) => e.type === "notice" ? [e.text] : []);
    expect({ bobReadsAlice: got, noticeOfRecreate: notices.some((n) => /re-creat/.test(n)) }).toEqual({ bobReadsAlice: true, noticeOfRecreate: true });
  });
});
