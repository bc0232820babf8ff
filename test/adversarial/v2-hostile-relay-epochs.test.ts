// The relay is the attacker, protocol v2, with epochs (PROTOCOL.md §12 "drops a commit",
// "forks an epoch"): real v2 ChatClients through the real relay and the operator's proxy
// (test/helpers/mls-hostile-proxy.ts). A commit hidden from one member (from its queue and from
// FetchCommits too), and one epoch forked into two halves, each half told its own commit won.
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { MlsKind } from "../../src/gen/securechat/v1/chat.js";
import { readFraming } from "../../src/client/mls/framing.js";
import {
  cleanupWorlds, deliveryTo, isKind, keepTalking, lines, loadIdentities, logged, notices, processed, refused, room, say, shown, T, world, worldWith, type World,
} from "../helpers/v2-hostile-world.js";
import { waitUntil } from "../helpers/wait.js";

beforeAll(loadIdentities);
afterEach(async () => {
  vi.useRealTimers();
  await cleanupWorlds();
});

describe("a dropped commit", () => {
  it("dropped from carol's queue only: her held message passes its bound, she fetches the commit and reads it; all talk on", { timeout: 300_000 }, async () => {
    vi.useFakeTimers({ toFake: ["setInterval", "clearInterval"] });
    const skew = { ms: 0 };
    const w = await worldWith({ clocks: { carol: () => Date.now() + skew.ms } }, "alice", "bob", "carol", "dave");
    await room(w, "#ops", "alice", "bob", "carol");
    w.proxy.onDelivery = (user, d) => (user === "carol" && d.mls?.kind === MlsKind.MLS_KIND_COMMIT && d.conversationId === "#ops" ? [] : undefined);
    expect((await w.c.dave!.client.joinRoom("#ops")).ok).toBe(true);
    await waitUntil(() => lines(w.c.alice!, "#ops").includes("dave joined"), "alice sees dave join", T);
    await say(w.c.alice!, "#ops", "while carol missed a change");
    await waitUntil(() => logged("carol", "mls.deliver.held") >= 1, "carol holds a message of an epoch she has not reached", T);
    expect(shown(w.c.carol!, "#ops")).toEqual([]);

    skew.ms = 11 * 60_000;
    vi.advanceTimersByTime(61_000);
    await w.c.carol!.waitForMessage("while carol missed a change", T);
    expect(lines(w.c.carol!, "#ops")).toContain("dave joined");
    expect(notices(w.c.carol!).filter((t) => t.startsWith("missing changes"))).toEqual([]);
    expect((w.proxy.requests.get("carol") ?? []).some((f) => f.$case === "fetchCommits")).toBe(true);
    w.proxy.onDelivery = undefined;
    await keepTalking(w, "#ops", ["alice", "bob", "carol", "dave"], "after carol caught up");
  });

  it("hidden from carol's queue and from FetchCommits: her held message passes its bound, she joins again and says so; all talk on", { timeout: 300_000 }, async () => {
    // The engine looks at held messages once a minute (a setInterval) against its clock: both are the test's.
    vi.useFakeTimers({ toFake: ["setInterval", "clearInterval"] });
    const skew = { ms: 0 };
    const w = await worldWith({ clocks: { carol: () => Date.now() + skew.ms } }, "alice", "bob", "carol", "dave");
    await room(w, "#ops", "alice", "bob", "carol");
    w.proxy.onDelivery = (user, d) => (user === "carol" && d.mls?.kind === MlsKind.MLS_KIND_COMMIT && d.conversationId === "#ops" ? [] : undefined);
    w.proxy.onResponse = (user, f) => (user === "carol" && f.$case === "commitList" ? [{ $case: "commitList", value: { ...f.value, commits: [], more: false } }] : undefined);

    expect((await w.c.dave!.client.joinRoom("#ops")).ok).toBe(true);
    for (const n of ["alice", "bob"]) await waitUntil(() => lines(w.c[n]!, "#ops").includes("dave joined"), `${n} sees dave join`, T);
    await say(w.c.alice!, "#ops", "while carol missed a change");
    await waitUntil(() => logged("carol", "mls.deliver.held") >= 1, "carol holds a message of an epoch she has not reached", T);
    expect(shown(w.c.carol!, "#ops")).toEqual([]);
    expect(lines(w.c.carol!, "#ops")).not.toContain("dave joined");

    // Ten minutes on, the engine's next look: the relay gives no missing commit, so carol joins again.
    skew.ms = 11 * 60_000;
    vi.advanceTimersByTime(61_000);
    await waitUntil(() => notices(w.c.carol!).find((t) => t.startsWith("missing changes in #ops")), "carol says she missed changes", T);
    expect(notices(w.c.carol!)).toContain("missing changes in #ops: joined it again; 1 message(s) sent meanwhile could not be read");
    // Who joined meanwhile is said: the commit that added dave never reached her.
    expect(notices(w.c.carol!)).toContain("while you were out of step with #ops: dave is in it now (changes you did not see made)");
    // Her re-join replaces her own leaf (resync): the others' member lists stay the same four,
    // and talking on proves they took her new commit (her new epoch is theirs).
    for (const n of ["alice", "bob", "dave"]) {
      const m = await w.c[n]!.client.members("#ops");
      expect(m.ok && [...m.value].sort()).toEqual(["alice", "bob", "carol", "dave"]);
    }
    w.proxy.onDelivery = undefined;
    w.proxy.onResponse = undefined;
    await keepTalking(w, "#ops", ["alice", "bob", "carol", "dave"], "after carol's re-join");
  });
});

