// Pid files: their format and the test whether one still names a running process. Two kinds:
// the relay's (`relay.pid` in its data dir), held by chat-relay and read by chat-tui's zero-setup
// start to find the running relay (src/tui/local-relay.ts), and a client's lock on its key files
// (`<username>.lock` beside the key file, src/client/user-lock.ts). Both are taken by
// src/common/pid-lock.ts. The relay and chat-tui may not import each other: this is shared.
//
// A pid alone proves nothing: after a crash or a reboot the pid may belong to any other process
// (pid reuse), and one of another user is never our relay. So a pid file names a running relay
// only when its process is alive, belongs to our uid, and started when the file says the relay
// started (Linux: the boot id and start time in clock ticks the relay wrote, read back from
// /proc; elsewhere: `ps -o uid=,etime=`, to the second). Anything else is stale.
import { spawnSync } from "node:child_process";
import { closeSync, constants as fsConstants, openSync, readFileSync, statSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";

export const PID_FILE = "relay.pid";

export interface PidFileContents {
  readonly pid: number;
  /** Set once the relay listens. */
  readonly host?: string;
  readonly port?: number;
  readonly startedAtMs: number;
  /** Linux: /proc/sys/kernel/random/boot_id and /proc/self/stat's starttime when it started. */
  readonly bootId?: string;
  readonly startTicks?: number;
  /**
   * The host the holder runs on (os.hostname()), written by locks a directory shared between
   * machines may hold (a client's key directory in an NFS home): a holder on another host can be
   * proven neither alive nor dead from here. Absent in the relay's pid file.
   */
  readonly hostname?: string;
  /** Random, one per taking of a lock: tells this taking's file from any later one. */
  readonly nonce?: string;
}

/** True when a process with this pid exists (ours or not: EPERM still means it exists). */
export function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
  // A relay that exited but whose parent (the chat-tui that started it) has not reaped it yet is
  // a zombie: gone for our purposes. Linux says so in /proc; elsewhere kill(0) is the answer.
  if (process.platform !== "linux") return true;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false; // gone between the two looks
  }
}

/** What the checks read of the system (injected by tests). */
export interface ProcessProbe {
  readonly platform: NodeJS.Platform;
  /** Our effective uid; undefined where there are no uids (Windows). */
  readonly uid: number | undefined;
  /** kill(pid, 0): "ok", "ESRCH" (no such process) or "EPERM" (another user's). */
  kill0(pid: number): "ok" | "ESRCH" | "EPERM";
  /** A file's text, or undefined when it cannot be read. */
  readFile(path: string): string | undefined;
  /** The owner uid of a path (of /proc/<pid>: the process's effective uid), or undefined. */
  ownerUid(path: string): number | undefined;
  /** Non-Linux: `ps -o uid=,etime= -p pid`'s output, or undefined. */
  ps(pid: number): string | undefined;
  now(): number;
  /** This host's name (os.hostname()); undefined: a pid file's hostname is not checked. */
  readonly hostname?: string;
}

export const systemProbe: ProcessProbe = {
  platform: process.platform,
  uid: typeof process.geteuid === "function" ? process.geteuid() : undefined,
  kill0(pid) {
    try {
      process.kill(pid, 0);
      return "ok";
    } catch (e) {
      return (e as NodeJS.ErrnoException).code === "EPERM" ? "EPERM" : "ESRCH";
    }
  },
  readFile(path) {
    try {
      return readFileSync(path, "utf8");
    } catch {
      return undefined;
    }
  },
  ownerUid(path) {
    try {
      return statSync(path).uid;
    } catch {
      return undefined;
    }
  },
  ps(pid) {
    const r = spawnSync("ps", ["-o", "uid=,etime=", "-p", String(pid)], { encoding: "utf8", timeout: 5_000 });
    return r.status === 0 ? r.stdout : undefined;
  },
  now: () => Date.now(),
  hostname: hostname(),
};

