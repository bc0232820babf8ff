// The protocol v2 conversation engine (proto/PROTOCOL.md §7-§12): every conversation an MLS
// group, the relay as Delivery Service (ds-api.ts), what is inside a message from the content
// layer (content-api.ts), every group kept in the MlsKeyStore. ChatClient owns one in v2 mode
// (session.ts). This file is its face; the parts:
//   engine-state.ts  the shared state and the steps every part takes on it (one operation at a time)
//   receive.ts       what the relay queued for me, in order; held messages; catching up
//   commit.ts        my commits through the relay's ordering; creating, joining by external commit
//   send.ts          the outboxes: DM groups made on first send, the update policy, resends
//   policy.ts        who may change a group, and the membership lines
//   key-packages.ts  my KeyPackages on the relay; held.ts, framing.ts
//
// - Receiving (deliver, deliverAll): in the relay's order, one message at a time; a message
//   resolves once it is processed AND the group state is saved (§10 "Client storage": event
//   emitted → state → the caller acks), each changed group saved once per delivery batch
//   (EngineState.settle, which says why a crash in between loses nothing). A message for a future epoch is held until the commit leading there
//   arrives; past the bound, FetchCommits, and failing that a re-join by external commit.
// - Sending: the pending message is emitted at once; the DM group is created on first send;
//   my commits go through the relay's ordering (first commit for an epoch wins, §8.1): on
//   EPOCH_TAKEN the engine discards its commit, processes the winner and makes the change again.
import type { MlsMember } from "../../protocol/mls/index.js";
import { parseConversationId } from "../../protocol/names.js";
import { MlsStoreError } from "../mls-store.js";
import type { MessageKind, Outcome, RoomView } from "../types.js";
import type { MlsQueued } from "./ds-api.js";
import { Committer } from "./commit.js";
import { KeyChanges, type KeyChangeResult } from "./key-change.js";
import { DM_WELCOME_WAIT_MS, EngineState, fail, ok, PAST_EPOCH_MS, refusedError, sentence, type ConversationDeps } from "./engine-state.js";
import { KeyPackageKeeper } from "./key-packages.js";
import { Receiver } from "./receive.js";
import { Recreator } from "./recreate.js";
import { Sender } from "./send.js";
import { claimDevices, DeviceHealer } from "./devices.js";

export { LOBBY_MAX_MEMBERS, type ConversationDeps } from "./engine-state.js";

/** Names per ClaimKeyPackages request (the relay's limit, §8.2). */
const CLAIM_MAX = 100;
/** /leave proposes again after a refusal for a past epoch (the group moved on) at most this often in all. */
const LEAVE_ATTEMPTS = 3;

export class MlsConversations {
  private readonly s: EngineState;
  private readonly r: Receiver;
  private readonly c: Committer;
  private readonly o: Sender;
  private readonly k: KeyChanges;
  private readonly h: DeviceHealer;
  private readonly unsubscribe: (() => void) | undefined;

  constructor(d: ConversationDeps) {
    this.s = new EngineState(d);
    this.r = new Receiver(this.s);
    this.c = new Committer(this.s);
    this.r.c = this.c;
    this.c.r = this.r;
    this.r.recreator = new Recreator(this.s, this.c);
    this.o = new Sender(this.s, this.c);
    this.k = new KeyChanges(this.s, this.c, this.r);
    this.s.flushSoon = (conv) => { void this.s.run(() => this.o.flush(conv)).catch((e: unknown) => d.logger.warn("mls.send.failed", { conversation: conv, error: (e as Error).message })); };
    this.h = new DeviceHealer(this.s, this.c);
    this.s.healSoon = (conv) => {
      if (d.devices === undefined || this.s.closed) return;
      void this.s.run(() => this.h.heal(conv)).catch((e: unknown) => d.logger.warn("mls.devices.heal_failed", { conversation: conv, error: (e as Error).message }));
    };
    // PROTOCOL.md §4.5: my newer list heals every group (a linked device added, an unlinked one
    // removed); anyone's newer list may let through a commit refused for their device.
    this.unsubscribe = d.devices?.onChange((username, list, previous) => {
      for (const dev of [...(previous?.devices ?? []), ...list.devices]) {
        if (this.s.deviceNames.size >= 4_096) this.s.deviceNames.delete(this.s.deviceNames.keys().next().value!);
        this.s.deviceNames.set(dev.mlsSignatureKey.toString("hex"), dev.name);
      }
      if (!this.s.started || this.s.closed) return;
      void this.s.run(async () => {
        await this.r.recovery.listChanged(username);
        if (username === d.me) await this.h.healAll();
      }).catch((e: unknown) => d.logger.warn("mls.devices.list_change_failed", { user: username, error: (e as Error).message }));
    });
  }

