// My devices and the linking of new ones (PROTOCOL.md §4.5, §4.6), as ChatClient offers them: the
// verified device directory and my own list's upkeep (protocol v2 only), the refresh of lists the
// relay says changed, /devices, /unlink and /link. Moved out of chat-client.ts as it was; the
// client wires it (chat-client.ts) and passes the calls through.
import { hostname } from "node:os";
import type { Welcome } from "../gen/securechat/v1/chat.js";
import type { Limits } from "../protocol/limits.js";
import type { DeviceEntry, VerifiedDeviceList } from "../protocol/devices.js";
import type { Logger } from "../protocol/log.js";
import { sanitizeLine } from "../protocol/sanitize.js";
import { SealedDeviceListPins, VerifiedDeviceDirectory, type PinnedIdentity } from "./device-directory.js";
import type { DeviceDirectory } from "./devices-api.js";
import { describeClientError } from "./errors.js";
import type { KeyDirectory } from "./key-directory.js";
import { linkFromPrimary, type LinkOutcome } from "./linking.js";
import type { LocalIdentity } from "./local-identity.js";
import { DsTransport } from "./mls/ds-transport.js";
import { sendUntilAnswered } from "./mls/resend.js";
import type { MlsKeyStore } from "./mls-store.js";
import { OwnDevices, PUBLISH_RESEND_MS, type DeviceView } from "./own-devices.js";
import type { RelayConnection } from "./relay-connection.js";
import type { RelayTransport } from "./relay-transport.js";
import type { ClientStateStore } from "./state-store.js";
import type { TrustStore } from "./trust-store.js";
import type { Outcome, SessionEvent } from "./types.js";

export interface ClientDevicesOptions {
  readonly me: string;
  readonly local: LocalIdentity;
  readonly trust: TrustStore;
  readonly state: ClientStateStore;
  readonly connection: RelayConnection;
  /** Key lookups and pins (device lists are verified against the pins). */
  readonly directory: KeyDirectory;
  readonly log: Logger;
  readonly clock: () => number;
  readonly emit: (e: SessionEvent) => void;
  /** The relay's limits, from the last Welcome. */
  readonly limits: () => Limits;
  /** The MLS session's Delivery Service (protocol v2; undefined in v1 or before it is built). */
  readonly ds: () => DsTransport | undefined;
  /** /link CODE (PROTOCOL.md §4.6, linking.ts): what the primary needs to link a device. */
  readonly linking: { readonly server: string; readonly transport: RelayTransport; readonly store: MlsKeyStore | undefined };
  /** Protocol v2: the MLS key store; without it there are no device lists. */
  readonly v2: { readonly store: MlsKeyStore } | undefined;
  /** The primary's device name (ChatClientOptions.deviceName). */
  readonly deviceName?: string;
}

export class ClientDevices {
  private readonly me: string;
  private readonly local: LocalIdentity;
  private readonly trustStore: TrustStore;
  private readonly connection: RelayConnection;
  private readonly log: Logger;
  private readonly clock: () => number;
  private readonly limits: () => Limits;
  private readonly ds: () => DsTransport | undefined;
  private readonly linking: ClientDevicesOptions["linking"];
  /** Protocol v2: every user's verified, pinned device list (PROTOCOL.md §4.5); the MLS engine listens to it. */
  readonly deviceDirectory: DeviceDirectory | undefined;
  readonly ownDevices: OwnDevices | undefined;

