// Valid usernames the relay found unbound lately (PROTOCOL.md §6, §8.2): remembered so that a
// request naming many made-up names (LookupKeys, FetchDeviceLists, ClaimKeyPackages, a group's
// fan-out after a commit's hint named them) costs no database read for those names again. In a
// cluster every read is a round trip that blocks the relay's event loop (store/pg/sync-client.ts).
//
// Bounded: at most MAX_UNBOUND_NAMES names of at most 32 characters (under 1 MiB), oldest first
// out; each for at most UNBOUND_NAME_TTL_MS. A binding forgets the name at once: on this relay
// (handshake.ts bindName) and, on the others of a cluster, at its `user` event
// (cluster-wiring.ts); a resync (events maybe lost) forgets them all. The time limit is the
// fallback for an event lost without a resync.
//
// One set per relay, shared by the Directory (LookupKeys) and DeviceRoutes (device lists,
// claims, fan-out): the first of them to find a name unbound spares the other its read.

/** Most unbound names remembered. */
export const MAX_UNBOUND_NAMES = 10_000;
/** Longest an unbound name is remembered (a binding on another relay whose event was lost shows after this). */
export const UNBOUND_NAME_TTL_MS = 10_000;

export class UnboundNames {
  /** Name -> when it was found unbound (monotonic ms); in insertion order, oldest first. */
  private readonly names = new Map<string, number>();

  constructor(
    private readonly max = MAX_UNBOUND_NAMES,
    private readonly ttlMs = UNBOUND_NAME_TTL_MS,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Whether the name was found unbound within the time limit (and not bound since, as far as this relay heard). */
  has(name: string): boolean {
    const at = this.names.get(name);
    if (at === undefined) return false;
    if (this.now() - at <= this.ttlMs) return true;
    this.names.delete(name);
    return false;
  }

  /** A read found the name unbound now. */
  add(name: string): void {
    this.names.delete(name);
    this.names.set(name, this.now());
    while (this.names.size > this.max) this.names.delete(this.names.keys().next().value!);
  }

  /** The name was bound (here or on another relay of the cluster). */
  forget(name: string): void {
    this.names.delete(name);
  }

  /** Events may have been lost: every name is read again at its next use. */
  clear(): void {
    this.names.clear();
  }

  get size(): number {
    return this.names.size;
  }
}
