// Several relays, one service (issue 14; PROTOCOL.md §18.2): what a relay tells the others that
// share its database, and what it hears from them. The database is the truth (queues, bindings,
// device lists, groups); these events are HINTS that let a relay act at once instead of at its
// next poll:
//   - rows:     a commit queued envelopes for these queue addresses: the relay holding one of
//               those sessions wakes its pump (DeliveryPump.arrived);
//   - rescan:   too many addresses for one event: every relay wakes every pump it holds;
//   - presence: a user's first device came online on a relay, or its last one there went;
//   - user:     a binding or a device list changed: reload it from the store and announce it;
//   - session:  a device's session started on one relay: any other relay holding a session for
//               that address ends it as replaced (one session per device, service-wide).
// A relay that may have missed events (its listening connection was lost) gets `resync`: it
// reloads presence and wakes every pump. Nothing is lost if a hint is: the rows wait in the
// database, and every relay also polls its sessions' queues as a fallback.
//
// Implementations: none for one relay on the embedded store (the default: nothing to tell),
// LocalClusterHub for relays in one process (tests), PgCluster (LISTEN/NOTIFY, store/pg/).

/** An event as published; `from` is added by the bus. */
export type ClusterEventBody =
  | { readonly kind: "rows"; readonly rows: ReadonlyArray<readonly [address: string, count: number]> }
  | { readonly kind: "rescan" }
  | { readonly kind: "presence"; readonly username: string; readonly address: string; readonly online: boolean }
  | { readonly kind: "user"; readonly username: string }
  | { readonly kind: "session"; readonly address: string };

/** An event from another relay: `from` is that relay's instance id. */
export type ClusterEvent = ClusterEventBody & { readonly from: string };

export interface ClusterHandlers {
  readonly onEvent: (event: ClusterEvent) => void;
  /** Events may have been missed (the bus reconnected): reload presence, wake every pump. */
  readonly onResync: () => void;
  /** The shared database became reachable (true) or not (false): health follows it. */
  readonly onHealth?: (healthy: boolean) => void;
}

export interface Cluster {
  /** This relay process's id, unique among the relays sharing the database (random per start). */
  readonly instanceId: string;
  /** Starts listening; handlers get events from OTHER relays only. */
  start(handlers: ClusterHandlers): Promise<void>;
  /** Tells every other relay (best effort, never throws, never blocks the caller). */
  publish(event: ClusterEventBody): void;
  /** Addresses with a session on another relay, by user (presence across relays). */
  remoteAddresses(username: string): ReadonlySet<string> | undefined;
  /** Users with at least one device online on another relay. */
  remoteOnlineNames(): Iterable<string>;
  /** Whether the shared database (and the bus) is reachable now. */
  readonly healthy: boolean;
  /** Stops listening; publishes this relay's sessions as gone first where it can. */
  close(): Promise<void>;
}

/**
 * Relays in one process sharing one store (tests of several relays without processes): events
 * are delivered on the next macrotask, as a database notification would be, never to the
 * publisher itself.
 */
export class LocalClusterHub {
  private readonly members = new Map<string, LocalCluster>();
  private next = 1;

  /** A new member of the hub (one per relay). */
  join(): Cluster {
    const c = new LocalCluster(this, `local-${this.next++}`);
    this.members.set(c.instanceId, c);
    return c;
  }

  /** @internal */
  send(from: LocalCluster, event: ClusterEvent): void {
    for (const m of this.members.values()) if (m !== from) m.receive(event);
  }

  /** @internal */
  leave(c: LocalCluster): void {
    this.members.delete(c.instanceId);
  }

  /** @internal Sessions of every member but `self`. */
  others(self: LocalCluster): LocalCluster[] {
    return [...this.members.values()].filter((m) => m !== self);
  }
}

class LocalCluster implements Cluster {
  private handlers: ClusterHandlers | undefined;
  /** Remote presence by user: addresses online elsewhere (learned from presence events)... */
  private readonly remote = new Map<string, Set<string>>();
  /** ...and which member holds each (an offline from a member that no longer holds it is stale, as in PgCluster). */
  private readonly holder = new Map<string, string>();
  /** This member's own online addresses by user, so a leaving member can say they are gone. */
  private readonly own = new Map<string, Set<string>>();
  private closed = false;

  constructor(private readonly hub: LocalClusterHub, readonly instanceId: string) {}

  get healthy(): boolean {
    return !this.closed;
  }

