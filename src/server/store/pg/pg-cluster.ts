// Several relays on one PostgreSQL database (notes/cluster-design.md §2): the Cluster of
// cluster.ts over LISTEN/NOTIFY. Two async `pg` connections of its own, never the store's
// synchronous one (sync-client.ts), so nothing here blocks the event loop:
//   - the listener LISTENs on `securechat_events`; lost, it reconnects with backoff, reloads
//     presence (changes become presence events) and calls onResync (events may have been
//     missed); health follows it (onHealth);
//   - the writer sends pg_notify, keeps this relay's presence rows and its heartbeat. A write
//     that fails (the database is down) is dropped with a log line: events are hints, the
//     database is the truth, and every relay also polls.
// Presence lives in two UNLOGGED tables (lost on a database crash, which ends every session
// anyway): `instances` (a heartbeat every heartbeatMs) and `presence` (one row per online
// queue address). An instance silent for deadAfterMs is dead: whichever relay deletes its rows
// first (DELETE … RETURNING, so exactly one) announces them offline on its behalf.
import { randomBytes } from "node:crypto";
import pg from "pg";
import type { Logger } from "../../../protocol/log.js";
import {
  decodeClusterEvent, encodeClusterEvents, type Cluster, type ClusterEvent, type ClusterEventBody, type ClusterHandlers,
} from "../../cluster.js";
import { databaseHostOf, redactSecrets } from "../../cluster-url.js";

export const CLUSTER_CHANNEL = "securechat_events";

/** The tables PgCluster needs (created at start when missing; the store's migration may own them later). */
export const PG_CLUSTER_DDL = [
  "CREATE UNLOGGED TABLE IF NOT EXISTS instances (instance_id text PRIMARY KEY, heartbeat_ms bigint NOT NULL)",
  "CREATE UNLOGGED TABLE IF NOT EXISTS presence (address text PRIMARY KEY, username text NOT NULL, instance_id text NOT NULL, since_ms bigint NOT NULL)",
  "CREATE INDEX IF NOT EXISTS presence_instance ON presence (instance_id)",
] as const;

export interface PgClusterOptions {
  readonly logger: Logger;
  /** Unique among the relays of the database; random by default. */
  readonly instanceId?: string;
  /** How often this relay says it lives (default 2 s). */
  readonly heartbeatMs?: number;
  /** Silence after which an instance is dead and its presence goes (default 10 s). */
  readonly deadAfterMs?: number;
  readonly connectTimeoutMs?: number;
}

/** Database time in ms (every relay compares heartbeats on one clock: the database's). */
const NOW_MS = "(extract(epoch from clock_timestamp()) * 1000)::bigint";
const MAX_PENDING_WRITES = 10_000;
const MAX_BACKOFF_MS = 5_000;
const CLOSE_TIMEOUT_MS = 2_000;
const DROP_LOG_MS = 10_000;
const WRITER_RETRY_MS = 1_000;

interface RemoteEntry {
  readonly username: string;
  readonly instance: string;
}

export class PgCluster implements Cluster {
  readonly instanceId: string;
  private readonly logger: Logger;
  private readonly heartbeatMs: number;
  private readonly deadAfterMs: number;
  private readonly connectTimeoutMs: number;
  private readonly where: string;
  private handlers: ClusterHandlers | undefined;
  private listener: pg.Client | undefined;
  private writerClient: pg.Client | undefined;
  private writes: Promise<void> = Promise.resolve();
  private pendingWrites = 0;
  private droppedSinceLog = 0;
  private droppedLoggedAt = -Infinity;
  private writerRetryAt = 0;
  private listening = false;
  private closed = false;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private backoffMs = 250;
  /** Remote presence: address → who and where. */
  private readonly remote = new Map<string, RemoteEntry>();
  private readonly remoteByUser = new Map<string, Set<string>>();
  /** This relay's own online addresses (rewritten should another relay have expired them). */
  private readonly own = new Map<string, string>();

