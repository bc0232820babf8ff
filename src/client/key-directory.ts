// Who exists, who is online, and their keys (PROTOCOL.md §6 and §9). The relay's directory is
// light (name, presence, key tag); keys are looked up when first needed and pinned on first
// sight in the trust store, where a different key becomes a pending change, never accepted
// silently. The session does the LookupKeys round trips; this class decides when and what.
import type { DirectoryEntry } from "../gen/securechat/v1/chat.js";
import { importPublicIdentity, keyTag, type PrivateIdentity, type PublicIdentity } from "../protocol/keys.js";
import type { Logger } from "../protocol/log.js";
import { isValidUsername } from "../protocol/names.js";
import type { PinnedPeer, TrustStore } from "./trust-store.js";
import { describeClientError, describeNotice } from "./errors.js";
import { dmIdFor, type Outcome, type PeerTrust, type PeerView, type SessionEvent } from "./types.js";

/** Up to this many users online, everyone's keys are fetched at once (beyond: when first needed). */
export const PREFETCH_MAX_ONLINE = 100;
const LOOKUP_ATTEMPTS = 5;

export interface KeyDirectoryOptions {
  readonly me: PrivateIdentity;
  readonly trust: TrustStore;
  readonly log: Logger;
  /** One LookupKeys round trip on the current session, waiting for a connection first. */
  readonly lookup: (usernames: string[]) => Promise<Outcome<readonly DirectoryEntry[]>>;
  /** False once the session is closed or failed for good: lookups stop retrying. */
  readonly alive: () => boolean;
  /** True while a session is authenticated (retries pause between attempts only then). */
  readonly connected: () => boolean;
  /** Names per LookupKeys (the relay's max_recipients). */
  readonly maxPerLookup: () => number;
  /** Envelopes held for a user because of a key change (for the warning). */
  readonly heldCount: (username: string) => number;
  /** Drops a user's held envelopes (signed by a pending key that is gone); returns how many. */
  readonly discardHeld: (username: string) => number;
  /** The rooms I am in that this user is a member of (a key change is shown there too). */
  readonly roomsWith: (username: string) => readonly string[];
  readonly emit: (event: SessionEvent) => void;
}

export class KeyDirectory {
  private readonly me: string;
  private readonly online = new Map<string, boolean>();
  private readonly keyTags = new Map<string, Buffer>();
  /** Lookups in flight, by username (joined, never repeated). */
  private readonly lookups = new Map<string, Promise<void>>();
  /** Names the relay answered a lookup without: it does not know them. */
  private readonly notFound = new Set<string>();
  /** Names whose keys from the relay failed the checks (bad binding, weak key): never sealed to. */
  private readonly invalid = new Set<string>();

  constructor(private readonly o: KeyDirectoryOptions) {
    this.me = o.me.username;
  }

  /** A new session's Welcome: presence starts over. */
  reset(): void {
    this.online.clear();
    this.online.set(this.me, true);
  }

  isOnline(name: string): boolean {
    return this.online.get(name) === true;
  }

  /** Everyone else online, as far as the directory shows. */
  othersOnline(): string[] {
    return [...this.online].filter(([n, on]) => on && n !== this.me).map(([n]) => n);
  }

  /** The relay answered a lookup without this name. */
  isUnknown(name: string): boolean {
    return this.notFound.has(name);
  }

  /** The relay served keys for this name that failed the checks. */
  hasInvalidKeys(name: string): boolean {
    return this.invalid.has(name);
  }

