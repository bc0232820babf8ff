// chat-tui's composition root (main.ts loads it): it parses arguments, loads (or creates) the key,
// opens the stores, decides where the relay is (this machine's relay, started as a process of its
// own when none runs and no --server was given: local-relay.ts), how to reach it (TLS pinned on
// first use by default), then hands a ChatClient to runTui. It never imports the relay's code.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import { ChatClient, CLIENT_VERSION } from "../client/chat-client.js";
import { defaultKeyDir, ensureKeyDir, KeyStoreError, userFilePath } from "../client/key-store.js";
import { KnownRelays } from "../client/known-relays.js";
import { normalizeSha256, type RelayTransport } from "../client/relay-transport.js";
import { contentLayerOver } from "../client/mls/content.js";
import { lockUser, UserLocked, type UserLock } from "../client/user-lock.js";
import { openUserStores } from "../client/user-stores.js";
import { checkDeviceName } from "../protocol/devices.js";
import type { Logger, LogLevel } from "../protocol/log.js";
import { checkUsername } from "../protocol/names.js";
import { sanitizeLine } from "../protocol/sanitize.js";
import { usageSentence } from "../protocol/usage.js";
import { ensureLocalRelay, localRelayDir, localRelayLabel, localRelayPort, type LocalRelay } from "./local-relay.js";
import { defaultDeviceName, runLinkMode } from "./link-mode.js";
import { runTui } from "./run-tui.js";
import { loadStartIdentity, startKeyPath, startKind } from "./start-identity.js";
import type { StartupNotice } from "./state/reducer.js";
import { defaultStateDir, fileLogger, LogFileError, parseServerOption, planPassphrase, promptHidden, somethingListens, userLockedText } from "./startup.js";

function fail(message: string, code = 1): number {
  process.stderr.write(`chat-tui: ${message}\n`);
  return code;
}

/** Exit status of a bad invocation: one sentence naming the option, as chat-relay does. */
const USAGE_ERROR = 2;
/** Exit status when another chat-tui holds the user's key directory (chat-relay's for a held data dir). */
const USER_LOCKED = 3;

/** The notice that says where this machine's relay runs and how to stop it. */
function localRelayNotice(r: LocalRelay): string {
  return `${r.started ? "Started" : "Using"} this machine's relay on ${r.address} (pid ${r.pid}, data in ${r.dataDir}, log ${r.logFile}). ` +
    `It keeps running when you quit, so nothing queued is lost; to stop it: chat-relay stop --data-dir '${r.dataDir}' (or kill ${r.pid}).`;
}

