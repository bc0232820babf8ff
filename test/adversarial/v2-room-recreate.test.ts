// Recovery from a commit refused by policy (PROTOCOL.md §7.3, §8.2, §17),
// through a real relay with real v2 ChatClients (the operator's proxy in front, to play the hostile
// relay where a case needs one):
// - a hostile member (mallory, a modified client: she commits a removal the room's rules forbid)
//   gets her commit ordered by the relay; the honest members refuse it and would be stuck on their
//   epoch; the room's creator re-creates the room at once (a new group, the old members minus
//   mallory) and everyone honest talks again in it, while mallory reads nothing of it;
// - when the creator has left, nobody can re-create it: the members are told so;
// - a hostile relay handing a member a Welcome into another group for the room is refused by the
//   member: a group naming another creator, and a group naming the right creator but whose
//   Welcome someone else signed. The member stays in its group and talks on.
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { MlsKind, RoomEventKind, type Delivery } from "../../src/gen/securechat/v1/chat.js";
import { createMlsClient, generateKeyPackage, MlsGroup, restoreKeyPackage } from "../../src/protocol/mls/index.js";
import type { Outcome } from "../../src/client/types.js";
import type { TestClient } from "../helpers/client-harness.js";
import { fixtureIdentity } from "../helpers/identities.js";
import {
  cleanupWorlds, deliveryTo, isKind, keepTalking, lines, loadIdentities, logged, notices, processed, room, shown, T, world, type World,
} from "../helpers/v2-hostile-world.js";
import { waitUntil } from "../helpers/wait.js";

beforeAll(loadIdentities);
afterEach(cleanupWorlds);

interface EngineInside {
  readonly s: { run<R>(f: () => Promise<R>): Promise<R> };
  readonly c: {
    commitChange(conv: string, make: (g: MlsGroup) => Promise<unknown>, hint: { added: string[]; removed: string[] }, line: undefined, again: () => boolean): Promise<Outcome>;
  };
}

/** The modified client: mallory's own engine commits a removal the room's rules forbid (her client's /kick would refuse it). */
async function forbiddenRemoval(c: TestClient, conv: string, victim: string): Promise<void> {
  const engine = (c.client as unknown as { mls: { engine: EngineInside } }).mls.engine;
  const r = await engine.s.run(() => engine.c.commitChange(conv, (g) => g.removeMembers([victim]), { added: [], removed: [victim] }, undefined, () => false));
  expect(r).toEqual({ ok: true, value: undefined }); // the relay ordered it: it cannot read commits
}

const members = async (c: TestClient, conv: string): Promise<string[]> => {
  const m = await c.client.members(conv);
  return m.ok ? [...m.value].sort() : [];
};

/** One of bob's one-time KeyPackages as his client published it (nobody claimed any in these tests: rooms are joined by external commit). */
function bobsKeyPackage(w: World): Uint8Array {
  for (const f of w.proxy.requests.get("bob") ?? []) {
    if (f.$case === "publishKeyPackages" && f.value.oneTime.length > 0) return f.value.oneTime[f.value.oneTime.length - 1]!;
  }
  throw new Error("bob published no one-time KeyPackage");
}

/** A Welcome delivery for bob, as a hostile relay would hand it, into `g` after `g` adds bob. */
async function welcomeForBob(w: World, g: MlsGroup, sender: string): Promise<Delivery> {
  const add = await g.addMembers([bobsKeyPackage(w)], { expectUsernames: ["bob"] });
  g.confirmCommit();
  return {
    seq: 0, conversationId: "#ops", relayTimeMs: Date.now(),
    mls: { kind: MlsKind.MLS_KIND_WELCOME, groupId: Buffer.from(g.groupId), sender, mls: Buffer.from(add.welcome!), ratchetTree: Buffer.from(add.ratchetTree!), epoch: 0, senderDevice: "" },
  } as Delivery;
}

