// Zero-setup: when chat-tui is given no --server, it uses the relay of this machine's user, and
// starts one if none runs: the real chat-relay bin, detached in a process of its own (its own
// event loop, its own log file), that outlives the chat-tui that started it, as tmux's server
// outlives its first client. It never imports the relay's code: it runs the bin.
//
// ONE data dir per uid, whatever HOME the starting chat-tui has (people on one account under
// separate HOMEs must all reach the same rooms, bindings and queued messages): the home directory
// of the uid in the password database, not $HOME nor $XDG_STATE_HOME, under
// .local/state/secure-chat/relay. Trade-off: it survives reboots (unlike $XDG_RUNTIME_DIR or /tmp),
// at the price of ignoring a per-HOME XDG_STATE_HOME. SECURECHAT_RELAY_DIR overrides it (tests,
// or an account without a writable home). The relay's relay.pid there names its pid and port;
// two chat-tui racing to start it end with one relay (chat-relay locks the data dir, and the
// loser's child exits while the chat-tui reads the winner's pid file).
import { spawn } from "node:child_process";
import { closeSync, constants as fsConstants, lstatSync, mkdirSync, openSync, chmodSync } from "node:fs";
import { userInfo } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { readPidFile, relayHolderState } from "../common/pid-file.js";
import { loopbackListenerUids } from "./port-owner.js";
import { checkLogDirectory } from "./startup.js";

export const LOCAL_RELAY_HOST = "127.0.0.1";
export const DEFAULT_LOCAL_PORT = 50051;
export const RELAY_LOG_FILE = "relay.log";
const START_DEADLINE_MS = 20_000;

/** The bin chat-tui starts: dist/server/main.js beside this file's dist/tui. */
export const RELAY_BIN = fileURLToPath(new URL("../server/main.js", import.meta.url));
/** The node flags of the relay bin's shebang (the process is started with node directly). */
const RELAY_NODE_FLAGS = ["--max-semi-space-size=8"];

export function localRelayDir(env: NodeJS.ProcessEnv = process.env): string {
  const override = env["SECURECHAT_RELAY_DIR"];
  if (override !== undefined && override.startsWith("/")) return override;
  return join(userInfo().homedir, ".local", "state", "secure-chat", "relay");
}

export function localRelayPort(env: NodeJS.ProcessEnv = process.env): number {
  const p = Number(env["SECURECHAT_RELAY_PORT"]);
  return Number.isInteger(p) && p > 0 && p < 65536 ? p : DEFAULT_LOCAL_PORT;
}

export interface LocalRelay {
  readonly address: string;
  readonly port: number;
  readonly pid: number;
  readonly dataDir: string;
  readonly logFile: string;
  /** True when this chat-tui started it now. */
  readonly started: boolean;
}

/**
 * The relay running on this data dir, if one is up and listening: its relay.pid names a live
 * process of ours that started when the file says (relayHolderState), not just any live pid.
 */
export function runningLocalRelay(dir: string): { pid: number; port: number } | undefined {
  const p = readPidFile(dir);
  return p !== undefined && p.port !== undefined && relayHolderState(p).state !== "stale" ? { pid: p.pid, port: p.port } : undefined;
}

/** The data dir: created 0700; refused when others may write it (they could swap the relay's files). */
function ensureDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = lstatSync(dir);
  if (!st.isDirectory()) throw new Error(`the local relay's directory ${dir} is not a directory`);
  if (typeof process.getuid === "function" && st.uid !== process.getuid()) throw new Error(`the local relay's directory ${dir} belongs to another user`);
  if ((st.mode & 0o022) !== 0) throw new Error(`the local relay's directory ${dir} is writable by others: run chmod 700 '${dir}'`);
  if ((st.mode & 0o077) !== 0) chmodSync(dir, 0o700);
}

export interface EnsureLocalRelayOptions {
  readonly dir?: string;
  readonly port?: number;
  /** Whether something already accepts connections on the port (injected for tests). */
  readonly listens: (host: string, port: number) => Promise<boolean>;
  readonly relayBin?: string;
  /** The uids listening where 127.0.0.1:port reaches, undefined where unknown (injected for tests). */
  readonly portOwners?: (port: number) => number[] | undefined;
  /** Our uid (injected for tests). */
  readonly uid?: number;
}

