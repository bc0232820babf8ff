// Room membership in PostgreSQL: `rooms` and `room_members`, as the embedded Memberships. A room
// exists while it has members. Each change is one statement (atomic on its own); the room list is
// read from the members, so a join racing the last leave on another relay never hides a room.
import type { RoomSummaryRecord } from "../rooms.js";
import type { PgStoreContext } from "./context.js";
import type { SyncPg } from "./sync-client.js";

export class PgMemberships {
  private readonly db: SyncPg;
  private readonly clock: () => number;

  constructor(c: PgStoreContext) {
    this.db = c.db;
    this.clock = c.clock;
  }

  joinRoom(room: string, username: string): boolean {
    const now = this.clock();
    const [r] = this.db.query<{ n: number }>(
      `WITH r AS (INSERT INTO rooms (room, created_at_ms) VALUES ($1, $3) ON CONFLICT (room) DO NOTHING),
            m AS (INSERT INTO room_members (room, username, joined_at_ms) VALUES ($1, $2, $3)
                  ON CONFLICT (room, username) DO NOTHING RETURNING 1)
       SELECT count(*)::int AS n FROM m`,
      [room, username, now],
    );
    return (r?.n ?? 0) > 0;
  }

  leaveRoom(room: string, username: string): boolean {
    return this.leaveRoomLocked(room, username);
  }

  /** leaveRoom's body (one statement), also inside the caller's transaction (releaseUser). */
  leaveRoomLocked(room: string, username: string): boolean {
    // An empty room disappears, so the room list does not fill with ghosts.
    const [r] = this.db.query<{ n: number }>(
      `WITH d AS (DELETE FROM room_members WHERE room = $1 AND username = $2 RETURNING room),
            x AS (DELETE FROM rooms WHERE room IN (SELECT room FROM d)
                  AND NOT EXISTS (SELECT 1 FROM room_members m WHERE m.room = $1 AND m.username <> $2))
       SELECT count(*)::int AS n FROM d`,
      [room, username],
    );
    return (r?.n ?? 0) > 0;
  }

  isMember(room: string, username: string): boolean {
    return this.db.query("SELECT 1 FROM room_members WHERE room = $1 AND username = $2", [room, username]).length > 0;
  }

  roomMembers(room: string): string[] {
    return this.db.query<{ username: string }>("SELECT username FROM room_members WHERE room = $1 ORDER BY username", [room]).map((r) => r.username);
  }

  roomsOf(username: string): string[] {
    return this.db.query<{ room: string }>("SELECT room FROM room_members WHERE username = $1 ORDER BY room", [username]).map((r) => r.room);
  }

  allRooms(): RoomSummaryRecord[] {
    return this.db.query<{ room: string; n: number }>("SELECT room, count(*)::int AS n FROM room_members GROUP BY room ORDER BY room")
      .map((r) => ({ room: r.room, memberCount: r.n }));
  }
}
