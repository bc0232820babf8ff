// Every user's verified, pinned device list (PROTOCOL.md §4.5), the DeviceDirectory of
// devices-api.ts over the relay's FetchDeviceLists (DsApi.fetchDeviceLists).
//
// A list the relay serves is taken only when:
// - it verifies against the user's identity key AS PINNED here (the trust store, §6). A user not
//   pinned yet is first pinned from the relay's directory (`ensurePinned`, the same first contact
//   the MLS trust hook relies on, §4.4); while a key change of theirs waits for /trust or /accept
//   nothing of theirs is taken (as the trust hook refuses their leaves);
// - its version is not lower than the highest one kept for that user (no rollback). A list of
//   the same version must be the same list. The relay answering NO list for a user whose list was
//   kept is a rollback too (it would hide every device).
// Refused lists are reported to onRefused (one sentence each) and never replace the kept one.
// The kept lists survive restarts: one row per user in the state database (`device_lists`),
// sealed (AES-256-GCM) under a key derived from this device's private key like the other state
// (§10.4), bound to the username and the identity key it verified under. A pin kept under an
// identity key that is no longer the user's pinned one (an accepted key change) is dropped: a
// new identity starts its lists again at version 1.
import { hkdfSync, randomBytes, type KeyObject } from "node:crypto";
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { DeviceList as WireDeviceList, type DeviceSeen } from "../gen/securechat/v1/chat.js";
import { fromWireDeviceList, toWireDeviceList, verifyDeviceList, type SignedDeviceList, type VerifiedDeviceList } from "../protocol/devices.js";
import { encodeFields } from "../protocol/encoding.js";
import { nullLogger, type Logger } from "../protocol/log.js";
import { AES_KEY_BYTES, aesGcmDecrypt, aesGcmEncrypt, GCM_IV_BYTES, GCM_TAG_BYTES } from "../protocol/primitives.js";
import { DeviceListsUnanswered, type DeviceDirectory, type DeviceLastSeen, type RefreshOptions, type ThisDevice } from "./devices-api.js";
import type { DsApi } from "./mls/ds-api.js";

const KDF_INFO = "securechat/v1/device-lists-key";

/** Where the kept lists live between runs. */
export interface DeviceListPins {
  load(): readonly VerifiedDeviceList[];
  save(list: VerifiedDeviceList): void;
  remove(username: string): void;
}

/** The pins in memory only (tests, or a client without a state database). */
export function memoryDeviceListPins(): DeviceListPins & { readonly rows: Map<string, VerifiedDeviceList> } {
  const rows = new Map<string, VerifiedDeviceList>();
  return { rows, load: () => [...rows.values()], save: (l) => void rows.set(l.username, l), remove: (u) => void rows.delete(u) };
}

/** The pins in the state database (`device_lists`), sealed under this device's private key. */
export class SealedDeviceListPins implements DeviceListPins {
  private readonly key: Buffer;
  private readonly q: { all: StatementSync; put: StatementSync; del: StatementSync };

  constructor(db: DatabaseSync, localKey: KeyObject, private readonly log: Logger = nullLogger) {
    if (localKey?.type !== "private") throw new TypeError("the device list pins are sealed under this device's private key");
    const ikm = localKey.export({ format: "der", type: "pkcs8" });
    this.key = Buffer.from(hkdfSync("sha256", ikm, Buffer.alloc(0), KDF_INFO, AES_KEY_BYTES));
    ikm.fill(0);
    db.exec("CREATE TABLE IF NOT EXISTS device_lists (username TEXT PRIMARY KEY, identity_spki BLOB NOT NULL, sealed BLOB NOT NULL) WITHOUT ROWID");
    this.q = {
      all: db.prepare("SELECT username, identity_spki, sealed FROM device_lists"),
      put: db.prepare("INSERT OR REPLACE INTO device_lists (username, identity_spki, sealed) VALUES (?, ?, ?)"),
      del: db.prepare("DELETE FROM device_lists WHERE username = ?"),
    };
  }

  private aad(username: string, identitySpki: Uint8Array): Buffer {
    return encodeFields("securechat/v1/device-list-pin", [username, identitySpki]);
  }

  load(): readonly VerifiedDeviceList[] {
    const out: VerifiedDeviceList[] = [];
    for (const row of this.q.all.all() as { username: string; identity_spki: Uint8Array; sealed: Uint8Array }[]) {
      try {
        const s = Buffer.from(row.sealed);
        if (s.length < GCM_IV_BYTES + GCM_TAG_BYTES) throw new Error("too short");
        const plain = aesGcmDecrypt(this.key, s.subarray(0, GCM_IV_BYTES), this.aad(row.username, row.identity_spki), s.subarray(GCM_IV_BYTES + GCM_TAG_BYTES), s.subarray(GCM_IV_BYTES, GCM_IV_BYTES + GCM_TAG_BYTES));
        // Verified again: what is kept is only ever a list its user signed.
        out.push(verifyDeviceList(fromWireDeviceList(WireDeviceList.decode(plain)), row.username, row.identity_spki));
      } catch (e) {
        this.log.warn("devices.pin_unreadable", { user: row.username, reason: (e as Error).message });
      }
    }
    return out;
  }

