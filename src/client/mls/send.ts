// Sending in the protocol v2 engine (PROTOCOL.md §7.2, §10 update policy): the pending
// message is shown at once and waits in the conversation's outbox until its group is ready (a
// DM's group is made on first send; when the peer made one first, its Welcome is awaited), an
// update is committed first when the content layer says so, then each message is encrypted,
// saved and sent; a send that lost the connection goes again as the same bytes. Each pending
// message is kept in the state db (outbox-store.ts) until the relay accepts it or it fails for
// good: after a restart it is sent again, in order, with the same id and, for the same group,
// the same application data (a copy the relay had accepted is a duplicate at the reader, §11).
import { parseConversationId, type Conversation } from "../../protocol/names.js";
import type { MlsGroup } from "../../protocol/mls/index.js";
import type { MessageKind, Outcome } from "../types.js";
import type { SealedContent } from "./content-api.js";
import type { DsApi } from "./ds-api.js";
import { fail, hex, isTransient, ok, refusedError, sentence, TRANSIENT, type EngineState, type Outgoing } from "./engine-state.js";
import { randomBytes } from "node:crypto";
import type { Committer } from "./commit.js";
import { claimDevices } from "./devices.js";
import { ErrorCode } from "../../gen/securechat/v1/chat.js";

/**
 * How long a message waits after the relay said "too fast" (its bucket, or its clock, disagrees
 * with my pace) before it is sent again: it is never shown failed for that (as v1 did, PROTOCOL.md §8.4).
 */
export const RATE_RETRY_MS = 500;
/**
 * §11.3: at most one read marker per conversation this often: reading a busy room costs my other
 * devices' and every member's client one small message every few seconds, never one per message.
 */
export const READ_MARKER_MIN_MS = 5_000;

/** Read markers of one conversation: the last one sent, and the newest read waiting for its turn. */
interface ReadMarkers {
  lastAtMs: number;
  lastId: string | undefined;
  want: { readonly from: string; readonly id: string } | undefined;
  timer: NodeJS.Timeout | undefined;
}

export class Sender {
  /** Conversations waiting RATE_RETRY_MS after a "too fast" before their outbox is sent again. */
  private readonly slowed = new Set<string>();
  /** §11.3 read markers per conversation (memory only: a lost one only leaves a count until the next). */
  private readonly reads = new Map<string, ReadMarkers>();
  /**
   * Per conversation, the group and epoch where my update lost its race (EPOCH_TAKEN): the next
   * update waits until the winner's commit has come from my queue and moved the group on (§8.1),
   * so my group is never two epochs past what my queue has delivered (commit.ts winnerFromQueue).
   */
  private readonly updateLost = new Map<string, { readonly group: MlsGroup; readonly epoch: bigint }>();

  constructor(private readonly s: EngineState, private readonly c: Committer) {
    this.restore();
  }

  /**
   * The messages kept pending before a restart go back into the outboxes, before anything sent
   * in this run (the engine flushes them once started: conversations.ts start()).
   */
  private restore(): void {
    const store = this.s.d.outbox;
    if (store === undefined) return;
    const { rows, unreadable } = store.all();
    if (unreadable > 0) this.s.d.logger.warn("mls.outbox.unreadable", { rows: unreadable });
    for (const r of rows) {
      let list = this.s.outbox.get(r.conversationId);
      if (list === undefined) this.s.outbox.set(r.conversationId, (list = []));
      list.push(r.sealed === undefined
        ? { id: r.id, kind: r.kind, text: r.text, atMs: r.atMs }
        : { id: r.id, kind: r.kind, text: r.text, atMs: r.atMs, sealed: { app: r.sealed.app, messageId: Buffer.from(r.id, "hex"), sentAtMs: r.atMs }, sealedFor: r.sealed.groupId });
    }
    if (rows.length > 0) this.s.d.logger.info("mls.outbox.restored", { messages: rows.length });
  }

