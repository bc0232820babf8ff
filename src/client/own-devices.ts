// My own devices (PROTOCOL.md §4.5): the upkeep of my device list at each connect, /devices and
// /unlink. The group work an unlink causes (removing the device's leaves from every group) is
// the MLS engine's, which hears of my new list through DeviceDirectory.onChange.
//
// At each connect (after Welcome):
// - the primary makes sure the relay keeps a list naming it with its current MLS signature key:
//   none yet -> it publishes version 1 with itself (named after the host); a kept list whose
//   primary entry carries another MLS key -> version + 1 with the key replaced; a relay keeping
//   an OLDER version than the one verified here (restored from a backup) -> the kept list again;
// - a linked device checks that the newest verified list still names it (id and device key); if
//   not, it was unlinked: it stops for good with one sentence and never reconnects.
// Welcome.device_id is the relay's view of which device this session is: compared with mine.
import { hostname } from "node:os";
import type { Welcome } from "../gen/securechat/v1/chat.js";
import { checkDeviceListBody, checkDeviceName, MAX_DEVICES, newDeviceId, signDeviceList, type DeviceEntry, type SignedDeviceList, type VerifiedDeviceList } from "../protocol/devices.js";
import type { Logger } from "../protocol/log.js";
import { sanitizeLine } from "../protocol/sanitize.js";
import type { VerifiedDeviceDirectory } from "./device-directory.js";
import type { LocalIdentity } from "./local-identity.js";
import type { DsApi } from "./mls/ds-api.js";
import { TRANSIENT } from "./mls/engine-state.js";
import { sendUntilAnswered } from "./mls/resend.js";
import type { DeviceView, Outcome, SessionEvent } from "./types.js";

/** How long a new device list is sent again while its answer is lost (PROTOCOL.md §4.5). */
export const PUBLISH_RESEND_MS = 30_000;

export type { DeviceView } from "./types.js";

export interface OwnDevicesOptions {
  readonly local: LocalIdentity;
  readonly directory: VerifiedDeviceDirectory;
  readonly ds: Pick<DsApi, "publishDeviceList">;
  /** This device's MLS signature public key (its leaves' key in every group). */
  readonly mlsSignatureKey: () => Promise<Uint8Array>;
  readonly clock: () => number;
  readonly log: Logger;
  readonly emit: (e: SessionEvent) => void;
  /** Ends the connection for good with this sentence (never reconnects). */
  readonly stopForGood: (sentence: string) => void;
  /** The host name the primary's first list names it after (default os.hostname()). */
  readonly hostName?: () => string;
  /**
   * The primary's chosen name (chat-tui --device-name): its first list names it so, and a kept
   * list naming it otherwise is replaced by version + 1 with this name. Checked by checkDeviceName.
   */
  readonly primaryName?: string;
}

/** The host's name made a valid device name (PROTOCOL.md §4.5 checkDeviceName), else "primary". */
export function defaultDeviceName(host: string): string {
  // Used only when valid as it is (no control characters): a name made printable is not the host's.
  const cleaned = [...(host.split(".")[0] ?? "").trim()].slice(0, 32).join("").trim();
  return checkDeviceName(cleaned).ok ? cleaned : "primary";
}

