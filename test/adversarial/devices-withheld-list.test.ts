// A relay withholding, from a peer, the device list /unlink made (PROTOCOL.md §4.5, §7.6): bob
// keeps being served alice's list from before the unlink (one he already holds: no rollback to
// refuse), so the stolen desktop still looks LISTED to him. It must still not cut alice's real
// laptop out of the DM: a device may not commit its user's other listed devices out while others
// are in the group (policy.ts deviceRemovalAllowed). Found by review round 4.
import { describe, expect, it } from "vitest";
import { defaultKeyPackageEqualityConfig } from "ts-mls";
import { MlsGroup } from "../../src/protocol/mls/index.js";
import type { SignedDeviceList } from "../../src/protocol/devices.js";
import { deviceWorldEachTest, hostileGroup as hostileGroupOf, type Device, keyOf, leafKeys, linesIn, sendHostileCommit as sendHostileCommitAs, sendLine, textsIn, unlinkWhileWithheld, hostileCommit, injectLine, aliceTwoAndBob } from "../helpers/mls-devices.js";
import { waitUntil as waitFor } from "../helpers/wait.js";

const waitUntil = <T>(fn: () => T | undefined | false | Promise<T | undefined | false>, what: string, ms = 90_000): Promise<T> => waitFor(fn, what, ms);

const t = deviceWorldEachTest("sc-withheld-list-");
const dm = "dm:alice:bob";

/** alice on her laptop (primary) and desktop, bob on one device, a DM where both of alice's devices read bob. */
async function dmOfAliceTwoAndBob(): Promise<{ laptop: Device; desktop: Device; bob: Device; before: SignedDeviceList }> {
  const w = t.w;
  const { laptop, desktop, bob, before } = await aliceTwoAndBob(w);
  sendLine(bob, dm, "hi");
  await waitUntil(() => textsIn(desktop, dm).includes("bob: hi") && textsIn(laptop, dm).includes("bob: hi"), "both of alice's devices read bob");
  await waitUntil(() => leafKeys(bob, dm).length === 3, "three leaves in the DM");
  await w.settle();
  return { laptop, desktop, bob, before };
}

