// Rooms against a real relay, protocol v2 (PROTOCOL.md §8.2): a room is an MLS group.
// ListRooms lists every room's group with its member count by the relay's record (never DMs or
// the lobby, never the v1 room tables); Welcome.rooms names the rooms whose group counts me; the
// v1 room requests (JoinRoom, LeaveRoom, ListMembers) are refused with one sentence and no
// RoomEvent is ever sent. Room messages reach every member by the record, the offline one on
// reconnect, across a restart; non-members are refused. RecreateRoom replaces a room's group,
// only for the user who created the current one.
// (The v1 tests of the room tables' join/leave/member-list mechanics are retired: in v2 joining,
// leaving and the member list are MLS commits and the group's tree, tested through the relay in
// test/integration/relay-mls-ds.test.ts, relay-mls-queues.test.ts and mls-chat-client.test.ts.)
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode, MlsKind, SendStatus } from "../../src/gen/securechat/v1/chat.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { MlsGroup } from "../../src/protocol/mls/index.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { ask, lookupOf, makeKeyPackage, mlsPerson, must, sendCommit, type MlsPerson } from "../helpers/mls-ds.js";
import { expectNoDelivery, sendMls, sendMlsAccepted, takeMls, waitForEmptyQueue } from "../helpers/mls-queues.js";
import type { RawSession } from "../helpers/raw-session.js";
import { TestRelay } from "../helpers/relay-harness.js";

let alice: PrivateIdentity;
let bob: PrivateIdentity;
let carol: PrivateIdentity;
let relay: TestRelay;
let nextRequestId = 1;

beforeAll(async () => {
  [alice, bob, carol] = await Promise.all([fixtureIdentity("alice"), fixtureIdentity("bob"), fixtureIdentity("carol")]);
});

afterEach(async () => {
  await relay?.cleanup();
});

const text = (s: string): Buffer => Buffer.from(s, "utf8");

function request(s: RawSession, frame: Parameters<RawSession["write"]>[0]): number {
  const requestId = nextRequestId++;
  s.write({ ...frame, value: { ...frame.value, requestId } } as Parameters<RawSession["write"]>[0]);
  return requestId;
}

async function listRooms(s: RawSession) {
  const id = request(s, { $case: "listRooms", value: { requestId: 0 } });
  return s.next("roomList", (l) => l.requestId === id);
}

async function publishGroupInfo(s: RawSession, g: MlsGroup): Promise<void> {
  await must(s, { $case: "publishGroupInfo", value: { requestId: 0, groupInfo: Buffer.from(await g.groupInfo()) } }, "groupInfoResult");
}

/** `creator` makes the conversation's group on the relay and adds `users` (KeyPackages published by them, claimed here) in one commit. */
async function createAndAdd(s: RawSession, creator: MlsPerson, conversationId: string, users: { s: RawSession; p: MlsPerson }[]) {
  for (const u of users) await must(u.s, { $case: "publishKeyPackages", value: { requestId: 0, oneTime: [await makeKeyPackage(u.p)], lastResort: Buffer.alloc(0) } }, "keyPackageStatus");
  const g = await MlsGroup.create(creator.client, conversationId);
  await publishGroupInfo(s, g);
  const names = users.map((u) => u.p.username);
  if (names.length === 0) return { g, members: [] as MlsGroup[] };
  const kps = await must(s, { $case: "claimKeyPackages", value: { requestId: 0, usernames: names, deviceIds: [] } }, "keyPackageList");
  const add = await g.addMembers(kps.entries.map((e) => e.keyPackage), { expectUsernames: kps.entries.map((e) => e.username) });
  expect(await sendCommit(s, add.commit, undefined, { added: names, welcome: add.welcome, ratchetTree: add.ratchetTree })).toMatchObject({ accepted: true });
  g.confirmCommit();
  await publishGroupInfo(s, g);
  const members = [];
  for (const u of users) members.push((await MlsGroup.joinFromWelcome(u.p.client, add.welcome!, add.ratchetTree!, lookupOf(u.p))).group);
  return { g, members };
}