describe("a withheld Welcome", () => {
  it("bob's DM Welcome never delivered: his reply waits, then he joins by external commit; alice's first message is shown lost, bob sees the gap", { timeout: 300_000 }, async () => {
    vi.useFakeTimers({ toFake: ["setInterval", "clearInterval"] });
    const skew = { ms: 0 };
    const w = await worldWith({ clocks: { bob: () => Date.now() + skew.ms } }, "alice", "bob");
    const dm = "dm:alice:bob";
    w.proxy.onDelivery = (user, d) => (user === "bob" && d.mls?.kind === MlsKind.MLS_KIND_WELCOME ? [] : undefined);
    const first = await say(w.c.alice!, dm, "hi bob, first");
    const queued = await deliveryTo(w, "bob", isKind(MlsKind.MLS_KIND_APPLICATION, dm), "alice's message queued for bob");
    await processed(w, "bob", queued.seq);
    expect(shown(w.c.bob!, dm)).toEqual([]);

    const reply = w.c.bob!.client.send(dm, "hello? anyone");
    expect(reply.ok).toBe(true);
    await waitUntil(() => logged("bob", "mls.dm.creation_lost") >= 1, "bob finds alice's group registered first and waits for its Welcome", T);
    skew.ms = 3 * 60_000;
    vi.advanceTimersByTime(61_000);
    await w.c.alice!.waitForMessage("hello? anyone", T);
    expect(logged("bob", "mls.dm.no_welcome")).toBe(1); // joined by external commit, not by a Welcome
    await say(w.c.bob!, dm, "second from bob");
    await w.c.alice!.waitForMessage("second from bob", T);
    await w.c.alice!.waitFor((e) => e.type === "message-state" && e.id === first && e.state === "failed", "alice's first message shown lost", T);
    await say(w.c.alice!, dm, "resent: hi bob");
    expect((await w.c.bob!.waitForMessage("resent: hi bob", T)).gap).toBe(true);
    w.proxy.onDelivery = undefined;
    await keepTalking(w, dm, ["alice", "bob"], "after the withheld Welcome");
  });
});

/**
 * Forks #ops at one epoch: bob's invite of dave is answered "accepted" by the relay without being
 * stored, and carol gets bob's commit where the relay queued alice's; alice's invite of dave is
 * the one the relay really accepts (dave joins by its Welcome), and bob never gets it.
 * Halves: {alice, dave} and {bob, carol}.
 */
