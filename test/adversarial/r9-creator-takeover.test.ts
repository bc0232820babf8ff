// rt9 (red team on round 8): rejoinPastRefused lets ANY room member (honest relay) take the
// room's creator role for every member who refused its commit. mallory (not the creator) adds a
// device of her own that her list does not name: bob refuses it ("device"), so the room is
// "rejoinable". mallory's next commit takes the device out AND changes the GroupContext's
// room_creator to herself (a change every member refuses as context-changed when judged). bob
// never judges it: rejoinPastRefused joins from the relay's present GroupInfo, checking only
// "same usernames, no unlisted device" (and unvouched: same group, later epoch). bob's room now
// names mallory its creator: she may remove anyone, and alice's re-creation is refused by bob.
import { describe, expect, it } from "vitest";
import type { Proposal } from "ts-mls";
import { decodeKeyPackage, generateKeyPackage, generateMlsSignatureKey, makeCredential, mlsClientFromCredential } from "../../src/protocol/mls/index.js";
import { creatorChangeProposal, deviceWorldEachTest, oneDeviceEachInRoom, type Device, hostileCommit, hostileGroup, linesIn, sendHostileCommit, sendLine, textsIn } from "../helpers/mls-devices.js";
import { waitUntil as waitFor } from "../helpers/wait.js";

const waitUntil = <T>(fn: () => T | undefined | false | Promise<T | undefined | false>, what: string, ms = 60_000): Promise<T> => waitFor(fn, what, ms);
const t = deviceWorldEachTest("sc-rt9-creator-");
const room = "#ops";

describe("review round 9: a member's refused unlisted device, then an unjudged creator change", () => {
  it("bob must keep alice as #ops's creator", { timeout: 240_000 }, async () => {
    const { w, ds } = t;
    const [alice, bob, , mallory] = await oneDeviceEachInRoom(w, room, ["alice", "bob", "carol", "mallory"]) as [Device, Device, Device, Device];
    expect(bob.engine.creator(room)).toBe("alice");

    // alice (the creator) is offline a while (asleep): nobody re-creates the room at once.
    await w.settle();
    ds.disconnect("alice", alice.entry.deviceId);
    // mallory's own client from here on.
    const g = await hostileGroup(ds, mallory, room);
    // 1. An Add of a device of mallory's that her list does not name (any member can make one).
    const sig = await generateMlsSignatureKey();
    const { credential } = makeCredential("mallory", mallory.user.identity, sig.publicKey);
    const ghost = mlsClientFromCredential("mallory", credential, sig.publicKey, sig.privateKey);
    const kp = await generateKeyPackage(ghost);
    const add: Proposal = { proposalType: "add", add: { keyPackage: decodeKeyPackage(kp.keyPackage) } };
    await sendHostileCommit(ds, mallory, await hostileCommit(g, [add], true), ["mallory"]);
    g.confirmCommit();
    await waitUntil(() => linesIn(bob, room).some((l) => l.kind === "refused-device"), "bob refuses mallory's unlisted device");
    // 2. Out with the ghost, and the room's creator is now mallory.
    const ghostLeaf = g.members().find((m) => Buffer.from(m.signatureKey).equals(Buffer.from(sig.publicKey)))!.leafIndex;
    const gce = creatorChangeProposal(g, mallory);
    await sendHostileCommit(ds, mallory, await hostileCommit(g, [{ proposalType: "remove", remove: { removed: ghostLeaf } }, gce], false));
    g.confirmCommit();
    await bob.engine.idle();
    await w.settle();
    const creatorNow = bob.engine.creator(room);
    // 3. As "creator", mallory removes carol: bob takes it.
    if (creatorNow === "mallory") {
      // mallory follows what the relay took meanwhile (bob's and carol's joins into her state).
      for (;;) {
        const r = await ds.api("mallory", mallory.entry.deviceId).fetchCommits(g.groupId, Number(g.epoch));
        if (!r.ok || r.commits.length === 0) break;
        for (const c of r.commits) if (c.epoch === Number(g.epoch)) await g.process(c.commit);
      }
      const carolLeaf = g.members().find((m) => m.username === "carol")!.leafIndex;
      await sendHostileCommit(ds, mallory, await hostileCommit(g, [{ proposalType: "remove", remove: { removed: carolLeaf } }], false));
      g.confirmCommit();
      await bob.engine.idle();
    }
    // alice comes back: she refuses mallory's commit and re-creates #ops; bob must follow her.
    ds.connect("alice", alice.engine, alice.entry.deviceId);
    await alice.engine.idle();
    await w.settle();
    const members = [...new Set((bob.engine.memberIdentities(room) ?? []).map((m) => (m as { username: string }).username))].sort();
    void textsIn; void sendLine;
    expect({ creatorWhileAliceAway: creatorNow, creatorAfter: bob.engine.creator(room), carolIn: members.includes("carol") }).toEqual({ creatorWhileAliceAway: "alice", creatorAfter: "alice", carolIn: true });
  });
});
