// One leaf per DEVICE in the protocol v2 engine (PROTOCOL.md §4.5, §7): a user's leaves are the
// devices of their newest verified device list (DeviceDirectory, devices-api.ts).
// - Claims: ClaimKeyPackages gives one KeyPackage per device; each is used only when its leaf
//   signature key is that device's MLS signature key in the user's newest verified list
//   (claimDevices), so a relay cannot slip in a key the user did not link.
// - Self-heal (healPlan, DeviceHealer): in every group I am in, a device of my newest list with
//   no leaf is added (one KeyPackage claimed for it) and a leaf of mine whose key is not in that
//   list is removed (what /unlink does to every group). Only my device with the lowest leaf index
//   among my listed leaves in that group commits: every device of mine computes the same from the
//   same tree and list; after EPOCH_TAKEN it re-checks on the winner's tree (commit.ts). The
//   lobby is only cleaned (removals): each device enters it itself, by external commit.
// - Lines: a commit that adds or removes a leaf of a user who keeps another leaf shows "alice
//   added a device: desktop" / "alice removed a device: desktop" (policy.ts linesOf).
// Without a DeviceDirectory (tests, a relay before devices) every user is one device: nothing here runs.
import { decodeKeyPackage, verifyCredential, type MlsGroup, type MlsMember } from "../../protocol/mls/index.js";
import { deviceBySignatureKey, type DeviceEntry, type DeviceListBody } from "../../protocol/devices.js";
import type { MembershipLine } from "../types.js";
import type { Committer } from "./commit.js";
import { DeviceListsUnanswered } from "../devices-api.js";
import { fail, ok, refusedError, TRANSIENT, type EngineState } from "./engine-state.js";
import type { Outcome } from "../types.js";

export interface ClaimedDevice {
  readonly username: string;
  readonly deviceId: string;
  readonly keyPackage: Uint8Array;
}

const keyEq = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a).equals(Buffer.from(b));

/** Whether a leaf's MLS signature key is one of the list's devices. */
export function listed(list: DeviceListBody, signatureKey: Uint8Array): boolean {
  return deviceBySignatureKey(list, signatureKey) !== undefined;
}

/** The leaf signature key of a KeyPackage (throws on bytes that are not one). */
export function keyPackageLeafKey(keyPackage: Uint8Array): Uint8Array {
  return decodeKeyPackage(keyPackage).leafNode.signaturePublicKey;
}

/** The identity key (SPKI) a KeyPackage's credential names (verified against its leaf key). */
function identityOf(keyPackage: Uint8Array): Buffer {
  const leaf = decodeKeyPackage(keyPackage).leafNode;
  return verifyCredential(leaf.credential, leaf.signaturePublicKey).identitySpki;
}

/** A device's name for a line: from the list, else the start of its key. */
export function deviceName(list: DeviceListBody | undefined, signatureKey: Uint8Array, seen?: ReadonlyMap<string, string>): string {
  const d = list === undefined ? undefined : deviceBySignatureKey(list, signatureKey);
  const hex = Buffer.from(signatureKey).toString("hex");
  return d?.name ?? seen?.get(hex) ?? `device ${hex.slice(0, 8)}`;
}

/**
 * What the self-heal of one group does, for the device at `myLeaf` of user `me` (PROTOCOL.md §7
 * "Self-heal"): `add`, listed devices of mine with no leaf; `remove`, leaves of mine whose key the
 * list does not name; `committer`, whether I am the one to commit it (my device with the lowest
 * leaf index among my leaves the list names). A device the list does not name (unlinked) never commits.
 */
export function healPlan(members: readonly Pick<MlsMember, "username" | "leafIndex" | "signatureKey">[], myLeaf: number, me: string, list: DeviceListBody):
  { readonly committer: boolean; readonly add: readonly DeviceEntry[]; readonly remove: readonly number[] } {
  const mine = members.filter((m) => m.username === me);
  const self = mine.find((m) => m.leafIndex === myLeaf);
  if (self === undefined || !listed(list, self.signatureKey)) return { committer: false, add: [], remove: [] };
  const lowest = Math.min(...mine.filter((m) => listed(list, m.signatureKey)).map((m) => m.leafIndex));
  const remove = mine.filter((m) => !listed(list, m.signatureKey)).map((m) => m.leafIndex);
  // Removals (after an /unlink, made on the primary) are committed by the primary's leaf when it
  // has one: its commit takes my other devices out whatever list a peer holds (§7.6 (f)), where a
  // linked device's would be refused by a peer the relay still serves the old list.
  const primary = mine.find((m) => list.devices.some((d) => d.primary && keyEq(d.mlsSignatureKey, m.signatureKey)))?.leafIndex;
  return {
    committer: remove.length > 0 && primary !== undefined ? primary === myLeaf : lowest === myLeaf,
    add: list.devices.filter((d) => !mine.some((m) => keyEq(m.signatureKey, d.mlsSignatureKey))),
    remove,
  };
}

