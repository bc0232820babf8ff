// The protocol v2 engine's shared state (conversations.ts is the engine): the MLS client, the
// groups by conversation, who may remove whom, what waits to be sent, what is held; and the small
// steps every part of the engine takes on it (adopt a group, forget one, show a line). One
// operation at a time runs on it (run()): MLS state is never touched by two operations at once.
import { ErrorCode, errorCodeFromJSON } from "../../gen/securechat/v1/chat.js";
import type { Logger } from "../../protocol/log.js";
import { sanitizeLine } from "../../protocol/sanitize.js";
import { MlsGroup, type AppKind, type GroupOptions, type IdentityKey, type MlsClient, type TrustHook } from "../../protocol/mls/index.js";
import { describeClientError, type ClientError } from "../errors.js";
import type { MlsKeyStore } from "../mls-store.js";
import type { DeviceDirectory } from "../devices-api.js";
import type { MembershipLine, MessageKind, Outcome, RoomView, SessionEvent } from "../types.js";
import type { ContentLayer, SealedContent } from "./content-api.js";
import type { DsApi, DsRefused } from "./ds-api.js";
import { HeldMessages, HOLD_MAX_MESSAGES, HOLD_MAX_MS } from "./held.js";
import { KeyPackageKeeper } from "./key-packages.js";
import { DroppedDevices } from "./dropped-devices.js";
import { encodeListClaim, ListClaims } from "./list-claims.js";
import type { MlsOutboxStore } from "./outbox-store.js";
import { creatorOf } from "./policy.js";

export const LOBBY_MAX_MEMBERS = 1_000;
/** How often a commit is made again after losing its epoch (EPOCH_TAKEN) before giving up. */
export const COMMIT_ATTEMPTS = 5;
/** The retained past epoch's keys are deleted at the latest this long after a new epoch (§7). */
/**
 * How long a DM's messages wait for the Welcome of the group the peer registered first, before
 * joining it by external commit (the peer may have registered it long ago and never added me,
 * or I lost my state of it).
 */
export const DM_WELCOME_WAIT_MS = 2 * 60_000;
export const PAST_EPOCH_MS = 60 * 60_000;

export interface ConversationDeps {
  readonly me: string;
  readonly identity: IdentityKey;
  readonly store: MlsKeyStore;
  readonly ds: DsApi;
  readonly content: ContentLayer;
  /** The pins (PROTOCOL.md §6): decides about each identity key a credential names. */
  readonly trust?: TrustHook;
  /**
   * Pins these users' keys from the relay's directory when none are pinned (PROTOCOL.md §6
   * first contact; PROTOCOL.md §4.4): called before their KeyPackages are claimed, so `trust`
   * then compares the credential with a pin.
   */
  readonly ensureKeys?: (usernames: readonly string[]) => Promise<void>;
  /** The relay's directory: whether a user is online now (the lobby janitor, policy.ts lobbySweepAllowed); without it nobody removes others from the lobby. */
  readonly isOnline?: (username: string) => boolean;
  /** The relay's directory answered a lookup without this name: no such user on this relay. */
  readonly isUnknown?: (username: string) => boolean;
  /** The durable outbox (outbox-store.ts in the state db); without it, pending messages live in memory only. */
  readonly outbox?: MlsOutboxStore;
  /**
   * Verified device lists (PROTOCOL.md §4.5) and which device I am: one leaf per device
   * (devices.ts). Without it every user is one device (a relay or tests from before devices).
   */
  readonly devices?: DeviceDirectory;
  readonly clock: () => number;
  readonly logger: Logger;
  readonly emit: (e: SessionEvent) => void;
  readonly limits?: { readonly lobbyMaxMembers?: number; readonly holdMessages?: number; readonly holdMs?: number; readonly commitBytes?: number };
}

