// Review round 6 (regression): the stolen linked desktop (listed for bob by a relay withholding alice's new list) replaces
// the laptop's leaf by a fresh leaf from one of the laptop's own KeyPackages (claimed from the
// relay): "another leaf that stays holds the same key", so bob accepts the Remove; the Welcome is
// never delivered, the laptop is out and the thief speaks alone as alice.
import { describe, expect, it } from "vitest";
import type { Proposal } from "ts-mls";
import { decodeMlsMessage } from "ts-mls";
import type { MlsGroup } from "../../src/protocol/mls/index.js";
import { deviceWorldEachTest, hostileGroup, keyOf, leafKeys, linesIn, sendHostileCommit, sendLine, textsIn, unlinkWhileWithheld, hostileCommit, injectLine, aliceTwoAndBob } from "../helpers/mls-devices.js";
import { waitUntil as waitFor } from "../helpers/wait.js";

const waitUntil = <T>(fn: () => T | undefined | false | Promise<T | undefined | false>, what: string, ms = 90_000): Promise<T> => waitFor(fn, what, ms);
const t = deviceWorldEachTest("sc-r6-readd-");
const dm = "dm:alice:bob";

describe("re-adding the primary's key elsewhere to remove its leaf", () => {
  it("in a room with a blank leaf below the laptop: refused by bob (the commit's own Add does not make its leaf stale), the thief never speaks alone", { timeout: 240_000 }, async () => {
    const { w, ds } = t;
    const room = "#ops";
    const bob = await w.device("bob", "bobpc");
    const carol = await w.device("carol", "carolpc");
    const laptop = await w.device("alice", "laptop");
    const desktop = await w.device("alice", "desktop");
    const before = await w.publish("alice", [laptop, desktop]);
    await w.publish("bob", [bob]);
    await w.publish("carol", [carol]);
    for (const d of [laptop, desktop, bob, carol]) await w.start(d);
    expect((await bob.engine.joinRoom(room)).ok).toBe(true);
    expect((await carol.engine.joinRoom(room)).ok).toBe(true);
    await waitUntil(() => leafKeys(bob, room).length === 2, "carol in");
    expect((await laptop.engine.joinRoom(room)).ok).toBe(true);
    await waitUntil(() => [bob, laptop, desktop].every((d) => leafKeys(d, room).length === 4), "four leaves");
    expect((await carol.engine.leaveRoom(room)).ok).toBe(true);
    await waitUntil(() => [bob, laptop, desktop].every((d) => leafKeys(d, room).length === 3), "carol out");
    await w.settle();
    const claim = await ds.api("bob", bob.entry.deviceId).claimKeyPackages(["alice"], [laptop.entry.deviceId]);
    if (!claim.ok) throw new Error("claim");
    const kpBytes = claim.entries.find((e) => e.deviceId === laptop.entry.deviceId)!.keyPackage;
    await unlinkWhileWithheld(w, bob, laptop, before, [laptop]);
    expect(bob.directory.known("alice")?.version).toBe(before.version);
    const g: MlsGroup = await hostileGroup(ds, desktop, room);
    const leaf = g.members().find((m) => Buffer.from(m.signatureKey).toString("hex") === keyOf(laptop))!.leafIndex;
    const msg = decodeMlsMessage(kpBytes, 0)![0] as unknown as { keyPackage: unknown };
    const p = await hostileCommit(g, [{ proposalType: "remove", remove: { removed: leaf } }, { proposalType: "add", add: { keyPackage: msg.keyPackage } } as Proposal], false);
    await sendHostileCommit(ds, desktop, p); // no Welcome: withheld by the relay
    await waitUntil(() => linesIn(bob, room).some((l) => l.kind === "refused" || l.kind === "refused-device") || !bob.engine.memberIdentities(room)!.some((m) => m.leafIndex === leaf), "bob judges");
    g.confirmCommit();
    await injectLine(w, bob, room, g, desktop, "new number, send the code here");
    await bob.engine.idle();
    expect(linesIn(bob, room).some((l) => l.kind === "refused")).toBe(true);
    expect(textsIn(bob, room).some((x) => x.includes("send the code"))).toBe(false);
  });

  it("in a DM: refused too, the laptop stays", { timeout: 240_000 }, async () => {
    const { w, ds } = t;
    const { laptop, desktop, bob, before } = await aliceTwoAndBob(w);
    sendLine(bob, dm, "hi");
    await waitUntil(() => textsIn(desktop, dm).includes("bob: hi") && textsIn(laptop, dm).includes("bob: hi"), "both read bob");
    await waitUntil(() => leafKeys(bob, dm).length === 3, "three leaves");
    await w.settle();
    // A laptop KeyPackage, claimed before the unlink (the relay can hand it over any time).
    const claim = await ds.api("bob", bob.entry.deviceId).claimKeyPackages(["alice"], [laptop.entry.deviceId]);
    if (!claim.ok) throw new Error("claim");
    const kpBytes = claim.entries.find((e) => e.deviceId === laptop.entry.deviceId)!.keyPackage;
    await unlinkWhileWithheld(w, bob, laptop, before, [laptop]);
    expect(bob.directory.known("alice")?.version).toBe(before.version);
    const g: MlsGroup = await hostileGroup(ds, desktop, dm);
    const leaf = g.members().find((m) => Buffer.from(m.signatureKey).toString("hex") === keyOf(laptop))!.leafIndex;
    const msg = decodeMlsMessage(kpBytes, 0)![0] as unknown as { keyPackage: unknown };
    const p = await hostileCommit(g, [{ proposalType: "remove", remove: { removed: leaf } }, { proposalType: "add", add: { keyPackage: msg.keyPackage } } as Proposal], false);
    await sendHostileCommit(ds, desktop, p); // no Welcome: withheld
    await waitUntil(() => linesIn(bob, dm).some((l) => l.kind === "refused" || l.kind === "refused-device") || bob.engine.memberIdentities(dm)!.every((m) => m.leafIndex !== leaf || Buffer.from(m.signatureKey).toString("hex") !== keyOf(laptop)), "bob judges");
    g.confirmCommit();
    await injectLine(w, bob, dm, g, desktop, "new number, send the code here");
    await bob.engine.idle();
    expect(textsIn(bob, dm).some((x) => x.includes("send the code"))).toBe(false);
  });
});