/** A room in the v1 room tables, written beside the running relay (what an old data dir holds). */
function v1Room(room: string, username: string): void {
  const db = new DatabaseSync(join(relay.dataDir, "relay.db"));
  try {
    db.prepare("INSERT OR IGNORE INTO rooms (room, created_at_ms) VALUES (?, ?)").run(room, Date.now());
    db.prepare("INSERT OR IGNORE INTO room_members (room, username, joined_at_ms) VALUES (?, ?, ?)").run(room, username, Date.now());
  } finally {
    db.close();
  }
}

describe("relay rooms (protocol v2: rooms are MLS groups)", () => {
  it("lists every room's group with its member count to anyone, my rooms with members; never DMs, the lobby or the v1 room tables", async () => {
    relay = await TestRelay.start();
    const [pa, pb, pc] = [await mlsPerson(alice), await mlsPerson(bob), await mlsPerson(carol)];
    const a = await relay.connect(alice);
    const b = await relay.connect(bob);
    const c = await relay.connect(carol);
    expect(await listRooms(c)).toMatchObject({ joined: [], all: [] });

    const ops = await createAndAdd(a, pa, "#ops", [{ s: b, p: pb }]);
    await createAndAdd(a, pa, "dm:alice:carol", [{ s: c, p: pc }]);
    await createAndAdd(b, pb, "lobby", []);
    v1Room("#legacy", "carol");

    // carol is in no room: every room shows, with its size; hers are none. No DM, no lobby, no v1 room.
    expect(await listRooms(c)).toMatchObject({ joined: [], all: [{ room: "#ops", memberCount: 2 }] });
    expect((await listRooms(a)).joined).toEqual([{ room: "#ops", members: ["alice", "bob"] }]);
    await createAndAdd(c, pc, "#dev", []);
    // The biggest first, then by name (§8.2).
    expect((await listRooms(b)).all).toEqual([{ room: "#ops", memberCount: 2 }, { room: "#dev", memberCount: 1 }]);

    // bob is removed (the creator's commit names him in the hint): the count follows the record.
    const rm = await ops.g.removeMembers(["bob"]);
    expect(await sendCommit(a, rm.commit, undefined, { removed: ["bob"] })).toMatchObject({ accepted: true });
    ops.g.confirmCommit();
    expect((await listRooms(c)).all).toEqual([{ room: "#dev", memberCount: 1 }, { room: "#ops", memberCount: 1 }]);
    expect((await listRooms(b)).joined).toEqual([]);

    // Welcome.rooms on a v2 session: the rooms whose group counts me by the relay's record, never the v1 tables.
    await relay.disconnect(c, "carol");
    const c2 = await relay.connect(carol);
    expect(c2.welcome.rooms).toEqual([{ room: "#dev", members: ["carol"] }]);
    await relay.disconnect(a, "alice");
    const a2 = await relay.connect(alice);
    expect(a2.welcome.rooms).toEqual([{ room: "#ops", members: ["alice"] }]);
    expect([b, c2, a2].some((s) => s.has("roomEvent"))).toBe(false);
  });

  it("refuses JoinRoom, LeaveRoom and ListMembers on a v2 session with one sentence each; the session goes on and no RoomEvent is sent", async () => {
    relay = await TestRelay.start();
    const a = await relay.connect(alice);
    const b = await relay.connect(bob);
    const frames = [
      { $case: "joinRoom", value: { requestId: 0, room: "#ops" } },
      { $case: "leaveRoom", value: { requestId: 0, room: "#ops" } },
      { $case: "listMembers", value: { requestId: 0, room: "#ops" } },
      { $case: "joinRoom", value: { requestId: 0, room: "../etc" } },
    ] as const;
    for (const f of frames) {
      const id = request(a, f);
      const err = await a.next("error", (e) => e.requestId === id);
      expect(err.code).toBe(ErrorCode.ERROR_CODE_BAD_FRAME);
      expect(err.detail).toMatch(/^this session speaks protocol v2: rooms are MLS groups, joined by external commit and left by a leave proposal, and their members are read from the group \((JoinRoom|LeaveRoom|ListMembers) is protocol v1\)$/);
    }
    // Nothing was joined: no room, no v1 table row, no event to anyone.
    expect(await listRooms(b)).toMatchObject({ joined: [], all: [] });
    expect(relay.events("room.join")).toHaveLength(0);
    await a.barrier();
    await b.barrier();
    expect(a.has("roomEvent") || b.has("roomEvent")).toBe(false);
  });

  it("delivers a room message to every member, the offline one on reconnect, and keeps membership across restarts", async () => {
    relay = await TestRelay.start();
    const [pa, pb, pc] = [await mlsPerson(alice), await mlsPerson(bob), await mlsPerson(carol)];
    const a = await relay.connect(alice);
    const b = await relay.connect(bob);
    const c = await relay.connect(carol);
    const dev = await createAndAdd(a, pa, "#dev", [{ s: b, p: pb }, { s: c, p: pc }]);
    const [gb, gc] = dev.members as [MlsGroup, MlsGroup];
    await takeMls(b, 1); // the Welcome
    await takeMls(c, 1);
    await waitForEmptyQueue(relay, "carol"); // her ack of the Welcome is stored
    await relay.disconnect(c, "carol");

    const r = await sendMlsAccepted(a, await dev.g.encrypt(text("standup in 5")));
    expect(r.queuedFor).toEqual(["carol"]);
    const [db] = await takeMls(b, 1);
    expect(db!.conversationId).toBe("#dev");
    expect(db!.mls).toMatchObject({ kind: MlsKind.MLS_KIND_APPLICATION, sender: "alice" });
    const opened = await gb.process(db!.mls.mls);
    expect(opened.kind === "application" && opened.plaintext.toString("utf8")).toBe("standup in 5");

    await relay.restart();
    const c2 = await relay.connect(carol);
    expect(c2.welcome.rooms).toEqual([{ room: "#dev", members: ["alice", "bob", "carol"] }]);
    expect(c2.welcome.queued).toBe(1);
    const [dc] = await takeMls(c2, 1);
    const got = await gc.process(dc!.mls.mls);
    expect(got.kind === "application" && got.plaintext.toString("utf8")).toBe("standup in 5");
    expect((await listRooms(c2)).all).toEqual([{ room: "#dev", memberCount: 3 }]);
  });

  it("refuses room messages from non-members (their own or a member's bytes) and for unknown groups; a non-member receives nothing", async () => {
    relay = await TestRelay.start();
    const [pa, pb, pc] = [await mlsPerson(alice), await mlsPerson(bob), await mlsPerson(carol)];
    const a = await relay.connect(alice);
    const b = await relay.connect(bob);
    const c = await relay.connect(carol);
    const core = await createAndAdd(a, pa, "#core", [{ s: b, p: pb }]);
    const [gb] = core.members as [MlsGroup];
    await takeMls(b, 1);

    // carol replays a member's message as her own: the record says she is not a member.
    const bytes = await core.g.encrypt(text("members only"));
    const replay = await sendMls(c, bytes);
    expect(replay).toMatchObject({ status: SendStatus.SEND_STATUS_REFUSED, code: ErrorCode.ERROR_CODE_NOT_A_MEMBER });
    expect(replay.detail).toMatch(/you are not a member of the group of #core/);
    // A group of her own the relay does not keep (never registered): unknown.
    const ghost = await MlsGroup.create(pc.client, "#ghost");
    const unknown = await sendMls(c, await ghost.encrypt(text("anyone?")));
    expect(unknown).toMatchObject({ status: SendStatus.SEND_STATUS_REFUSED, code: ErrorCode.ERROR_CODE_UNKNOWN_GROUP });

    await sendMlsAccepted(a, bytes);
    const [d] = await takeMls(b, 1);
    const m = await gb.process(d!.mls.mls);
    expect(m.kind === "application" && m.plaintext.toString("utf8")).toBe("members only");
    await expectNoDelivery(c);
  });

  it("RecreateRoom: the creator of a room's group replaces it with a new group; anyone else, a DM and the lobby are refused", async () => {
    relay = await TestRelay.start();
    const [pa, pb, pc] = [await mlsPerson(alice), await mlsPerson(bob), await mlsPerson(carol)];
    const a = await relay.connect(alice);
    const b = await relay.connect(bob);
    const c = await relay.connect(carol);
    const ops = await createAndAdd(a, pa, "#ops", [{ s: b, p: pb }, { s: c, p: pc }]);
    const oldId = Buffer.from(ops.g.groupId);

    // bob, a member but not the creator, cannot move the room (his own new group for #ops).
    const bobs = await MlsGroup.create(pb.client, "#ops");
    const byBob = await ask(b, { $case: "recreateRoom", value: { requestId: 0, groupInfo: Buffer.from(await bobs.groupInfo()) } }, "groupInfoResult");
    expect(byBob).toMatchObject({ ok: false, value: { code: ErrorCode.ERROR_CODE_FORGED_SENDER, detail: "only alice, who created the group of #ops, may re-create it" } });
    // A DM and the lobby have no creator to re-create them.
    const dm = await MlsGroup.create(pa.client, "dm:alice:bob");
    const lobby = await MlsGroup.create(pa.client, "lobby");
    for (const g of [dm, lobby]) {
      const r = await ask(a, { $case: "recreateRoom", value: { requestId: 0, groupInfo: Buffer.from(await g.groupInfo()) } }, "groupInfoResult");
      expect(r).toMatchObject({ ok: false, value: { code: ErrorCode.ERROR_CODE_BAD_CONVERSATION } });
      expect(!r.ok && r.value.detail).toMatch(/^only a room's group can be re-created, not the group of (a direct conversation|the lobby)$/);
    }
    expect((await must(c, { $case: "fetchGroupInfo", value: { requestId: 0, groupId: Buffer.alloc(0), conversationId: "#ops" } }, "groupInfoResult")).groupId).toEqual(oldId);

    // alice re-creates: the new group is the room's, she its only member by the record; the old one is gone.
    const fresh = await MlsGroup.create(pa.client, "#ops");
    const frame = { $case: "recreateRoom", value: { requestId: 0, groupInfo: Buffer.from(await fresh.groupInfo()) } } as const;
    const done = await must(a, frame, "groupInfoResult");
    expect(Buffer.from(done.groupId).equals(Buffer.from(fresh.groupId))).toBe(true);
    expect(done).toMatchObject({ groupInfoEpoch: 0, currentEpoch: 0 });
    expect(relay.events("mls.group.recreated")).toHaveLength(1);
    // Her client lost the answer and asks again: answered again, nothing replaced twice.
    expect(Buffer.from((await must(a, frame, "groupInfoResult")).groupId).equals(Buffer.from(fresh.groupId))).toBe(true);
    expect(relay.events("mls.group.recreated")).toHaveLength(1);
    expect((await listRooms(c)).all).toEqual([{ room: "#ops", memberCount: 1 }]);
    const byOld = await ask(c, { $case: "fetchGroupInfo", value: { requestId: 0, groupId: oldId, conversationId: "" } }, "groupInfoResult");
    expect(byOld).toMatchObject({ ok: false, value: { code: ErrorCode.ERROR_CODE_UNKNOWN_GROUP } });
    // The old group takes nothing more: neither messages nor commits.
    expect(await sendMls(b, await ops.members[0]!.encrypt(text("still here?")))).toMatchObject({ status: SendStatus.SEND_STATUS_REFUSED, code: ErrorCode.ERROR_CODE_UNKNOWN_GROUP });
    const upd = await ops.members[1]!.selfUpdate();
    expect(await sendCommit(c, upd.commit)).toMatchObject({ accepted: false, code: ErrorCode.ERROR_CODE_UNKNOWN_GROUP });

    // The creator of the NEW group is alice: bob still cannot replace it, and it survives a restart.
    await relay.restart();
    const b2 = await relay.connect(bob);
    const again = await ask(b2, { $case: "recreateRoom", value: { requestId: 0, groupInfo: Buffer.from(await bobs.groupInfo()) } }, "groupInfoResult");
    expect(again).toMatchObject({ ok: false, value: { code: ErrorCode.ERROR_CODE_FORGED_SENDER } });
    expect((await listRooms(b2)).all).toEqual([{ room: "#ops", memberCount: 1 }]);
  });
});
