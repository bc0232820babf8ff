// What a relay does with what the other relays of its cluster tell it (cluster.ts), and its
// fallbacks for what they could not tell: the poll that wakes every pump (events are hints; the
// rows wait in the database) and the health that follows the database (NOT_SERVING while the
// bus is down or a store call found the database unreachable, SERVING once a probe succeeds).
import type { Logger } from "../protocol/log.js";
import type { Cluster, ClusterEvent, ClusterHandlers } from "./cluster.js";
import type { DeviceRoutes } from "./devices.js";
import type { Directory } from "./directory.js";
import type { LobbyAudience } from "./lobby-audience.js";
import type { Router } from "./router.js";
import type { RelayStore } from "./store.js";

/** Every pump wakes this often in a cluster (a lost event costs at most this much delay). */
export const CLUSTER_POLL_MS = 5_000;
/** … and this often while the bus or the database is down. */
export const CLUSTER_POLL_UNHEALTHY_MS = 1_000;
/** A store found unreachable is probed this often until it answers. */
export const STORE_PROBE_MS = 1_000;
/**
 * Pumps woken per event-loop turn when all are (poll, resync, rescan): a kick reads the queue
 * synchronously (SyncPg blocks ~0.1-0.2 ms), so 10,000 sessions at once would hold the loop
 * for over a second; in slices, sessions' own frames are served in between.
 */
const KICK_SLICE = 200;

export interface ClusterTimings {
  /** 0 disables the poll (tests that prove events, not the poll, deliver). */
  readonly pollMs?: number;
  readonly unhealthyPollMs?: number;
  readonly probeMs?: number;
}

export interface ClusterWiringDeps {
  readonly cluster: Cluster;
  readonly router: Router;
  readonly directory: Directory;
  readonly devices: DeviceRoutes;
  readonly store: RelayStore;
  readonly lobby: LobbyAudience;
  readonly logger: Logger;
  /** Serving or not: the relay's health (health.ts). */
  readonly setServing: (serving: boolean) => void;
  readonly timings?: ClusterTimings;
}

export class ClusterWiring {
  private busHealthy = true;
  private storeHealthy = true;
  private stopped = false;
  private pollTimer: NodeJS.Timeout | undefined;
  private probeTimer: NodeJS.Timeout | undefined;
  private readonly pollMs: number;
  private readonly unhealthyPollMs: number;
  private readonly probeMs: number;

  constructor(private readonly d: ClusterWiringDeps) {
    this.pollMs = d.timings?.pollMs ?? CLUSTER_POLL_MS;
    this.unhealthyPollMs = d.timings?.unhealthyPollMs ?? CLUSTER_POLL_UNHEALTHY_MS;
    this.probeMs = d.timings?.probeMs ?? STORE_PROBE_MS;
  }

  get healthy(): boolean {
    return this.busHealthy && this.storeHealthy;
  }

  /** The handlers to start the cluster with; then the poll runs until stop(). */
  handlers(): ClusterHandlers {
    return {
      onEvent: (e) => {
        if (!this.stopped) this.onEvent(e);
      },
      onResync: () => {
        if (this.stopped) return;
        this.d.logger.info("cluster.resync", {});
        this.reloadUsers();
        this.kickAll();
      },
      onHealth: (healthy) => {
        if (this.stopped) return;
        this.busHealthy = healthy;
        this.changed();
      },
    };
  }

  startPoll(): void {
    this.busHealthy = this.d.cluster.healthy;
    this.changed();
    this.schedulePoll();
  }

