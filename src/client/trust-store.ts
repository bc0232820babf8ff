// Trust on first use (PROTOCOL.md §6): `<username>_known_peers.json` beside the key file, 0600.
// Each peer is pinned to the keys first seen for them; a later different key is never accepted
// silently but kept as a pending change until the user decides: /trust (compared, verified) or
// /accept (continue with the new key, not verified).
//
// The file is a journal: a first line naming the format, then one JSON object per line, each
// the whole record of one peer; the last line for a peer wins. A change appends one line (one
// write and one fdatasync for all changes made meanwhile), so a pin write costs O(1) whatever
// the number of peers; once the lines outnumber the peers twice over, the file is rewritten
// with one line per peer (temp file, fsync, rename), which amortises to O(1) as well. Files of
// the older format (one JSON document, version 1) are read and rewritten in the new one.
//
// One writer: only the client holding the user's lock opens this file (user-lock.ts, PROTOCOL.md
// §4.3), so this process's pins are the file's, and a write never reads the file back. (Merging
// what another process wrote cannot be made safe: a first contact decided from one process's
// memory, or a pin written last, would undo the other's /trust or /accept.)
import { constants } from "node:fs";
import { lstat, open, readFile, type FileHandle } from "node:fs/promises";
import { importPublicIdentity, type PublicIdentity } from "../protocol/keys.js";
import { nullLogger, type Logger } from "../protocol/log.js";
import { isValidUsername } from "../protocol/names.js";
import { writeAtomicPrivate } from "./atomic-file.js";
import { checkPrivateFileMode, KeyStoreError } from "./key-store.js";

export interface PinnedPeer {
  readonly identity: PublicIdentity;
  readonly verified: boolean;
  readonly pinnedAtMs: number;
  /** Keys the directory now shows for this peer, not yet accepted. */
  readonly pending?: PublicIdentity;
}

interface StoredKeys { sigSpki: string; encSpki: string; encKeySig: string }
interface StoredPeer extends StoredKeys { verified: boolean; pinnedAtMs: number; pending?: StoredKeys }
interface StoredFileV1 { version: 1; peers: Record<string, StoredPeer> }
interface StoredLine extends StoredPeer { user: string }

const FORMAT_LINE = `${JSON.stringify({ version: 2, format: "secure-chat known_peers: one JSON object per line; the last line for a user wins" })}\n`;
/** Lines beyond twice the peers (plus this slack) trigger a rewrite with one line per peer. */
const COMPACT_SLACK = 64;

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

function lineOf(username: string, p: PinnedPeer): string {
  const line: StoredLine = {
    user: username,
    ...toStored(p.identity),
    verified: p.verified,
    pinnedAtMs: p.pinnedAtMs,
    ...(p.pending ? { pending: toStored(p.pending) } : {}),
  };
  return `${JSON.stringify(line)}\n`;
}

export function sameKeys(a: PublicIdentity, b: PublicIdentity): boolean {
  return a.sigFpr.equals(b.sigFpr) && a.encFpr.equals(b.encFpr);
}

/**
 * What observing a directory entry did to the pin. "key-replaced": a pending change was
 * replaced by yet another key (a fresh warning; what was held under the replaced key can never
 * be released).
 */
export type ObserveResult = "pinned-new" | "unchanged" | "key-changed" | "key-replaced" | "change-withdrawn";

export class TrustStore {
  private readonly peers = new Map<string, PinnedPeer>();
  private writing: Promise<void> = Promise.resolve();
  /** Peers changed since the last write (written together by the next one). */
  private readonly dirty = new Set<string>();
  private writeScheduled = false;
  /** Record lines in the file. */
  private lines = 0;
  /** The next write rewrites the whole file (no file yet, the older format, a failed write). */
  private rewrite = true;

  private constructor(readonly path: string, private readonly clock: () => number, private readonly log: Logger) {}

