// ChatClient's protocol v2 mode (PROTOCOL.md §8.3, §10.4): the relay as
// Delivery Service over the session (ds-transport.ts) and the conversation engine
// (conversations.ts) wired to the session's life: started at the first Welcome, back into the
// lobby after each reconnect, each Delivery.mls handed to the engine and acknowledged only
// once the engine has processed it and saved the group (history → state → ack).
import { MlsKind, type Delivery, type SendResult } from "../../gen/securechat/v1/chat.js";
import { fingerprint, type PrivateIdentity } from "../../protocol/keys.js";
import type { Logger } from "../../protocol/log.js";
import { parseConversationId } from "../../protocol/names.js";
import { sanitizeLine } from "../../protocol/sanitize.js";
import type { TrustHook } from "../../protocol/mls/index.js";
import type { MlsKeyStore } from "../mls-store.js";
import type { TrustStore } from "../trust-store.js";
import type { DeviceDirectory } from "../devices-api.js";
import type { ChatMessage, SessionEvent } from "../types.js";
import type { ContentLayer } from "./content-api.js";
import { AcceptanceOrder, BACKLOG_QUIET_MS } from "./content-order.js";
import { MlsConversations } from "./conversations.js";
import type { MlsQueued } from "./ds-api.js";
import { DsTransport, isMalformedMls, loggedLabel, mlsQueuedOf, type DsLink, type MalformedMls } from "./ds-transport.js";
import type { MlsOutboxStore } from "./outbox-store.js";

/** How often held messages and past-epoch keys are looked at (PROTOCOL.md §10, §12). */
const TIMER_MS = 60_000;
/** Seqs per Ack frame at most (the relay takes up to 4 × its delivery window, limits.ts MAX_ACK_SEQS). */
const ACK_MAX = 512;

export interface MlsSessionOptions {
  readonly identity: PrivateIdentity;
  readonly store: MlsKeyStore;
  readonly content: ContentLayer;
  /**
   * How long after the relay's answer an acceptance is recorded (§11.1, content-order.ts):
   * CLUSTER_SETTLE_MS for a client given several relays; 0 (default) at once.
   */
  readonly acceptanceSettleMs?: number;
  /** The durable outbox of pending messages (in the state db); in memory only without it. */
  readonly outbox?: MlsOutboxStore;
  readonly link: DsLink;
  readonly trust: TrustStore;
  readonly clock: () => number;
  readonly log: Logger;
  readonly emit: (e: SessionEvent) => void;
  /** Sends an Ack for these delivery seqs on the current session. */
  readonly ack: (seqs: number[]) => void;
  /**
   * Pins users' keys from the relay's directory when none are pinned (KeyDirectory.ensure);
   * `refresh` asks again even when pinned (PROTOCOL.md §4.4: first contact, key changes).
   */
  readonly ensureKeys?: (usernames: readonly string[], refresh?: boolean) => Promise<void>;
  /** The relay's directory has no such user (send.ts: "no user 'zed' on this relay", not "no KeyPackage"). */
  readonly isUnknown?: (username: string) => boolean;
  /** One delivery was handled (for the caught-up count); `message`: it carried an application message. */
  readonly handled?: (message: boolean) => void;
  /** The relay's directory: whether a user is online now (the lobby janitor, PROTOCOL.md §7). */
  readonly isOnline?: (username: string) => boolean;
  /** Verified device lists and this device (PROTOCOL.md §4.5): one leaf per device in every group (devices.ts). */
  readonly devices?: DeviceDirectory;
}

/**
 * The pins of PROTOCOL.md §6 as the MLS trust hook (PROTOCOL.md §4.4): a credential's identity
 * key must be the pinned `sig_fpr`; while a key change waits for a decision, the user's leaves
 * are refused. The engine pins a user from the relay's directory before it first checks their
 * credential (MlsSession.deliver, claiming a KeyPackage); only a user the relay's directory does
 * not answer for stays unpinned, and is accepted as first contact. `mismatch` hears of each
 * identity key refused for not being the pinned one.
 */