  constructor(o: ClientDevicesOptions) {
    this.me = o.me;
    this.local = o.local;
    this.trustStore = o.trust;
    this.connection = o.connection;
    this.log = o.log;
    this.clock = o.clock;
    this.limits = o.limits;
    this.ds = o.ds;
    this.linking = o.linking;
    const { local, log, clock, emit } = o;
    // Device lists (PROTOCOL.md §4.5): verified against the pins, kept sealed in the state db.
    if (o.v2 === undefined) {
      this.deviceDirectory = undefined;
      this.ownDevices = undefined;
    } else {
      const store = o.v2.store;
      const pinOf = (u: string): PinnedIdentity => {
        if (u === this.me) return { state: "pinned", identitySpki: local.user.sigSpki };
        const pin = o.trust.get(u);
        if (pin === undefined) return { state: "unknown" };
        return pin.pending !== undefined ? { state: "undecided" } : { state: "pinned", identitySpki: pin.identity.sigSpki };
      };
      const ds = new DsTransport(this.connection);
      const devices = new VerifiedDeviceDirectory({
        self: { username: this.me, deviceId: local.kind === "linked" ? local.deviceId : "", name: local.kind === "linked" ? local.deviceName : "", primary: local.kind === "primary", mlsSignatureKey: new Uint8Array(0) },
        ds, pinOf, ensurePinned: (names) => o.directory.ensure(names), pins: new SealedDeviceListPins(o.state.database, local.localKey, log), log,
      });
      // A linked device's list from its linking is the floor of its own (§4.6): a relay serving
      // it the list from before its linking is then refused as a rollback, not taken as "unlinked".
      if (local.kind === "linked" && local.linkList !== undefined && (devices.known(this.me)?.version ?? 0) < local.linkList.version) devices.seed(local.linkList);
      const ownPrimary = devices.known(this.me)?.devices.find((d) => d.primary);
      if (local.kind === "primary" && ownPrimary !== undefined) devices.setSelfDeviceId(ownPrimary.deviceId);
      devices.onRefused((_u, reason) => emit({ type: "notice", level: "warn", text: reason }));
      this.deviceDirectory = devices;
      const mlsKey = async (): Promise<Uint8Array> => {
        const key = (await store.loadOrCreateClient()).signaturePublicKey;
        devices.setSelfMlsKey(key);
        return key;
      };
      // ThisDevice's MLS key as soon as the store gives it (both creating it at once keep one).
      mlsKey().catch((e: unknown) => log.warn("devices.mls_key_unavailable", { reason: (e as Error).message }));
      this.ownDevices = new OwnDevices({
        local, directory: devices, ds, mlsSignatureKey: mlsKey, clock, log, emit,
        stopForGood: (sentence) => this.connection.stopForGood(sentence),
        ...(o.deviceName === undefined ? {} : { primaryName: o.deviceName }),
      });
    }
  }

  /** After Welcome: my own list's upkeep, then the lists the relay says changed (device_list_version). */
  devicesWelcomed(w: Welcome): void {
    if (this.ownDevices === undefined) return;
    const own = this.ownDevices;
    void own.upkeep(w).then(() => this.refreshNewerDeviceLists(w.directory));
  }

  /** Refreshes the lists of users whose relay-side version is newer than the one kept here. */
  refreshNewerDeviceLists(entries: readonly { readonly username: string; readonly deviceListVersion: number }[]): void {
    const dir = this.deviceDirectory;
    if (dir === undefined) return;
    // Only me and people already pinned (contacts): others' lists are fetched when the MLS engine
    // meets them, so a Welcome does not pin every user of the relay on first use.
    const stale = entries
      .filter((e) => (e.username === this.me || this.trustStore.get(e.username) !== undefined) && e.deviceListVersion > (dir.known(e.username)?.version ?? 0))
      .map((e) => e.username);
    if (stale.length === 0) return;
    const max = Math.max(1, this.limits().maxRecipients);
    for (let i = 0; i < stale.length; i += max) {
      dir.refresh(stale.slice(i, i + max)).catch((e: unknown) => this.log.warn("devices.refresh_failed", { reason: (e as Error).message }));
    }
  }

  /** My devices (PROTOCOL.md §4.5), refreshed from the relay: name, id, primary, this one, online or last seen, added. */
  async devices(): Promise<Outcome<DeviceView[]>> {
    if (this.ownDevices === undefined) return { ok: false, error: { kind: "device", detail: "devices need protocol v2" } };
    return this.ownDevices.list();
  }

  /**
   * Unlinks one of my devices by name or id prefix (primary only): a new list without it, signed
   * and published; the MLS engine then removes its leaves from every group (DeviceDirectory.onChange).
   */
  async unlink(which: string, o: { readonly check?: boolean } = {}): Promise<Outcome<{ readonly name: string; readonly deviceId: string; readonly version: number }>> {
    if (this.ownDevices === undefined) return { ok: false, error: { kind: "device", detail: "devices need protocol v2" } };
    return this.ownDevices.unlink(which, o);
  }

