// What I send: check, show at once as pending, seal to the recipients' pinned keys (PROTOCOL.md
// Appendix A.2), keep in the durable outbox, and write at the relay's pace (outbox-pump.ts, pacer.ts).
// The relay's answers settle each message (accepted, failed) or put it back in the queue ("too
// fast"); refused ones can be sent again (/retry) as new messages.
import { randomBytes } from "node:crypto";
import { Envelope as WireEnvelope, ErrorCode, SendStatus, type SendResult } from "../gen/securechat/v1/chat.js";
import { envelopeFromWire, envelopeToWire } from "../protocol/codec.js";
import { envelopeHash, MESSAGE_ID_BYTES, sealEnvelope, type MessageBody, type SealRecipient } from "../protocol/envelope.js";
import type { PrivateIdentity } from "../protocol/keys.js";
import { shapeLimitsOf, type Limits } from "../protocol/limits.js";
import type { Logger } from "../protocol/log.js";
import { isValidUsername, parseConversationId, type Conversation } from "../protocol/names.js";
import { sanitizeLine } from "../protocol/sanitize.js";
import type { AtRestCipher } from "./at-rest.js";
import { describeClientError, describeNotice, describeRefusal, refused, type ClientError } from "./errors.js";
import type { KeyDirectory } from "./key-directory.js";
import type { OutboxPump } from "./outbox-pump.js";
import type { ClientStateStore, OutboxEntry } from "./state-store.js";
import type { PinnedPeer, TrustStore } from "./trust-store.js";
import type { ChatMessage, MessageKind, NoticeAbout, Outcome, SessionEvent } from "./types.js";

export interface OutboxOptions {
  readonly identity: PrivateIdentity;
  readonly trust: TrustStore;
  readonly state: ClientStateStore;
  readonly directory: KeyDirectory;
  readonly atRest: AtRestCipher;
  readonly pump: OutboxPump;
  readonly log: Logger;
  readonly clock: () => number;
  readonly limits: () => Limits;
  /** True while a session is authenticated. */
  readonly connected: () => boolean;
  /** Whether I am in a room, and its members. */
  readonly inRoom: (room: string) => boolean;
  readonly roomMembers: (room: string) => readonly string[];
  /** A failed message was sent again: the kept copy of the failed one is dropped. */
  readonly forget: (id: string) => void;
  readonly emit: (event: SessionEvent) => void;
}

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString("hex");
}

/** A message that cannot be sealed (a recipient's keys, too many recipients): it fails with this. */
class LocalFailure extends Error {
  constructor(readonly error: ClientError) {
    super(describeClientError(error));
  }
}

export class Outbox {
  private readonly me: string;
  /** Seals run one at a time, in the order send() was called (each needs the previous chain head). */
  private sendChain: Promise<void> = Promise.resolve();
  /** Refused messages by id, so the user can retry them. */
  private readonly failed = new Map<string, { conversationId: string; text: string; kind: MessageKind }>();

  constructor(private readonly o: OutboxOptions) {
    this.me = o.identity.username;
  }

  /** Resolves once every message sent so far is sealed into the outbox (or failed). */
  async drain(): Promise<void> {
    try {
      await this.sendChain;
    } catch (e) {
      // sealAndQueue turns every failure into a "failed" state; anything here is a bug, and the
      // session closes anyway (what was sealed is in the outbox).
      this.o.log.error("send.chain-failed", { reason: e instanceof Error ? e.message : String(e) });
    }
  }

  /** A failed message shown again at start (from the history) can be retried. */
  rememberFailed(m: ChatMessage): void {
    this.failed.set(m.id, { conversationId: m.conversationId, text: m.text, kind: m.kind });
  }

  send(conversationId: string, text: string, kind: MessageKind = "text"): Outcome<{ id: string }> {
    const conv = parseConversationId(conversationId);
    if (conv === undefined) return { ok: false, error: { kind: "unknown-conversation", conversationId: sanitizeLine(conversationId).slice(0, 40) } };
    const normalized = text.replace(/\r\n?/g, "\n");
    if (normalized.trim().length === 0) return { ok: false, error: { kind: "empty-message" } };
    if (!normalized.isWellFormed()) return { ok: false, error: { kind: "invalid-characters" } };
    const bytes = Buffer.byteLength(normalized, "utf8");
    const maxTextBytes = this.o.limits().maxTextBytes;
    if (bytes > maxTextBytes) {
      return { ok: false, error: { kind: "too-large", bytes, max: maxTextBytes } };
    }
    const early = this.checkAddressable(conv);
    if (!early.ok) return early;
    if (kind === "topic" && conv.kind !== "room") return { ok: false, error: { kind: "topic-outside-room" } };
    if (kind === "away" && conv.kind !== "dm") return { ok: false, error: { kind: "away-outside-dm" } };
    // The id is fixed now, so the pending line and the sealed envelope are the same message.
    const messageId = randomBytes(MESSAGE_ID_BYTES);
    const id = hex(messageId);
    const now = this.o.clock();
    this.o.emit({
      type: "message",
      message: { id, conversationId: conv.id, from: this.me, kind, text: normalized, sentAtMs: now, receivedAtMs: now, own: true, state: "pending" },
    });
    const body: MessageBody = { kind, text: normalized };
    // One event-loop turn between seals: a burst of sends (a paste, a script) must not starve
    // the stream's keepalive answers and incoming frames while it is sealed.
    this.sendChain = this.sendChain.then(() => new Promise<void>((resolve) => setImmediate(resolve))).then(() => this.sealAndQueue(conv, body, messageId, now));
    return { ok: true, value: { id } };
  }

