// The relay's pid file (`relay.pid` in its data dir): its format and the liveness test, shared
// by chat-relay, which holds it (src/server/pid-lock.ts), and chat-tui's zero-setup start, which
// reads it to find the running relay (src/tui/local-relay.ts). Neither may import the other.
import { closeSync, constants as fsConstants, openSync, readFileSync } from "node:fs";
import { join } from "node:path";

export const PID_FILE = "relay.pid";

export interface PidFileContents {
  readonly pid: number;
  /** Set once the relay listens. */
  readonly host?: string;
  readonly port?: number;
  readonly startedAtMs: number;
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

/** The pid file of a data dir, or undefined when there is none (or it is unreadable garbage). */
export function readPidFile(dataDir: string): PidFileContents | undefined {
  try {
    const fd = openSync(join(dataDir, PID_FILE), fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
    try {
      const v = JSON.parse(readFileSync(fd, "utf8")) as Partial<PidFileContents>;
      if (typeof v.pid !== "number") return undefined;
      return {
        pid: v.pid, startedAtMs: Number(v.startedAtMs) || 0,
        ...(typeof v.host === "string" ? { host: v.host } : {}), ...(typeof v.port === "number" ? { port: v.port } : {}),
      };
    } finally {
      closeSync(fd);
    }
  } catch {
    return undefined;
  }
}