  /** Adds a linked device to my list (primary only; the end of linking, PROTOCOL.md §4.6 step 3). */
  async addDevice(entry: DeviceEntry): Promise<Outcome<VerifiedDeviceList>> {
    if (this.ownDevices === undefined) return { ok: false, error: { kind: "device", detail: "devices need protocol v2" } };
    return this.ownDevices.addDevice(entry);
  }

  /** My newest verified device list, if any. */
  ownDeviceList(): VerifiedDeviceList | undefined {
    return this.deviceDirectory?.known(this.me);
  }

  /**
   * Links a new device (PROTOCOL.md §4.6) from this primary: `code` as the new device shows it;
   * `confirm` asks the user whether the new device shows the same digits. Never throws.
   */
  async linkDevice(code: string, confirm: (sas: string, deviceName: string) => Promise<boolean>, signal?: AbortSignal): Promise<LinkOutcome> {
    const ds = this.ds();
    const store = this.linking.store;
    if (ds === undefined || store === undefined || ds.fetchDeviceLists === undefined || ds.publishDeviceList === undefined) return { ok: false, reason: "linking devices needs protocol v2" };
    const fetchLists = ds.fetchDeviceLists.bind(ds);
    const local = this.local;
    if (local.kind !== "primary") {
      // Only the identity key signs device lists (PROTOCOL.md §4.5): name the device that has it.
      const known = this.deviceDirectory?.known(this.me);
      const r = known === undefined ? await fetchLists([this.me]).catch(() => undefined) : { ok: true as const, lists: [known] };
      const primary = r?.ok === true ? r.lists.find((l) => l.username === this.me)?.devices.find((d) => d.primary) : undefined;
      return { ok: false, reason: `only your primary device${primary === undefined ? "" : ` (${sanitizeLine(primary.name)})`} can link devices` };
    }
    if (!this.connection.isAuthenticated) return { ok: false, reason: "not connected to the relay: linking works once you are connected" };
    const dir = this.deviceDirectory;
    const own = this.ownDevices === undefined || dir === undefined ? undefined : {
      currentList: async () => {
        await dir.refresh([this.me]);
        return dir.known(this.me);
      },
      addDevice: async (entry: DeviceEntry) => {
        const r = await this.addDevice(entry);
        return r.ok ? { ok: true as const, list: r.value } : { ok: false as const, detail: describeClientError(r.error) };
      },
    };
    const publishList = ds.publishDeviceList.bind(ds);
    return linkFromPrimary({
      relay: { address: this.linking.server, transport: this.linking.transport },
      identity: local.identity,
      fetchLists: async (names) => {
        const r = await fetchLists(names);
        return r.ok ? { ok: true, lists: r.lists } : { ok: false, detail: r.detail };
      },
      publish: async (list) => {
        // As OwnDevices.publish: a lost answer is not a refusal (PROTOCOL.md §4.5).
        const r = await sendUntilAnswered(() => publishList(list), { stopped: () => false, giveUpAfterMs: PUBLISH_RESEND_MS });
        return r.ok ? { ok: true } : { ok: false, detail: r.detail };
      },
      mlsSignatureKey: async () => (await store.loadOrCreateClient()).signaturePublicKey,
      deviceName: hostname().split(".")[0] ?? "primary",
      // My pins of contacts go to the new device (PROTOCOL.md §4.6): it starts with the same keys.
      // A contact with a key change I have not decided on goes with the key I pinned, not the
      // pending one: the new device then sees the relay's new key as a change and warns, as here
      // (leaving the pin out made it take the new key silently as a first contact).
      pins: () => [...this.trustStore.all()].map(([username, p]) => ({
        username, sigSpki: p.identity.sigSpki, encSpki: p.identity.encSpki, encKeySig: p.identity.encKeySig, verified: p.verified, pinnedAtMs: p.pinnedAtMs,
      })),
      clock: this.clock,
      ...(own === undefined ? {} : { own }),
    }, code, confirm, signal);
  }
}