/**
 * Claims one KeyPackage per device of these users and keeps only those whose leaf key is that
 * device's MLS signature key in the user's newest verified list (refreshed first when the user's
 * list is not known or does not name the device). A package refused is said in one sentence.
 * `missing`: users with no usable package. Without a directory, the relay's entries as they are.
 */
export async function claimDevices(s: EngineState, usernames: readonly string[], only?: (e: ClaimedDevice) => boolean, deviceIds?: readonly string[]): Promise<Outcome<{ entries: ClaimedDevice[]; missing: string[] }>> {
  const claimed = await s.d.ds.claimKeyPackages(usernames, deviceIds);
  if (!claimed.ok) return fail(refusedError(claimed));
  const raw = claimed.entries.filter((e) => only === undefined || only(e));
  const dir = s.d.devices;
  if (dir === undefined) return ok({ entries: raw.map((e) => ({ username: e.username, deviceId: e.deviceId, keyPackage: e.keyPackage })), missing: usernames.filter((u) => !raw.some((e) => e.username === u)) });
  const stale = [...new Set(raw.filter((e) => !dir.known(e.username)?.devices.some((d) => d.deviceId === e.deviceId)).map((e) => e.username))];
  if (stale.length > 0) {
    try {
      // Must answer: lists not fetched for a moment offline would make a user of several devices
      // look like one with "no list" (their packages then all refused, with a warning).
      await dir.refresh(stale, { mustAnswer: true });
    } catch (e) {
      // Offline: the caller waits for the connection and tries again, as for a claim that failed.
      if (e instanceof DeviceListsUnanswered && TRANSIENT.has(e.code)) return fail(refusedError({ ok: false, code: e.code, detail: e.message }));
      s.d.logger.warn("mls.devices.refresh_failed", { users: stale.length, reason: (e as Error).message });
    }
  }
  const entries: ClaimedDevice[] = [];
  // A user with no device list is ONE device (PROTOCOL.md §4.5): several packages for them are a
  // relay hiding their list (to slip in a device they unlinked); none of them is used.
  const noList = new Map<string, number>();
  for (const e of raw) if (dir.known(e.username) === undefined) noList.set(e.username, (noList.get(e.username) ?? 0) + 1);
  for (const [u, n] of noList) {
    if (n < 2) continue;
    s.d.logger.warn("mls.devices.key_packages_without_list", { user: u, packages: n });
    s.notice("warn", `the relay gave ${n} KeyPackages for ${u} but no device list of ${u} (one device): none was used`);
  }
  for (const e of raw) {
    const list = dir.known(e.username);
    if (list === undefined && (noList.get(e.username) ?? 0) > 1) continue;
    let key: Uint8Array;
    let identity: Buffer;
    try {
      key = keyPackageLeafKey(e.keyPackage);
      identity = identityOf(e.keyPackage);
    } catch {
      s.d.logger.warn("mls.devices.bad_key_package", { user: e.username, device: e.deviceId });
      continue;
    }
    if (list === undefined || !identity.equals(list.identitySpki)) {
      // A user who never had a device list (a relay or client from before devices): one device.
      // A package under ANOTHER identity key than the list's: the pins decide (the trust hook
      // refuses it and shows a key change, PROTOCOL.md §6), not the device list of the old key.
      entries.push({ username: e.username, deviceId: e.deviceId, keyPackage: e.keyPackage });
      continue;
    }
    const device = list.devices.find((d) => d.deviceId === e.deviceId);
    if (device === undefined || !keyEq(device.mlsSignatureKey, key)) {
      s.d.logger.warn("mls.devices.key_package_refused", { user: e.username, device: e.deviceId });
      s.notice("warn", `the relay gave a KeyPackage for a device of ${e.username} (${device?.name ?? (e.deviceId || "unnamed")}) whose key is not in ${e.username}'s device list; it was not used`);
      continue;
    }
    entries.push({ username: e.username, deviceId: e.deviceId, keyPackage: e.keyPackage });
  }
  return ok({ entries, missing: usernames.filter((u) => !entries.some((e) => e.username === u)) });
}

/**
 * A listed device of mine with no KeyPackage on the relay yet (just linked: my list is published
 * before the new device first connects and publishes its packages) is tried again after
 * HEAL_RETRY_FIRST_MS, doubling up to HEAL_RETRY_MAX_MS, at most HEAL_RETRY_TIMES times (about
 * 3 minutes in all); after that, my next connect or list change heals it.
 */
export const HEAL_RETRY_FIRST_MS = 1_000;
export const HEAL_RETRY_MAX_MS = 30_000;
export const HEAL_RETRY_TIMES = 10;

/** The self-heal of my own devices' leaves (see the file's header). */
export class DeviceHealer {
  /** Per conversation: the retries so far of a heal that lacked a KeyPackage, and the pending timer. */
  private readonly retries = new Map<string, { times: number; timer: ReturnType<typeof setTimeout> | undefined }>();

  constructor(private readonly s: EngineState, private readonly c: Committer) {}

