// The relay is the attacker, protocol v2 (PROTOCOL.md §12, issue 12 "Hostile relay"): real
// ChatClients in v2 mode (real MLS groups, the real content layer of §11 over each client's state
// db) talk through the real relay, with the relay operator's man in the middle
// (test/helpers/mls-hostile-proxy.ts) dropping, holding, replaying, duplicating and rewriting
// frames per user and per kind. For each case: what the honest members see (refused, or shown
// as a notice, a gap, a lost message or a membership line), and that they keep talking after.
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode, MlsKind, type Delivery } from "../../src/gen/securechat/v1/chat.js";
import { readFraming } from "../../src/client/mls/framing.js";
import { describeClientError } from "../../src/client/errors.js";
import {
  cleanupWorlds, deliveryTo, isKind, keepTalking, lines, loadIdentities, logged, logs, notices, processed, refused, room, say, shown, T, world,
} from "../helpers/v2-hostile-world.js";
import { waitUntil } from "../helpers/wait.js";

beforeAll(loadIdentities);
afterEach(cleanupWorlds);

describe("replays", () => {
  it("a replayed application message is shown once, never twice; a replayed commit changes nothing; all talk on", { timeout: 240_000 }, async () => {
    const w = await world("alice", "bob", "carol");
    await room(w, "#ops", "alice", "bob", "carol");
    await say(w.c.alice!, "#ops", "pay carol 10");
    await w.c.bob!.waitForMessage("pay carol 10", T);
    const msg = await deliveryTo(w, "bob", (d) => isKind(MlsKind.MLS_KIND_APPLICATION, "#ops")(d), "alice's message queued for bob");
    const commit = await deliveryTo(w, "bob", isKind(MlsKind.MLS_KIND_COMMIT, "#ops"), "carol's join commit queued for bob");
    const linesBefore = lines(w.c.bob!, "#ops");

    // The relay hands bob the same message twice more, and carol's join commit again.
    const refusedBefore = refused(w.c.bob!, "#ops");
    const again = w.proxy.inject("bob", msg, msg, commit);
    for (const d of again) await processed(w, "bob", d.seq);

    expect(shown(w.c.bob!, "#ops").filter((t) => t === "pay carol 10")).toHaveLength(1);
    // Each copy of the message is known by the relay's message id (processed in this run) and dropped
    // without a word (its keys are used anyway: after a restart MLS refuses it, the next test); the
    // commit is of an epoch already left: stale, ignored.
    expect(refused(w.c.bob!, "#ops")).toBe(refusedBefore);
    expect(logged("bob", "mls.deliver.redelivered")).toBe(2);
    expect(logged("bob", "mls.deliver.stale")).toBe(1);
    expect(lines(w.c.bob!, "#ops")).toEqual(linesBefore); // no second "carol joined", no state change
    const m = await w.c.bob!.client.members("#ops");
    expect(m.ok && [...m.value].sort()).toEqual(["alice", "bob", "carol"]);
    await keepTalking(w, "#ops", ["alice", "bob", "carol"], "after the replays");
  });

  it("a message replayed after the reader restarted from its files is still shown once", { timeout: 240_000 }, async () => {
    const w = await world("alice", "bob");
    const dm = "dm:alice:bob";
    await keepTalking(w, dm, ["alice", "bob"], "before");
    await say(w.c.alice!, dm, "transfer approved");
    await w.c.bob!.waitForMessage("transfer approved", T);
    const msg = w.proxy.deliveredTo("bob", isKind(MlsKind.MLS_KIND_APPLICATION, dm)).at(-1)!;
    const bob = await w.restart("bob");
    const before = refused(bob, dm);
    const count = (): number => bob.messages(dm).filter((m) => m.text === "transfer approved").length; // kept history may show it again at start
    const shownBefore = count();
    const [copy] = w.proxy.inject("bob", msg);
    await processed(w, "bob", copy!.seq);
    expect(count()).toBe(shownBefore);
    expect(refused(bob, dm)).toBe(before + 1);
    await keepTalking(w, dm, ["alice", "bob"], "after bob's restart");
  });
});

