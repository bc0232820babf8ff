// The relay's composition root: opens the store, builds the gRPC server with raw-bytes
// (de)serialisers, serves sessions and the health service, commits envelopes in groups,
// purges expired envelopes, and shuts down in order. Opening the data dir and binding the port
// (each failure one sentence: RelayStartError) are in startup.ts; what startRelay takes, hands
// back and reports (StartRelayOptions, RunningRelay, RelayStats) in relay-options.ts.
// All IO is injected (host, port, data dir, logger, clock), so tests run it on 127.0.0.1:0.
import { Server, ServerCredentials } from "@grpc/grpc-js";
import { Directory } from "./directory.js";
import { UnboundNames } from "./unbound-names.js";
import { DiskReserve, fsSpace, reserveBytesFor } from "./disk-budget.js";
import { sessionEnd, statusOf } from "./errors.js";
import { encodeResponse } from "./frames.js";
import { GroupCommitter } from "./group-commit.js";
import { HandshakeBudget, sourceOf } from "./handshake-budget.js";
import { HEALTH_SERVICE_DEFINITION, RelayHealth } from "./health.js";
import { LINK_MAX_FRAME_BYTES, LinkRendezvous } from "./link-rendezvous.js";
import {
  DELIVERY_BUDGET_BYTES, DELIVERY_STALL_MS, DELIVERY_WINDOW, HANDSHAKE_TIMEOUT_MS, MAX_PENDING_FRAMES, PRE_AUTH_MAX_FRAME_BYTES, resolveLimits,
} from "./limits.js";
import { RegistrationLimiter } from "./registrations.js";
import { RoomListing } from "./room-listing.js";
import { MAX_LISTED_ROOMS, MAX_LISTED_ROOMS_PER_CREATOR } from "./mls-ds.js";
import { SendsInFlight } from "./resends.js";
import { LobbyAudience } from "./lobby-audience.js";
import { Rooms } from "./rooms.js";
import { Router } from "./router.js";
import { DeviceRoutes } from "./devices.js";
import { DeviceRates } from "./rate-buckets.js";
import { SessionOpenRates } from "./open-rates.js";
import { serveSession, type SessionDeps } from "./session.js";
import { bind, loadQueues, openDataDir, RelayStartError } from "./startup.js";
import { walAllowanceFor, type PurgeResult } from "./store.js";
import { guardStore } from "./cluster-store-guard.js";
import { ClusterWiring } from "./cluster-wiring.js";
import { adaptStream, type OutgoingBytes, type RawDuplex } from "./stream.js";
import { WriteBudget } from "./write-budget.js";
import { loadOrCreateTlsIdentity, TlsIdentityError, tlsIdentityFromPem, type RelayTlsIdentity } from "./tls-identity.js";
import { RELAY_VERSION } from "./version.js";
import { PLAINTEXT_CHANNEL_BINDING, tlsChannelBinding } from "../protocol/keys.js";

import { channelOptions, KEEPALIVE, RAW_SESSION_SERVICE } from "./relay-service.js";
export { defaultRelayDataDir } from "./paths.js";
export { channelOptions, KEEPALIVE, type KeepaliveOptions } from "./relay-service.js";
export { RelayStartError } from "./startup.js";

export type { RelayStats, RunningRelay, StartRelayOptions } from "./relay-options.js";
import type { RelayStats, RunningRelay, StartRelayOptions } from "./relay-options.js";

const DEFAULT_SHUTDOWN_GRACE_MS = 5000;
const SHED_LOG_MS = 10_000;
const MAX_PURGE_INTERVAL_MS = 60 * 60 * 1000;

/** Least time between two attempts to write the disk reserve again. */
const RESERVE_RETRY_MS = 10_000;

/** The relay's exit status after a failed WAL sync (EX_IOERR): restart it; nothing it answered ACCEPTED is lost. */
export const EXIT_SYNC_FAILED = 74;