  /** Heals every group I am in (at connect, after my list changed): a fresh round of retries. */
  async healAll(): Promise<void> {
    for (const r of this.retries.values()) if (r.timer === undefined) r.times = 0;
    for (const conv of [...this.s.groups.keys()]) await this.heal(conv);
  }

  /** The heal of `conv` lacked a KeyPackage of a device of mine: once more, later (see HEAL_RETRY_*). */
  private retryLater(conv: string): void {
    let r = this.retries.get(conv);
    if (r === undefined) this.retries.set(conv, (r = { times: 0, timer: undefined }));
    if (r.timer !== undefined || r.times >= HEAL_RETRY_TIMES || this.s.closed) return;
    const wait = Math.min(HEAL_RETRY_FIRST_MS * 2 ** r.times, HEAL_RETRY_MAX_MS);
    r.times += 1;
    const entry = r;
    entry.timer = setTimeout(() => {
      entry.timer = undefined;
      if (!this.s.closed) this.s.healSoon(conv);
    }, wait).unref();
  }

  /** One group: adds my listed devices without a leaf, removes my leaves the list no longer names, when I am the committer. */
  async heal(conv: string): Promise<void> {
    const dir = this.s.d.devices;
    const g = this.s.groups.get(conv);
    if (dir === undefined || g === undefined || !g.active) return;
    const me = this.s.d.me;
    const plan = (x: MlsGroup): ReturnType<typeof healPlan> => {
      const list = dir.known(me);
      if (list === undefined) return { committer: false, add: [], remove: [] };
      const p = healPlan(x.members(), x.myLeafIndex, me, list);
      // The lobby: each device enters it itself (lobby messages reach online devices only).
      return conv === "lobby" ? { ...p, add: [] } : p;
    };
    const first = plan(g);
    if (!first.committer || first.add.length + first.remove.length === 0) return;
    let packages: ClaimedDevice[] = [];
    if (first.add.length > 0) {
      const want = new Set(first.add.map((d) => d.deviceId));
      // Only the devices this heal adds: a claim of every device of mine would use up (or fall back
      // to the last-resort package of) my other devices for nothing.
      const claimed = await claimDevices(this.s, [me], (e) => e.username === me && want.has(e.deviceId), [...want]);
      if (!claimed.ok) this.s.d.logger.warn("mls.devices.claim_failed", { conversation: conv, error: JSON.stringify(claimed.error) });
      else packages = claimed.value.entries;
      if (packages.length < first.add.length) {
        this.s.d.logger.info("mls.devices.no_key_package", { conversation: conv, devices: first.add.length - packages.length });
        this.retryLater(conv);
      } else {
        this.retries.delete(conv);
      }
    }
    const todo = (x: MlsGroup): { remove: number[]; add: ClaimedDevice[] } => {
      const p = plan(x);
      if (!p.committer) return { remove: [], add: [] };
      const ids = new Set(p.add.map((d) => d.deviceId));
      return { remove: [...p.remove], add: packages.filter((k) => ids.has(k.deviceId)) };
    };
    const now = todo(g);
    if (now.remove.length + now.add.length === 0) return;
    const list = dir.known(me);
    const linesFor = (x: MlsGroup, t: ReturnType<typeof todo>): MembershipLine[] => {
      const at = this.s.d.clock();
      const names = (ks: Uint8Array[]): string[] => ks.map((k) => deviceName(list, k, this.s.deviceNames));
      const removedKeys = x.members().filter((m) => t.remove.includes(m.leafIndex)).map((m) => m.signatureKey);
      const addedKeys = t.add.map((k) => keyPackageLeafKey(k.keyPackage));
      return [
        ...names(addedKeys).map((device): MembershipLine => ({ kind: "device-added", by: me, users: [me], device, ...this.s.creatorField(conv), atMs: at })),
        ...names(removedKeys).map((device): MembershipLine => ({ kind: "device-removed", by: me, users: [me], device, ...this.s.creatorField(conv), atMs: at })),
      ];
    };
    let shown: MembershipLine[] = linesFor(g, now);
    // Its claim says it takes out devices my list no longer names (peers remember them,
    // dropped-devices.ts); a /leave's removals are not that.
    this.s.healing = true;
    let r: Awaited<ReturnType<Committer["commitChange"]>>;
    try {
      r = await this.c.commitChange(conv, (x) => {
        const t = todo(x);
        shown = linesFor(x, t);
        return x.changeOwnDevices(t.remove, t.add.map((k) => k.keyPackage), { nowS: Math.floor(this.s.d.clock() / 1000) });
      }, { added: now.add.length > 0 ? [me] : [], removed: [] }, () => shown, (x) => { const t = todo(x); return t.remove.length + t.add.length > 0; });
    } finally {
      this.s.healing = false;
    }
    if (!r.ok) this.s.d.logger.warn("mls.devices.heal_failed", { conversation: conv, error: JSON.stringify(r.error) });
    else this.s.d.logger.info("mls.devices.healed", { conversation: conv, added: now.add.length, removed: now.remove.length });
  }
}
