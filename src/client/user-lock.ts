// One running client per user and key directory (PROTOCOL.md §4.3): `<username>.lock` beside
// the key file, taken before any of the user's files there
// is read or written (the key file or device files, known_peers, known_relays, the state and MLS
// databases) and held until the client exits. Two processes writing those files at once undo
// each other's trust decisions (known_peers) and reuse each other's MLS ratchet state; the relay
// allows one session per device anyway.
//
// The lock is src/common/pid-lock.ts's: the pid and the process's start identity (boot id and
// start ticks on Linux), plus this host's name, since a key directory may be shared between
// machines (an NFS home): a lock written on another host is refused as "elsewhere", never taken
// over, because nothing here can tell whether its holder still runs. A lock whose holder is
// provably gone (a crash, a reboot of this host) or is another process now (pid reuse) is taken
// over.
import { join } from "node:path";
import { systemProbe, type PidFileContents, type ProcessProbe } from "../common/pid-file.js";
import { PidLockHeld, PidLockPathUnsafe, takePidLock, type LockRefusal } from "../common/pid-lock.js";
import { checkUsername } from "../protocol/names.js";
import { ensureKeyDir, KeyStoreError } from "./key-store.js";

/** The lock file of a user in a key directory. */
export function userLockPath(keyDir: string, username: string): string {
  const c = checkUsername(username);
  if (!c.ok) throw new KeyStoreError(`invalid username '${username}': ${c.reason}`);
  return join(keyDir, `${username}.lock`);
}

/** Another client process holds the user's key directory (data: the UI words it). */
export class UserLocked extends Error {
  constructor(
    readonly username: string,
    readonly keyDir: string,
    readonly lockPath: string,
    /** running: proven alive here; unproven: alive, but its start cannot be read; elsewhere: another host; this-process: held here. */
    readonly state: LockRefusal,
    readonly holder: { readonly pid: number; readonly hostname?: string },
  ) {
    super(`${username}'s key directory ${keyDir} is in use by process ${holder.pid}${holder.hostname === undefined ? "" : ` on ${holder.hostname}`} (${state}); ${lockPath} says so`);
    this.name = "UserLocked";
  }
}

/** The held lock: released when the client exits (a crash leaves it to the stale rule). */
export interface UserLock {
  readonly keyDir: string;
  readonly username: string;
  readonly path: string;
  release(): void;
}

export interface UserLockOptions {
  readonly probe?: ProcessProbe;
  readonly clock?: () => number;
}

/**
 * Takes `<username>.lock` in keyDir (creating the directory 0700 when missing, as the key file
 * would be). Throws UserLocked when another client runs as this user here (or elsewhere, or may),
 * KeyStoreError for a directory or lock path that cannot be used.
 */
export async function lockUser(keyDir: string, username: string, o: UserLockOptions = {}): Promise<UserLock> {
  const path = userLockPath(keyDir, username);
  await ensureKeyDir(keyDir);
  try {
    const lock = takePidLock(path, { probe: o.probe ?? systemProbe, ...(o.clock === undefined ? {} : { clock: o.clock }), what: `a client of ${username}`, recordHostname: true });
    return { keyDir, username, path, release: () => lock.release() };
  } catch (e) {
    if (e instanceof PidLockHeld) throw new UserLocked(username, keyDir, path, e.state, holderOf(e.holder));
    if (e instanceof PidLockPathUnsafe) throw new KeyStoreError(e.message, { cause: e });
    throw new KeyStoreError(`cannot take the lock ${path}: ${(e as Error).message}`, { cause: e });
  }
}

function holderOf(c: PidFileContents): { pid: number; hostname?: string } {
  return { pid: c.pid, ...(c.hostname === undefined ? {} : { hostname: c.hostname }) };
}
