// Who is online, and how frames reach them: the map of authenticated sessions by username,
// presence and directory broadcasts, and waking recipients' delivery pumps.
import type { StatusObject } from "@grpc/grpc-js";
import type { DeliveryPump } from "./delivery.js";
import { encodeResponse } from "./frames.js";
import type { FrameStream } from "./stream.js";
import type { DirectoryUser } from "./directory.js";

/** What the router needs from an authenticated session. */
export interface RoutedSession {
  readonly username: string;
  readonly stream: FrameStream;
  readonly pump: DeliveryPump;
  /** A newer session of the same user took over: tell the client, then end the stream. */
  replaced(): void;
}

export class Router {
  private readonly online = new Map<string, RoutedSession>();
  /** Every stream, authenticated or still in the handshake: what maxSessions and shutdown count. */
  private readonly streams = new Set<FrameStream>();

  get streamCount(): number {
    return this.streams.size;
  }

  get onlineCount(): number {
    return this.online.size;
  }

  trackStream(stream: FrameStream): void {
    this.streams.add(stream);
  }

  untrackStream(stream: FrameStream): void {
    this.streams.delete(stream);
  }

  isOnline(username: string): boolean {
    return this.online.has(username);
  }

  /**
   * Registers an authenticated session. A previous session of the same user is replaced (and
   * told so); presence is broadcast only when the user was offline, so a replacement causes
   * no offline/online flicker at peers.
   */
  attach(session: RoutedSession): void {
    const previous = this.online.get(session.username);
    this.online.set(session.username, session);
    if (previous !== undefined) previous.replaced();
    else this.broadcastPresence(session.username, true);
  }

  /** Unregisters a session that ended; presence goes offline only if it was the current one. */
  detach(session: RoutedSession): void {
    if (this.online.get(session.username) !== session) return;
    this.online.delete(session.username);
    this.broadcastPresence(session.username, false);
  }

  /** A newly bound (or re-bound) user: every online session learns the keys before any envelope of theirs. */
  broadcastDirectory(user: DirectoryUser, online: boolean): void {
    this.broadcast(encodeResponse({ $case: "directory", value: { entry: user.toWire(online) } }), user.username);
  }

  private broadcastPresence(username: string, online: boolean): void {
    this.broadcast(encodeResponse({ $case: "presence", value: { username, online } }), username);
  }

  /** Writes one encoded frame to every online session except `except`, without waiting on any. */
  broadcast(frame: Buffer, except?: string): void {
    for (const s of this.online.values()) {
      if (s.username !== except) void s.stream.send(frame);
    }
  }

  /** Writes one encoded frame to those of `usernames` who are online. */
  sendTo(usernames: Iterable<string>, frame: Buffer): void {
    for (const u of usernames) {
      const s = this.online.get(u);
      if (s !== undefined) void s.stream.send(frame);
    }
  }

  /** A commit queued rows for these users (count per user): the pumps of those online deliver them. */
  delivered(rowsPerUser: ReadonlyMap<string, number>): void {
    for (const [u, n] of rowsPerUser) this.online.get(u)?.pump.arrived(n);
  }

  /** Shutdown: ends every stream (handshaking ones too), after running `beforeEnd` on authenticated ones. */
  endAll(status: StatusObject, beforeEnd: (s: RoutedSession) => void): void {
    for (const s of this.online.values()) beforeEnd(s);
    for (const stream of [...this.streams]) stream.end(status);
  }
}