export function pinHook(trust: TrustStore, mismatch?: (username: string) => void): TrustHook {
  return (id) => {
    const pin = trust.get(id.username);
    if (pin === undefined) return true;
    if (pin.pending !== undefined) return false;
    const same = fingerprint(pin.identity.sigSpki).equals(id.identityFpr);
    if (!same) mismatch?.(id.username);
    return same;
  };
}

export class MlsSession {
  readonly ds: DsTransport;
  readonly engine: MlsConversations;
  private welcomedOnce = false;
  private timer: NodeJS.Timeout | undefined;
  /** Deliveries wait here, in the relay's order, until their sender's keys are pinned (§3). */
  private gate: Promise<void> = Promise.resolve();
  /** Users whose MLS identity key differed from the pin, warned about once per session (and conversation). */
  private readonly warned = new Set<string>();
  /** §11.1: acceptances recorded after the deliveries received before them. */
  private readonly order: AcceptanceOrder;
  /** Seqs resolved in this turn, acked together at its end (ackSoon). */
  private readonly acks: number[] = [];

  constructor(private readonly o: MlsSessionOptions) {
    this.ds = new DsTransport(o.link);
    this.order = new AcceptanceOrder(o.log, BACKLOG_QUIET_MS, o.acceptanceSettleMs ?? 0);
    const ensureKeys = o.ensureKeys === undefined ? undefined : (names: readonly string[]) => this.ensure(names);
    this.engine = new MlsConversations({
      me: o.identity.username, identity: { username: o.identity.username, sigPrivate: o.identity.sigPrivate },
      store: o.store, ds: this.ds, content: this.order.wrap(o.content), trust: pinHook(o.trust, (u) => this.mismatch(u)), clock: o.clock, logger: o.log, emit: o.emit,
      ...(ensureKeys === undefined ? {} : { ensureKeys }),
      ...(o.isUnknown === undefined ? {} : { isUnknown: o.isUnknown }),
      ...(o.outbox === undefined ? {} : { outbox: o.outbox }),
      ...(o.isOnline === undefined ? {} : { isOnline: o.isOnline }),
      ...(o.devices === undefined ? {} : { devices: o.devices }),
    });
  }

  /** Pins these users from the relay's directory when not pinned yet; never throws (a failed lookup leaves them unpinned). */
  private async ensure(names: readonly string[]): Promise<void> {
    const me = this.o.identity.username;
    const need = [...new Set(names)].filter((n) => n !== me && this.o.trust.get(n) === undefined);
    if (need.length === 0 || this.o.ensureKeys === undefined) return;
    try {
      await this.o.ensureKeys(need);
    } catch (e) {
      this.o.log.warn("mls.trust.lookup_failed", { users: need.length, reason: (e as Error).message });
    }
  }

  /**
   * An MLS credential named an identity key that is not the one pinned (PROTOCOL.md §4.4): it
   * was refused. The directory is asked again, so a key change the relay also shows there goes
   * through the key-change flow of PROTOCOL.md §6 (warning, /verify, /trust).
   */
  private mismatch(username: string): void {
    this.o.log.warn("mls.trust.key_mismatch", { user: username });
    if (this.warned.has(username)) return;
    this.warned.add(username);
    this.o.emit({ type: "notice", level: "warn", text: `the relay offered an identity key for ${username} that is not the one pinned for them; it was refused (see /verify ${username})` });
    this.o.ensureKeys?.([username], true).catch((e: unknown) => this.o.log.warn("mls.trust.lookup_failed", { users: 1, reason: (e as Error).message }));
  }

