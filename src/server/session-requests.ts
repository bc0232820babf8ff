// The requests a session answers one at a time, each after the sends before it (session.ts's
// serve): Ping, LookupKeys, the MLS Delivery Service's (PROTOCOL.md §8.2), the device lists'
// (§4.5) and protocol v1's rooms. Each takes its tokens first (§13.2), then is answered or
// refused (a RequestError; a SendCommit always by a CommitResult), the session going on. A
// request its frame scan refused undecoded (frame-scan.ts) is refused here, after its tokens.
import { ErrorCode, type LookupKeys } from "../gen/securechat/v1/chat.js";
import { writeTokens } from "../protocol/limits.js";
import { fetchDeviceLists, publishDeviceList } from "./devices.js";
import type { DirectoryUser } from "./directory.js";
import { logReasonOf, Refusal, requestRefusalOf, sessionEnd } from "./errors.js";
import type { RefusedRequest, RequestFrame, ResponseFrame } from "./frames.js";
import type { HandshakeDeps } from "./handshake.js";
import type { TokenBucket } from "./limits.js";
import type { MlsDeliveryService } from "./mls-ds.js";

/** A request answered here: any but the sends and acks, which session.ts takes in its pipeline. */
export type HandledFrame = Exclude<RequestFrame, { $case: "send" | "sendMls" | "ack" }>;

/** LookupKeys naming more than max_recipients users (the frame scan, frame-scan.ts, refuses the same count undecoded). */
export function tooManyLookupNames(max: number, n: number): Refusal {
  return new Refusal(ErrorCode.ERROR_CODE_BAD_FRAME, `a key lookup may name at most ${max} users, not ${n}`);
}

/** One session's request handlers (made by session.ts's AuthenticatedSession, which hands each request here). */
export class SessionRequests {
  /**
   * @param bucket the device's sending bucket (§13.2): per queue address, continued across its sessions.
   * @param lookupBucket key lookups have their own bucket: fetching keys must not eat into the sending allowance.
   * @param mlsDs the MLS Delivery Service requests (mls-ds.ts), the session's own.
   * @param reply writes one answer and waits until it was sent (session.ts).
   */
  constructor(private readonly deps: HandshakeDeps, private readonly user: DirectoryUser, private readonly protocolVersion: number,
    private readonly bucket: TokenBucket, private readonly lookupBucket: TokenBucket, private readonly mlsDs: MlsDeliveryService,
    private readonly reply: (frame: ResponseFrame) => Promise<void>) {}

  private get username(): string {
    return this.user.username;
  }

  /** One request; `refused`: its scan refused it (frame carries only its request id), answered as its handler refuses. */
  async handle(frame: HandledFrame, refused?: RefusedRequest): Promise<void> {
    switch (frame.$case) {
      case "hello":
      case "proof":
        throw sessionEnd.outOfOrder(`${frame.$case === "hello" ? "Hello" : "Proof"} is only valid at the start of a session`);
      case "ping":
        return this.reply({ $case: "pong", value: { nonce: frame.value.nonce, serverTimeMs: this.deps.clock() } });
      case "joinRoom":
      case "leaveRoom":
      case "listRooms":
      case "listMembers":
        return this.roomRequest(frame);
      case "lookupKeys":
        return this.lookupKeys(frame.value, refused);
      case "publishKeyPackages":
      case "claimKeyPackages":
      case "publishGroupInfo":
      case "fetchGroupInfo":
      case "sendCommit":
      case "fetchCommits":
      case "recreateRoom":
        return this.mlsRequest(frame, refused);
      case "publishDeviceList":
      case "fetchDeviceLists":
        return this.deviceRequest(frame, refused);
      default: {
        const unreachable: never = frame;
        throw new Error(`unhandled frame ${String(unreachable)}`);
      }
    }
  }

  /**
   * LookupKeys: the full entries of the names asked for that are bound (others are left out).
   * Rate-limited by a bucket of its own (as fast as sends), so it cannot be used to make the
   * relay write keys without bound.
   */
  private async lookupKeys(req: LookupKeys, refused?: RefusedRequest): Promise<void> {
    const { deps } = this;
    const fail = (code: ErrorCode, detail: string) => this.reply({ $case: "error", value: { requestId: req.requestId, code, detail } });
    if (!this.lookupBucket.take(deps.clock())) {
      return fail(ErrorCode.ERROR_CODE_RATE_LIMITED, `looking up keys too fast: this relay allows ${deps.limits.messagesPerSecond} requests per second; wait a moment`);
    }
    if (refused !== undefined) return fail(refused.refusal.code, refused.refusal.message);
    if (req.usernames.length > deps.limits.maxRecipients) {
      const e = tooManyLookupNames(deps.limits.maxRecipients, req.usernames.length);
      return fail(e.code, e.message);
    }
    // The names not in memory are read together (one store call), invalid ones never (§6).
    const names = [...new Set(req.usernames)];
    const found = deps.directory.getMany(names);
    const entries = names.flatMap((n) => {
      const u = found.get(n);
      return u === undefined ? [] : [u.toWire(deps.router.isOnline(n))];
    });
    deps.logger.debug("keys.lookup", { user: this.username, asked: req.usernames.length, found: entries.length });
    await this.reply({ $case: "keyList", value: { requestId: req.requestId, entries } });
  }