  /** Loads the file (refusing loose permissions) or starts empty when it does not exist. */
  static async open(path: string, clock: () => number = Date.now, log: Logger = nullLogger): Promise<TrustStore> {
    const store = new TrustStore(path, clock, log);
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
    const parsed = parsePins(path, text);
    for (const [username, pin] of parsed.pins) store.peers.set(username, pin);
    store.lines = parsed.lines;
    store.rewrite = parsed.version === 1;
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
    const name = identity.username;
    const pin = this.peers.get(name);
    if (pin === undefined) {
      this.set(name, { identity, verified: false, pinnedAtMs: this.clock() });
      return "pinned-new";
    }
    if (sameKeys(pin.identity, identity)) {
      if (pin.pending === undefined) return "unchanged";
      this.set(name, { identity: pin.identity, verified: pin.verified, pinnedAtMs: pin.pinnedAtMs });
      return "change-withdrawn";
    }
    if (pin.pending !== undefined && sameKeys(pin.pending, identity)) return "key-changed";
    this.set(name, { ...pin, pending: identity });
    return pin.pending === undefined ? "key-changed" : "key-replaced";
  }

  /**
   * A pin handed over by my primary device at linking (PROTOCOL.md §4.6): taken only when this
   * device has no pin for the user yet (its own pin, or a pending change, always wins). Returns
   * whether it was taken.
   */
  adopt(identity: PublicIdentity, verified: boolean, pinnedAtMs: number): boolean {
    if (this.peers.has(identity.username)) return false;
    this.set(identity.username, { identity, verified, pinnedAtMs: Number.isSafeInteger(pinnedAtMs) && pinnedAtMs > 0 ? pinnedAtMs : this.clock() });
    return true;
  }

  /**
   * The user compared safety numbers: the pending keys (if any) become the pin, marked
   * verified. `expected` must be the keys the user compared (the caller checked the digits
   * against them); when the pending keys are no longer those, nothing changes.
   */
  trust(username: string, expected?: PublicIdentity): PinnedPeer | undefined {
    const pin = this.peers.get(username);
    if (pin === undefined) return undefined;
    const keys = pin.pending ?? pin.identity;
    if (expected !== undefined && !sameKeys(keys, expected)) return undefined;
    const next: PinnedPeer = { identity: keys, verified: true, pinnedAtMs: pin.pending ? this.clock() : pin.pinnedAtMs };
    this.set(username, next);
    return next;
  }

  /**
   * Continue with the new keys without having compared them: the pending keys become the pin,
   * marked not verified. Only when the pending keys are still `expected` (if given).
   */
  accept(username: string, expected?: PublicIdentity): PinnedPeer | undefined {
    const pin = this.peers.get(username);
    if (pin?.pending === undefined) return undefined;
    if (expected !== undefined && !sameKeys(pin.pending, expected)) return undefined;
    const next: PinnedPeer = { identity: pin.pending, verified: false, pinnedAtMs: this.clock() };
    this.set(username, next);
    return next;
  }

  /** Waits until every change so far is on disk. */
  flush(): Promise<void> {
    return this.writing;
  }

  private set(username: string, pin: PinnedPeer): void {
    this.peers.set(username, pin);
    this.dirty.add(username);
    if (this.writeScheduled) return;
    this.writeScheduled = true;
    // Writes are serialised; every change made while one is on its way goes in the next.
    this.writing = this.writing.then(() => {
      this.writeScheduled = false;
      return this.writeDirty();
    });
  }

  private async writeDirty(): Promise<void> {
    const names = [...this.dirty];
    this.dirty.clear();
    try {
      if (this.rewrite || this.lines > 2 * this.peers.size + COMPACT_SLACK) await this.rewriteFile();
      else await this.append(names);
    } catch (e) {
      // The in-memory pins stay authoritative; the next change rewrites the whole file.
      this.log.warn("trust.write-failed", { peers: names.length, reason: e instanceof Error ? e.message : String(e) });
      this.rewrite = true;
    }
  }

