// Devices a user's primary took out under a newer list than the one I hold (PROTOCOL.md §4.5
// "What my own devices say of my list", §7.6 (f); review round 7).
//
// The relay may keep serving me U's list from before an /unlink (one I hold: no rollback to
// refuse), so the unlinked (stolen) device still looks listed to me. U's primary's self-heal
// removes it from our groups all the same (a primary may remove its user's devices whatever list
// I hold), and its commit says which version of U's list it holds (its list claim). Without a
// memory of that removal, the device could join again by external commit at once, still listed
// as far as I can tell, and read and write as U until the primary removed it again: a loop at the
// thief's pace.
//
// So: when U's primary removes U's other devices in a self-heal commit I accept (its claim says
// it takes out devices its list no longer names), claiming a list of U newer than the one I hold, those devices' keys count for me as NOT in U's list until I hold a list of
// U at least that new (then that list decides: it names them again, or not). A primary's /leave,
// or a removal under the list I hold, is not remembered (a linked device's later /join stays
// welcome). The memory is kept in the MLS store (sealed like the groups), so a restart keeps it.
import { deviceBySignatureKey, type DeviceListBody } from "../../protocol/devices.js";
import type { MembershipChange, MlsMember } from "../../protocol/mls/index.js";
import type { Logger } from "../../protocol/log.js";
import type { DeviceDirectory } from "../devices-api.js";
import { claimsUnlinks, decodeListClaim } from "./list-claims.js";
import type { ListsOf } from "./policy.js";

/**
 * The memory is kept per conversation, each with its own budget (review round 9): a stranger can
 * fill only the budget of conversations it is in with me, and push out what a primary did in my
 * DM with its user only by filling the whole memory (DROPPED_ENTRIES_MAX: some 16 rooms of 64
 * strangers each) while that DM is unused. Conversations remembered at once (the one used
 * longest ago is forgotten):
 */
export const DROPPED_CONVERSATIONS = 4_096;
/** Users per conversation whose dropped devices are remembered (the one used longest ago is forgotten). */
export const DROPPED_USERS_PER_CONVERSATION = 64;
/** Dropped keys remembered per user in a conversation (the oldest is forgotten; a list names at most 16 devices). */
export const DROPPED_KEYS_PER_USER = 16;
/**
 * Entries (keys) over all conversations: past it the conversation used longest ago is forgotten,
 * so the sealed value stays small (~1.5 MB at most) and is written once per commit (review round 10).
 */
export const DROPPED_ENTRIES_MAX = 16_384;

/** Where the memory is kept between runs (MlsKeyStore's sealed values). */
export interface DroppedDevicesKeep {
  value(name: string): Uint8Array | undefined;
  putValue(name: string, bytes: Uint8Array): void;
}

const KEPT_AS = "dropped-devices";

type Keys = Map<string, number>;

export class DroppedDevices {
  /** By conversation, then user: MLS signature key (hex) → the list version the primary's removal claimed. */
  private readonly byConv = new Map<string, Map<string, Keys>>();
  /** By user: the conversations holding an entry of theirs (a lookup reads only those). */
  private readonly convsOf = new Map<string, Set<string>>();
  /** By user: the union of their dropped keys, as computed for the list version I held then (a lookup per message costs one Map read). */
  private readonly union = new Map<string, { readonly version: number; readonly keys: ReadonlySet<string> | undefined }>();
  /** Keys remembered over all conversations (DROPPED_ENTRIES_MAX). */
  private entries = 0;
  private loaded = false;

  constructor(private readonly devices: Pick<DeviceDirectory, "known">, private readonly logger: Logger, private readonly keep?: DroppedDevicesKeep) {}

