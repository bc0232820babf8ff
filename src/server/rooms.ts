// Rooms: durable membership kept by the relay (the members of a room are who a room message
// must be sealed to). Join creates a room on first use; an empty room disappears.
import {
  ErrorCode, RoomEventKind, type JoinRoom, type LeaveRoom, type ListMembers, type ListRooms, type RoomInfo,
} from "../gen/securechat/v1/chat.js";
import type { Logger } from "../protocol/log.js";
import { checkRoomName } from "../protocol/names.js";
import { Refusal } from "./errors.js";
import { encodeResponse, type ResponseFrame } from "./frames.js";
import { MAX_ROOMS_PER_USER, type RelayLimits } from "./limits.js";
import type { Router } from "./router.js";
import type { RelayStore } from "./store.js";

export interface RoomsDeps {
  readonly store: RelayStore;
  readonly router: Router;
  readonly limits: RelayLimits;
  readonly clock: () => number;
  readonly logger: Logger;
}

function validRoom(room: string): string {
  const c = checkRoomName(room);
  if (!c.ok) throw new Refusal(ErrorCode.ERROR_CODE_BAD_CONVERSATION, c.reason);
  return room;
}

export class Rooms {
  constructor(private readonly d: RoomsDeps) {}

  /** The rooms a user belongs to, with members (for Welcome and RoomList). */
  infoFor(username: string): RoomInfo[] {
    return this.d.store.roomsOf(username).map((room) => ({ room, members: this.d.store.roomMembers(room) }));
  }

  /**
   * Joins (creating on first join). Every online member, the joiner included, gets a RoomEvent
   * JOINED with the new member list; joining a room one is already in confirms it to the joiner
   * alone. Throws Refusal.
   */
  join(username: string, req: JoinRoom): void {
    const { store, limits } = this.d;
    const room = validRoom(req.room);
    if (store.isMember(room, username)) {
      this.d.router.sendTo([username], this.event(room, RoomEventKind.ROOM_EVENT_KIND_JOINED, username, store.roomMembers(room)));
      return;
    }
    if (store.roomsOf(username).length >= MAX_ROOMS_PER_USER) {
      throw new Refusal(ErrorCode.ERROR_CODE_BAD_CONVERSATION, `you are already in ${MAX_ROOMS_PER_USER} rooms, the most one user may join`);
    }
    // A room larger than an envelope's recipient limit could never receive a message.
    if (store.roomMembers(room).length >= limits.maxRecipients) {
      throw new Refusal(ErrorCode.ERROR_CODE_TOO_MANY_RECIPIENTS, `${room} is full: it has ${limits.maxRecipients} members, the most one message can reach`);
    }
    store.joinRoom(room, username);
    const members = store.roomMembers(room);
    this.d.logger.info("room.join", { user: username, room, members: members.length });
    this.d.router.sendTo(members, this.event(room, RoomEventKind.ROOM_EVENT_KIND_JOINED, username, members));
  }

  /** Leaves. The remaining online members and the leaver get a RoomEvent LEFT. Throws Refusal. */
  leave(username: string, req: LeaveRoom): void {
    const { store } = this.d;
    const room = validRoom(req.room);
    if (!store.leaveRoom(room, username)) throw new Refusal(ErrorCode.ERROR_CODE_NOT_A_MEMBER, `you are not a member of ${room}`);
    const members = store.roomMembers(room);
    this.d.logger.info("room.leave", { user: username, room, members: members.length });
    this.d.router.sendTo([...members, username], this.event(room, RoomEventKind.ROOM_EVENT_KIND_LEFT, username, members));
  }

  list(username: string, req: ListRooms): ResponseFrame {
    const all = this.d.store.allRooms().map((r) => ({ room: r.room, memberCount: r.memberCount }));
    return { $case: "roomList", value: { requestId: req.requestId, joined: this.infoFor(username), all } };
  }

  /** Members of a room, for its members only (membership is metadata the relay keeps private). */
  members(username: string, req: ListMembers): ResponseFrame {
    const room = validRoom(req.room);
    if (!this.d.store.isMember(room, username)) throw new Refusal(ErrorCode.ERROR_CODE_NOT_A_MEMBER, `you are not a member of ${room}`);
    return { $case: "memberList", value: { requestId: req.requestId, room, members: this.d.store.roomMembers(room) } };
  }

  private event(room: string, kind: RoomEventKind, username: string, members: string[]): Buffer {
    return encodeResponse({ $case: "roomEvent", value: { room, kind, username, members, atMs: this.d.clock() } });
  }
}
