// rt9 (7519dd8): a leave proposal of a past epoch is now refused EPOCH_TAKEN by the relay and
// /leave fetches the commits it missed and proposes again (3 tries). A member stopped at a
// refused commit (here: mallory, an ordinary member, adds a device her list does not name; the
// creator is offline, so nobody re-creates the room) can never reach the relay's epoch: catchUp
// refuses the same commit each time, the proposal stays one epoch behind, and /leave fails with
// "epoch taken" for good. Before 7519dd8 the proposal was taken and bob's client forgot the room.
// bob can no longer leave a room a hostile member wedged (and keeps it, and its queue, forever).
import { describe, expect, it } from "vitest";
import type { Proposal } from "ts-mls";
import { decodeKeyPackage, generateKeyPackage, generateMlsSignatureKey, makeCredential, mlsClientFromCredential } from "../../src/protocol/mls/index.js";
import { deviceWorldEachTest, oneDeviceEachInRoom, type Device, hostileCommit, hostileGroup, linesIn, sendHostileCommit } from "../helpers/mls-devices.js";
import { waitUntil as waitFor } from "../helpers/wait.js";

const waitUntil = <T>(fn: () => T | undefined | false | Promise<T | undefined | false>, what: string, ms = 60_000): Promise<T> => waitFor(fn, what, ms);
const t = deviceWorldEachTest("sc-rt9-leave-stuck-");
const room = "#ops";

describe("review round 9: /leave from a room stopped at a refused commit", () => {
  it("bob can still leave #ops", { timeout: 240_000 }, async () => {
    const { w, ds } = t;
    const [alice, bob, mallory] = await oneDeviceEachInRoom(w, room, ["alice", "bob", "mallory"]) as [Device, Device, Device];
    await w.settle();
    ds.disconnect("alice", alice.entry.deviceId); // the creator is away
    const g = await hostileGroup(ds, mallory, room);
    const sig = await generateMlsSignatureKey();
    const { credential } = makeCredential("mallory", mallory.user.identity, sig.publicKey);
    const kp = await generateKeyPackage(mlsClientFromCredential("mallory", credential, sig.publicKey, sig.privateKey));
    const add: Proposal = { proposalType: "add", add: { keyPackage: decodeKeyPackage(kp.keyPackage) } };
    await sendHostileCommit(ds, mallory, await hostileCommit(g, [add], true), ["mallory"]);
    g.confirmCommit();
    await waitUntil(() => linesIn(bob, room).some((l) => l.kind === "refused-device"), "bob refuses mallory's unlisted device");
    const r = await bob.engine.leaveRoom(room);
    expect({ ok: r.ok, error: r.ok ? undefined : r.error, stillIn: bob.engine.memberIdentities(room) !== undefined }).toEqual({ ok: true, error: undefined, stillIn: false });
    expect(bob.events.some((e) => e.type === "notice" && e.text === "#ops is stopped at a change you refused, so your leave could not reach its members: you left on this device, and your place in the group stays until its creator re-creates it")).toBe(true);
  });
});
