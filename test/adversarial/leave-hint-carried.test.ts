// Review round 6 (regression): a pending leave proposal rides along (ts-mls includes every pending proposal by reference)
// in another commit whose hint does not name the leaver: the relay keeps carol a member of #ops.
import { describe, expect, it } from "vitest";
import { deviceWorldEachTest, leafKeys } from "../helpers/mls-devices.js";
import { waitUntil as waitFor } from "../helpers/wait.js";

const waitUntil = <T>(fn: () => T | undefined | false | Promise<T | undefined | false>, what: string, ms = 90_000): Promise<T> => waitFor(fn, what, ms);
const t = deviceWorldEachTest("sc-r6-hint-");
const room = "#ops";

describe("the hint of a commit that carries a leave by reference", () => {
  it("dave's invite carries carol's pending leave: the relay drops carol from its members too", { timeout: 240_000 }, async () => {
    const { w, ds } = t;
    const bob = await w.device("bob", "b");
    const carol = await w.device("carol", "c");
    const dave = await w.device("dave", "d");
    const erin = await w.device("erin", "e");
    for (const [u, d] of [["bob", bob], ["carol", carol], ["dave", dave], ["erin", erin]] as const) await w.publish(u, [d]);
    for (const d of [bob, carol, dave, erin]) await w.start(d);
    expect((await bob.engine.joinRoom(room)).ok).toBe(true);
    expect((await carol.engine.joinRoom(room)).ok).toBe(true);
    expect((await dave.engine.joinRoom(room)).ok).toBe(true);
    await waitUntil(() => [bob, carol, dave].every((d) => leafKeys(d, room).length === 3), "three in");
    await w.settle();
    // bob (rank 0 for carol's leave) is offline; dave is rank 1 and waits 60 s.
    await bob.engine.idle();
    ds.disconnect("bob", bob.entry.deviceId);
    expect((await carol.engine.leaveRoom(room)).ok).toBe(true);
    await dave.engine.idle();
    expect((await dave.engine.invite(room, "erin")).ok).toBe(true);
    await w.settle();
    expect(dave.engine.members(room)).not.toContain("carol");
    expect(ds.groupOf(room)?.members).not.toContain("carol");
  });
});
