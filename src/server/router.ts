// Who is online, and how frames reach them: the map of authenticated sessions by queue address
// (one per device, PROTOCOL.md §4.5: the bare username for the primary, `username/device_id` for
// a linked device), presence per user (online while any device is) and directory broadcasts, and
// waking recipients' delivery pumps. With a cluster (several relays on one database, cluster.ts)
// it also tells the other relays (presence, sessions, rows queued for addresses not here, user
// changes) and counts their sessions in presence; without one it costs nothing more.
import type { StatusObject } from "@grpc/grpc-js";
import type * as wire from "../gen/securechat/v1/chat.js";
import type { DeliveryPump } from "./delivery.js";
import { encodeResponse } from "./frames.js";
import type { FrameStream } from "./stream.js";
import type { DirectoryUser } from "./directory.js";
import type { Cluster } from "./cluster.js";

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
  /** The name was released, or bound to another key, since this session proved its key (§8.2): tell the client, then end the stream. */
  released(): void;
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

  /** @param cluster the relays sharing this relay's database, if any (cluster.ts). */
  constructor(private readonly cluster?: Cluster) {}

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

  /** Whether any device of the user has a session (here or, in a cluster, on another relay). */
  isOnline(username: string): boolean {
    return this.users.has(username) || this.isRemotelyOnline(username);
  }

  private isRemotelyOnline(username: string): boolean {
    const remote = this.cluster?.remoteAddresses(username);
    return remote !== undefined && remote.size > 0;
  }

  /** Whether the device at this queue address has a session (here or on another relay). */
  isAddressOnline(address: string): boolean {
    if (this.online.has(address)) return true;
    if (this.cluster === undefined) return false;
    const i = address.indexOf("/");
    return this.cluster.remoteAddresses(i < 0 ? address : address.slice(0, i))?.has(address) === true;
  }

  /** The sessions of the user's devices on this relay. */
  sessionsOf(username: string): readonly RoutedSession[] {
    return [...(this.users.get(username) ?? [])];
  }

  /** The session of the device at this queue address, if any. */
  sessionAt(address: string): RoutedSession | undefined {
    return this.online.get(address);
  }

  /** The users with at least one session (here or on another relay). */
  onlineNames(): IterableIterator<string> {
    if (this.cluster === undefined) return this.users.keys();
    const names = new Set(this.users.keys());
    for (const n of this.cluster.remoteOnlineNames()) names.add(n);
    return names.values();
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
    if (first && !this.isRemotelyOnline(session.username)) this.announce(session.user.toLightWire(true));
    // The others learn the device is here (presence first), then end their session of it, if any.
    this.cluster?.publish({ kind: "presence", username: session.username, address: session.address, online: true });
    this.cluster?.publish({ kind: "session", address: session.address });
  }

  /**
   * The same device connected to another relay (a `session` event): the session here ends as
   * replaced. Its end is still published as offline from THIS relay: the others drop it as stale
   * when the address is online on the other relay by then (its presence event came first), and
   * take it when that session ended too (one device connecting to two relays at once ends both:
   * without it, the device would look online forever).
   */
  movedElsewhere(address: string): void {
    this.online.get(address)?.replaced();
  }

  /** Unregisters a session that ended; presence goes offline when it was the user's last one. */
  detach(session: RoutedSession): void {
    if (this.online.get(session.address) !== session) return;
    this.online.delete(session.address);
    this.cluster?.publish({ kind: "presence", username: session.username, address: session.address, online: false });
    const mine = this.users.get(session.username);
    mine?.delete(session);
    if (mine !== undefined && mine.size > 0) return;
    this.users.delete(session.username);
    if (!this.isRemotelyOnline(session.username)) this.announce(session.user.toLightWire(false));
  }

  /** The user's entry changed (a new device list version): everyone online learns it, on every relay. */
  announceUser(user: DirectoryUser): void {
    this.announce(user.toLightWire(this.isOnline(user.username)));
    this.cluster?.publish({ kind: "user", username: user.username });
  }

  /** A newly bound (or re-bound) user: online sessions learn the name and key tag (keys on request), on every relay. */
  announceBinding(user: DirectoryUser, online: boolean): void {
    this.announce(user.toLightWire(online));
    this.cluster?.publish({ kind: "user", username: user.username });
  }

  /** Another relay changed what is known of this user (presence, binding, device list): the sessions here learn it. */
  announceFromCluster(user: DirectoryUser): void {
    this.announce(user.toLightWire(this.isOnline(user.username)));
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

  /**
   * A commit queued rows for these queue addresses (count per address): the pumps of those
   * online here deliver them; in a cluster, the relays that may hold the others are told.
   */
  delivered(rowsPerAddress: ReadonlyMap<string, number>): void {
    let elsewhere: Array<[string, number]> | undefined;
    for (const [a, n] of rowsPerAddress) {
      const s = this.online.get(a);
      if (s !== undefined) s.pump.arrived(n);
      else if (this.cluster !== undefined) (elsewhere ??= []).push([a, n]);
    }
    if (elsewhere !== undefined) this.cluster?.publish({ kind: "rows", rows: elsewhere });
  }

  /**
   * Another relay queued rows (a `rows` event): the pumps here of those addresses deliver them.
   * A kick, not arrived(n): the event may come after the pump already read those rows (an ack
   * or the poll woke it), and counting them again would drift its outgoing count toward a false
   * slow-consumer verdict.
   */
  arrivedFromCluster(rows: ReadonlyArray<readonly [string, number]>): void {
    for (const [a] of rows) this.online.get(a)?.pump.kick();
  }

  /** Every authenticated session here (a snapshot). */
  allSessions(): RoutedSession[] {
    return [...this.online.values()];
  }

  /** Shutdown: ends every stream (handshaking ones too), after running `beforeEnd` on authenticated ones. */
  endAll(status: StatusObject, beforeEnd: (s: RoutedSession) => void): void {
    if (this.flushTimer !== undefined) clearTimeout(this.flushTimer);
    for (const s of this.online.values()) beforeEnd(s);
    for (const stream of [...this.streams]) stream.end(status);
  }
}
