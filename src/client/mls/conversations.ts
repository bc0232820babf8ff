// The protocol v2 conversation engine (proto/PROTOCOL-v2.md §4-§9): every conversation an MLS
// group, the relay as Delivery Service (ds-api.ts), what is inside a message from the content
// layer (content-api.ts), every group kept in the MlsKeyStore. ChatClient owns one in v2 mode.
//
// - Receiving (deliver): in the relay's order, one message at a time; a message resolves once
//   it is processed AND the group state is saved (§7 "Client storage": event emitted → state →
//   the caller acks). A message for a future epoch is held (held.ts) until the commit leading
//   there arrives; past the bound, FetchCommits, and failing that a re-join by external commit.
// - Sending: the pending message is emitted at once; the DM group is created on first send;
//   my commits go through the relay's ordering (first commit for an epoch wins, §5): on
//   EPOCH_TAKEN the engine discards its commit, processes the winner and makes the change again.
// - One operation at a time (run()): MLS state is never touched by two operations at once.
import { randomBytes } from "node:crypto";
import { ErrorCode, MlsKind, errorCodeFromJSON } from "../../gen/securechat/v1/chat.js";
import type { Logger } from "../../protocol/log.js";
import { parseConversationId, type Conversation } from "../../protocol/names.js";
import {
  conversationOfGroupId, isMlsProtocolError, MlsGroup,
  type AppKind, type IdentityKey, type MembershipChange, type MlsClient, type PendingCommit, type TrustHook,
} from "../../protocol/mls/index.js";
import { describeClientError, type ClientError } from "../errors.js";
import { MlsStoreError, type MlsKeyStore } from "../mls-store.js";
import type { ChatMessage, MembershipLine, MessageKind, Outcome, RoomView, SessionEvent } from "../types.js";
import type { ContentLayer, SealedContent } from "./content-api.js";
import type { DsApi, DsRefused, MlsQueued } from "./ds-api.js";
import { readFraming, sameBytes } from "./framing.js";
import { HeldMessages, HOLD_MAX_MESSAGES, HOLD_MAX_MS } from "./held.js";
import { KeyPackageKeeper } from "./key-packages.js";
import { creatorOf, judgeCommit, linesOf, refusedLine, type Refusal } from "./policy.js";

export const LOBBY_MAX_MEMBERS = 1_000;
/** How often a commit is made again after losing its epoch (EPOCH_TAKEN) before giving up. */
const COMMIT_ATTEMPTS = 5;
/** The retained past epoch's keys are deleted at the latest this long after a new epoch (§7). */
const PAST_EPOCH_MS = 60 * 60_000;

export interface ConversationDeps {
  readonly me: string;
  readonly identity: IdentityKey;
  readonly store: MlsKeyStore;
  readonly ds: DsApi;
  readonly content: ContentLayer;
  /** The pins (PROTOCOL.md §6): decides about each identity key a credential names. */
  readonly trust?: TrustHook;
  readonly clock: () => number;
  readonly logger: Logger;
  readonly emit: (e: SessionEvent) => void;
  readonly limits?: { readonly lobbyMaxMembers?: number; readonly holdMessages?: number; readonly holdMs?: number };
}

interface Outgoing {
  /** The id the pending message was shown with. */
  readonly id: string;
  readonly kind: AppKind;
  readonly text: string;
  readonly atMs: number;
  /** Sealed at send time when the group existed (then `id` is the content's id), for that group (hex id). */
  readonly sealed?: SealedContent;
  readonly sealedFor?: string;
  /** Encrypted and sent once without an answer (the connection failed): the same bytes go again. */
  pendingBytes?: { readonly bytes: Uint8Array; readonly sealed: SealedContent; readonly groupId: string };
}

const isTransient = (e: ClientError): boolean => e.kind === "not-connected" || e.kind === "connection-lost" || e.kind === "no-answer";

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

/** Failures of the connection, not the relay's refusal (ds-transport.ts): the same bytes may be sent again later. */
const TRANSIENT = new Set(["NOT_CONNECTED", "CONNECTION_LOST", "NO_ANSWER"]);

function refusedError(r: DsRefused): ClientError {
  if (r.code === "NOT_CONNECTED") return { kind: "not-connected" };
  if (r.code === "CONNECTION_LOST") return { kind: "connection-lost" };
  if (r.code === "NO_ANSWER") return { kind: "no-answer" };
  const code = errorCodeFromJSON(`ERROR_CODE_${r.code}`);
  return { kind: "refused", code: code === ErrorCode.UNRECOGNIZED ? ErrorCode.ERROR_CODE_UNSPECIFIED : code, detail: r.detail };
}

function sentence(detail: string): ClientError {
  return { kind: "refused", code: ErrorCode.ERROR_CODE_UNSPECIFIED, detail };
}

const ok = <T>(value: T): Outcome<T> => ({ ok: true, value });
const fail = (error: ClientError): { ok: false; error: ClientError } => ({ ok: false, error });

export class MlsConversations {
  private client: MlsClient | undefined;
  private keyPackages: KeyPackageKeeper | undefined;
  private readonly groups = new Map<string, MlsGroup>();
  private readonly creators = new Map<string, string>();
  /** Members who proposed to leave in the current epoch, per conversation (their removal is allowed). */
  private readonly leaving = new Map<string, Set<string>>();
  /** Per conversation: when its current epoch began and who has been heard from in it (§7 key deletion). */
  private readonly epochSeen = new Map<string, { since: number; heard: Set<string> }>();
  private readonly outbox = new Map<string, Outgoing[]>();
  /** Content message id (hex) → the id a message was shown with, when they differ (sealed late). */
  private readonly shownAs = new Map<string, string>();
  private readonly held: HeldMessages;
  private readonly recovering = new Set<string>();
  /** Failed messages of mine, for retry: id → what was sent. */
  private readonly failedMessages = new Map<string, { conversationId: string; kind: MessageKind; text: string }>();
  private tail: Promise<unknown> = Promise.resolve();
  private started = false;
  private closed = false;