  /**
   * A light directory entry: presence and the key tag. When the tag no longer matches the keys
   * pinned for that user (nor a pending change), their keys are fetched again, so a key change
   * surfaces at once. The tag is only a hint: every security check uses the pinned keys.
   */
  observeLight(entry: DirectoryEntry, live: boolean): void {
    const name = entry.username;
    if (!isValidUsername(name)) {
      this.o.log.warn("directory.invalid-entry", { reason: "invalid username" });
      return;
    }
    if (name === this.me) {
      if (entry.keyTag.length > 0 && !entry.keyTag.equals(keyTag(this.o.me.sigFpr, this.o.me.encFpr))) {
        this.o.emit({ type: "notice", level: "error", text: "the relay lists keys for you that are not yours: it may be attacking you" });
      }
      return;
    }
    this.online.set(name, entry.online);
    if (entry.keyTag.length > 0) this.keyTags.set(name, Buffer.from(entry.keyTag));
    if (this.o.trust.get(name) !== undefined && this.needsKeys(name)) {
      this.ensure([name]).catch((e: unknown) => {
        // The key change then surfaces at the next lookup (a send, a delivery, /verify).
        this.o.log.warn("keys.refresh-failed", { users: 1, reason: e instanceof Error ? e.message : String(e) });
      });
    }
    if (live) this.emitPeer(name);
  }

  /** A DirectoryUpdate: presence and tags change; who came online is prefetched in small directories. */
  update(entries: readonly DirectoryEntry[]): void {
    const joined: string[] = [];
    for (const entry of entries) {
      if (entry.online && !this.isOnline(entry.username)) joined.push(entry.username);
      this.observeLight(entry, true);
    }
    this.prefetch(joined);
  }

  /** Keys are needed when none are pinned, or the relay's tag matches neither the pin nor a pending change. */
  needsKeys(name: string): boolean {
    const pin = this.o.trust.get(name);
    if (pin === undefined) return true;
    const tag = this.keyTags.get(name);
    if (tag === undefined) return false;
    if (tag.equals(keyTag(pin.identity.sigFpr, pin.identity.encFpr))) return false;
    return !(pin.pending && tag.equals(keyTag(pin.pending.sigFpr, pin.pending.encFpr)));
  }

  /** Small directories are fetched up front, so /verify and first messages need no round trip. */
  prefetch(names: readonly string[]): void {
    let online = 0;
    for (const v of this.online.values()) if (v) online++;
    if (online > PREFETCH_MAX_ONLINE) return;
    const missing = names.filter((n) => n !== this.me && this.o.trust.get(n) === undefined);
    if (missing.length === 0) return;
    this.ensure(missing).catch((e: unknown) => {
      // Only a head start: whatever needs these keys later (a send, /verify) fetches them again.
      this.o.log.warn("keys.prefetch-failed", { users: missing.length, reason: e instanceof Error ? e.message : String(e) });
    });
  }

  /**
   * Makes sure the keys of these users are pinned, fetching them when needed. `refresh` fetches
   * even when a pin exists (a sender signed with an unknown key; a recipient's key is stale).
   */
  async ensure(names: readonly string[], refresh = false): Promise<void> {
    const need = [...new Set(names)].filter((n) => n !== this.me && isValidUsername(n) && (refresh || this.needsKeys(n)));
    if (need.length === 0) return;
    const waits: Promise<void>[] = [];
    const fresh: string[] = [];
    for (const n of need) {
      const inFlight = this.lookups.get(n);
      if (inFlight) waits.push(inFlight);
      else fresh.push(n);
    }
    const per = Math.max(1, this.o.maxPerLookup());
    for (let i = 0; i < fresh.length; i += per) {
      const chunk = fresh.slice(i, i + per);
      const p = this.lookupChunk(chunk);
      for (const n of chunk) this.lookups.set(n, p);
      waits.push(p);
    }
    await Promise.all(waits);
  }

  /**
   * One lookup, asked again (a few times) when it was lost with the connection or refused for
   * going too fast: a message waiting for these keys must not fail because the network blinked.
   */
  private async lookupChunk(names: string[]): Promise<void> {
    try {
      let answer: Outcome<readonly DirectoryEntry[]> | undefined;
      for (let attempt = 1; attempt <= LOOKUP_ATTEMPTS; attempt++) {
        answer = await this.o.lookup(names);
        if (answer.ok || !this.o.alive()) break;
        this.o.log.info("keys.lookup-retry", { users: names.length, attempt, reason: describeClientError(answer.error) });
        if (this.o.connected()) await new Promise((r) => setTimeout(r, 250 * attempt));
      }
      if (answer === undefined || !answer.ok) {
        this.o.log.warn("keys.lookup-failed", { users: names.length, reason: answer?.ok === false ? describeClientError(answer.error) : "no answer" });
        return;
      }
      const asked = new Set(names);
      for (const entry of answer.value) {
        if (!asked.has(entry.username)) continue;
        asked.delete(entry.username);
        this.notFound.delete(entry.username);
        this.observeKeys(entry);
      }
      for (const missing of asked) this.notFound.add(missing);
    } finally {
      for (const n of names) this.lookups.delete(n);
    }
  }