describe("a commit refused by policy: the room's creator re-creates the room", () => {
  it("mallory removes carol against the rules; alice re-creates #ops without mallory; alice, bob and carol talk again, mallory reads nothing", { timeout: 300_000 }, async () => {
    const w = await world("alice", "bob", "carol", "mallory");
    await room(w, "#ops", "alice", "bob", "carol", "mallory");

    await forbiddenRemoval(w.c.mallory!, "#ops", "carol");
    for (const u of ["alice", "bob", "carol"]) {
      await waitUntil(() => lines(w.c[u]!, "#ops").includes("mallory refused carol"), `${u} refused mallory's change`, T);
    }
    const welcome = await deliveryTo(w, "bob", isKind(MlsKind.MLS_KIND_WELCOME, "#ops"), "bob's Welcome into the new group");
    const newGroup = Buffer.from(welcome.mls!.groupId);
    for (const u of ["bob", "carol"]) {
      await waitUntil(() => notices(w.c[u]!).includes("alice re-created #ops after a change by mallory was refused"), `${u} follows alice into the new #ops`, T);
    }
    await waitUntil(() => notices(w.c.alice!).includes("you re-created #ops after a change by mallory was refused; bob, carol are in it again"), "alice says what she did", T);
    // Before the Welcome came, the others were told who re-creates the room.
    expect(notices(w.c.bob!)).toContain("#ops cannot go on in this group after mallory's change was refused; alice, who created it, re-creates it (at once, or when next online)");
    for (const u of ["alice", "bob", "carol"]) expect(await members(w.c[u]!, "#ops")).toEqual(["alice", "bob", "carol"]);

    await keepTalking(w, "#ops", ["alice", "bob", "carol"], "after the re-creation");
    // mallory: nothing of the new group was queued for her, and she read nothing said in it.
    expect(w.proxy.deliveredTo("mallory", (d) => d.mls !== undefined && Buffer.from(d.mls.groupId).equals(newGroup))).toEqual([]);
    expect(shown(w.c.mallory!, "#ops").filter((t) => t.startsWith("after the re-creation"))).toEqual([]);
    // The room on the relay is the new group: three members by its record.
    const listed = await w.c.carol!.client.listRooms();
    expect(listed.ok && listed.value.all).toEqual([{ room: "#ops", memberCount: 3 }]);
    expect(w.relay.events("mls.group.recreated")).toHaveLength(1);
  });

  it("the creator offline when it happens re-creates the room once back; a member who was offline follows too", { timeout: 300_000 }, async () => {
    const w = await world("alice", "bob", "carol", "mallory");
    await room(w, "#ops", "alice", "bob", "carol", "mallory");
    await w.c.alice!.close();
    await w.c.carol!.close();

    await forbiddenRemoval(w.c.mallory!, "#ops", "bob");
    await waitUntil(() => lines(w.c.bob!, "#ops").includes("mallory refused bob"), "bob refused mallory's change", T);
    expect(notices(w.c.bob!)).toContain("#ops cannot go on in this group after mallory's change was refused; alice, who created it, re-creates it (at once, or when next online)");

    const alice = await w.restart("alice");
    await waitUntil(() => notices(alice).some((n) => n.startsWith("you re-created #ops after a change by mallory was refused")), "alice re-creates once back", T);
    await waitUntil(() => notices(w.c.bob!).includes("alice re-created #ops after a change by mallory was refused"), "bob follows", T);
    const carol = await w.restart("carol");
    await waitUntil(() => notices(carol).includes("alice re-created #ops after a change by mallory was refused"), "carol, back, follows", T);
    await keepTalking(w, "#ops", ["alice", "bob", "carol"], "all back");
    expect(shown(w.c.mallory!, "#ops").filter((t) => t.startsWith("all back"))).toEqual([]);
  });

  it("after the creator left, nobody can re-create the room: the members are told so, and a new room is the way on", { timeout: 300_000 }, async () => {
    const w = await world("alice", "bob", "carol", "mallory");
    await room(w, "#ops", "alice", "bob", "carol", "mallory");
    expect((await w.c.alice!.client.leaveRoom("#ops")).ok).toBe(true);
    await waitUntil(async () => (await members(w.c.bob!, "#ops")).length === 3, "alice's leave committed", T);

    await forbiddenRemoval(w.c.mallory!, "#ops", "carol");
    const told = "#ops cannot go on after mallory's change was refused, and alice, who created it, is no longer in it, so nobody can re-create it: start a new room (/join #another-name) with the members you trust";
    for (const u of ["bob", "carol"]) await waitUntil(() => notices(w.c[u]!).includes(told), `${u} is told`, T);
    expect(w.relay.events("mls.group.recreated")).toHaveLength(0);
  });
});

