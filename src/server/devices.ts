// Several devices per user at the relay (PROTOCOL.md §4.5): each user's kept device list, the
// queue address of each device, and PublishDeviceList / FetchDeviceLists.
//
// Queue address: the bare username for the primary (so a database from before devices keeps
// working: its queues and KeyPackages are the primary's) and `username/device_id` for a linked
// device ('/' is not allowed in usernames, so no address of one user is a name of another).
//
// The fan-out asks for every member's addresses on every message: DeviceRoutes keeps them in
// memory per user (read from the database once, replaced at each publish), so a delivery costs no
// database read for devices.
import type * as wire from "../gen/securechat/v1/chat.js";
import { DeviceList, ErrorCode, type FetchDeviceLists, type PublishDeviceList } from "../gen/securechat/v1/chat.js";
import {
  fromWireDeviceList, primaryOf, toWireDeviceList, verifyDeviceList, type DeviceEntry, type VerifiedDeviceList,
} from "../protocol/devices.js";
import { isProtocolError } from "../protocol/errors.js";
import { decodeKeyPackage } from "../protocol/mls/client.js";
import type { Logger } from "../protocol/log.js";
import { isValidUsername } from "../protocol/names.js";
import type { Directory, DirectoryUser } from "./directory.js";
import { Refusal, sessionEnd } from "./errors.js";
import type { ResponseFrame } from "./frames.js";
import type { RelayLimits } from "./limits.js";
import type { Router } from "./router.js";
import type { KeptDeviceList, RelayStore, UserRecord } from "./store.js";
import { UnboundNames } from "./unbound-names.js";

/** The queue address of a device (PROTOCOL.md §4.5). */
export function queueAddress(username: string, device: Pick<DeviceEntry, "deviceId" | "primary"> | undefined): string {
  return device === undefined || device.primary ? username : `${username}/${device.deviceId}`;
}

/** The username a queue address belongs to. */
export function usernameOfAddress(address: string): string {
  const i = address.indexOf("/");
  return i < 0 ? address : address.slice(0, i);
}

/** What the relay routes by for one user. */
export interface UserDevices {
  /** 0: no list kept (one device, the primary, at the bare username). */
  readonly version: number;
  readonly list: VerifiedDeviceList | undefined;
  /** Every device's queue address, the primary's (the bare username) first. */
  readonly addresses: readonly string[];
  /** The primary's device id ("" without a list). */
  readonly primaryId: string;
}

/**
 * The cache's bounds (PROTOCOL.md §8.2, §13.3): users and (estimated) bytes. Only bound users are
 * cached (a name nobody owns, or one that is not a valid username, is answered without an entry),
 * so what fills it is at most the bound users; past either bound the oldest entries go first.
 */
export const MAX_CACHED_USERS = 100_000;
export const MAX_CACHED_BYTES = 64 * 1024 * 1024;
/**
 * Valid names found unbound are remembered (unbound-names.ts: at most this many, for a short
 * time), so that a group's fan-out naming them (a commit's hint may name anyone, §8.2) costs no
 * database read per message; a binding forgets the name (forget()).
 */
export { MAX_UNBOUND_NAMES } from "./unbound-names.js";

/** What a cached entry holds, roughly, in bytes (strings as UTF-16, buffers, object overheads). */
function estimatedBytes(username: string, u: UserDevices): number {
  let n = 160 + 2 * username.length;
  for (const a of u.addresses) n += 48 + 2 * a.length;
  for (const d of u.list?.devices ?? []) n += 320 + 2 * (d.deviceId.length + d.name.length) + d.authSpki.length + d.mlsSignatureKey.length;
  return n + (u.list?.signature.length ?? 0) + (u.list?.identitySpki.length ?? 0);
}

/** A name nobody owns (or no username at all): no device, no queue address (§8.3: nothing is queued for it). */
const NOBODY: UserDevices = Object.freeze({ version: 0, list: undefined, addresses: Object.freeze([]) as readonly string[], primaryId: "" });

/**
 * Users' device lists, verified, with their queue addresses: in memory, read once per bound user.
 * A request naming many users reads the ones not known yet together (prefetch: one store call,
 * one statement on PostgreSQL), never one by one.
 */
export class DeviceRoutes {
  private readonly users = new Map<string, { readonly devices: UserDevices; readonly bytes: number }>();
  private bytes = 0;

  constructor(
    private readonly store: RelayStore,
    private readonly bounds: { readonly maxUsers: number; readonly maxBytes: number } = { maxUsers: MAX_CACHED_USERS, maxBytes: MAX_CACHED_BYTES },
    /** Names found unbound lately (shared with the Directory: relay.ts). */
    private readonly unbound: UnboundNames = new UnboundNames(),
  ) {}

