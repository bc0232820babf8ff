#!/usr/bin/env -S node --max-semi-space-size=8
// chat-relay: the bin shim. Parses arguments, starts the relay (relay.ts) or runs an operator
// command on its data dir (users-command.ts), and owns the process: signals and exit codes
// live here and nowhere else. With --store postgres://… (or SECURECHAT_RELAY_STORE) the relay
// keeps its data in a PostgreSQL database it may share with other relays (cluster-store-open.ts);
// the data dir then holds only the pid lock and the TLS identity.
//
// --max-semi-space-size=8 keeps V8's young generation small: a storm of 1,000 handshakes grew it
// to tens of MB that stayed, 111 KB of RSS per idle session where 16 KB are live (npm run bench,
// relay-scale; ~70 KB with the flag), with no loss of throughput in relay-fanout. The flag cannot
// be set from inside the process; the benchmark's relay host runs with the same flags.
// Not set: MALLOC_MMAP_THRESHOLD_=65536. It makes glibc serve allocations of 64 KiB and more
// (delivery frames, grpc-js's copy of each) from mmap and give them back when freed, so RSS per
// session after a fan-out burst at 1,000 sessions fell from ~280 KB to ~200 KB; but the mmap and
// munmap calls (and zeroed pages) cost relay-fanout ~40% of its deliveries per second at K=100
// (2,929 -> 1,794/s, relay CPU 73% -> 105% of a core, same run against the build without it).
// Without it the memory after a burst is a bound, not a leak (flat over three bursts: see
// relay-scale); an operator who prefers the lower RSS can set the variable in the environment.
import "./thread-pool.js"; // first: sizes libuv's pool before anything starts it
import { readFileSync } from "node:fs";
import { CERT_FILE } from "./tls-identity.js";
import { PID_FILE, processAlive, readPidFile, relayHolderState } from "../common/pid-file.js";
import { PidLockPathUnsafe } from "../common/pid-lock.js";
import { DataDirLocked, lockDataDir } from "./pid-lock.js";
import { join } from "node:path";
import { X509Certificate } from "node:crypto";
import { certificateFingerprint } from "../protocol/x509.js";
import { logVerbosity, setLogger, setLogVerbosity } from "@grpc/grpc-js";
import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import { isLogLevel, jsonLineLogger, type LogLevel } from "../protocol/log.js";
import { DEFAULT_RELAY_LIMITS, HANDSHAKE_TIMEOUT_MS, type RelayLimits } from "./limits.js";
import { defaultRelayDataDir } from "./paths.js";
import { RelayStartError, startRelay } from "./relay.js";
import { ensurePrivateDataDir } from "./startup.js";
import { formatUserList, listBoundUsers, releaseUsername, type UsersTarget } from "./users-command.js";
import type { SharedStore } from "./cluster-store-open.js";
import { databaseHostOf, storeUrlOf, STORE_ENV } from "./cluster-url.js";
import { RELAY_VERSION } from "./version.js";
import { usageSentence } from "../protocol/usage.js";

/** The shared-store code (and its PostgreSQL driver), loaded only when a store is given. */
const sharedStoreCode = (): Promise<typeof import("./cluster-store-open.js")> => import("./cluster-store-open.js");

/** A failure of the shared database (a PgError from the store) as the one sentence to print; undefined for anything else. */
async function databaseSentence(url: string | undefined, e: unknown): Promise<string | undefined> {
  if (url === undefined || (e as Error | undefined)?.name !== "PgError") return undefined;
  return (await sharedStoreCode()).databaseFailure(url, e).message;
}

const DAY_MS = 24 * 60 * 60 * 1000;
const MIB = 1024 * 1024;

function fail(message: string, code = 1): number {
  process.stderr.write(`chat-relay: ${message}\n`);
  return code;
}

/** Exit status of a bad invocation (an unknown option, a bad value): one sentence, like chat-tui. */
const USAGE_ERROR = 2;

interface RunArgs {
  readonly host: string;
  readonly port: number;
  readonly dataDir: string;
  readonly logLevel: LogLevel;
  readonly limits: Partial<RelayLimits>;
  readonly tlsCert: string | undefined;
  readonly tlsKey: string | undefined;
  readonly maxDatabaseBytes: number | undefined;
  readonly handshakeTimeoutMs: number;
  readonly plaintext: boolean;
  /** --store as given (SECURECHAT_RELAY_STORE when absent; neither: the embedded store, relay.db in the data dir). */
  readonly store: string | undefined;
}

/** A global string option as a subcommand's handler sees it. */
function stringOption(v: unknown): string | undefined {
  return typeof v === "string" ? v : undefined;
}