async function main(): Promise<number> {
  const argv = await yargs(hideBin(process.argv))
    .scriptName("chat-tui")
    .usage("$0 <username> [options]\n\nEnd-to-end encrypted chat in your terminal. Your keys are created on first run.")
    .command("$0 <username>", "start chatting as <username>", (y) =>
      y.positional("username", { type: "string", demandOption: true, describe: "1-32 of a-z 0-9 _ -, starting with a letter" }))
    .option("server", {
      type: "string",
      describe: `relay host:port, or several relays of one service as host:port,host:port (tried in order; a lost relay moves you to the next) (default: this machine's relay on 127.0.0.1:${localRelayPort()}, started in the background if none runs)`,
    })
    .option("key-dir", { type: "string", describe: `directory of <username>_key.pem (default ${defaultKeyDir()})` })
    .option("passphrase", { type: "boolean", default: false, describe: "protect a newly created key with a passphrase (asked on the terminal, unless SECURECHAT_PASSPHRASE is set: then it is the passphrase)" })
    .option("log-file", { type: "string", describe: `log file (default ${join(defaultStateDir(), "<username>.log")})` })
    .option("log-level", { choices: ["debug", "info", "warn", "error"] as const, default: "info" as const, describe: "least severe event written to the log file" })
    .option("tls", { type: "boolean", default: false, describe: "check the relay's certificate against the system's CAs instead of pinning it on first use" })
    .option("ca", { type: "string", describe: "check the relay's certificate against this PEM file (its CA, or the certificate itself) instead of pinning it" })
    .option("accept-relay-cert", {
      type: "string", describe: "pin the relay's certificate with this SHA-256 (from chat-relay fingerprint), replacing an older pin; refused if the relay shows another",
    })
    .option("insecure-plaintext", {
      type: "boolean", default: false, describe: "connect without TLS (only to a relay run with --insecure-plaintext): anyone on the path can hijack the session",
    })
    .option("mouse", { type: "boolean", default: false, describe: "scroll with the mouse wheel (hold Shift to select text); /mouse toggles it" })
    .option("bell", { type: "boolean", default: true, describe: "ring the terminal bell on a mention or direct message (--no-bell)" })
    .option("history", { type: "boolean", default: true, describe: "keep conversations (encrypted) for the next start; --no-history keeps nothing of this run" })
    .option("link", { type: "boolean", default: false, describe: "make this machine a linked device of <username>: shows a code to type on your primary device (/link CODE)" })
    .option("device-name", { type: "string", describe: "this device's name as your contacts and devices see it (default: the host name); with --link the new device's, else the primary's (renames it)" })
    .example("$0 alice", "chat as alice on this machine (starts this machine's relay if none runs)")
    .example("$0 bob --server chat.example.org:50051", "chat as bob through a remote relay")
    .example("$0 bob --server a.example.org:50051,b.example.org:50051", "chat as bob through either relay of one service")
    .example("$0 alice --link --device-name desktop", "link this machine as alice's device 'desktop' (then /link CODE on alice's primary device)")
    .strict()
    .help()
    .alias("h", "help")
    .version(`chat-tui ${CLIENT_VERSION.replace(/^secure-chat\//, "")}`)
    .fail((msg: string | undefined, err: Error | undefined) => {
      if (err !== undefined && msg === undefined) throw err;
      process.stderr.write(`chat-tui: ${usageSentence(msg ?? String(err), process.argv, "name the user to chat as, e.g. chat-tui alice")} (chat-tui --help lists the options)\n`);
      process.exit(USAGE_ERROR);
    })
    .parseAsync();

  const username = String(argv.username);
  const nameCheck = checkUsername(username);
  if (!nameCheck.ok) return fail(`invalid username '${username}': ${nameCheck.reason}`, 2);


  let server: readonly string[] | undefined;
  if (argv.server !== undefined) {
    const list = parseServerOption(argv.server);
    if (!list.ok) return fail(list.errors.join("; "), 2);
    server = list.servers;
  }

  const modes = [argv.tls ? "--tls" : undefined, argv.ca !== undefined ? "--ca" : undefined, argv.insecurePlaintext ? "--insecure-plaintext" : undefined, argv.acceptRelayCert !== undefined ? "--accept-relay-cert" : undefined].filter((m) => m !== undefined);
  if (modes.length > 1) return fail(`${modes.join(" and ")} exclude each other: choose one way to check the relay`, USAGE_ERROR);
  let acceptSha256: string | undefined;
  if (argv.acceptRelayCert !== undefined) {
    acceptSha256 = normalizeSha256(argv.acceptRelayCert);
    if (acceptSha256 === undefined) return fail("--accept-relay-cert must be a SHA-256 of 64 hex digits, as chat-relay fingerprint prints it", USAGE_ERROR);
  }
  let ca: Buffer | undefined;
  if (argv.ca !== undefined) {
    try {
      ca = readFileSync(argv.ca);
    } catch (e) {
      return fail(`cannot read --ca ${argv.ca}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (e as Error).message}`, USAGE_ERROR);
    }
    if (!ca.toString("utf8").includes("-----BEGIN CERTIFICATE-----")) return fail(`--ca ${argv.ca} is not a PEM certificate`, USAGE_ERROR);
  }

  const logPath = argv.logFile ?? join(defaultStateDir(), `${username}.log`);
  let logger, logStream;
  try {
    ({ logger, stream: logStream } = fileLogger(logPath, argv.logLevel as LogLevel));
  } catch (e) {
    if (e instanceof LogFileError) return fail(`${argv.logFile === undefined ? "the log file" : "--log-file"} ${logPath} cannot be used: ${e.message}`, USAGE_ERROR);
    throw e;
  }
  const stdin = process.stdin;
  const stdout = process.stdout;
  if (!stdin.isTTY || !stdout.isTTY) {
    return fail("needs an interactive terminal: run it directly in a terminal (stdin and stdout must be a TTY), not through a pipe or a file", 2);
  }
  const keyDir = argv.keyDir ?? defaultKeyDir();
  // One chat-tui per user and key directory (PROTOCOL.md §4.3): the lock comes before any of the
  // user's files there is read or written, the first run's and a linking's included. A second
  // one says who holds it and leaves before any screen is drawn. Released at exit: a normal
  // quit, a signal (they end main as /quit does) and every early return go through process
  // exit; a crash leaves it to the stale rule (user-lock.ts).
  let userLock: UserLock;
  try {
    userLock = await lockUser(keyDir, username);
  } catch (e) {
    if (e instanceof UserLocked) return fail(userLockedText(e), USER_LOCKED);
    if (e instanceof KeyStoreError) return fail(e.message);
    throw e;
  }
  process.once("exit", () => userLock.release());
  if (argv.deviceName !== undefined) {
    const named = checkDeviceName(argv.deviceName);
    if (!named.ok) return fail(`--device-name: ${named.reason}`, USAGE_ERROR);
    // Without --link it names the primary (its list says so); a linked device's name is set at linking.
    if (!argv.link && startKind(keyDir, username) === "linked") {
      return fail(`--device-name renames only the primary device; this machine is a linked device of ${username}, named when it was linked (unlink it on the primary and link it again to rename it)`, USAGE_ERROR);
    }
  }
  // chat-tui <username> --link: this machine becomes a linked device (PROTOCOL.md §4.6, link-mode.ts).
  // Once linked, it goes on into the chat as that device (the start-up below finds its files).
  if (argv.link) {
    const linked = await linkMode({ username, keyDir, server, argv, ca, acceptSha256, logger, stdin, stdout });
    if (linked !== 0) return linked;
  }
  const linkedNow = argv.link ? "Linked. Earlier messages are not on this device." : undefined;
  // The primary (key file), a linked device (device files, PROTOCOL.md §4.5) or a first run.
  const keyPath = startKeyPath(keyDir, username);
  const creating = startKind(keyDir, username) === "new";

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
    loaded = await loadStartIdentity({
      keyDir,
      username,
      ...(newPassphrase !== undefined ? { newPassphrase } : {}),
      getPassphrase: passphrase.plan.unlock,
    });
  } catch (e) {
    if (e instanceof KeyStoreError) return fail(e.message);
    throw e;
  }

  let trust, state, knownRelays, mlsStore;
  try {
    ({ trust, state, knownRelays, mlsStore } = await openUserStores(userLock, loaded.local, logger));
  } catch (e) {
    return fail((e as Error).message);
  }
  const transport: RelayTransport = argv.insecurePlaintext ? { kind: "plaintext" }
    : argv.tls || ca !== undefined ? { kind: "ca", ...(ca === undefined ? {} : { ca }) }
    : { kind: "pinned", pins: knownRelays, ...(acceptSha256 === undefined ? {} : { acceptSha256 }) };

  const notices: Array<string | StartupNotice> = [];
  if (linkedNow !== undefined) notices.push(linkedNow);
  if (loaded.created) {
    notices.push(`Created your keys in ${loaded.path} (mode 0600). Keep that file private; /fingerprint shows your key fingerprints.`);
  }
  if (loaded.local.kind === "linked") {
    notices.push(`This is ${username}'s linked device '${loaded.local.deviceName}' (${loaded.path}); /devices lists ${username}'s devices.`);
  }
  // Protocol v1 is retired (PROTOCOL.md §14): relays refuse it, so a SECURECHAT_PROTOCOL left
  // over from the roll-out is ignored, said once.
  const legacyProtocol = process.env["SECURECHAT_PROTOCOL"]?.trim();
  if (legacyProtocol !== undefined && legacyProtocol !== "" && legacyProtocol !== "2") {
    notices.push({ level: "warn", text: `SECURECHAT_PROTOCOL=${sanitizeLine(legacyProtocol).slice(0, 16)} is ignored: protocol v1 is retired and chat-tui speaks only protocol v2 (MLS); unset it.` });
  }
  if (argv.insecurePlaintext) {
    notices.push({ level: "warn", text: "Connecting without TLS (--insecure-plaintext): anyone on the network path can read who talks to whom and act as you towards the relay (join, leave, acknowledge your queued messages away)." });
  }
  // Zero-setup: this machine's relay, a process of its own (local-relay.ts).
  let address: string | readonly string[];
  let serverLabel: string;
  if (server !== undefined) {
    address = server;
    serverLabel = server[0]!; // a list is named by the relay in use (ChatClient.serverLabel)
  } else {
    let local;
    try {
      local = await ensureLocalRelay({ dir: localRelayDir(), port: localRelayPort(), listens: (h, p) => somethingListens(h, p) });
    } catch (e) {
      return fail((e as Error).message);
    }
    address = local.address;
    if ("foreign" in local) {
      serverLabel = address;
      logger.info("local-relay.foreign", { address });
    } else {
      serverLabel = localRelayLabel(address);
      notices.push(localRelayNotice(local));
      logger.info("local-relay", { address, pid: local.pid, started: local.started, dataDir: local.dataDir });
    }
  }
  const localDir = server === undefined ? localRelayDir() : undefined;

  let client: ChatClient | undefined;
  client = new ChatClient({
    identity: loaded.local,
    server: address,
    serverLabel,
    trust,
    state,
    logger,
    history: argv.history,
    transport,
    v2: { store: mlsStore, content: contentLayerOver(state, username, { log: logger }) },
    ...(argv.deviceName !== undefined && !argv.link ? { deviceName: argv.deviceName } : {}),
    // Zero-setup: when this machine's relay went away (stopped, or crashed), start it again on the
    // same data dir; whatever it had queued is still there.
    ...(localDir !== undefined ? { beforeConnect: async (attempt: number) => {
      if (attempt <= 1) return;
      try {
        const again = await ensureLocalRelay({ dir: localDir, port: localRelayPort(), listens: (h, p) => somethingListens(h, p) });
        if (!("foreign" in again) && again.started) {
          logger.info("local-relay.restarted", { pid: again.pid });
          client?.announce("info", `This machine's relay had stopped, so it was started again (pid ${again.pid}); queued messages are kept.`);
        }
      } catch (e) {
        logger.warn("local-relay.restart-failed", { reason: (e as Error).message });
        // E.g. another user's program now holds the port: said, not just logged.
        client?.announce("warn", (e as Error).message);
      }
    } } : {}),
  });
  const upgraded = client.upgradedOutbox;
  if (upgraded !== undefined && upgraded.moved > 0) {
    const rooms = [...upgraded.rooms.keys()].sort();
    const n = upgraded.moved;
    notices.push(`${n} message${n === 1 ? "" : "s"} left unsent by the protocol v1 client ${n === 1 ? "is" : "are"} sent again as protocol v2 message${n === 1 ? "" : "s"}` +
      (rooms.length === 0 ? "." : `; to ${rooms.join(", ")} once you are in ${rooms.length === 1 ? "that room" : "those rooms"} again (/join ${rooms[0]}).`));
  }
  if (upgraded !== undefined && upgraded.unreadable > 0) {
    notices.push({ level: "warn", text: `${upgraded.unreadable} message${upgraded.unreadable === 1 ? "" : "s"} left unsent by the protocol v1 client could not be opened with this key file and ${upgraded.unreadable === 1 ? "is" : "are"} not sent.` });
  }
  logger.info("tui.start", { user: username, server: typeof address === "string" ? address : address.join(","), transport: transport.kind });
  client.start();
  // A terminal closing (SIGHUP) or a kill (SIGTERM, SIGINT from outside) leaves as /quit does:
  // the session closes and the terminal is restored.
  const leave = new AbortController();
  for (const sig of ["SIGTERM", "SIGHUP", "SIGINT"] as const) process.once(sig, () => leave.abort());
  let code: number;
  try {
    const backlog = client.backlogLines();
    const unreadable = client.unreadableHistory();
    if (unreadable > 0) {
      notices.push(`${unreadable} kept message${unreadable === 1 ? "" : "s"} could not be opened with this key file and ${unreadable === 1 ? "is" : "are"} not shown: sealed under another key (a key made anew?), or damaged.`);
    }
    code = await runTui({ session: client, stdin, stdout, bell: argv.bell, mouse: argv.mouse, logger, notices, backlog, signal: leave.signal });
  } finally {
    await client.close();
    userLock.release(); // the stores are closed: another chat-tui of this user may open them now
    logger.info("tui.stop", { user: username });
    await new Promise<void>((resolve) => logStream.end(resolve));
  }
  return code;
}