describe("re-addressing and forged senders", () => {
  it("a DM delivered as a room's message, and a room's message delivered into another room, are refused and not shown", { timeout: 240_000 }, async () => {
    const w = await world("alice", "bob", "carol");
    await room(w, "#ops", "alice", "bob");
    await room(w, "#dev", "carol", "bob");
    await say(w.c.alice!, "dm:alice:bob", "hello bob");
    await w.c.bob!.waitForMessage("hello bob", T);
    const refusedOps = refused(w.c.bob!, "#ops");
    const refusedDev = refused(w.c.bob!, "#dev");

    // bob's next DM from alice is delivered into #ops; alice's next #ops message into #dev (with #dev's group id).
    const devGroup = (await deliveryTo(w, "carol", (d) => d.conversationId === "#dev" && d.mls !== undefined, "a #dev delivery for carol")).mls!.groupId;
    w.proxy.onDelivery = (user, d) => {
      if (user !== "bob" || d.mls?.kind !== MlsKind.MLS_KIND_APPLICATION) return undefined;
      if (d.conversationId === "dm:alice:bob") return [{ ...d, conversationId: "#ops" }];
      if (d.conversationId === "#ops") return [{ ...d, conversationId: "#dev", mls: { ...d.mls, groupId: devGroup } }];
      return undefined;
    };
    await say(w.c.alice!, "dm:alice:bob", "private to bob");
    await say(w.c.alice!, "#ops", "for #ops only");
    await waitUntil(() => refused(w.c.bob!, "#ops") > refusedOps && refused(w.c.bob!, "#dev") > refusedDev, "both refused at bob", T);
    expect(shown(w.c.bob!, "#ops")).not.toContain("private to bob");
    expect(shown(w.c.bob!, "#dev")).not.toContain("for #ops only");
    expect(w.c.bob!.messages().map((m) => m.text)).not.toContain("private to bob");

    w.proxy.onDelivery = undefined;
    await keepTalking(w, "#ops", ["alice", "bob"], "after re-addressing");
    await keepTalking(w, "#dev", ["carol", "bob"], "after re-addressing");
  });

  it("a message or a commit whose relay-authenticated sender is not its MLS sender is refused and not shown", { timeout: 240_000 }, async () => {
    const w = await world("alice", "bob", "carol", "dave");
    await room(w, "#ops", "alice", "bob", "carol");
    // The relay says carol's next message to bob is alice's.
    w.proxy.onDelivery = (user, d) => (user === "bob" && d.mls?.kind === MlsKind.MLS_KIND_APPLICATION && d.mls.sender === "carol" ? [{ ...d, mls: { ...d.mls, sender: "alice" } }] : undefined);
    const before = refused(w.c.bob!, "#ops");
    await say(w.c.carol!, "#ops", "who said this");
    await w.c.alice!.waitForMessage("who said this", T); // alice got it as the relay authenticated it
    await waitUntil(() => refused(w.c.bob!, "#ops") > before, "refused at bob", T);
    expect(shown(w.c.bob!, "#ops")).not.toContain("who said this");
    expect(w.c.bob!.events.some((e) => e.type === "refused" && e.conversationId === "#ops" && e.from === "alice")).toBe(true);

    // The relay says the commit of dave's join is alice's: bob refuses it (and so stays out of step, until he catches up).
    w.proxy.onDelivery = (user, d) => (user === "bob" && d.mls?.kind === MlsKind.MLS_KIND_COMMIT && d.conversationId === "#ops" ? [{ ...d, mls: { ...d.mls, sender: "alice" } }] : undefined);
    const beforeCommit = refused(w.c.bob!, "#ops");
    const commitsBefore = w.proxy.deliveredTo("bob", isKind(MlsKind.MLS_KIND_COMMIT, "#ops")).length;
    expect((await w.c.dave!.client.joinRoom("#ops")).ok).toBe(true);
    const commit = await waitUntil(() => w.proxy.deliveredTo("bob", isKind(MlsKind.MLS_KIND_COMMIT, "#ops"))[commitsBefore], "dave's join commit for bob", T);
    await processed(w, "bob", commit.seq);
    expect(refused(w.c.bob!, "#ops")).toBe(beforeCommit + 1);
    expect(lines(w.c.bob!, "#ops")).not.toContain("dave joined");
    w.proxy.onDelivery = undefined;
    await keepTalking(w, "#ops", ["alice", "carol", "dave"], "after the forged sender");
  });
});

