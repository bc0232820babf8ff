// What arrives: delivery batches are opened one at a time, in order (PROTOCOL.md Appendix A.3), each
// envelope shown, held (signed by a pending new key, §6) or refused, then acked. Held envelopes
// are released here when the user accepts the new key. After a Welcome, the queued deliveries
// are counted for the "caught-up" line.
import { Envelope as WireEnvelope, type Delivery } from "../gen/securechat/v1/chat.js";
import { envelopeFromWire, envelopeToWire } from "../protocol/codec.js";
import { chainHasGap, openEnvelope, type SenderKeyLookup } from "../protocol/envelope.js";
import { isProtocolError } from "../protocol/errors.js";
import type { PrivateIdentity } from "../protocol/keys.js";
import { shapeLimitsOf, type Limits } from "../protocol/limits.js";
import type { Logger } from "../protocol/log.js";
import { isValidUsername, parseConversationId } from "../protocol/names.js";
import { sanitizeLine } from "../protocol/sanitize.js";
import type { KeyDirectory } from "./key-directory.js";
import type { ClientStateStore } from "./state-store.js";
import type { TrustStore } from "./trust-store.js";
import { v1RefusalBeforeOpening, v1RefusalOfKind, type V1AfterUpgrade, type V1Refusal } from "./v1-after-upgrade.js";
import { dmIdFor, type ChatMessage, type MessageKind, type SessionEvent } from "./types.js";

/** After a welcome, the caught-up count is given once deliveries have been quiet this long. */
const CATCH_UP_QUIET_MS = 5_000;

export type OpenOutcome = "shown" | "held" | "replay" | "dropped";

export interface InboxOptions {
  readonly identity: PrivateIdentity;
  readonly trust: TrustStore;
  readonly state: ClientStateStore;
  readonly directory: KeyDirectory;
  readonly log: Logger;
  readonly clock: () => number;
  readonly limits: () => Limits;
  /** The members of a room I am in, as this client knows them. */
  readonly roomMembers: (room: string) => readonly string[];
  /** Acks delivered seqs on the current session; rejects when the stream is gone. */
  readonly ack: (seqs: number[]) => Promise<void> | undefined;
  /** A message was shown (the away reply answers it). */
  readonly shown: (conversationId: string, sender: string, kind: MessageKind) => void;
  readonly emit: (event: SessionEvent) => void;
  /**
   * Protocol v2 (absent in v1): which v1 envelopes may still speak (PROTOCOL.md §14,
   * v1-after-upgrade.ts). Only those sent before this client's upgrade, never into a room whose
   * MLS group it holds, and never a topic; the others are refused.
   */
  readonly v2?: V1AfterUpgrade;
}

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString("hex");
}

export class Inbox {
  private readonly me: string;
  /** Senders whose keys were re-fetched this session because an envelope named an unknown key. */
  private readonly refreshedSenders = new Set<string>();
  /** Delivery batches are opened one at a time, in the order they came. */
  private deliveryChain: Promise<void> = Promise.resolve();
  /** Counting the queued deliveries after a welcome, for the "caught-up" event. */
  private catchUp: { remaining: number; shown: number; reconnect: boolean; timer?: NodeJS.Timeout } | undefined;
  private welcomedBefore = false;

  constructor(private readonly o: InboxOptions) {
    this.me = o.identity.username;
  }

  /** A Welcome announced `queued` deliveries: count them until the last is opened. */
  welcome(queued: number): void {
    this.refreshedSenders.clear();
    this.catchUp = { remaining: queued, shown: 0, reconnect: this.welcomedBefore };
    this.welcomedBefore = true;
    this.settleCatchUp();
  }

  /**
   * A delivery handled elsewhere (protocol v2: the MLS engine, src/client/mls/session.ts) counts
   * toward the caught-up line like an envelope; `shown`: it showed a message.
   */
  countDelivered(shown: boolean): void {
    if (this.catchUp === undefined) return;
    this.catchUp.remaining--;
    if (shown) this.catchUp.shown++;
    this.settleCatchUp();
  }

  /** The session ended: no caught-up line for it. */
  sessionEnded(): void {
    clearTimeout(this.catchUp?.timer);
    this.catchUp = undefined;
  }

  /**
   * A delivery frame. Batches are processed one at a time, in order, on their own chain: opening
   * one may wait for a sender's keys (a LookupKeys answer), which the frame loop must stay free
   * to read. The relay's window of unacked deliveries bounds how many can queue up here.
   */
  deliver(items: Delivery[]): void {
    this.deliveryChain = this.deliveryChain.then(() => this.onDeliveries(items)).catch((e: unknown) => {
      this.o.log.error("deliver.failed", { reason: e instanceof Error ? e.message : String(e) });
    });
  }

