// Starts a real relay in-process on 127.0.0.1:0 with a temp data dir, collects its log lines,
// tracks the raw sessions a test opens, and cleans everything up.
// The store follows SECURECHAT_TEST_STORE (test/helpers/pg.ts): relay.db in the data dir (the
// default), or "postgres": a fresh database per data dir on the run's cluster, opened here with
// openPgStore and handed to startRelay as `store`; a restart (or a new TestRelay on the same data
// dir) reuses that database, and it is dropped with the data dir (or after the test file).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { afterAll } from "vitest";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { jsonLineLogger, type LogLevel } from "../../src/protocol/log.js";
import type { RelayLimits } from "../../src/server/limits.js";
import type { FsSpace } from "../../src/server/disk-budget.js";
import type { CommitMode } from "../../src/server/group-commit.js";
import { startRelay, type KeepaliveOptions, type RunningRelay } from "../../src/server/relay.js";
import { PLAINTEXT_TRANSPORT, pinnedTransport, RawSession, type RawTransport } from "./raw-session.js";
import type { Welcome } from "../../src/gen/securechat/v1/chat.js";
import { openStore, type RelayStore, type SyncFile } from "../../src/server/store.js";
import { openPgStore } from "../../src/server/store/pg/pg-store.js";
import { releaseUsername } from "../../src/server/users-command.js";
import { databaseForDataDir, dropDatabaseOfDataDir, dropDataDirDatabases, testStoreKind, type TestStoreKind } from "./pg.js";

// Databases of data dirs the test file did not own (it removes those dirs itself) go after the
// file. Only under vitest: scripts/bench imports this module too.
if (process.env["VITEST"] !== undefined) afterAll(dropDataDirDatabases);

export interface TestRelayOptions {
  readonly limits?: Partial<RelayLimits> | undefined;
  readonly clock?: () => number;
  /** Reuse a data dir (restart tests); otherwise a fresh temp dir, removed by cleanup(). */
  readonly dataDir?: string;
  readonly handshakeTimeoutMs?: number;
  readonly shutdownGraceMs?: number;
  readonly deliveryWindow?: number;
  readonly maxPendingFrames?: number;
  /** The relay-wide delivery write budget (write-budget.ts). */
  readonly writeBudget?: { readonly limitBytes: number; readonly stallMs: number };
  readonly answerStallMs?: number;
  readonly logLevel?: LogLevel;
  /**
   * Serve TLS with this PEM certificate and key. Without it the relay serves TLS with its own
   * self-signed certificate (the zero-setup default); either way sessions pin exactly that one.
   */
  readonly tls?: { readonly cert: Buffer; readonly key: Buffer };
  /** Serve plaintext (--insecure-plaintext); only tests of that mode. */
  readonly plaintext?: boolean;
  /** Cap relay.db (a "full disk" on purpose). */
  readonly maxDatabaseBytes?: number;
  readonly commitMode?: CommitMode;
  /** Hello.protocol_version values the relay accepts (default: the relay's own, 1 and 2). */
  readonly protocolVersions?: readonly number[];
  /** The relay's keepalive pings (short ones let a test see a dead client dropped). */
  readonly keepalive?: KeepaliveOptions;
  /** The file system's free space as the relay sees it (default budget, disk reserve). */
  readonly fsSpace?: (dir: string) => FsSpace;
  /** Embedded store only: how relay.db's WAL is synced (store/wal-sync.ts); tests hold or fail it. */
  readonly syncWal?: SyncFile;
  /** What the relay does when a WAL sync failed (default: exit the process). */
  readonly onSyncFailed?: (error: unknown) => void;
}

/**
 * Registrations per source address, and session opens per device (suites connect one fixture
 * identity again and again, faster than any client would), in tests: high enough that no suite
 * meets them by accident. The tests of those limits set their own.
 */
export const TEST_REGISTRATION_LIMITS = {
  registrationBurst: 100_000, registrationsPerHour: 3_600_000, sessionOpenBurst: 100_000, sessionOpensPerMinute: 6_000_000,
} as const;

export type LogLine = Readonly<Record<string, unknown>> & { readonly event: string };