  /** Heals every group now (tests; the engine does it at connect and when my list changes). */
  healDevices(): Promise<void> {
    return this.s.run(() => this.h.healAll());
  }

  // ---- lifecycle ----------------------------------------------------------------------------

  /** Restores the MLS client and every kept group, publishes a KeyPackage, comes back into the lobby, publishes the rest. */
  async start(): Promise<void> {
    if (this.s.started) throw new Error("the conversation engine is started already");
    this.s.started = true;
    await this.s.run(async () => {
      const client = await this.s.d.store.loadOrCreateClient();
      this.s.client = client;
      this.s.d.content.thisDevice?.(client.signaturePublicKey); // my leaf vs my other devices' (§4.5, §11)
      for (const conv of this.s.d.store.conversations()) {
        try {
          const g = this.s.d.store.loadGroup(client, conv, this.s.groupOptions());
          if (g === undefined || !g.active) continue;
          this.s.adopt(conv, g);
        } catch (e) {
          this.s.d.logger.warn("mls.group.restore_failed", { conversation: conv, error: (e as Error).message });
          this.s.notice("warn", `the kept state of ${conv} could not be restored; it will be joined again`, conv);
        }
      }
      // My commits left unanswered when the last run ended: settled first, before anything of
      // those groups (commit.ts resumeKept, §8.1).
      await this.c.resumeKept();
      // The rooms kept from the last run, for the sidebar's first screen (ChatClient's Welcome came before them).
      this.s.d.emit({ type: "rooms", rooms: this.s.rooms() });
      this.s.keyPackages = new KeyPackageKeeper(client, this.s.d.store, this.s.d.ds, this.s.d.logger, () => Math.floor(this.s.d.clock() / 1000));
      // One KeyPackage first (a DM to me can be opened once I am seen), then the lobby, then the
      // rest: generating 20 X-Wing KeyPackages takes seconds the lobby need not wait.
      await this.s.keyPackages.start();
      const lobby = await this.c.enterLobby();
      if (!lobby.ok) this.s.d.logger.warn("mls.lobby.not_joined", { error: JSON.stringify(lobby.error) });
      await this.s.keyPackages.fill();
      for (const conv of [...this.s.outbox.keys()]) this.s.flushSoon(conv); // kept from before a restart (send.ts)
      for (const conv of this.s.conversations()) this.s.healSoon(conv); // at connect (devices.ts)
    });
  }

  /**
   * A new session after a reconnect: back into the lobby (with resync when commits were missed
   * meanwhile: lobby changes reach only members online), and what waits in the outboxes is sent.
   */
  reconnected(): Promise<void> {
    if (!this.s.started) return Promise.resolve();
    return this.s.run(async () => {
      await this.c.resumeKept(); // commits whose answer the dropped connection took (§8.1)
      const lobby = await this.c.enterLobby();
      if (!lobby.ok) this.s.d.logger.warn("mls.lobby.not_joined", { error: JSON.stringify(lobby.error) });
      for (const conv of [...this.s.outbox.keys()]) void this.s.run(() => this.o.flush(conv));
      for (const conv of this.s.conversations()) this.s.healSoon(conv); // at connect (devices.ts)
    });
  }

  /** Resolves once every operation queued so far has finished (tests, shutdown). */
  async idle(): Promise<void> {
    for (;;) {
      const t = this.s.tail;
      await t.then(() => {}, () => {});
      if (t === this.s.tail) return;
    }
  }

  /**
   * The engine is about to close (the session ends for good): what is queued still runs, but a
   * commit waiting for an answer stops waiting (commit.ts), so idle() resolves.
   */
  stopping(): void {
    this.s.stopping = true;
  }