describe("only the room's creator can move a room to a new group (a hostile relay or member cannot)", () => {
  it("a Welcome into a group for #ops that names another creator (mallory's own) is refused; bob stays and talks on", { timeout: 300_000 }, async () => {
    const w = await world("alice", "bob", "mallory");
    await room(w, "#ops", "alice", "bob", "mallory");
    const mallory = await createMlsClient({ username: "mallory", sigPrivate: (await fixtureIdentity("mallory")).sigPrivate });
    const hers = await MlsGroup.create(mallory, "#ops");
    const [d] = w.proxy.inject("bob", await welcomeForBob(w, hers, "mallory"));
    await processed(w, "bob", d!.seq);

    expect(notices(w.c.bob!)).toContain("mallory invited you to another group for #ops, but only alice, who created #ops, may re-create it; you stay in the current one");
    expect(logged("bob", "mls.welcome.recreate_refused")).toBe(1);
    expect(await members(w.c.bob!, "#ops")).toEqual(["alice", "bob", "mallory"]);
    await keepTalking(w, "#ops", ["alice", "bob"], "still the same room");
    // After a restart too: the group kept on disk is the real one.
    const bob = await w.restart("bob");
    expect(await members(bob, "#ops")).toEqual(["alice", "bob", "mallory"]);
    await keepTalking(w, "#ops", ["alice", "bob"], "after bob's restart");
  });

  it("a Welcome into a group that names alice as creator but that mallory signed is refused; bob stays and talks on", { timeout: 300_000 }, async () => {
    const w = await world("alice", "bob", "mallory");
    await room(w, "#ops", "alice", "bob", "mallory");
    // A group whose creator extension names alice (her name and identity key: anyone can write
    // that much), with mallory in it; mallory adds bob, so the Welcome is signed by mallory.
    const aliceId = await fixtureIdentity("alice");
    const forgedCreator = await createMlsClient({ username: "alice", sigPrivate: aliceId.sigPrivate });
    const mallory = await createMlsClient({ username: "mallory", sigPrivate: (await fixtureIdentity("mallory")).sigPrivate });
    const g = await MlsGroup.create(forgedCreator, "#ops");
    const kp = await generateKeyPackage(mallory);
    const stored = await restoreKeyPackage(mallory, kp.stored);
    const add = await g.addMembers([kp.keyPackage], { expectUsernames: ["mallory"] });
    g.confirmCommit();
    const hers = (await MlsGroup.joinFromWelcome(mallory, add.welcome!, add.ratchetTree!, () => stored)).group;
    expect(hers.creator()?.username).toBe("alice");
    const [d] = w.proxy.inject("bob", await welcomeForBob(w, hers, "mallory"));
    await processed(w, "bob", d!.seq);

    expect(notices(w.c.bob!)).toContain("mallory invited you to another group for #ops, but only alice, who created #ops, may re-create it; you stay in the current one");
    expect(logged("bob", "mls.welcome.recreate_refused")).toBe(1);
    expect(await members(w.c.bob!, "#ops")).toEqual(["alice", "bob", "mallory"]);
    await keepTalking(w, "#ops", ["alice", "bob"], "still the same room");
  });

  it("a member who is not the creator cannot make the relay replace the room's group", { timeout: 300_000 }, async () => {
    const w = await world("alice", "bob", "mallory");
    await room(w, "#ops", "alice", "bob", "mallory");
    const mallory = await createMlsClient({ username: "mallory", sigPrivate: (await fixtureIdentity("mallory")).sigPrivate });
    const hers = await MlsGroup.create(mallory, "#ops");
    const engine = (w.c.mallory!.client as unknown as { mls: { engine: { s: { d: { ds: { recreateRoom(gi: Uint8Array): Promise<{ ok: boolean; code?: string; detail?: string }> } } } } } }).mls.engine;
    const r = await engine.s.d.ds.recreateRoom(await hers.groupInfo());
    expect(r).toMatchObject({ ok: false, code: "FORGED_SENDER", detail: "only alice, who created the group of #ops, may re-create it" });
    expect(w.relay.events("mls.group.recreated")).toHaveLength(0);
    await keepTalking(w, "#ops", ["alice", "bob", "mallory"], "nothing moved");
  });

  it("a relay's RoomEvent and Welcome.rooms are not membership on a v2 client: no line, no member, no room added", { timeout: 300_000 }, async () => {
    const w = await world("alice", "bob");
    await room(w, "#ops", "alice", "bob");
    // The relay lists eve in #ops and a #secret room in bob's next Welcome, then says eve joined #ops.
    w.proxy.onResponse = (user, f) => (user === "bob" && f.$case === "welcome"
      ? [{ $case: "welcome", value: { ...f.value, rooms: [{ room: "#ops", members: ["alice", "bob", "eve"] }, { room: "#secret", members: ["bob", "eve"] }] } }]
      : undefined);
    const bob = await w.restart("bob");
    w.proxy.sessionsOf("bob")[0]!.toClient({ $case: "roomEvent", value: { room: "#ops", kind: RoomEventKind.ROOM_EVENT_KIND_JOINED, username: "eve", members: ["alice", "bob", "eve"], atMs: Date.now() } });
    await keepTalking(w, "#ops", ["alice", "bob"], "after the relay's word"); // bob has handled the frames before these
    expect(bob.events.filter((e) => e.type === "room-event")).toEqual([]);
    const views = bob.events.flatMap((e) => (e.type === "rooms" ? [e.rooms] : []));
    for (const v of views) for (const r of v) expect(r).toEqual({ room: "#ops", members: ["alice", "bob"] }); // (empty while the groups load at start)
    expect(await members(bob, "#ops")).toEqual(["alice", "bob"]);
    expect(lines(bob, "#ops").some((l) => l.includes("eve"))).toBe(false);
  });
});
