// The relays this user has connected to, pinned on first use as ssh's known_hosts pins host
// keys: `<username>_known_relays.json` beside known_peers, 0600, in the same 0700 key directory.
// One entry per server address (host:port as given): the relay's TLS certificate, whose SHA-256
// the client also binds into its proof of possession (PROTOCOL.md §9).
import { lstat, readFile } from "node:fs/promises";
import { certificateFingerprint } from "../protocol/x509.js";
import { writeAtomicPrivate } from "./atomic-file.js";
import { checkPrivateFileMode, KeyStoreError } from "./key-store.js";

export interface RelayPin {
  /** DER of the certificate the relay presented when it was pinned. */
  readonly certificate: Buffer;
  /** SHA-256 of `certificate`, 64 hex digits. */
  readonly sha256: string;
  readonly pinnedAtMs: number;
}

interface StoredPin { certificate: string; sha256: string; pinnedAtMs: number }
interface StoredFile { version: 1; relays: Record<string, StoredPin> }

/** The key of a server address in the file: host:port, host in lower case. */
export function relayKey(address: string): string {
  return address.trim().toLowerCase();
}

export class KnownRelays {
  private readonly pins = new Map<string, RelayPin>();
  private writing: Promise<void> = Promise.resolve();

  /** path undefined: pins live only as long as this object (library use without a key dir). */
  private constructor(readonly path: string | undefined, private readonly clock: () => number) {}

  static inMemory(clock: () => number = Date.now): KnownRelays {
    return new KnownRelays(undefined, clock);
  }

  /** Loads the file (refusing loose permissions, like the key file) or starts empty. */
  static async open(path: string, clock: () => number = Date.now): Promise<KnownRelays> {
    const store = new KnownRelays(path, clock);
    let text: string;
    try {
      checkPrivateFileMode(path, await lstat(path));
      text = await readFile(path, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return store;
      if (e instanceof KeyStoreError) throw e;
      throw new KeyStoreError(`cannot read '${path}': ${(e as Error).message}`, { cause: e });
    }
    for (const [k, pin] of parse(path, text)) store.pins.set(k, pin);
    return store;
  }

  get(address: string): RelayPin | undefined {
    return this.pins.get(relayKey(address));
  }

  /** Pins (or, after the user accepted a new certificate, re-pins) a relay; waits until it is on disk. */
  async pin(address: string, certificate: Buffer): Promise<RelayPin> {
    const pin: RelayPin = { certificate: Buffer.from(certificate), sha256: certificateFingerprint(certificate), pinnedAtMs: this.clock() };
    this.pins.set(relayKey(address), pin);
    if (this.path !== undefined) {
      const path = this.path;
      this.writing = this.writing.then(async () => {
        // Another chat-tui of this user may have pinned other relays since we read the file.
        try {
          for (const [k, p] of parse(path, await readFile(path, "utf8"))) if (!this.pins.has(k)) this.pins.set(k, p);
        } catch {
          // no file yet, or a damaged one this write replaces
        }
        await writeAtomicPrivate(path, this.serialize());
      });
      await this.writing;
    }
    return pin;
  }

  private serialize(): string {
    const file: StoredFile = { version: 1, relays: {} };
    for (const [k, p] of [...this.pins].sort(([a], [b]) => (a < b ? -1 : 1))) {
      file.relays[k] = { certificate: p.certificate.toString("base64"), sha256: p.sha256, pinnedAtMs: p.pinnedAtMs };
    }
    return `${JSON.stringify(file, null, 2)}\n`;
  }
}

function parse(path: string, text: string): Map<string, RelayPin> {
  const damaged = (why: string): KeyStoreError =>
    new KeyStoreError(`'${path}' is damaged (${why}); move it away to start over (every relay is then pinned again on first use)`);
  let parsed: StoredFile;
  try {
    parsed = JSON.parse(text) as StoredFile;
  } catch (e) {
    throw damaged((e as Error).message);
  }
  if (parsed.version !== 1 || typeof parsed.relays !== "object" || parsed.relays === null) throw damaged("unknown format");
  const pins = new Map<string, RelayPin>();
  for (const [k, p] of Object.entries(parsed.relays)) {
    if (typeof p?.certificate !== "string" || typeof p.sha256 !== "string") throw damaged(`entry ${k} is incomplete`);
    const certificate = Buffer.from(p.certificate, "base64");
    // The fingerprint is recomputed, never trusted from the file: an edited hash must not pass.
    if (certificateFingerprint(certificate) !== p.sha256) throw damaged(`the certificate of ${k} does not match its SHA-256`);
    pins.set(relayKey(k), { certificate, sha256: p.sha256, pinnedAtMs: Number(p.pinnedAtMs) || 0 });
  }
  return pins;
}
