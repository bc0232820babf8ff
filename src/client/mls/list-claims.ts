// What a user's own devices say of the user's device list (PROTOCOL.md §4.5 "What my own devices
// say of my list"). The relay serves device lists and may withhold a newer one from me (keep
// serving one I already hold: no rollback to refuse), so that a device its user unlinked since
// still looks listed to me. It cannot change what a device of that user signs: every MLS message
// a device sends carries, as its authenticated_data, the version of its user's newest list it
// holds (a `list claim`). When a message of user U claims a version newer than the one I hold, I
// fetch U's list; when the relay still serves an older one, I say so once per version: the relay
// is hiding a change of U's devices, and what U's devices write should be read with that in mind.
//
// A claim only ever comes from a leaf of U (MLS authenticated it), so a claim too high is U's own
// doing; the relay can drop messages, never forge a claim.
import type { DeviceDirectory } from "../devices-api.js";
import { DeviceListsUnanswered } from "../devices-api.js";
import type { Logger } from "../../protocol/log.js";

/** The first byte of a list claim (authenticated_data of anything else is ignored). */
export const LIST_CLAIM_TAG = 0x01;
/**
 * The first byte of a list claim on a primary's self-heal commit: it also says that the devices
 * it takes out are ones that list no longer names (unlinked), not a /leave (dropped-devices.ts).
 */
export const LIST_CLAIM_UNLINKS_TAG = 0x02;
const LIST_CLAIM_BYTES = 9;
/** At most one fetch of a user's list for claims per this long (a relay that never answers is not asked on every message). */
export const CLAIM_REFRESH_MS = 60_000;
/** Users whose claims are tracked at once (the oldest is forgotten: at worst a fetch or a notice again). */
export const CLAIMS_TRACKED = 1_024;
/** At most one warning per user per this long: a user whose own messages claim ever newer versions (their own doing) cannot make readers blame the relay every minute (review round 5). */
export const CLAIM_WARN_EVERY_MS = 24 * 60 * 60_000;
/** A relay that leaves every fetch for a claim unanswered this long is told about too (it must not silence the warning by refusing the fetch; review round 5). */
export const CLAIM_UNANSWERED_MS = 10 * 60_000;

/** The authenticated_data of my messages: my own list's version (none: empty, as before devices); `unlinks` on a self-heal's commit. */
export function encodeListClaim(version: number | undefined, unlinks = false): Uint8Array {
  if (version === undefined || !Number.isSafeInteger(version) || version <= 0) return new Uint8Array(0);
  const out = Buffer.alloc(LIST_CLAIM_BYTES);
  out[0] = unlinks ? LIST_CLAIM_UNLINKS_TAG : LIST_CLAIM_TAG;
  out.writeBigUInt64BE(BigInt(version), 1);
  return out;
}

/** The version a message's authenticated_data claims, or undefined (none, another format, out of range). */
export function decodeListClaim(aad: Uint8Array): number | undefined {
  if (!(aad instanceof Uint8Array) || aad.length !== LIST_CLAIM_BYTES || (aad[0] !== LIST_CLAIM_TAG && aad[0] !== LIST_CLAIM_UNLINKS_TAG)) return undefined;
  const v = Buffer.from(aad.buffer, aad.byteOffset, aad.byteLength).readBigUInt64BE(1);
  return v > 0n && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : undefined;
}

/** True when `aad` is a list claim that also says its commit takes out devices the list no longer names. */
export function claimsUnlinks(aad: Uint8Array): boolean {
  return decodeListClaim(aad) !== undefined && aad[0] === LIST_CLAIM_UNLINKS_TAG;
}

export interface ListClaimDeps {
  readonly devices: DeviceDirectory;
  readonly clock: () => number;
  readonly logger: Logger;
  /** One warning line, in the conversation the claim came from. */
  readonly warn: (text: string, conversationId: string) => void;
}

interface Tracked {
  /** The version the latest claim said (not the highest ever: one absurd claim must not stand for good, review round 6). */
  claimed: number;
  /** When its list was last fetched for a claim. */
  fetchedAt: number;
  /** When the last warning about this user was said. */
  warnedAt: number;
  /** Since when fetches for the claim went unanswered (undefined: the last one was answered). */
  unansweredSince: number | undefined;
  fetching: boolean;
}

export class ListClaims {
  private readonly users = new Map<string, Tracked>();

  constructor(private readonly d: ListClaimDeps) {}

  /**
   * A message of `username`'s (as MLS authenticated it) carried `aad`. Returns the fetch it
   * started, if any (tests wait on it); never throws.
   */
  heard(username: string, aad: Uint8Array, conversationId: string): Promise<void> | undefined {
    const claimed = decodeListClaim(aad);
    if (claimed === undefined) return undefined;
    const held = this.d.devices.known(username)?.version ?? 0;
    if (claimed <= held) return undefined;
    let t = this.users.get(username);
    if (t === undefined) {
      if (this.users.size >= CLAIMS_TRACKED) this.users.delete(this.users.keys().next().value as string);
      t = { claimed, fetchedAt: Number.NEGATIVE_INFINITY, warnedAt: Number.NEGATIVE_INFINITY, unansweredSince: undefined, fetching: false };
      this.users.set(username, t);
    }
    t.claimed = claimed;
    const now = this.d.clock();
    if (t.fetching || (now >= t.fetchedAt && now - t.fetchedAt < CLAIM_REFRESH_MS)) return undefined;
    t.fetching = true;
    t.fetchedAt = now;
    const tracked = t;
    const mayWarn = (at: number): boolean => at - tracked.warnedAt >= CLAIM_WARN_EVERY_MS;
    return this.d.devices.refresh([username], { mustAnswer: true }).then(() => {
      tracked.unansweredSince = undefined;
      const have = this.d.devices.known(username)?.version ?? 0;
      const at = this.d.clock();
      if (have >= tracked.claimed || !mayWarn(at)) return;
      tracked.warnedAt = at;
      this.d.logger.warn("mls.devices.list_withheld", { user: username, claimed: tracked.claimed, served: have });
      this.d.warn(`${username}'s own device says ${username}'s device list is at version ${tracked.claimed}, but the relay serves version ${have}: `
        + `the relay may be hiding a change of ${username}'s devices (one unlinked), so a device ${username} no longer uses may still write as ${username} here`, conversationId);
    }, (e: unknown) => {
      // Not answered (offline, a refusal): no ground for a warning yet; a later message asks again
      // (at most one fetch per CLAIM_REFRESH_MS: a relay that never answers is not asked on every
      // message). Unanswered for CLAIM_UNANSWERED_MS, it is said: a relay must not silence the
      // warning by refusing the fetch.
      if (!(e instanceof DeviceListsUnanswered)) this.d.logger.warn("mls.devices.claim_refresh_failed", { user: username, reason: (e as Error).message });
      const at = this.d.clock();
      tracked.unansweredSince ??= at;
      if (at - tracked.unansweredSince < CLAIM_UNANSWERED_MS || !mayWarn(at)) return;
      tracked.warnedAt = at;
      this.d.logger.warn("mls.devices.list_unanswered", { user: username, claimed: tracked.claimed });
      this.d.warn(`${username}'s own device says ${username}'s device list is at version ${tracked.claimed}, but the relay has not answered for it `
        + `for ${Math.round(CLAIM_UNANSWERED_MS / 60_000)} minutes: it may be hiding a change of ${username}'s devices (one unlinked)`, conversationId);
    }).finally(() => {
      tracked.fetching = false;
    });
  }
}
