// Application messages in the protocol v2 engine (PROTOCOL.md §8.1, §11, §12), once receive.ts
// has found them of the group's epoch: processed by MLS, the MLS sender checked against the
// relay's (and the sender device against its user's list), opened by the content layer and
// shown (the message once, a read marker from my other devices, my messages found lost, a fork
// seen through a DM); one that does not open in my epoch may be a split by the relay (shown once).
import { isMlsProtocolError, type MlsGroup } from "../../protocol/mls/index.js";
import type { ChatMessage, MessageKind } from "../types.js";
import type { ContentLayer } from "./content-api.js";
import type { MlsQueued } from "./ds-api.js";
import { readFraming } from "./framing.js";
import { hex, sentence, type EngineState } from "./engine-state.js";
import { SenderDevices } from "./sender-device.js";

/**
 * How many processed MLS message ids are remembered to drop redeliveries silently (receive.ts);
 * the forks and splits shown here are remembered as many.
 */
export const PROCESSED_IDS_KEPT = 4_096;

export class ApplicationMessages {
  /** "conversation epoch" where a possible split was shown (once each; bounded like processed). */
  private readonly splitShown = new Set<string>();
  /** "conversation epoch" where a fork shown by a DM peer's epoch view was shown (once each; bounded like processed). */
  private readonly forkShown = new Set<string>();
  /** Which device of its user sent an application message (§4.5, §11). */
  private readonly senders: SenderDevices;

  constructor(private readonly s: EngineState) {
    this.senders = new SenderDevices(s);
  }

  async onApplication(conv: string, g: MlsGroup, q: MlsQueued): Promise<void> {
    const relaySender = q.item.sender;
    let inc: Awaited<ReturnType<MlsGroup["process"]>>;
    try {
      inc = await g.process(q.item.mls);
    } catch (e) {
      const joined = this.s.joinedAt.get(conv);
      if (isMlsProtocolError(e) && e.code === "epoch-expired" && joined !== undefined && BigInt(readFraming(q.item.mls).epoch) < joined) {
        // Sent before I was in the group (the relay queued it as I joined): never meant for me,
        // not a forgery; no warning (a loss of something that was for me shows as a chain gap, §11).
        this.s.d.logger.info("mls.message.before_join", { conversation: conv, sender: relaySender });
        return;
      }
      this.s.d.logger.warn("mls.message.refused", { conversation: conv, sender: relaySender, code: isMlsProtocolError(e) ? e.code : "other", error: (e as Error).message });
      this.s.d.emit({ type: "refused", conversationId: conv, from: relaySender });
      this.maybeSplit(conv, g, q.item.mls, relaySender, e);
      return;
    }
    if (inc.kind !== "application") {
      this.s.reload(conv);
      this.s.d.emit({ type: "refused", conversationId: conv, from: relaySender });
      return;
    }
    const from = inc.sender.username;
    if (from !== relaySender) {
      // §8.1: the relay authenticates who sent by the session; a disagreement is a forgery or a relay lie.
      this.s.changed(conv); // the message key was used: it must not stay on disk (saved before the ack)
      this.s.d.logger.warn("mls.message.sender_mismatch", { conversation: conv, relay: relaySender, mls: from });
      this.s.d.emit({ type: "refused", conversationId: conv, from: relaySender });
      return;
    }
    // §4.5, §11: the relay's sender device must be the leaf's device; a leaf of my own user is
    // another device of mine only when my verified list names it (not this one: MLS refused
    // that as a reflection).
    const device = await this.senders.check(inc.sender, q.item.senderDevice);
    if (!device.ok) {
      this.s.changed(conv);
      this.s.d.logger.warn("mls.message.device_refused", { conversation: conv, sender: from, relayDevice: q.item.senderDevice, why: device.why });
      this.s.d.emit({ type: "refused", conversationId: conv, from });
      return;
    }
    // §4.5: the version of its user's device list the sending device holds (list-claims.ts).
    void this.s.listClaims?.heard(from, inc.authenticatedData, conv);
    // The content layer's rows and the history's (the "message" event) in one transaction of the
    // state db when the layer offers it: a crash cannot keep the id seen (a redelivery then
    // flagged duplicate, not shown) without the message kept; and one commit a message, not two.
    const content = this.s.d.content;
    content.thisDevice?.(this.s.mustClient().signaturePublicKey);
    const atomically = <T>(fn: () => T): T => (content.runAtomically === undefined ? fn() : content.runAtomically(fn));
    try {
      atomically(() => this.show(conv, from, q, content.open(conv, g.groupId, from, inc.plaintext, inc.sender.signatureKey), device.name));
    } catch (e) {
      this.s.changed(conv);
      this.s.d.logger.warn("mls.message.content_refused", { conversation: conv, sender: from, error: (e as Error).message });
      this.s.d.emit({ type: "refused", conversationId: conv, from });
      return;
    }
    if (inc.epoch === g.epoch) this.s.heard(conv, g, from);
    this.s.changed(conv); // saved once for the batch, before its acks (EngineState.settle)
  }