  /**
   * After a Welcome or a commit: every member not pinned yet is pinned from the directory, and
   * each member's identity key is compared with the pin (a member added by someone else, or in
   * the group I joined, was accepted before any pin existed for them).
   */
  private async checkMembers(conversationId: string): Promise<void> {
    const members = this.engine.memberIdentities(conversationId);
    if (members === undefined) return;
    await this.ensure(members.map((m) => m.username));
    for (const m of members) {
      const pin = this.o.trust.get(m.username);
      if (pin === undefined || m.username === this.o.identity.username) continue;
      const keyOk = fingerprint(pin.identity.sigSpki).equals(m.identityFpr) || (pin.pending !== undefined && fingerprint(pin.pending.sigSpki).equals(m.identityFpr));
      if (keyOk) continue;
      const key = `${conversationId}\u0000${m.username}`;
      this.o.log.warn("mls.trust.member_mismatch", { conversation: conversationId, user: m.username });
      if (this.warned.has(key)) continue;
      this.warned.add(key);
      this.o.emit({ type: "notice", level: "warn", conversationId, text: `${m.username}'s identity key in ${conversationId} is not the one pinned for them: the relay may be attacking you (see /verify ${m.username})` });
    }
  }

  /**
   * The user decided about a changed key of `username` (/trust or /accept, PROTOCOL.md §6): the
   * pin now names the new key, and the conversations holding the old one take in the new (key-change.ts).
   */
  keyDecided(username: string, verified: boolean): void {
    const pin = this.o.trust.get(username);
    if (pin === undefined || pin.pending !== undefined) return;
    this.warned.delete(username);
    this.engine.keyDecided(username, fingerprint(pin.identity.sigSpki), verified).catch((e: unknown) => this.o.log.warn("mls.key_change.failed", { user: username, reason: (e as Error).message }));
  }

  /**
   * The relay welcomed a session announcing `queued` deliveries (its backlog for me): acceptances
   * wait for them (§11.1, content-order.ts); the engine starts (first time) or comes back into the lobby.
   */
  welcomed(queued = 0): void {
    this.order.welcome(queued);
    const first = !this.welcomedOnce;
    this.welcomedOnce = true;
    const p = first ? this.engine.start() : this.engine.reconnected();
    p.catch((e: unknown) => {
      this.o.log.error("mls.session.start_failed", { reason: (e as Error).message });
      this.o.emit({ type: "notice", level: "error", text: `protocol v2 could not start: ${sanitizeLine((e as Error).message).slice(0, 300)}` });
    });
    if (this.timer === undefined) {
      this.timer = setInterval(() => {
        this.engine.checkTimers().catch((e: unknown) => this.o.log.warn("mls.session.timers_failed", { reason: (e as Error).message }));
      }, TIMER_MS);
      this.timer.unref();
    }
  }

  /**
   * Hands a batch's MLS deliveries to the engine as one operation (each group saved once for
   * the batch, conversations.ts deliverAll), each acked once it resolves: the acks resolved
   * together go in one Ack. Returns the others (v1 envelopes).
   */
  deliver(items: readonly Delivery[]): Delivery[] {
    const rest: Delivery[] = [];
    const batch: { d: Delivery; q: MlsQueued }[] = [];
    const malformed: MalformedMls[] = [];
    for (const d of items) {
      const q = mlsQueuedOf(d);
      if (q === undefined) {
        this.order.skipped(); // part of the Welcome's backlog all the same
        rest.push(d);
      } else if (isMalformedMls(q)) {
        this.order.skipped(); // never reaches the content layer
        malformed.push(q);
        this.o.log.warn("mls.deliver.malformed_label", {
          seq: q.seq, label: q.malformed, conversation: loggedLabel(d.conversationId), sender: loggedLabel(d.mls?.sender ?? ""),
          device: loggedLabel(d.mls?.senderDevice ?? ""), groupIdBytes: d.mls?.groupId.length ?? 0,
        });
      } else {
        this.order.arrived(); // §11.1: received before any acceptance recorded after it
        batch.push({ d, q });
      }
    }
    if (malformed.length > 0) {
      // Once the deliveries before them are handed to the engine: one refusal each, then acked.
      this.gate = this.gate.then(() => { for (const m of malformed) this.refuseMalformed(m); })
        .catch((e: unknown) => this.o.log.warn("mls.session.refusal_failed", { reason: (e as Error).message }));
    }
    if (batch.length === 0) return rest;
    // The senders' keys are pinned before the engine checks their credentials (§3), in order.
    const ready = this.gate.then(() => this.ensure(batch.map((b) => b.q.item.sender)));
    this.gate = ready;
    void ready.then(() => {
      const done = this.engine.deliverAll(batch.map((b) => b.q));
      for (const [i, { d, q }] of batch.entries()) {
        const membership = q.item.kind === MlsKind.MLS_KIND_WELCOME || q.item.kind === MlsKind.MLS_KIND_COMMIT;
        void done[i]!.then(
          () => {
            this.order.done();
            this.ackSoon(d.seq);
            // A redelivery dropped (its ack was lost with a relay) showed nothing: not "caught up".
            this.o.handled?.(q.item.kind === MlsKind.MLS_KIND_APPLICATION && !this.engine.wasRedelivery(q));
            if (membership) this.checkMembers(q.conversationId).catch((e: unknown) => this.o.log.warn("mls.trust.check_failed", { reason: (e as Error).message }));
          },
          (e: unknown) => {
            this.order.done();
            this.o.log.warn("mls.session.not_acked", { seq: d.seq, reason: (e as Error).message });
          },
        );
      }
    }, (e: unknown) => {
      for (const { d } of batch) {
        this.order.done();
        this.o.log.warn("mls.session.not_acked", { seq: d.seq, reason: (e as Error).message });
      }
    });
    return rest;
  }