/** /proc/<pid>/stat after the command name: field 3 is [0], field 22 (starttime) is [19]. */
function statFields(stat: string): string[] {
  return stat.slice(stat.lastIndexOf(")") + 2).trim().split(/\s+/);
}

/** Linux: this boot's id and a process's start in clock ticks since boot (pid "self": ours). */
export function processStart(pid: number | "self", probe: ProcessProbe = systemProbe): { bootId: string; startTicks: number } | undefined {
  if (probe.platform !== "linux") return undefined;
  const bootId = probe.readFile("/proc/sys/kernel/random/boot_id")?.trim();
  const stat = probe.readFile(`/proc/${pid}/stat`);
  if (bootId === undefined || bootId === "" || stat === undefined) return undefined;
  const startTicks = Number(statFields(stat)[19]);
  return Number.isSafeInteger(startTicks) ? { bootId, startTicks } : undefined;
}

/** Clock ticks per second of /proc's times (USER_HZ: 100 on every architecture Node runs on). */
const USER_HZ = 100;
/** How far a process's start may lie after the startedAtMs its relay wrote (clock granularity). */
const START_SLACK_MS = 2_000;
/** How long before startedAtMs the relay's process may have started (Node's own start-up). */
const START_LEAD_MS = 5 * 60_000;

function startMatches(processStartMs: number, startedAtMs: number): boolean {
  return processStartMs <= startedAtMs + START_SLACK_MS && processStartMs >= startedAtMs - START_LEAD_MS;
}

/** `[[dd-]hh:]mm:ss` (POSIX ps etime) in seconds. */
function etimeSeconds(s: string): number | undefined {
  const m = /^(?:(?:(\d+)-)?(\d+):)?(\d+):(\d+)$/.exec(s);
  if (m === null) return undefined;
  return ((Number(m[1] ?? 0) * 24 + Number(m[2] ?? 0)) * 60 + Number(m[3])) * 60 + Number(m[4]);
}

/** What a holder's state says: running; stale (gone, another user's, a reused pid); unproven; or on another host. */
export type HolderState = "running" | "stale" | "unproven" | "elsewhere";

/**
 * Whether a pid file names a relay running now: "running" (proven), "stale" (the process is gone,
 * another user's, or started at another time: a reused pid), or "unproven" (alive and ours as far
 * as kill(0) tells, but this system offers no way to read its start: treat as running, never
 * signal it). `why` says what made it stale or unproven, for the operator.
 */
export function relayHolderState(c: PidFileContents, probe: ProcessProbe = systemProbe): { state: HolderState; why: string } {
  return holderState(c, probe, { what: "the relay", file: PID_FILE });
}

/**
 * The same rule for any pid file (`what` names its holder, `file` the file, in `why`). A file
 * naming another host than this one (its `hostname`) is "elsewhere": nothing here can tell
 * whether that process runs (a shared directory); the same host with another boot id is a reboot
 * (stale).
 */