  constructor(private readonly d: ConversationDeps) {
    this.held = new HeldMessages(d.limits?.holdMessages ?? HOLD_MAX_MESSAGES, d.limits?.holdMs ?? HOLD_MAX_MS);
  }

  // ---- lifecycle ----------------------------------------------------------------------------

  /** Restores the MLS client and every kept group, publishes KeyPackages, comes back into the lobby. */
  async start(): Promise<void> {
    if (this.started) throw new Error("the conversation engine is started already");
    this.started = true;
    await this.run(async () => {
      const client = await this.d.store.loadOrCreateClient();
      this.client = client;
      for (const conv of this.d.store.conversations()) {
        try {
          const g = this.d.store.loadGroup(client, conv, this.groupOptions());
          if (g === undefined || !g.active) continue;
          this.adopt(conv, g);
        } catch (e) {
          this.d.logger.warn("mls.group.restore_failed", { conversation: conv, error: (e as Error).message });
          this.notice("warn", `the kept state of ${conv} could not be restored; it will be joined again`, conv);
        }
      }
      this.keyPackages = new KeyPackageKeeper(client, this.d.store, this.d.ds, this.d.logger, () => Math.floor(this.d.clock() / 1000));
      await this.keyPackages.start();
      const lobby = await this.enterLobby();
      if (!lobby.ok) this.d.logger.warn("mls.lobby.not_joined", { error: JSON.stringify(lobby.error) });
    });
  }

  /**
   * A new session after a reconnect: back into the lobby (with resync when commits were missed
   * meanwhile: lobby changes reach only members online), and what waits in the outboxes is sent.
   */
  reconnected(): Promise<void> {
    if (!this.started) return Promise.resolve();
    return this.run(async () => {
      const lobby = await this.enterLobby();
      if (!lobby.ok) this.d.logger.warn("mls.lobby.not_joined", { error: JSON.stringify(lobby.error) });
      for (const conv of [...this.outbox.keys()]) void this.run(() => this.flush(conv));
    });
  }

  /** Resolves once every operation queued so far has finished (tests, shutdown). */
  async idle(): Promise<void> {
    for (;;) {
      const t = this.tail;
      await t.then(() => {}, () => {});
      if (t === this.tail) return;
    }
  }

  close(): void {
    this.closed = true;
    for (const conv of this.held.conversations()) this.held.drop(conv);
  }

  /** The relay says how many one-time KeyPackages it keeps for me (KeyPackageStatus). */
  keyPackageStatus(oneTimeLeft: number): Promise<void> {
    return this.run(async () => { await this.keyPackages?.status(oneTimeLeft); });
  }

  // ---- what the UI reads --------------------------------------------------------------------

  members(conversationId: string): readonly string[] | undefined {
    const g = this.groups.get(conversationId);
    return g?.active === true ? g.members().map((m) => m.username) : undefined;
  }

  creator(conversationId: string): string | undefined {
    return this.creators.get(conversationId);
  }

  rooms(): RoomView[] {
    return [...this.groups.keys()].filter((c) => c.startsWith("#")).sort().map((room) => ({ room, members: this.members(room) ?? [] }));
  }

  conversations(): string[] {
    return [...this.groups.keys()].sort();
  }

  // ---- receiving ----------------------------------------------------------------------------

  /**
   * One MLS message the relay queued for me, in the relay's order (call for each without waiting
   * for the previous: they are processed one at a time, in call order). Resolves once it is
   * processed and the group saved, or refused (then it is logged and shown); a message held for
   * a future epoch resolves when it is processed or dropped. Rejects only when the state could
   * not be saved (do not ack: it comes again).
   */
  deliver(q: MlsQueued): Promise<void> {
    if (!this.started) return Promise.reject(new Error("the conversation engine is not started"));
    return new Promise<void>((resolve, reject) => {
      this.run(async () => {
        const done = await this.handle(q, resolve);
        if (done) resolve();
      }).catch((e: unknown) => {
        if (e instanceof MlsStoreError || this.closed) { reject(e); return; }
        this.d.logger.warn("mls.deliver.failed", { conversation: q.conversationId, seq: q.seq, error: (e as Error).message });
        resolve();
      });
    });
  }

  /** Fetches the missing commits of groups whose held messages passed their bound; call every minute or so. */
  checkTimers(): Promise<void> {
    return this.run(async () => {
      const now = this.d.clock();
      for (const conv of this.held.overdue(now)) await this.recover(conv);
      for (const [conv, seen] of this.epochSeen) {
        const g = this.groups.get(conv);
        if (g?.active === true && now - seen.since >= PAST_EPOCH_MS) this.forgetPast(conv, g);
      }
    });
  }