  close(): void {
    this.s.closed = true;
    this.unsubscribe?.();
    for (const conv of this.s.held.conversations()) this.s.held.drop(conv);
    this.s.settle(); // the dropped held messages: resolved as before (nothing of theirs to save)
  }

  /** The relay says how many one-time KeyPackages it keeps for me (KeyPackageStatus). */
  keyPackageStatus(oneTimeLeft: number): Promise<void> {
    return this.s.run(async () => { await this.s.keyPackages?.status(oneTimeLeft); });
  }

  members(conversationId: string): readonly string[] | undefined {
    return this.s.members(conversationId);
  }

  /** The members' verified identities (username, identity key), when I am in the conversation. */
  memberIdentities(conversationId: string): readonly MlsMember[] | undefined {
    const g = this.s.groups.get(conversationId);
    return g?.active === true ? g.members() : undefined;
  }

  /** The room's creator (the one who may remove others), when known. */
  creator(conversationId: string): string | undefined {
    return this.s.creator(conversationId);
  }

  rooms(): RoomView[] {
    return this.s.rooms();
  }

  conversations(): string[] {
    return this.s.conversations();
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
    return this.deliverAll([q])[0]!;
  }

  /**
   * The messages of one delivery batch, in the relay's order, as one operation: each is processed
   * and its event emitted in turn, and each group they changed is saved once at the end (or
   * before a handshake message among them), then their promises resolve together (the caller
   * acks them: history → state → ack, §10.4). One promise per message, as deliver() gives.
   */
  /** True when this delivery was dropped as a redelivery of a message processed in this run (after a move between relays). */
  wasRedelivery(q: MlsQueued): boolean {
    return this.r.redelivered.has(q);
  }

  deliverAll(qs: readonly MlsQueued[]): Promise<void>[] {
    if (!this.s.started) return qs.map(() => Promise.reject(new Error("the conversation engine is not started")));
    const settlers: { resolve: () => void; reject: (e: unknown) => void }[] = [];
    const out = qs.map((): Promise<void> => new Promise<void>((resolve, reject) => { settlers.push({ resolve, reject }); }));
    this.s.run(async () => {
      for (const [i, q] of qs.entries()) {
        const { resolve, reject } = settlers[i]!;
        if (this.s.closed) { reject(new Error("the conversation engine is closed")); continue; }
        const complete = (): void => this.s.completed(resolve, reject);
        try {
          if (await this.r.handle(q, complete)) complete();
        } catch (e) {
          if (e instanceof MlsStoreError || this.s.closed) { reject(e); continue; }
          this.s.d.logger.warn("mls.deliver.failed", { conversation: q.conversationId, seq: q.seq, error: (e as Error).message });
          complete();
        }
      }
    }).catch((e: unknown) => {
      // run() refused (the engine is closed): none of them was processed.
      for (const s of settlers) s.reject(e);
    });
    return out;
  }

  /**
   * Call every minute or so: fetches the missing commits of groups whose held messages passed
   * their bound, commits a leave the members before me did not, sweeps the lobby (its janitor),
   * deletes past-epoch keys after an hour, joins a DM whose Welcome never came, and joins again
   * past a device I unlinked once its back-off has passed.
   */
  checkTimers(): Promise<void> {
    return this.s.run(async () => {
      const now = this.s.d.clock();
      await this.r.recovery.retryUnanswered();
      await this.r.recovery.retryRejoins(now);
      for (const conv of this.s.held.overdue(now)) await this.r.recovery.recover(conv);
      await this.r.checkLeaves(now);
      await this.c.sweepLobby(now);
      for (const [conv, seen] of this.s.epochSeen) {
        const g = this.s.groups.get(conv);
        if (g?.active === true && now - seen.since >= PAST_EPOCH_MS) this.s.forgetPast(conv, g);
      }
      for (const [conv, since] of [...this.s.waitingWelcome]) {
        if (now - since < DM_WELCOME_WAIT_MS) continue;
        if (this.s.groups.get(conv)?.active === true) { this.s.waitingWelcome.delete(conv); continue; }
        this.s.d.logger.info("mls.dm.no_welcome", { conversation: conv });
        const r = await this.c.externalJoin(conv);
        if (r.ok) this.s.flushSoon(conv);
        else this.s.waitingWelcome.set(conv, now);
      }
    });
  }

