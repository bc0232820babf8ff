// Rooms against a real relay: join (creating), leave, list, members, the room rules of §9, and
// room messages reaching every member, offline ones when they come back. Membership is durable.
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode, RoomEventKind, SendStatus } from "../../src/gen/securechat/v1/chat.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { openDelivery, seal, type RawSession } from "../helpers/raw-session.js";
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

const JOINED = RoomEventKind.ROOM_EVENT_KIND_JOINED;
const LEFT = RoomEventKind.ROOM_EVENT_KIND_LEFT;

/** Joins and waits for the relay's confirmation (the RoomEvent naming me). */
async function join(s: RawSession, me: string, room: string): Promise<string[]> {
  s.write({ $case: "joinRoom", value: { requestId: nextRequestId++, room } });
  const ev = await s.next("roomEvent", (e) => e.room === room && e.username === me && e.kind === JOINED);
  return ev.members;
}

function request(s: RawSession, frame: Parameters<RawSession["write"]>[0]): number {
  const requestId = nextRequestId++;
  s.write({ ...frame, value: { ...frame.value, requestId } } as Parameters<RawSession["write"]>[0]);
  return requestId;
}

describe("relay rooms", () => {
  it("joins, lists, shows members to members only, and leaves, with events to the online members", async () => {
    relay = await TestRelay.start();
    const a = await relay.connect(alice);
    const b = await relay.connect(bob);
    const c = await relay.connect(carol);

    expect(await join(a, "alice", "#ops")).toEqual(["alice"]);
    expect(await join(b, "bob", "#ops")).toEqual(["alice", "bob"]);
    const seenByAlice = await a.next("roomEvent", (e) => e.username === "bob");
    expect(seenByAlice).toMatchObject({ room: "#ops", kind: JOINED, members: ["alice", "bob"] });
    expect(seenByAlice.atMs).toBeGreaterThan(0);

    const listId = request(a, { $case: "listMembers", value: { requestId: 0, room: "#ops" } });
    expect(await a.next("memberList", (m) => m.requestId === listId)).toMatchObject({ room: "#ops", members: ["alice", "bob"] });

    // carol is not a member: no member list for her, but the room shows in the list of all rooms.
    const deniedId = request(c, { $case: "listMembers", value: { requestId: 0, room: "#ops" } });
    expect(await c.next("error", (e) => e.requestId === deniedId))
      .toMatchObject({ code: ErrorCode.ERROR_CODE_NOT_A_MEMBER, detail: "you are not a member of #ops" });
    const roomsId = request(c, { $case: "listRooms", value: { requestId: 0 } });
    expect(await c.next("roomList", (l) => l.requestId === roomsId)).toMatchObject({ joined: [], all: [{ room: "#ops", memberCount: 2 }] });
    const aliceRoomsId = request(a, { $case: "listRooms", value: { requestId: 0 } });
    expect((await a.next("roomList", (l) => l.requestId === aliceRoomsId)).joined).toEqual([{ room: "#ops", members: ["alice", "bob"] }]);
    expect(c.has("roomEvent")).toBe(false); // membership events go to members only

    // Joining again only confirms, to the joiner alone.
    expect(await join(a, "alice", "#ops")).toEqual(["alice", "bob"]);

    request(b, { $case: "leaveRoom", value: { requestId: 0, room: "#ops" } });
    expect(await b.next("roomEvent", (e) => e.kind === LEFT)).toMatchObject({ room: "#ops", username: "bob", members: ["alice"] });
    expect(await a.next("roomEvent", (e) => e.kind === LEFT)).toMatchObject({ room: "#ops", username: "bob", members: ["alice"] });
    const againId = request(b, { $case: "leaveRoom", value: { requestId: 0, room: "#ops" } });
    expect((await b.next("error", (e) => e.requestId === againId)).code).toBe(ErrorCode.ERROR_CODE_NOT_A_MEMBER);

    // The last member leaving removes the room.
    request(a, { $case: "leaveRoom", value: { requestId: 0, room: "#ops" } });
    await a.next("roomEvent", (e) => e.kind === LEFT && e.username === "alice");
    const emptyId = request(c, { $case: "listRooms", value: { requestId: 0 } });
    expect((await c.next("roomList", (l) => l.requestId === emptyId)).all).toEqual([]);
    expect(relay.events("room.join").length).toBe(2);
    expect(relay.events("room.leave").length).toBe(2);
  });

  it("refuses invalid room names with BAD_CONVERSATION and a room beyond the recipient limit", async () => {
    relay = await TestRelay.start({ limits: { maxRecipients: 2 } });
    const a = await relay.connect(alice);
    const b = await relay.connect(bob);
    const c = await relay.connect(carol);
    for (const room of ["ops", "#", "#../etc", "#Ops", `#${"x".repeat(33)}`, "lobby"]) {
      const id = request(a, { $case: "joinRoom", value: { requestId: 0, room } });
      const err = await a.next("error", (e) => e.requestId === id);
      expect({ room, code: err.code }).toEqual({ room, code: ErrorCode.ERROR_CODE_BAD_CONVERSATION });
      expect(err.detail).toMatch(/room name/);
    }
    await join(a, "alice", "#pair");
    await join(b, "bob", "#pair");
    const id = request(c, { $case: "joinRoom", value: { requestId: 0, room: "#pair" } });
    expect(await c.next("error", (e) => e.requestId === id))
      .toMatchObject({ code: ErrorCode.ERROR_CODE_TOO_MANY_RECIPIENTS, detail: expect.stringMatching(/#pair is full/) });
  });

  it("delivers a room message to every member, the offline one on reconnect, and keeps membership across restarts", async () => {
    relay = await TestRelay.start();
    const a = await relay.connect(alice);
    const b = await relay.connect(bob);
    const c = await relay.connect(carol);
    await join(a, "alice", "#dev");
    await join(b, "bob", "#dev");
    await join(c, "carol", "#dev");
    await relay.disconnect(c, "carol");

    const r = await a.sendAccepted(seal(alice, "#dev", [bob, carol], "standup in 5"));
    expect(r.queuedFor).toEqual(["carol"]);
    const [db] = await b.deliveries(1);
    expect(db!.conversationId).toBe("#dev");
    expect(openDelivery(db!, bob, [alice]).body.text).toBe("standup in 5");

    await relay.restart();
    const c2 = await relay.connect(carol);
    expect(c2.welcome.rooms).toEqual([{ room: "#dev", members: ["alice", "bob", "carol"] }]);
    expect(c2.welcome.queued).toBe(1);
    const [dc] = await c2.deliveries(1);
    expect(openDelivery(dc!, carol, [alice]).body.text).toBe("standup in 5");
  });

  it("refuses room messages from non-members and to non-members; a member may be left out (a pending key change)", async () => {
    relay = await TestRelay.start();
    const a = await relay.connect(alice);
    const b = await relay.connect(bob);
    const c = await relay.connect(carol);
    await join(a, "alice", "#core");
    await join(b, "bob", "#core");

    const outsider = await c.send(seal(carol, "#core", [alice, bob], "let me in"));
    expect(outsider).toMatchObject({ status: SendStatus.SEND_STATUS_REFUSED, code: ErrorCode.ERROR_CODE_NOT_A_MEMBER, detail: "you are not a member of #core" });
    // Adds a non-member: refused. Leaves a member out: accepted (PROTOCOL.md §9: a client seals
    // to the others while one member's key change waits for a decision; the signed recipients
    // show every reader who was left out).
    const r = await a.send(seal(alice, "#core", [bob, carol], "who reads this?"));
    expect(r).toMatchObject({ status: SendStatus.SEND_STATUS_REFUSED, code: ErrorCode.ERROR_CODE_BAD_RECIPIENTS });
    expect(r.detail).toMatch(/'carol' is not a member of #core/);
    await a.sendAccepted(seal(alice, "#core", [], "a note to self in #core"));
    // An unknown room: nobody is a member.
    const ghost = await a.send(seal(alice, "#ghost", [], "anyone?"));
    expect(ghost.code).toBe(ErrorCode.ERROR_CODE_NOT_A_MEMBER);

    await a.sendAccepted(seal(alice, "#core", [bob], "members only"));
    const [d] = await b.deliveries(1);
    expect(openDelivery(d!, bob, [alice]).body.text).toBe("members only");
    await c.barrier();
    expect(c.has("deliver")).toBe(false);
  });
});
