// Review round 7 (regression): the creator's stolen linked device (listed for bob by a withholding relay) removes EVERY leaf
// (alice's laptop, bob) and re-adds bob in the same commit: "nobody but that user is left" counts only
// the leaves already in the group, so alice's primary is cut out past rule (f).
import { describe, expect, it } from "vitest";
import type { Proposal } from "ts-mls";
import { decodeKeyPackage, type MlsGroup } from "../../src/protocol/mls/index.js";
import { deviceWorldEachTest, hostileGroup, keyOf, leafKeys, linesIn, sendHostileCommit, textsIn, unlinkWhileWithheld, hostileCommit, injectLine, aliceTwoAndBob } from "../helpers/mls-devices.js";
import { waitUntil as waitFor } from "../helpers/wait.js";

const waitUntil = <T>(fn: () => T | undefined | false | Promise<T | undefined | false>, what: string, ms = 90_000): Promise<T> => waitFor(fn, what, ms);
const t = deviceWorldEachTest("sc-r7-readd-");
const room = "#ops";

describe("the creator's stolen linked device, removing everyone and adding the others back", () => {
  it("cannot cut alice's primary laptop out of #ops: bob, added back in the same commit, is someone else in the group", { timeout: 240_000 }, async () => {
    const { w, ds } = t;
    const { laptop, desktop, bob, before } = await aliceTwoAndBob(w);
    expect((await laptop.engine.joinRoom(room)).ok).toBe(true);
    await waitUntil(() => leafKeys(laptop, room).includes(keyOf(desktop)), "the self-heal adds the desktop");
    expect((await bob.engine.joinRoom(room)).ok).toBe(true);
    await waitUntil(() => [laptop, desktop, bob].every((d) => leafKeys(d, room).length === 3), "three leaves everywhere");
    await w.settle();
    await unlinkWhileWithheld(w, bob, laptop, before, [laptop]);
    expect(bob.directory.known("alice")?.version).toBe(before.version);
    const g: MlsGroup = await hostileGroup(ds, desktop, room);
    const leafOf = (k: string) => g.members().find((m) => Buffer.from(m.signatureKey).toString("hex") === k)!.leafIndex;
    const claimed = await ds.api("alice", desktop.entry.deviceId).claimKeyPackages(["bob"]);
    if (!claimed.ok) throw new Error("claim");
    const kp = decodeKeyPackage(claimed.entries[0]!.keyPackage);
    const p = await hostileCommit(g, [
      { proposalType: "remove", remove: { removed: leafOf(keyOf(laptop)) } },
      { proposalType: "remove", remove: { removed: leafOf(keyOf(bob)) } },
      { proposalType: "add", add: { keyPackage: kp } },
    ] as Proposal[], true);
    await sendHostileCommit(ds, desktop, p, ["bob"]);
    g.confirmCommit();
    await waitUntil(async () => { await bob.engine.idle(); return leafKeys(bob, room).length > 0 && !leafKeys(bob, room).includes(keyOf(laptop)) ? true : linesIn(bob, room).some((l) => l.kind === "refused"); }, "bob judges", 60_000);
    await injectLine(w, bob, room, g, desktop, "new number, send the code here");
    await bob.engine.idle();
    // Expected under §7.6 (f): the laptop stays, the thief's line never shows.
    expect(leafKeys(bob, room)).toContain(keyOf(laptop));
    expect(textsIn(bob, room).some((x) => x.includes("send the code"))).toBe(false);
  });
});