/** #ops with alice, bob and carol, each having spoken once (so every chain and acknowledgement has started). */
async function keepTalkingIn(w: Awaited<ReturnType<typeof world>>): Promise<void> {
  await room(w, "#ops", "alice", "bob", "carol");
  await keepTalking(w, "#ops", ["alice", "bob", "carol"], "before");
}

describe("drop detection", () => {
  it("the relay drops alice's last DM message to bob: alice sees it lost within one further exchange, bob sees the gap at her next", { timeout: 240_000 }, async () => {
    const w = await world("alice", "bob");
    const dm = "dm:alice:bob";
    await say(w.c.alice!, dm, "hi bob");
    await w.c.bob!.waitForMessage("hi bob", T);
    await say(w.c.bob!, dm, "hi alice");
    await w.c.alice!.waitForMessage("hi alice", T);

    w.proxy.onDelivery = (user, d) => (user === "bob" && d.conversationId === dm && d.mls?.kind === MlsKind.MLS_KIND_APPLICATION && d.mls.sender === "alice" ? [] : undefined);
    const lastId = await say(w.c.alice!, dm, "the last one"); // accepted by the relay, never delivered
    w.proxy.onDelivery = undefined;

    // One further exchange: bob writes twice (the first may have crossed it in transit).
    await say(w.c.bob!, dm, "anyone there?");
    await w.c.alice!.waitForMessage("anyone there?", T);
    await say(w.c.bob!, dm, "still nothing");
    await w.c.alice!.waitForMessage("still nothing", T);
    const lost = await w.c.alice!.waitFor((e) => e.type === "message-state" && e.id === lastId && e.state === "failed", "alice's last message shown lost", T);
    expect(lost).toMatchObject({ failure: expect.stringMatching(/never received/) });
    expect(shown(w.c.bob!, dm)).not.toContain("the last one");
    // Nothing else of alice's is called lost.
    expect(w.c.alice!.events.filter((e) => e.type === "message-state" && e.state === "failed")).toHaveLength(1);

    // They talk on; bob's client shows a gap before alice's next message.
    await say(w.c.alice!, dm, "resending: the last one");
    const next = await w.c.bob!.waitForMessage("resending: the last one", T);
    expect(next.gap).toBe(true);
    await keepTalking(w, dm, ["alice", "bob"], "after the drop");
  });

  it("in a room the relay drops alice's last message for carol only: lost after carol's second message, a gap at alice's next", { timeout: 240_000 }, async () => {
    const w = await world("alice", "bob", "carol");
    await keepTalkingIn(w);
    w.proxy.onDelivery = (user, d) => (user === "carol" && d.mls?.kind === MlsKind.MLS_KIND_APPLICATION && d.mls.sender === "alice" ? [] : undefined);
    const lastId = await say(w.c.alice!, "#ops", "ops: the last one");
    await w.c.bob!.waitForMessage("ops: the last one", T); // bob got it
    w.proxy.onDelivery = undefined;
    await say(w.c.carol!, "#ops", "carol once");
    await w.c.alice!.waitForMessage("carol once", T);
    await say(w.c.carol!, "#ops", "carol twice");
    await w.c.alice!.waitForMessage("carol twice", T);
    await w.c.alice!.waitFor((e) => e.type === "message-state" && e.id === lastId && e.state === "failed", "alice's message shown lost (carol never acknowledged it)", T);
    expect(shown(w.c.carol!, "#ops")).not.toContain("ops: the last one");
    await say(w.c.alice!, "#ops", "ops: after");
    expect((await w.c.carol!.waitForMessage("ops: after", T)).gap).toBe(true);
    expect((await w.c.bob!.waitForMessage("ops: after", T)).gap).toBeFalsy();
    await keepTalking(w, "#ops", ["alice", "bob", "carol"], "after the room drop");
  });
});

