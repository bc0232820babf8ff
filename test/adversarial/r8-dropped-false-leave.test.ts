// Review round 8: the memory tells a self-heal from a /leave only by
// the list claim being newer than bob's list. alice links a phone (v2: laptop, desktop, phone);
// the relay withholds that BENIGN list from bob (he holds v1). alice's laptop /leaves #ops: its
// commit takes her desktop out too and claims v2 > v1, so bob remembers the desktop, which is in
// both lists, as "dropped by alice's primary". When the desktop later /joins #ops itself (the
// documented honest flow: "a linked device's later /join stays welcome"), bob refuses it, says
// alice's own primary took it out, and stays stopped in #ops. Before round 7 it was taken.
import { describe, expect, it } from "vitest";
import { deviceWorldEachTest, keyOf, leafKeys, linesIn, aliceTwoAndBob } from "../helpers/mls-devices.js";
import { waitUntil as waitFor } from "../helpers/wait.js";

const waitUntil = <T>(fn: () => T | undefined | false | Promise<T | undefined | false>, what: string, ms = 90_000): Promise<T> => waitFor(fn, what, ms);
const t = deviceWorldEachTest("sc-rt8-falseleave-");
const room = "#ops";

describe("review round 8: a primary's /leave under a list the relay withholds (one that only ADDS a device)", () => {
  it("the linked desktop's own later /join is taken by bob", { timeout: 240_000 }, async () => {
    const { w, ds } = t;
    const { laptop, desktop, bob, before } = await aliceTwoAndBob(w);
    expect((await bob.engine.joinRoom(room)).ok).toBe(true); // bob creates #ops
    expect((await laptop.engine.joinRoom(room)).ok).toBe(true);
    await waitUntil(() => [laptop, desktop, bob].every((d) => leafKeys(d, room).length === 3), "three leaves everywhere");
    await w.settle();
    // alice links a phone (not started yet): v2 names laptop, desktop, phone. The relay keeps v1 for bob.
    const phone = await w.device("alice", "phone");
    ds.serveList = (viewer: string, u: string) => (viewer === "bob" && u === "alice" ? before : undefined);
    await w.publish("alice", [laptop, desktop, phone]);
    await laptop.directory.refresh(["alice"]);
    await desktop.directory.refresh(["alice"]);
    await w.settle();
    // alice leaves #ops on her primary: her desktop is taken out with it.
    expect((await laptop.engine.leaveRoom(room)).ok).toBe(true);
    await waitUntil(() => leafKeys(bob, room).length === 1, "only bob left in #ops");
    await w.settle();
    // Later, alice joins #ops again from her desktop.
    expect((await desktop.engine.joinRoom(room)).ok).toBe(true);
    await w.settle();
    const notices = bob.events.filter((e) => e.type === "notice").map((e) => (e as { text: string }).text).filter((x) => /primary device took out/.test(x));
    expect({ desktopIn: leafKeys(bob, room).includes(keyOf(desktop)), refused: linesIn(bob, room).filter((l) => l.kind === "refused-device").length, notices })
      .toEqual({ desktopIn: true, refused: 0, notices: [] });
  });
});