  /** Users cached now, and their estimated bytes (tests, operators). */
  get cached(): { readonly users: number; readonly bytes: number; readonly unbound: number } {
    return { users: this.users.size, bytes: this.bytes, unbound: this.unbound.size };
  }

  /**
   * The user's devices. A name that is not a valid username (§4.1) is never looked up, and one
   * that is not bound is never cached (only remembered as unbound, bounded): names a request
   * makes up (claims, fetches, a commit's hint) cannot fill the relay's memory. Either has no
   * device and no queue address.
   */
  of(username: string): UserDevices {
    const cached = this.users.get(username);
    if (cached !== undefined) return cached.devices;
    this.prefetch([username]);
    return this.users.get(username)?.devices ?? NOBODY;
  }

  /**
   * Reads the users among these names that are not known yet (neither cached nor remembered as
   * unbound, and valid usernames) in ONE store call (RelayStore.findUsers), so that of() then
   * answers each from memory: what a request naming many users costs the store.
   */
  prefetch(usernames: Iterable<string>): void {
    let misses: Set<string> | undefined;
    for (const n of usernames) {
      if (this.users.has(n) || this.unbound.has(n) || !isValidUsername(n)) continue;
      (misses ??= new Set()).add(n);
    }
    if (misses === undefined) return;
    const asked = [...misses];
    for (const f of this.store.findUsers(asked)) {
      misses.delete(f.record.username);
      this.keep(f.record.username, this.load(f.record, f.deviceList));
    }
    for (const n of misses) this.unbound.add(n);
  }

  /** Whether the name is bound, as far as this relay knows (cached, or read now). */
  isBound(username: string): boolean {
    return this.of(username) !== NOBODY;
  }

  private keep(username: string, u: UserDevices): void {
    this.drop(username);
    const bytes = estimatedBytes(username, u);
    this.users.set(username, { devices: u, bytes });
    this.bytes += bytes;
    // Oldest first (the Map's insertion order); the entry just kept stays.
    for (const [name] of this.users) {
      if (this.users.size <= this.bounds.maxUsers && this.bytes <= this.bounds.maxBytes) break;
      if (name === username) break;
      this.drop(name);
    }
  }

  private drop(username: string): void {
    const e = this.users.get(username);
    if (e === undefined) return;
    this.users.delete(username);
    this.bytes -= e.bytes;
  }

  /** Every queue address of the user (one, the bare username, without a list; none for a name nobody owns). */
  addresses(username: string): readonly string[] {
    return this.of(username).addresses;
  }

  version(username: string): number {
    return this.of(username).version;
  }

  /** The device id of the device at this address ("" for a primary without a list, or an unknown address). */
  deviceIdOf(address: string): string {
    const username = usernameOfAddress(address);
    if (address === username) return this.of(username).primaryId;
    return address.slice(username.length + 1);
  }

  /** The listed device at this address, if any. */
  deviceAt(address: string): DeviceEntry | undefined {
    const username = usernameOfAddress(address);
    const list = this.of(username).list;
    if (list === undefined) return undefined;
    return address === username ? primaryOf(list) : list.devices.find((d) => !d.primary && d.deviceId === address.slice(username.length + 1));
  }

  /** The linked (non-primary) device that proves with this key, if listed. */
  linkedByAuth(username: string, authSpki: Uint8Array): DeviceEntry | undefined {
    const k = Buffer.from(authSpki);
    return this.of(username).list?.devices.find((d) => !d.primary && d.authSpki.equals(k));
  }

  /** A newer list was kept. */
  set(username: string, list: VerifiedDeviceList): void {
    this.unbound.forget(username);
    this.keep(username, devicesOf(username, list));
  }

  /** A name was bound anew (after a release), or another relay kept a newer list: read again at next use. */
  forget(username: string): void {
    this.drop(username);
    this.unbound.forget(username);
  }

  /** Another relay may have kept lists this relay did not hear of (its cluster events were lost): all are read again at next use. */
  forgetAll(): void {
    this.users.clear();
    this.unbound.clear();
    this.bytes = 0;
  }

  private load(bound: UserRecord, kept: KeptDeviceList | undefined): UserDevices {
    const username = bound.username;
    if (kept === undefined) return devicesOf(username, undefined);
    try {
      // The kept bytes were verified at publish; verified again here (once per user and
      // process), so a database edited by hand cannot route by a list the user did not sign.
      return devicesOf(username, verifyDeviceList(fromWireDeviceList(DeviceList.decode(kept.list)), username, bound.sigSpki));
    } catch {
      return devicesOf(username, undefined);
    }
  }
}

function devicesOf(username: string, list: VerifiedDeviceList | undefined): UserDevices {
  if (list === undefined) return { version: 0, list: undefined, addresses: [username], primaryId: "" };
  const primary = primaryOf(list);
  return {
    version: list.version, list, primaryId: primary.deviceId,
    addresses: [username, ...list.devices.filter((d) => !d.primary).map((d) => queueAddress(username, d))],
  };
}

