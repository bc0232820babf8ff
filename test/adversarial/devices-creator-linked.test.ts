// Review round 6 (regression): a stolen LINKED device of a room's CREATOR, kept "listed" for bob by a relay withholding
// alice's new list, cuts alice's real primary out of #ops (rule (f) bypassed through the creator rule).
import { describe, expect, it } from "vitest";
import type { MlsGroup } from "../../src/protocol/mls/index.js";
import { deviceWorldEachTest, hostileGroup, keyOf, leafKeys, linesIn, sendHostileCommit, textsIn, unlinkWhileWithheld, hostileCommit, injectLine, aliceTwoAndBob } from "../helpers/mls-devices.js";
import { waitUntil as waitFor } from "../helpers/wait.js";

const waitUntil = <T>(fn: () => T | undefined | false | Promise<T | undefined | false>, what: string, ms = 90_000): Promise<T> => waitFor(fn, what, ms);
const t = deviceWorldEachTest("sc-r6-creator-");
const room = "#ops";

describe("the creator's stolen linked device, still listed for bob", () => {
  it("cannot remove alice's primary laptop from #ops (the creator's exception is not for its own devices), nor speak alone as alice", { timeout: 240_000 }, async () => {
    const { w, ds } = t;
    const { laptop, desktop, bob, before } = await aliceTwoAndBob(w);
    expect((await laptop.engine.joinRoom(room)).ok).toBe(true); // alice creates #ops
    await waitUntil(() => leafKeys(laptop, room).includes(keyOf(desktop)), "the self-heal adds the desktop");
    expect((await bob.engine.joinRoom(room)).ok).toBe(true);
    await waitUntil(() => [laptop, desktop, bob].every((d) => leafKeys(d, room).length === 3), "three leaves everywhere");
    expect(bob.engine.creator(room)).toBe("alice");
    await w.settle();
    // The relay: bob is served alice's list from before the unlink.
    await unlinkWhileWithheld(w, bob, laptop, before, [laptop]);
    expect(bob.directory.known("alice")?.version).toBe(before.version);
    // The thief removes alice's primary laptop.
    const g: MlsGroup = await hostileGroup(ds, desktop, room);
    const leaf = g.members().find((m) => Buffer.from(m.signatureKey).toString("hex") === keyOf(laptop))!.leafIndex;
    await sendHostileCommit(ds, desktop, await hostileCommit(g, [{ proposalType: "remove", remove: { removed: leaf } }], false));
    await waitUntil(() => linesIn(bob, room).some((l) => l.kind === "refused") || !leafKeys(bob, room).includes(keyOf(laptop)), "bob judges the commit");
    g.confirmCommit();
    await injectLine(w, bob, room, g, desktop, "new number, send the code here");
    await bob.engine.idle();
    // Expected under §7.6 (f): the laptop stays and the thief's line never shows.
    expect(leafKeys(bob, room)).toContain(keyOf(laptop));
    expect(textsIn(bob, room).some((x) => x.includes("send the code"))).toBe(false);
  });
});