  /**
   * A commit I accepted, with its authenticated_data and the group's leaves after it: remembers
   * the devices its committer, its user's primary by the list I hold, took out in a self-heal
   * (its claim says so: a /leave's removals are not remembered, review round 8) under a list
   * claim newer than that list; not a leaf whose key another leaf still holds (a stale leaf of
   * a device still in use).
   */
  noteCommit(conv: string, change: MembershipChange, authenticatedData: Uint8Array, after: readonly MlsMember[] = []): void {
    // Not the lobby: anyone is in it with me, and its commits must not feed (and so evict) the memory.
    if (conv === "lobby") return;
    const by = change.committer;
    const held = this.devices.known(by.username);
    if (held === undefined || !claimsUnlinks(authenticatedData)) return;
    const claimed = decodeListClaim(authenticatedData);
    if (claimed === undefined || claimed <= held.version) return;
    if (deviceBySignatureKey(held, by.signatureKey)?.primary !== true) return;
    let changed = false;
    for (const r of change.removed) {
      if (r.username !== by.username || !r.identityFpr.equals(by.identityFpr)) continue;
      // A device leaving by its own proposal was not dropped; nor is the primary's own key.
      if (change.left.some((l) => l.leafIndex === r.leafIndex)) continue;
      const entry = deviceBySignatureKey(held, r.signatureKey);
      if (entry === undefined || entry.primary) continue;
      if (after.some((m) => Buffer.from(m.signatureKey).equals(Buffer.from(r.signatureKey)))) continue;
      this.remember(conv, by.username, Buffer.from(r.signatureKey).toString("hex"), claimed);
      changed = true;
    }
    if (changed) this.save(); // once per commit, not per key
  }

  /** True when `key` of `username` counts as dropped (a primary's removal under a list newer than mine). */
  isDropped(username: string, signatureKey: Uint8Array): boolean {
    return this.droppedKeys(username)?.has(Buffer.from(signatureKey).toString("hex")) === true;
  }

  /** U's list as the device rules read it: the list I hold, less the devices dropped under a newer one. */
  listOf(username: string): DeviceListBody | undefined {
    const held = this.devices.known(username);
    const dropped = this.droppedKeys(username);
    if (held === undefined || dropped === undefined) return held;
    return { ...held, devices: held.devices.filter((d) => !dropped.has(d.mlsSignatureKey.toString("hex"))) };
  }

  /** `listOf` as the policy's ListsOf. */
  readonly lists: ListsOf = (u) => this.listOf(u);

  /** The keys of `username` still dropped, over every conversation (entries a list as new as their claim has reached are forgotten). */
  private droppedKeys(username: string): ReadonlySet<string> | undefined {
    this.load();
    const convs = this.convsOf.get(username);
    if (convs === undefined) return undefined;
    const version = this.devices.known(username)?.version ?? 0;
    const cached = this.union.get(username);
    if (cached !== undefined && cached.version === version) {
      // Used last: its conversations are forgotten last.
      for (const c of convs) { const users = this.byConv.get(c); if (users !== undefined) { this.byConv.delete(c); this.byConv.set(c, users); } }
      return cached.keys;
    }
    const out = new Set<string>();
    for (const conv of [...convs]) {
      const users = this.byConv.get(conv);
      const keys = users?.get(username);
      if (users === undefined || keys === undefined) { convs.delete(conv); continue; }
      for (const [k, v] of keys) if (v <= version) { keys.delete(k); this.entries--; }
      users.delete(username);
      if (keys.size === 0) { convs.delete(conv); continue; }
      // Used last: forgotten last (within the conversation, and the conversation among all).
      users.set(username, keys);
      this.byConv.delete(conv);
      this.byConv.set(conv, users);
      for (const k of keys.keys()) out.add(k);
    }
    if (convs.size === 0) this.convsOf.delete(username);
    const keys = out.size === 0 ? undefined : out;
    this.union.set(username, { version, keys });
    return keys;
  }