  /** Handles one message; false when it was held (its `done` is called later). */
  private async handle(q: MlsQueued, done: () => void): Promise<boolean> {
    const item = q.item;
    this.d.logger.debug("mls.deliver", { conversation: q.conversationId, seq: q.seq, kind: item.kind, sender: item.sender });
    if (item.kind === MlsKind.MLS_KIND_WELCOME) {
      await this.onWelcome(q);
      return true;
    }
    const conv = q.conversationId;
    let named: string;
    try {
      named = conversationOfGroupId(item.groupId).id;
    } catch {
      this.d.logger.warn("mls.deliver.bad_group_id", { conversation: conv, seq: q.seq });
      return true;
    }
    if (named !== conv) {
      this.d.logger.warn("mls.deliver.wrong_conversation", { conversation: conv, named });
      this.d.emit({ type: "refused", conversationId: conv, from: item.sender });
      return true;
    }
    const g = this.groups.get(conv);
    if (g === undefined || !g.active || !sameBytes(g.groupId, item.groupId)) {
      this.d.logger.info("mls.deliver.no_group", { conversation: conv, kind: item.kind });
      return true;
    }
    let f: ReturnType<typeof readFraming>;
    try {
      f = readFraming(item.mls);
    } catch (e) {
      this.d.logger.warn("mls.deliver.malformed", { conversation: conv, error: (e as Error).message });
      this.d.emit({ type: "refused", conversationId: conv, from: item.sender });
      return true;
    }
    const expected = item.kind === MlsKind.MLS_KIND_COMMIT ? "commit" : item.kind === MlsKind.MLS_KIND_PROPOSAL ? "proposal" : item.kind === MlsKind.MLS_KIND_APPLICATION ? "application" : undefined;
    if (expected === undefined || f.contentType !== expected || !sameBytes(f.groupId, item.groupId)) {
      this.d.logger.warn("mls.deliver.kind_mismatch", { conversation: conv, kind: item.kind, content: f.contentType });
      this.d.emit({ type: "refused", conversationId: conv, from: item.sender });
      return true;
    }
    const epoch = Number(g.epoch);
    if (f.epoch > epoch) {
      const full = this.held.hold(conv, q, f.epoch, this.d.clock(), done);
      this.d.logger.info("mls.deliver.held", { conversation: conv, epoch: f.epoch, at: epoch, held: this.held.count(conv) });
      if (full && !this.recovering.has(conv)) await this.recover(conv);
      return false;
    }
    if (f.contentType !== "application" && f.epoch < epoch) {
      // A commit or proposal of an epoch already left: a replay, or one I fetched before it came.
      this.d.logger.info("mls.deliver.stale", { conversation: conv, epoch: f.epoch, at: epoch, kind: f.contentType });
      return true;
    }
    if (f.contentType === "commit") await this.applyCommit(conv, g, item.mls, item.sender);
    else if (f.contentType === "proposal") await this.onProposal(conv, g, item.mls, item.sender);
    else await this.onApplication(conv, g, q);
    return true;
  }

  private async onWelcome(q: MlsQueued): Promise<void> {
    const client = this.mustClient();
    const item = q.item;
    const before = this.groups.get(q.conversationId);
    if (before?.active === true && item.groupId.length > 0 && sameBytes(before.groupId, item.groupId)) {
      this.d.logger.info("mls.welcome.already_member", { conversation: q.conversationId });
      return;
    }
    let joined: { group: MlsGroup; lastResort: boolean };
    try {
      joined = await this.d.store.joinFromWelcome(client, item.mls, item.ratchetTree, this.groupOptions());
    } catch (e) {
      if (e instanceof MlsStoreError) throw e;
      this.d.logger.warn("mls.welcome.refused", { conversation: q.conversationId, sender: item.sender, code: isMlsProtocolError(e) ? e.code : "other", error: (e as Error).message });
      this.notice("warn", `an invitation to ${q.conversationId} from ${item.sender} could not be opened; nothing was joined (ask to be added again)`, q.conversationId);
      return;
    }
    const g = joined.group;
    const conv = g.conversation.id;
    const names = g.members().map((m) => m.username);
    // The relay names the conversation and who sent the Welcome: both must agree with the group.
    if (conv !== q.conversationId || !names.includes(item.sender) || item.sender === this.d.me) {
      this.d.logger.warn("mls.welcome.mismatch", { conversation: q.conversationId, group: conv, sender: item.sender });
      g.destroy();
      const kept = this.groups.get(conv);
      if (kept?.active === true) this.d.store.saveGroup(kept);
      else this.d.store.deleteGroup(conv);
      this.notice("warn", `an invitation to ${q.conversationId} did not come from a member of it; nothing was joined`, q.conversationId);
      return;
    }
    if (before !== undefined && before !== g) before.destroy();
    this.adopt(conv, g);
    this.d.content.membersChanged(conv, names);
    this.line(conv, { kind: "added", by: item.sender, users: [this.d.me], ...this.creatorField(conv), atMs: this.d.clock() });
    this.d.logger.info("mls.welcome.joined", { conversation: conv, sender: item.sender, members: names.length, lastResort: joined.lastResort });
    if (joined.lastResort) await this.keyPackages?.replaceLastResort();
    else await this.topUpFromStore();
    if ((this.outbox.get(conv)?.length ?? 0) > 0) void this.run(() => this.flush(conv));
  }

  private async onProposal(conv: string, g: MlsGroup, mls: Uint8Array, relaySender: string): Promise<void> {
    let inc: Awaited<ReturnType<MlsGroup["process"]>>;
    try {
      inc = await g.process(mls);
    } catch (e) {
      this.d.logger.warn("mls.proposal.refused", { conversation: conv, sender: relaySender, error: (e as Error).message });
      this.d.emit({ type: "refused", conversationId: conv, from: relaySender });
      return;
    }
    if (inc.kind !== "proposal" || inc.sender.username !== relaySender) {
      // Put the state back as it was saved: the proposal must not ride along in my next commit.
      this.reload(conv);
      this.d.logger.warn("mls.proposal.sender_mismatch", { conversation: conv, relay: relaySender, mls: inc.kind === "proposal" ? inc.sender.username : inc.kind });
      this.d.emit({ type: "refused", conversationId: conv, from: relaySender });
      return;
    }
    this.leavingOf(conv).add(inc.sender.username);
    this.d.store.saveGroup(g);
    // The receiving member commits a leave at once; a race between members is settled by the relay.
    const r = await this.commitChange(conv, (x) => x.commitPendingProposals(), { added: [], removed: [inc.sender.username] },
      { kind: "left", by: inc.sender.username, users: [], ...this.creatorField(conv), atMs: this.d.clock() }, () => false);
    if (!r.ok) this.d.logger.info("mls.proposal.commit_not_made", { conversation: conv, error: JSON.stringify(r.error) });
  }