  start(handlers: ClusterHandlers): Promise<void> {
    this.handlers = handlers;
    // What the others have online now (as PgCluster reads the presence table at start).
    for (const m of this.hub.others(this)) {
      for (const [u, addrs] of m.own) for (const a of addrs) this.note(u, a, true, m.instanceId);
    }
    return Promise.resolve();
  }

  publish(event: ClusterEventBody): void {
    if (this.closed) return;
    if (event.kind === "presence") {
      const mine = this.own.get(event.username) ?? new Set<string>();
      if (event.online) mine.add(event.address);
      else mine.delete(event.address);
      if (mine.size === 0) this.own.delete(event.username);
      else this.own.set(event.username, mine);
    }
    const full = { ...event, from: this.instanceId } as ClusterEvent;
    setImmediate(() => this.hub.send(this, full));
  }

  receive(event: ClusterEvent): void {
    if (this.closed) return;
    if (event.kind === "presence") {
      // An offline from a member that no longer holds the address (the device moved) is stale.
      if (!event.online && this.holder.get(event.address) !== event.from) return;
      this.note(event.username, event.address, event.online, event.from);
    }
    this.handlers?.onEvent(event);
  }

  private note(username: string, address: string, online: boolean, from: string): void {
    const set = this.remote.get(username) ?? new Set<string>();
    if (online) {
      set.add(address);
      this.holder.set(address, from);
    } else {
      set.delete(address);
      this.holder.delete(address);
    }
    if (set.size === 0) this.remote.delete(username);
    else this.remote.set(username, set);
  }

  remoteAddresses(username: string): ReadonlySet<string> | undefined {
    return this.remote.get(username);
  }

  remoteOnlineNames(): Iterable<string> {
    return this.remote.keys();
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    // As a relay that stops (or dies: PgCluster's heartbeat expiry) its sessions go offline elsewhere.
    for (const [username, addrs] of this.own) {
      for (const address of addrs) this.hub.send(this, { kind: "presence", username, address, online: false, from: this.instanceId });
    }
    this.own.clear();
    this.closed = true;
    this.hub.leave(this);
    return Promise.resolve();
  }
}

/** Largest NOTIFY payload PostgreSQL accepts is 8000 bytes; events stay below this. */
export const MAX_EVENT_BYTES = 7_900;

/**
 * The wire form of an event (JSON, small): what PgCluster sends as a NOTIFY payload. A rows
 * event too big for one payload is split into several; beyond `maxChunks` it becomes rescan.
 */
export function encodeClusterEvents(event: ClusterEvent, maxChunks = 8): string[] {
  if (event.kind !== "rows") return [JSON.stringify(event)];
  const out: string[] = [];
  let chunk: Array<readonly [string, number]> = [];
  let size = 0;
  const flush = (): void => {
    if (chunk.length > 0) out.push(JSON.stringify({ kind: "rows", from: event.from, rows: chunk }));
    chunk = [];
    size = 0;
  };
  for (const r of event.rows) {
    const bytes = Buffer.byteLength(JSON.stringify(r)) + 1;
    if (size + bytes > MAX_EVENT_BYTES - 200) flush();
    chunk.push(r);
    size += bytes;
  }
  flush();
  if (out.length > maxChunks) return [JSON.stringify({ kind: "rescan", from: event.from })];
  return out;
}

/** Parses a payload from the bus; undefined when it is not a well-formed event (ignored, logged by the caller). */
export function decodeClusterEvent(payload: string): ClusterEvent | undefined {
  let v: unknown;
  try {
    v = JSON.parse(payload);
  } catch {
    return undefined;
  }
  if (typeof v !== "object" || v === null) return undefined;
  const e = v as Record<string, unknown>;
  if (typeof e["from"] !== "string") return undefined;
  const from = e["from"];
  switch (e["kind"]) {
    case "rows": {
      const rows = e["rows"];
      if (!Array.isArray(rows)) return undefined;
      const ok = rows.every((r) => Array.isArray(r) && r.length === 2 && typeof r[0] === "string" && Number.isSafeInteger(r[1]) && (r[1] as number) > 0);
      return ok ? { kind: "rows", from, rows: rows as Array<[string, number]> } : undefined;
    }
    case "rescan":
      return { kind: "rescan", from };
    case "presence":
      return typeof e["username"] === "string" && typeof e["address"] === "string" && typeof e["online"] === "boolean"
        ? { kind: "presence", from, username: e["username"], address: e["address"], online: e["online"] }
        : undefined;
    case "user":
      return typeof e["username"] === "string" ? { kind: "user", from, username: e["username"] } : undefined;
    case "session":
      return typeof e["address"] === "string" ? { kind: "session", from, address: e["address"] } : undefined;
    default:
      return undefined;
  }
}
