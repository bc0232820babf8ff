// The one table of requests waiting for the relay's answer on the current session. An answer is
// matched by its request id (RoomList, MemberList, KeyList, RequestError); a join or leave is
// also answered by the room event about me in that room (PROTOCOL.md §9.1). When the session
// ends, every request still waiting is answered with an error, so no caller waits forever.
import { ErrorCode, type SessionResponse } from "../gen/securechat/v1/chat.js";

export type ResponseFrame = SessionResponse["frame"];

/** A join or leave also settles on the room event about me ("joined"/"left" in that room). */
export interface RoomWait {
  readonly room: string;
  readonly kind: "joined" | "left";
}

interface Pending {
  readonly resolve: (frame: ResponseFrame) => void;
  readonly timer: NodeJS.Timeout;
  readonly room: RoomWait | undefined;
}

export class PendingRequests {
  private nextId = 1;
  private readonly byId = new Map<number, Pending>();

  /** A fresh request id for this client (never reused, across sessions too). */
  newId(): number {
    return this.nextId++;
  }

  add(requestId: number, resolve: (frame: ResponseFrame) => void, timer: NodeJS.Timeout, room?: RoomWait): void {
    this.byId.set(requestId, { resolve, timer, room });
  }

  /** Forgets a request (answered, timed out or lost) without answering it. */
  delete(requestId: number): void {
    this.byId.delete(requestId);
  }

  /** An answer carrying a request id: true when a request was waiting for it. */
  answer(requestId: number, frame: ResponseFrame): boolean {
    const pending = this.byId.get(requestId);
    if (pending === undefined) return false;
    this.byId.delete(requestId);
    clearTimeout(pending.timer);
    pending.resolve(frame);
    return true;
  }

  /** The room event about me: settles the joins (or leaves) of that room waiting for it. */
  roomEvent(room: string, kind: "joined" | "left"): void {
    for (const [id, pending] of [...this.byId]) {
      if (pending.room?.room !== room || pending.room.kind !== kind) continue;
      this.byId.delete(id);
      clearTimeout(pending.timer);
      pending.resolve(undefined);
    }
  }

  /** The session ended: every waiting request is answered with an error saying why. */
  failAll(reason: string): void {
    const all = [...this.byId.values()];
    this.byId.clear();
    for (const p of all) {
      clearTimeout(p.timer);
      p.resolve({ $case: "error", value: { requestId: 0, code: ErrorCode.ERROR_CODE_UNSPECIFIED, detail: reason } });
    }
  }
}