  private async onDeliveries(items: Delivery[]): Promise<void> {
    const acks: number[] = [];
    for (const item of items) {
      // An envelope a v2 client refuses whoever signed it costs no key lookup.
      if (this.refusalBeforeOpening(item.conversationId, item.envelope?.header) === undefined) await this.prepareSender(item.envelope);
      const outcome = this.processDelivery(item.conversationId, item.envelope, false, item.relayTimeMs);
      acks.push(item.seq);
      if (this.catchUp !== undefined) {
        this.catchUp.remaining--;
        if (outcome === "shown") this.catchUp.shown++;
        this.settleCatchUp();
      }
    }
    if (acks.length === 0) return;
    try {
      await this.o.ack(acks);
    } catch (e) {
      // The stream is gone: the relay keeps unacked envelopes and delivers them again at the next
      // session (at least once, §8.4); the seen ids make the copies replays, shown once.
      this.o.log.info("ack.lost", { seqs: acks.length, reason: e instanceof Error ? e.message : String(e) });
    }
  }

  /**
   * Before opening: fetch the sender's keys when none are pinned, or when the envelope names a
   * signing key that is neither the pinned one nor a known pending change (a key change the
   * directory has not shown us, e.g. from a user who is offline now). At most once per sender
   * per session, so forged envelopes cannot make the client look keys up without end.
   */
  private async prepareSender(wire: WireEnvelope | undefined): Promise<void> {
    const h = wire?.header;
    if (h === undefined || !isValidUsername(h.sender) || h.sender === this.me) return;
    const pin = this.o.trust.get(h.sender);
    if (pin !== undefined && (pin.identity.sigFpr.equals(h.senderSigFpr) || pin.pending?.sigFpr.equals(h.senderSigFpr) === true)) return;
    if (pin !== undefined && this.refreshedSenders.has(h.sender)) return;
    this.refreshedSenders.add(h.sender);
    try {
      await this.o.directory.ensure([h.sender], true);
    } catch (e) {
      // Opening goes on without the keys: the envelope is then refused (or held) and logged there.
      this.o.log.warn("keys.sender-fetch-failed", { from: h.sender, reason: e instanceof Error ? e.message : String(e) });
    }
  }

  private senderKey = (username: string): SenderKeyLookup => {
    const pin = this.o.trust.get(username);
    return pin ? { kind: "pinned", sigKey: pin.identity.sigKey, sigFpr: pin.identity.sigFpr } : { kind: "unknown" };
  };

  /** Opens one delivered envelope; every outcome is handled here (shown, held or refused). */
  private processDelivery(deliveredInto: string, wire: WireEnvelope | undefined, fromHold = false, relayTimeMs = 0): OpenOutcome {
    let envelope;
    try {
      envelope = envelopeFromWire(wire);
    } catch {
      this.o.log.warn("envelope.refused", { code: "malformed", into: sanitizeLine(deliveredInto).slice(0, 80) });
      if (fromHold) return "dropped";
      this.o.emit({ type: "refused", conversationId: this.displayConversation(deliveredInto, undefined), from: "unknown sender" });
      return "dropped";
    }
    const sender = isValidUsername(envelope.header.sender) ? envelope.header.sender : "unknown sender";
    const early = this.refusalBeforeOpening(deliveredInto, envelope.header);
    if (early !== undefined) return this.refuseAfterUpgrade(early, deliveredInto, sender, fromHold);
    const limits = this.o.limits();
    try {
      const opened = openEnvelope(envelope, {
        me: this.o.identity,
        deliveredInto,
        nowMs: this.o.clock(),
        maxAgeMs: limits.retentionMs,
        senderKey: this.senderKey,
        seen: (id, sender) => this.o.state.hasSeen(id, sender),
        limits: shapeLimitsOf(limits),
      });
      const h = opened.header;
      // Checked before anything of it is recorded: refused, it leaves no trace but the log line.
      const late = this.o.v2 === undefined ? undefined : v1RefusalOfKind(opened.body.kind);
      if (late !== undefined) return this.refuseAfterUpgrade(late, deliveredInto, sender, fromHold);
      // Open step 9: record the id and the chain; flag a gap.
      const gap = chainHasGap(opened.conversation, h.prev, this.o.state.lastHash(h.conversationId, h.sender));
      this.o.state.recordOpened(h.messageId, h.sentAtMs, h.conversationId, h.sender, opened.hash);
      let message: ChatMessage = {
        id: hex(h.messageId),
        conversationId: h.conversationId,
        from: h.sender,
        kind: opened.body.kind,
        text: opened.body.text,
        sentAtMs: h.sentAtMs,
        receivedAtMs: this.o.clock(),
        ...(Number.isSafeInteger(relayTimeMs) && relayTimeMs > 0 ? { relayAtMs: relayTimeMs } : {}),
        own: false,
        ...(gap ? { gap: true } : {}),
      };
      if (gap) this.o.log.warn("envelope.gap", { conversation: h.conversationId, from: h.sender });
      // A room message may leave members out (§13): say who, so nobody assumes they read it.
      if (opened.conversation.kind === "room") {
        const named = new Set(h.recipients.map((r) => r.username));
        const notFor = this.o.roomMembers(opened.conversation.room).filter((m) => !named.has(m));
        if (notFor.length > 0) message = { ...message, notFor };
      }
      this.o.emit({ type: "message", message });
      this.o.shown(h.conversationId, h.sender, opened.body.kind);
      return "shown";
    } catch (e) {
      const code = isProtocolError(e) ? e.code : "internal";
      if (code === "replay") {
        // At-least-once delivery: a redelivered envelope we already showed. Nothing to show.
        this.o.log.debug("envelope.duplicate", { from: sender });
        return "replay";
      }
      if (code === "key-changed" && !fromHold) {
        const pin = this.o.trust.get(sender);
        if (pin?.pending && pin.pending.sigFpr.equals(envelope.header.senderSigFpr)) {
          this.o.state.hold(sender, deliveredInto, Buffer.from(WireEnvelope.encode(envelopeToWire(envelope)).finish()), this.o.clock(), relayTimeMs);
          this.o.log.warn("envelope.held", { from: sender });
          this.o.emit({ type: "key-change", username: sender, conversationId: this.displayConversation(deliveredInto, sender), held: this.o.state.heldCount(sender) });
          return "held";
        }
      }
      this.o.log.warn("envelope.refused", { code, from: sender, held: fromHold, reason: e instanceof Error ? e.message : String(e) });
      // Released held envelopes that fail are counted in one sentence by releaseHeld.
      if (!fromHold) this.o.emit({ type: "refused", conversationId: this.displayConversation(deliveredInto, sender), from: sender });
      return "dropped";
    }
  }