  save(list: VerifiedDeviceList): void {
    const iv = randomBytes(GCM_IV_BYTES);
    const plain = Buffer.from(WireDeviceList.encode(toWireDeviceList(list)).finish());
    const { ciphertext, tag } = aesGcmEncrypt(this.key, iv, this.aad(list.username, list.identitySpki), plain);
    this.q.put.run(list.username, list.identitySpki, Buffer.concat([iv, tag, ciphertext]));
  }

  remove(username: string): void {
    this.q.del.run(username);
  }
}

/** What the directory needs to know of a user's identity key (the trust store's pin). */
export type PinnedIdentity =
  | { readonly state: "pinned"; readonly identitySpki: Uint8Array }
  /** A key change waits for the user's decision: nothing of theirs is taken meanwhile. */
  | { readonly state: "undecided" }
  | { readonly state: "unknown" };

export interface DeviceDirectoryOptions {
  /** This device; `deviceId` may still be "" on a primary before its first list (see setSelfDeviceId). */
  readonly self: ThisDevice;
  readonly ds: Pick<DsApi, "fetchDeviceLists">;
  /** The user's identity key as pinned (for me: my own identity key). */
  readonly pinOf: (username: string) => PinnedIdentity;
  /** Pins these users from the relay's directory when not pinned yet (KeyDirectory.ensure); never throws. */
  readonly ensurePinned?: (usernames: readonly string[]) => Promise<void>;
  readonly pins?: DeviceListPins;
  readonly log?: Logger;
}

function sameList(a: SignedDeviceList, b: SignedDeviceList): boolean {
  return a.version === b.version && Buffer.from(a.signature).equals(Buffer.from(b.signature));
}

export class VerifiedDeviceDirectory implements DeviceDirectory {
  private readonly kept = new Map<string, VerifiedDeviceList>();
  private readonly seen = new Map<string, Map<string, DeviceLastSeen>>();
  private readonly changeListeners = new Set<(username: string, list: VerifiedDeviceList, previous: VerifiedDeviceList | undefined) => void>();
  private readonly refusedListeners = new Set<(username: string, reason: string) => void>();
  private readonly pins: DeviceListPins;
  private readonly log: Logger;
  /** Refreshes run one at a time: two answers are never compared with the same kept version. */
  private queue: Promise<unknown> = Promise.resolve();
  private me: ThisDevice;

  constructor(private readonly o: DeviceDirectoryOptions) {
    this.me = o.self;
    this.pins = o.pins ?? memoryDeviceListPins();
    this.log = o.log ?? nullLogger;
    for (const l of this.pins.load()) this.kept.set(l.username, l);
  }

  get self(): ThisDevice {
    return this.me;
  }

  /** The primary's id once its list is known (the primary learns it from its own first list). */
  setSelfDeviceId(deviceId: string): void {
    this.me = { ...this.me, deviceId };
  }

  /** This device's MLS signature key, once its MLS client is loaded. */
  setSelfMlsKey(mlsSignatureKey: Uint8Array): void {
    this.me = { ...this.me, mlsSignatureKey: Buffer.from(mlsSignatureKey) };
  }

  known(username: string): VerifiedDeviceList | undefined {
    const l = this.kept.get(username);
    if (l === undefined) return undefined;
    // A pin made under an identity key that is no longer the pinned one does not count.
    const pin = this.o.pinOf(username);
    if (pin.state === "pinned" && !Buffer.from(pin.identitySpki).equals(l.identitySpki)) return undefined;
    return l;
  }

  lastSeen(username: string): ReadonlyMap<string, DeviceLastSeen> {
    return this.seen.get(username) ?? new Map();
  }

  onChange(listener: (username: string, list: VerifiedDeviceList, previous: VerifiedDeviceList | undefined) => void): () => void {
    this.changeListeners.add(listener);
    return () => void this.changeListeners.delete(listener);
  }

  onRefused(listener: (username: string, reason: string) => void): () => void {
    this.refusedListeners.add(listener);
    return () => void this.refusedListeners.delete(listener);
  }