  private async onApplication(conv: string, g: MlsGroup, q: MlsQueued): Promise<void> {
    const relaySender = q.item.sender;
    let inc: Awaited<ReturnType<MlsGroup["process"]>>;
    try {
      inc = await g.process(q.item.mls);
    } catch (e) {
      this.d.logger.warn("mls.message.refused", { conversation: conv, sender: relaySender, code: isMlsProtocolError(e) ? e.code : "other", error: (e as Error).message });
      this.d.emit({ type: "refused", conversationId: conv, from: relaySender });
      return;
    }
    if (inc.kind !== "application") {
      this.reload(conv);
      this.d.emit({ type: "refused", conversationId: conv, from: relaySender });
      return;
    }
    const from = inc.sender.username;
    if (from !== relaySender) {
      // §5: the relay authenticates who sent by the session; a disagreement is a forgery or a relay lie.
      this.d.store.saveGroup(g); // the message key was used: it must not stay on disk
      this.d.logger.warn("mls.message.sender_mismatch", { conversation: conv, relay: relaySender, mls: from });
      this.d.emit({ type: "refused", conversationId: conv, from: relaySender });
      return;
    }
    let opened: ReturnType<ContentLayer["open"]>;
    try {
      opened = this.d.content.open(conv, g.groupId, from, inc.plaintext);
    } catch (e) {
      this.d.store.saveGroup(g);
      this.d.logger.warn("mls.message.content_refused", { conversation: conv, sender: from, error: (e as Error).message });
      this.d.emit({ type: "refused", conversationId: conv, from });
      return;
    }
    const c = opened.content;
    if (!c.duplicate) {
      const message: ChatMessage = {
        id: hex(c.messageId), conversationId: conv, from, kind: c.kind as MessageKind, text: c.text,
        sentAtMs: c.sentAtMs, receivedAtMs: this.d.clock(), own: false, gap: c.gap,
        ...(q.relayTimeMs > 0 ? { relayAtMs: q.relayTimeMs } : {}),
      };
      this.d.emit({ type: "message", message });
    }
    for (const lost of opened.own.lost) {
      const id = this.shownAs.get(lost) ?? lost;
      this.d.emit({ type: "message-state", conversationId: conv, id, state: "failed", failure: "the relay accepted it but the others never received it", error: sentence("the relay accepted it but the others never received it") });
    }
    if (inc.epoch === g.epoch) this.heard(conv, g, from);
    this.d.store.saveGroup(g);
  }

  /** Processes a commit of the group's current epoch with the conversation's policy; shows it; saves. */
  private async applyCommit(conv: string, g: MlsGroup, mls: Uint8Array, relaySender: string): Promise<void> {
    const creator = this.creators.get(conv);
    const leaving = this.leavingOf(conv);
    let verdict: { change: MembershipChange; why: Refusal } | undefined;
    const policy = (change: MembershipChange): boolean => {
      const why = judgeCommit(g.conversation, change, { creator, leaving, relaySender });
      if (why !== undefined) verdict = { change, why };
      return why === undefined;
    };
    let inc: Awaited<ReturnType<MlsGroup["process"]>>;
    try {
      inc = await g.process(mls, policy);
    } catch (e) {
      if (verdict?.why === "policy") {
        this.d.logger.warn("mls.commit.refused_by_policy", { conversation: conv, by: verdict.change.committer.username });
        this.line(conv, refusedLine(verdict.change, creator, this.d.clock()));
      } else {
        this.d.logger.warn("mls.commit.refused", { conversation: conv, sender: relaySender, why: verdict?.why ?? "mls", error: (e as Error).message });
        this.d.emit({ type: "refused", conversationId: conv, from: relaySender });
      }
      return;
    }
    if (inc.kind !== "commit") {
      this.reload(conv);
      this.d.emit({ type: "refused", conversationId: conv, from: relaySender });
      return;
    }
    const atMs = this.d.clock();
    this.leaving.delete(conv);
    if (inc.removedMe) {
      const iLeft = leaving.has(this.d.me);
      this.forget(conv);
      this.line(conv, iLeft ? { kind: "left", by: this.d.me, users: [], atMs } : { kind: "removed", by: inc.change.committer.username, users: [this.d.me], ...(creator !== undefined ? { creator } : {}), atMs });
      return;
    }
    for (const l of linesOf(inc.change, { creator, leaving, atMs })) this.line(conv, l);
    this.d.content.membersChanged(conv, g.members().map((m) => m.username));
    this.newEpoch(conv);
    this.d.store.saveGroup(g);
    await this.releaseHeld(conv);
  }

  /** Processes held messages that the group's epoch now reaches. */
  private async releaseHeld(conv: string): Promise<void> {
    for (;;) {
      const g = this.groups.get(conv);
      const items = this.held.take(conv);
      if (items.length === 0) return;
      if (g === undefined || !g.active) {
        for (const h of items) h.done();
        return;
      }
      let progressed = false;
      for (const h of items) {
        if (h.epoch > Number(g.epoch) || this.groups.get(conv) !== g) {
          this.held.hold(conv, h.q, h.epoch, h.atMs, h.done);
          continue;
        }
        progressed = true;
        try {
          const fin = await this.handle(h.q, h.done);
          if (fin) h.done();
        } catch (e) {
          h.done();
          if (e instanceof MlsStoreError) throw e;
          this.d.logger.warn("mls.held.failed", { conversation: conv, error: (e as Error).message });
        }
      }
      if (!progressed) return;
    }
  }

  /** Held messages passed their bound: fetch the missing commits; failing that, re-join (§9). */
  private async recover(conv: string): Promise<void> {
    if (this.recovering.has(conv)) return;
    this.recovering.add(conv);
    try {
      await this.recoverNow(conv);
    } finally {
      this.recovering.delete(conv);
    }
  }