describe("Welcomes and ratchet trees", () => {
  it("a Welcome handed to someone nobody added: a notice, nothing joined; the members talk on", { timeout: 240_000 }, async () => {
    const w = await world("alice", "bob", "carol", "dave");
    await room(w, "#ops", "alice", "bob");
    expect((await w.c.alice!.client.invite!("#ops", "carol")).ok).toBe(true);
    const welcome = await deliveryTo(w, "carol", isKind(MlsKind.MLS_KIND_WELCOME, "#ops"), "carol's Welcome");
    await waitUntil(() => lines(w.c.carol!, "#ops").includes("alice added carol"), "carol joined by her Welcome", T);

    // The relay hands carol her Welcome again: ignored (she is a member of that group).
    const [replayed] = w.proxy.inject("carol", welcome);
    await processed(w, "carol", replayed!.seq);
    expect(lines(w.c.carol!, "#ops").filter((l) => l === "alice added carol")).toHaveLength(1);
    expect(notices(w.c.carol!)).toEqual([]);

    // The relay hands carol's Welcome (and the tree beside it) to dave as well.
    const [copy] = w.proxy.inject("dave", welcome);
    await processed(w, "dave", copy!.seq);
    expect(notices(w.c.dave!)).toContain("an invitation to #ops from alice could not be opened; nothing was joined (ask to be added again)");
    expect((await w.c.dave!.client.members("#ops")).ok).toBe(false);
    expect(lines(w.c.dave!, "#ops")).toEqual([]);
    await keepTalking(w, "#ops", ["alice", "bob", "carol"], "after the stray Welcome");
    expect(shown(w.c.dave!, "#ops")).toEqual([]);
  });

  // The joiner names the committer who signed the GroupInfo inside the Welcome, not the relay's
  // `sender` (§12): alice adds carol, the relay says bob did, carol's line still reads "alice added
  // carol" (before the fix it read "bob added carol").
  it("a Welcome the relay attributes to another member: the joiner names who really added her", { timeout: 240_000 }, async () => {
    const w = await world("alice", "bob", "carol");
    await room(w, "#ops", "alice", "bob");
    w.proxy.onDelivery = (user, d) => (user === "carol" && d.mls?.kind === MlsKind.MLS_KIND_WELCOME ? [{ ...d, mls: { ...d.mls, sender: "bob" } }] : undefined);
    expect((await w.c.alice!.client.invite!("#ops", "carol")).ok).toBe(true);
    await waitUntil(() => lines(w.c.carol!, "#ops").length > 0 || notices(w.c.carol!).length > 0, "carol handled her Welcome", T);
    expect(lines(w.c.carol!, "#ops")).toEqual(["alice added carol"]);
  });

  // §12: a label naming the joiner is refused like one naming no member. Only a Welcome signed
  // by another device of mine may come labelled with my name (self-heal, §4.5); before, a client
  // with devices took any Welcome labelled with its own name (found by a red-team review).
  it("a Welcome the relay labels as sent by the joiner: refused, with a notice; nothing joined", { timeout: 240_000 }, async () => {
    const w = await world("alice", "bob");
    await room(w, "#ops", "alice");
    w.proxy.onDelivery = (user, d) => (user === "bob" && d.mls?.kind === MlsKind.MLS_KIND_WELCOME && d.conversationId === "#ops" ? [{ ...d, mls: { ...d.mls, sender: "bob" } }] : undefined);
    expect((await w.c.alice!.client.invite!("#ops", "bob")).ok).toBe(true);
    await waitUntil(() => notices(w.c.bob!).length > 0 || lines(w.c.bob!, "#ops").length > 0, "bob handled his Welcome", T);
    expect(notices(w.c.bob!)).toContain("an invitation to #ops did not come from a member of it; nothing was joined");
    expect(lines(w.c.bob!, "#ops")).toEqual([]);
    expect((await w.c.bob!.client.members("#ops")).ok).toBe(false);
  });

  it("a stale or damaged ratchet tree beside a Welcome is refused by the joiner, with a notice; the members talk on", { timeout: 240_000 }, async () => {
    const w = await world("alice", "bob", "carol", "dave");
    expect((await w.c.alice!.client.joinRoom("#ops")).ok).toBe(true);
    expect((await w.c.alice!.client.invite!("#ops", "bob")).ok).toBe(true);
    const bobsTree = (await deliveryTo(w, "bob", isKind(MlsKind.MLS_KIND_WELCOME, "#ops"), "bob's Welcome")).mls!.ratchetTree;
    await waitUntil(() => lines(w.c.bob!, "#ops").includes("alice added bob"), "bob joined", T);

    // carol's Welcome comes with the tree of an earlier epoch; dave's with one byte changed.
    w.proxy.onDelivery = (user, d) => {
      if (d.mls?.kind !== MlsKind.MLS_KIND_WELCOME) return undefined;
      if (user === "carol") return [{ ...d, mls: { ...d.mls, ratchetTree: bobsTree } }];
      if (user === "dave") {
        const t = Buffer.from(d.mls.ratchetTree);
        t[Math.floor(t.length / 2)]! ^= 0x01;
        return [{ ...d, mls: { ...d.mls, ratchetTree: t } }];
      }
      return undefined;
    };
    expect((await w.c.alice!.client.invite!("#ops", "carol")).ok).toBe(true);
    expect((await w.c.alice!.client.invite!("#ops", "dave")).ok).toBe(true);
    for (const who of ["carol", "dave"]) {
      const c = w.c[who]!;
      await waitUntil(() => notices(c).includes("an invitation to #ops from alice could not be opened; nothing was joined (ask to be added again)"), `${who} told the invitation did not open`, T);
      expect((await c.client.members("#ops")).ok).toBe(false);
      expect(logs.get(who)!.some((l) => l.event === "mls.welcome.refused")).toBe(true);
    }
    w.proxy.onDelivery = undefined;
    await keepTalking(w, "#ops", ["alice", "bob"], "after the bad trees");
    expect(shown(w.c.carol!, "#ops")).toEqual([]);
    expect(shown(w.c.dave!, "#ops")).toEqual([]);
  });
});