/** "2026-12-07" (UTC). */
export function dayOf(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/** The sentence a linked device stops with once its user's newest list no longer names it. */
export function unlinkedSentence(username: string, list: VerifiedDeviceList): string {
  return `this device was unlinked from ${username} on ${dayOf(list.issuedAtMs)}; its keys are no longer used`;
}

export class OwnDevices {
  private stopped = false;

  constructor(private readonly o: OwnDevicesOptions) {}

  private get me(): string {
    return this.o.local.username;
  }

  /**
   * Before connecting: a linked device whose newest verified list (kept at rest) no longer names
   * it was unlinked: the sentence it stops with, without connecting; else undefined.
   */
  unlinkedAtStart(): string | undefined {
    const local = this.o.local;
    if (local.kind !== "linked") return undefined;
    const mine = this.o.directory.known(this.me);
    if (mine === undefined || mine.devices.some((d) => d.deviceId === local.deviceId && d.authSpki.equals(local.deviceSpki))) return undefined;
    return unlinkedSentence(this.me, mine);
  }

  /** The connect-time upkeep; never throws (logs and says what failed). */
  async upkeep(welcome: Welcome): Promise<void> {
    try {
      await this.upkeepNow(welcome);
    } catch (e) {
      this.o.log.warn("devices.upkeep_failed", { reason: (e as Error).message });
    }
  }

  private async upkeepNow(welcome: Welcome): Promise<void> {
    const dir = this.o.directory;
    await dir.refresh([this.me]);
    const mine = dir.known(this.me);
    const local = this.o.local;
    if (local.kind === "linked") {
      if (mine === undefined) {
        this.o.log.warn("devices.own_list_unknown", { relayVersion: welcome.deviceListVersion });
        return;
      }
      const entry = mine.devices.find((d) => d.deviceId === local.deviceId && d.authSpki.equals(local.deviceSpki));
      if (entry === undefined) {
        this.stop(unlinkedSentence(this.me, mine));
        return;
      }
      this.checkWelcomeId(welcome, local.deviceId);
      return;
    }
    const key = Buffer.from(await this.o.mlsSignatureKey());
    if (mine === undefined) {
      if (welcome.deviceListVersion > 0) {
        // The relay keeps a list this client could not verify (refused: a line was shown): do not
        // overwrite what is not understood.
        this.o.log.warn("devices.own_list_unverified", { relayVersion: welcome.deviceListVersion });
        return;
      }
      const now = this.o.clock();
      const me: DeviceEntry = { deviceId: newDeviceId(), name: this.o.primaryName ?? defaultDeviceName((this.o.hostName ?? hostname)()), authSpki: local.user.sigSpki, mlsSignatureKey: key, addedAtMs: now, primary: true };
      const published = await this.publish({ username: this.me, version: 1, issuedAtMs: now, devices: [me] });
      if (published.ok) {
        dir.setSelfDeviceId(me.deviceId);
        this.o.log.info("devices.first_list", { deviceId: me.deviceId });
      }
      return;
    }
    const primary = mine.devices.find((d) => d.primary);
    if (primary === undefined) return;
    dir.setSelfDeviceId(primary.deviceId);
    const name = this.o.primaryName;
    const renamed = name !== undefined && name !== primary.name;
    if (renamed && mine.devices.some((d) => !d.primary && d.name === name)) {
      this.o.emit({ type: "notice", level: "warn", text: `this device keeps the name '${sanitizeLine(primary.name)}': another of your devices is called '${sanitizeLine(name)}'` });
    } else if (!primary.mlsSignatureKey.equals(key) || renamed) {
      // My MLS store was made again (a new MLS key): my entry must name the key my leaves carry;
      // or the user named this device (--device-name).
      await this.publish({
        username: this.me, version: mine.version + 1, issuedAtMs: this.o.clock(),
        devices: mine.devices.map((d) => (d.primary ? { ...d, mlsSignatureKey: key, ...(renamed ? { name } : {}) } : d)),
      });
      return;
    }
    if (welcome.deviceListVersion < mine.version) {
      // The relay lost my newest list (restored from a backup): it gets it again.
      const r = await this.o.ds.publishDeviceList?.(mine);
      this.o.log.info("devices.list_republished", { version: mine.version, ok: r?.ok === true });
    }
    this.checkWelcomeId(welcome, primary.deviceId);
  }

  private checkWelcomeId(welcome: Welcome, mine: string): void {
    if (welcome.deviceId === "" || welcome.deviceId === mine) return;
    this.o.log.warn("devices.welcome_id_mismatch", { relay: sanitizeLine(welcome.deviceId).slice(0, 32), mine });
    this.o.emit({ type: "notice", level: "warn", text: `the relay took this session for another device of ${this.me} (${sanitizeLine(welcome.deviceId).slice(0, 16)}, this one is ${mine})` });
  }

  private stop(sentence: string): void {
    if (this.stopped) return;
    this.stopped = true;
    this.o.log.warn("devices.unlinked", {});
    this.o.stopForGood(sentence);
  }

  /** Signs (identity key: the primary only), publishes, and takes what the relay keeps. */
  private async publish(body: Omit<SignedDeviceList, "signature">): Promise<Outcome<VerifiedDeviceList>> {
    const local = this.o.local;
    try {
      checkDeviceListBody(body, local.user.sigSpki);
    } catch (e) {
      return fail(`that device list would not be valid: ${(e as Error).message.replace(/^device list: /, "")}`);
    }
    if (local.kind !== "primary") return fail("only the primary device can change the device list");
    if (this.o.ds.publishDeviceList === undefined) return fail("this relay connection cannot publish device lists");
    const signed = signDeviceList(body, local.identity.sigPrivate, local.identity.sigSpki);
    // Its answer lost, the list may be kept at the relay all the same: the same bytes go again
    // until it answers (an identical resend is answered as the first, PROTOCOL.md §4.5), for at
    // most PUBLISH_RESEND_MS: a command waits that long for its answer, not forever.
    const publishDeviceList = this.o.ds.publishDeviceList.bind(this.o.ds);
    const r = await sendUntilAnswered(() => publishDeviceList(signed), {
      stopped: () => this.stopped, giveUpAfterMs: PUBLISH_RESEND_MS,
      onLost: (code) => this.o.log.info("devices.publish_answer_lost", { code, version: body.version }),
    });
    if (!r.ok) {
      this.o.log.warn("devices.publish_refused", { code: r.code, version: body.version });
      if (TRANSIENT.has(r.code) && r.code !== "NOT_CONNECTED") return fail(`the relay did not answer for the new device list (version ${body.version}); it may have kept it, as the list of your devices will show`);
      return fail(`the relay did not take the new device list: ${r.detail}`);
    }
    // I signed it and the relay took it: kept here (verified like any list), so the MLS engine hears
    // of it through onChange. The relay's answer is only compared.
    if (r.list.version !== signed.version) this.o.log.warn("devices.publish_answer_differs", { published: signed.version, answered: r.list.version });
    await this.o.directory.accept(signed);
    const now = this.o.directory.known(this.me);
    if (now === undefined || now.version < body.version) return fail("the new device list could not be kept on this device");
    return { ok: true, value: now };
  }

  /** My devices, newest view (refreshed from the relay when connected). */
  async list(): Promise<Outcome<DeviceView[]>> {
    await this.o.directory.refresh([this.me]);
    const mine = this.o.directory.known(this.me);
    if (mine === undefined) return fail("no device list of yours is known yet (it is made at the first connection of the primary device)");
    const seen = this.o.directory.lastSeen(this.me);
    const thisId = this.thisDeviceId(mine);
    return {
      ok: true,
      value: mine.devices.map((d) => {
        const s = seen.get(d.deviceId);
        const isThis = d.deviceId === thisId;
        return { deviceId: d.deviceId, name: d.name, primary: d.primary, thisDevice: isThis, online: isThis || s?.online === true, lastSeenMs: s?.lastSeenMs ?? 0, addedAtMs: d.addedAtMs };
      }),
    };
  }

  private thisDeviceId(mine: VerifiedDeviceList): string | undefined {
    const local = this.o.local;
    if (local.kind === "linked") return local.deviceId;
    return mine.devices.find((d) => d.primary)?.deviceId;
  }

  /**
   * Adds a device to my list (the primary, at the end of linking, PROTOCOL.md §4.6 step 3): a new
   * list, version + 1, with it, signed by the identity key and published. Refused for a device id
   * or key already listed, or a full list.
   */
  async addDevice(entry: DeviceEntry): Promise<Outcome<VerifiedDeviceList>> {
    if (this.o.local.kind !== "primary") return fail("only your primary device (the one with the key file) can link devices");
    if (entry.primary) return fail("a linked device cannot be the primary");
    await this.o.directory.refresh([this.me]);
    const mine = this.o.directory.known(this.me);
    if (mine === undefined) return fail("no device list of yours is known yet: connect once before linking a device");
    if (mine.devices.some((d) => d.deviceId === entry.deviceId || d.authSpki.equals(entry.authSpki) || d.mlsSignatureKey.equals(entry.mlsSignatureKey))) {
      return fail("that device (its id or a key) is already in your device list");
    }
    if (mine.devices.some((d) => d.name === entry.name)) return fail(`you already have a device called '${sanitizeLine(entry.name)}': pick another name`);
    if (mine.devices.length >= MAX_DEVICES) return fail(`you have ${MAX_DEVICES} devices, the most one user may have: unlink one first`);
    return this.publish({ username: this.me, version: mine.version + 1, issuedAtMs: this.o.clock(), devices: [...mine.devices, entry] });
  }

  /**
   * Removes one of my devices (PROTOCOL.md §4.5): a new list, version + 1, without it, signed by
   * the identity key and published. `which`: its name, or a prefix of its id (at least 4 hex).
   */
  async unlink(which: string, o: { readonly check?: boolean } = {}): Promise<Outcome<{ readonly name: string; readonly deviceId: string; readonly version: number }>> {
    if (this.o.local.kind !== "primary") return fail("only your primary device (the one with the key file) can unlink devices");
    const q = typeof which === "string" ? which.trim() : "";
    if (q === "") return fail("say which device to unlink: its name or the start of its id");
    await this.o.directory.refresh([this.me]);
    const mine = this.o.directory.known(this.me);
    if (mine === undefined) return fail("no device list of yours is known yet: nothing to unlink");
    const byName = mine.devices.filter((d) => d.name === q);
    const byId = /^[0-9a-f]{4,16}$/.test(q) ? mine.devices.filter((d) => d.deviceId.startsWith(q)) : [];
    // A name that is also the start of another device's id names two devices: ask for more of the id.
    const matches = [...new Set([...byName, ...byId])];
    const shown = sanitizeLine(q).slice(0, 40);
    if (matches.length === 0) return fail(`no device of yours is called '${shown}'`);
    if (matches.length > 1) return fail(`'${shown}' names ${matches.length} devices: say which by more of its id (${matches.map((d) => `${sanitizeLine(d.name)} ${d.deviceId}`).join(", ")})`);
    const target = matches[0]!;
    if (target.primary) return fail("this is this device (the primary): it cannot unlink itself");
    // Only the checks (the question before the user confirms): the version it would make.
    if (o.check === true) return { ok: true, value: { name: target.name, deviceId: target.deviceId, version: mine.version + 1 } };
    const r = await this.publish({ username: this.me, version: mine.version + 1, issuedAtMs: this.o.clock(), devices: mine.devices.filter((d) => d.deviceId !== target.deviceId) });
    if (!r.ok) return r;
    this.o.log.info("devices.unlinked_device", { deviceId: target.deviceId, version: r.value.version });
    return { ok: true, value: { name: target.name, deviceId: target.deviceId, version: r.value.version } };
  }
}

function fail<T>(detail: string): Outcome<T> {
  return { ok: false, error: { kind: "device", detail } };
}
