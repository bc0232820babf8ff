// One relay per data dir: chat-relay holds `relay.pid` in its data dir while it runs. The file
// is created with O_EXCL (two relays racing to start on the same dir: one wins, the other is told
// who holds it), names the pid and, once the port is bound, the address, so that chat-tui's
// zero-setup start finds the running relay and `chat-relay stop` knows whom to signal. A lock
// whose process is gone (a crash, a reboot), or whose pid now names another process (another
// user's, or one started at another time: relayHolderState), is taken over.
import { closeSync, constants as fsConstants, openSync, renameSync, unlinkSync, writeSync, fsyncSync } from "node:fs";
import { join } from "node:path";
import { PID_FILE, processStart, readPidFile, relayHolderState, systemProbe, type PidFileContents, type ProcessProbe } from "../common/pid-file.js";

export class DataDirLocked extends Error {
  constructor(readonly holder: PidFileContents, dataDir: string) {
    super(`another relay (pid ${holder.pid}${holder.port === undefined ? "" : `, port ${holder.port}`}) already uses the data dir ${dataDir}; stop it with: chat-relay stop --data-dir '${dataDir}'`);
  }
}

function write(fd: number, c: PidFileContents): void {
  writeSync(fd, `${JSON.stringify(c)}\n`);
  fsyncSync(fd);
}

export interface DataDirLock {
  /** Records the address once bound (atomically: readers see the old or the new file). */
  listening(host: string, port: number): void;
  release(): void;
}

/** Takes the data dir's lock or throws DataDirLocked naming the live holder. */
export function lockDataDir(dataDir: string, clock: () => number = Date.now, probe: ProcessProbe = systemProbe): DataDirLock {
  const path = join(dataDir, PID_FILE);
  const mine: PidFileContents = { pid: process.pid, startedAtMs: clock(), ...processStart("self", probe) };
  for (let attempt = 0; ; attempt++) {
    let fd: number;
    try {
      fd = openSync(path, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW, 0o600);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST" || attempt > 3) throw e;
      const holder = readPidFile(dataDir);
      if (holder !== undefined && holder.pid !== process.pid && relayHolderState(holder, probe).state !== "stale") throw new DataDirLocked(holder, dataDir);
      if (holder === undefined && attempt === 0) {
        // Being written this very moment by a relay starting alongside: look again once.
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
        continue;
      }
      unlinkSync(path); // stale: its relay is gone (the pid, if alive, is another process now)
      continue;
    }
    try {
      write(fd, mine);
    } finally {
      closeSync(fd);
    }
    break;
  }
  let released = false;
  return {
    listening(host, port) {
      const tmp = `${path}.${process.pid}.tmp`;
      const fd = openSync(tmp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_TRUNC | fsConstants.O_NOFOLLOW, 0o600);
      try {
        write(fd, { ...mine, host, port });
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, path);
    },
    release() {
      if (released) return;
      released = true;
      // Only our own lock: never remove one a later relay took over.
      if (readPidFile(dataDir)?.pid === process.pid) unlinkSync(path);
    },
  };
}
