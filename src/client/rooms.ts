// The rooms I belong to, as the relay tells them (Welcome, room events), and the room requests:
// join, leave, list, members (PROTOCOL.md §13). Room names and member names from the relay are
// checked before they are kept or shown.
import { RoomEventKind, type RoomInfo } from "../gen/securechat/v1/chat.js";
import { checkRoomName, isValidUsername } from "../protocol/names.js";
import type { RelayConnection } from "./relay-connection.js";
import type { Outcome, RoomListing, RoomView, SessionEvent } from "./types.js";

export interface RoomsOptions {
  readonly me: string;
  readonly connection: RelayConnection;
  readonly clock: () => number;
  readonly emit: (event: SessionEvent) => void;
}

export interface RoomEventFrame {
  readonly room: string;
  readonly kind: RoomEventKind;
  readonly username: string;
  readonly members: readonly string[];
  readonly atMs: number;
}

export class Rooms {
  private readonly rooms = new Map<string, string[]>();

  constructor(private readonly o: RoomsOptions) {}

  has(room: string): boolean {
    return this.rooms.has(room);
  }

  /** The members of a room I am in (empty when I am not). */
  membersOf(room: string): readonly string[] {
    return this.rooms.get(room) ?? [];
  }

  /** The rooms I am in that this user is a member of. */
  roomsWith(username: string): string[] {
    return [...this.rooms].filter(([, members]) => members.includes(username)).map(([room]) => room);
  }

  views(): RoomView[] {
    return [...this.rooms].sort(([a], [b]) => (a < b ? -1 : 1)).map(([room, members]) => ({ room, members }));
  }

  /** A Welcome lists my rooms: they replace what was known. */
  welcome(rooms: readonly RoomInfo[]): void {
    this.rooms.clear();
    for (const r of rooms) this.rooms.set(r.room, [...r.members]);
  }

  onRoomEvent(ev: RoomEventFrame): void {
    if (checkRoomName(ev.room).ok !== true || !isValidUsername(ev.username)) return;
    const members = ev.members.filter(isValidUsername);
    const kind = ev.kind === RoomEventKind.ROOM_EVENT_KIND_JOINED ? "joined" : ev.kind === RoomEventKind.ROOM_EVENT_KIND_LEFT ? "left" : undefined;
    if (kind === undefined) return;
    if (kind === "left" && ev.username === this.o.me) this.rooms.delete(ev.room);
    else this.rooms.set(ev.room, members);
    this.o.emit({ type: "room-event", room: ev.room, kind, username: ev.username, members, atMs: ev.atMs || this.o.clock() });
    this.o.emit({ type: "rooms", rooms: this.views() });
    if (ev.username === this.o.me) this.o.connection.roomEvent(ev.room, kind);
  }

  async join(room: string): Promise<Outcome<RoomView>> {
    const check = checkRoomName(room);
    if (!check.ok) return { ok: false, error: { kind: "invalid-room", room, reason: check.reason } };
    if (this.rooms.has(room)) return { ok: true, value: { room, members: this.membersOf(room) } };
    const answer = await this.o.connection.request((requestId) => ({ $case: "joinRoom", value: { requestId, room } }), { room, kind: "joined" });
    if (!answer.ok) return answer;
    return { ok: true, value: { room, members: this.membersOf(room) } };
  }

  async leave(room: string): Promise<Outcome> {
    const check = checkRoomName(room);
    if (!check.ok) return { ok: false, error: { kind: "invalid-room", room, reason: check.reason } };
    if (!this.rooms.has(room)) return { ok: false, error: { kind: "not-a-member", room, action: "leave" } };
    const answer = await this.o.connection.request((requestId) => ({ $case: "leaveRoom", value: { requestId, room } }), { room, kind: "left" });
    return answer.ok ? { ok: true, value: undefined } : answer;
  }

  async list(): Promise<Outcome<RoomListing>> {
    const answer = await this.o.connection.request((requestId) => ({ $case: "listRooms", value: { requestId } }));
    if (!answer.ok) return answer;
    const f = answer.value;
    if (f?.$case !== "roomList") return { ok: false, error: { kind: "unexpected-answer" } };
    const roomOk = (r: RoomInfo) => checkRoomName(r.room).ok;
    return {
      ok: true,
      value: {
        joined: f.value.joined.filter(roomOk).map((r) => ({ room: r.room, members: r.members.filter(isValidUsername) })),
        all: f.value.all.filter((r) => checkRoomName(r.room).ok).map((r) => ({ room: r.room, memberCount: r.memberCount })),
      },
    };
  }

  async members(room: string): Promise<Outcome<readonly string[]>> {
    const check = checkRoomName(room);
    if (!check.ok) return { ok: false, error: { kind: "invalid-room", room, reason: check.reason } };
    const answer = await this.o.connection.request((requestId) => ({ $case: "listMembers", value: { requestId, room } }));
    if (!answer.ok) return answer;
    const f = answer.value;
    if (f?.$case !== "memberList") return { ok: false, error: { kind: "unexpected-answer" } };
    return { ok: true, value: f.value.members.filter(isValidUsername) };
  }
}