  /**
   * Sends text to a conversation: the pending message is emitted at once, then `message-state`
   * accepted or failed. A DM's group is made on first send; a room must be joined first.
   */
  send(conversationId: string, text: string, kind: MessageKind = "text"): Outcome<{ readonly id: string }> {
    const conv = parseConversationId(conversationId);
    if (conv === undefined) return fail({ kind: "unknown-conversation", conversationId: String(conversationId) });
    if (typeof text !== "string" || text.trim() === "") return fail({ kind: "empty-message" });
    if (conv.kind === "dm" && !conv.members.includes(this.s.d.me)) return fail({ kind: "not-your-conversation" });
    if (conv.kind === "room" && !this.s.groups.has(conv.id)) return fail({ kind: "not-a-member", room: conv.id, action: "send" });
    if (kind === "topic" && conv.kind !== "room") return fail({ kind: "topic-outside-room" });
    if (kind === "away" && conv.kind !== "dm") return fail({ kind: "away-outside-dm" });
    const now = this.s.d.clock();
    const g = this.s.groups.get(conv.id);
    let out: Outgoing;
    try {
      if (g?.active === true && (this.s.outbox.get(conv.id)?.length ?? 0) === 0 && this.hasPeers(conv, g)) {
        if (this.s.client !== undefined) this.s.d.content.thisDevice?.(this.s.client.signaturePublicKey);
        const sealed = this.s.d.content.seal(conv.id, g.groupId, kind, text, now);
        out = { id: hex(sealed.messageId), kind, text, atMs: sealed.sentAtMs, sealed, sealedFor: hex(g.groupId) };
      } else {
        out = { id: randomBytes(16).toString("hex"), kind, text, atMs: now };
      }
      const store = this.s.d.outbox;
      if (store !== undefined) {
        // Kept before it is shown, so what is shown pending survives a crash (PROTOCOL.md §10).
        store.add(conv.id, out.id, kind, text, out.atMs);
        if (out.sealed !== undefined) store.setSealed(conv.id, out.id, kind, out.atMs, out.sealedFor!, out.sealed.app);
      }
    } catch (e) {
      return fail(sentence((e as Error).message));
    }
    this.s.d.emit({ type: "message", message: { id: out.id, conversationId: conv.id, from: this.s.d.me, kind, text, sentAtMs: out.atMs, receivedAtMs: now, own: true, state: "pending" } });
    let list = this.s.outbox.get(conv.id);
    if (list === undefined) this.s.outbox.set(conv.id, (list = []));
    list.push(out);
    void this.s.run(() => this.flush(conv.id)).catch((e: unknown) => this.s.d.logger.warn("mls.send.failed", { conversation: conv.id, error: (e as Error).message }));
    return ok({ id: out.id });
  }

  /** Sends what waits in a conversation's outbox, in order, once its group is ready. */
  async flush(convId: string): Promise<void> {
    const list = this.s.outbox.get(convId);
    if (list === undefined || list.length === 0) return;
    const conv = parseConversationId(convId)!;
    const ready = await this.ensureGroup(conv);
    this.s.d.logger.debug("mls.flush", { conversation: convId, waiting: list.length, ready: ready === "wait" ? "wait" : ready.ok ? "ok" : JSON.stringify(ready.error) });
    if (ready === "wait") {
      if (!this.s.waitingWelcome.has(convId)) this.s.waitingWelcome.set(convId, this.s.d.clock());
      return;
    }
    if (!ready.ok && isTransient(ready.error)) return;
    if (!ready.ok && ready.error.kind === "refused" && ready.error.code === ErrorCode.ERROR_CODE_RATE_LIMITED) {
      this.later(convId);
      return;
    }
    // Kept from before (a v1 outbox carried over, PROTOCOL.md §14; a group not restored): a
    // room's messages wait until I am in its group again (joinRoom, a Welcome), still pending.
    if (!ready.ok && conv.kind === "room" && !this.s.groups.has(convId)) return;
    if (!ready.ok) {
      for (const m of list.splice(0)) this.s.failed(convId, m.id, ready.error, m);
      return;
    }
    while (list.length > 0) {
      const g = this.s.groups.get(convId);
      if (g === undefined || !g.active) {
        for (const m of list.splice(0)) this.s.failed(convId, m.id, { kind: "not-a-member", room: convId, action: "send" });
        return;
      }
      if (this.updateDue(convId, g)) {
        const u = await this.c.commitChange(convId, (x) => x.selfUpdate(), { added: [], removed: [] }, undefined, () => false, { winnerFromQueue: true });
        if (!u.ok && u.error.kind === "refused" && u.error.code === ErrorCode.ERROR_CODE_EPOCH_TAKEN) {
          this.updateLost.set(convId, { group: g, epoch: g.epoch });
          this.s.d.logger.info("mls.update.lost", { conversation: convId, epoch: Number(g.epoch) });
        } else if (!u.ok) this.s.d.logger.warn("mls.update.failed", { conversation: convId, error: JSON.stringify(u.error) });
      }
      const m = list[0]!;
      const cur = this.s.groups.get(convId)!;
      if (m.pendingBytes !== undefined && m.pendingBytes.groupId === hex(cur.groupId)) {
        // Sent once without an answer: the same bytes again (the relay answers a duplicate accepted).
        const again = await this.s.d.ds.sendMls(m.pendingBytes.bytes);
        if (!again.ok && TRANSIENT.has(again.code)) return;
        if (!again.ok && again.code === "RATE_LIMITED") {
          this.later(convId);
          return;
        }
        list.shift();
        this.settled(convId, m, m.pendingBytes.sealed, again);
        continue;
      }
      let sealed = m.sealed;
      if (sealed === undefined || m.sealedFor !== hex(cur.groupId)) {
        try {
          // Sealed late (or again for a group that replaced the first): the message keeps the id it was shown with.
          sealed = this.s.d.content.seal(convId, cur.groupId, m.kind, m.text, m.atMs, Buffer.from(m.id, "hex"));
          this.s.d.outbox?.setSealed(convId, m.id, m.kind, m.atMs, hex(cur.groupId), sealed.app);
        } catch (e) {
          list.shift();
          this.s.failed(convId, m.id, sentence((e as Error).message));
          continue;
        }
      }
      const bytes = await cur.encrypt(sealed.app);
      this.s.d.store.saveGroup(cur);
      const r = await this.s.d.ds.sendMls(bytes);
      if (!r.ok && (TRANSIENT.has(r.code) || r.code === "RATE_LIMITED")) {
        m.pendingBytes = { bytes, sealed, groupId: hex(cur.groupId) };
        this.s.d.logger.info("mls.send.waiting", { conversation: convId, code: r.code });
        if (r.code === "RATE_LIMITED") this.later(convId);
        return;
      }
      list.shift();
      this.settled(convId, m, sealed, r);
    }
  }