  /** Protocol v2: why a v1 envelope is refused before it is opened (its header unverified: refusing is safe), if it is. */
  private refusalBeforeOpening(deliveredInto: string, header: { readonly conversationId: string; readonly sentAtMs: number } | undefined): V1Refusal | undefined {
    if (this.o.v2 === undefined || header === undefined) return undefined;
    return v1RefusalBeforeOpening(this.o.v2, deliveredInto, header);
  }

  /** A v1 envelope a v2 client does not show (PROTOCOL.md §14): logged, a "refused" line, acked by the caller. */
  private refuseAfterUpgrade(code: V1Refusal, deliveredInto: string, sender: string, fromHold: boolean): OpenOutcome {
    this.o.log.warn("envelope.refused", { code, from: sender, into: sanitizeLine(deliveredInto).slice(0, 80), held: fromHold });
    if (!fromHold) this.o.emit({ type: "refused", conversationId: this.displayConversation(deliveredInto, sender), from: sender });
    return "dropped";
  }

  /**
   * After a key change was accepted: the peer's chains start again (a new key is usually a new
   * device, whose chains start from zeros: not a gap, §6), and the held envelopes are opened in
   * the order they were sent. Returns how many were shown and how many discarded.
   */
  releaseHeld(username: string): { readonly shown: number; readonly discarded: number } {
    this.o.state.forgetChains(username);
    const held = this.o.state.heldFor(username).map((h) => {
      let wire: WireEnvelope | undefined;
      try {
        wire = WireEnvelope.decode(h.envelope);
      } catch {
        wire = undefined;
      }
      return { h, wire, sentAtMs: Number(wire?.header?.sentAtMs ?? 0) };
    });
    held.sort((a, b) => a.sentAtMs - b.sentAtMs || a.h.rowId - b.h.rowId);
    let shown = 0;
    let discarded = 0;
    for (const { h, wire } of held) {
      this.o.state.releaseHeld(h.rowId);
      const outcome = this.processDelivery(h.deliveredInto, wire, true, h.relayTimeMs);
      if (outcome === "shown") shown++;
      else if (outcome !== "replay") discarded++; // a replay is a redelivered copy of one shown
    }
    if (discarded > 0) this.o.log.warn("held.discarded", { from: username, count: discarded });
    return { shown, discarded };
  }

  /** Once the deliveries the welcome announced are all opened: one "caught-up" event. */
  private settleCatchUp(force = false): void {
    const c = this.catchUp;
    if (c === undefined) return;
    clearTimeout(c.timer);
    if (c.remaining > 0 && !force) {
      // The count is the relay's queue depth at the welcome: should fewer come (one expired in
      // between), the line still comes once deliveries have been quiet for a while.
      c.timer = setTimeout(() => this.settleCatchUp(true), CATCH_UP_QUIET_MS);
      c.timer.unref();
      return;
    }
    this.catchUp = undefined;
    this.o.emit({ type: "caught-up", count: c.shown, reconnect: c.reconnect });
  }

  /** Where to show a line about an envelope: its conversation if valid and mine, else the lobby. */
  private displayConversation(deliveredInto: string, sender: string | undefined): string {
    const conv = parseConversationId(deliveredInto);
    if (conv === undefined) return sender && sender !== "unknown sender" && sender !== this.me ? dmIdFor(this.me, sender) : "lobby";
    if (conv.kind === "dm" && !conv.members.includes(this.me)) return "lobby";
    return conv.id;
  }
}
