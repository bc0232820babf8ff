// Who is online, and how frames reach them: the map of authenticated sessions by queue address
// (one per device, PROTOCOL.md §4.5: the bare username for the primary, `username/device_id` for
// a linked device), presence per user (online while any device is) and directory broadcasts, and
// waking recipients' delivery pumps.
import type { StatusObject } from "@grpc/grpc-js";
import type * as wire from "../gen/securechat/v1/chat.js";
import type { DeliveryPump } from "./delivery.js";
import { encodeResponse } from "./frames.js";
import type { FrameStream } from "./stream.js";
import type { DirectoryUser } from "./directory.js";

/** What the router needs from an authenticated session. */
export interface RoutedSession {
  readonly username: string;
  /** This session's device's queue address (devices.ts). */
  readonly address: string;
  readonly user: DirectoryUser;
  readonly stream: FrameStream;
  readonly pump: DeliveryPump;
  /** A newer session of the same device took over: tell the client, then end the stream. */
  replaced(): void;
  /** The user's new device list dropped this device (PROTOCOL.md §4.5): tell the client, then end the stream. */
  unlinked(): void;
}

/** Least time between two directory updates while changes keep coming. */
const UPDATE_INTERVAL_MS = 100;

export class Router {
  /** Sessions by queue address: one per device. */
  private readonly online = new Map<string, RoutedSession>();
  /** Sessions per user: a user is online while this holds any. */
  private readonly users = new Map<string, Set<RoutedSession>>();
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

  /** Whether any device of the user has a session. */
  isOnline(username: string): boolean {
    return this.users.has(username);
  }

  /** Whether the device at this queue address has a session. */
  isAddressOnline(address: string): boolean {
    return this.online.has(address);
  }

  /** The session of the device at this queue address, if any. */
  sessionAt(address: string): RoutedSession | undefined {
    return this.online.get(address);
  }

  /** The users with at least one session. */
  onlineNames(): IterableIterator<string> {
    return this.users.keys();
  }

  /**
   * Registers an authenticated session. A previous session of the same DEVICE is replaced (and
   * told so); other devices' sessions stay. Presence is broadcast only when the user had no
   * session (the first device), so a replacement or a second device causes no flicker at peers.
   */
  attach(session: RoutedSession): void {
    const previous = this.online.get(session.address);
    this.online.set(session.address, session);
    let mine = this.users.get(session.username);
    const first = mine === undefined || mine.size === 0;
    if (mine === undefined) {
      mine = new Set();
      this.users.set(session.username, mine);
    }
    mine.add(session);
    if (previous !== undefined) {
      mine.delete(previous);
      previous.replaced();
    }
    if (first) this.announce(session.user.toLightWire(true));
  }

  /** Unregisters a session that ended; presence goes offline when it was the user's last one. */
  detach(session: RoutedSession): void {
    if (this.online.get(session.address) !== session) return;
    this.online.delete(session.address);
    const mine = this.users.get(session.username);
    mine?.delete(session);
    if (mine !== undefined && mine.size > 0) return;
    this.users.delete(session.username);
    this.announce(session.user.toLightWire(false));
  }

  /** The user's entry changed (a new device list version): everyone online learns it. */
  announceUser(user: DirectoryUser): void {
    this.announce(user.toLightWire(this.isOnline(user.username)));
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

  /** Writes one encoded frame to every session of those of `usernames` who are online. */
  sendTo(usernames: Iterable<string>, frame: Buffer): void {
    for (const u of usernames) {
      for (const s of this.users.get(u) ?? []) void s.stream.send(frame);
    }
  }

  /** A commit queued rows for these queue addresses (count per address): the pumps of those online deliver them. */
  delivered(rowsPerAddress: ReadonlyMap<string, number>): void {
    for (const [a, n] of rowsPerAddress) this.online.get(a)?.pump.arrived(n);
  }

  /** Shutdown: ends every stream (handshaking ones too), after running `beforeEnd` on authenticated ones. */
  endAll(status: StatusObject, beforeEnd: (s: RoutedSession) => void): void {
    if (this.flushTimer !== undefined) clearTimeout(this.flushTimer);
    for (const s of this.online.values()) beforeEnd(s);
    for (const stream of [...this.streams]) stream.end(status);
  }
}