  private remember(conv: string, username: string, key: string, claimed: number): void {
    this.load();
    let users = this.byConv.get(conv);
    if (users === undefined) {
      if (this.byConv.size >= DROPPED_CONVERSATIONS) this.forgetConversation(this.byConv.keys().next().value as string);
      users = new Map();
    }
    this.byConv.delete(conv);
    this.byConv.set(conv, users);
    let keys = users.get(username);
    if (keys === undefined) {
      if (users.size >= DROPPED_USERS_PER_CONVERSATION) this.forgetUser(conv, users, users.keys().next().value as string);
      keys = new Map();
    }
    users.delete(username);
    users.set(username, keys);
    let convs = this.convsOf.get(username);
    if (convs === undefined) this.convsOf.set(username, (convs = new Set()));
    convs.add(conv);
    if (keys.delete(key)) this.entries--;
    if (keys.size >= DROPPED_KEYS_PER_USER) { keys.delete(keys.keys().next().value as string); this.entries--; }
    keys.set(key, claimed);
    this.entries++;
    this.union.delete(username);
    while (this.entries > DROPPED_ENTRIES_MAX && this.byConv.size > 1) this.forgetConversation(this.byConv.keys().next().value as string);
    this.logger.info("mls.devices.dropped_by_primary", { conversation: conv, user: username, claimed });
  }

  private forgetUser(conv: string, users: Map<string, Keys>, username: string): void {
    this.entries -= users.get(username)?.size ?? 0;
    this.union.delete(username);
    users.delete(username);
    const convs = this.convsOf.get(username);
    convs?.delete(conv);
    if (convs?.size === 0) this.convsOf.delete(username);
  }

  private forgetConversation(conv: string): void {
    const users = this.byConv.get(conv);
    if (users !== undefined) for (const u of [...users.keys()]) this.forgetUser(conv, users, u);
    this.byConv.delete(conv);
  }

  /** The kept memory, read once (what does not read is dropped with a log line: a memory, not a right). */
  private load(): void {
    if (this.loaded) return;
    this.loaded = true;
    try {
      const bytes = this.keep?.value(KEPT_AS);
      if (bytes === undefined) return;
      const rows = JSON.parse(Buffer.from(bytes).toString("utf8")) as unknown;
      if (!Array.isArray(rows)) throw new Error("not a list");
      // [[conversation, [[user, [[key, version], …]], …]], …], oldest first.
      for (const row of rows.slice(-DROPPED_CONVERSATIONS) as unknown[]) {
        if (!Array.isArray(row) || typeof row[0] !== "string" || !Array.isArray(row[1])) continue;
        for (const u of (row[1] as unknown[]).slice(-DROPPED_USERS_PER_CONVERSATION)) {
          if (!Array.isArray(u) || typeof u[0] !== "string" || !Array.isArray(u[1])) continue;
          for (const kv of (u[1] as unknown[]).slice(-DROPPED_KEYS_PER_USER)) {
            if (!Array.isArray(kv)) continue;
            const [k, v] = kv as [unknown, unknown];
            if (typeof k === "string" && /^[0-9a-f]{2,256}$/.test(k) && Number.isSafeInteger(v) && (v as number) > 0) this.put(row[0], u[0], k, v as number);
          }
        }
      }
      // Past the bound (a value from an older client): the conversations read first, the oldest, go.
      while (this.entries > DROPPED_ENTRIES_MAX && this.byConv.size > 1) this.forgetConversation(this.byConv.keys().next().value as string);
    } catch (e) {
      this.logger.warn("mls.devices.dropped_unreadable", { reason: (e as Error).message });
    }
  }

  /** An entry read back (no save, no log line). */
  private put(conv: string, username: string, key: string, version: number): void {
    let users = this.byConv.get(conv);
    if (users === undefined) this.byConv.set(conv, (users = new Map()));
    let keys = users.get(username);
    if (keys === undefined) users.set(username, (keys = new Map()));
    if (!keys.has(key)) this.entries++;
    keys.set(key, version);
    let convs = this.convsOf.get(username);
    if (convs === undefined) this.convsOf.set(username, (convs = new Set()));
    convs.add(conv);
  }

  private save(): void {
    if (this.keep === undefined) return;
    const rows = [...this.byConv].map(([c, users]) => [c, [...users].map(([u, keys]) => [u, [...keys]])]);
    this.keep.putValue(KEPT_AS, Buffer.from(JSON.stringify(rows), "utf8"));
  }
}
