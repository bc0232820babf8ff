// The user's decisions about a peer's keys (PROTOCOL.md §5, §6): /verify shows the safety
// number (fetching the keys first when none are pinned), /trust marks the keys verified only when
// the digits typed name the keys pinned (or pending) now, /accept continues with a changed key
// unverified. Accepting a change releases the messages held under the new key.
import type { PrivateIdentity } from "../protocol/keys.js";
import type { Logger } from "../protocol/log.js";
import { isValidUsername } from "../protocol/names.js";
import { sanitizeLine } from "../protocol/sanitize.js";
import { digitsNameKeys, safetyHalfGroups, safetyNumber, TRUST_GROUPS } from "../protocol/safety-number.js";
import type { KeyDirectory } from "./key-directory.js";
import type { TrustStore } from "./trust-store.js";
import type { Outcome, TrustResult, VerifyInfo } from "./types.js";

export interface TrustDecisionsOptions {
  readonly identity: PrivateIdentity;
  readonly trust: TrustStore;
  readonly directory: KeyDirectory;
  readonly log: Logger;
  /** True while a session is authenticated. */
  readonly connected: () => boolean;
  /** Opens the envelopes held for a user whose new key was accepted. */
  readonly releaseHeld: (username: string) => { readonly shown: number; readonly discarded: number };
  /** A changed key was decided on (v2: the conversations holding the old key take in the new one, key-change.ts). */
  readonly keyDecided?: (username: string, verified: boolean) => void;
}

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString("hex");
}

function groups(h: string, size = 4): string {
  return h.match(new RegExp(`.{1,${size}}`, "g"))?.join(" ") ?? h;
}

export class TrustDecisions {
  private readonly me: string;

  constructor(private readonly o: TrustDecisionsOptions) {
    this.me = o.identity.username;
  }

  fingerprint(): string {
    const id = this.o.identity;
    return `signing key ${groups(hex(id.sigFpr).slice(0, 32))} · encryption key ${groups(hex(id.encFpr).slice(0, 32))}`;
  }

  verifyInfo(username: string): Outcome<VerifyInfo> {
    if (username === this.me) return { ok: false, error: { kind: "self", action: "verify" } };
    if (!isValidUsername(username)) return { ok: false, error: { kind: "invalid-username", name: sanitizeLine(username).slice(0, 40) } };
    const pin = this.o.trust.get(username);
    if (pin === undefined) {
      if (this.o.directory.isUnknown(username)) return { ok: false, error: { kind: "unknown-user", username } };
      this.o.directory.ensure([username]).catch((e: unknown) => {
        // The answer below already says to ask again; a failed fetch is said by the next /verify.
        this.o.log.info("verify.fetch-failed", { reason: e instanceof Error ? e.message : String(e) });
      });
      return { ok: false, error: { kind: "keys-not-fetched", username, why: "fetching" } };
    }
    return {
      ok: true,
      value: {
        username,
        trust: this.o.directory.trustOf(pin),
        safetyNumber: safetyNumber(this.o.identity, pin.identity),
        ...(pin.pending ? { pendingSafetyNumber: safetyNumber(this.o.identity, pin.pending) } : {}),
        confirmGroups: safetyHalfGroups(pin.pending ?? pin.identity).slice(0, TRUST_GROUPS),
      },
    };
  }

  async verify(username: string): Promise<Outcome<VerifyInfo>> {
    // Someone real whose keys are not pinned yet: look them up (before, and again after, the lookup).
    const unfetched = (): boolean =>
      isValidUsername(username) && username !== this.me && this.o.trust.get(username) === undefined && !this.o.directory.isUnknown(username);
    if (unfetched()) {
      try {
        await this.o.directory.ensure([username]);
      } catch (err) {
        this.o.log.info("verify.fetch-failed", { reason: err instanceof Error ? err.message : String(err) });
      }
    }
    // Still nothing pinned (offline relay, or the lookup failed): say why instead of "run again".
    if (unfetched()) {
      return { ok: false, error: { kind: "keys-not-fetched", username, why: this.o.connected() ? "no-answer" : "not-connected" } };
    }
    return this.verifyInfo(username);
  }

  /**
   * /trust <user> <groups>: the user compared safety numbers and names what they compared, so
   * a key that changed since /verify (or was never shown) is refused, not accepted (§6).
   */
  trust(username: string, digits: readonly string[]): Outcome<TrustResult> {
    if (username === this.me) return { ok: false, error: { kind: "self", action: "trust" } };
    if (!isValidUsername(username)) return { ok: false, error: { kind: "invalid-username", name: sanitizeLine(username).slice(0, 40) } };
    const before = this.o.trust.get(username);
    if (before === undefined) return { ok: false, error: { kind: "keys-not-fetched", username, why: "not-pinned" } };
    const keys = before.pending ?? before.identity;
    if (digits.length === 0) return { ok: false, error: { kind: "digits-missing", username, groups: TRUST_GROUPS } };
    if (!digitsNameKeys(digits, this.o.identity, keys)) {
      return { ok: false, error: { kind: "digits-mismatch", username, newKeys: before.pending !== undefined } };
    }
    const hadChange = before.pending !== undefined;
    if (this.o.trust.trust(username, keys) === undefined) return { ok: false, error: { kind: "keys-changed-meanwhile", username, action: "trust" } };
    const released = hadChange ? this.o.releaseHeld(username) : { shown: 0, discarded: 0 };
    if (hadChange) this.o.keyDecided?.(username, true);
    this.o.directory.emitPeer(username);
    this.o.log.info("peer.trusted", { user: username, keyChange: hadChange });
    return { ok: true, value: { username, verified: true, keyChange: hadChange, ...released } };
  }

  /** /accept <user>: continue with a peer's new keys without comparing them (not verified). */
  acceptNewKeys(username: string): Outcome<TrustResult> {
    if (username === this.me) return { ok: false, error: { kind: "self", action: "accept" } };
    if (!isValidUsername(username)) return { ok: false, error: { kind: "invalid-username", name: sanitizeLine(username).slice(0, 40) } };
    const before = this.o.trust.get(username);
    if (before?.pending === undefined) return { ok: false, error: { kind: "no-key-change", username } };
    if (this.o.trust.accept(username, before.pending) === undefined) return { ok: false, error: { kind: "keys-changed-meanwhile", username, action: "accept" } };
    const released = this.o.releaseHeld(username);
    this.o.keyDecided?.(username, false);
    this.o.directory.emitPeer(username);
    this.o.log.info("peer.accepted", { user: username });
    return { ok: true, value: { username, verified: false, keyChange: true, ...released } };
  }
}
