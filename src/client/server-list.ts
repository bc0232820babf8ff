// Several relays of one service (issue 14, cluster-design.md §3): `--server a:50051,b:50051` is an
// ordered list. The client connects to the first that answers; when a session ends it tries the
// NEXT address at once, and only after a whole round of the list failed does it wait (the backoff
// of one address, counted in rounds). An address that can never work (a changed certificate,
// something that is not a relay) is skipped for the rest of the run, said once, while another
// address of the list remains.
import type { SessionEnd } from "./errors.js";
import { relayKey } from "./known-relays.js";

/** Session ends that belong to one address of the list: another address may still work. */
export const PER_ADDRESS: ReadonlySet<SessionEnd["kind"]> = new Set(["certificate-changed", "certificate-not-accepted", "not-a-relay", "not-tls", "relay-too-old"]);

/** At most this many addresses in one list (a typo'd list of hundreds is refused). */
export const MAX_SERVERS = 16;

/** host:port; the host a name or an IPv6 literal in brackets, the port 1-65535. */
const ADDRESS = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;

/** One address: its host and port, or undefined when it is not host:port. */
export function parseServerAddress(s: string): { host: string; port: number } | undefined {
  const m = ADDRESS.exec(s.trim());
  if (!m) return undefined;
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return undefined;
  return { host: m[1]!, port };
}

/** What is wrong with one entry of a list (the UI words it, naming its own option). */
export type ServerListError =
  | { readonly kind: "too-many"; readonly count: number; readonly max: number }
  /** The one address given is not host:port (a list of one). */
  | { readonly kind: "not-an-address" }
  /** Entry `entry` (from 1, as written) is empty: two commas, or one at an end. */
  | { readonly kind: "empty"; readonly entry: number }
  | { readonly kind: "not-host-port"; readonly entry: number; readonly text: string }
  | { readonly kind: "repeated"; readonly entry: number; readonly text: string; readonly first: number };

/**
 * Parses a comma-separated list of host:port. Every bad entry is reported once, numbered from 1
 * as written; duplicates compare as the pins do (host case-insensitive).
 */
export function parseServerList(text: string): { ok: true; servers: readonly string[] } | { ok: false; errors: readonly ServerListError[] } {
  const entries = text.split(",").map((e) => e.trim());
  if (entries.length > MAX_SERVERS) return { ok: false, errors: [{ kind: "too-many", count: entries.length, max: MAX_SERVERS }] };
  if (entries.length === 1 && parseServerAddress(entries[0]!) === undefined) return { ok: false, errors: [{ kind: "not-an-address" }] };
  const errors: ServerListError[] = [];
  const servers: string[] = [];
  const seen = new Map<string, number>();
  entries.forEach((entry, i) => {
    const n = i + 1;
    const shown = entry.slice(0, 80);
    if (entry === "") return void errors.push({ kind: "empty", entry: n });
    const parsed = parseServerAddress(entry);
    if (parsed === undefined) return void errors.push({ kind: "not-host-port", entry: n, text: shown });
    const address = `${parsed.host}:${parsed.port}`;
    const first = seen.get(relayKey(address));
    if (first !== undefined) return void errors.push({ kind: "repeated", entry: n, text: shown, first });
    seen.set(relayKey(address), n);
    servers.push(address);
  });
  return errors.length > 0 ? { ok: false, errors } : { ok: true, servers };
}

/** Where the next attempt goes, and whether it waits for the backoff first. */
export interface NextServer {
  readonly address: string;
  /** True when a whole round of the usable addresses failed since the last Welcome: wait first. */
  readonly wait: boolean;
}

/**
 * The rotation through an ordered list. One attempt per address per round; the round ends when
 * every usable address was tried since the last session that reached Welcome (a session that
 * reached Welcome and then ended counts as its address's try). With one address every end waits,
 * exactly as the single-relay client always did.
 */
export class ServerRotation {
  private index = 0;
  private triedThisRound = 0;
  private readonly skipped = new Map<number, string>();

  constructor(readonly servers: readonly string[]) {
    if (servers.length === 0) throw new TypeError("a server list needs at least one address");
    if (servers.length > MAX_SERVERS) throw new TypeError(`a server list holds at most ${MAX_SERVERS} addresses`);
  }

  /** The address in use (or being tried). */
  get current(): string {
    return this.servers[this.index]!;
  }

  /** 1-based position of the current address in the list. */
  get position(): number {
    return this.index + 1;
  }

  get size(): number {
    return this.servers.length;
  }

  /** Addresses not skipped. */
  get usable(): number {
    return this.servers.length - this.skipped.size;
  }

  /** The other addresses of the list (whose pins an address may share, relay-transport.ts). */
  siblings(address: string): readonly string[] {
    return this.servers.filter((s) => relayKey(s) !== relayKey(address));
  }

  /** A session reached Welcome on the current address: a new round starts with it. */
  welcomed(): void {
    this.triedThisRound = 0;
  }

  /**
   * The current address can never work (its sentence says why): true when it was skipped and
   * another usable address remains, false when it was the last one (the caller stops for good).
   */
  skipCurrent(reason: string): boolean {
    if (this.usable <= 1) return false;
    this.skipped.set(this.index, reason);
    return true;
  }

  /** The current attempt ended (failed, or its session ended): the address to try next. */
  advance(): NextServer {
    // A skipped address's try does not count: the round is over the addresses that remain.
    if (!this.skipped.has(this.index)) this.triedThisRound++;
    const wait = this.triedThisRound >= this.usable;
    if (wait) this.triedThisRound = 0;
    for (let step = 1; step <= this.servers.length; step++) {
      const i = (this.index + step) % this.servers.length;
      if (!this.skipped.has(i)) {
        this.index = i;
        break;
      }
    }
    return { address: this.current, wait };
  }
}
