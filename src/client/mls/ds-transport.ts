// DsApi (ds-api.ts) over the client's relay connection: the MLS Delivery Service requests of
// PROTOCOL.md §8.2 as request/answer pairs matched by request id (RelayConnection.request),
// and SendMls (§8.3), which no request id answers: its SendResult names the message id,
// SHA-256(mls)[0..16], so the session hands every SendResult to onSendResult first (as the v1
// outbox matches its SendResults by message id).
//
// Failures that are not the relay's refusal come back as DsRefused too, with these codes (not
// ErrorCode names): NOT_CONNECTED (no session now), NO_ANSWER (none within the timeout),
// CONNECTION_LOST (the session ended first), UNEXPECTED_ANSWER (an answer of another kind). For
// all four the request may or may not have reached the relay: resending the same bytes is safe
// (a SendMls duplicate and an identical commit resend are both answered accepted again).
//
// The relay's sentences are untrusted text: each detail is sanitised to one line here. Its labels
// (a delivery's conversation id, sender and sender device; a fetched commit's sender; a claimed
// KeyPackage's device id) must be well-formed names, or what carries them goes no further:
// nothing the relay chooses reaches an event or a notice unchecked (PROTOCOL.md §11.2).
import { createHash } from "node:crypto";
import { errorCodeToJSON, SendStatus, type Delivery, type DeviceSeen, type MlsDelivery, type SendResult, type SessionRequest } from "../../gen/securechat/v1/chat.js";
import { fromWireDeviceList, isDeviceId, toWireDeviceList, type SignedDeviceList } from "../../protocol/devices.js";
import { GROUP_ID_MAX_BYTES } from "../../protocol/mls/index.js";
import { isValidUsername, parseConversationId } from "../../protocol/names.js";
import { sanitizeLine } from "../../protocol/sanitize.js";
import { describeClientError, type ClientError } from "../errors.js";
import type { ResponseFrame } from "../pending-requests.js";
import type { Outcome } from "../types.js";
import type { DsApi, DsCommit, DsCommitAccepted, DsEpochTaken, DsGroupInfo, DsRefused, DsResult, MlsQueued } from "./ds-api.js";

type RequestFrame = NonNullable<SessionRequest["frame"]>;
type Answer = NonNullable<ResponseFrame>;
type AnswerValues = { [F in Answer as F["$case"]]: F["value"] };
type ValueOf<C extends Answer["$case"]> = AnswerValues[C];

/** What the transport needs of the connection (RelayConnection has both). */
export interface DsLink {
  /** Sends a request frame with a fresh request id; resolves with the frame answering that id, or the error. */
  request(build: (requestId: number) => RequestFrame): Promise<Outcome<ResponseFrame>>;
  /** Writes a frame answered by no request id (SendMls), after a send token; false when not sent. */
  sendFrame(frame: RequestFrame): Promise<boolean>;
}

/** How long a SendMls waits for its SendResult (the relay answers once the message is on disk). */
export const SEND_MLS_TIMEOUT_MS = 30_000;

/** Longest relay sentence kept in a DsRefused. */
const MAX_DETAIL_CHARS = 300;

/** The relay's id for an MLS message (PROTOCOL.md §8.1): SHA-256(mls)[0..16]. */
export function mlsMessageId(mls: Uint8Array): Buffer {
  return createHash("sha256").update(mls).digest().subarray(0, 16);
}

/**
 * A Delivery.mls whose labels cannot be valid (PROTOCOL.md §11.2, §12): refused without reaching
 * the engine, and acknowledged (it can never become valid). `reason` says which label, for the
 * log; `conversationId` and `sender` are the delivery's own only when they are well-formed (a
 * refusal shown names them; the relay's malformed ones are never echoed).
 */
export interface MalformedMls {
  readonly seq: number;
  readonly malformed: "conversation-id" | "sender" | "sender-device" | "group-id";
  readonly conversationId: string | undefined;
  readonly sender: string | undefined;
}

/** A relay's label as a log may show it: escaped (JSON, then sanitised) and cut short. */
export function loggedLabel(label: string): string {
  return sanitizeLine(JSON.stringify(label.slice(0, 64)));
}