async function forked(): Promise<World> {
  const w = await world("alice", "bob", "carol", "dave");
  await room(w, "#ops", "alice", "bob", "carol");
  let bobsCommit: Uint8Array | undefined;
  w.proxy.onRequest = (user, f, s) => {
    if (user !== "bob" || f.$case !== "sendCommit") return undefined;
    const fr = readFraming(f.value.commit);
    bobsCommit = f.value.commit;
    s.toClient({ $case: "commitResult", value: { requestId: f.value.requestId, accepted: true, code: 0, detail: "", groupId: Buffer.from(fr.groupId), epoch: fr.epoch, currentEpoch: fr.epoch + 1, winner: "" } });
    return [];
  };
  expect((await w.c.bob!.client.invite!("#ops", "dave")).ok).toBe(true);
  expect(bobsCommit).toBeDefined();
  w.proxy.onRequest = undefined;
  w.proxy.onDelivery = (user, d) => {
    if (d.mls?.kind !== MlsKind.MLS_KIND_COMMIT || d.conversationId !== "#ops") return undefined;
    if (user === "bob") return [];
    if (user === "carol") return [{ ...d, mls: { ...d.mls, sender: "bob", mls: Buffer.from(bobsCommit!) } }];
    return undefined;
  };
  expect((await w.c.alice!.client.invite!("#ops", "dave")).ok).toBe(true);
  await waitUntil(() => lines(w.c.carol!, "#ops").includes("bob added dave"), "carol took bob's commit", T);
  await waitUntil(() => lines(w.c.dave!, "#ops").includes("alice added dave"), "dave joined alice's half", T);
  w.proxy.onDelivery = undefined;
  return w;
}