function readTls(certPath: string | undefined, keyPath: string | undefined): { cert: Buffer; key: Buffer } | undefined {
  if (certPath === undefined && keyPath === undefined) return undefined;
  if (certPath === undefined || keyPath === undefined) throw new RelayStartError("--tls-cert and --tls-key go together: give both or neither");
  const read = (path: string, what: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (e) {
      throw new RelayStartError(`cannot read the TLS ${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
  };
  return { cert: read(certPath, "certificate"), key: read(keyPath, "key") };
}

async function runRelay(args: RunArgs): Promise<number> {
  let storeUrl: string | undefined;
  try {
    storeUrl = storeUrlOf(args.store);
  } catch (e) {
    if (e instanceof RelayStartError) return fail(e.message, USAGE_ERROR);
    throw e;
  }
  const a = { ...args, storeUrl };
  const logger = jsonLineLogger((line) => process.stderr.write(line), a.logLevel);
  // grpc-js writes its own plain-text lines to stderr (e.g. "E No address added" next to our
  // sentence about a busy port). Route them into the JSON log at debug level instead.
  setLogger({ error: (...args: unknown[]) => logger.debug("grpc", { message: args.map(String).join(" ") }) });
  setLogVerbosity(a.logLevel === "debug" ? logVerbosity.INFO : logVerbosity.ERROR);
  let relay;
  let lock;
  let shared: SharedStore | undefined;
  try {
    if (a.plaintext && (a.tlsCert !== undefined || a.tlsKey !== undefined)) {
      return fail("--insecure-plaintext and --tls-cert/--tls-key exclude each other: choose TLS or plaintext", USAGE_ERROR);
    }
    const tls = readTls(a.tlsCert, a.tlsKey);
    // One relay per data dir (relay.pid); startRelay creates the dir, so make sure it exists first.
    // Private first: relay.pid in a directory others may write could be planted or swapped.
    ensurePrivateDataDir(a.dataDir);
    lock = lockDataDir(a.dataDir);
    if (a.storeUrl !== undefined) shared = (await sharedStoreCode()).openSharedStore(a.storeUrl, logger);
    relay = await startRelay({
      host: a.host, port: a.port, dataDir: a.dataDir, logger, limits: a.limits, ...(tls === undefined ? {} : { tls }),
      ...(shared === undefined ? {} : { store: shared.store, cluster: shared.cluster }),
      ...(a.plaintext ? { plaintext: true } : {}),
      ...(a.maxDatabaseBytes === undefined ? {} : { maxDatabaseBytes: a.maxDatabaseBytes }),
      handshakeTimeoutMs: a.handshakeTimeoutMs,
    });
    const shownHost = a.host.includes(":") ? `[${a.host}]` : a.host;
    logger.info("relay.listening", {
      address: `${shownHost}:${relay.port}`, dataDir: a.dataDir, pid: process.pid,
      ...(a.storeUrl === undefined ? {} : { store: databaseHostOf(a.storeUrl), instance: shared?.cluster.instanceId }),
      ...(relay.tls === undefined ? { tls: false } : { tls: true, certSha256: relay.tls.fingerprint }),
    });
    // Only then does relay.pid name the port: whoever finds the relay through it (chat-tui's
    // zero-setup start) finds this line already in the log.
    lock.listening(a.host, relay.port);
  } catch (e) {
    await shared?.close().catch(() => undefined);
    lock?.release();
    if (e instanceof DataDirLocked) return fail(e.message, 3);
    if (e instanceof PidLockPathUnsafe) return fail(e.message);
    if (e instanceof RelayStartError || e instanceof RangeError) return fail(e.message);
    const dbFailure = await databaseSentence(a.storeUrl, e);
    if (dbFailure !== undefined) return fail(dbFailure);
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "EACCES" || code === "EPERM" || code === "ENOTDIR" || code === "EROFS") return fail(`cannot use data directory ${a.dataDir}: ${(e as Error).message}`);
    throw e;
  }

  // First SIGINT/SIGTERM: orderly shutdown, exit 0. A second one while that runs: exit now.
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  const forceExit = (): void => {
    process.stderr.write("chat-relay: second signal, exiting without waiting for sessions\n");
    process.exit(130);
  };
  process.once("SIGINT", forceExit);
  process.once("SIGTERM", forceExit);
  logger.info("relay.signal", { signal });
  await relay.shutdown();
  // Last: this relay's presence goes from the shared database (the others announce it offline).
  if (shared !== undefined) {
    const { databaseFailure } = await sharedStoreCode();
    await shared.close().catch((e: unknown) => logger.warn("cluster.close_failed", { error: databaseFailure(a.storeUrl ?? "", e).message }));
  }
  lock.release();
  return 0;
}

/** chat-relay stop: SIGTERM to the relay holding the data dir, then wait until it is gone. */
async function stopRelay(dataDir: string): Promise<number> {
  const holder = readPidFile(dataDir);
  if (holder === undefined) return fail(`no relay is running on the data dir ${dataDir}`);
  // Never signal a process not proven to be the relay: a stale relay.pid's pid may be anyone's now.
  const held = relayHolderState(holder);
  if (held.state === "stale") return fail(`no relay is running on the data dir ${dataDir} (its ${PID_FILE} is stale: ${held.why}); nothing was signalled`);
  if (held.state === "unproven" || held.state === "elsewhere") return fail(`${held.why}, so it is not signalled; if it is the relay of ${dataDir}, stop it with: kill ${holder.pid}`);
  try {
    process.kill(holder.pid, "SIGTERM");
  } catch (e) {
    return fail(`cannot signal the relay (pid ${holder.pid}): ${(e as Error).message}`);
  }
  const deadline = Date.now() + 15_000;
  while (processAlive(holder.pid)) {
    if (Date.now() > deadline) return fail(`the relay (pid ${holder.pid}) did not stop within 15 s; kill -9 ${holder.pid} ends it at once (queued messages are safe on disk)`);
    await new Promise((r) => setTimeout(r, 50));
  }
  process.stdout.write(`stopped the relay (pid ${holder.pid}) of ${dataDir}\n`);
  return 0;
}

/** chat-relay fingerprint: the SHA-256 clients pin, to compare when they report a change. */
function printFingerprint(dataDir: string): number {
  const path = join(dataDir, CERT_FILE);
  let der: Buffer;
  try {
    der = new X509Certificate(readFileSync(path)).raw;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return fail(code === "ENOENT" ? `no certificate in ${dataDir} yet: it is created on the relay's first start` : `cannot read ${path}: ${(e as Error).message}`);
  }
  process.stdout.write(`${certificateFingerprint(der)}\n`);
  return 0;
}

/** The users commands' database: --store/SECURECHAT_RELAY_STORE, else the data dir's relay.db. */
async function usersTarget(dataDir: string, store: string | undefined): Promise<{ target: UsersTarget; url: string | undefined }> {
  const url = storeUrlOf(store);
  if (url === undefined) return { target: dataDir, url };
  const { openStoreForCommand } = await sharedStoreCode();
  return { target: { openStore: () => openStoreForCommand(url) }, url };
}

async function usersList(dataDir: string, store: string | undefined): Promise<number> {
  try {
    process.stdout.write(formatUserList(listBoundUsers((await usersTarget(dataDir, store)).target)));
    return 0;
  } catch (e) {
    if (e instanceof RelayStartError) return fail(e.message);
    const dbFailure = await databaseSentence(storeUrlOf(store), e);
    if (dbFailure !== undefined) return fail(dbFailure);
    throw e;
  }
}

async function usersRelease(dataDir: string, store: string | undefined, name: string): Promise<number> {
  try {
    const { target, url } = await usersTarget(dataDir, store);
    if (!releaseUsername(target, name)) return fail(`username '${name}' is not bound on this relay`);
    // The running relays of a shared database reload the name (best effort: they also read it at the next handshake).
    if (url !== undefined) await (await sharedStoreCode()).announceUserChange(url, name);
    process.stdout.write(`released '${name}': the next key to connect with this name will own it (peers will see a key change)\n`);
    return 0;
  } catch (e) {
    if (e instanceof RelayStartError) return fail(e.message);
    const dbFailure = await databaseSentence(storeUrlOf(store), e);
    if (dbFailure !== undefined) return fail(dbFailure);
    throw e;
  }
}

/** chat-relay migrate --store URL: creates or upgrades the shared database's schema. */
async function migrate(store: string | undefined): Promise<number> {
  try {
    const url = storeUrlOf(store);
    if (url === undefined) return fail(`migrate needs --store postgres://… (or ${STORE_ENV}): the embedded store in the data dir upgrades itself when the relay starts`, USAGE_ERROR);
    const { describeMigration, migrateStore } = await sharedStoreCode();
    process.stdout.write(describeMigration(migrateStore(url)));
    return 0;
  } catch (e) {
    if (e instanceof RelayStartError) return fail(e.message);
    throw e;
  }
}

async function main(): Promise<number> {
  let exitCode = 0;
  const d = DEFAULT_RELAY_LIMITS;
  await yargs(hideBin(process.argv))
    .scriptName("chat-relay")
    .usage("$0 [options]\n\nThe secure-chat relay: routes end-to-end encrypted envelopes it cannot read.")
    .option("data-dir", {
      type: "string", global: true, default: defaultRelayDataDir(), defaultDescription: "$XDG_STATE_HOME/secure-chat/relay",
      describe: "where the relay keeps its database (created 0700); with --store, its pid lock and TLS identity",
    })
    .option("store", {
      type: "string", global: true, defaultDescription: `$${STORE_ENV}, else relay.db in the data dir`,
      describe: "a PostgreSQL database (postgres://user@host:port/db) shared by several relays acting as one service",
    })
    .command(
      "$0",
      "run the relay",
      (y) => y
        .option("port", { type: "number", default: 50051, describe: "TCP port to listen on (0: any free port)" })
        .option("host", { type: "string", default: "0.0.0.0", describe: "address to listen on" })
        .option("log-level", { type: "string", default: "info", choices: ["debug", "info", "warn", "error"], describe: "least severe log level written to stderr" })
        .option("tls-cert", { type: "string", describe: "PEM certificate chain: serve TLS (with --tls-key)" })
        .option("tls-key", { type: "string", describe: "PEM private key for --tls-cert" })
        .option("insecure-plaintext", {
          type: "boolean", default: false,
          describe: "serve without TLS (clients must say --insecure-plaintext too): anyone on the network path can then hijack sessions",
        })
        .option("max-frame-bytes", { type: "number", default: d.maxFrameBytes, describe: "largest frame accepted" })
        .option("max-recipients", { type: "number", default: d.maxRecipients, describe: "recipients per envelope (largest room)" })
        .option("max-text-bytes", { type: "number", default: d.maxTextBytes, describe: "UTF-8 bytes of text per message" })
        .option("retention-days", { type: "number", default: d.retentionMs / DAY_MS, describe: "days undelivered envelopes are kept" })
        .option("rate", { type: "number", default: d.messagesPerSecond, describe: "envelopes per second per session (sustained)" })
        .option("burst", { type: "number", default: d.burst, describe: "envelopes a session may send at once" })
        .option("max-sessions", { type: "number", default: d.maxSessions, describe: "authenticated sessions at once" })
        .option("max-handshakes", {
          type: "number", default: d.maxPendingHandshakes, describe: "handshakes in progress at once (streams that have not proven a key; they take no session slot)",
        })
        .option("max-handshakes-per-address", {
          type: "number", default: d.maxHandshakesPerAddress, describe: "handshakes in progress at once from one source address (IPv6: one /64)",
        })
        .option("max-streams-per-connection", { type: "number", default: d.maxStreamsPerConnection, describe: "HTTP/2 streams at once on one connection" })
        .option("handshake-timeout", { type: "number", default: HANDSHAKE_TIMEOUT_MS / 1000, describe: "seconds a client has to complete the handshake" })
        .option("names-per-key", { type: "number", default: d.maxNamesPerKey, describe: "usernames one signing key may own (existing bindings are kept)" })
        .option("registration-burst", { type: "number", default: d.registrationBurst, describe: "new usernames one source address may register at once" })
        .option("registrations-per-hour", { type: "number", default: d.registrationsPerHour, describe: "new usernames per source address per hour, sustained" })
        .option("session-open-burst", { type: "number", default: d.sessionOpenBurst, describe: "sessions one device (key or address) may open at once" })
        .option("session-opens-per-minute", { type: "number", default: d.sessionOpensPerMinute, describe: "sessions one device may open per minute, sustained" })
        .option("max-queue", { type: "number", default: d.maxQueuePerUser, describe: "undelivered envelopes kept per user; beyond it senders are told the user's queue is full" })
        .option("max-queue-mb", { type: "number", default: d.maxQueueBytesPerUser / MIB, describe: "MiB of undelivered envelopes kept per user" })
        .option("max-queue-per-sender", {
          type: "number", default: d.maxQueuePerSender, describe: "envelopes one sender may have waiting in one user's queue (so no sender can fill it for everyone)",
        })
        .option("max-queue-per-sender-mb", { type: "number", default: d.maxQueueBytesPerSender / MIB, describe: "MiB one sender may have waiting in one user's queue" })
        .option("max-outgoing", {
          type: "number", default: d.maxOutgoing,
          describe: "envelopes an online reader may fall behind before it is disconnected as too slow (they stay queued)",
        })
        .option("max-db-mb", {
          type: "number",
          describe: "cap the relay database (with its write-ahead log) at this many MiB; beyond it senders are told the relay's storage is full "
            + "(default: half the disk's free space at start plus what the database takes, at least 64 MiB, at most 8 GiB)",
        })
        .check((argv) => {
          if (!Number.isInteger(argv.port) || argv.port < 0 || argv.port > 65535) throw new Error("--port must be an integer from 0 to 65535");
          const maxDbMb: unknown = argv.maxDbMb;
          if (maxDbMb !== undefined && !(typeof maxDbMb === "number" && maxDbMb > 0)) throw new Error("--max-db-mb must be a positive number of MiB");
          const handshakeTimeout: unknown = argv.handshakeTimeout;
          if (!(typeof handshakeTimeout === "number" && handshakeTimeout > 0 && handshakeTimeout <= 600)) throw new Error("--handshake-timeout must be a number of seconds above 0 and at most 600");
          return true;
        }),
      async (argv) => {
        const logLevel = isLogLevel(argv.logLevel) ? argv.logLevel : "info";
        exitCode = await runRelay({
          host: argv.host,
          port: argv.port,
          dataDir: argv.dataDir,
          logLevel,
          tlsCert: argv.tlsCert,
          tlsKey: argv.tlsKey,
          plaintext: argv.insecurePlaintext,
          store: argv.store,
          maxDatabaseBytes: argv.maxDbMb === undefined ? undefined : Math.round(argv.maxDbMb * 1024 * 1024),
          handshakeTimeoutMs: Math.round(argv.handshakeTimeout * 1000),
          limits: {
            maxFrameBytes: argv.maxFrameBytes,
            maxRecipients: argv.maxRecipients,
            maxTextBytes: argv.maxTextBytes,
            retentionMs: Math.round(argv.retentionDays * DAY_MS),
            messagesPerSecond: argv.rate,
            burst: argv.burst,
            maxSessions: argv.maxSessions,
            maxPendingHandshakes: argv.maxHandshakes,
            maxHandshakesPerAddress: argv.maxHandshakesPerAddress,
            maxStreamsPerConnection: argv.maxStreamsPerConnection,
            maxNamesPerKey: argv.namesPerKey,
            registrationBurst: argv.registrationBurst,
            registrationsPerHour: argv.registrationsPerHour,
            sessionOpenBurst: argv.sessionOpenBurst,
            sessionOpensPerMinute: argv.sessionOpensPerMinute,
            maxQueuePerUser: argv.maxQueue,
            maxQueueBytesPerUser: Math.round(argv.maxQueueMb * MIB),
            maxQueuePerSender: argv.maxQueuePerSender,
            maxQueueBytesPerSender: Math.round(argv.maxQueuePerSenderMb * MIB),
            maxOutgoing: argv.maxOutgoing,
          },
        });
      },
    )
    .command("users", "operator commands on bound usernames", (y) => y
      .command("list", "list bound usernames with key fingerprints and when they were bound", {}, async (argv) => {
        exitCode = await usersList(String(argv.dataDir), stringOption(argv.store));
      })
      .command("release <name>", "forget a username's key so a new key can claim it", (yy) =>
        yy.positional("name", { type: "string", demandOption: true, describe: "the username to release" }), async (argv) => {
        exitCode = await usersRelease(String(argv.dataDir), stringOption(argv.store), argv.name);
      })
      .demandCommand(1, "name a users command: list or release <name>"))
    .command("migrate", "create or upgrade the schema of the shared database (--store)", {}, async (argv) => {
      exitCode = await migrate(stringOption(argv.store));
    })
    .command("stop", "stop the relay running on this data dir (as the zero-setup relay chat-tui starts)", {}, async (argv) => {
      exitCode = await stopRelay(String(argv.dataDir));
    })
    .command("fingerprint", "print the SHA-256 of this relay's TLS certificate (what clients pin)", {}, (argv) => {
      exitCode = printFingerprint(String(argv.dataDir));
    })
    .strict()
    .help()
    .alias("h", "help")
    .version(`chat-relay ${RELAY_VERSION}`)
    .wrap(Math.min(100, process.stdout.columns || 100))
    // A bad invocation is one sentence naming the option, exit 2; not the whole help.
    .fail((msg: string | undefined, err: Error | undefined) => {
      if (err !== undefined && msg === undefined) throw err; // a bug in a command handler, not a usage error
      process.stderr.write(`chat-relay: ${usageSentence(msg ?? String(err), process.argv, "name the username to release: chat-relay users release <name>")} (chat-relay --help lists the options)\n`);
      process.exit(USAGE_ERROR);
    })
    .parseAsync();
  return exitCode;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    // A bug, not an operator error: one line, no stack trace on the terminal.
    process.stderr.write(`chat-relay: unexpected error: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
