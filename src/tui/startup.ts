// What chat-tui does before the full-screen UI starts: where files go, the passphrase prompt on
// the terminal, and the probe that decides whether a relay already answers on 127.0.0.1:50051.
import { chmodSync, closeSync, constants as fsConstants, createWriteStream, fstatSync, lstatSync, mkdirSync, openSync, type WriteStream } from "node:fs";
import { connect } from "node:net";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { jsonLineLogger, type LogLevel, type Logger } from "../protocol/log.js";
import { parseServerList, type ServerListError } from "../client/server-list.js";
import type { UserLocked } from "../client/user-lock.js";
import { sanitizeLine } from "../protocol/sanitize.js";

export const DEFAULT_PORT = 50051;
export const LOCAL_HOST = "127.0.0.1";

/** $XDG_STATE_HOME/secure-chat, else ~/.local/state/secure-chat. */
export function defaultStateDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env["XDG_STATE_HOME"];
  return join(xdg && xdg.startsWith("/") ? xdg : join(homedir(), ".local", "state"), "secure-chat");
}

/** A log file that cannot be used, as one sentence (the caller names the option). */
export class LogFileError extends Error {}

function fsReason(e: unknown): string {
  switch ((e as NodeJS.ErrnoException).code) {
    case "ELOOP": return "it is a symbolic link (log files are never opened through one)";
    case "EACCES": case "EPERM": return "permission denied";
    case "EISDIR": return "it is a directory";
    case "ENOTDIR": return "a part of the path is not a directory";
    case "EROFS": return "the file system is read-only";
    case "ENOSPC": return "the disk is full";
    default: return e instanceof Error ? e.message : String(e);
  }
}

/**
 * The directory of a log file, as the key directory is checked: created 0700 when missing; one
 * that others may write is refused (they could replace the file, or plant a link, under us).
 */
export function checkLogDirectory(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw new LogFileError(`cannot create the directory ${dir}: ${fsReason(e)}`);
  }
  const st = lstatSync(dir);
  if (!st.isDirectory()) throw new LogFileError(`${dir} is not a directory`);
  // Sticky shared directories (/tmp) are the classic place for a planted symlink: refuse them too.
  if ((st.mode & 0o022) !== 0) {
    throw new LogFileError(`the directory ${dir} is writable by others (mode ${(st.mode & 0o777).toString(8)}): choose a private one, or chmod 700 '${dir}'`);
  }
  if (typeof process.getuid === "function" && st.uid !== process.getuid() && st.uid !== 0) {
    throw new LogFileError(`the directory ${dir} belongs to another user (uid ${st.uid})`);
  }
}

/**
 * Opens a log file for appending: never through a symlink (O_NOFOLLOW), created 0600, a regular
 * file, in a directory others cannot write. Throws LogFileError with the reason.
 */
export function openLogFile(path: string): number {
  checkLogDirectory(dirname(path));
  let fd: number;
  try {
    fd = openSync(path, fsConstants.O_WRONLY | fsConstants.O_APPEND | fsConstants.O_CREAT | fsConstants.O_NOFOLLOW, 0o600);
  } catch (e) {
    throw new LogFileError(`cannot open ${path}: ${fsReason(e)}`);
  }
  const st = fstatSync(fd);
  if (!st.isFile()) {
    closeSync(fd);
    throw new LogFileError(`${path} is not a regular file`);
  }
  if ((st.mode & 0o077) !== 0) chmodSync(path, 0o600);
  return fd;
}

/** A logger appending JSON lines to a file (the TUI never writes logs to the terminal). */
export function fileLogger(path: string, level: LogLevel): { logger: Logger; stream: WriteStream } {
  const fd = openLogFile(path);
  const stream = createWriteStream(path, { fd, flags: "a" });
  stream.on("error", () => {
    // A full disk or a removed directory must not crash the chat; logs are best effort.
  });
  return { logger: jsonLineLogger((line) => stream.write(line), level), stream };
}

/** Splits host:port; IPv6 literals in brackets are accepted (the --server list: server-list.ts). */
export { parseServerAddress } from "../client/server-list.js";

/** One sentence per bad entry of --server, in this UI's words. */
export function serverListErrorText(e: ServerListError): string {
  switch (e.kind) {
    case "too-many":
      return `--server names ${e.count} relays; at most ${e.max} are allowed`;
    case "not-an-address":
      return "--server must be host:port, e.g. 127.0.0.1:50051";
    case "empty":
      return `--server entry ${e.entry} is empty (addresses are separated by single commas)`;
    case "not-host-port":
      return `--server entry ${e.entry} ${JSON.stringify(e.text)} is not host:port with a port from 1 to 65535, e.g. 127.0.0.1:50051`;
    case "repeated":
      return `--server entry ${e.entry} ${JSON.stringify(e.text)} repeats entry ${e.first}`;
    default: {
      const never: never = e;
      return never;
    }
  }
}

