// The key file on disk (PROTOCOL.md §4.3): `<username>_key.pem` in a 0700 directory, created
// 0600 with O_EXCL, refused when group or others can read it (as OpenSSH does).
import { constants, type Stats } from "node:fs";
import { chmod, lstat, mkdir, open, readFile, stat, unlink } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { ProtocolError } from "../protocol/errors.js";
import { checkKeyFileParameters, decodeKeyFile, encodeKeyFile, keyFileIsEncrypted } from "../protocol/keyfile.js";
import { generateIdentity, type PrivateIdentity } from "../protocol/keys.js";
import { checkUsername } from "../protocol/names.js";

/** Default key directory: $XDG_CONFIG_HOME/secure-chat, else ~/.config/secure-chat. */
export function defaultKeyDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env["XDG_CONFIG_HOME"] && env["XDG_CONFIG_HOME"].startsWith("/") ? env["XDG_CONFIG_HOME"] : join(homedir(), ".config");
  return join(base, "secure-chat");
}

/** A problem with the key directory or file, in one sentence for the user. */
export class KeyStoreError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "KeyStoreError";
  }
}

/** Path of a per-user file in the key directory; the username is validated first. */
export function userFilePath(keyDir: string, username: string, suffix: "_key.pem" | "_known_peers.json" | "_known_relays.json" | "_state.db" | "_mls.db"): string {
  const c = checkUsername(username);
  if (!c.ok) throw new KeyStoreError(`invalid username '${username}': ${c.reason}`);
  return join(keyDir, `${username}${suffix}`);
}

function modeString(mode: number): string {
  return (mode & 0o777).toString(8).padStart(4, "0");
}

/** Refuses a file that group or others can access, with the command that fixes it. */
export function checkPrivateFileMode(path: string, st: Stats): void {
  if (!st.isFile()) throw new KeyStoreError(`${path} is not a regular file`);
  if ((st.mode & 0o077) !== 0) {
    throw new KeyStoreError(
      `permissions ${modeString(st.mode)} for '${path}' are too open: your private keys must not be accessible by others. ` +
      `Run: chmod 600 '${path}'`,
    );
  }
  if (typeof process.getuid === "function" && st.uid !== process.getuid()) {
    throw new KeyStoreError(`'${path}' belongs to another user (uid ${st.uid})`);
  }
}

/** Creates the key directory 0700 (and tightens a directory we just created). */
export async function ensureKeyDir(keyDir: string): Promise<void> {
  try {
    await mkdir(keyDir, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw new KeyStoreError(`cannot create key directory '${keyDir}': ${(e as Error).message}`, { cause: e });
  }
  const st = await stat(keyDir);
  if (!st.isDirectory()) throw new KeyStoreError(`'${keyDir}' is not a directory`);
  if ((st.mode & 0o022) !== 0) {
    throw new KeyStoreError(`key directory '${keyDir}' is writable by others (mode ${modeString(st.mode)}). Run: chmod 700 '${keyDir}'`);
  }
  if ((st.mode & 0o077) !== 0) {
    // Readable by others (not writable: refused above). Tightened to 0700 so others cannot list
    // whose keys are here; a directory we may not chmod (another owner) is refused like a
    // writable one, with the command that fixes it.
    try {
      await chmod(keyDir, 0o700);
    } catch (e) {
      throw new KeyStoreError(
        `key directory '${keyDir}' is readable by others (mode ${modeString(st.mode)}) and could not be made private: ${(e as Error).message}. Run: chmod 700 '${keyDir}'`,
        { cause: e },
      );
    }
  }
}

/**
 * Removes the temporary file a crashed write may have left behind. None there is the usual case;
 * any other failure is said here, since the write that follows (O_EXCL) would fail on it anyway.
 */
export async function removeStaleFile(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return;
    throw new KeyStoreError(`cannot remove the leftover temporary file '${path}': ${(e as Error).message}`, { cause: e });
  }
}

/** Creates a file that only the owner can read and write, failing if it exists (O_EXCL). */
export async function writeNewPrivateFile(path: string, contents: string): Promise<void> {
  const fh = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    await fh.writeFile(contents, "utf8");
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export interface LoadIdentityOptions {
  readonly keyDir: string;
  readonly username: string;
  /** Asked only when the key file is encrypted. */
  readonly getPassphrase?: () => Promise<string>;
  /** When creating: protect the new key with this passphrase. */
  readonly newPassphrase?: string;
  readonly rsaBits?: number;
}

export interface LoadedIdentity {
  readonly identity: PrivateIdentity;
  readonly path: string;
  readonly created: boolean;
}

/**
 * Loads `<username>_key.pem`, or creates it on first use. Throws KeyStoreError with a sentence
 * for the user (loose permissions, damaged file, wrong passphrase).
 */
export async function loadOrCreateIdentity(o: LoadIdentityOptions): Promise<LoadedIdentity> {
  const path = userFilePath(o.keyDir, o.username, "_key.pem");
  await ensureKeyDir(o.keyDir);
  let st: Stats | undefined;
  try {
    st = await lstat(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw new KeyStoreError(`cannot read '${path}': ${(e as Error).message}`, { cause: e });
  }
  if (st === undefined) {
    // A linked device (PROTOCOL.md §4.5) has device files here instead: a new identity key would
    // be a second, unrelated identity under the same name. Never create one beside them.
    for (const f of [`${o.username}_device.pem`, `${o.username}_device.json`]) {
      const there = await lstat(join(o.keyDir, f)).then(() => true, (e: NodeJS.ErrnoException) => {
        if (e.code === "ENOENT") return false;
        throw new KeyStoreError(`cannot read '${join(o.keyDir, f)}': ${e.message}`, { cause: e });
      });
      if (there) throw new KeyStoreError(`'${join(o.keyDir, f)}' is here: this directory holds a linked device of ${o.username}, so no new key file is made`);
    }
    const identity = await generateIdentity(o.username, o.rsaBits === undefined ? {} : { rsaBits: o.rsaBits });
    const text = await encodeKeyFile(identity, o.newPassphrase === undefined ? {} : { passphrase: o.newPassphrase });
    try {
      await writeNewPrivateFile(path, text);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EEXIST") {
        // Another process created it between our lstat and open: use theirs.
        return loadOrCreateIdentity(o);
      }
      throw new KeyStoreError(`cannot create '${path}': ${(e as Error).message}`, { cause: e });
    }
    return { identity, path, created: true };
  }
  if (st.isSymbolicLink()) throw new KeyStoreError(`'${path}' is a symbolic link; refusing to follow it for a private key`);
  checkPrivateFileMode(path, st);
  const text = await readFile(path, "utf8");
  let passphrase: string | undefined;
  if (keyFileIsEncrypted(text)) {
    // The file's scrypt parameters are checked before anyone is asked for a passphrase (§4.3).
    try {
      checkKeyFileParameters(text);
    } catch (e) {
      throw new KeyStoreError(`cannot use '${path}': ${(e as Error).message}`, { cause: e });
    }
    if (o.getPassphrase === undefined) throw new KeyStoreError(`'${path}' is protected by a passphrase and none was given`);
    passphrase = await o.getPassphrase();
  }
  try {
    const identity = await decodeKeyFile(o.username, text, passphrase === undefined ? {} : { passphrase });
    return { identity, path, created: false };
  } catch (e) {
    if (e instanceof ProtocolError && e.code === "bad-passphrase") throw new KeyStoreError(`wrong passphrase for '${path}'`, { cause: e });
    throw new KeyStoreError(`cannot use '${path}': ${(e as Error).message}`, { cause: e });
  }
}