/** Which label of an MLS delivery is malformed, if any: the conversation id, the sender (a username), the sender device (empty or a device id), the group id's length. */
function malformedLabel(conversationId: string, mls: MlsDelivery): MalformedMls["malformed"] | undefined {
  if (parseConversationId(conversationId) === undefined) return "conversation-id";
  if (!isValidUsername(mls.sender)) return "sender";
  if (mls.senderDevice !== "" && !isDeviceId(mls.senderDevice)) return "sender-device";
  if (mls.groupId.length > GROUP_ID_MAX_BYTES) return "group-id";
  return undefined;
}

/**
 * A Delivery that carries an MLS message, as the engine takes it; a MalformedMls when one of its
 * labels is not well-formed (refused, never handed to the engine); undefined for a v1 Envelope delivery.
 */
export function mlsQueuedOf(d: Delivery): MlsQueued | MalformedMls | undefined {
  if (d.mls === undefined) return undefined;
  const malformed = malformedLabel(d.conversationId, d.mls);
  if (malformed !== undefined) {
    return {
      seq: d.seq, malformed,
      conversationId: parseConversationId(d.conversationId) === undefined ? undefined : d.conversationId,
      sender: isValidUsername(d.mls.sender) ? d.mls.sender : undefined,
    };
  }
  return { seq: d.seq, conversationId: d.conversationId, relayTimeMs: d.relayTimeMs, item: d.mls };
}

/** True for what mlsQueuedOf refused as malformed. */
export function isMalformedMls(q: MlsQueued | MalformedMls): q is MalformedMls {
  return "malformed" in q;
}

function refusedBy(code: number, detail: string): DsRefused {
  const name = errorCodeToJSON(code).replace(/^ERROR_CODE_/, "");
  return { ok: false, code: name, detail: sanitizeLine(detail).slice(0, MAX_DETAIL_CHARS) };
}

function localFailure(e: ClientError): DsRefused {
  if (e.kind === "refused") return refusedBy(e.code, e.detail);
  const code = e.kind === "not-connected" || e.kind === "closed" ? "NOT_CONNECTED"
    : e.kind === "no-answer" ? "NO_ANSWER"
    : e.kind === "connection-lost" ? "CONNECTION_LOST"
    : "UNEXPECTED_ANSWER";
  return { ok: false, code, detail: describeClientError(e) };
}

const unexpected = (wanted: string, got: string | undefined): DsRefused =>
  ({ ok: false, code: "UNEXPECTED_ANSWER", detail: `the relay answered ${got ?? "nothing"} where ${wanted} was expected` });

interface PendingSend {
  readonly resolve: (r: DsResult<{ readonly queuedFor: readonly string[] }>) => void;
  readonly timer: NodeJS.Timeout;
}

export class DsTransport implements DsApi {
  /** SendMls waiting for their SendResult, by message id (hex), oldest first (the same bytes may be in flight twice). */
  private readonly sends = new Map<string, PendingSend[]>();

  constructor(private readonly link: DsLink, private readonly options: { readonly sendTimeoutMs?: number } = {}) {}

  /** SendMls waiting for an answer now. */
  get pendingSends(): number {
    let n = 0;
    for (const list of this.sends.values()) n += list.length;
    return n;
  }

  /** One request and its answer of case `c`; anything else is a DsRefused. */
  private async ask<C extends Answer["$case"]>(build: (requestId: number) => RequestFrame, c: C): Promise<ValueOf<C> | DsRefused> {
    const out = await this.link.request(build);
    if (!out.ok) return localFailure(out.error);
    if (out.value?.$case !== c) return unexpected(c, out.value?.$case);
    const value: unknown = out.value.value;
    return value as ValueOf<C>;
  }

  async publishKeyPackages(oneTime: readonly Uint8Array[], lastResort: Uint8Array | undefined): Promise<DsResult<{ readonly oneTimeLeft: number; readonly lastResortPresent: boolean }>> {
    const r = await this.ask((requestId) => ({
      $case: "publishKeyPackages", value: { requestId, oneTime: oneTime.map((k) => Buffer.from(k)), lastResort: Buffer.from(lastResort ?? new Uint8Array(0)) },
    }), "keyPackageStatus");
    if ("ok" in r) return r;
    return { ok: true, oneTimeLeft: r.oneTimeLeft, lastResortPresent: r.lastResortPresent };
  }