describe("KeyPackages", () => {
  it("a withheld KeyPackage: the invite and the first DM fail with a sentence naming the user; nothing is sent", { timeout: 240_000 }, async () => {
    const w = await world("alice", "bob");
    expect((await w.c.alice!.client.joinRoom("#ops")).ok).toBe(true);
    w.proxy.onResponse = (user, f) => {
      if (user !== "alice" || f.$case !== "keyPackageList") return undefined;
      const v = f.value;
      return [{ $case: "keyPackageList", value: { ...v, entries: v.entries.filter((e) => e.username !== "bob"), missing: [...v.missing, "bob"] } }];
    };
    const inv = await w.c.alice!.client.invite!("#ops", "bob");
    expect(!inv.ok && inv.error).toEqual({ kind: "no-key-package", username: "bob" });
    expect(!inv.ok && describeClientError(inv.error)).toMatch(/^bob cannot be added yet: the relay holds no key package for them/);
    const sent = w.c.alice!.client.send("dm:alice:bob", "are you there");
    expect(sent.ok).toBe(true);
    if (sent.ok) expect(await w.c.alice!.waitForState(sent.value.id, "failed", T)).toMatchObject({ error: { kind: "no-key-package", username: "bob" } });
    expect((w.proxy.requests.get("alice") ?? []).some((f) => f.$case === "sendCommit" && f.value.added.includes("bob"))).toBe(false);
    expect(w.proxy.deliveredTo("bob")).toEqual([]);

    // The relay stops lying: the same two work.
    w.proxy.onResponse = undefined;
    expect((await w.c.alice!.client.invite!("#ops", "bob")).ok).toBe(true);
    await keepTalking(w, "#ops", ["alice", "bob"], "once served");
    await keepTalking(w, "dm:alice:bob", ["alice", "bob"], "once served");
  });

  it("someone else's KeyPackage is refused by the adder; a used one makes a Welcome its target cannot open (a notice)", { timeout: 240_000 }, async () => {
    const w = await world("alice", "bob", "carol", "mallory");
    await room(w, "#ops", "alice", "bob");
    const mallorys = await waitUntil(() => (w.proxy.requests.get("mallory") ?? []).flatMap((f) => (f.$case === "publishKeyPackages" ? f.value.oneTime : []))[0], "mallory's KeyPackages");

    // Asked for carol's, the relay serves mallory's: alice's client refuses to add it.
    w.proxy.onResponse = (user, f) => (user === "alice" && f.$case === "keyPackageList"
      ? [{ $case: "keyPackageList", value: { ...f.value, entries: f.value.entries.map((e) => ({ ...e, keyPackage: mallorys })) } }]
      : undefined);
    const forged = await w.c.alice!.client.invite!("#ops", "carol");
    expect(forged.ok).toBe(false);
    const m = await w.c.alice!.client.members("#ops");
    expect(m.ok && [...m.value].sort()).toEqual(["alice", "bob"]);
    expect((w.proxy.requests.get("alice") ?? []).some((f) => f.$case === "sendCommit" && f.value.added.length > 0)).toBe(false);

    // Served honestly, carol is added; the relay keeps the KeyPackage it handed out.
    let used: Buffer | undefined;
    w.proxy.onResponse = (user, f) => {
      if (user === "alice" && f.$case === "keyPackageList") used = f.value.entries.find((e) => e.username === "carol")?.keyPackage;
      return undefined;
    };
    expect((await w.c.alice!.client.invite!("#ops", "carol")).ok).toBe(true);
    await waitUntil(() => lines(w.c.carol!, "#ops").includes("alice added carol"), "carol joined", T);
    expect(used).toBeDefined();

    // bob invites carol to #dev and the relay serves him that used KeyPackage again.
    expect((await w.c.bob!.client.joinRoom("#dev")).ok).toBe(true);
    w.proxy.onResponse = (user, f) => (user === "bob" && f.$case === "keyPackageList"
      ? [{ $case: "keyPackageList", value: { ...f.value, entries: f.value.entries.map((e) => ({ ...e, keyPackage: used!, lastResort: false })) } }]
      : undefined);
    expect((await w.c.bob!.client.invite!("#dev", "carol")).ok).toBe(true);
    await waitUntil(() => notices(w.c.carol!).includes("an invitation to #dev from bob could not be opened; nothing was joined (ask to be added again)"), "carol told", T);
    expect((await w.c.carol!.client.members("#dev")).ok).toBe(false);
    w.proxy.onResponse = undefined;
    await keepTalking(w, "#ops", ["alice", "bob", "carol"], "after the KeyPackage tricks");
  });
});