export interface DeviceServiceDeps {
  readonly store: RelayStore;
  readonly directory: Directory;
  readonly router: Router;
  readonly devices: DeviceRoutes;
  readonly limits: RelayLimits;
  readonly logger: Logger;
  readonly clock: () => number;
}

const badList = (detail: string): Refusal => new Refusal(ErrorCode.ERROR_CODE_BAD_DEVICE_LIST, detail);

/** A published list that breaks the rules of §4.5 (`reason`: checkDeviceListBody's, e.g. TOO_MANY_DEVICES; also the frame scan's, frame-scan.ts). */
export const malformedList = (reason: string): Refusal => badList(`malformed list: ${reason}`);

/** FetchDeviceLists naming more than max_recipients users (the frame scan, frame-scan.ts, refuses the same count undecoded). */
export const tooManyFetchNames = (max: number, n: number): Refusal =>
  new Refusal(ErrorCode.ERROR_CODE_BAD_FRAME, `a device list fetch may name at most ${max} users, not ${n}`);

/**
 * PROTOCOL.md §8.2 "Releasing a name": a session keeps the binding it proved at its handshake;
 * the operator may have released the name since (another process, or another relay of a
 * cluster), or it may be bound to another key now. Before a session stores anything bound to the
 * name (a device list, KeyPackages), the binding is read again: a session whose key no longer
 * owns the name ends (one read per such request: they are rare).
 */
export function checkStillBound(store: Pick<RelayStore, "getUser">, user: DirectoryUser): void {
  const me = user.record.username;
  const bound = store.getUser(me);
  if (bound === undefined || !bound.sigSpki.equals(user.record.sigSpki)) throw sessionEnd.released(me);
}

/**
 * PublishDeviceList (PROTOCOL.md §4.5): from any session of the user. The list must name the
 * session's user, verify against the BOUND identity key (verifyDeviceList: body rules, primary =
 * identity key, signature) and be newer than the kept one; else BAD_DEVICE_LIST, one sentence.
 * Kept with, in the same transaction, the drops of the devices it no longer lists (queues,
 * KeyPackages, last seen); then those devices' sessions end (DEVICE_UNKNOWN) and everyone online
 * gets a DirectoryUpdate with the new version.
 */
export function publishDeviceList(d: DeviceServiceDeps, user: DirectoryUser, req: PublishDeviceList): ResponseFrame {
  const me = user.record.username;
  checkStillBound(d.store, user);
  if (req.list === undefined) throw badList("PublishDeviceList carries no list");
  if (req.list.username !== me) throw badList(`the list is for '${req.list.username.slice(0, 64)}', not for you (${me}); a session publishes only its own user's list`);
  let list: VerifiedDeviceList;
  try {
    list = verifyDeviceList(fromWireDeviceList(req.list), me, user.record.sigSpki);
  } catch (e) {
    if (isProtocolError(e, "bad-signature")) throw badList(`bad signature: the list is not signed by ${me}'s identity key`);
    if (isProtocolError(e)) throw malformedList(e.message.replace(/^device list: /, ""));
    throw e;
  }
  const before = d.devices.of(me);
  const bytes = DeviceList.encode(toWireDeviceList(list)).finish();
  // A resend of the kept list, byte for byte (its answer was lost, §4.5): answered as the first
  // time; nothing is stored or dropped again.
  if (isKept(before, list, bytes)) return publishedAgain(d, user, req, list);
  if (list.version <= before.version) throw notNewer(me, before.version, list.version);
  // A device is kept when the new list has it with the same id and keys; else it is dropped
  // (unlinked, or its keys changed: what was queued for it cannot be read by new keys anyway).
  const same = (a: DeviceEntry, b: DeviceEntry): boolean => a.deviceId === b.deviceId && a.primary === b.primary && a.authSpki.equals(b.authSpki) && a.mlsSignatureKey.equals(b.mlsSignatureKey);
  const dropped = (before.list?.devices ?? []).filter((o) => !o.primary && !list.devices.some((n) => same(o, n)));
  const keyPackagesOf: string[] = [];
  const oldPrimary = before.list === undefined ? undefined : primaryOf(before.list);
  // The primary's address is stable; its KeyPackages go only when its MLS key changed.
  if (oldPrimary !== undefined && !oldPrimary.mlsSignatureKey.equals(primaryOf(list).mlsSignatureKey)) keyPackagesOf.push(me);
  const kept = d.store.replaceDeviceList({
    username: me, version: list.version, list: bytes, keyPackagesOf,
    dropped: dropped.map((o) => ({ address: queueAddress(me, o), deviceId: o.deviceId })),
  });
  if (!kept) {
    // Another relay of the cluster kept a list that this one has not heard of yet (its bus event
    // is on the way): the resend of a list kept through that relay, whose answer was lost when
    // the connection dropped, comes here. Read the kept one now and judge against it (§4.5).
    d.devices.forget(me);
    const now = d.devices.of(me);
    if (isKept(now, list, bytes)) return publishedAgain(d, user, req, list);
    throw notNewer(me, now.version, list.version);
  }
  d.devices.set(me, list);
  user.deviceListVersion = list.version;
  // The first list: KeyPackages the primary published before it are kept only when they are
  // for the MLS key the list gives the primary (a claim must never hand out another key's).
  if (oldPrimary === undefined) dropForeignKeyPackages(d, me, primaryOf(list).mlsSignatureKey);
  for (const o of dropped) d.router.sessionAt(queueAddress(me, o))?.unlinked();
  d.router.announceUser(user);
  d.logger.info("devices.published", { user: me, version: list.version, devices: list.devices.length, dropped: dropped.length });
  return { $case: "deviceListResult", value: { requestId: req.requestId, lists: [toWireDeviceList(list)], seen: seenOf(d, me, list) } };
}