/** --link: the relay as the session would reach it, then the linking's screen (link-mode.ts). */
async function linkMode(o: {
  readonly username: string; readonly keyDir: string; readonly server: readonly string[] | undefined;
  readonly argv: { readonly deviceName?: string | undefined; readonly passphrase: boolean; readonly insecurePlaintext: boolean; readonly tls: boolean };
  readonly ca: Buffer | undefined; readonly acceptSha256: string | undefined; readonly logger: Logger;
  readonly stdin: NodeJS.ReadStream; readonly stdout: NodeJS.WriteStream;
}): Promise<number> {
  const deviceName = o.argv.deviceName ?? defaultDeviceName();
  const nameCheck = checkDeviceName(deviceName);
  if (!nameCheck.ok) return fail(`--device-name: ${nameCheck.reason}`, USAGE_ERROR);
  const plan = await planPassphrase({
    creating: true, flag: o.argv.passphrase, env: process.env["SECURECHAT_PASSPHRASE"], keyPath: join(o.keyDir, `${o.username}_device.pem`), ask: (q) => promptHidden(q, o.stdin, o.stdout),
  });
  if (!plan.ok) return fail(plan.error);
  let address: string;
  try {
    // The first relay of a list: the rendezvous lives in one relay's memory (cluster-design.md §2),
    // and the primary, given the same list, reaches the same relay first.
    address = o.server !== undefined ? o.server[0]!
      : (await ensureLocalRelay({ dir: localRelayDir(), port: localRelayPort(), listens: (h, p) => somethingListens(h, p) })).address;
    await ensureKeyDir(o.keyDir);
  } catch (e) {
    return fail((e as Error).message);
  }
  let transport: RelayTransport;
  try {
    transport = o.argv.insecurePlaintext ? { kind: "plaintext" }
      : o.argv.tls || o.ca !== undefined ? { kind: "ca", ...(o.ca === undefined ? {} : { ca: o.ca }) }
      : { kind: "pinned", pins: await KnownRelays.open(userFilePath(o.keyDir, o.username, "_known_relays.json")), ...(o.acceptSha256 === undefined ? {} : { acceptSha256: o.acceptSha256 }) };
  } catch (e) {
    return fail((e as Error).message);
  }
  const cancel = new AbortController();
  for (const sig of ["SIGTERM", "SIGHUP", "SIGINT"] as const) process.once(sig, () => cancel.abort());
  return runLinkMode({
    username: o.username, deviceName, keyDir: o.keyDir, relay: { address, transport }, out: o.stdout, logger: o.logger, signal: cancel.signal,
    ...(plan.plan.newPassphrase === undefined ? {} : { passphrase: plan.plan.newPassphrase }),
  });
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`chat-tui: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