describe("hidden members", () => {
  it("the relay adds mallory to the room's delivery list: she gets its traffic and reads none; joining by external commit she is shown to everyone", { timeout: 300_000 }, async () => {
    const w = await world("alice", "bob", "carol", "mallory");
    await room(w, "#ops", "alice", "bob");
    // The relay's membership hint grows mallory beside carol (so the Welcome and every later message are queued to her).
    w.proxy.onRequest = (user, f) => (user === "alice" && f.$case === "sendCommit" && f.value.added.includes("carol")
      ? [{ $case: "sendCommit", value: { ...f.value, added: [...f.value.added, "mallory"] } }]
      : undefined);
    expect((await w.c.alice!.client.invite!("#ops", "carol")).ok).toBe(true);
    w.proxy.onRequest = undefined;
    await waitUntil(() => lines(w.c.carol!, "#ops").includes("alice added carol"), "carol joined", T);
    await keepTalking(w, "#ops", ["alice", "bob", "carol"], "with mallory listening");
    await waitUntil(() => w.proxy.deliveredTo("mallory", isKind(MlsKind.MLS_KIND_APPLICATION, "#ops")).length >= 3, "the relay queued the room's messages to mallory", T);
    const queued = w.proxy.deliveredTo("mallory", (d) => d.conversationId === "#ops");
    for (const d of queued) await processed(w, "mallory", d.seq);
    expect(shown(w.c.mallory!, "#ops")).toEqual([]);
    expect(w.c.mallory!.messages().filter((m) => !m.own)).toEqual([]);
    expect(notices(w.c.mallory!)).toContain("an invitation to #ops from alice could not be opened; nothing was joined (ask to be added again)");
    for (const n of ["alice", "bob", "carol"]) {
      const m = await w.c[n]!.client.members("#ops");
      expect(m.ok && [...m.value].sort()).toEqual(["alice", "bob", "carol"]);
    }

    // A relay-made account joining by external commit is a line every member sees.
    expect((await w.c.mallory!.client.joinRoom("#ops")).ok).toBe(true);
    for (const n of ["alice", "bob", "carol"]) await waitUntil(() => lines(w.c[n]!, "#ops").includes("mallory joined"), `${n} sees mallory join`, T);
    await keepTalking(w, "#ops", ["alice", "bob", "carol"], "mallory shown");
  });
});