export class TestRelay {
  readonly logs: LogLine[] = [];
  private readonly sessions = new Set<RawSession>();
  private relay: RunningRelay | undefined;
  private readonly ownsDataDir: boolean;
  readonly dataDir: string;
  /** The store the relay runs on (SECURECHAT_TEST_STORE), fixed for this harness's life. */
  readonly storeKind: TestStoreKind = testStoreKind();
  /** The PostgreSQL store opened for the running relay (postgres only; closed after each stop). */
  private pgStore: RelayStore | undefined;
  /** relay.db opened here when the test syncs its WAL itself (syncWal); closed after each stop. */
  private embeddedStore: RelayStore | undefined;
  /** The PostgreSQL database's URL (postgres only, once started). */
  storeUrl: string | undefined;

  private constructor(private readonly options: TestRelayOptions) {
    this.ownsDataDir = options.dataDir === undefined;
    this.dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), "sc-relay-test-"));
    if (this.storeKind === "postgres") {
      // The disk budget is relay.db's: a test of it does not apply to the PostgreSQL store.
      if (options.maxDatabaseBytes !== undefined || options.fsSpace !== undefined) {
        throw new Error("maxDatabaseBytes and fsSpace are the embedded store's disk budget: this test does not apply to SECURECHAT_TEST_STORE=postgres");
      }
    }
  }

  static async start(options: TestRelayOptions = {}): Promise<TestRelay> {
    const t = new TestRelay(options);
    await t.startRelay();
    return t;
  }

  private async openStore(): Promise<RelayStore | undefined> {
    if (this.storeKind !== "postgres") {
      if (this.options.syncWal === undefined) return undefined;
      // relay.db opened here, as the relay would, with the test's sync of its WAL.
      this.embeddedStore = openStore(join(this.dataDir, "relay.db"), { syncWal: this.options.syncWal });
      return this.embeddedStore;
    }
    const db = await databaseForDataDir(this.dataDir);
    this.storeUrl = db.url;
    this.pgStore = openPgStore(db.url, this.options.clock ? { clock: this.options.clock } : {});
    return this.pgStore;
  }

  private closeStore(): void {
    const s = this.pgStore ?? this.embeddedStore;
    this.pgStore = undefined;
    this.embeddedStore = undefined;
    s?.close();
  }

  private async startRelay(): Promise<void> {
    const logger = jsonLineLogger((line) => this.logs.push(JSON.parse(line) as LogLine), this.options.logLevel ?? "debug");
    const store = await this.openStore();
    try {
      this.relay = await this.startOn(logger, store);
    } catch (e) {
      this.closeStore();
      throw e;
    }
  }

  private startOn(logger: ReturnType<typeof jsonLineLogger>, store: RelayStore | undefined): Promise<RunningRelay> {
    return startRelay({
      host: "127.0.0.1",
      port: 0,
      dataDir: this.dataDir,
      logger,
      // Every test client comes from 127.0.0.1, and tests bind names by the dozen: lift the
      // per-address registration limit unless a test sets its own (relay-flood tests do).
      limits: { ...TEST_REGISTRATION_LIMITS, ...this.options.limits },
      ...(this.options.clock ? { clock: this.options.clock } : {}),
      ...(this.options.handshakeTimeoutMs ? { handshakeTimeoutMs: this.options.handshakeTimeoutMs } : {}),
      ...(this.options.shutdownGraceMs ? { shutdownGraceMs: this.options.shutdownGraceMs } : {}),
      ...(this.options.tls ? { tls: this.options.tls } : {}),
      ...(this.options.plaintext ? { plaintext: true } : {}),
      ...(this.options.deliveryWindow ? { deliveryWindow: this.options.deliveryWindow } : {}),
      ...(this.options.maxPendingFrames ? { maxPendingFrames: this.options.maxPendingFrames } : {}),
      ...(this.options.writeBudget ? { writeBudget: this.options.writeBudget } : {}),
      ...(this.options.answerStallMs ? { answerStallMs: this.options.answerStallMs } : {}),
      ...(this.options.maxDatabaseBytes ? { maxDatabaseBytes: this.options.maxDatabaseBytes } : {}),
      ...(this.options.commitMode ? { commitMode: this.options.commitMode } : {}),
      ...(this.options.protocolVersions ? { protocolVersions: this.options.protocolVersions } : {}),
      ...(this.options.keepalive ? { keepalive: this.options.keepalive } : {}),
      ...(this.options.fsSpace ? { fsSpace: this.options.fsSpace } : {}),
      ...(store ? { store } : {}),
      ...(this.options.onSyncFailed ? { onSyncFailed: this.options.onSyncFailed } : {}),
    });
  }

  get running(): RunningRelay {
    if (this.relay === undefined) throw new Error("the relay is not running");
    return this.relay;
  }

  get address(): string {
    return `127.0.0.1:${this.running.port}`;
  }

  /** How an honest client that pinned this relay's certificate reaches it (plaintext if it serves that). */
  get transport(): RawTransport {
    const tls = this.running.tls;
    return tls === undefined ? PLAINTEXT_TRANSPORT : pinnedTransport(tls.certPem, tls.certDer);
  }

  /** A new session (not yet greeted), closed by cleanup(). */
  open(): RawSession {
    const s = new RawSession(this.address, this.transport);
    this.sessions.add(s);
    return s;
  }

  /** A new session that completed the handshake as `id`. */
  async connect(id: PrivateIdentity): Promise<RawSession & { welcome: Welcome }> {
    const s = this.open();
    const welcome = await s.handshake(id);
    return Object.assign(s, { welcome });
  }

  /** Log lines with this event name. */
  events(event: string): LogLine[] {
    return this.logs.filter((l) => l.event === event);
  }

  /** Waits (polling, with a deadline) for a log line of this event matching pred. */
  async waitForLog(event: string, pred: (l: LogLine) => boolean = () => true, timeoutMs = 5000): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.logs.find((l) => l.event === event && pred(l));
      if (hit !== undefined) return hit;
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for log event ${event}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** Closes a session and waits until the relay has let it go (presence is offline). */
  async disconnect(session: RawSession, username: string): Promise<void> {
    const before = this.events("session.close").filter((l) => l.user === username).length;
    session.close();
    await this.waitForLog("session.close", (l) => l.user === username && this.events("session.close").filter((x) => x.user === username).length > before);
  }

  /** Closes every session this harness opened. */
  closeSessions(): void {
    for (const s of this.sessions) s.close();
    this.sessions.clear();
  }

  /**
   * Undelivered rows for a queue address (a username or `user/deviceid`), read beside the
   * running relay: relay.db read-only, or the PostgreSQL store the relay runs on.
   */
  queuedRows(address: string): number {
    if (this.pgStore !== undefined) return this.pgStore.queueDepth(address);
    if (this.storeKind === "postgres") throw new Error("the relay is not running: no PostgreSQL store to read");
    const db = new DatabaseSync(join(this.dataDir, "relay.db"), { readOnly: true });
    try {
      return Number((db.prepare("SELECT COUNT(*) AS n FROM queue WHERE recipient = ?").get(address) as { n: number | bigint }).n);
    } finally {
      db.close();
    }
  }

  /**
   * `fn` on the relay's database through another writer than the relay (as another relay of a
   * cluster, or the operator's command, writes to it): relay.db opened again (embedded), or the
   * PostgreSQL store (the relay's caches do not see what is written through it either way).
   */
  besideRelay<T>(fn: (store: RelayStore) => T): T {
    if (this.pgStore !== undefined) return fn(this.pgStore);
    if (this.storeKind === "postgres") throw new Error("the relay is not running: no PostgreSQL store to write to");
    const store = openStore(join(this.dataDir, "relay.db"));
    try {
      return fn(store);
    } finally {
      store.close();
    }
  }

  /** The operator's `chat-relay users release NAME`, on whichever store the relay runs on. */
  releaseUser(username: string): boolean {
    if (this.pgStore !== undefined) return this.pgStore.releaseUser(username);
    if (this.storeKind === "postgres") throw new Error("the relay is not running: no PostgreSQL store to release in");
    return releaseUsername(this.dataDir, username);
  }

  /** Shuts the relay down (sessions see UNAVAILABLE); the data dir (and its database) stay. */
  async stop(): Promise<void> {
    const r = this.relay;
    this.relay = undefined;
    try {
      await r?.shutdown();
    } finally {
      // The relay does not close a store it was given: its opener does, after the relay is done.
      this.closeStore();
    }
  }

  /** Stops and starts again on the same data dir (a new port). */
  async restart(): Promise<void> {
    this.closeSessions();
    await this.stop();
    await this.startRelay();
  }

  async cleanup(): Promise<void> {
    this.closeSessions();
    await this.stop();
    if (this.ownsDataDir) {
      rmSync(this.dataDir, { recursive: true, force: true });
      await dropDatabaseOfDataDir(this.dataDir);
    }
  }
}