  /** Sends a failed message's text again, as a new message (new id, current keys and chain). */
  retry(conversationId: string, id: string): Outcome<{ id: string }> {
    const failed = this.failed.get(id);
    if (failed === undefined || failed.conversationId !== conversationId) return { ok: false, error: { kind: "not-failed" } };
    const outcome = this.send(conversationId, failed.text, failed.kind);
    if (outcome.ok) {
      this.failed.delete(id);
      // The new message carries the text from now on; the failed one is not kept to be retried again.
      this.o.forget(id);
    }
    return outcome;
  }

  /** What send() can refuse at once, without the relay. */
  private checkAddressable(conv: Conversation): Outcome {
    switch (conv.kind) {
      case "dm": {
        if (!conv.members.includes(this.me)) return { ok: false, error: { kind: "not-your-conversation" } };
        const peer = conv.members[0] === this.me ? conv.members[1] : conv.members[0];
        if (this.o.trust.get(peer)?.pending) return { ok: false, error: { kind: "key-changed", username: peer } };
        return { ok: true, value: undefined };
      }
      case "room":
        if (!this.o.inRoom(conv.room)) return { ok: false, error: { kind: "not-a-member", room: conv.room, action: "send" } };
        return { ok: true, value: undefined };
      case "lobby":
        return { ok: true, value: undefined };
      default: {
        const never: never = conv;
        return never;
      }
    }
  }

  /**
   * The second half of send(), one message at a time in send order: fetch missing keys, seal,
   * store in the outbox (it survives a crash), then write if connected. A failure becomes the
   * message's "failed" state with a sentence, and the message can be retried.
   */
  private async sealAndQueue(conv: Conversation, body: MessageBody, messageId: Buffer, now: number): Promise<void> {
    const id = hex(messageId);
    try {
      const names = this.recipientNames(conv);
      // The lobby reaches whom we can reach now: while disconnected it is sealed to the known
      // online users (it must not wait unsealed: quitting would lose it).
      if (conv.kind !== "lobby" || this.o.connected()) await this.o.directory.ensure(names);
      const recipients = this.recipientsFor(conv);
      if (!recipients.ok) throw new LocalFailure(recipients.error);
      const limits = this.o.limits();
      if (recipients.value.list.length + 1 > limits.maxRecipients) {
        throw new LocalFailure({ kind: "too-many-recipients", count: recipients.value.list.length + 1, max: limits.maxRecipients });
      }
      const sealed = sealEnvelope({
        sender: this.o.identity,
        conversationId: conv.id,
        recipients: recipients.value.list,
        body,
        prev: this.o.state.ownHead(conv.id),
        sentAtMs: now,
        messageId,
        limits: shapeLimitsOf(limits),
      });
      const wire = envelopeToWire(sealed.envelope);
      this.o.state.addOutgoing(
        { id: messageId, conversationId: conv.id, envelope: Buffer.from(WireEnvelope.encode(wire).finish()), kind: body.kind,
          text: this.o.atRest.seal("outbox", conv.id, messageId, body.text), createdAtMs: now, sentAtMs: now },
        sealed.hash,
        this.me,
      );
      const warn = (about: NoticeAbout): void => this.o.emit({ type: "notice", level: "warn", conversationId: conv.id, text: describeNotice(about), about });
      if (conv.kind === "lobby" && recipients.value.list.length === 0 && recipients.value.skipped.length === 0) {
        warn({ kind: "nobody-online", connected: this.o.connected() });
      }
      if (recipients.value.skipped.length > 0) warn({ kind: "not-sent-to", usernames: recipients.value.skipped });
      // Written at the relay's pace after those before it; offline, it waits in the outbox and
      // the next Welcome sends it with the same id.
      if (this.o.connected()) this.o.pump.push(messageId);
    } catch (e) {
      const failure = sanitizeLine(e instanceof LocalFailure ? describeClientError(e.error) : e instanceof Error ? e.message : String(e)).slice(0, 300);
      this.failed.set(id, { conversationId: conv.id, text: body.text, kind: body.kind });
      this.o.log.info("send.failed-locally", { conversation: conv.kind, reason: failure });
      this.o.emit({ type: "message-state", conversationId: conv.id, id, state: "failed", failure, ...(e instanceof LocalFailure ? { error: e.error } : {}) });
    }
  }

  /** Who a message to this conversation goes to (besides me). */
  private recipientNames(conv: Conversation): string[] {
    switch (conv.kind) {
      case "dm":
        return conv.members.filter((m) => m !== this.me);
      case "room":
        return this.o.roomMembers(conv.room).filter((m) => m !== this.me);
      case "lobby":
        return this.o.directory.othersOnline();
      default: {
        const never: never = conv;
        return never;
      }
    }
  }