/** --server: one address or an ordered list of them (server-list.ts), or the sentences of what is wrong. */
export function parseServerOption(text: string): { ok: true; servers: readonly string[] } | { ok: false; errors: readonly string[] } {
  const r = parseServerList(text);
  return r.ok ? r : { ok: false, errors: r.errors.map(serverListErrorText) };
}

/** True when something accepts TCP connections at host:port (within timeoutMs). */
export function somethingListens(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (v: boolean) => {
      socket.removeAllListeners();
      socket.destroy();
      resolve(v);
    };
    socket.setTimeout(timeoutMs, () => done(true)); // something swallowed the SYN: not "nothing"
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/**
 * Reads a passphrase from the terminal without echoing it. Ctrl-C aborts (rejects).
 */
export function promptHidden(prompt: string, stdin: NodeJS.ReadStream, stdout: NodeJS.WriteStream): Promise<string> {
  return new Promise((resolve, reject) => {
    stdout.write(prompt);
    const wasRaw = stdin.isRaw;
    stdin.setRawMode(true);
    stdin.resume();
    let value = "";
    const finish = (err?: Error) => {
      stdin.off("data", onData);
      stdin.setRawMode(wasRaw);
      stdin.pause();
      stdout.write("\n");
      if (err) reject(err);
      else resolve(value);
    };
    const onData = (chunk: Buffer) => {
      for (const ch of chunk.toString("utf8")) {
        if (ch === "\r" || ch === "\n") return finish();
        if (ch === "\u0003") return finish(new Error("cancelled"));
        if (ch === "\u0004" && value.length === 0) return finish(new Error("cancelled"));
        if (ch === "\u007f" || ch === "\b") value = [...value].slice(0, -1).join("");
        else if (ch >= " ") value += ch;
      }
    };
    stdin.on("data", onData);
  });
}

export interface PassphrasePlan {
  /** Protects a key created now (undefined: the new key is not protected). */
  readonly newPassphrase?: string;
  /** Opens an existing protected key. */
  readonly unlock: () => Promise<string>;
}

/**
 * Where the passphrase comes from (README, chat-tui options): SECURECHAT_PASSPHRASE, when set,
 * is the passphrase, for a new key (it is protected with it, --passphrase or not) and for an
 * existing protected one, and the terminal is never asked; otherwise --passphrase asks twice on
 * the terminal for a new key, and a protected key is unlocked by asking once. A set but empty
 * variable is refused: it would protect nothing. Returns a sentence for the user on refusal.
 */
export async function planPassphrase(o: {
  readonly creating: boolean;
  readonly flag: boolean;
  readonly env: string | undefined;
  readonly keyPath: string;
  readonly ask: (prompt: string) => Promise<string>;
}): Promise<{ ok: true; plan: PassphrasePlan } | { ok: false; error: string }> {
  if (o.env !== undefined) {
    if (o.env.length === 0) {
      return { ok: false, error: "SECURECHAT_PASSPHRASE is set but empty: an empty passphrase protects nothing (unset it to be asked, or to create an unprotected key)" };
    }
    const env = o.env;
    return { ok: true, plan: { ...(o.creating ? { newPassphrase: env } : {}), unlock: async () => env } };
  }
  const unlock = () => o.ask(`Passphrase for ${o.keyPath}: `);
  if (!o.creating || !o.flag) return { ok: true, plan: { unlock } };
  const first = await o.ask(`New passphrase for ${o.keyPath}: `);
  const second = await o.ask("Repeat it: ");
  if (first !== second) return { ok: false, error: "the two passphrases differ; nothing was created" };
  if (first.length === 0) return { ok: false, error: "an empty passphrase protects nothing; run without --passphrase for an unprotected key" };
  return { ok: true, plan: { newPassphrase: first, unlock } };
}

/**
 * Why this chat-tui does not start: another one holds the user's key directory (UserLocked, from
 * lockUser). One sentence with what to do; a holder this machine cannot see (another host sharing
 * the directory, or a system that cannot tell) is said as such, with the lock file to remove
 * once the user knows it is not running.
 */
export function userLockedText(e: UserLocked): string {
  const who = e.username;
  switch (e.state) {
    case "running":
      return `${who} is already open in another chat-tui on this machine (pid ${e.holder.pid}). Use that one, or quit it first.`;
    case "this-process":
      return `${who} is already open in this chat-tui.`;
    case "unproven":
      return `${who} seems to be open in another chat-tui on this machine (pid ${e.holder.pid} is alive, but this system cannot tell whether it is that chat-tui). ` +
        `Use that one, or quit it first; if no chat-tui of ${who} runs, remove '${e.lockPath}' and start again.`;
    case "elsewhere":
      return `${who} is open in a chat-tui on another machine, ${sanitizeLine(e.holder.hostname ?? "unknown").slice(0, 64)} (pid ${e.holder.pid}), that shares the key directory ${e.keyDir}; this machine cannot tell whether it still runs. ` +
        `Quit it there first; if it no longer runs (that machine crashed or was switched off), remove '${e.lockPath}' and start again.`;
    default: {
      const never: never = e.state;
      return never;
    }
  }
}
