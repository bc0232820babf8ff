// Several in-process relays acting as one service: one SQLite store shared by all (what one
// PostgreSQL database is to relay processes), one LocalClusterHub between them, each relay with
// its own data dir (TLS identity), port and log. A LossyCluster in front of a member lets a test
// lose events and then ask for the resync a reconnected listener would.
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { jsonLineLogger } from "../../src/protocol/log.js";
import { LocalClusterHub, type Cluster, type ClusterEventBody, type ClusterHandlers } from "../../src/server/cluster.js";
import type { ClusterTimings } from "../../src/server/cluster-wiring.js";
import { startRelay, type RunningRelay } from "../../src/server/relay.js";
import { openStore, type RelayStore } from "../../src/server/store.js";
import type { Welcome } from "../../src/gen/securechat/v1/chat.js";
import { TEST_REGISTRATION_LIMITS, type LogLine } from "../helpers/relay-harness.js";
import { pinnedTransport, RawSession, type RawTransport } from "../helpers/raw-session.js";

/** A member of the hub whose incoming events can be dropped (a listener that missed them). */
export class LossyCluster implements Cluster {
  private handlers: ClusterHandlers | undefined;
  /** Event kinds dropped on arrival while set. */
  dropping = new Set<string>();
  dropped = 0;

  constructor(private readonly inner: Cluster) {}

  get instanceId(): string {
    return this.inner.instanceId;
  }

  get healthy(): boolean {
    return this.inner.healthy;
  }

  start(handlers: ClusterHandlers): Promise<void> {
    this.handlers = handlers;
    return this.inner.start({
      ...handlers,
      onEvent: (e) => {
        if (this.dropping.has(e.kind)) this.dropped++;
        else handlers.onEvent(e);
      },
    });
  }

  /** What PgCluster does once its listener is back. */
  resync(): void {
    this.handlers?.onResync();
  }

  /** What PgCluster reports when its listener goes or comes back. */
  health(healthy: boolean): void {
    this.handlers?.onHealth?.(healthy);
  }

  publish(event: ClusterEventBody): void {
    this.inner.publish(event);
  }

  remoteAddresses(username: string): ReadonlySet<string> | undefined {
    return this.inner.remoteAddresses(username);
  }

  remoteOnlineNames(): Iterable<string> {
    return this.inner.remoteOnlineNames();
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

export interface GroupRelay {
  readonly relay: RunningRelay;
  readonly cluster: LossyCluster;
  readonly logs: LogLine[];
  readonly address: string;
  readonly transport: RawTransport;
  readonly dataDir: string;
}

export class RelayGroup {
  readonly relays: GroupRelay[] = [];
  private readonly sessions: RawSession[] = [];

  private constructor(
    readonly dir: string, readonly store: RelayStore, readonly hub: LocalClusterHub, private readonly served: RelayStore,
    /** Another bus than the hub (PgCluster): one per relay. */
    private readonly makeCluster?: (hub: LocalClusterHub) => Cluster,
  ) {}

  /**
   * `n` relays on one shared store; `timings` default to no poll (events alone must deliver).
   * `wrap` puts something in front of the store the relays see (a database that goes away).
   */
  static async start(
    n: number, timings: ClusterTimings = { pollMs: 0 }, wrap: (s: RelayStore) => RelayStore = (s) => s, makeCluster?: (hub: LocalClusterHub) => Cluster,
  ): Promise<RelayGroup> {
    const dir = mkdtempSync(join(tmpdir(), "sc-cluster-"));
    const raw = openStore(join(dir, "shared.db"));
    const g = new RelayGroup(dir, raw, new LocalClusterHub(), wrap(raw), makeCluster);
    try {
      for (let i = 0; i < n; i++) await g.add(timings);
    } catch (e) {
      await g.cleanup();
      throw e;
    }
    return g;
  }

  async add(timings: ClusterTimings = { pollMs: 0 }): Promise<GroupRelay> {
    const dataDir = join(this.dir, `relay${this.relays.length}`);
    mkdirSync(dataDir, { mode: 0o700 });
    const logs: LogLine[] = [];
    const cluster = new LossyCluster(this.makeCluster?.(this.hub) ?? this.hub.join());
    const relay = await startRelay({
      host: "127.0.0.1", port: 0, dataDir, store: this.served, cluster, clusterTimings: timings,
      logger: jsonLineLogger((line) => logs.push(JSON.parse(line) as LogLine), "debug"),
      limits: TEST_REGISTRATION_LIMITS, shutdownGraceMs: 2000,
    });
    const tls = relay.tls!;
    const r: GroupRelay = { relay, cluster, logs, address: `127.0.0.1:${relay.port}`, transport: pinnedTransport(tls.certPem, tls.certDer), dataDir };
    this.relays.push(r);
    return r;
  }

  /** A raw session on relay `i` that completed its handshake as `id`. */
  async connect(i: number, id: PrivateIdentity): Promise<RawSession & { welcome: Welcome }> {
    const r = this.relays[i]!;
    const s = new RawSession(r.address, r.transport);
    this.sessions.push(s);
    const welcome = await s.handshake(id);
    return Object.assign(s, { welcome });
  }

  /** Stops every relay, leaves the hub, closes the store, removes the dirs. */
  async cleanup(): Promise<void> {
    for (const s of this.sessions.splice(0)) s.close();
    await Promise.allSettled(this.relays.map((r) => r.relay.shutdown()));
    await Promise.allSettled(this.relays.map((r) => r.cluster.close()));
    this.relays.length = 0;
    this.store.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