  /** Joins a room: by external commit from its GroupInfo, or creates it (I am its creator) when the relay keeps none. */
  joinRoom(room: string): Promise<Outcome<RoomView>> {
    return this.s.run(async () => {
      const conv = parseConversationId(room);
      if (conv?.kind !== "room") return fail({ kind: "invalid-room", room: String(room), reason: "a room name starts with # and has 1-32 letters, digits, - or _" });
      const have = this.s.groups.get(room);
      if (have?.active === true) return ok({ room, members: this.s.members(room) ?? [] });
      const r = await this.c.joinOrCreate(room);
      if (!r.ok) return r;
      if ((this.s.outbox.get(room)?.length ?? 0) > 0) this.s.flushSoon(room); // kept from before (send.ts)
      return ok({ room, members: this.s.members(room) ?? [] });
    });
  }

  /** I decided to go on with a user's changed key (key-change.ts): their stale leaves are replaced where I can. */
  keyDecided(username: string, fpr: Buffer, verified: boolean): Promise<KeyChangeResult> {
    return this.k.decided(username, fpr, verified);
  }

  /** Leaves a room: proposes my removal (a member commits it) and forgets the group. */
  leaveRoom(room: string): Promise<Outcome> {
    return this.s.run(async () => {
      const g = this.s.groups.get(room);
      if (g === undefined || !g.active) return fail({ kind: "not-a-member", room, action: "leave" });
      // /leave (PROTOCOL.md §4.5): on my primary (or alone with my devices) one commit removes
      // my other devices' leaves first; then my leaf proposes its leave (MLS does not let a
      // member commit its own removal). A linked device takes only itself out: no linked device
      // may commit my other listed devices out while others are in the group (policy.ts: a
      // stolen one the relay still shows as listed must not cut my real devices out).
      const others = g.members().filter((m) => m.username === this.s.d.me && m.leafIndex !== g.myLeafIndex);
      const onlyMine = g.members().every((m) => m.username === this.s.d.me);
      const primary = this.s.d.devices === undefined || this.s.d.devices.self.primary;
      if (others.length > 0 && (primary || onlyMine)) {
        const out = await this.c.commitChange(room, (x) => x.changeOwnDevices(x.members().filter((m) => m.username === this.s.d.me && m.leafIndex !== x.myLeafIndex).map((m) => m.leafIndex), []),
          { added: [], removed: [] }, undefined, (x) => x.members().some((m) => m.username === this.s.d.me && m.leafIndex !== x.myLeafIndex));
        if (!out.ok) return out;
      }
      let cur = this.s.groups.get(room);
      if (cur === undefined || !cur.active) return fail({ kind: "not-a-member", room, action: "leave" });
      const staying = cur.members().some((m) => m.username === this.s.d.me && m.leafIndex !== cur!.myLeafIndex);
      // A proposal is committed only in its own epoch: one the group moved past meanwhile is
      // refused EPOCH_TAKEN by the relay (§8.3); the commits it missed are fetched and the leave
      // proposed again, so that my leaf never stays behind unread.
      // Stopped at a change I refused, I cannot reach the relay's epoch: I leave on my side only
      // (review round 9), and say so.
      let stuck = false;
      for (let attempt = 0; cur.members().length > 1; attempt++) {
        const proposal = await cur.proposeLeave();
        const r = await this.s.d.ds.sendMls(proposal);
        if (r.ok) break;
        this.s.reload(room);
        if (r.code !== "EPOCH_TAKEN" || attempt >= LEAVE_ATTEMPTS - 1) return fail(refusedError(r));
        const was = cur.epoch;
        await this.r.recovery.catchUp(room);
        const next = this.s.groups.get(room);
        if (next === undefined || !next.active) return ok(undefined); // removed meanwhile: nothing left to leave
        // No progress: stopped at a change I refused (leave on my side), or a fetch not answered
        // (try again; a blip must not make me forget a room my leaf stays in, review round 10).
        const rec = this.r.recovery;
        if (next.epoch === was && (rec.rejoinable.has(room) || rec.awaitingList.has(room) || rec.undecided.has(room))) { stuck = true; break; }
        cur = next;
      }
      if (stuck) this.s.notice("warn", `${room} is stopped at a change you refused, so your leave could not reach its members: you left on this device, and your place in the group stays until its creator re-creates it`, room);
      this.s.forget(room);
      this.s.line(room, { kind: "left", by: this.s.d.me, users: [], atMs: this.s.d.clock() });
      if (staying) this.s.notice("info", `you left ${room} on this device only: your other devices are still in it (leaving on your primary device takes them all out)`, room);
      return ok(undefined);
    });
  }