  constructor(private readonly url: string, options: PgClusterOptions) {
    if (typeof url !== "string" || !/^postgres(ql)?:\/\//i.test(url)) throw new RangeError("the store URL must start with postgres:// or postgresql://");
    this.logger = options.logger;
    this.instanceId = options.instanceId ?? randomBytes(8).toString("hex");
    this.heartbeatMs = positive(options.heartbeatMs ?? 2_000, "heartbeatMs");
    this.deadAfterMs = positive(options.deadAfterMs ?? 10_000, "deadAfterMs");
    if (this.deadAfterMs <= this.heartbeatMs) throw new RangeError("deadAfterMs must exceed heartbeatMs");
    this.connectTimeoutMs = positive(options.connectTimeoutMs ?? 2_000, "connectTimeoutMs");
    this.where = databaseHostOf(url);
  }

  get healthy(): boolean {
    return this.listening && !this.closed;
  }

  async start(handlers: ClusterHandlers): Promise<void> {
    if (this.handlers !== undefined) throw new Error("PgCluster.start called twice");
    this.handlers = handlers;
    try {
      const w = await this.connect("writer");
      this.writerClient = w;
      await w.query("BEGIN");
      await w.query("SELECT pg_advisory_xact_lock(hashtext('securechat_cluster_ddl'))");
      for (const ddl of PG_CLUSTER_DDL) await w.query(ddl);
      await w.query("COMMIT");
      await w.query(`INSERT INTO instances (instance_id, heartbeat_ms) VALUES ($1, ${NOW_MS}) ON CONFLICT (instance_id) DO UPDATE SET heartbeat_ms = excluded.heartbeat_ms`, [this.instanceId]);
      await this.reloadPresence(w, false);
      await this.openListener();
    } catch (e) {
      await this.endClients();
      this.handlers = undefined;
      throw new Error(`cannot reach the database at ${this.where}: ${this.describe(e)}`, { cause: e });
    }
    this.heartbeatTimer = setInterval(() => this.heartbeat(), this.heartbeatMs);
    this.heartbeatTimer.unref();
  }

  publish(event: ClusterEventBody): void {
    if (this.closed) return;
    if (event.kind === "presence") {
      if (event.online) this.own.set(event.address, event.username);
      else this.own.delete(event.address);
    }
    const payloads = encodeClusterEvents({ ...event, from: this.instanceId } as ClusterEvent);
    void this.write("publish", async (c) => {
      if (event.kind === "presence") {
        if (event.online) {
          await c.query(
            `INSERT INTO presence (address, username, instance_id, since_ms) VALUES ($1, $2, $3, ${NOW_MS})
             ON CONFLICT (address) DO UPDATE SET username = excluded.username, instance_id = excluded.instance_id, since_ms = excluded.since_ms`,
            [event.address, event.username, this.instanceId]);
        } else {
          await c.query("DELETE FROM presence WHERE address = $1 AND instance_id = $2", [event.address, this.instanceId]);
        }
      }
      await c.query("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p", [CLUSTER_CHANNEL, payloads]);
    });
  }

  remoteAddresses(username: string): ReadonlySet<string> | undefined {
    return this.remoteByUser.get(username);
  }

  remoteOnlineNames(): Iterable<string> {
    return this.remoteByUser.keys();
  }

  /** Stops listening; deletes this relay's presence (announced offline to the others) and its instance row. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.heartbeatTimer);
    clearTimeout(this.reconnectTimer);
    this.own.clear();
    const farewell = this.write("close", async (c) => {
      const gone = await c.query<{ username: string; address: string }>(
        "DELETE FROM presence WHERE instance_id = $1 RETURNING username, address", [this.instanceId]);
      await this.notifyOffline(c, this.instanceId, gone.rows);
      await c.query("DELETE FROM instances WHERE instance_id = $1", [this.instanceId]);
    }, true);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([farewell, new Promise<void>((resolve) => {
      timer = setTimeout(resolve, CLOSE_TIMEOUT_MS);
    })]);
    clearTimeout(timer);
    await this.endClients();
  }

  // --- the listener -------------------------------------------------------------------------

  private async openListener(): Promise<void> {
    const l = await this.connect("listener");
    l.on("notification", (msg) => {
      if (msg.channel === CLUSTER_CHANNEL) this.received(msg.payload ?? "");
    });
    const lost = (why: string): void => {
      if (this.listener !== l) return;
      this.listener = undefined;
      l.removeAllListeners("notification");
      void l.end().catch(() => undefined);
      this.listenerLost(why);
    };
    l.on("error", (e) => lost(this.describe(e)));
    l.on("end", () => lost("the connection ended"));
    await l.query(`LISTEN ${CLUSTER_CHANNEL}`);
    this.listener = l;
    this.listening = true;
    this.backoffMs = 250;
  }

  private listenerLost(why: string): void {
    if (this.closed) return;
    const was = this.listening;
    this.listening = false;
    this.logger.warn("cluster.listener_lost", { database: this.where, error: why });
    if (was) this.handlers?.onHealth?.(false);
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.closed || this.reconnectTimer !== undefined) return;
    const wait = this.backoffMs;
    this.backoffMs = Math.min(MAX_BACKOFF_MS, this.backoffMs * 2);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      void this.reconnect();
    }, wait);
    this.reconnectTimer.unref();
  }

  private async reconnect(): Promise<void> {
    if (this.closed) return;
    try {
      await this.openListener();
    } catch (e) {
      this.logger.debug("cluster.reconnect_failed", { database: this.where, error: this.describe(e) });
      this.scheduleReconnect();
      return;
    }
    if (this.closed) {
      await this.endClients();
      return;
    }
    // The database answers again: writes may go at once. Writes dropped meanwhile are healed:
    // this relay's presence rows are written again (others learn them), then presence is read
    // again (its changes become presence events), then every pump wakes (onResync).
    this.writerRetryAt = 0;
    await this.write("resync", async (c) => {
      await this.rewriteOwn(c);
      await this.reloadPresence(c, true);
    });
    this.logger.info("cluster.listener_back", { database: this.where });
    this.handlers?.onResync();
    this.handlers?.onHealth?.(true);
  }

  private received(payload: string): void {
    if (this.closed) return;
    const event = decodeClusterEvent(payload);
    if (event === undefined) {
      this.logger.warn("cluster.bad_event", { bytes: payload.length });
      return;
    }
    if (event.from === this.instanceId) return;
    if (event.kind === "presence") {
      // An offline from an instance that no longer holds the address (the device moved) is stale.
      if (!event.online && this.remote.get(event.address)?.instance !== event.from) return;
      this.note(event.address, event.online ? { username: event.username, instance: event.from } : undefined);
      // The device moved to that relay: its row is theirs now (this relay's session ends on their `session` event).
      if (event.online) this.own.delete(event.address);
    }
    this.handlers?.onEvent(event);
  }

  private note(address: string, entry: RemoteEntry | undefined): void {
    const old = this.remote.get(address);
    if (old !== undefined) {
      const set = this.remoteByUser.get(old.username);
      set?.delete(address);
      if (set?.size === 0) this.remoteByUser.delete(old.username);
      this.remote.delete(address);
    }
    if (entry === undefined) return;
    this.remote.set(address, entry);
    const set = this.remoteByUser.get(entry.username) ?? new Set<string>();
    set.add(address);
    this.remoteByUser.set(entry.username, set);
  }

  /** Reads the presence of live instances; with `announce`, each change becomes a presence event. */
  private async reloadPresence(c: pg.Client, announce: boolean): Promise<void> {
    const res = await c.query<{ address: string; username: string; instance_id: string }>(
      `SELECT p.address, p.username, p.instance_id FROM presence p JOIN instances i ON i.instance_id = p.instance_id
       WHERE p.instance_id <> $1 AND i.heartbeat_ms >= ${NOW_MS} - $2`, [this.instanceId, this.deadAfterMs]);
    const fresh = new Map(res.rows.map((r) => [r.address, { username: r.username, instance: r.instance_id }]));
    const changes: ClusterEvent[] = [];
    for (const [address, old] of this.remote) {
      if (!fresh.has(address)) changes.push({ kind: "presence", from: old.instance, username: old.username, address, online: false });
    }
    for (const [address, now] of fresh) {
      const old = this.remote.get(address);
      if (old === undefined || old.instance !== now.instance) changes.push({ kind: "presence", from: now.instance, username: now.username, address, online: true });
    }
    for (const address of [...this.remote.keys()]) if (!fresh.has(address)) this.note(address, undefined);
    for (const [address, now] of fresh) this.note(address, now);
    if (announce) for (const e of changes) this.handlers?.onEvent(e);
  }

  // --- the writer: heartbeat, expiry, presence, notify ---------------------------------------

  private heartbeat(): void {
    void this.write("heartbeat", async (c) => {
      const alive = await c.query(`UPDATE instances SET heartbeat_ms = ${NOW_MS} WHERE instance_id = $1`, [this.instanceId]);
      if (alive.rowCount === 0) await this.rejoin(c);
      // Dead instances: their presence goes, announced offline by whichever relay deleted it.
      const dead = await c.query<{ instance_id: string }>(
        `DELETE FROM instances WHERE heartbeat_ms < ${NOW_MS} - $1 AND instance_id <> $2 RETURNING instance_id`, [this.deadAfterMs, this.instanceId]);
      const gone = await c.query<{ username: string; address: string; instance_id: string }>(
        "DELETE FROM presence p WHERE NOT EXISTS (SELECT 1 FROM instances i WHERE i.instance_id = p.instance_id) RETURNING username, address, instance_id");
      if (dead.rows.length > 0 || gone.rows.length > 0) {
        this.logger.info("cluster.instances_expired", { instances: dead.rows.map((r) => r.instance_id), addresses: gone.rows.length });
      }
      const byInstance = new Map<string, Array<{ username: string; address: string }>>();
      for (const r of gone.rows) byInstance.set(r.instance_id, [...(byInstance.get(r.instance_id) ?? []), r]);
      for (const [instance, rows] of byInstance) await this.notifyOffline(c, instance, rows);
    });
  }

  /** Another relay took this one for dead (a long pause), or the tables were emptied (a crash): presence is written again. */
  private async rejoin(c: pg.Client): Promise<void> {
    this.logger.warn("cluster.rejoined", { detail: "this relay's instance row was gone (taken for dead, or the database crashed); its presence is written again" });
    await this.rewriteOwn(c);
  }

  /**
   * Makes the table say what this relay holds: its instance row, its sessions' rows (an address
   * another relay took meanwhile stays theirs), none of its rows for sessions that ended while a
   * write could not be made; each change announced.
   */
  private async rewriteOwn(c: pg.Client): Promise<void> {
    await c.query(`INSERT INTO instances (instance_id, heartbeat_ms) VALUES ($1, ${NOW_MS}) ON CONFLICT (instance_id) DO UPDATE SET heartbeat_ms = excluded.heartbeat_ms`, [this.instanceId]);
    const addresses = [...this.own.keys()];
    const usernames = [...this.own.values()];
    const stale = await c.query<{ username: string; address: string }>(
      "DELETE FROM presence WHERE instance_id = $1 AND NOT (address = ANY($2::text[])) RETURNING username, address", [this.instanceId, addresses]);
    await this.notifyOffline(c, this.instanceId, stale.rows);
    if (addresses.length === 0) return;
    await c.query(
      `INSERT INTO presence (address, username, instance_id, since_ms) SELECT a, u, $3, ${NOW_MS} FROM unnest($1::text[], $2::text[]) AS t(a, u)
       ON CONFLICT (address) DO NOTHING`, [addresses, usernames, this.instanceId]);
    const payloads = addresses.flatMap((address, i) => encodeClusterEvents({ kind: "presence", from: this.instanceId, username: usernames[i]!, address, online: true }));
    await c.query("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p", [CLUSTER_CHANNEL, payloads]);
  }

  private async notifyOffline(c: pg.Client, instance: string, rows: ReadonlyArray<{ username: string; address: string }>): Promise<void> {
    if (rows.length === 0) return;
    const payloads = rows.flatMap((r) => encodeClusterEvents({ kind: "presence", from: instance, username: r.username, address: r.address, online: false }));
    await c.query("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p", [CLUSTER_CHANNEL, payloads]);
  }

  /** Queues a write on the writer connection, in order; a failure is logged and dropped (never thrown). */
  private write(what: string, op: (c: pg.Client) => Promise<void>, evenClosed = false): Promise<void> {
    if (this.pendingWrites >= MAX_PENDING_WRITES) {
      this.dropped(what, "too many writes are waiting for the database");
      return Promise.resolve();
    }
    this.pendingWrites++;
    const run = this.writes.then(async () => {
      if (this.closed && !evenClosed) return;
      try {
        await op(await this.writer());
      } catch (e) {
        this.dropped(what, this.describe(e));
        // A broken connection is replaced at the next write.
        const c = this.writerClient;
        this.writerClient = undefined;
        void c?.end().catch(() => undefined);
      }
    }).finally(() => {
      this.pendingWrites--;
    });
    this.writes = run;
    return run;
  }

  private dropped(what: string, why: string): void {
    this.droppedSinceLog++;
    const now = performance.now();
    if (now - this.droppedLoggedAt < DROP_LOG_MS) return;
    this.logger.warn("cluster.write_dropped", { what, dropped: this.droppedSinceLog, database: this.where, error: why });
    this.droppedLoggedAt = now;
    this.droppedSinceLog = 0;
  }

  private async writer(): Promise<pg.Client> {
    if (this.writerClient !== undefined) return this.writerClient;
    // While the database is down, writes are dropped at once instead of each waiting out a
    // connect timeout (and piling up behind one another); the listener's return heals them.
    if (performance.now() < this.writerRetryAt) throw new Error("the database did not answer a moment ago");
    let c: pg.Client;
    try {
      c = await this.connect("writer");
    } catch (e) {
      this.writerRetryAt = performance.now() + WRITER_RETRY_MS;
      throw e;
    }
    c.on("error", () => {
      if (this.writerClient === c) this.writerClient = undefined;
    });
    this.writerClient = c;
    return c;
  }

  private async connect(role: string): Promise<pg.Client> {
    const c = new pg.Client({
      connectionString: this.url, connectionTimeoutMillis: this.connectTimeoutMs, query_timeout: 5_000,
      application_name: `chat-relay cluster ${role} ${this.instanceId}`, keepAlive: true,
    });
    c.on("error", () => undefined); // reported by the owner's own handler; never an unhandled 'error'
    try {
      await c.connect();
    } catch (e) {
      void c.end().catch(() => undefined);
      throw e;
    }
    return c;
  }

  private async endClients(): Promise<void> {
    const clients = [this.listener, this.writerClient];
    this.listener = undefined;
    this.writerClient = undefined;
    this.listening = false;
    await Promise.allSettled(clients.map((c) => c?.end()));
  }

  private describe(e: unknown): string {
    const text = e instanceof Error ? (e.message === "" ? ((e as NodeJS.ErrnoException).code ?? e.name) : e.message) : String(e);
    return redactSecrets(text, this.url);
  }
}

function positive(n: number, what: string): number {
  if (!(Number.isFinite(n) && n > 0)) throw new RangeError(`${what} must be a positive number of ms`);
  return n;
}
