// A /leave racing a commit (PROTOCOL.md §8.3): the leave proposal made in the epoch the commit
// ended is refused EPOCH_TAKEN by the relay (a proposal of a past epoch can never be committed:
// members drop it as stale); the leaver fetches the commit, proposes again, and is taken out.
// Before, the relay took the stale proposal, the leaver forgot the room, and its leaf stayed in
// the group for good with nobody reading for it.
import { describe, expect, it } from "vitest";
import { MlsKind } from "../../src/gen/securechat/v1/chat.js";
import { deviceWorldEachTest, oneDeviceEachInRoom, type Device, leafKeys } from "../helpers/mls-devices.js";
import { waitUntil as waitFor } from "../helpers/wait.js";

const waitUntil = <T>(fn: () => T | undefined | false | Promise<T | undefined | false>, what: string, ms = 90_000): Promise<T> => waitFor(fn, what, ms);
const t = deviceWorldEachTest("sc-leave-race-");
const room = "#ops";

describe("/leave racing a commit", () => {
  it("the leave proposed in the epoch a commit just ended is proposed again after it, and carol is out for everyone", { timeout: 240_000 }, async () => {
    const { w, ds } = t;
    const [bob, carol, dave, erin] = await oneDeviceEachInRoom(w, room, ["bob", "carol", "dave"], ["erin"]) as [Device, Device, Device, Device];
    // dave's invite of erin is accepted by the relay; carol does not have it yet when she leaves.
    let held = true;
    ds.intercept = (to, q) => (held && to === "carol" && q.item.kind === MlsKind.MLS_KIND_COMMIT ? undefined : q);
    expect((await dave.engine.invite(room, "erin")).ok).toBe(true);
    held = false;
    expect((await carol.engine.leaveRoom(room)).ok).toBe(true);
    await w.settle();
    await waitUntil(() => [bob, dave, erin].every((d) => leafKeys(d, room).length === 3 && !(d.engine.members(room) ?? []).includes("carol")), "carol out for bob, dave and erin");
    expect(ds.groupOf(room)?.members).not.toContain("carol");
    expect(carol.engine.members(room)).toBeUndefined();
  });
});