  /** A store call found the database unreachable: NOT_SERVING, and a probe until it answers. */
  storeUnreachable(e: unknown): void {
    if (this.stopped || !this.storeHealthy) return;
    this.storeHealthy = false;
    this.d.logger.warn("store.unreachable", { error: e instanceof Error ? e.message : String(e) });
    this.changed();
    const probe = (): void => {
      this.probeTimer = undefined;
      if (this.stopped) return;
      try {
        this.d.store.lastSeq();
      } catch {
        this.probeTimer = setTimeout(probe, this.probeMs);
        this.probeTimer.unref();
        return;
      }
      this.storeHealthy = true;
      this.d.logger.info("store.reachable", {});
      this.changed();
      this.kickAll();
    };
    this.probeTimer = setTimeout(probe, this.probeMs);
    this.probeTimer.unref();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.pollTimer);
    clearTimeout(this.probeTimer);
  }

  /** Wakes every pump here, KICK_SLICE per turn; a pump whose session ended meanwhile ignores it. */
  private kickAll(): void {
    const all = this.d.router.allSessions();
    let i = 0;
    const slice = (): void => {
      const end = Math.min(all.length, i + KICK_SLICE);
      for (; i < end; i++) all[i]!.pump.kick();
      if (i < all.length && !this.stopped) setImmediate(slice);
    };
    slice();
  }

  /**
   * Events were maybe lost, `user` ones among them (a device list kept elsewhere that drops a
   * device with a session here, a name released and bound again): every cached device list is
   * read again at next use, and each cached user whose binding or list version changed (one read
   * of each finds them) is reloaded as on a `user` event: a dropped device's session ends here,
   * and the sessions here learn the change. Only those: announcing every user would send each
   * session the whole directory. KICK_SLICE users per turn (each costs two reads).
   */
  private reloadUsers(): void {
    const { devices, directory, store } = this.d;
    devices.forgetAll();
    const names: string[] = [];
    this.safely("resync", () => {
      const bound = new Map(store.listUsers().map((r) => [r.username, r]));
      const versions = new Map(store.devices.versions());
      for (const u of directory.all()) {
        const r = bound.get(u.username);
        const changed = r === undefined || !r.sigSpki.equals(u.record.sigSpki) || !r.encSpki.equals(u.record.encSpki)
          || (versions.get(u.username) ?? 0) !== u.deviceListVersion;
        if (changed) names.push(u.username);
      }
    });
    let i = 0;
    const slice = (): void => {
      const end = Math.min(names.length, i + KICK_SLICE);
      for (; i < end && !this.stopped; i++) this.user(names[i]!);
      if (i < names.length && !this.stopped) setImmediate(slice);
    };
    slice();
  }

  private changed(): void {
    if (!this.stopped) this.d.setServing(this.healthy);
  }

  private schedulePoll(): void {
    if (this.stopped || this.pollMs <= 0) return;
    this.pollTimer = setTimeout(() => {
      this.kickAll();
      this.schedulePoll();
    }, this.healthy && this.d.cluster.healthy ? this.pollMs : this.unhealthyPollMs);
    this.pollTimer.unref();
  }

  private onEvent(e: ClusterEvent): void {
    const { router } = this.d;
    switch (e.kind) {
      case "rows":
        router.arrivedFromCluster(e.rows);
        return;
      case "rescan":
        this.kickAll();
        return;
      case "session":
        router.movedElsewhere(e.address);
        return;
      case "presence":
        this.presence(e.username, e.address, e.online);
        return;
      case "user":
        this.user(e.username);
        return;
    }
  }

  /** A device came online or went on another relay: the sessions here see the user's presence when it changed. */
  private presence(username: string, address: string, online: boolean): void {
    const { router, lobby } = this.d;
    if (!online && !router.isAddressOnline(address)) lobby.wentOffline(address);
    if (router.sessionsOf(username).length > 0) return; // online here: nothing changes for the sessions here
    const user = this.safely("presence", () => this.d.directory.get(username));
    if (user !== undefined) router.announceFromCluster(user);
  }

  /** Another relay bound, re-bound or released the name, or kept a new device list: reload it from the store. */
  private user(username: string): void {
    const { router, directory, devices, store } = this.d;
    this.safely("user", () => {
      const user = directory.reload(store.getUser(username), username);
      devices.forget(username);
      // Released, or bound to another key (§8.2): this relay's sessions of the old key end, as the
      // releasing relay's do at their next write (devices.ts checkStillBound).
      const current = router.sessionsOf(username).filter((s) => {
        if (user !== undefined && s.user.record.sigSpki.equals(user.record.sigSpki)) return true;
        s.released();
        return false;
      });
      if (user === undefined) return;
      const routes = devices.of(username);
      user.deviceListVersion = routes.version;
      // Devices the new list dropped end here too (as on the relay that kept the list).
      for (const s of current) {
        if (!routes.addresses.includes(s.address)) s.unlinked();
        else s.user.deviceListVersion = routes.version;
      }
      router.announceFromCluster(user);
    });
  }

  private safely<T>(what: string, fn: () => T): T | undefined {
    try {
      return fn();
    } catch (e) {
      // The store failed (reported by the store guard); the next event or poll catches up.
      this.d.logger.warn("cluster.event_failed", { event: what, error: e instanceof Error ? e.message : String(e) });
      return undefined;
    }
  }
}