  private async recoverNow(conv: string): Promise<void> {
    const g = this.groups.get(conv);
    if (g === undefined || !g.active) { this.held.drop(conv); return; }
    const caught = await this.catchUp(conv);
    await this.releaseHeld(conv);
    if (caught && this.held.count(conv) === 0) return;
    this.d.logger.warn("mls.recover.rejoin", { conversation: conv, held: this.held.count(conv) });
    const dropped = this.held.drop(conv);
    const r = await this.externalJoin(conv, true);
    this.notice("warn", r.ok
      ? `missing changes in ${conv}: joined it again${dropped > 0 ? `; ${dropped} message(s) sent meanwhile could not be read` : ""}`
      : `missing changes in ${conv}, and joining it again failed`, conv);
  }

  /** Fetches and processes the commits the relay accepted after my epoch. False when the relay refused. */
  private async catchUp(conv: string): Promise<boolean> {
    for (let round = 0; round < 64; round++) {
      const g = this.groups.get(conv);
      if (g === undefined || !g.active) return true;
      const r = await this.d.ds.fetchCommits(g.groupId, Number(g.epoch));
      if (!r.ok) {
        this.d.logger.warn("mls.fetch_commits.refused", { conversation: conv, code: r.code });
        return false;
      }
      for (const c of r.commits) {
        const cur = this.groups.get(conv);
        if (cur !== g || !g.active) return true;
        if (c.epoch !== Number(g.epoch)) continue;
        await this.applyCommit(conv, g, c.commit, c.sender);
        if (Number(g.epoch) === c.epoch) return false; // refused: this group cannot follow the relay's order
      }
      if (!r.more) return true;
    }
    return true;
  }

  // ---- sending ------------------------------------------------------------------------------

  /**
   * Sends text to a conversation: the pending message is emitted at once, then `message-state`
   * accepted or failed. A DM's group is made on first send; a room must be joined first.
   */
  send(conversationId: string, text: string, kind: MessageKind = "text"): Outcome<{ readonly id: string }> {
    const conv = parseConversationId(conversationId);
    if (conv === undefined) return fail({ kind: "unknown-conversation", conversationId: String(conversationId) });
    if (typeof text !== "string" || text.trim() === "") return fail({ kind: "empty-message" });
    if (conv.kind === "dm" && !conv.members.includes(this.d.me)) return fail({ kind: "not-your-conversation" });
    if (conv.kind === "room" && !this.groups.has(conv.id)) return fail({ kind: "not-a-member", room: conv.id, action: "send" });
    if (kind === "topic" && conv.kind !== "room") return fail({ kind: "topic-outside-room" });
    if (kind === "away" && conv.kind !== "dm") return fail({ kind: "away-outside-dm" });
    const now = this.d.clock();
    const g = this.groups.get(conv.id);
    let out: Outgoing;
    try {
      if (g?.active === true && (this.outbox.get(conv.id)?.length ?? 0) === 0 && this.hasPeers(conv, g)) {
        const sealed = this.d.content.seal(conv.id, g.groupId, kind, text, now);
        out = { id: hex(sealed.messageId), kind, text, atMs: sealed.sentAtMs, sealed, sealedFor: hex(g.groupId) };
      } else {
        out = { id: randomBytes(16).toString("hex"), kind, text, atMs: now };
      }
    } catch (e) {
      return fail(sentence((e as Error).message));
    }
    this.d.emit({ type: "message", message: { id: out.id, conversationId: conv.id, from: this.d.me, kind, text, sentAtMs: out.atMs, receivedAtMs: now, own: true, state: "pending" } });
    let list = this.outbox.get(conv.id);
    if (list === undefined) this.outbox.set(conv.id, (list = []));
    list.push(out);
    void this.run(() => this.flush(conv.id)).catch((e: unknown) => this.d.logger.warn("mls.send.failed", { conversation: conv.id, error: (e as Error).message }));
    return ok({ id: out.id });
  }

  /** Sends what waits in a conversation's outbox, in order, once its group is ready. */
  private async flush(convId: string): Promise<void> {
    const list = this.outbox.get(convId);
    if (list === undefined || list.length === 0) return;
    const conv = parseConversationId(convId)!;
    const ready = await this.ensureGroup(conv);
    this.d.logger.debug("mls.flush", { conversation: convId, waiting: list.length, ready: ready === "wait" ? "wait" : ready.ok ? "ok" : JSON.stringify(ready.error) });
    if (ready === "wait" || (!ready.ok && isTransient(ready.error))) return;
    if (!ready.ok) {
      for (const m of list.splice(0)) this.failed(convId, m.id, ready.error, m);
      return;
    }
    while (list.length > 0) {
      const g = this.groups.get(convId);
      if (g === undefined || !g.active) {
        for (const m of list.splice(0)) this.failed(convId, m.id, { kind: "not-a-member", room: convId, action: "send" });
        return;
      }
      if (this.d.content.shouldUpdate(convId, this.d.clock())) {
        const u = await this.commitChange(convId, (x) => x.selfUpdate(), { added: [], removed: [] }, undefined, () => false);
        if (!u.ok) this.d.logger.warn("mls.update.failed", { conversation: convId, error: JSON.stringify(u.error) });
      }
      const m = list[0]!;
      const cur = this.groups.get(convId)!;
      if (m.pendingBytes !== undefined && m.pendingBytes.groupId === hex(cur.groupId)) {
        // Sent once without an answer: the same bytes again (the relay answers a duplicate accepted).
        const again = await this.d.ds.sendMls(m.pendingBytes.bytes);
        if (!again.ok && TRANSIENT.has(again.code)) return;
        list.shift();
        this.settled(convId, m, m.pendingBytes.sealed, again);
        continue;
      }
      let sealed = m.sealed;
      if (sealed === undefined || m.sealedFor !== hex(cur.groupId)) {
        try {
          sealed = this.d.content.seal(convId, cur.groupId, m.kind, m.text, m.atMs);
        } catch (e) {
          list.shift();
          this.failed(convId, m.id, sentence((e as Error).message));
          continue;
        }
        this.shownAs.set(hex(sealed.messageId), m.id);
      }
      const bytes = await cur.encrypt(sealed.app);
      this.d.store.saveGroup(cur);
      const r = await this.d.ds.sendMls(bytes);
      if (!r.ok && TRANSIENT.has(r.code)) {
        m.pendingBytes = { bytes, sealed, groupId: hex(cur.groupId) };
        this.d.logger.info("mls.send.waiting", { conversation: convId, code: r.code });
        return;
      }
      list.shift();
      this.settled(convId, m, sealed, r);
    }
  }