describe("a relay withholding the list made by /unlink from a peer", () => {
  it("the unlinked (stolen) desktop cannot remove alice's laptop from the DM, nor speak in an epoch of its own", { timeout: 240_000 }, async () => {
    const { w, ds } = t;
    const { laptop, desktop, bob, before } = await dmOfAliceTwoAndBob();
    // The relay: bob is served alice's list from before the unlink, forever (a list bob already holds).
    // alice unlinks the stolen desktop (v2) and goes offline before her heal runs (as in devices-redteam).
    const after = await unlinkWhileWithheld(w, bob, laptop, before, [laptop]); // bob asks: the relay answers v1
    expect([bob.directory.known("alice")?.version, after.version]).toEqual([before.version, before.version + 1]);
    // The thief: removes alice's laptop (a LISTED device of alice) from the DM.
    const g: MlsGroup = await hostileGroupOf(ds, desktop, dm);
    const leaf = g.members().find((m) => m.username === "alice" && Buffer.from(m.signatureKey).toString("hex") === keyOf(laptop))!.leafIndex;
    await sendHostileCommitAs(ds, desktop, await hostileCommit(g, [{ proposalType: "remove", remove: { removed: leaf } }], false));
    await waitUntil(() => linesIn(bob, dm).some((l) => l.kind === "refused") || !leafKeys(bob, dm).includes(keyOf(laptop)), "bob judges the unlinked device's commit");
    expect(leafKeys(bob, dm)).toContain(keyOf(laptop)); // alice's real device stays
    expect(linesIn(bob, dm).some((l) => l.kind === "device-removed")).toBe(false);
    // The thief writes to bob as alice in the epoch its commit would have made: bob never sees it.
    g.confirmCommit();
    await injectLine(w, bob, dm, g, desktop, "new number, send the code here");
    await bob.engine.idle();
    expect(textsIn(bob, dm).some((t) => t.includes("send the code"))).toBe(false);
  });

  it("alice's own device says her list is newer than the relay serves: bob is told, once (§4.5 list claims)", { timeout: 240_000 }, async () => {
    const { w, ds } = t;
    const { laptop, desktop, bob, before } = await dmOfAliceTwoAndBob();
    const warned = () => bob.events.filter((e) => e.type === "notice" && /the relay may be hiding a change of alice's devices/.test(e.text));
    expect(warned()).toEqual([]);
    // The stolen desktop goes quiet; the relay keeps serving bob the list from before the unlink.
    await hostileGroupOf(ds, desktop, dm);
    ds.serveList = (viewer: string, u: string) => (viewer === "bob" && u === "alice" ? before : undefined);
    await w.publish("alice", [laptop]);
    // alice's laptop takes her new list and removes the desktop from the DM (the self-heal): its
    // commit says version 2; bob, served version 1, is told the relay may be hiding a change.
    await laptop.directory.refresh(["alice"]);
    const notice = await waitUntil(() => warned()[0], "bob warned that alice's list is withheld");
    expect(notice.type === "notice" ? notice.text : "").toBe(
      "alice's own device says alice's device list is at version 2, but the relay serves version 1: the relay may be hiding a change of alice's devices (one unlinked), so a device alice no longer uses may still write as alice here");
    // alice's laptop is her primary: its commit may take her other devices out whatever list bob
    // holds (§7.6 (f)), so the self-heal cuts the desktop off although the relay withholds v2.
    await waitUntil(() => !leafKeys(bob, dm).includes(keyOf(desktop)), "the primary's self-heal takes the desktop out of bob's DM");
    await w.settle();
    expect(warned()).toHaveLength(1);
  });

  it("nor by an external join whose resync Remove names the laptop's leaf instead of its own (review round 5)", { timeout: 240_000 }, async () => {
    const { w, ds } = t;
    const { laptop, desktop, bob, before } = await dmOfAliceTwoAndBob();
    await unlinkWhileWithheld(w, bob, laptop, before, [laptop]);
    expect(bob.directory.known("alice")?.version).toBe(before.version);
    // The thief: an external join whose "resync" Remove names the LAPTOP's leaf (its own matcher
    // swapped in: ts-mls allows one Remove of any leaf in an external commit).
    await hostileGroupOf(ds, desktop, dm);
    const client = await desktop.store.loadOrCreateClient();
    const laptopKey = Buffer.from(keyOf(laptop), "hex");
    const cfg = defaultKeyPackageEqualityConfig as unknown as { compareKeyPackageToLeafNode: (kp: unknown, leaf: { signaturePublicKey: Uint8Array }) => boolean };
    const orig = cfg.compareKeyPackageToLeafNode;
    cfg.compareKeyPackageToLeafNode = (_kp, leaf) => Buffer.from(leaf.signaturePublicKey).equals(laptopKey);
    let joined: { group: MlsGroup; commit: Uint8Array };
    try {
      joined = await MlsGroup.joinExternal(client, ds.groupOf(dm)!.groupInfo, { resync: true, expectConversation: dm });
    } finally {
      cfg.compareKeyPackageToLeafNode = orig;
    }
    const r = await ds.api("alice", desktop.entry.deviceId).sendCommit({ commit: joined.commit, groupInfo: await joined.group.groupInfo(), added: ["alice"], removed: [] });
    expect(r.ok).toBe(true);
    await waitUntil(() => linesIn(bob, dm).some((l) => l.kind === "refused"), "bob refuses the resync of another device's leaf");
    expect(leafKeys(bob, dm)).toContain(keyOf(laptop));
    // What the thief writes in the epoch its commit would have made never reaches bob's screen.
    await injectLine(w, bob, dm, joined.group, desktop, "new number, send the code here", "8");
    await bob.engine.idle();
    expect(textsIn(bob, dm).some((t) => t.includes("send the code"))).toBe(false);
  });

  it("the thief's commit that wins before the primary's self-heal: the laptop joins again and takes it out (review round 6)", { timeout: 240_000 }, async () => {
    const { w, ds } = t;
    const { laptop, desktop, bob, before } = await dmOfAliceTwoAndBob();
    await unlinkWhileWithheld(w, bob, laptop, before, [laptop]);
    // The thief commits first (an empty commit: a new epoch); bob, served v1, follows it.
    const g: MlsGroup = await hostileGroupOf(ds, desktop, dm);
    await sendHostileCommitAs(ds, desktop, await hostileCommit(g, [], false));
    g.confirmCommit();
    await bob.engine.idle();
    // alice's laptop comes back with v2: it refuses its unlinked device's commit, joins again and heals.
    laptop.engine = w.engine(laptop);
    await w.start(laptop);
    await waitUntil(() => !leafKeys(bob, dm).includes(keyOf(desktop)) && leafKeys(bob, dm).includes(keyOf(laptop)), "the desktop out of bob's DM, the laptop in");
    expect(laptop.events.some((e) => e.type === "notice" && /a device you unlinked \(.*\) made a change in dm:alice:bob, which the relay carried: joined dm:alice:bob again to take it out/.test(e.text))).toBe(true);
    sendLine(bob, dm, "are you there");
    await waitUntil(() => textsIn(laptop, dm).includes("bob: are you there"), "the laptop reads bob again");
    // What the thief writes in its epoch never reaches bob's screen.
    await injectLine(w, bob, dm, g, desktop, "new number, send the code here");
    await bob.engine.idle();
    expect(textsIn(bob, dm).some((x) => x.includes("send the code"))).toBe(false);
  });
});

describe("the unlinked device joining again after the primary's self-heal took it out (review round 7)", () => {
  /** The thief joins the DM again by external commit from the relay's present GroupInfo, as alice's desktop. */
  async function thiefJoins(desktop: Device): Promise<MlsGroup> {
    const client = await desktop.store.loadOrCreateClient();
    const joined = await MlsGroup.joinExternal(client, t.ds.groupOf(dm)!.groupInfo, { expectConversation: dm });
    const r = await t.ds.api("alice", desktop.entry.deviceId).sendCommit({ commit: joined.commit, groupInfo: await joined.group.groupInfo(), added: ["alice"], removed: [] });
    expect(r.ok).toBe(true);
    return joined.group;
  }
  const notices = (d: Device, re: RegExp) => d.events.filter((e) => e.type === "notice" && re.test(e.text));

  it("bob, still served alice's old list, refuses it and joins again once the laptop took it out; the laptop's re-joins back off", { timeout: 240_000 }, async () => {
    const { w, ds } = t;
    const { laptop, desktop, bob, before } = await dmOfAliceTwoAndBob();
    await hostileGroupOf(ds, desktop, dm);
    ds.serveList = (viewer: string, u: string) => (viewer === "bob" && u === "alice" ? before : undefined);
    await w.publish("alice", [laptop]);
    await laptop.directory.refresh(["alice"]);
    await waitUntil(() => !leafKeys(bob, dm).includes(keyOf(desktop)), "the primary's self-heal takes the desktop out of bob's DM");
    await w.settle();
    expect(bob.directory.known("alice")?.version).toBe(before.version); // the desktop still looks listed to bob

    for (let round = 1; round <= 3; round++) {
      const g = await thiefJoins(desktop);
      await waitUntil(() => linesIn(bob, dm).filter((l) => l.kind === "refused-device").length === round, `bob refuses the desktop's re-entry (${round})`);
      expect(leafKeys(bob, dm)).not.toContain(keyOf(desktop));
      // What the thief writes in its epoch never reaches bob's screen.
      await injectLine(w, bob, dm, g, desktop, `new number, send the code here ${round}`, String(100 + round));
      if (round > 1) {
        // The laptop backs off: said, then done once its wait has passed (the engine's timer).
        await waitUntil(() => notices(laptop, /keeps coming back into dm:alice:bob, which the relay carries: joining dm:alice:bob again to take it out in \d+ s/).length === round - 1, `the laptop says it waits (${round})`);
        w.now += 30_000 * 2 ** (round - 2);
        await laptop.engine.checkTimers();
      }
      await waitUntil(async () => { await w.settle(); return leafKeys(bob, dm).includes(keyOf(laptop)) && !leafKeys(bob, dm).includes(keyOf(desktop)) && leafKeys(laptop, dm).length === 2 && leafKeys(laptop, dm).join() === leafKeys(bob, dm).join(); }, `bob and the laptop alone in the DM again (${round})`);
      sendLine(bob, dm, `are you there ${round}`);
      await waitUntil(() => textsIn(laptop, dm).includes(`bob: are you there ${round}`), `the laptop reads bob (${round})`);
      sendLine(laptop, dm, `yes ${round}`);
      await waitUntil(() => textsIn(bob, dm).includes(`alice: yes ${round}`), `bob reads the laptop (${round})`);
    }
    expect(textsIn(bob, dm).some((x) => x.includes("send the code"))).toBe(false);
    expect(notices(bob, /a device alice's own primary device took out of dm:alice:bob .* came back into it; it was refused/)).toHaveLength(3);
    expect(notices(laptop, /a device you unlinked \(.*\) made a change in dm:alice:bob, which the relay carried: joined dm:alice:bob again to take it out/)).toHaveLength(3);
    // bob restarts: the memory is kept (sealed in his MLS store), so the next re-entry is refused too.
    await bob.engine.idle();
    bob.engine.close();
    ds.disconnect("bob", bob.entry.deviceId);
    bob.engine = w.engine(bob);
    await w.start(bob);
    const g = await thiefJoins(desktop);
    await waitUntil(() => linesIn(bob, dm).filter((l) => l.kind === "refused-device").length === 4, "bob, restarted, refuses the desktop's re-entry");
    await injectLine(w, bob, dm, g, desktop, "new number, send the code here 4", "104");
    await bob.engine.idle();
    expect(leafKeys(bob, dm)).not.toContain(keyOf(desktop));
    expect(textsIn(bob, dm).some((x) => x.includes("send the code"))).toBe(false);
  });
});