  /** The recipients' pinned keys; a pending key change blocks a DM and skips that member in rooms and the lobby. */
  private recipientsFor(conv: Conversation): Outcome<{ list: SealRecipient[]; skipped: string[] }> {
    const toRecipient = (pin: PinnedPeer): SealRecipient => ({ username: pin.identity.username, encKey: pin.identity.encKey, encFpr: pin.identity.encFpr });
    const list: SealRecipient[] = [];
    const skipped: string[] = [];
    for (const name of this.recipientNames(conv)) {
      const pin = this.o.trust.get(name);
      // A room goes on when one member's keys changed: sealed to the others, and that member
      // does not receive it until the user decides (the relay takes a subset of members, §13).
      if (conv.kind === "room" && pin?.pending) {
        skipped.push(name);
        continue;
      }
      if (conv.kind === "lobby") {
        if (pin === undefined) continue; // keys not known yet: cannot be reached
        if (pin.pending) skipped.push(name);
        else list.push(toRecipient(pin));
        continue;
      }
      if (pin === undefined) {
        if (this.o.directory.hasInvalidKeys(name)) return { ok: false, error: { kind: "invalid-keys", username: name } };
        return { ok: false, error: conv.kind === "dm" ? { kind: "unknown-user", username: name } : { kind: "keys-not-fetched", username: name, why: "try-again" } };
      }
      if (pin.pending) return { ok: false, error: { kind: "key-changed", username: name } };
      list.push(toRecipient(pin));
    }
    return { ok: true, value: { list, skipped: skipped.sort() } };
  }

  /** The relay answered a send: accepted, refused, or "too fast" (back into the queue). */
  onSendResult(r: SendResult): void {
    const id = hex(r.messageId);
    const entry = this.o.state.outboxGet(r.messageId);
    if (entry === undefined) return; // already settled (a duplicate answer after a resend)
    if (r.status === SendStatus.SEND_STATUS_REFUSED && r.code === ErrorCode.ERROR_CODE_RATE_LIMITED) {
      // Not a failure: the relay will take it a moment later. It stays pending in the outbox and
      // goes back to its place in the queue (outbox-pump.ts).
      const pauseMs = this.o.pump.tooFast(r.messageId);
      this.o.log.info("send.too-fast", { conversation: entry.conversationId, pauseMs });
      return;
    }
    this.o.pump.settled(r.messageId, r.status === SendStatus.SEND_STATUS_ACCEPTED);
    this.o.state.outboxRemove(r.messageId);
    if (r.status === SendStatus.SEND_STATUS_ACCEPTED) {
      const queuedFor = r.queuedFor.filter(isValidUsername);
      this.o.emit({ type: "message-state", conversationId: entry.conversationId, id, state: "accepted", ...(queuedFor.length ? { queuedFor } : {}) });
      return;
    }
    // Refused: roll my chain head back if this envelope was the head, so the next message does
    // not point at one nobody received. A stale recipient key means someone's keys changed on the
    // relay: fetch them, so the key change shows.
    try {
      const env = envelopeFromWire(WireEnvelope.decode(entry.envelope));
      if (this.o.state.ownHead(entry.conversationId).equals(envelopeHash(env))) this.o.state.setOwnHead(entry.conversationId, env.header.prev);
      if (r.code === ErrorCode.ERROR_CODE_STALE_RECIPIENT_KEY) {
        const names = env.header.recipients.map((x) => x.username);
        this.o.directory.ensure(names, true).catch((e: unknown) => {
          // The refusal is shown anyway; without the new keys the key change shows at the next lookup.
          this.o.log.warn("keys.refresh-failed", { users: names.length, reason: e instanceof Error ? e.message : String(e) });
        });
      }
    } catch {
      // Our own bytes always decode; nothing to roll back otherwise.
    }
    const failure = describeRefusal(r.code, r.detail);
    this.failed.set(id, { conversationId: entry.conversationId, text: this.outboxText(entry), kind: entry.kind });
    this.o.log.info("send.refused", { code: ErrorCode[r.code] ?? r.code, conversation: entry.conversationId });
    this.o.emit({ type: "message-state", conversationId: entry.conversationId, id, state: "failed", failure, error: refused(r.code, r.detail) });
  }

  /** An unsent message's text, opened from the outbox. */
  private outboxText(e: OutboxEntry): string {
    if (typeof e.text === "string") return e.text;
    try {
      return this.o.atRest.open("outbox", e.conversationId, e.id, e.text) ?? "[text unreadable: sealed under another key]";
    } catch {
      return "[text unreadable: the stored row is damaged]";
    }
  }

  /** Messages sealed but not yet accepted (e.g. from before a restart), oldest first. */
  pendingMessages(): ChatMessage[] {
    return this.o.state.outbox().map((e) => ({
      id: hex(e.id), conversationId: e.conversationId, from: this.me, kind: e.kind, text: this.outboxText(e),
      sentAtMs: e.sentAtMs, receivedAtMs: e.createdAtMs, own: true, state: "pending" as const,
    }));
  }
}