  /** Emits what an opened message shows: a fork seen through a DM, the message (once), my messages found lost. */
  private show(conv: string, from: string, q: MlsQueued, opened: ReturnType<ContentLayer["open"]>, deviceName?: string): void {
    const c = opened.content;
    const own = from === this.s.d.me;
    if (c.kind === "read") {
      // §11.3: a read marker is used only from my own other devices; anyone else's is ignored (never shown).
      if (!own || c.read === undefined) {
        this.s.d.logger.debug("mls.read.ignored", { conversation: conv, sender: from });
        return;
      }
      this.s.d.emit({ type: "read", conversationId: conv, from: c.read.from, id: hex(c.read.messageId) });
      return;
    }
    for (const f of c.forked ?? []) {
      // §12: a member of the room, through our DM, has other secrets for the same epoch of it.
      const key = `${f.conversationId} ${f.epoch}`;
      if (this.forkShown.has(key)) continue;
      this.forkShown.add(key);
      if (this.forkShown.size > PROCESSED_IDS_KEPT) this.forkShown.delete(this.forkShown.values().next().value!);
      this.s.d.logger.warn("mls.epoch.forked", { conversation: f.conversationId, epoch: f.epoch, via: conv, peer: from });
      this.s.notice("warn", `${f.conversationId} was split by the relay: ${from}'s epoch ${f.epoch} of it differs from yours (seen through your direct conversation), so some members no longer read the others; the room's creator should re-create it`, f.conversationId);
    }
    if (!c.duplicate) {
      // My own message sent from another device: shown as mine (accepted: the relay delivered it), with that device's name.
      const message: ChatMessage = {
        id: hex(c.messageId), conversationId: conv, from, kind: c.kind as MessageKind, text: c.text,
        sentAtMs: c.sentAtMs, receivedAtMs: this.s.d.clock(), own, gap: c.gap,
        ...(own ? { state: "accepted" as const, ...(deviceName === undefined ? {} : { device: deviceName }) } : {}),
        ...(q.relayTimeMs > 0 ? { relayAtMs: q.relayTimeMs } : {}),
      };
      this.s.d.emit({ type: "message", message });
    }
    for (const id of opened.own.lost) {
      // §11: the relay accepted it, but the others' acknowledgements show it never reached them.
      this.s.d.emit({ type: "message-state", conversationId: conv, id, state: "failed", failure: "the relay accepted it but the others never received it", error: sentence("the relay accepted it but the others never received it") });
    }
  }

  /**
   * §12 forked epoch: a message of my current epoch, from a member of it, that does not open was
   * made with other secrets of the "same" epoch: the relay gave two halves two different commits
   * (or altered the message). Shown once per conversation and epoch.
   */
  private maybeSplit(conv: string, g: MlsGroup, mls: Uint8Array, relaySender: string, e: unknown): void {
    if (!isMlsProtocolError(e, "decrypt-failed") || relaySender === this.s.d.me) return;
    let epoch: number;
    try {
      epoch = readFraming(mls).epoch;
    } catch {
      return;
    }
    if (BigInt(epoch) !== g.epoch || !g.members().some((m) => m.username === relaySender)) return;
    const key = `${conv} ${epoch}`;
    if (this.splitShown.has(key)) return;
    this.splitShown.add(key);
    if (this.splitShown.size > PROCESSED_IDS_KEPT) this.splitShown.delete(this.splitShown.values().next().value as string);
    this.s.d.logger.warn("mls.epoch.split", { conversation: conv, epoch, sender: relaySender });
    this.s.notice("warn", `${conv} may have been split by the relay: a message from ${relaySender} in this epoch does not open (if it goes on, the room's creator can re-create it)`, conv);
  }
}
