// chat-tui's composition root (main.ts loads it): it parses arguments, loads (or creates) the key,
// opens the stores, decides where the relay is (hosting one in-process when none answers on
// 127.0.0.1:50051 and no --server was given), then hands a ChatClient to runTui. This is the only
// file of the client that touches the relay's code, and only to host it for zero-setup use.
import { existsSync, readFileSync } from "node:fs";
import { credentials, type ChannelCredentials } from "@grpc/grpc-js";
import { join } from "node:path";
import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import { ChatClient, CLIENT_VERSION } from "../client/chat-client.js";
import { defaultKeyDir, KeyStoreError, loadOrCreateIdentity, userFilePath } from "../client/key-store.js";
import { ClientStateStore } from "../client/state-store.js";
import { TrustStore } from "../client/trust-store.js";
import type { LogLevel, Logger } from "../protocol/log.js";
import { checkUsername } from "../protocol/names.js";
import type { RunningRelay } from "../server/relay.js";
import { runTui } from "./run-tui.js";
import { DEFAULT_PORT, defaultStateDir, fileLogger, LOCAL_HOST, parseServerAddress, planPassphrase, promptHidden, somethingListens } from "./startup.js";

function fail(message: string, code = 1): number {
  process.stderr.write(`chat-tui: ${message}\n`);
  return code;
}

/** Zero-setup: host a relay on 127.0.0.1:50051 when nothing answers there. */
class LocalRelayHost {
  private relay: RunningRelay | undefined;
  constructor(private readonly logger: Logger) {}

  get hosting(): boolean {
    return this.relay !== undefined;
  }

  /** Returns true when this process started hosting now. */
  async ensure(): Promise<boolean> {
    if (this.relay || (await somethingListens(LOCAL_HOST, DEFAULT_PORT))) return false;
    try {
      // Loaded only when hosting: most starts connect to a relay and need none of its code.
      const { defaultRelayDataDir, startRelay } = await import("../server/relay.js");
      this.relay = await startRelay({ host: LOCAL_HOST, port: DEFAULT_PORT, dataDir: defaultRelayDataDir(), logger: this.logger });
      return true;
    } catch (e) {
      // Another chat-tui won the race to host: connect to theirs.
      this.logger.info("local-relay.not-started", { reason: (e as Error).message });
      return false;
    }
  }

  async stop(): Promise<void> {
    await this.relay?.shutdown();
    this.relay = undefined;
  }
}