  /** Keys from the relay: pinned on first sight, a different key becomes a pending change (PROTOCOL.md §6). */
  private observeKeys(entry: DirectoryEntry): void {
    let identity: PublicIdentity;
    try {
      identity = importPublicIdentity(entry);
    } catch (e) {
      const valid = isValidUsername(entry.username);
      if (valid) this.invalid.add(entry.username);
      this.o.log.warn("directory.invalid-keys", { user: valid ? entry.username : "(invalid)", reason: (e as Error).message });
      if (valid) this.o.emit({ type: "notice", level: "warn", text: `the relay sent invalid keys for ${entry.username}; they were ignored` });
      return;
    }
    const name = identity.username;
    if (name === this.me) return;
    this.invalid.delete(name);
    this.keyTags.set(name, keyTag(identity.sigFpr, identity.encFpr));
    const before = this.o.trust.get(name);
    const result = this.o.trust.observe(identity);
    if (result === "key-changed" && before?.pending === undefined) {
      this.o.log.warn("peer.key-changed", { user: name });
      this.o.emit({ type: "key-change", username: name, conversationId: dmIdFor(this.me, name), held: this.o.heldCount(name) });
      this.noticeInRooms(name, false);
    } else if (result === "key-replaced") {
      // Every replacement of a pending key is a fresh warning; what was held under the replaced
      // key can never be shown (it is not signed by any key the user could accept).
      const discarded = this.o.discardHeld(name);
      this.o.log.warn("peer.key-replaced", { user: name, discarded });
      this.o.emit({ type: "key-change", username: name, conversationId: dmIdFor(this.me, name), held: 0, replaced: true, discarded });
      this.noticeInRooms(name, true);
    } else if (result === "change-withdrawn") {
      const discarded = this.o.discardHeld(name);
      const dropped = discarded === 0 ? "" : `; ${discarded} message${discarded === 1 ? "" : "s"} signed by the withdrawn key ${discarded === 1 ? "was" : "were"} discarded`;
      this.o.emit({ type: "notice", level: "info", text: `the relay shows ${name}'s original keys again; the key change was withdrawn${dropped}`, conversationId: dmIdFor(this.me, name) });
    }
    this.emitPeer(name);
  }

  /** A key change is said in every room shared with that user too (they are left out there until decided). */
  private noticeInRooms(name: string, again: boolean): void {
    const about = { kind: "room-key-changed", username: name, again } as const;
    for (const room of this.o.roomsWith(name)) this.o.emit({ type: "notice", level: "warn", text: describeNotice(about), conversationId: room, about });
  }

  trustOf(pin: PinnedPeer): PeerTrust {
    if (pin.pending) return "key-changed";
    return pin.verified ? "verified" : "unverified";
  }

  peerView(username: string): PeerView | undefined {
    if (username === this.me) return { username, online: this.o.connected(), trust: "verified", you: true };
    const pin = this.o.trust.get(username);
    const online = this.online.get(username) === true;
    // Someone the directory shows whose keys were not fetched yet: nothing is pinned, so unverified.
    if (pin === undefined) return this.online.has(username) ? { username, online, trust: "unverified", you: false } : undefined;
    return { username, online, trust: this.trustOf(pin), you: false };
  }

  /** Me, everyone the directory shows, and everyone pinned before (known, maybe offline). */
  peerViews(): PeerView[] {
    const names = new Set<string>([this.me, ...this.online.keys(), ...this.o.trust.all().keys()]);
    return [...names].sort().flatMap((n) => {
      const v = this.peerView(n);
      return v ? [v] : [];
    });
  }

  emitPeer(name: string): void {
    const view = this.peerView(name);
    if (view) this.o.emit({ type: "peer", peer: view });
  }
}