export async function startRelay(options: StartRelayOptions): Promise<RunningRelay> {
  const { logger } = options;
  const limits = resolveLimits(options.limits);
  const clock = options.clock ?? Date.now;
  if (options.plaintext === true && options.tls !== undefined) throw new RelayStartError("a relay serves either TLS or plaintext, not both");
  const space = options.fsSpace ?? fsSpace;
  const injected = options.store;
  const opened = injected === undefined
    ? openDataDir(options.dataDir, clock, options.maxDatabaseBytes, space)
    : { store: injected, budget: Number.MAX_SAFE_INTEGER, budgetRule: "the database's own" };
  const { budget, budgetRule } = opened;
  const { cluster } = options;
  // In a cluster every store call reports an unreachable database (health NOT_SERVING until a
  // probe answers); one relay on its embedded store calls the store directly, at no extra cost.
  let wiring: ClusterWiring | undefined;
  const store = cluster === undefined ? opened.store : guardStore(opened.store, (e) => wiring?.storeUnreachable(e));
  const closeStore = (): void => {
    wiring?.stop();
    if (injected === undefined) store.close();
  };
  let tls: RelayTlsIdentity | undefined;
  try {
    tls = options.plaintext === true ? undefined
      : options.tls !== undefined ? tlsIdentityFromPem(options.tls.cert, options.tls.key, "--tls-cert/--tls-key")
      : loadOrCreateTlsIdentity(options.dataDir, clock);
  } catch (e) {
    closeStore();
    if (e instanceof TlsIdentityError) throw new RelayStartError(e.message, { cause: e });
    throw e;
  }
  // A full disk must still let acks through (they free space): disk-budget.ts.
  const reserve: Pick<DiskReserve, "held" | "bytes" | "restore" | "release"> = injected === undefined
    ? new DiskReserve(options.dataDir, reserveBytesFor(budget), space)
    : { held: true, bytes: 0, restore: () => true, release: () => false };
  reserve.restore();
  let reserveTriedAt = 0;
  const router = new Router(cluster);
  const committer = new GroupCommitter({
    store, logger, ...(options.commitMode === undefined ? {} : { mode: options.commitMode }),
    // Deliveries start only once the rows are committed; a released reserve is written again
    // once the disk has room (checked at most every RESERVE_RETRY_MS).
    onCommitted: (rows) => {
      router.delivered(rows);
      const now = Date.now();
      if (!reserve.held && now - reserveTriedAt >= RESERVE_RETRY_MS) {
        reserveTriedAt = now;
        if (reserve.restore()) logger.info("store.reserve_restored", { bytes: reserve.bytes });
      }
    },
    maxBatchBytes: Math.floor(walAllowanceFor(budget) / 4),
    // Rows of MLS commits that waited behind a batch's sync: a kick, they were counted already.
    onRowsShown: (recipients) => router.arrivedFromCluster([...recipients].map((a) => [a, 0] as const)),
    onSyncFailed: options.onSyncFailed ?? (() => {
      logger.error("relay.exit", { reason: "a sync of the database's write-ahead log failed: nothing written since is known to be on disk; restart the relay (what it answered ACCEPTED is kept)", status: EXIT_SYNC_FAILED });
      process.exit(EXIT_SYNC_FAILED);
    }),
    onStorageFull: () => {
      const freed = reserve.release();
      if (freed) {
        reserveTriedAt = Date.now();
        logger.warn("store.reserve_released", { bytes: reserve.bytes, reason: "a commit failed for lack of space: acks can still free it" });
      }
      return freed;
    },
  });
  const health = new RelayHealth();
  const outgoing: OutgoingBytes = { bytes: 0 };
  const writeBudget = new WriteBudget(options.writeBudget ?? { limitBytes: DELIVERY_BUDGET_BYTES, stallMs: DELIVERY_STALL_MS });
  const handshakes = new HandshakeBudget(limits.maxPendingHandshakes, limits.maxHandshakesPerAddress);
  const links = new LinkRendezvous({ logger, handshakes, ...(options.linkLimits === undefined ? {} : { limits: options.linkLimits }) });
  // Names found unbound lately, shared: whichever of the two reads a made-up name first spares the other its read.
  const unbound = new UnboundNames();
  const directory = Directory.load(store, { readThrough: cluster !== undefined, unbound });
  const devices = new DeviceRoutes(store, undefined, unbound);
  // Per device (queue address): a lobby message is stored for the devices online (or just gone),
  // on any relay of the cluster.
  const lobby = new LobbyAudience(limits.lobbyGraceMs, clock, (a) => router.isAddressOnline(a), directory.size > 0);
  const deps: SessionDeps = {
    store,
    directory,
    devices,
    router,
    rooms: new Rooms({ store, router, limits, clock, logger }),
    committer,
    resends: new SendsInFlight(),
    limits,
    logger,
    clock,
    relayVersion: RELAY_VERSION,
    handshakeTimeoutMs: options.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS,
    deliveryWindow: options.deliveryWindow ?? DELIVERY_WINDOW,
    ...(options.answerStallMs === undefined ? {} : { answerStallMs: options.answerStallMs }),
    roomListing: new RoomListing(store, clock, MAX_LISTED_ROOMS, MAX_LISTED_ROOMS_PER_CREATOR),
    registrations: new RegistrationLimiter(limits.registrationBurst, limits.registrationsPerHour),
    lobby,
    // §13.2: per device, across its sessions; room for every session and as many gone recently.
    rates: new DeviceRates(limits.messagesPerSecond, limits.burst, 2 * limits.maxSessions, (a) => router.sessionAt(a) !== undefined),
    // §9.1 step 4: a key's and an address's bucket per device, room for every session's and as many again.
    opens: new SessionOpenRates(limits.sessionOpensPerMinute, limits.sessionOpenBurst, 4 * limits.maxSessions),
    channelBinding: tls === undefined ? PLAINTEXT_CHANNEL_BINDING : tlsChannelBinding(tls.certDer),
    ...(options.protocolVersions === undefined ? {} : { protocolVersions: options.protocolVersions }),
  };

  // Streams shed by the handshake budget are logged as a count, at most every SHED_LOG_MS: a
  // flood must not become a flood of log lines.
  let shed = 0;
  let shedSinceLog = 0;
  let shedLoggedAt = -Infinity;
  const noteShed = (source: string, reason: string): void => {
    shed++;
    shedSinceLog++;
    const now = performance.now();
    if (now - shedLoggedAt < SHED_LOG_MS) return;
    logger.warn("handshake.shed", { refused: shedSinceLog, lastSource: source, reason, pending: handshakes.pending });
    shedLoggedAt = now;
    shedSinceLog = 0;
  };
  let warnedReceiveLimit = false;
  const streamOptions = {
    maxPendingFrames: options.maxPendingFrames ?? MAX_PENDING_FRAMES,
    outgoing,
    writeBudget,
    preAuthFrameBytes: PRE_AUTH_MAX_FRAME_BYTES,
    maxFrameBytes: limits.maxFrameBytes,
    // An ended session's stream flushes at most as long as an answer may wait unread (§13.3).
    ...(options.answerStallMs === undefined ? {} : { endedFlushMs: options.answerStallMs }),
    onReceiveLimitUnavailable: () => {
      if (warnedReceiveLimit) return;
      warnedReceiveLimit = true;
      logger.warn("relay.pre_auth_limit_degraded", {
        detail: "this grpc-js version does not let the relay refuse a big frame at its length prefix; big pre-authentication frames are refused once received",
      });
    },
  };

  let stopping = false;
  const running = new Set<Promise<void>>();
  const server = new Server(channelOptions(limits, options.keepalive ?? KEEPALIVE));
  server.addService(HEALTH_SERVICE_DEFINITION, health.implementation());
  server.addService(RAW_SESSION_SERVICE, {
    session: (call: RawDuplex) => {
      const stream = adaptStream(call, streamOptions);
      if (stopping) {
        stream.end(statusOf(sessionEnd.shuttingDown()));
        return;
      }
      // A stream starts in the handshake budget, never in a session slot (the session cap is
      // checked once the peer has proven its key: handshake.ts).
      const source = sourceOf(stream.peer);
      const admitted = handshakes.enter(source);
      if (admitted.kind !== "admitted") {
        const refusal = admitted.kind === "source-busy" ? sessionEnd.sourceBusy(admitted.limit) : sessionEnd.handshakesBusy(admitted.limit);
        noteShed(source, admitted.kind);
        stream.end(statusOf(refusal));
        return;
      }
      router.trackStream(stream);
      const served = serveSession(stream, deps, { source, ticket: admitted.ticket }).finally(() => {
        router.untrackStream(stream);
        running.delete(served);
      });
      running.add(served);
    },
    link: (call: RawDuplex) => {
      // Strangers' streams: frames above a payload's size are refused at their length prefix.
      const stream = adaptStream(call, { ...streamOptions, preAuthFrameBytes: LINK_MAX_FRAME_BYTES });
      const served = links.serve(stream).finally(() => running.delete(served));
      running.add(served);
    },
  });

  if (cluster !== undefined) {
    wiring = new ClusterWiring({
      cluster, router, directory, devices, store, lobby, logger, setServing: (serving) => health.setServing(serving),
      ...(options.clusterTimings === undefined ? {} : { timings: options.clusterTimings }),
    });
    try {
      await cluster.start(wiring.handlers());
    } catch (e) {
      closeStore();
      throw new RelayStartError(e instanceof Error ? e.message : String(e), { cause: e });
    }
    wiring.startPoll();
  }

  try {
    loadQueues(store, logger);
  } catch (e) {
    server.forceShutdown();
    closeStore();
    throw e;
  }

  const creds = tls === undefined
    ? ServerCredentials.createInsecure()
    : ServerCredentials.createSsl(null, [{ cert_chain: tls.certPem, private_key: tls.keyPem }], false);
  let port: number;
  try {
    port = await bind(server, options.host, options.port, creds);
  } catch (e) {
    server.forceShutdown();
    closeStore();
    throw e;
  }

  const purgeExpired = (): PurgeResult => {
    const result = store.purgeOlderThan(clock() - limits.retentionMs);
    if (result.queueRows > 0 || result.acceptedIds > 0) logger.info("queue.purged", { ...result });
    const keyPackages = store.mls.purgeExpiredKeyPackages();
    if (keyPackages > 0) logger.info("mls.key_packages.purged", { keyPackages });
    // Kept commits past the retention (each group's newest stays) and of groups nobody is in (PROTOCOL.md §8.2).
    const commits = store.mls.purgeCommits(clock() - limits.retentionMs);
    if (commits > 0) logger.info("mls.commits.purged", { commits });
    return result;
  };
  const purgeSafely = (): void => {
    if (!reserve.held && reserve.restore()) logger.info("store.reserve_restored", { bytes: reserve.bytes });
    try {
      purgeExpired();
    } catch (e) {
      logger.error("queue.purge_failed", { error: e instanceof Error ? e.message : String(e) });
    }
  };
  purgeSafely();
  // One timer for the whole relay (none per session); unref'd so it never keeps the process up.
  const purgeTimer = setInterval(purgeSafely, Math.min(MAX_PURGE_INTERVAL_MS, Math.max(1000, Math.floor(limits.retentionMs / 4))));
  purgeTimer.unref();

  logger.info("relay.start", {
    host: options.host, port, ...(cluster === undefined ? {} : { instance: cluster.instanceId }), tls: tls !== undefined, users: deps.directory.size, version: RELAY_VERSION,
    // The data dir's database has a budget and a disk reserve; a store opened by the caller (PostgreSQL) has its own quota.
    ...(injected === undefined ? { dbBudgetMb: Math.round((budget / (1024 * 1024)) * 10) / 10, dbBudgetRule: budgetRule, diskReserve: reserve.held } : { store: "external" }),
    ...(tls === undefined ? {} : { certSha256: tls.fingerprint, certCreated: tls.created }),
  });
  if (tls === undefined) {
    logger.warn("relay.plaintext", { message: "serving without TLS (--insecure-plaintext): anyone on the network path can read metadata and hijack sessions" });
  }

  let stopped: Promise<void> | undefined;
  const shutdown = (): Promise<void> => {
    stopped ??= (async () => {
      stopping = true;
      // 0. Health checks say NOT_SERVING from now on (watchers hear it at once), so probes and
      //    load balancers stop sending clients here.
      health.stopServing();
      wiring?.stop();
      clearInterval(purgeTimer);
      logger.info("relay.stopping", { sessions: router.streamCount });
      const graceMs = options.shutdownGraceMs ?? DEFAULT_SHUTDOWN_GRACE_MS;
      // 1. Stop accepting: listeners close and every connection gets GOAWAY (streams already
      //    open carry on); the callback fires once every connection has closed.
      const drained = new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
      // 2. End live streams: a Notice first, then UNAVAILABLE (clients reconnect later).
      // Shown to users as "relay: …": a sentence for people, not a status.
      // In a cluster the client moves to another relay of its list at once (the UNAVAILABLE end).
      const notice = encodeResponse({ $case: "notice", value: { text: cluster === undefined
        ? "it is shutting down; you will be reconnected when it is back (messages are kept)"
        : "it is stopping; you will be moved to another relay (messages are kept)" } });
      router.endAll(statusOf(sessionEnd.shuttingDown()), (s) => void s.stream.send(notice));
      links.shutdown();
      //    Health watches end too: they would otherwise hold every connection open.
      health.endWatches(statusOf(sessionEnd.shuttingDown()));
      // 3. Wait for connections to close, up to the grace period; 4. then force them.
      let timer: NodeJS.Timeout | undefined;
      const graceOver = new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), graceMs);
      });
      if ((await Promise.race([drained.then(() => "drained" as const), graceOver])) === "timeout") {
        logger.warn("relay.force_shutdown", { sessions: router.streamCount });
        server.forceShutdown();
      }
      clearTimeout(timer);
      // Sessions finish their bookkeeping (presence, logs) before the store closes under them;
      // envelopes still waiting for their group commit are committed (and answered) first.
      committer.close();
      await committer.idle();
      await Promise.allSettled([...running]);
      closeStore();
      logger.info("relay.stop", {});
    })();
    return stopped;
  };

  const stats = (): RelayStats => ({
    sessions: router.streamCount,
    handshakes: handshakes.pending,
    shedHandshakes: shed,
    online: router.onlineCount,
    outgoingBytes: outgoing.bytes,
    deliveryBytesInFlight: writeBudget.inFlightBytes,
    stalledDeliveryBytes: writeBudget.stalledBytes,
    commits: committer.stats.commits,
    committedEnvelopes: committer.stats.envelopes,
    largestBatch: committer.stats.largestBatch,
    failedCommits: committer.stats.failedCommits,
    commitMs: committer.stats.commitMs,
    linkRendezvous: links.size,
    deviceRoutes: devices.cached,
    rateBuckets: deps.rates.size,
    openBuckets: deps.opens.size,
  });

  return { port, relayId: Buffer.from(store.relayId), tls, limits, purgeExpired, stats, shutdown };
}