async function main(): Promise<number> {
  const argv = await yargs(hideBin(process.argv))
    .scriptName("chat-tui")
    .usage("$0 <username> [options]\n\nEnd-to-end encrypted chat in your terminal. Your keys are created on first run.")
    .command("$0 <username>", "start chatting as <username>", (y) =>
      y.positional("username", { type: "string", demandOption: true, describe: "1-32 of a-z 0-9 _ -, starting with a letter" }))
    .option("server", { type: "string", describe: `relay host:port (default ${LOCAL_HOST}:${DEFAULT_PORT}; hosts one there if none answers)` })
    .option("key-dir", { type: "string", describe: `directory of <username>_key.pem (default ${defaultKeyDir()})` })
    .option("passphrase", { type: "boolean", default: false, describe: "protect a newly created key with a passphrase (asked on the terminal, unless SECURECHAT_PASSPHRASE is set: then it is the passphrase)" })
    .option("log-file", { type: "string", describe: `log file (default ${join(defaultStateDir(), "<username>.log")})` })
    .option("log-level", { choices: ["debug", "info", "warn", "error"] as const, default: "info" as const })
    .option("tls", { type: "boolean", default: false, describe: "connect with TLS, checking the relay's certificate against the system's CAs" })
    .option("ca", { type: "string", describe: "PEM file of the CA (or self-signed certificate) that signed the relay's certificate; implies --tls" })
    .option("mouse", { type: "boolean", default: false, describe: "scroll with the mouse wheel (hold Shift to select text); /mouse toggles it" })
    .option("bell", { type: "boolean", default: true, describe: "ring the terminal bell on a mention or direct message (--no-bell)" })
    .option("history", { type: "boolean", default: true, describe: "keep conversations (encrypted) for the next start; --no-history keeps nothing of this run" })
    .example("$0 alice", "chat as alice on this machine (starts a local relay if needed)")
    .example("$0 bob --server chat.example.org:50051", "chat as bob through a remote relay")
    .strict()
    .help()
    .alias("h", "help")
    .version(CLIENT_VERSION)
    .parseAsync();

  const username = String(argv.username);
  const nameCheck = checkUsername(username);
  if (!nameCheck.ok) return fail(`invalid username '${username}': ${nameCheck.reason}`, 2);

  const stdin = process.stdin;
  const stdout = process.stdout;
  if (!stdin.isTTY || !stdout.isTTY) {
    return fail("needs an interactive terminal: run it directly in a terminal (stdin and stdout must be a TTY), not through a pipe or a file", 2);
  }

  let server: { host: string; port: number } | undefined;
  if (argv.server !== undefined) {
    server = parseServerAddress(argv.server);
    if (server === undefined) return fail(`--server must be host:port, e.g. 127.0.0.1:${DEFAULT_PORT}`, 2);
  }

  let channelCredentials: ChannelCredentials | undefined;
  if (argv.tls || argv.ca !== undefined) {
    if (server === undefined) return fail("--tls and --ca need --server (the local relay chat-tui hosts has no certificate)", 2);
    let ca: Buffer | undefined;
    if (argv.ca !== undefined) {
      try {
        ca = readFileSync(argv.ca);
      } catch (e) {
        return fail(`cannot read --ca ${argv.ca}: ${(e as Error).message}`, 2);
      }
      if (!ca.toString("utf8").includes("-----BEGIN CERTIFICATE-----")) return fail(`--ca ${argv.ca} is not a PEM certificate`, 2);
    }
    channelCredentials = credentials.createSsl(ca ?? null);
  }

  const logPath = argv.logFile ?? join(defaultStateDir(), `${username}.log`);
  const { logger, stream: logStream } = fileLogger(logPath, argv.logLevel as LogLevel);
  const keyDir = argv.keyDir ?? defaultKeyDir();
  const keyPath = userFilePath(keyDir, username, "_key.pem");
  const creating = !existsSync(keyPath);

  // SECURECHAT_PASSPHRASE protects a new key and opens a protected one; the terminal is then
  // never asked (planPassphrase says exactly how).
  const passphrase = await planPassphrase({
    creating, flag: argv.passphrase, env: process.env["SECURECHAT_PASSPHRASE"], keyPath, ask: (q) => promptHidden(q, stdin, stdout),
  });
  if (!passphrase.ok) return fail(passphrase.error);
  const newPassphrase = passphrase.plan.newPassphrase;
  if (creating) {
    stdout.write(`secure-chat: creating your keys (Ed25519 signing + RSA-3072 encryption) in ${keyPath}` +
      `${newPassphrase === undefined ? "" : ", protected by your passphrase"} ...\n`);
  }

  let loaded;
  try {
    loaded = await loadOrCreateIdentity({
      keyDir,
      username,
      ...(newPassphrase !== undefined ? { newPassphrase } : {}),
      getPassphrase: passphrase.plan.unlock,
    });
  } catch (e) {
    if (e instanceof KeyStoreError) return fail(e.message);
    throw e;
  }

  let trust: TrustStore;
  let state: ClientStateStore;
  try {
    trust = await TrustStore.open(userFilePath(keyDir, username, "_known_peers.json"));
    state = ClientStateStore.open(userFilePath(keyDir, username, "_state.db"));
  } catch (e) {
    return fail((e as Error).message);
  }

  const notices: string[] = [];
  if (loaded.created) {
    notices.push(`Created your keys in ${loaded.path} (mode 0600). Keep that file private; /fingerprint shows your key fingerprints.`);
  }
  const host = server === undefined ? new LocalRelayHost(logger) : undefined;
  if (host && (await host.ensure())) {
    notices.push(`No relay answered on ${LOCAL_HOST}:${DEFAULT_PORT}, so this chat-tui is hosting one there. Others on this machine join with chat-tui <name>; if you quit, another running chat-tui takes over.`);
  }
  const address = server ? `${server.host}:${server.port}` : `${LOCAL_HOST}:${DEFAULT_PORT}`;

  let client: ChatClient | undefined;
  client = new ChatClient({
    identity: loaded.identity,
    server: address,
    trust,
    state,
    logger,
    history: argv.history,
    ...(channelCredentials ? { credentials: channelCredentials } : {}),
    // In zero-setup mode, when the relay went away (its host quit), take over hosting.
    ...(host ? { beforeConnect: async (attempt: number) => {
      if (attempt > 1 && (await host.ensure())) {
        logger.info("local-relay.took-over", { port: DEFAULT_PORT });
        client?.announce("info", `The relay on ${LOCAL_HOST}:${DEFAULT_PORT} went away, so this chat-tui hosts it now; queued messages are kept.`);
      }
    } } : {}),
  });
  logger.info("tui.start", { user: username, server: address, hosting: host?.hosting ?? false });
  client.start();
  // A terminal closing (SIGHUP) or a kill (SIGTERM, SIGINT from outside) leaves as /quit does:
  // the session closes and the terminal is restored.
  const leave = new AbortController();
  for (const sig of ["SIGTERM", "SIGHUP", "SIGINT"] as const) process.once(sig, () => leave.abort());
  let code: number;
  try {
    const backlog = client.backlog();
    const unreadable = client.unreadableHistory();
    if (unreadable > 0) {
      notices.push(`${unreadable} kept message${unreadable === 1 ? "" : "s"} could not be opened with this key file and ${unreadable === 1 ? "is" : "are"} not shown: sealed under another key (a key made anew?), or damaged.`);
    }
    code = await runTui({ session: client, stdin, stdout, bell: argv.bell, mouse: argv.mouse, logger, notices, backlog, signal: leave.signal });
  } finally {
    await client.close();
    await host?.stop();
    logger.info("tui.stop", { user: username });
    await new Promise<void>((resolve) => logStream.end(resolve));
  }
  return code;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`chat-tui: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