  private settled(convId: string, m: Outgoing, sealed: SealedContent, r: Awaited<ReturnType<DsApi["sendMls"]>>): void {
    if (r.ok) {
      this.d.content.accepted(convId, sealed.messageId);
      this.d.emit({ type: "message-state", conversationId: convId, id: m.id, state: "accepted", queuedFor: r.queuedFor });
    } else {
      this.failed(convId, m.id, refusedError(r), m);
    }
  }

  /** Sends a failed message of mine again, as a new message with the same text. */
  retry(conversationId: string, id: string): Outcome<{ readonly id: string }> {
    const f = this.failedMessages.get(id);
    if (f === undefined || f.conversationId !== conversationId) return fail({ kind: "not-failed" });
    const r = this.send(conversationId, f.text, f.kind);
    if (r.ok) this.failedMessages.delete(id);
    return r;
  }

  private failed(conversationId: string, id: string, error: ClientError, m?: Outgoing): void {
    if (m !== undefined) this.failedMessages.set(id, { conversationId, kind: m.kind, text: m.text });
    const failure = error.kind === "refused" ? error.detail : describeClientError(error);
    this.d.emit({ type: "message-state", conversationId, id, state: "failed", failure, error });
  }

  private hasPeers(conv: Conversation, g: MlsGroup): boolean {
    if (conv.kind !== "dm") return true;
    const peer = conv.members[0] === this.d.me ? conv.members[1] : conv.members[0];
    return g.members().some((m) => m.username === peer);
  }

  /**
   * The group a message to `conv` goes to. A DM's is made on first send (create, register, add
   * the peer from a claimed KeyPackage); when the peer registered one first, the relay keeps
   * theirs and mine is dropped: "wait" for their Welcome (the outbox waits).
   */
  private async ensureGroup(conv: Conversation): Promise<"wait" | Outcome<MlsGroup>> {
    const existing = this.groups.get(conv.id);
    if (conv.kind !== "dm") return existing?.active === true ? ok(existing) : fail({ kind: "not-a-member", room: conv.id, action: "send" });
    const peer = conv.members[0] === this.d.me ? conv.members[1] : conv.members[0];
    let g = existing;
    if (g === undefined || !g.active) {
      const created = await this.createAndRegister(conv.id);
      if (created === "taken") {
        this.d.logger.info("mls.dm.creation_lost", { conversation: conv.id });
        return "wait";
      }
      if (!created.ok) return created;
      g = created.value;
    }
    if (g.members().some((m) => m.username === peer)) return ok(g);
    const claimed = await this.d.ds.claimKeyPackages([peer]);
    if (!claimed.ok) return fail(refusedError(claimed));
    const entry = claimed.entries.find((e) => e.username === peer);
    if (entry === undefined) return fail(sentence(`${peer} has no KeyPackage on this relay`));
    const nowS = Math.floor(this.d.clock() / 1000);
    const added = await this.commitChange(conv.id, (x) => x.addMembers([entry.keyPackage], { expectUsernames: [peer], nowS }), { added: [peer], removed: [] },
      { kind: "added", by: this.d.me, users: [peer], atMs: this.d.clock() }, (x) => !x.members().some((m) => m.username === peer));
    if (!added.ok) return added;
    const now = this.groups.get(conv.id);
    return now?.active === true ? ok(now) : fail({ kind: "not-a-member", room: conv.id, action: "send" });
  }

  /** Creates a group and registers it at the relay ("taken": another group of the conversation was registered first). */
  private async createAndRegister(convId: string): Promise<"taken" | Outcome<MlsGroup>> {
    const g = await MlsGroup.create(this.mustClient(), convId, this.groupOptions());
    const r = await this.d.ds.publishGroupInfo(await g.groupInfo());
    if (!r.ok) {
      g.destroy();
      return r.code === "BAD_CONVERSATION" ? "taken" : fail(refusedError(r));
    }
    this.adopt(convId, g);
    this.d.store.saveGroup(g);
    this.d.content.membersChanged(convId, [this.d.me]);
    if (g.conversation.kind !== "dm" && g.conversation.kind !== "lobby") this.line(convId, { kind: "created", by: this.d.me, users: [], creator: this.d.me, atMs: this.d.clock() });
    return ok(g);
  }

