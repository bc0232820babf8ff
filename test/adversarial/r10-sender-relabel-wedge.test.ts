// rt10 (round 9, 5338a8f): a commit refused for its relay-named sender ("sender": judged by the
// policy callback, thrown as "refused-change") now marks the conversation `rejoinable`. A
// relay that names the wrong sender for ONE honest commit (carol inviting erin) to bob, each
// time it hands it to him, makes him refuse what everyone else took; from then on bob only makes
// the vouched re-join, and every later state holds erin (sameUsers fails) for good: bob reads
// nothing in #ops again while the relay serves everything else honestly. Before round 9 the
// "sender" refusal did not stop the plain re-join of §12, and bob was back after the hold bound.
import { describe, expect, it } from "vitest";
import { MlsKind } from "../../src/gen/securechat/v1/chat.js";
import { deviceWorldEachTest, oneDeviceEachInRoom, type Device, sendLine, textsIn } from "../helpers/mls-devices.js";
import { waitUntil } from "../helpers/wait.js";

const t = deviceWorldEachTest("sc-rt10-relabel-");
const room = "#ops";

describe("review round 10: one commit's sender relabelled to one member", () => {
  it("bob reads #ops again after the hold bound", { timeout: 240_000 }, async () => {
    const { w, ds } = t;
    const [alice, bob, carol] = await oneDeviceEachInRoom(w, room, ["alice", "bob", "carol"], ["erin"]) as [Device, Device, Device, Device];
    const epoch = ds.groupOf(room)!.epoch;
    ds.intercept = (to, q) => (to === "bob" && q.item.kind === MlsKind.MLS_KIND_COMMIT && q.item.epoch === epoch ? { ...q, item: { ...q.item, sender: "alice" } } : q);
    const inner = ds as unknown as { fetchCommits: (user: string, g: Uint8Array, e: number) => { ok: boolean; commits?: { epoch: number; sender: string }[] } };
    const real = inner.fetchCommits.bind(ds);
    inner.fetchCommits = (user, g, e) => {
      const r = real(user, g, e);
      if (user === "bob" && r.ok && r.commits !== undefined) r.commits = r.commits.map((c) => (c.epoch === epoch ? { ...c, sender: "alice" } : c));
      return r;
    };
    expect((await carol.engine.invite(room, "erin")).ok).toBe(true);
    await w.settle();
    sendLine(alice, room, "one");
    await w.settle();
    for (let i = 0; i < 3; i++) {
      w.now += 11 * 60_000;
      await bob.engine.checkTimers();
      await w.settle();
    }
    sendLine(alice, room, "two");
    let read = false;
    try { await waitUntil(async () => { await w.settle(); return textsIn(bob, room).includes("alice: two"); }, "bob reads alice", 20_000); read = true; } catch { read = false; }
    expect(read).toBe(true);
  });
});