  /** Appends the changed peers' lines. */
  private async append(names: readonly string[]): Promise<void> {
    let fh: FileHandle;
    try {
      fh = await open(this.path, constants.O_WRONLY | constants.O_APPEND | constants.O_NOFOLLOW);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return this.rewriteFile();
      throw e;
    }
    try {
      const text = names.flatMap((n) => {
        const pin = this.peers.get(n);
        return pin ? [lineOf(n, pin)] : [];
      }).join("");
      await fh.write(text);
      await fh.datasync();
      this.lines += names.length;
    } finally {
      await this.closeFile(fh);
    }
  }

  /**
   * Best effort: by the time the file is closed its lines are synced (or the write already
   * failed, and that error is the one that matters); a failing close loses nothing, so it is
   * only logged.
   */
  private async closeFile(fh: FileHandle): Promise<void> {
    try {
      await fh.close();
    } catch (e) {
      this.log.warn("trust.close-failed", { reason: e instanceof Error ? e.message : String(e) });
    }
  }

  /** Rewrites the file with one line per peer, from this process's pins. */
  private async rewriteFile(): Promise<void> {
    const text = FORMAT_LINE + [...this.peers].sort(([a], [b]) => (a < b ? -1 : 1)).map(([n, p]) => lineOf(n, p)).join("");
    await writeAtomicPrivate(this.path, text);
    this.lines = this.peers.size;
    this.rewrite = false;
  }
}

interface ParsedPins { pins: Map<string, PinnedPeer>; lines: number; version: 1 | 2 }

/** The pins of a known_peers file (either format); throws a KeyStoreError naming what is wrong. */
function parsePins(path: string, text: string): ParsedPins {
  if (text.startsWith(FORMAT_LINE.slice(0, 12))) {
    const firstEnd = text.indexOf("\n") + 1;
    // A last line without its newline is a write cut short by a crash: it was never complete.
    const end = text.endsWith("\n") ? text.length : text.lastIndexOf("\n") + 1;
    return { ...parseLines(path, text.slice(firstEnd, Math.max(firstEnd, end))), version: 2 };
  }
  let parsed: StoredFileV1;
  try {
    parsed = JSON.parse(text) as StoredFileV1;
    if (parsed.version !== 1 || typeof parsed.peers !== "object" || parsed.peers === null) throw new Error("unknown format");
  } catch (e) {
    throw new KeyStoreError(`'${path}' is damaged (${(e as Error).message}); move it away to start over (you will re-pin every peer)`, { cause: e });
  }
  const pins = new Map<string, PinnedPeer>();
  for (const [username, p] of Object.entries(parsed.peers)) pins.set(username, pinOf(path, username, p));
  return { pins, lines: Object.keys(parsed.peers).length, version: 1 };
}

/**
 * Record lines: the last line of each user wins, and only that one is turned into keys
 * (importing keys checks signatures, the costly part of reading).
 */
function parseLines(path: string, text: string): { pins: Map<string, PinnedPeer>; lines: number } {
  const last = new Map<string, StoredLine>();
  let lines = 0;
  for (const raw of text.split("\n")) {
    if (raw === "") continue;
    let line: StoredLine;
    try {
      line = JSON.parse(raw) as StoredLine;
      if (typeof line !== "object" || line === null || typeof line.user !== "string") throw new Error("a line without a user");
    } catch (e) {
      throw new KeyStoreError(`'${path}' is damaged (${(e as Error).message}); move it away to start over (you will re-pin every peer)`, { cause: e });
    }
    lines++;
    last.set(line.user, line);
  }
  const pins = new Map<string, PinnedPeer>();
  for (const [username, p] of last) pins.set(username, pinOf(path, username, p));
  return { pins, lines };
}

function pinOf(path: string, username: string, p: StoredPeer): PinnedPeer {
  if (!isValidUsername(username)) throw new KeyStoreError(`'${path}' names an invalid user '${username}'`);
  try {
    return {
      identity: fromStored(username, p),
      verified: p.verified === true,
      pinnedAtMs: Number(p.pinnedAtMs) || 0,
      ...(p.pending ? { pending: fromStored(username, p.pending) } : {}),
    };
  } catch (e) {
    throw new KeyStoreError(`'${path}' holds unusable keys for '${username}': ${(e as Error).message}`, { cause: e });
  }
}