  /** Whether an update is due before the next message (§10.3), unless one lost this epoch's race (updateLost). */
  private updateDue(convId: string, g: MlsGroup): boolean {
    const lost = this.updateLost.get(convId);
    if (lost !== undefined && lost.group === g && lost.epoch === g.epoch) return false;
    this.updateLost.delete(convId);
    return this.s.d.content.shouldUpdate(convId, this.s.d.clock());
  }

  /** The relay said "too fast": the conversation's outbox is sent again in RATE_RETRY_MS (once per wait). */
  private later(convId: string): void {
    if (this.slowed.has(convId) || this.s.closed) return;
    this.slowed.add(convId);
    this.s.d.logger.info("mls.send.too_fast", { conversation: convId, retryMs: RATE_RETRY_MS });
    setTimeout(() => {
      this.slowed.delete(convId);
      if (!this.s.closed) this.s.flushSoon(convId);
    }, RATE_RETRY_MS).unref();
  }

  settled(convId: string, m: Outgoing, sealed: SealedContent, r: Awaited<ReturnType<DsApi["sendMls"]>>): void {
    if (r.ok) {
      this.s.d.outbox?.remove(m.id);
      this.s.d.content.accepted(convId, sealed.messageId);
      this.s.d.emit({ type: "message-state", conversationId: convId, id: m.id, state: "accepted", queuedFor: r.queuedFor });
    } else {
      this.s.failed(convId, m.id, refusedError(r), m);
    }
  }

  /**
   * §11.3: the user read `conversationId` up to `message` (the newest shown from someone else).
   * A read marker goes to the group for my other devices, at most one per conversation every
   * READ_MARKER_MIN_MS (the newest read waits for its turn; earlier ones are dropped), never in
   * the lobby, never for my own message (my devices see it as mine and count it read), and none
   * while no other device of mine is in the group. Not kept: a marker lost to a crash or a
   * connection drop only leaves a count on the other device until the next.
   */
  markRead(conversationId: string, message: { readonly from: string; readonly id: string }): void {
    const conv = parseConversationId(conversationId);
    if (conv === undefined || conv.kind === "lobby" || this.s.closed) return;
    if (typeof message?.id !== "string" || !/^[0-9a-f]{32}$/.test(message.id) || typeof message.from !== "string" || message.from === this.s.d.me) return;
    if (this.s.d.content.sealRead === undefined || !this.otherDeviceIn(conv.id)) return;
    let r = this.reads.get(conv.id);
    if (r === undefined) this.reads.set(conv.id, (r = { lastAtMs: Number.NEGATIVE_INFINITY, lastId: undefined, want: undefined, timer: undefined }));
    if (r.lastId === message.id) return;
    r.want = { from: message.from, id: message.id };
    if (r.timer !== undefined) return;
    const wait = r.lastAtMs + READ_MARKER_MIN_MS - this.s.d.clock();
    const go = (): void => {
      r.timer = undefined;
      if (this.s.closed) return;
      void this.s.run(() => this.sendRead(conv.id, r)).catch((e: unknown) => this.s.d.logger.warn("mls.read.failed", { conversation: conv.id, error: (e as Error).message }));
    };
    if (wait <= 0) go();
    else r.timer = setTimeout(go, wait).unref();
  }