  async claimKeyPackages(usernames: readonly string[], deviceIds: readonly string[] = []): ReturnType<DsApi["claimKeyPackages"]> {
    const r = await this.ask((requestId) => ({ $case: "claimKeyPackages", value: { requestId, usernames: [...usernames], deviceIds: [...deviceIds] } }), "keyPackageList");
    if ("ok" in r) return r;
    // Only the names asked for: a relay naming others is answered with what was asked. A device
    // id that is neither empty (a user without a device list) nor a device id is no device of theirs.
    const asked = new Set(usernames);
    const devices = deviceIds.length === 0 ? undefined : new Set(deviceIds);
    const entries = r.entries.filter((e) => asked.has(e.username) && (e.deviceId === "" || isDeviceId(e.deviceId)) && (devices === undefined || devices.has(e.deviceId))).map((e) => ({ username: e.username, deviceId: e.deviceId, keyPackage: e.keyPackage, lastResort: e.lastResort }));
    return { ok: true, entries, missing: r.missing.filter((u) => asked.has(u)) };
  }

  /**
   * The device lists the relay keeps for these users (PROTOCOL.md §4.5), NOT verified (the
   * DeviceDirectory verifies each). Only lists and last-seen rows of the users asked for are kept.
   */
  async fetchDeviceLists(usernames: readonly string[]): Promise<DsResult<{ readonly lists: readonly SignedDeviceList[]; readonly seen: readonly DeviceSeen[] }>> {
    const r = await this.ask((requestId) => ({ $case: "fetchDeviceLists", value: { requestId, usernames: [...usernames] } }), "deviceListResult");
    if ("ok" in r) return r;
    const asked = new Set(usernames);
    return { ok: true, lists: r.lists.filter((l) => asked.has(l.username)).map(fromWireDeviceList), seen: r.seen.filter((s) => asked.has(s.username)) };
  }

  /** Replaces my device list at the relay by this newer one (§4.5); resolves with the list the relay keeps now (not verified). */
  async publishDeviceList(list: SignedDeviceList): Promise<DsResult<{ readonly list: SignedDeviceList }>> {
    const r = await this.ask((requestId) => ({ $case: "publishDeviceList", value: { requestId, list: toWireDeviceList(list) } }), "deviceListResult");
    if ("ok" in r) return r;
    const kept = r.lists.find((l) => l.username === list.username);
    if (kept === undefined) return { ok: false, code: "UNEXPECTED_ANSWER", detail: "the relay answered a published device list without keeping one" };
    return { ok: true, list: fromWireDeviceList(kept) };
  }

  async publishGroupInfo(groupInfo: Uint8Array): Promise<DsResult<DsGroupInfo>> {
    const r = await this.ask((requestId) => ({ $case: "publishGroupInfo", value: { requestId, groupInfo: Buffer.from(groupInfo) } }), "groupInfoResult");
    if ("ok" in r) return r;
    return { ok: true, groupId: r.groupId, groupInfo: r.groupInfo, groupInfoEpoch: r.groupInfoEpoch, currentEpoch: r.currentEpoch };
  }

  async recreateRoom(groupInfo: Uint8Array): Promise<DsResult<DsGroupInfo>> {
    const r = await this.ask((requestId) => ({ $case: "recreateRoom", value: { requestId, groupInfo: Buffer.from(groupInfo) } }), "groupInfoResult");
    if ("ok" in r) return r;
    return { ok: true, groupId: r.groupId, groupInfo: r.groupInfo, groupInfoEpoch: r.groupInfoEpoch, currentEpoch: r.currentEpoch };
  }

  async fetchGroupInfo(by: { readonly groupId: Uint8Array } | { readonly conversationId: string }): Promise<DsResult<DsGroupInfo>> {
    const key = "groupId" in by ? { groupId: Buffer.from(by.groupId), conversationId: "" } : { groupId: Buffer.alloc(0), conversationId: by.conversationId };
    const r = await this.ask((requestId) => ({ $case: "fetchGroupInfo", value: { requestId, ...key } }), "groupInfoResult");
    if ("ok" in r) return r;
    return { ok: true, groupId: r.groupId, groupInfo: r.groupInfo, groupInfoEpoch: r.groupInfoEpoch, currentEpoch: r.currentEpoch };
  }