describe("a forked epoch", () => {
  it("two commits accepted for one epoch, one per half: the halves cannot read each other (each message refused), each half talks on", { timeout: 300_000 }, async () => {
    const w = await forked();
    const before = { alice: refused(w.c.alice!, "#ops"), bob: refused(w.c.bob!, "#ops"), carol: refused(w.c.carol!, "#ops"), dave: refused(w.c.dave!, "#ops") };
    await say(w.c.alice!, "#ops", "from alice's half");
    await w.c.dave!.waitForMessage("from alice's half", T);
    await say(w.c.bob!, "#ops", "from bob's half");
    await w.c.carol!.waitForMessage("from bob's half", T);
    for (const n of ["bob", "carol"]) {
      await waitUntil(() => refused(w.c[n]!, "#ops") > before[n as keyof typeof before], `${n} refuses alice's half`, T);
      expect(shown(w.c[n]!, "#ops")).not.toContain("from alice's half");
    }
    for (const n of ["alice", "dave"]) {
      await waitUntil(() => refused(w.c[n]!, "#ops") > before[n as keyof typeof before], `${n} refuses bob's half`, T);
      expect(shown(w.c[n]!, "#ops")).not.toContain("from bob's half");
    }
    await keepTalking(w, "#ops", ["alice", "dave"], "alice's half");
    await keepTalking(w, "#ops", ["bob", "carol"], "bob's half");
  });

  // PROTOCOL.md §12: "the client shows '#ops may have been split by the relay'": a message of
  // my current epoch from a member of it that does not open (receive.ts maybeSplit; before, only a
  // `refused` event). The epoch authenticator comparison in the app data is still to build.
  it("a forked epoch is named as a possible split by the relay (§12)", { timeout: 300_000 }, async () => {
    const w = await forked();
    await say(w.c.bob!, "#ops", "from bob's half");
    await w.c.carol!.waitForMessage("from bob's half", T);
    const d = await deliveryTo(w, "alice", (x) => isKind(MlsKind.MLS_KIND_APPLICATION, "#ops")(x) && x.mls!.sender === "bob", "bob's message queued for alice");
    await processed(w, "alice", d.seq);
    expect(notices(w.c.alice!).some((t) => /#ops may have been split/.test(t))).toBe(true);
    // Shown once per epoch: bob's next message adds no second notice.
    await say(w.c.bob!, "#ops", "again from bob's half");
    const d2 = await deliveryTo(w, "alice", (x) => isKind(MlsKind.MLS_KIND_APPLICATION, "#ops")(x) && x.mls!.sender === "bob" && x.seq > d.seq, "bob's second message queued for alice");
    await processed(w, "alice", d2.seq);
    expect(notices(w.c.alice!).filter((t) => /#ops may have been split/.test(t))).toHaveLength(1);
  });
});

// PROTOCOL.md §12 epoch authenticators: a relay that keeps the two halves of a forked room
// fully apart (no room message ever crosses) is still caught, through the DM between members of
// the two halves: each DM message carries its sender's epoch (and a hash of its authenticator)
// of every room they share, and the reader compares it with its own for that epoch.
describe("a forked epoch kept fully apart", () => {
  const splitBy = (t: string): boolean => /^#ops was split by the relay/.test(t);

  it("no room message crosses the halves; carol's DM to dave (and his reply) names #ops split, once per epoch", { timeout: 300_000 }, async () => {
    const w = await forked();
    const half: Record<string, number> = { alice: 0, dave: 0, bob: 1, carol: 1 };
    w.proxy.onDelivery = (user, d) => (d.conversationId === "#ops" && d.mls !== undefined && half[d.mls.sender] !== half[user] ? [] : undefined);
    await say(w.c.alice!, "#ops", "from alice's half");
    await w.c.dave!.waitForMessage("from alice's half", T);
    await say(w.c.bob!, "#ops", "from bob's half");
    await w.c.carol!.waitForMessage("from bob's half", T);
    // Kept apart: nobody has refused a room message, so the "may have been split" notice never came.
    for (const n of ["alice", "bob", "carol", "dave"]) expect(notices(w.c[n]!).filter((t) => /may have been split/.test(t))).toEqual([]);

    await say(w.c.carol!, "dm:carol:dave", "hi dave");
    await w.c.dave!.waitForMessage("hi dave", T);
    await waitUntil(() => notices(w.c.dave!).find(splitBy), "dave is told #ops was split", T);
    expect(notices(w.c.dave!).find(splitBy)).toMatch(/carol's epoch \d+ of it differs from yours.*re-create it/);
    await say(w.c.dave!, "dm:carol:dave", "hi carol");
    await w.c.carol!.waitForMessage("hi carol", T);
    await waitUntil(() => notices(w.c.carol!).find(splitBy), "carol is told #ops was split", T);
    // Once per room and epoch.
    await say(w.c.carol!, "dm:carol:dave", "again");
    await w.c.dave!.waitForMessage("again", T);
    expect(notices(w.c.dave!).filter(splitBy)).toHaveLength(1);
    expect(logged("dave", "mls.epoch.forked")).toBe(1);
  });

  it("honest relay, two concurrent commits in #ops: DMs across the room carry views and warn of nothing", { timeout: 300_000 }, async () => {
    const w = await world("alice", "bob", "carol", "dave", "mallory");
    await room(w, "#ops", "alice", "bob", "carol");
    const [a, b] = await Promise.all([w.c.alice!.client.invite!("#ops", "dave"), w.c.bob!.client.invite!("#ops", "mallory")]);
    expect(a.ok && b.ok).toBe(true);
    for (const n of ["alice", "bob", "carol", "dave", "mallory"]) {
      await waitUntil(async () => {
        const m = await w.c[n]!.client.members("#ops");
        return m.ok && m.value.length === 5;
      }, `${n} sees five members`, T);
    }
    await keepTalking(w, "#ops", ["alice", "bob", "carol", "dave", "mallory"], "after two commits");
    for (const [x, y] of [["alice", "bob"], ["carol", "dave"], ["dave", "mallory"], ["bob", "carol"]] as const) {
      await say(w.c[x]!, `dm:${x}:${y}`, `${x} to ${y}`);
      await w.c[y]!.waitForMessage(`${x} to ${y}`, T);
      await say(w.c[y]!, `dm:${x}:${y}`, `${y} to ${x}`);
      await w.c[x]!.waitForMessage(`${y} to ${x}`, T);
    }
    for (const n of ["alice", "bob", "carol", "dave", "mallory"]) {
      expect(notices(w.c[n]!).filter((t) => /split/.test(t))).toEqual([]);
      expect(logged(n, "mls.epoch.forked")).toBe(0);
    }
  });
});