describe("removed members", () => {
  it("the relay keeps queuing the room to a member alice removed: she reads nothing after her removal", { timeout: 240_000 }, async () => {
    const w = await world("alice", "bob", "carol");
    await room(w, "#ops", "alice", "bob", "carol");
    await keepTalking(w, "#ops", ["alice", "bob", "carol"], "before");
    // alice's removal of carol reaches the relay with an empty hint: carol stays on its delivery list.
    w.proxy.onRequest = (user, f) => (user === "alice" && f.$case === "sendCommit" && f.value.removed.includes("carol")
      ? [{ $case: "sendCommit", value: { ...f.value, removed: [] } }]
      : undefined);
    expect((await w.c.alice!.client.kick!("#ops", "carol")).ok).toBe(true);
    w.proxy.onRequest = undefined;
    await waitUntil(() => lines(w.c.carol!, "#ops").includes("alice removed carol"), "carol sees her removal", T);
    const queuedBefore = w.proxy.deliveredTo("carol", isKind(MlsKind.MLS_KIND_APPLICATION, "#ops")).length;
    await keepTalking(w, "#ops", ["alice", "bob"], "after carol left");
    const later = await waitUntil(() => {
      const all = w.proxy.deliveredTo("carol", isKind(MlsKind.MLS_KIND_APPLICATION, "#ops"));
      return all.length >= queuedBefore + 2 ? all.slice(queuedBefore) : undefined;
    }, "the relay still queues #ops to carol", T);
    for (const d of later) await processed(w, "carol", d.seq);
    expect(shown(w.c.carol!, "#ops").filter((t) => t.startsWith("after carol left"))).toEqual([]);
    expect((await w.c.carol!.client.members("#ops")).ok).toBe(false);
  });
});

/** alice's "first" and "second" to bob, delivered to bob in reverse order; bob has processed both. */
async function swapped(): Promise<Awaited<ReturnType<typeof world>>> {
  const w = await world("alice", "bob");
  const dm = "dm:alice:bob";
  await keepTalking(w, dm, ["alice", "bob"], "before");
  const held: Delivery[] = [];
  w.proxy.onDelivery = (user, d) => {
    if (user !== "bob" || d.mls?.kind !== MlsKind.MLS_KIND_APPLICATION) return undefined;
    held.push(d);
    return [];
  };
  await say(w.c.alice!, dm, "first");
  await say(w.c.alice!, dm, "second");
  await waitUntil(() => held.length === 2, "both held", T);
  w.proxy.onDelivery = undefined;
  for (const d of w.proxy.inject("bob", held[1]!, held[0]!)) await processed(w, "bob", d.seq);
  return w;
}

describe("message order", () => {
  it("two DM messages swapped by the relay: both shown once, the early one flagged as a gap (its predecessor was missing then), the late one not; they talk on", { timeout: 240_000 }, async () => {
    const w = await swapped();
    const got = w.c.bob!.messages("dm:alice:bob").filter((m) => !m.own && (m.text === "first" || m.text === "second"));
    expect(got.map((m) => m.text)).toEqual(["second", "first"]);
    expect(got.map((m) => m.gap === true)).toEqual([true, false]);
    await keepTalking(w, "dm:alice:bob", ["alice", "bob"], "after the swap");
  });

  // After the swap nothing is missing (bob opened both): alice's next message names "second", the
  // newest of her chain, not "first", the last opened; it is no gap (§11.1; before the fix it was).
  it("after a swap, the sender's next message shows no gap (nothing is missing)", { timeout: 240_000 }, async () => {
    const w = await swapped();
    await say(w.c.alice!, "dm:alice:bob", "third");
    expect((await w.c.bob!.waitForMessage("third", T)).gap).toBeFalsy();
  });
});

