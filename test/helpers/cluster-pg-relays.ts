// A SERVICE of several relays on one PostgreSQL database, in one process (issue 14): each relay
// has a store of its own (its own SyncPg connection, as a relay process would) and a PgCluster
// of its own (LISTEN/NOTIFY, presence, heartbeats), on the fresh database of the calling test
// file. Heartbeats are short, so an expiry takes under three seconds rather than twelve (shorter,
// and a live relay busy with crypto under load would be taken for dead). `kill(i)` makes relay i
// die as kill -9 would look to the others: no farewell, no presence removed, no heartbeat.
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Welcome } from "../../src/gen/securechat/v1/chat.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { jsonLineLogger, type Logger } from "../../src/protocol/log.js";
import type { ClusterTimings } from "../../src/server/cluster-wiring.js";
import type { RelayLimits } from "../../src/server/limits.js";
import { startRelay, type RunningRelay } from "../../src/server/relay.js";
import { CLUSTER_CHANNEL, PgCluster } from "../../src/server/store/pg/pg-cluster.js";
import { openPgStore, type PgRelayStore } from "../../src/server/store/pg/pg-store.js";
import { pgQuery } from "./pg.js";
import { pinnedTransport, RawSession, type RawTransport } from "./raw-session.js";
import { TEST_REGISTRATION_LIMITS, type LogLine } from "./relay-harness.js";
import { waitUntil } from "./wait.js";

export interface PgMember {
  readonly relay: RunningRelay;
  readonly cluster: PgCluster;
  readonly store: PgRelayStore;
  readonly logs: LogLine[];
  readonly address: string;
  readonly transport: RawTransport;
  dead: boolean;
}

export interface PgRelaysOptions {
  /** The relays' poll (default: off, so what arrives came by an event). */
  readonly timings?: ClusterTimings;
  readonly limits?: Partial<RelayLimits>;
  readonly heartbeatMs?: number;
  readonly deadAfterMs?: number;
}

/** The parts of PgCluster a kill -9 stops (test-only reach into its private state). */
interface PgClusterInsides {
  closed: boolean;
  heartbeatTimer: NodeJS.Timeout | undefined;
  reconnectTimer: NodeJS.Timeout | undefined;
  endClients(): Promise<void>;
}

let nextInstance = 0;

export class PgRelays {
  readonly members: PgMember[] = [];
  private readonly sessions: RawSession[] = [];
  private readonly dir = mkdtempSync(join(tmpdir(), "sc-pg-relays-"));

  private constructor(readonly url: string, private readonly options: PgRelaysOptions) {}

  static async start(url: string, n: number, options: PgRelaysOptions = {}): Promise<PgRelays> {
    const g = new PgRelays(url, options);
    try {
      for (let i = 0; i < n; i++) await g.add();
    } catch (e) {
      await g.cleanup();
      throw e;
    }
    return g;
  }

  async add(): Promise<PgMember> {
    const dataDir = join(this.dir, `relay${this.members.length}`);
    mkdirSync(dataDir, { mode: 0o700 });
    const logs: LogLine[] = [];
    const logger: Logger = jsonLineLogger((line) => logs.push(JSON.parse(line) as LogLine), "debug");
    const store = openPgStore(this.url);
    const cluster = new PgCluster(this.url, {
      logger, instanceId: `r${process.pid}-${nextInstance++}`,
      heartbeatMs: this.options.heartbeatMs ?? 250, deadAfterMs: this.options.deadAfterMs ?? 2_500,
    });
    let relay: RunningRelay;
    try {
      relay = await startRelay({
        host: "127.0.0.1", port: 0, dataDir, store, cluster, clusterTimings: this.options.timings ?? { pollMs: 0 },
        logger, limits: { ...TEST_REGISTRATION_LIMITS, ...this.options.limits }, shutdownGraceMs: 2000,
      });
    } catch (e) {
      store.close();
      throw e;
    }
    const tls = relay.tls!;
    const m: PgMember = { relay, cluster, store, logs, address: `127.0.0.1:${relay.port}`, transport: pinnedTransport(tls.certPem, tls.certDer), dead: false };
    this.members.push(m);
    return m;
  }

  /** A raw session on relay `i`, not yet in its handshake. */
  open(i: number): RawSession {
    const m = this.members[i]!;
    const s = new RawSession(m.address, m.transport);
    this.sessions.push(s);
    return s;
  }

  /** A raw session on relay `i` that completed its handshake as `id` (protocol v2 by default). */
  async connect(i: number, id: PrivateIdentity, protocolVersion = 2): Promise<RawSession & { welcome: Welcome }> {
    const s = this.open(i);
    const welcome = await s.handshake(id, undefined, { protocolVersion });
    return Object.assign(s, { welcome });
  }

  /**
   * Relay `i` dies as a kill -9 looks to the other relays: its bus stops at once (no farewell,
   * no presence rows deleted, no more heartbeats), then its sessions end (their offline events
   * go nowhere). Its presence rows stay until another relay expires its instance.
   */
  async kill(i: number): Promise<void> {
    const m = this.members[i]!;
    m.dead = true;
    const insides = m.cluster as unknown as PgClusterInsides;
    insides.closed = true;
    clearInterval(insides.heartbeatTimer);
    clearTimeout(insides.reconnectTimer);
    await insides.endClients();
    await m.relay.shutdown();
  }

  /** How many bus payloads relay `i` could not parse and ignored (its `cluster.bad_event` lines). */
  badEvents(i: number): number {
    return this.members[i]!.logs.filter((l) => l.event === "cluster.bad_event").length;
  }

  /** A garbage NOTIFY every live relay has seen (and ignored): the events sent before it arrived before it. */
  async busBarrier(): Promise<void> {
    const seen = this.members.map((_, i) => this.badEvents(i));
    await pgQuery(this.url, "SELECT pg_notify($1, 'barrier')", [CLUSTER_CHANNEL]);
    await waitUntil(() => this.members.every((m, i) => m.dead || this.badEvents(i) > seen[i]!), "every relay saw the barrier");
  }

  /** Ends every session, stops every relay (clean farewell for the live ones), closes the stores. */
  async cleanup(): Promise<void> {
    for (const s of this.sessions.splice(0)) s.close();
    await Promise.allSettled(this.members.map((m) => m.relay.shutdown()));
    await Promise.allSettled(this.members.map((m) => m.cluster.close()));
    for (const m of this.members) m.store.close();
    this.members.length = 0;
    rmSync(this.dir, { recursive: true, force: true });
  }
}