  refresh(usernames: readonly string[], o: RefreshOptions = {}): Promise<ReadonlyMap<string, VerifiedDeviceList>> {
    const names = [...new Set(usernames)].filter((u) => typeof u === "string" && u.length > 0);
    const run = this.queue.then(() => this.refreshNow(names, o.mustAnswer === true));
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * At construction only (nothing queued yet): takes a list this device got at its linking
   * (§4.6), with the checks of a fetched one, so it is the floor of what the relay may serve.
   * True when taken or already kept (or older than the kept one: the kept one is newer).
   */
  seed(list: SignedDeviceList): boolean {
    return this.consider(list.username, list) !== "refused";
  }

  /**
   * Takes a list this client got other than by fetching (the one it just published, §4.5): the
   * same checks as a fetched one. True when taken (or already kept).
   */
  async accept(list: SignedDeviceList): Promise<boolean> {
    const run = this.queue.then(() => this.consider(list.username, list));
    this.queue = run.catch(() => undefined);
    return (await run) !== "refused";
  }

  private kept_(username: string): VerifiedDeviceList | undefined {
    return this.known(username);
  }

  private async refreshNow(names: readonly string[], mustAnswer: boolean): Promise<ReadonlyMap<string, VerifiedDeviceList>> {
    const out = new Map<string, VerifiedDeviceList>();
    if (names.length === 0) return out;
    if (this.o.ds.fetchDeviceLists === undefined) {
      for (const u of names) {
        const k = this.kept_(u);
        if (k !== undefined) out.set(u, k);
      }
      return out;
    }
    const others = names.filter((u) => u !== this.me.username && this.o.pinOf(u).state === "unknown");
    if (others.length > 0 && this.o.ensurePinned !== undefined) {
      try {
        await this.o.ensurePinned(others);
      } catch (e) {
        this.log.warn("devices.pin_lookup_failed", { users: others.length, reason: (e as Error).message });
      }
    }
    const r = await this.o.ds.fetchDeviceLists(names);
    if (!r.ok) {
      this.log.warn("devices.fetch_failed", { users: names.length, code: r.code });
      if (mustAnswer) throw new DeviceListsUnanswered(r.code);
    } else {
      const asked = new Set(names);
      const served = new Map<string, SignedDeviceList>();
      for (const l of r.lists) {
        if (!asked.has(l.username)) continue;
        if (served.has(l.username)) {
          this.refused(l.username, `the relay served two device lists of ${l.username} at once`);
          served.delete(l.username);
          asked.delete(l.username);
          continue;
        }
        served.set(l.username, l);
      }
      for (const u of asked) {
        const l = served.get(u);
        if (l !== undefined) {
          await this.consider(u, l);
          continue;
        }
        const k = this.kept_(u);
        if (k !== undefined) this.refused(u, `the relay served no device list of ${u}, though version ${k.version} was seen before`);
      }
      const byUser = new Map<string, Map<string, DeviceLastSeen>>();
      for (const s of r.seen as readonly DeviceSeen[]) {
        if (!asked.has(s.username)) continue;
        let m = byUser.get(s.username);
        if (m === undefined) byUser.set(s.username, (m = new Map()));
        m.set(s.deviceId, { online: s.online === true, lastSeenMs: Number.isSafeInteger(s.lastSeenMs) && s.lastSeenMs >= 0 ? s.lastSeenMs : 0 });
      }
      for (const [u, m] of byUser) this.seen.set(u, m);
    }
    for (const u of names) {
      const k = this.kept_(u);
      if (k !== undefined) out.set(u, k);
    }
    return out;
  }

  /** One list of `username` the relay (or this client) offers: verified, version-checked, kept. */
  private consider(username: string, list: SignedDeviceList): "taken" | "same" | "refused" | "skipped" {
    const pin = this.o.pinOf(username);
    if (pin.state === "undecided") {
      this.log.info("devices.list_held", { user: username, reason: "key change undecided" });
      return "skipped";
    }
    if (pin.state === "unknown") {
      this.log.info("devices.list_unverifiable", { user: username, reason: "no identity key pinned" });
      return "skipped";
    }
    let verified: VerifiedDeviceList;
    try {
      verified = verifyDeviceList(list, username, pin.identitySpki);
    } catch (e) {
      this.log.warn("devices.list_refused", { user: username, reason: (e as Error).message });
      this.refused(username, `the relay served a device list of ${username} that ${username} did not sign`);
      return "refused";
    }
    const previous = this.kept_(username);
    if (previous !== undefined) {
      if (verified.version < previous.version) {
        this.refused(username, `the relay served an older device list of ${username} (v${verified.version} < v${previous.version})`);
        return "refused";
      }
      if (verified.version === previous.version) {
        if (sameList(verified, previous)) return "same";
        // Only the identity key signs: two lists under one version are the primary's fault or an
        // equivocation. The one kept stays.
        this.log.warn("devices.list_equivocation", { user: username, version: verified.version });
        this.refused(username, `the relay served a second, different device list of ${username} under version ${verified.version}`);
        return "refused";
      }
    }
    this.pins.save(verified);
    this.kept.set(username, verified);
    this.log.info("devices.list_taken", { user: username, version: verified.version, devices: verified.devices.length });
    for (const l of [...this.changeListeners]) {
      try {
        l(username, verified, previous);
      } catch (e) {
        this.log.error("devices.listener_failed", { reason: (e as Error).message });
      }
    }
    return "taken";
  }

  private refused(username: string, reason: string): void {
    for (const l of [...this.refusedListeners]) {
      try {
        l(username, reason);
      } catch (e) {
        this.log.error("devices.listener_failed", { reason: (e as Error).message });
      }
    }
  }
}