describe("commit order", () => {
  it("the relay refuses every commit of bob as EPOCH_TAKEN by someone else: his invite ends with a sentence, nothing hangs; served honestly it works", { timeout: 240_000 }, async () => {
    const w = await world("alice", "bob", "carol");
    await room(w, "#ops", "alice", "bob");
    let refusedCommits = 0;
    w.proxy.onRequest = (user, f, s) => {
      if (user !== "bob" || f.$case !== "sendCommit") return undefined;
      refusedCommits++;
      const fr = readFraming(f.value.commit);
      s.toClient({ $case: "commitResult", value: { requestId: f.value.requestId, accepted: false, code: ErrorCode.ERROR_CODE_EPOCH_TAKEN, detail: "the epoch is taken", groupId: Buffer.from(fr.groupId), epoch: fr.epoch, currentEpoch: fr.epoch + 1, winner: "alice" } });
      return [];
    };
    const r = await w.c.bob!.client.invite!("#ops", "carol");
    expect(r.ok).toBe(false);
    expect(JSON.stringify(!r.ok && r.error)).toMatch(/lost the race for its epoch/);
    expect(refusedCommits).toBeGreaterThan(1);
    expect(lines(w.c.bob!, "#ops")).not.toContain("bob added carol");
    expect(w.proxy.deliveredTo("carol", isKind(MlsKind.MLS_KIND_WELCOME, "#ops"))).toEqual([]);
    w.proxy.onRequest = undefined;
    expect((await w.c.bob!.client.invite!("#ops", "carol")).ok).toBe(true);
    // A message alice sends before she processed the add is of the epoch before carol's: carol
    // cannot read it (MLS). The invite no longer waits for a PublishGroupInfo round trip after
    // the commit (the GroupInfo rides in it), so wait for everyone to be in the new epoch.
    await waitUntil(() => ["alice", "carol"].every((u) => lines(w.c[u]!, "#ops").includes("bob added carol")), "alice and carol see the add", T);
    await keepTalking(w, "#ops", ["alice", "bob", "carol"], "after the refusals");
  });

  it("two commits delivered in reverse order: the later one is held until the earlier arrives; lines in order, messages read", { timeout: 300_000 }, async () => {
    const w = await world("alice", "bob", "carol", "dave");
    await room(w, "#ops", "alice", "bob", "carol");
    const held: Delivery[] = [];
    w.proxy.onDelivery = (user, d) => {
      if (user !== "carol" || d.mls?.kind !== MlsKind.MLS_KIND_COMMIT || d.conversationId !== "#ops") return undefined;
      held.push(d);
      return [];
    };
    expect((await w.c.dave!.client.joinRoom("#ops")).ok).toBe(true);
    await waitUntil(() => lines(w.c.alice!, "#ops").includes("dave joined"), "alice sees dave join", T);
    expect((await w.c.alice!.client.kick!("#ops", "dave")).ok).toBe(true);
    await waitUntil(() => held.length === 2, "both commits held back from carol", T);
    await say(w.c.alice!, "#ops", "after both changes");
    const msg = await deliveryTo(w, "carol", (d) => isKind(MlsKind.MLS_KIND_APPLICATION, "#ops")(d) && d.mls!.sender === "alice", "alice's message queued for carol");
    w.proxy.onDelivery = undefined;
    expect(shown(w.c.carol!, "#ops")).toEqual([]); // held: its epoch is two commits ahead

    const again = w.proxy.inject("carol", held[1]!, held[0]!);
    for (const d of again) await processed(w, "carol", d.seq);
    await processed(w, "carol", msg.seq);
    await w.c.carol!.waitForMessage("after both changes", T);
    expect(lines(w.c.carol!, "#ops").slice(-2)).toEqual(["dave joined", "alice removed dave"]);
    expect(refused(w.c.carol!, "#ops")).toBe(0);
    await keepTalking(w, "#ops", ["alice", "bob", "carol"], "after the reordering");
  });
});