  /**
   * Makes one commit and gets it through the relay's ordering (§5): accepted → confirm, save,
   * publish the new GroupInfo, show `line`; EPOCH_TAKEN → discard, process the winner, and make
   * the change again while `again` says it is still needed.
   */
  private async commitChange(convId: string, make: (g: MlsGroup) => Promise<PendingCommit>, hint: { added: readonly string[]; removed: readonly string[] },
    line: MembershipLine | undefined, again: (g: MlsGroup) => boolean): Promise<Outcome> {
    for (let attempt = 0; attempt < COMMIT_ATTEMPTS; attempt++) {
      const g = this.groups.get(convId);
      if (g === undefined || !g.active) return fail({ kind: "not-a-member", room: convId, action: "send" });
      let p: PendingCommit;
      try {
        p = await make(g);
      } catch (e) {
        return fail(sentence((e as Error).message));
      }
      const r = await this.d.ds.sendCommit({
        commit: p.commit, groupInfo: new Uint8Array(0), added: hint.added, removed: hint.removed,
        ...(p.welcome !== undefined ? { welcome: p.welcome } : {}), ...(p.ratchetTree !== undefined ? { ratchetTree: p.ratchetTree } : {}),
      });
      this.d.logger.debug("mls.commit.sent", { conversation: convId, ok: r.ok, code: r.ok ? "" : r.code });
      if (r.ok) {
        g.confirmCommit();
        this.leaving.delete(convId);
        this.newEpoch(convId);
        this.d.content.committed(convId, this.d.clock());
        this.d.content.membersChanged(convId, g.members().map((m) => m.username));
        if (line !== undefined) this.line(convId, line);
        this.d.store.saveGroup(g);
        const gi = await this.d.ds.publishGroupInfo(await g.groupInfo());
        if (!gi.ok) this.d.logger.warn("mls.group_info.refused", { conversation: convId, code: gi.code });
        await this.releaseHeld(convId);
        return ok(undefined);
      }
      g.discardCommit();
      if (r.code !== "EPOCH_TAKEN") return fail(refusedError(r));
      this.d.logger.info("mls.commit.epoch_taken", { conversation: convId, epoch: Number(g.epoch) });
      await this.catchUp(convId);
      const now = this.groups.get(convId);
      if (now === undefined || !now.active) return fail({ kind: "not-a-member", room: convId, action: "send" });
      if (!again(now)) return ok(undefined);
    }
    return fail(sentence(`the change to ${convId} lost the race for its epoch ${COMMIT_ATTEMPTS} times`));
  }

  // ---- rooms and the lobby ------------------------------------------------------------------

  /** Joins a room: by external commit from its GroupInfo, or creates it (I am its creator) when the relay keeps none. */
  joinRoom(room: string): Promise<Outcome<RoomView>> {
    return this.run(async () => {
      const conv = parseConversationId(room);
      if (conv?.kind !== "room") return fail({ kind: "invalid-room", room: String(room), reason: "a room name starts with # and has 1-32 letters, digits, - or _" });
      const have = this.groups.get(room);
      if (have?.active === true) return ok({ room, members: this.members(room) ?? [] });
      const r = await this.joinOrCreate(room);
      if (!r.ok) return r;
      return ok({ room, members: this.members(room) ?? [] });
    });
  }

  /** Leaves a room: proposes my removal (a member commits it) and forgets the group. */
  leaveRoom(room: string): Promise<Outcome> {
    return this.run(async () => {
      const g = this.groups.get(room);
      if (g === undefined || !g.active) return fail({ kind: "not-a-member", room, action: "leave" });
      if (g.members().length > 1) {
        const proposal = await g.proposeLeave();
        const r = await this.d.ds.sendMls(proposal);
        if (!r.ok) {
          this.reload(room);
          return fail(refusedError(r));
        }
      }
      this.forget(room);
      this.line(room, { kind: "left", by: this.d.me, users: [], atMs: this.d.clock() });
      return ok(undefined);
    });
  }

  /** The room's creator removes a member; everyone else is refused here (and by every member's policy). */
  kick(room: string, username: string): Promise<Outcome> {
    return this.run(async () => {
      const g = this.groups.get(room);
      if (g === undefined || !g.active) return fail({ kind: "not-a-member", room, action: "send" });
      const creator = this.creators.get(room);
      if (creator !== this.d.me) return fail(sentence(`only ${creator ?? "the creator"}, who created ${room}, can remove members`));
      if (username === this.d.me) return fail(sentence("to remove yourself, leave the room"));
      if (!g.members().some((m) => m.username === username)) return fail(sentence(`${username} is not a member of ${room}`));
      return this.commitChange(room, (x) => x.removeMembers([username]), { added: [], removed: [username] },
        { kind: "removed", by: this.d.me, users: [username], creator: this.d.me, atMs: this.d.clock() }, (x) => x.members().some((m) => m.username === username));
    });
  }

  /** A member adds someone to a room from one of their KeyPackages (Add + Welcome). */
  invite(room: string, username: string): Promise<Outcome> {
    return this.run(async () => {
      const g = this.groups.get(room);
      if (g === undefined || !g.active) return fail({ kind: "not-a-member", room, action: "send" });
      if (g.members().some((m) => m.username === username)) return fail(sentence(`${username} is already a member of ${room}`));
      const claimed = await this.d.ds.claimKeyPackages([username]);
      if (!claimed.ok) return fail(refusedError(claimed));
      const entry = claimed.entries.find((e) => e.username === username);
      if (entry === undefined) return fail(sentence(`${username} has no KeyPackage on this relay`));
      const nowS = Math.floor(this.d.clock() / 1000);
      return this.commitChange(room, (x) => x.addMembers([entry.keyPackage], { expectUsernames: [username], nowS }), { added: [username], removed: [] },
        { kind: "added", by: this.d.me, users: [username], ...this.creatorField(room), atMs: this.d.clock() }, (x) => !x.members().some((m) => m.username === username));
    });
  }

  /** The lobby (§4): one relay-wide group joined by external commit (with resync when I held a leaf), created by the first. */
  private async enterLobby(): Promise<Outcome> {
    return this.joinOrCreate("lobby");
  }