  /**
   * The MLS Delivery Service requests (PROTOCOL.md §8.2). Writes take a token of the sending
   * bucket, fetches one of the lookup bucket, before any check. A refusal is a RequestError, except
   * for SendCommit, always answered by a CommitResult.
   */
  private async mlsRequest(frame: Extract<RequestFrame, { $case: "publishKeyPackages" | "claimKeyPackages" | "publishGroupInfo" | "fetchGroupInfo" | "sendCommit" | "fetchCommits" | "recreateRoom" }>, refused?: RefusedRequest): Promise<void> {
    const { deps } = this;
    const requestId = frame.value.requestId;
    const fetch = frame.$case === "fetchGroupInfo" || frame.$case === "fetchCommits";
    // §13.2: a PublishKeyPackages takes a token per 10 KeyPackages it carries (each may cost a
    // verification); a SendCommit, PublishGroupInfo or RecreateRoom one per started 64 KiB of the
    // MLS structures it carries (each byte is decoded). Taken before any decode.
    // A request its scan refused takes the tokens its decoded frame would have (frame-scan.ts).
    const tokens = refused?.tokens ?? (fetch ? 1 : writeTokens(frame, deps.limits.burst));
    try {
      if (!(fetch ? this.lookupBucket : this.bucket).take(deps.clock(), tokens)) {
        throw this.tooManyRequests();
      }
      if (refused !== undefined) throw refused.refusal;
      switch (frame.$case) {
        case "publishKeyPackages":
          return await this.reply(this.mlsDs.publishKeyPackages(this.user, frame.value));
        case "claimKeyPackages":
          return await this.reply(this.mlsDs.claimKeyPackages(this.user, frame.value));
        case "publishGroupInfo":
          return await this.reply(this.mlsDs.publishGroupInfo(this.user, frame.value));
        case "fetchGroupInfo":
          return await this.reply(this.mlsDs.fetchGroupInfo(this.user, frame.value));
        case "sendCommit":
          return await this.reply({ $case: "commitResult", value: this.mlsDs.sendCommit(this.user, frame.value) });
        case "fetchCommits":
          return await this.reply(this.mlsDs.fetchCommits(this.user, frame.value));
        case "recreateRoom":
          return await this.reply(this.mlsDs.recreateRoom(this.user, frame.value));
      }
    } catch (thrown) {
      const e = requestRefusalOf(thrown);
      deps.logger.info("mls.refused", { user: this.username, request: frame.$case, code: logReasonOf(e), detail: e.message });
      if (frame.$case === "sendCommit") {
        return this.reply({ $case: "commitResult", value: { requestId, accepted: false, code: e.code, detail: e.message, groupId: Buffer.alloc(0), epoch: 0, currentEpoch: 0, winner: "" } });
      }
      return this.reply({ $case: "error", value: { requestId, code: e.code, detail: e.message } });
    }
  }

  /**
   * PublishDeviceList and FetchDeviceLists (PROTOCOL.md §4.5, devices.ts). A publish takes a token
   * of the sending bucket, a fetch one of the lookup bucket. A refusal is a RequestError.
   */
  private async deviceRequest(frame: Extract<RequestFrame, { $case: "publishDeviceList" | "fetchDeviceLists" }>, refused?: RefusedRequest): Promise<void> {
    const { deps } = this;
    const requestId = frame.value.requestId;
    try {
      if (!(frame.$case === "fetchDeviceLists" ? this.lookupBucket : this.bucket).take(deps.clock())) {
        throw this.tooManyRequests();
      }
      if (refused !== undefined) throw refused.refusal;
      return await this.reply(frame.$case === "publishDeviceList" ? publishDeviceList(deps, this.user, frame.value) : fetchDeviceLists(deps, frame.value));
    } catch (thrown) {
      const e = requestRefusalOf(thrown);
      deps.logger.info("devices.refused", { user: this.username, request: frame.$case, code: logReasonOf(e), detail: e.message });
      return this.reply({ $case: "error", value: { requestId, code: e.code, detail: e.message } });
    }
  }

  private async roomRequest(frame: Extract<RequestFrame, { $case: "joinRoom" | "leaveRoom" | "listRooms" | "listMembers" }>): Promise<void> {
    const { rooms } = this.deps;
    const requestId = frame.value.requestId;
    try {
      if (!this.bucket.take(this.deps.clock())) {
        throw this.tooManyRequests();
      }
      if (this.protocolVersion === 2) {
        // PROTOCOL.md §8.2: rooms are MLS groups; the v1 room tables are not used.
        if (frame.$case === "listRooms") return await this.reply(this.mlsDs.listRooms(this.user, frame.value));
        throw new Refusal(ErrorCode.ERROR_CODE_BAD_FRAME, `this session speaks protocol v2: rooms are MLS groups, joined by external commit and left by a leave proposal, and their members are read from the group (${frame.$case === "joinRoom" ? "JoinRoom" : frame.$case === "leaveRoom" ? "LeaveRoom" : "ListMembers"} is protocol v1)`);
      }
      switch (frame.$case) {
        case "joinRoom":
          return rooms.join(this.username, frame.value);
        case "leaveRoom":
          return rooms.leave(this.username, frame.value);
        case "listRooms":
          return await this.reply(rooms.list(this.username, frame.value));
        case "listMembers":
          return await this.reply(rooms.members(this.username, frame.value));
      }
    } catch (thrown) {
      const e = requestRefusalOf(thrown);
      return this.reply({ $case: "error", value: { requestId, code: e.code, detail: e.message } });
    }
  }

  /** A request over its bucket (§13.2), any but a key lookup (lookupKeys words its own). */
  private tooManyRequests(): Refusal {
    const { limits } = this.deps;
    return new Refusal(ErrorCode.ERROR_CODE_RATE_LIMITED,
      `too many requests: this relay accepts ${limits.messagesPerSecond} per second (bursts of ${limits.burst}); wait a moment and try again`);
  }
}
