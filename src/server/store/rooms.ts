// Room membership: `rooms` and `room_members`. A room exists while it has members.
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { num, str, type Row, type StoreContext, type Transaction } from "./schema.js";

export interface RoomSummaryRecord {
  readonly room: string;
  readonly memberCount: number;
}

function prepareRoomStatements(db: DatabaseSync) {
  const p = (sql: string): StatementSync => db.prepare(sql);
  return {
    roomGet: p("SELECT 1 AS hit FROM rooms WHERE room = ?"),
    roomPut: p("INSERT INTO rooms (room, created_at_ms) VALUES (?, ?)"),
    roomDelete: p("DELETE FROM rooms WHERE room = ?"),
    memberGet: p("SELECT 1 AS hit FROM room_members WHERE room = ? AND username = ?"),
    memberPut: p("INSERT INTO room_members (room, username, joined_at_ms) VALUES (?, ?, ?)"),
    memberDelete: p("DELETE FROM room_members WHERE room = ? AND username = ?"),
    membersOf: p("SELECT username FROM room_members WHERE room = ? ORDER BY username"),
    memberCount: p("SELECT COUNT(*) AS n FROM room_members WHERE room = ?"),
    roomsOf: p("SELECT room FROM room_members WHERE username = ? ORDER BY room"),
    roomsAll: p(`SELECT r.room AS room, COUNT(m.username) AS n FROM rooms r
                 LEFT JOIN room_members m ON m.room = r.room GROUP BY r.room ORDER BY r.room`),
  };
}

/** The `rooms` and `room_members` tables. */
export class Memberships {
  private readonly clock: () => number;
  private readonly transaction: Transaction;
  private readonly s: ReturnType<typeof prepareRoomStatements>;

  constructor(c: StoreContext) {
    this.clock = c.clock;
    this.transaction = c.transaction;
    this.s = prepareRoomStatements(c.db);
  }

  joinRoom(room: string, username: string): boolean {
    return this.transaction(() => {
      if (this.s.memberGet.get(room, username) !== undefined) return false;
      const now = this.clock();
      if (this.s.roomGet.get(room) === undefined) this.s.roomPut.run(room, now);
      this.s.memberPut.run(room, username, now);
      return true;
    });
  }

  leaveRoom(room: string, username: string): boolean {
    return this.transaction(() => this.leaveRoomLocked(room, username));
  }

  /** leaveRoom's body, for callers already inside a transaction. */
  leaveRoomLocked(room: string, username: string): boolean {
    if (this.s.memberDelete.run(room, username).changes === 0) return false;
    // An empty room disappears, so the room list does not fill with ghosts.
    if (num((this.s.memberCount.get(room) as Row).n) === 0) this.s.roomDelete.run(room);
    return true;
  }

  isMember(room: string, username: string): boolean {
    return this.s.memberGet.get(room, username) !== undefined;
  }

  roomMembers(room: string): string[] {
    return (this.s.membersOf.all(room) as Row[]).map((r) => str(r.username));
  }

  roomsOf(username: string): string[] {
    return (this.s.roomsOf.all(username) as Row[]).map((r) => str(r.room));
  }

  allRooms(): RoomSummaryRecord[] {
    return (this.s.roomsAll.all() as Row[]).map((r) => ({ room: str(r.room), memberCount: num(r.n) }));
  }
}