  async sendCommit(c: DsCommit): Promise<DsResult<DsCommitAccepted> | DsEpochTaken> {
    const r = await this.ask((requestId) => ({
      $case: "sendCommit",
      value: {
        requestId, commit: Buffer.from(c.commit), groupInfo: Buffer.from(c.groupInfo), added: [...c.added], removed: [...c.removed],
        welcome: Buffer.from(c.welcome ?? new Uint8Array(0)), ratchetTree: Buffer.from(c.ratchetTree ?? new Uint8Array(0)),
      },
    }), "commitResult");
    if ("ok" in r) return r;
    if (r.accepted) return { ok: true, epoch: r.epoch, currentEpoch: r.currentEpoch };
    const refused = refusedBy(r.code, r.detail);
    if (refused.code === "EPOCH_TAKEN") return { ...refused, code: "EPOCH_TAKEN", currentEpoch: r.currentEpoch, winner: sanitizeLine(r.winner).slice(0, 64) };
    return refused;
  }

  async fetchCommits(groupId: Uint8Array, fromEpoch: number): Promise<DsResult<{ readonly commits: readonly { readonly epoch: number; readonly commit: Uint8Array; readonly sender: string }[]; readonly currentEpoch: number; readonly more: boolean }>> {
    const r = await this.ask((requestId) => ({ $case: "fetchCommits", value: { requestId, groupId: Buffer.from(groupId), fromEpoch } }), "commitList");
    if ("ok" in r) return r;
    // Each commit's sender is the relay's label (the committer is read from the commit itself):
    // one that is not a username makes the whole answer malformed, not a name shown on screen.
    if (r.commits.some((x) => !isValidUsername(x.sender))) return { ok: false, code: "UNEXPECTED_ANSWER", detail: "the relay answered commits under a sender that is not a username" };
    return { ok: true, commits: r.commits.map((x) => ({ epoch: x.epoch, commit: x.commit, sender: x.sender })), currentEpoch: r.currentEpoch, more: r.more };
  }

  /** SendMls; resolved by onSendResult (the SendResult with its message id), the timeout, or sessionEnded. */
  sendMls(mls: Uint8Array): Promise<DsResult<{ readonly queuedFor: readonly string[] }>> {
    const key = mlsMessageId(mls).toString("hex");
    return new Promise((resolve) => {
      const settle = (r: DsResult<{ readonly queuedFor: readonly string[] }>): void => {
        clearTimeout(p.timer);
        const list = this.sends.get(key);
        const i = list?.indexOf(p) ?? -1;
        if (i < 0) return; // settled already
        list!.splice(i, 1);
        if (list!.length === 0) this.sends.delete(key);
        resolve(r);
      };
      const p: PendingSend = {
        resolve: settle,
        timer: setTimeout(() => settle({ ok: false, code: "NO_ANSWER", detail: "the relay did not answer in time" }), this.options.sendTimeoutMs ?? SEND_MLS_TIMEOUT_MS),
      };
      const list = this.sends.get(key);
      if (list === undefined) this.sends.set(key, [p]);
      else list.push(p);
      this.link.sendFrame({ $case: "sendMls", value: { mls: Buffer.from(mls) } }).then((sent) => {
        if (!sent) settle({ ok: false, code: "NOT_CONNECTED", detail: "not connected to the relay" });
      }, () => settle({ ok: false, code: "CONNECTION_LOST", detail: "the connection to the relay was lost" }));
    });
  }

  /**
   * A SendResult from the relay: answers the oldest SendMls waiting with that message id. True
   * when it did (the session then gives it to nobody else), false for a v1 outbox's SendResult.
   */
  onSendResult(r: SendResult): boolean {
    const key = Buffer.from(r.messageId).toString("hex");
    const p = this.sends.get(key)?.[0];
    if (p === undefined) return false;
    if (r.status === SendStatus.SEND_STATUS_ACCEPTED) p.resolve({ ok: true, queuedFor: r.queuedFor.map((u) => sanitizeLine(u).slice(0, 64)) });
    else p.resolve(refusedBy(r.code, r.detail));
    return true;
  }

  /** The session ended: every SendMls still waiting is answered CONNECTION_LOST (the engine resends the same bytes later). */
  sessionEnded(): void {
    const all = [...this.sends.values()].flat();
    for (const p of all) p.resolve({ ok: false, code: "CONNECTION_LOST", detail: "the connection to the relay was lost" });
  }
}