export interface Outgoing {
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

export const isTransient = (e: ClientError): boolean => e.kind === "not-connected" || e.kind === "connection-lost" || e.kind === "no-answer";

export const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

/** Failures of the connection, not the relay's refusal (ds-transport.ts): the same bytes may be sent again later. */
export const TRANSIENT = new Set(["NOT_CONNECTED", "CONNECTION_LOST", "NO_ANSWER"]);

export function refusedError(r: DsRefused): ClientError {
  if (r.code === "NOT_CONNECTED") return { kind: "not-connected" };
  if (r.code === "CONNECTION_LOST") return { kind: "connection-lost" };
  if (r.code === "NO_ANSWER") return { kind: "no-answer" };
  const code = errorCodeFromJSON(`ERROR_CODE_${r.code}`);
  return { kind: "refused", code: code === ErrorCode.UNRECOGNIZED ? ErrorCode.ERROR_CODE_UNSPECIFIED : code, detail: r.detail };
}

export function sentence(detail: string): ClientError {
  return { kind: "refused", code: ErrorCode.ERROR_CODE_UNSPECIFIED, detail };
}

export const ok = <T>(value: T): Outcome<T> => ({ ok: true, value });
export const fail = (error: ClientError): { ok: false; error: ClientError } => ({ ok: false, error });


export class EngineState {
  client: MlsClient | undefined;
  keyPackages: KeyPackageKeeper | undefined;
  readonly groups = new Map<string, MlsGroup>();
  readonly creators = new Map<string, string>();
  /** The epoch at which this run created or joined each group (not after a restore). */
  readonly joinedAt = new Map<string, bigint>();
  /** Members who proposed to leave in the current epoch, per conversation (their removal is allowed). */
  readonly leaving = new Map<string, Set<string>>();
  /** Per conversation: when its current epoch began and who has been heard from in it (§7 key deletion). */
  readonly epochSeen = new Map<string, { since: number; heard: Set<string> }>();
  readonly outbox = new Map<string, Outgoing[]>();
  readonly held: HeldMessages;
  readonly recovering = new Set<string>();
  /** Failed messages of mine, for retry: id → what was sent. */
  readonly failedMessages = new Map<string, { conversationId: string; kind: MessageKind; text: string }>();
  tail: Promise<unknown> = Promise.resolve();
  /** Conversations whose group an application message changed since the last save (settle). */
  private readonly unsaved = new Set<string>();
  /** Deliveries processed since the last settle: resolved once their groups are saved. */
  private readonly completions: { resolve: () => void; reject: (e: unknown) => void }[] = [];
  started = false;
  closed = false;
  /** Closing: the work queued so far finishes, but nothing waits for the relay any more (a commit's lost answer). */
  stopping = false;
  /**
   * DMs whose group the peer registered first while mine waited to be sent: since when I wait
   * for their Welcome (past DM_WELCOME_WAIT_MS, I join their group by external commit instead).
   */
  readonly waitingWelcome = new Map<string, number>();
  /** Sends what waits in a conversation's outbox (set by the engine: send.ts). */
  flushSoon: (conversationId: string) => void = () => {};
  /** Names of devices (by MLS signature key, hex) from lists seen before the newest: a removed device's line still names it. */
  readonly deviceNames = new Map<string, string>();
  /** Runs the self-heal of my devices' leaves in a conversation after the current operation (set by the engine: devices.ts). */
  healSoon: (conversationId: string) => void = () => {};

  /** A self-heal's commit taking out devices my list no longer names is being made: its claim says so (list-claims.ts). */
  healing = false;
  /** What other users' devices say of their device lists (list-claims.ts); none without a device directory. */
  readonly listClaims: ListClaims | undefined;
  /** Devices a user's primary took out under a list newer than mine (dropped-devices.ts); none without a device directory. */
  readonly dropped: DroppedDevices | undefined;

  constructor(readonly d: ConversationDeps) {
    this.held = new HeldMessages(d.limits?.holdMessages ?? HOLD_MAX_MESSAGES, d.limits?.holdMs ?? HOLD_MAX_MS);
    const devices = d.devices;
    this.listClaims = devices === undefined ? undefined
      : new ListClaims({ devices, clock: d.clock, logger: d.logger, warn: (text, conv) => this.notice("warn", text, conv) });
    this.dropped = devices === undefined ? undefined : new DroppedDevices(devices, d.logger, d.store);
  }

  members(conversationId: string): readonly string[] | undefined {
    const g = this.groups.get(conversationId);
    return g?.active === true ? [...new Set(g.members().map((m) => m.username))] : undefined;
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

  failed(conversationId: string, id: string, error: ClientError, m?: Outgoing): void {
    if (m !== undefined) this.failedMessages.set(id, { conversationId, kind: m.kind, text: m.text });
    this.d.outbox?.remove(id);
    const failure = error.kind === "refused" ? error.detail : describeClientError(error);
    this.d.emit({ type: "message-state", conversationId, id, state: "failed", failure, error });
  }

  /**
   * Runs one operation after the previous one. When it ends (however it ends), the groups its
   * messages changed are saved and only then are the deliveries it completed resolved (their
   * acks follow): see settle().
   */
  run<T>(f: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new Error("the conversation engine is closed"));
    const g = async (): Promise<T> => {
      try {
        return await f();
      } finally {
        this.settle();
      }
    };
    const p = this.tail.then(g, g);
    this.tail = p.catch(() => {});
    return p;
  }

  /**
   * An application message changed this conversation's group (a message key used): it is saved
   * at the end of the operation (or before the next handshake message), once for all the
   * messages of a delivery batch, not once each (PROTOCOL.md §10.4 "Client storage").
   */
  changed(conv: string): void {
    this.unsaved.add(conv);
  }

  /**
   * A delivery was processed (or refused, or dropped): resolved once every group changed so far
   * is saved (settle), rejected (not acked: the relay sends it again) when a save fails.
   */
  completed(resolve: () => void, reject: (e: unknown) => void): void {
    this.completions.push({ resolve, reject });
  }

