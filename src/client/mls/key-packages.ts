// This client's KeyPackages on the relay (PROTOCOL.md §8.1): 20 one-time and 1
// last-resort, topped up when the relay says fewer than 5 one-time ones are left; a used
// last-resort one is replaced. Each private part is kept in the MlsKeyStore BEFORE the upload
// (a KeyPackage the relay hands out must open).
import type { MlsKeyStore } from "../mls-store.js";
import { generateKeyPackage, type MlsClient } from "../../protocol/mls/index.js";
import type { Logger } from "../../protocol/log.js";
import type { DsApi } from "./ds-api.js";

export const KEY_PACKAGES_PER_UPLOAD = 20;
export const KEY_PACKAGES_LOW = 5;

export class KeyPackageKeeper {
  constructor(
    private readonly client: MlsClient,
    private readonly store: MlsKeyStore,
    private readonly ds: DsApi,
    private readonly logger: Logger,
    private readonly nowS: () => number,
  ) {}

  private rest: (() => Promise<void>) | undefined;

  /**
   * At start, in two steps so the lobby is entered between them (PROTOCOL.md §7): `start`
   * publishes one fresh one-time KeyPackage (the first time also the last-resort one), enough
   * for anyone who sees me to open a DM with me; `fill` then publishes the rest (the first time
   * 19 more, 20 in all; later a top-up when the relay's answer says few are left).
   */
  async start(): Promise<void> {
    this.store.deleteExpiredKeyPackages(this.nowS());
    const first = !this.store.keyPackages().some((k) => k.lastResort);
    const left = await this.upload(1, first);
    if (left === undefined) return;
    this.rest = first ? async () => { await this.upload(KEY_PACKAGES_PER_UPLOAD - 1, false); } : () => this.status(left);
  }

  /** The second step of `start` (once). */
  async fill(): Promise<void> {
    const rest = this.rest;
    this.rest = undefined;
    await rest?.();
  }

  /** The relay says how many one-time KeyPackages it keeps for me: top up below 5. */
  async status(oneTimeLeft: number): Promise<void> {
    if (oneTimeLeft >= KEY_PACKAGES_LOW) return;
    await this.upload(KEY_PACKAGES_PER_UPLOAD, false);
  }

  /** A Welcome used my last-resort KeyPackage: replace it (the store drops the old one). */
  async replaceLastResort(): Promise<void> {
    await this.upload(0, true);
  }

  /** Generates, keeps, then uploads; returns the relay's count of one-time ones (undefined when refused). */
  private async upload(oneTime: number, lastResort: boolean): Promise<number | undefined> {
    const now = this.nowS();
    const fresh: Uint8Array[] = [];
    for (let i = 0; i < oneTime; i++) {
      const kp = await generateKeyPackage(this.client, { nowS: now });
      this.store.putKeyPackage(kp);
      fresh.push(kp.keyPackage);
    }
    let last: Uint8Array | undefined;
    if (lastResort) {
      const kp = await generateKeyPackage(this.client, { lastResort: true, nowS: now });
      this.store.putKeyPackage(kp);
      last = kp.keyPackage;
    }
    const r = await this.ds.publishKeyPackages(fresh, last);
    if (!r.ok) {
      this.logger.warn("mls.key_packages.refused", { code: r.code, detail: r.detail });
      return undefined;
    }
    this.logger.info("mls.key_packages.published", { oneTime, lastResort, left: r.oneTimeLeft });
    return r.oneTimeLeft;
  }
}