  /**
   * A delivery whose labels cannot be valid (ds-transport.ts mlsQueuedOf): one `refused` event
   * naming only well-formed labels (the conversation when it is one I may be in, else the lobby;
   * the sender when it is a username, else "the relay"), then acked like any refused message
   * (PROTOCOL.md §11.2: it will never become valid).
   */
  private refuseMalformed(m: MalformedMls): void {
    const me = this.o.identity.username;
    const conv = m.conversationId === undefined ? undefined : parseConversationId(m.conversationId);
    const conversationId = conv === undefined || (conv.kind === "dm" && !conv.members.includes(me)) ? "lobby" : conv.id;
    this.o.emit({ type: "refused", conversationId, from: m.sender ?? "the relay" });
    this.o.handled?.(false);
    this.ackSoon(m.seq);
  }

  /** Acks a seq with the others resolved in the same turn (one Ack frame for a batch). */
  private ackSoon(seq: number): void {
    this.acks.push(seq);
    if (this.acks.length > 1) return;
    queueMicrotask(() => {
      const seqs = this.acks.splice(0);
      for (let i = 0; i < seqs.length; i += ACK_MAX) this.o.ack(seqs.slice(i, i + ACK_MAX));
    });
  }

  /** My messages kept pending from before a restart (outbox-store.ts), oldest first: shown pending, not failed, at start. */
  pendingMessages(): ChatMessage[] {
    return (this.o.outbox?.all().rows ?? []).map((r) => ({
      id: r.id, conversationId: r.conversationId, from: this.o.identity.username, kind: r.kind, text: r.text,
      sentAtMs: r.atMs, receivedAtMs: r.atMs, own: true, state: "pending" as const,
    }));
  }

  /** A SendResult: true when it answered one of the engine's SendMls. */
  onSendResult(r: SendResult): boolean {
    return this.ds.onSendResult(r);
  }

  /** The relay's count of my one-time KeyPackages, when it says so unasked. */
  keyPackageStatus(oneTimeLeft: number): void {
    this.engine.keyPackageStatus(oneTimeLeft).catch((e: unknown) => this.o.log.warn("mls.session.top_up_failed", { reason: (e as Error).message }));
  }

  ended(): void {
    this.ds.sessionEnded();
  }

  async close(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    this.order.close();
    this.ds.sessionEnded();
    this.engine.stopping(); // a commit resending after a lost answer gives up: idle() then resolves
    await this.engine.idle();
    this.engine.close();
    this.o.store.close();
  }
}
