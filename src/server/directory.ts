// Every bound user, in memory: what Welcome lists and what SendEnvelope checks run against.
// The database is the truth (store.ts); this is its read cache, updated at each binding.
// Signing keys are parsed lazily, on a user's first envelope, so a relay with many bound users
// but few active ones does not hold a KeyObject per user.
import { createPublicKey, type KeyObject } from "node:crypto";
import type * as wire from "../gen/securechat/v1/chat.js";
import { importSigningKey, keyTag } from "../protocol/keys.js";
import { isValidUsername } from "../protocol/names.js";
import type { RelayStore, UserRecord } from "./store.js";
import { UnboundNames } from "./unbound-names.js";

/**
 * A copy of b in an allocation of its own. Small Buffers are carved out of Node's shared pool
 * (64 KiB slabs on Node 24), and a 44-byte key kept for the relay's lifetime would pin its
 * whole slab: measured, that was ~64 KB per user bound at runtime.
 */
export function ownCopy(b: Uint8Array): Buffer {
  const c = Buffer.allocUnsafeSlow(b.length);
  c.set(b);
  return c;
}

const NO_BYTES = Buffer.alloc(0);

export class DirectoryUser {
  private key: KeyObject | undefined;
  private wrapLength: number | undefined;
  readonly record: UserRecord;
  /** Changes when the keys change (light directory entries carry it). */
  readonly keyTag: Buffer;
  /** The version of the user's device list the relay keeps (0: none; PROTOCOL.md §4.5), set at each publish. */
  deviceListVersion = 0;

  constructor(record: UserRecord, key?: KeyObject) {
    this.record = {
      username: record.username,
      sigSpki: ownCopy(record.sigSpki),
      encSpki: ownCopy(record.encSpki),
      encKeySig: ownCopy(record.encKeySig),
      sigFpr: ownCopy(record.sigFpr),
      encFpr: ownCopy(record.encFpr),
      createdAtMs: record.createdAtMs,
    };
    this.keyTag = ownCopy(keyTag(record.sigFpr, record.encFpr));
    this.key = key;
  }

  get username(): string {
    return this.record.username;
  }

  /**
   * Bytes of an RSA-OAEP wrap for this user: exactly the modulus length of the bound encryption
   * key (RFC 8017 §7.1.1), parsed once, on the first envelope addressed to this user.
   */
  get wrapBytes(): number {
    this.wrapLength ??= Math.ceil((createPublicKey({ key: this.record.encSpki, format: "der", type: "spki" }).asymmetricKeyDetails?.modulusLength ?? 0) / 8);
    return this.wrapLength;
  }

  /** The bound Ed25519 key, for envelope signatures. */
  get sigKey(): KeyObject {
    this.key ??= importSigningKey(this.record.sigSpki);
    return this.key;
  }

  /** A light entry: name, presence and key tag, no keys (Welcome, DirectoryUpdate). */
  toLightWire(online: boolean): wire.DirectoryEntry {
    return { username: this.record.username, sigSpki: NO_BYTES, encSpki: NO_BYTES, encKeySig: NO_BYTES, online, keyTag: this.keyTag, deviceListVersion: this.deviceListVersion };
  }

  /** The full entry with the keys (KeyList). */
  toWire(online: boolean): wire.DirectoryEntry {
    const r = this.record;
    return { username: r.username, sigSpki: r.sigSpki, encSpki: r.encSpki, encKeySig: r.encKeySig, online, keyTag: this.keyTag, deviceListVersion: this.deviceListVersion };
  }
}

export class Directory {
  private readonly users = new Map<string, DirectoryUser>();
  /**
   * In a cluster, a name bound on another relay may be asked for before its `user` event
   * arrives: a miss then reads the store (not cached when unbound: only remembered as unbound
   * for a short time, unbound-names.ts). Unset for one relay, which holds every bound user.
   */
  private readThrough: RelayStore | undefined;
  /** Names found unbound lately (shared with DeviceRoutes: relay.ts). */
  private unbound = new UnboundNames();

  static load(store: RelayStore, options: { readonly readThrough?: boolean; readonly unbound?: UnboundNames } = {}): Directory {
    const d = new Directory();
    if (options.readThrough === true) d.readThrough = store;
    if (options.unbound !== undefined) d.unbound = options.unbound;
    for (const u of store.listUsers()) d.users.set(u.username, new DirectoryUser(u));
    for (const [name, version] of store.devices.versions()) {
      const u = d.users.get(name);
      if (u !== undefined) u.deviceListVersion = version;
    }
    return d;
  }

  get(username: string): DirectoryUser | undefined {
    const u = this.users.get(username);
    if (u !== undefined || this.readThrough === undefined) return u;
    return this.getMany([username]).get(username);
  }

  /**
   * The bound users among these names (LookupKeys, FetchDeviceLists, Welcome): from memory, and
   * in a cluster the misses in ONE store read (RelayStore.findUsers: one statement on
   * PostgreSQL), never one per name. A name that is not a valid username (§4.1) is never looked
   * up; one found unbound is remembered as such for a short time and not read again meanwhile.
   */
  getMany(usernames: Iterable<string>): Map<string, DirectoryUser> {
    const out = new Map<string, DirectoryUser>();
    let misses: Set<string> | undefined;
    for (const n of usernames) {
      const u = this.users.get(n);
      if (u !== undefined) out.set(n, u);
      else if (this.readThrough !== undefined && isValidUsername(n) && !this.unbound.has(n)) (misses ??= new Set()).add(n);
    }
    if (misses === undefined || this.readThrough === undefined) return out;
    for (const f of this.readThrough.findUsers([...misses])) {
      const loaded = new DirectoryUser(f.record);
      loaded.deviceListVersion = f.deviceList?.version ?? 0;
      this.users.set(loaded.username, loaded);
      out.set(loaded.username, loaded);
      misses.delete(loaded.username);
    }
    for (const n of misses) this.unbound.add(n);
    return out;
  }

  /** Records a binding (new, or the same keys seen again); returns the cached entry. */
  put(record: UserRecord, sigKey: KeyObject): DirectoryUser {
    this.unbound.forget(record.username);
    const current = this.users.get(record.username);
    if (current !== undefined && current.record.sigSpki.equals(record.sigSpki) && current.record.encSpki.equals(record.encSpki)) {
      return current;
    }
    const u = new DirectoryUser(record, sigKey);
    this.users.set(record.username, u);
    return u;
  }

  /**
   * Another relay of the cluster bound, re-bound or released this name (the store is the truth):
   * the cached entry follows the record. Returns the entry, undefined when the name is not bound.
   */
  reload(record: UserRecord | undefined, username: string): DirectoryUser | undefined {
    this.unbound.forget(username);
    if (record === undefined) {
      this.users.delete(username);
      return undefined;
    }
    const current = this.users.get(record.username);
    if (current !== undefined && current.record.sigSpki.equals(record.sigSpki) && current.record.encSpki.equals(record.encSpki)) return current;
    const u = new DirectoryUser(record);
    this.users.set(record.username, u);
    return u;
  }

  all(): IterableIterator<DirectoryUser> {
    return this.users.values();
  }

  get size(): number {
    return this.users.size;
  }
}