  /** The room's creator removes a member; everyone else is refused here (and by every member's policy). */
  kick(room: string, username: string): Promise<Outcome> {
    return this.s.run(async () => {
      const g = this.s.groups.get(room);
      if (g === undefined || !g.active) return fail({ kind: "not-a-member", room, action: "send" });
      const creator = this.s.creators.get(room);
      if (creator !== this.s.d.me) return fail(creator === undefined ? { kind: "not-the-creator", room } : { kind: "not-the-creator", room, creator });
      if (username === this.s.d.me) return fail(sentence("to remove yourself, leave the room"));
      if (!g.members().some((m) => m.username === username)) return fail({ kind: "not-in-room", room, username });
      return this.c.commitChange(room, (x) => x.removeMembers([username]), { added: [], removed: [username] },
        { kind: "removed", by: this.s.d.me, users: [username], creator: this.s.d.me, atMs: this.s.d.clock() }, (x) => x.members().some((m) => m.username === username));
    });
  }

  /** A member adds someone to a room from one of their KeyPackages (Add + Welcome). */
  async invite(room: string, username: string): Promise<Outcome> {
    const r = await this.inviteMany(room, [username]);
    return r.ok ? ok(undefined) : r;
  }

  /**
   * A member adds several users to a room (Add + Welcome), as many per commit as fit one relay
   * frame (§8.3 "Sizes": in a room of 500, about 70), each commit its own epoch. Nobody is added
   * when one of them is already in the room or has no KeyPackage on the relay.
   */
  inviteMany(room: string, usernames: readonly string[]): Promise<Outcome<{ readonly commits: number }>> {
    return this.s.run(async () => {
      const g = this.s.groups.get(room);
      if (g === undefined || !g.active) return fail({ kind: "not-a-member", room, action: "send" });
      const names = [...new Set(usernames)];
      if (names.length === 0) return fail(sentence("name at least one user to invite"));
      for (const u of names) if (g.members().some((m) => m.username === u)) return fail({ kind: "already-in-room", room, username: u });
      await this.s.d.ensureKeys?.(names); // first contact pins them first (PROTOCOL.md §4.4)
      const entries: { username: string; keyPackage: Uint8Array }[] = [];
      for (let i = 0; i < names.length; i += CLAIM_MAX) {
        const batch = names.slice(i, i + CLAIM_MAX);
        // One KeyPackage per device, each checked against the user's device list (devices.ts).
        const claimed = await claimDevices(this.s, batch);
        if (!claimed.ok) return claimed;
        for (const u of batch) {
          const mine = claimed.value.entries.filter((e) => e.username === u);
          if (mine.length === 0) return fail({ kind: "no-key-package", username: u });
          for (const e of mine) entries.push({ username: u, keyPackage: e.keyPackage });
        }
      }
      return this.c.addInChunks(room, entries, Math.floor(this.s.d.clock() / 1000));
    });
  }

  // ---- sending ------------------------------------------------------------------------------

  /**
   * Sends text to a conversation: the pending message is emitted at once, then `message-state`
   * accepted or failed. A DM's group is made on first send; a room must be joined first.
   */
  send(conversationId: string, text: string, kind: MessageKind = "text"): Outcome<{ readonly id: string }> {
    return this.o.send(conversationId, text, kind);
  }

  /** Sends a failed message of mine again, as a new message with the same text. */
  retry(conversationId: string, id: string): Outcome<{ readonly id: string }> {
    return this.o.retry(conversationId, id);
  }

  /** §11.3: the user read this conversation up to this message: a read marker for my other devices (send.ts). */
  markRead(conversationId: string, message: { readonly from: string; readonly id: string }): void {
    this.o.markRead(conversationId, message);
  }
}