  /** Whether another device of my user has a leaf in the conversation's group (someone to tell). */
  private otherDeviceIn(convId: string): boolean {
    const g = this.s.groups.get(convId);
    if (g?.active !== true) return false;
    const mine = g.members().filter((m) => m.username === this.s.d.me);
    return mine.some((m) => m.leafIndex !== g.myLeafIndex);
  }

  private async sendRead(convId: string, r: ReadMarkers): Promise<void> {
    const want = r.want;
    const g = this.s.groups.get(convId);
    if (want === undefined || this.s.closed || g?.active !== true || r.lastId === want.id || !this.otherDeviceIn(convId)) return;
    r.want = undefined;
    r.lastAtMs = this.s.d.clock();
    this.s.d.content.thisDevice?.(this.s.mustClient().signaturePublicKey);
    const sealed = this.s.d.content.sealRead!(convId, g.groupId, { from: want.from, messageId: Buffer.from(want.id, "hex") }, r.lastAtMs);
    const bytes = await g.encrypt(sealed.app);
    this.s.d.store.saveGroup(g);
    const sent = await this.s.d.ds.sendMls(bytes);
    if (sent.ok) r.lastId = want.id;
    this.s.d.logger.debug("mls.read.sent", { conversation: convId, ok: sent.ok });
  }

  /** Sends a failed message of mine again, as a new message with the same text. */
  retry(conversationId: string, id: string): Outcome<{ readonly id: string }> {
    const f = this.s.failedMessages.get(id);
    if (f === undefined || f.conversationId !== conversationId) return fail({ kind: "not-failed" });
    const r = this.send(conversationId, f.text, f.kind);
    if (r.ok) this.s.failedMessages.delete(id);
    return r;
  }

  hasPeers(conv: Conversation, g: MlsGroup): boolean {
    if (conv.kind !== "dm") return true;
    const peer = conv.members[0] === this.s.d.me ? conv.members[1] : conv.members[0];
    return g.members().some((m) => m.username === peer);
  }

  /**
   * The group a message to `conv` goes to. A DM's is made on first send (create, register, add
   * the peer from a claimed KeyPackage); when the peer registered one first, the relay keeps
   * theirs and mine is dropped: "wait" for their Welcome (the outbox waits).
   */
  async ensureGroup(conv: Conversation): Promise<"wait" | Outcome<MlsGroup>> {
    const existing = this.s.groups.get(conv.id);
    if (conv.kind !== "dm") return existing?.active === true ? ok(existing) : fail({ kind: "not-a-member", room: conv.id, action: "send" });
    const peer = conv.members[0] === this.s.d.me ? conv.members[1] : conv.members[0];
    let g = existing;
    if (g === undefined || !g.active) {
      const created = await this.c.createAndRegister(conv.id);
      if (created === "taken") {
        this.s.d.logger.info("mls.dm.creation_lost", { conversation: conv.id });
        return "wait";
      }
      if (!created.ok) return created;
      g = created.value;
    }
    if (g.members().some((m) => m.username === peer)) return ok(g);
    await this.s.d.ensureKeys?.([peer]); // first contact pins the peer first (PROTOCOL.md §4.4)
    // Every device of the peer (PROTOCOL.md §4.5), each checked against their device list (devices.ts).
    const claimed = await claimDevices(this.s, [peer]);
    if (!claimed.ok) return claimed;
    const entries = claimed.value.entries.filter((e) => e.username === peer);
    if (entries.length === 0) return fail(this.s.d.isUnknown?.(peer) === true ? { kind: "unknown-user", username: peer } : { kind: "no-key-package", username: peer });
    const nowS = Math.floor(this.s.d.clock() / 1000);
    const added = await this.c.commitChange(conv.id, (x) => x.addMembers(entries.map((e) => e.keyPackage), { expectUsernames: entries.map(() => peer), nowS }), { added: [peer], removed: [] },
      { kind: "added", by: this.s.d.me, users: [peer], atMs: this.s.d.clock() }, (x) => !x.members().some((m) => m.username === peer));
    if (!added.ok) return added;
    const now = this.s.groups.get(conv.id);
    return now?.active === true ? ok(now) : fail({ kind: "not-a-member", room: conv.id, action: "send" });
  }
}
