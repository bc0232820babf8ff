// Trust on first use (PROTOCOL.md §6): `<username>_known_peers.json` beside the key file, 0600.
// Each peer is pinned to the keys first seen for them; a later different key is never accepted
// silently but kept as a pending change until the user trusts it after comparing safety numbers.
import { lstat, readFile, rename, unlink } from "node:fs/promises";
import { importPublicIdentity, type PublicIdentity } from "../protocol/keys.js";
import { isValidUsername } from "../protocol/names.js";
import { checkPrivateFileMode, KeyStoreError, writeNewPrivateFile } from "./key-store.js";

export interface PinnedPeer {
  readonly identity: PublicIdentity;
  readonly verified: boolean;
  readonly pinnedAtMs: number;
  /** Keys the directory now shows for this peer, not yet accepted. */
  readonly pending?: PublicIdentity;
}

interface StoredKeys { sigSpki: string; encSpki: string; encKeySig: string }
interface StoredPeer extends StoredKeys { verified: boolean; pinnedAtMs: number; pending?: StoredKeys }
interface StoredFile { version: 1; peers: Record<string, StoredPeer> }

function toStored(id: PublicIdentity): StoredKeys {
  return { sigSpki: id.sigSpki.toString("base64"), encSpki: id.encSpki.toString("base64"), encKeySig: id.encKeySig.toString("base64") };
}

function fromStored(username: string, s: StoredKeys): PublicIdentity {
  return importPublicIdentity({
    username,
    sigSpki: Buffer.from(s.sigSpki, "base64"),
    encSpki: Buffer.from(s.encSpki, "base64"),
    encKeySig: Buffer.from(s.encKeySig, "base64"),
  });
}

export function sameKeys(a: PublicIdentity, b: PublicIdentity): boolean {
  return a.sigFpr.equals(b.sigFpr) && a.encFpr.equals(b.encFpr);
}

/** What observing a directory entry did to the pin. */
export type ObserveResult = "pinned-new" | "unchanged" | "key-changed" | "change-withdrawn";

export class TrustStore {
  private readonly peers = new Map<string, PinnedPeer>();
  private writing: Promise<void> = Promise.resolve();

  private constructor(readonly path: string, private readonly clock: () => number) {}

  /** Loads the file (refusing loose permissions) or starts empty when it does not exist. */
  static async open(path: string, clock: () => number = Date.now): Promise<TrustStore> {
    const store = new TrustStore(path, clock);
    let text: string;
    try {
      const st = await lstat(path);
      checkPrivateFileMode(path, st);
      text = await readFile(path, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return store;
      if (e instanceof KeyStoreError) throw e;
      throw new KeyStoreError(`cannot read '${path}': ${(e as Error).message}`, { cause: e });
    }
    for (const [username, pin] of parsePins(path, text)) store.peers.set(username, pin);
    return store;
  }

  get(username: string): PinnedPeer | undefined {
    return this.peers.get(username);
  }

  all(): ReadonlyMap<string, PinnedPeer> {
    return this.peers;
  }

  /**
   * Records what the directory shows for a peer: pins it on first sight; a different key
   * becomes (or replaces) a pending change; the pinned key showing again withdraws the change.
   */
  observe(identity: PublicIdentity): ObserveResult {
    const pin = this.peers.get(identity.username);
    if (pin === undefined) {
      this.peers.set(identity.username, { identity, verified: false, pinnedAtMs: this.clock() });
      this.persist();
      return "pinned-new";
    }
    if (sameKeys(pin.identity, identity)) {
      if (pin.pending === undefined) return "unchanged";
      this.peers.set(identity.username, { identity: pin.identity, verified: pin.verified, pinnedAtMs: pin.pinnedAtMs });
      this.persist();
      return "change-withdrawn";
    }
    if (pin.pending !== undefined && sameKeys(pin.pending, identity)) return "key-changed";
    this.peers.set(identity.username, { ...pin, pending: identity });
    this.persist();
    return "key-changed";
  }

  /** Accepts the pending keys (if any) and marks the peer verified. */
  trust(username: string): PinnedPeer | undefined {
    const pin = this.peers.get(username);
    if (pin === undefined) return undefined;
    const next: PinnedPeer = { identity: pin.pending ?? pin.identity, verified: true, pinnedAtMs: pin.pending ? this.clock() : pin.pinnedAtMs };
    this.peers.set(username, next);
    this.persist();
    return next;
  }

  /** Waits until every change so far is on disk. */
  flush(): Promise<void> {
    return this.writing;
  }

  private persist(): void {
    // Writes are serialised and atomic (temp file, fsync, rename), so a crash never leaves a
    // half-written pin file.
    this.writing = this.writing.then(async () => {
      await this.adoptPinsFromDisk();
      await writeAtomicPrivate(this.path, this.serialize());
    }).catch(() => {
      // A failed write is retried by the next change; the in-memory pins stay authoritative.
    });
  }

  /**
   * Another chat-tui of the same user (a second terminal) writes this file too: pins it added
   * since this one read the file are taken in before writing, so a write never drops a pin
   * (a dropped pin would mean a silent trust-on-first-use again). For a peer both know, this
   * process's view is written.
   */
  private async adoptPinsFromDisk(): Promise<void> {
    let pins: Map<string, PinnedPeer>;
    try {
      pins = parsePins(this.path, await readFile(this.path, "utf8"));
    } catch {
      return; // no file yet, or one this process will replace with its own view
    }
    for (const [username, pin] of pins) if (!this.peers.has(username)) this.peers.set(username, pin);
  }

  private serialize(): string {
    const snapshot: StoredFile = { version: 1, peers: {} };
    for (const [username, p] of [...this.peers].sort(([a], [b]) => (a < b ? -1 : 1))) {
      snapshot.peers[username] = {
        ...toStored(p.identity),
        verified: p.verified,
        pinnedAtMs: p.pinnedAtMs,
        ...(p.pending ? { pending: toStored(p.pending) } : {}),
      };
    }
    return `${JSON.stringify(snapshot, null, 2)}\n`;
  }
}

/** The pins of a known_peers file; throws a KeyStoreError naming what is wrong. */
function parsePins(path: string, text: string): Map<string, PinnedPeer> {
  let parsed: StoredFile;
  try {
    parsed = JSON.parse(text) as StoredFile;
    if (parsed.version !== 1 || typeof parsed.peers !== "object" || parsed.peers === null) throw new Error("unknown format");
  } catch (e) {
    throw new KeyStoreError(`'${path}' is damaged (${(e as Error).message}); move it away to start over (you will re-pin every peer)`, { cause: e });
  }
  const pins = new Map<string, PinnedPeer>();
  for (const [username, p] of Object.entries(parsed.peers)) {
    if (!isValidUsername(username)) throw new KeyStoreError(`'${path}' names an invalid user '${username}'`);
    try {
      pins.set(username, {
        identity: fromStored(username, p),
        verified: p.verified === true,
        pinnedAtMs: Number(p.pinnedAtMs) || 0,
        ...(p.pending ? { pending: fromStored(username, p.pending) } : {}),
      });
    } catch (e) {
      throw new KeyStoreError(`'${path}' holds unusable keys for '${username}': ${(e as Error).message}`, { cause: e });
    }
  }
  return pins;
}

async function writeAtomicPrivate(path: string, text: string): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  await unlink(tmp).catch(() => {});
  await writeNewPrivateFile(tmp, text);
  await rename(tmp, path);
}