  private async joinOrCreate(convId: string): Promise<Outcome> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const had = this.groups.get(convId);
      const gi = await this.d.ds.fetchGroupInfo({ conversationId: convId });
      if (!gi.ok && gi.code !== "UNKNOWN_GROUP") return fail(refusedError(gi));
      if (!gi.ok) {
        const c = await this.createAndRegister(convId);
        if (c === "taken") continue;
        return c.ok ? ok(undefined) : c;
      }
      if (had?.active === true && sameBytes(had.groupId, gi.groupId) && Number(had.epoch) === gi.currentEpoch) return ok(undefined);
      const j = await this.externalJoin(convId, had !== undefined && sameBytes(had.groupId, gi.groupId));
      if (j.ok || j.error.kind !== "refused" || j.error.code !== ErrorCode.ERROR_CODE_EPOCH_TAKEN) return j;
    }
    return fail(sentence(`${convId} is changing too fast to join; try again`));
  }

  /** Joins by external commit from the relay's newest GroupInfo (§4, §9 recovery). */
  private async externalJoin(convId: string, resync: boolean): Promise<Outcome> {
    const client = this.mustClient();
    let lastError: ClientError = sentence(`${convId} could not be joined`);
    for (let attempt = 0; attempt < COMMIT_ATTEMPTS; attempt++) {
      const gi = await this.d.ds.fetchGroupInfo({ conversationId: convId });
      if (!gi.ok) return fail(refusedError(gi));
      let joined: { group: MlsGroup; commit: Uint8Array };
      try {
        joined = await MlsGroup.joinExternal(client, gi.groupInfo, { ...this.groupOptions(), resync: resync && attempt === 0, expectConversation: convId });
      } catch (e) {
        if (resync && attempt === 0) { resync = false; continue; }
        this.d.logger.warn("mls.join.refused", { conversation: convId, error: (e as Error).message });
        return fail(sentence(`${convId} could not be joined: ${(e as Error).message}`));
      }
      const g = joined.group;
      const max = this.d.limits?.lobbyMaxMembers ?? LOBBY_MAX_MEMBERS;
      if (convId === "lobby" && g.members().length > max) {
        g.destroy();
        this.notice("warn", `the lobby is full (${max} members); it cannot be joined now`, "lobby");
        return fail(sentence(`the lobby is full (${max} members)`));
      }
      const r = await this.d.ds.sendCommit({ commit: joined.commit, groupInfo: await g.groupInfo(), added: [this.d.me], removed: [] });
      if (!r.ok) {
        g.destroy();
        lastError = refusedError(r);
        if (r.code === "EPOCH_TAKEN") continue;
        return fail(lastError);
      }
      const old = this.groups.get(convId);
      if (old !== undefined && old !== g) old.destroy();
      this.held.drop(convId);
      this.adopt(convId, g);
      this.newEpoch(convId);
      this.d.content.membersChanged(convId, g.members().map((m) => m.username));
      if (convId !== "lobby") this.line(convId, { kind: "joined", by: this.d.me, users: [], ...this.creatorField(convId), atMs: this.d.clock() });
      this.d.store.saveGroup(g);
      return ok(undefined);
    }
    return fail(lastError);
  }

  // ---- internals ----------------------------------------------------------------------------

  private run<T>(f: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new Error("the conversation engine is closed"));
    const p = this.tail.then(f, f);
    this.tail = p.catch(() => {});
    return p;
  }

  private mustClient(): MlsClient {
    if (this.client === undefined) throw new Error("the conversation engine is not started");
    return this.client;
  }

  private groupOptions(): { trust?: TrustHook } {
    return this.d.trust === undefined ? {} : { trust: this.d.trust };
  }

  private adopt(conv: string, g: MlsGroup): void {
    this.groups.set(conv, g);
    const c = creatorOf(g);
    if (c !== undefined) this.creators.set(conv, c);
    else this.creators.delete(conv);
    this.newEpoch(conv);
  }

  private creatorField(conv: string): { creator?: string } {
    const c = this.creators.get(conv);
    return c === undefined ? {} : { creator: c };
  }

  private leavingOf(conv: string): Set<string> {
    let s = this.leaving.get(conv);
    if (s === undefined) this.leaving.set(conv, (s = new Set()));
    return s;
  }

  /** Restores a group as last saved (after a message that must leave no trace in its state). */
  private reload(conv: string): void {
    const g = this.d.store.loadGroup(this.mustClient(), conv, this.groupOptions());
    if (g?.active === true) this.groups.set(conv, g);
  }

  /** I left or was removed: the group's secrets and state are deleted. */
  private forget(conv: string): void {
    this.groups.get(conv)?.destroy();
    this.groups.delete(conv);
    this.creators.delete(conv);
    this.leaving.delete(conv);
    this.epochSeen.delete(conv);
    this.held.drop(conv);
    this.d.store.deleteGroup(conv);
    this.d.content.forget(conv);
    for (const m of this.outbox.get(conv)?.splice(0) ?? []) this.failed(conv, m.id, { kind: "not-a-member", room: conv, action: "send" });
  }

  private newEpoch(conv: string): void {
    this.epochSeen.set(conv, { since: this.d.clock(), heard: new Set() });
  }

  /** §7: the past epoch's keys go once every other member has spoken in the new one. */
  private heard(conv: string, g: MlsGroup, from: string): void {
    const seen = this.epochSeen.get(conv);
    if (seen === undefined) return;
    seen.heard.add(from);
    const others = g.members().filter((m) => m.username !== this.d.me);
    if (others.every((m) => seen.heard.has(m.username))) this.forgetPast(conv, g);
  }

  private forgetPast(conv: string, g: MlsGroup): void {
    g.forgetPastEpochs();
    this.d.store.saveGroup(g);
    this.epochSeen.set(conv, { since: Number.POSITIVE_INFINITY, heard: new Set() });
  }

  private async topUpFromStore(): Promise<void> {
    const oneTime = this.d.store.keyPackages().filter((k) => !k.lastResort).length;
    await this.keyPackages?.status(oneTime);
  }

  private line(conversationId: string, line: MembershipLine): void {
    this.d.emit({ type: "membership", conversationId, line });
    if (conversationId.startsWith("#")) this.d.emit({ type: "rooms", rooms: this.rooms() });
  }

  private notice(level: "info" | "warn" | "error", text: string, conversationId?: string): void {
    this.d.emit(conversationId === undefined ? { type: "notice", level, text } : { type: "notice", level, text, conversationId });
  }
}