  /**
   * history → state → ack (§10.4) for what was processed so far: every group changed since the
   * last settle is saved (one write each), then the completed deliveries are resolved. A crash
   * before the save loses nothing: the saved state still holds the keys of every message not
   * acked (MLS derives a sender's keys forward from the saved generation), the relay sends them
   * again, they open, and the content layer, which kept their ids with the history, flags each
   * as a duplicate (not shown twice). Never throws: a failed save rejects the deliveries.
   */
  settle(): void {
    let failure: unknown;
    for (const conv of [...this.unsaved]) {
      const g = this.groups.get(conv);
      try {
        // A group forgotten or replaced meanwhile was deleted or saved by that step.
        if (g?.active === true) this.d.store.saveGroup(g);
        this.unsaved.delete(conv);
      } catch (e) {
        failure ??= e;
        this.d.logger.error("mls.group.save_failed", { conversation: conv, error: (e as Error).message });
      }
    }
    const done = this.completions.splice(0);
    for (const c of done) {
      if (failure === undefined) c.resolve();
      else c.reject(failure);
    }
  }


  mustClient(): MlsClient {
    if (this.client === undefined) throw new Error("the conversation engine is not started");
    return this.client;
  }

  groupOptions(): GroupOptions {
    // §4.5: every message I make says which version of my own device list I hold (list-claims.ts).
    const devices = this.d.devices;
    const claim = devices === undefined ? {} : { authenticatedData: () => encodeListClaim(devices.known(this.d.me)?.version, this.healing) };
    return this.d.trust === undefined ? claim : { trust: this.d.trust, ...claim };
  }

  /** `fresh`: created or joined just now (messages of earlier epochs were never for me). */
  adopt(conv: string, g: MlsGroup, fresh = false): void {
    this.groups.set(conv, g);
    if (fresh) this.joinedAt.set(conv, g.epoch);
    this.waitingWelcome.delete(conv);
    const c = creatorOf(g);
    if (c !== undefined) this.creators.set(conv, c);
    else this.creators.delete(conv);
    this.newEpoch(conv);
  }

  creatorField(conv: string): { creator?: string } {
    const c = this.creators.get(conv);
    return c === undefined ? {} : { creator: c };
  }

  leavingOf(conv: string): Set<string> {
    let s = this.leaving.get(conv);
    if (s === undefined) this.leaving.set(conv, (s = new Set()));
    return s;
  }

  /** Restores a group as last saved (after a message that must leave no trace in its state). */
  reload(conv: string): void {
    // Handshake messages are processed after a settle (receive.ts): what is reloaded is the
    // state just before this message, not one missing the messages opened before it.
    const g = this.d.store.loadGroup(this.mustClient(), conv, this.groupOptions());
    if (g?.active === true) this.groups.set(conv, g);
  }

  /** I left or was removed: the group's secrets and state are deleted. */
  forget(conv: string): void {
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

  newEpoch(conv: string): void {
    this.epochSeen.set(conv, { since: this.d.clock(), heard: new Set() });
  }

  /** §7: the past epoch's keys go once every other member has spoken in the new one. */
  heard(conv: string, g: MlsGroup, from: string): void {
    const seen = this.epochSeen.get(conv);
    // Infinity: the past epoch's keys are gone already (nothing to do until the next epoch).
    if (seen === undefined || seen.since === Number.POSITIVE_INFINITY) return;
    seen.heard.add(from);
    const others = g.members().filter((m) => m.username !== this.d.me);
    if (others.every((m) => seen.heard.has(m.username))) this.forgetPast(conv, g);
  }

  forgetPast(conv: string, g: MlsGroup): void {
    g.forgetPastEpochs();
    this.changed(conv); // saved when the operation ends (settle), before any ack
    this.epochSeen.set(conv, { since: Number.POSITIVE_INFINITY, heard: new Set() });
  }

  async topUpFromStore(): Promise<void> {
    const oneTime = this.d.store.keyPackages().filter((k) => !k.lastResort).length;
    await this.keyPackages?.status(oneTime);
  }

  line(conversationId: string, line: MembershipLine): void {
    this.d.emit({ type: "membership", conversationId, line });
    if (conversationId.startsWith("#")) this.d.emit({ type: "rooms", rooms: this.rooms() });
  }

  /**
   * A notice of the engine. Its labels are checked where they enter (ds-transport.ts); the text is
   * made one safe line all the same (PROTOCOL.md §11.2), as it may carry an error's message.
   */
  notice(level: "info" | "warn" | "error", text: string, conversationId?: string): void {
    const line = sanitizeLine(text);
    this.d.emit(conversationId === undefined ? { type: "notice", level, text: line } : { type: "notice", level, text: line, conversationId });
  }
}
