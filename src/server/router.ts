// Who is online, and how frames reach them: the map of authenticated sessions by username,
// presence and directory broadcasts, and waking recipients' delivery pumps.
import type { StatusObject } from "@grpc/grpc-js";
import type * as wire from "../gen/securechat/v1/chat.js";
import type { DeliveryPump } from "./delivery.js";
import { encodeResponse } from "./frames.js";
import type { FrameStream } from "./stream.js";
import type { DirectoryUser } from "./directory.js";

/** What the router needs from an authenticated session. */
export interface RoutedSession {
  readonly username: string;
  readonly user: DirectoryUser;
  readonly stream: FrameStream;
  readonly pump: DeliveryPump;
  /** A newer session of the same user took over: tell the client, then end the stream. */
  replaced(): void;
}

/** Least time between two directory updates while changes keep coming. */
const UPDATE_INTERVAL_MS = 100;

export class Router {
  private readonly online = new Map<string, RoutedSession>();
  /**
   * Directory changes (presence, new bindings, new keys) waiting for this event-loop turn to
   * end. They go out as ONE DirectoryUpdate frame, the same bytes to every online session: in a
   * connect storm of N users that is one write per session per turn, not N per session.
   */
  private readonly pendingUpdates = new Map<string, wire.DirectoryEntry>();
  private flushScheduled = false;
  private lastFlushAt = 0;
  private flushTimer: NodeJS.Timeout | undefined;
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

  onlineNames(): IterableIterator<string> {
    return this.online.keys();
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
    else this.announce(session.user.toLightWire(true));
  }

  /** Unregisters a session that ended; presence goes offline only if it was the current one. */
  detach(session: RoutedSession): void {
    if (this.online.get(session.username) !== session) return;
    this.online.delete(session.username);
    this.announce(session.user.toLightWire(false));
  }

  /** A newly bound (or re-bound) user: online sessions learn the name and key tag; keys on request. */
  announceBinding(user: DirectoryUser, online: boolean): void {
    this.announce(user.toLightWire(online));
  }

  /**
   * Queues a directory change. An isolated change goes out at the end of this event-loop turn;
   * while changes keep coming (a connect storm) updates go out at most every UPDATE_INTERVAL_MS,
   * each carrying everything since the last: thousands of joins cost a few hundred writes per
   * session, not one per join.
   */
  private announce(entry: wire.DirectoryEntry): void {
    this.pendingUpdates.set(entry.username, entry);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    const wait = this.lastFlushAt + UPDATE_INTERVAL_MS - performance.now();
    if (wait <= 0) setImmediate(() => this.flushUpdates());
    else this.flushTimer = setTimeout(() => this.flushUpdates(), wait);
  }

  private flushUpdates(): void {
    this.flushScheduled = false;
    this.flushTimer = undefined;
    this.lastFlushAt = performance.now();
    if (this.pendingUpdates.size === 0) return;
    const frame = encodeResponse({ $case: "directoryUpdate", value: { entries: [...this.pendingUpdates.values()] } });
    this.pendingUpdates.clear();
    this.broadcast(frame);
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
    if (this.flushTimer !== undefined) clearTimeout(this.flushTimer);
    for (const s of this.online.values()) beforeEnd(s);
    for (const stream of [...this.streams]) stream.end(status);
  }
}