export function holderState(c: PidFileContents, probe: ProcessProbe, label: { readonly what: string; readonly file: string }): { state: HolderState; why: string } {
  const pid = c.pid;
  if (c.hostname !== undefined && probe.hostname !== undefined && c.hostname !== probe.hostname) {
    return { state: "elsewhere", why: `${label.file} was written on another host (${c.hostname}), whose processes this one cannot see` };
  }
  if (!Number.isInteger(pid) || pid <= 0) return { state: "stale", why: "no valid pid" };
  const k = probe.kill0(pid);
  if (k === "ESRCH") return { state: "stale", why: `process ${pid} is gone` };
  if (probe.platform === "linux") {
    const stat = probe.readFile(`/proc/${pid}/stat`);
    if (stat !== undefined) {
      if (statFields(stat)[0] === "Z") return { state: "stale", why: `process ${pid} has exited` };
      // The very process that wrote the file (same boot, same start) holds it, whoever's it is: a
      // chat-tui run as another user on this key directory (sudo keeping HOME) must not be taken
      // over (review round 5). Otherwise another user's process under that pid is a reused pid.
      const start = processStart(pid, probe);
      const proven = start !== undefined && c.bootId !== undefined && c.startTicks !== undefined;
      if (proven && start.bootId === c.bootId && start.startTicks === c.startTicks) return { state: "running", why: "" };
      const owner = probe.ownerUid(`/proc/${pid}`);
      if (k === "EPERM" || (probe.uid !== undefined && owner !== undefined && owner !== probe.uid)) return { state: "stale", why: `process ${pid} belongs to another user${owner === undefined ? "" : ` (uid ${owner})`}` };
      if (proven) return { state: "stale", why: `process ${pid} is not ${label.what} that wrote ${label.file} (pid reused)` };
      // A pid file of a relay that did not write its start in ticks: its startedAtMs, to the second.
      const btime = /^btime\s+(\d+)$/m.exec(probe.readFile("/proc/stat") ?? "");
      if (start !== undefined && btime !== null) {
        return startMatches(Number(btime[1]) * 1000 + (start.startTicks * 1000) / USER_HZ, c.startedAtMs)
          ? { state: "running", why: "" } : { state: "stale", why: `process ${pid} is not ${label.what} that wrote ${label.file} (pid reused)` };
      }
    }
  }
  const out = probe.ps(pid)?.trim().split(/\s+/);
  if (out !== undefined && out.length === 2) {
    const uid = Number(out[0]);
    const secs = etimeSeconds(out[1]!);
    if (probe.uid !== undefined && Number.isInteger(uid) && uid !== probe.uid) return { state: "stale", why: `process ${pid} belongs to another user (uid ${uid})` };
    if (secs !== undefined) {
      // etime is whole seconds: one more of slack.
      return startMatches(probe.now() - secs * 1000 - 1000, c.startedAtMs)
        ? { state: "running", why: "" } : { state: "stale", why: `process ${pid} is not ${label.what} that wrote ${label.file} (pid reused)` };
    }
  }
  return { state: "unproven", why: `cannot tell whether process ${pid} is ${label.what} (neither /proc nor ps says when it started)` };
}

/** The pid file of a data dir, or undefined when there is none (or it is unreadable garbage). */
export function readPidFile(dataDir: string): PidFileContents | undefined {
  return readPidFileAt(join(dataDir, PID_FILE));
}

/** A pid file by its path (never through a symlink), or undefined when there is none or it is garbage. */
export function readPidFileAt(path: string): PidFileContents | undefined {
  try {
    return parsePidFile(readPidFileText(path));
  } catch {
    return undefined;
  }
}

/** The raw text of a pid file, opened with O_NOFOLLOW (throws ENOENT, ELOOP for a symlink, ...). */
export function readPidFileText(path: string): string {
  const fd = openSync(path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
  try {
    return readFileSync(fd, "utf8");
  } finally {
    closeSync(fd);
  }
}

/** A pid file's contents from its text, or undefined when it is not one. */
export function parsePidFile(text: string): PidFileContents | undefined {
  try {
    const v = JSON.parse(text) as Partial<PidFileContents>;
    if (typeof v !== "object" || v === null || typeof v.pid !== "number") return undefined;
    return {
      pid: v.pid, startedAtMs: Number(v.startedAtMs) || 0,
      ...(typeof v.host === "string" ? { host: v.host } : {}), ...(typeof v.port === "number" ? { port: v.port } : {}),
      ...(typeof v.bootId === "string" && typeof v.startTicks === "number" ? { bootId: v.bootId, startTicks: v.startTicks } : {}),
      ...(typeof v.hostname === "string" ? { hostname: v.hostname } : {}),
      ...(typeof v.nonce === "string" ? { nonce: v.nonce } : {}),
    };
  } catch {
    return undefined;
  }
}
