// Review round 8: round 7's "join again past the device once its user's primary took it out" is
// only for a device bob remembers as DROPPED (his list is the stale one). A peer who holds alice's
// NEWEST list (no withholding at all) refuses the same thief re-entry as a plainly unlisted
// device: awaitingList, not rejoinable, so nothing but a newer list of alice ever lets him go on.
// The laptop re-joins and takes the thief out, as designed, but bob stays on the epoch before the
// thief's join: alice's laptop and bob no longer read each other, for good. One external commit
// of the thief (carried by a hostile relay) splits the conversation; the better informed peer is
// the one left behind.
import { describe, expect, it } from "vitest";
import { MlsGroup } from "../../src/protocol/mls/index.js";
import { deviceWorldEachTest, hostileGroup, keyOf, leafKeys, linesIn, sendLine, textsIn, aliceTwoAndBob } from "../helpers/mls-devices.js";
import { waitUntil as waitFor } from "../helpers/wait.js";

const waitUntil = <T>(fn: () => T | undefined | false | Promise<T | undefined | false>, what: string, ms = 30_000): Promise<T> => waitFor(fn, what, ms);
const t = deviceWorldEachTest("sc-rt8-strand-");
const dm = "dm:alice:bob";

describe("review round 8: the thief's re-entry where bob holds alice's newest list", () => {
  it("bob and alice's laptop read each other again once the laptop took the thief out", { timeout: 240_000 }, async () => {
    const { w, ds } = t;
    const { laptop, desktop, bob } = await aliceTwoAndBob(w);
    sendLine(bob, dm, "hi");
    await waitUntil(() => textsIn(desktop, dm).includes("bob: hi") && textsIn(laptop, dm).includes("bob: hi"), "both of alice's devices read bob");
    await w.settle();
    await hostileGroup(ds, desktop, dm);
    await w.publish("alice", [laptop]); // /unlink, served to everyone
    await laptop.directory.refresh(["alice"]);
    await bob.directory.refresh(["alice"]);
    await waitUntil(() => !leafKeys(bob, dm).includes(keyOf(desktop)), "the self-heal takes the desktop out");
    await w.settle();
    // The thief joins again by external commit (a hostile relay carries it).
    const client = await desktop.store.loadOrCreateClient();
    const joined = await MlsGroup.joinExternal(client, ds.groupOf(dm)!.groupInfo, { expectConversation: dm });
    expect((await ds.api("alice", desktop.entry.deviceId).sendCommit({ commit: joined.commit, groupInfo: await joined.group.groupInfo(), added: ["alice"], removed: [] })).ok).toBe(true);
    await waitUntil(() => linesIn(bob, dm).some((l) => l.kind === "refused-device"), "bob refuses the unlisted device");
    // The laptop re-joins and takes it out (its first re-join is at once).
    await waitUntil(async () => { await w.settle(); return ds.groupOf(dm)!.epoch >= 5 && !leafKeys(laptop, dm).includes(keyOf(desktop)) && leafKeys(laptop, dm).length === 2; }, "the laptop re-joined and took the thief out");
    // Let time pass (timers: held messages overdue, retries).
    for (let i = 0; i < 5; i++) { w.now += 10 * 60_000; await bob.engine.checkTimers(); await laptop.engine.checkTimers(); await w.settle(); }
    sendLine(laptop, dm, "still there?");
    sendLine(bob, dm, "are you there");
    await w.settle();
    expect({ bobReadsLaptop: textsIn(bob, dm).includes("alice: still there?"), laptopReadsBob: textsIn(laptop, dm).includes("bob: are you there") }).toEqual({ bobReadsLaptop: true, laptopReadsBob: true });
  });
});