const notNewer = (me: string, kept: number, version: number): Refusal =>
  badList(`not newer: the relay keeps version ${kept} of ${me}'s list, and this one is version ${version} (v${version} <= v${kept})`);

/** `list` (encoded as `bytes`) is the kept list, byte for byte. */
function isKept(kept: UserDevices, list: VerifiedDeviceList, bytes: Uint8Array): boolean {
  return list.version === kept.version && kept.list !== undefined && Buffer.from(DeviceList.encode(toWireDeviceList(kept.list)).finish()).equals(Buffer.from(bytes));
}

/** The answer to a resend of the kept list: as the first time; nothing is stored or dropped again. */
function publishedAgain(d: DeviceServiceDeps, user: DirectoryUser, req: PublishDeviceList, list: VerifiedDeviceList): ResponseFrame {
  const me = user.record.username;
  user.deviceListVersion = list.version;
  d.logger.info("devices.publish_duplicate", { user: me, version: list.version });
  return { $case: "deviceListResult", value: { requestId: req.requestId, lists: [toWireDeviceList(list)], seen: seenOf(d, me, list) } };
}

function dropForeignKeyPackages(d: DeviceServiceDeps, address: string, mlsKey: Buffer): void {
  const stale = d.store.mls.keyPackagesOfAddress(address).filter((kp) => {
    try {
      return !Buffer.from(decodeKeyPackage(kp.keyPackage).leafNode.signaturePublicKey).equals(mlsKey);
    } catch {
      return true;
    }
  }).map((kp) => kp.id);
  d.store.mls.dropKeyPackagesById(stale);
  if (stale.length > 0) d.logger.info("devices.key_packages_dropped", { user: address, count: stale.length });
}

/** FetchDeviceLists: the kept lists of the names asked (unknown names and users without a list left out), with DeviceSeen. */
export function fetchDeviceLists(d: DeviceServiceDeps, req: FetchDeviceLists): ResponseFrame {
  const names = [...new Set(req.usernames)];
  if (names.length > d.limits.maxRecipients) throw tooManyFetchNames(d.limits.maxRecipients, names.length);
  // A name that cannot be bound (§4.1) is left out like an unknown one, without a lookup; the
  // others not in memory are read together (one store call each for bindings, lists, last seen).
  const bound = d.directory.getMany(names.filter((n) => isValidUsername(n)));
  d.devices.prefetch(bound.keys());
  const kept: Array<{ readonly username: string; readonly list: VerifiedDeviceList }> = [];
  for (const n of names) {
    if (!bound.has(n)) continue;
    const list = d.devices.of(n).list;
    if (list !== undefined) kept.push({ username: n, list });
  }
  const lastSeen = kept.length === 0 ? new Map<string, Map<string, number>>() : d.store.devices.lastSeenOf(kept.map((k) => k.username));
  const lists: wire.DeviceList[] = [];
  const seen: wire.DeviceSeen[] = [];
  for (const k of kept) {
    lists.push(toWireDeviceList(k.list));
    seen.push(...seenOf(d, k.username, k.list, lastSeen.get(k.username)));
  }
  return { $case: "deviceListResult", value: { requestId: req.requestId, lists, seen } };
}

function seenOf(d: DeviceServiceDeps, username: string, list: VerifiedDeviceList, known?: ReadonlyMap<string, number>): wire.DeviceSeen[] {
  const last = known ?? d.store.devices.lastSeen(username);
  return list.devices.map((dev) => {
    const online = d.router.isAddressOnline(queueAddress(username, dev));
    return { username, deviceId: dev.deviceId, online, lastSeenMs: online ? d.clock() : last.get(dev.deviceId) ?? 0 };
  });
}