/**
 * Whether a listener on the local relay's port (not found through our relay.pid) may be used:
 * only a program of this account. Throws the sentence for the user otherwise. Linux only (it
 * reads /proc/net/tcp{,6}); elsewhere nobody can tell, and it is used as before.
 */
function checkListenerIsOurs(port: number, o: EnsureLocalRelayOptions): void {
  const me = o.uid ?? (typeof process.geteuid === "function" ? process.geteuid() : undefined);
  const owners = (o.portOwners ?? loopbackListenerUids)(port);
  if (me === undefined || owners === undefined) return;
  const advice = "set SECURECHAT_RELAY_PORT to another port, or name a relay with --server";
  const other = owners.find((u) => u !== me);
  if (other !== undefined) throw new Error(`${LOCAL_RELAY_HOST}:${port} is taken by a program of another user (uid ${other}): not using it; ${advice}`);
  if (owners.length === 0) throw new Error(`${LOCAL_RELAY_HOST}:${port} is taken by a program this system does not name an owner for: not using it; ${advice}`);
}

/**
 * Finds this machine's relay or starts it. Resolves once it listens; rejects with a sentence
 * (naming its log file) when it could not be started.
 */
export async function ensureLocalRelay(o: EnsureLocalRelayOptions): Promise<LocalRelay | { foreign: true; address: string }> {
  const dir = o.dir ?? localRelayDir();
  const port = o.port ?? localRelayPort();
  const logFile = join(dir, RELAY_LOG_FILE);
  const found = (r: { pid: number; port: number }, started: boolean): LocalRelay =>
    ({ address: `${LOCAL_RELAY_HOST}:${r.port}`, port: r.port, pid: r.pid, dataDir: dir, logFile, started });

  const running = runningLocalRelay(dir);
  if (running !== undefined && (await o.listens(LOCAL_RELAY_HOST, running.port))) return found(running, false);
  // A relay of ours not found through this data dir (chat-relay run by hand, another data dir)
  // already answers there: use it. A program of another user: refused (it would be pinned).
  if (await o.listens(LOCAL_RELAY_HOST, port)) {
    checkListenerIsOurs(port, o);
    return { foreign: true, address: `${LOCAL_RELAY_HOST}:${port}` };
  }

  ensureDir(dir);
  checkLogDirectory(dir);
  // The log file is opened here, without following a symlink, and handed to the relay as its
  // stdout and stderr (it logs JSON lines to stderr).
  const log = openSync(logFile, fsConstants.O_WRONLY | fsConstants.O_APPEND | fsConstants.O_CREAT | fsConstants.O_NOFOLLOW, 0o600);
  let exited = false;
  let childPid: number | undefined;
  try {
    const child = spawn(process.execPath, [
      ...RELAY_NODE_FLAGS, o.relayBin ?? RELAY_BIN, "--host", LOCAL_RELAY_HOST, "--port", String(port), "--data-dir", dir,
    ], { detached: true, stdio: ["ignore", log, log] });
    child.on("exit", () => {
      exited = true;
    });
    child.on("error", () => {
      exited = true;
    });
    childPid = child.pid;
    child.unref();
  } finally {
    closeSync(log);
  }
  const deadline = Date.now() + START_DEADLINE_MS;
  for (;;) {
    // Ours, or the one that won a race with ours (ours then exits: the data dir is locked).
    const up = runningLocalRelay(dir);
    if (up !== undefined && (await o.listens(LOCAL_RELAY_HOST, up.port))) return found(up, up.pid === childPid);
    if (Date.now() > deadline || (exited && readPidFile(dir) === undefined)) {
      throw new Error(`the local relay did not start (see ${logFile}); to run one by hand: chat-relay --data-dir '${dir}'`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * The status line's name for this machine's relay. No pid: any chat-tui may start the relay again
 * after it stopped (under a new pid), and the status line would then name a dead process; the
 * lobby's notices name the pid each time a relay is found or started.
 */
export function localRelayLabel(address: string): string {
  return `${address} (local relay)`;
}
