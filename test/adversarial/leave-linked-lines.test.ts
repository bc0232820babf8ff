// Review round 6 (regression): a linked device's /leave, committed by bob: carol (neither leaver nor committer) shows "alice left" though alice's laptop stays.
import { describe, expect, it } from "vitest";
import { deviceWorldEachTest, keyOf, leafKeys, linesIn } from "../helpers/mls-devices.js";
import { waitUntil as waitFor } from "../helpers/wait.js";

const waitUntil = <T>(fn: () => T | undefined | false | Promise<T | undefined | false>, what: string, ms = 90_000): Promise<T> => waitFor(fn, what, ms);
const t = deviceWorldEachTest("sc-r6-leave-");
const room = "#ops";

describe("lines of a linked device's leave", () => {
  it("carol shows a device line, not 'alice left'", { timeout: 240_000 }, async () => {
    const { w } = t;
    const bob = await w.device("bob", "bobpc");
    const laptop = await w.device("alice", "laptop");
    const desktop = await w.device("alice", "desktop");
    const carol = await w.device("carol", "carolpc");
    await w.publish("alice", [laptop, desktop]);
    await w.publish("bob", [bob]);
    await w.publish("carol", [carol]);
    for (const d of [laptop, desktop, bob, carol]) await w.start(d);
    expect((await bob.engine.joinRoom(room)).ok).toBe(true);
    expect((await laptop.engine.joinRoom(room)).ok).toBe(true);
    await waitUntil(() => leafKeys(bob, room).length === 3, "alice's two in");
    expect((await carol.engine.joinRoom(room)).ok).toBe(true);
    await waitUntil(() => [bob, laptop, carol].every((d) => leafKeys(d, room).length === 4), "four leaves");
    await w.settle();
    expect((await desktop.engine.leaveRoom(room)).ok).toBe(true);
    await waitUntil(() => [bob, laptop, carol].every((d) => leafKeys(d, room).length === 3), "desktop out");
    await w.settle();
    expect(leafKeys(carol, room)).toContain(keyOf(laptop));
    expect(linesIn(carol, room).some((l) => l.kind === "left" && l.by === "alice")).toBe(false);
    expect(linesIn(laptop, room).some((l) => l.kind === "left" && l.by === "alice")).toBe(false);
  });
});
