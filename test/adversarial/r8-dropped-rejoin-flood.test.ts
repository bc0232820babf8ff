// Review round 8: rejoinPastDropped (now rejoinPastRefused) ran a whole external join (FetchGroupInfo, joinExternal with a
// fresh X-Wing update path, and a must-answer fetch of the device lists in unlistedDeviceIn) for
// EVERY later commit of the conversation that arrives while bob is stopped at the dropped
// device's re-entry, with no bound and no pause. The thief, alone in its fork, makes empty
// commits for next to nothing (the relay takes them: it carries the thief); each costs bob (and
// every member who remembers the drop) a full join attempt. Before round 7 such a conversation
// just held (no work per message).
import { describe, expect, it } from "vitest";
import { MlsGroup } from "../../src/protocol/mls/index.js";
import { deviceWorldEachTest, hostileGroup, hostileCommit, keyOf, leafKeys, linesIn, sendHostileCommit, sendLine, textsIn, aliceTwoAndBob } from "../helpers/mls-devices.js";
import { waitUntil as waitFor } from "../helpers/wait.js";

const waitUntil = <T>(fn: () => T | undefined | false | Promise<T | undefined | false>, what: string, ms = 90_000): Promise<T> => waitFor(fn, what, ms);
const t = deviceWorldEachTest("sc-rt8-flood-");
const dm = "dm:alice:bob";

describe("review round 8: a commit flood in the thief's fork", () => {
  it("bob's join attempts past the dropped device stay bounded", { timeout: 240_000 }, async () => {
    const { w, ds } = t;
    const { laptop, desktop, bob, before } = await aliceTwoAndBob(w);
    sendLine(bob, dm, "hi");
    await waitUntil(() => textsIn(desktop, dm).includes("bob: hi") && textsIn(laptop, dm).includes("bob: hi"), "both of alice's devices read bob");
    await w.settle();
    await hostileGroup(ds, desktop, dm);
    ds.serveList = (viewer: string, u: string) => (viewer === "bob" && u === "alice" ? before : undefined);
    await w.publish("alice", [laptop]);
    await laptop.directory.refresh(["alice"]);
    await waitUntil(() => !leafKeys(bob, dm).includes(keyOf(desktop)), "the primary's self-heal takes the desktop out");
    await w.settle();
    // alice's laptop goes offline (asleep); the thief comes back in.
    await laptop.engine.idle();
    laptop.engine.close();
    ds.disconnect("alice", laptop.entry.deviceId);
    const client = await desktop.store.loadOrCreateClient();
    const joined = await MlsGroup.joinExternal(client, ds.groupOf(dm)!.groupInfo, { expectConversation: dm });
    const r = await ds.api("alice", desktop.entry.deviceId).sendCommit({ commit: joined.commit, groupInfo: await joined.group.groupInfo(), added: ["alice"], removed: [] });
    expect(r.ok).toBe(true);
    await waitUntil(() => linesIn(bob, dm).some((l) => l.kind === "refused-device"), "bob refuses the re-entry");
    await bob.engine.idle();
    // Count what bob does from here.
    const api = (bob.engine as unknown as { s: { d: { ds: Record<string, (...a: unknown[]) => Promise<unknown>> } } }).s.d.ds;
    let infos = 0, lists = 0;
    const fgi = api["fetchGroupInfo"]!, fdl = api["fetchDeviceLists"]!;
    api["fetchGroupInfo"] = (...a) => { infos++; return fgi(...a); };
    api["fetchDeviceLists"] = (...a) => { lists++; return fdl(...a); };
    const g = joined.group;
    const K = 20;
    for (let i = 0; i < K; i++) {
      await sendHostileCommit(ds, desktop, await hostileCommit(g, [], false));
      g.confirmCommit();
    }
    await bob.engine.idle();
    await w.settle();
    expect(leafKeys(bob, dm)).not.toContain(keyOf(desktop));
    expect(infos).toBeLessThanOrEqual(3);
  });
});
