// One relay per data dir: chat-relay holds `relay.pid` in its data dir while it runs. The lock
// itself is src/common/pid-lock.ts (shared with the client's lock on its key files): created
// whole or not at all (two relays racing to start on the same dir: one wins, the other is told
// who holds it), taken over only when its process is gone (a crash, a reboot) or its pid now
// names another process (another user's, or one started at another time: relayHolderState). It
// names the pid and, once the port is bound, the address, so that chat-tui's zero-setup start
// finds the running relay and `chat-relay stop` knows whom to signal.
import { join } from "node:path";
import { PidLockHeld, takePidLock } from "../common/pid-lock.js";
import { PID_FILE, systemProbe, type PidFileContents, type ProcessProbe } from "../common/pid-file.js";

export class DataDirLocked extends Error {
  constructor(readonly holder: PidFileContents, dataDir: string) {
    super(`another relay (pid ${holder.pid}${holder.port === undefined ? "" : `, port ${holder.port}`}) already uses the data dir ${dataDir}; stop it with: chat-relay stop --data-dir '${dataDir}'`);
  }
}

export interface DataDirLock {
  /** Records the address once bound (atomically: readers see the old or the new file). */
  listening(host: string, port: number): void;
  release(): void;
}

/** Takes the data dir's lock or throws DataDirLocked naming the live holder. */
export function lockDataDir(dataDir: string, clock: () => number = Date.now, probe: ProcessProbe = systemProbe): DataDirLock {
  let lock;
  try {
    lock = takePidLock(join(dataDir, PID_FILE), { clock, probe, what: "the relay" });
  } catch (e) {
    if (e instanceof PidLockHeld) throw new DataDirLocked(e.holder, dataDir);
    throw e;
  }
  return {
    listening: (host, port) => lock.update({ host, port }),
    release: () => lock.release(),
  };
}
