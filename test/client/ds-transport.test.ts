// DsTransport (src/client/mls/ds-transport.ts) against a scripted link: each DsApi call writes
// the request the relay expects and maps its answer (or refusal, or a local failure) to the
// DsApi result; SendMls is answered by the SendResult with its message id, whoever else's
// SendResults come in between, and is never left waiting (timeout, session end, not sent).
import { describe, expect, it } from "vitest";
import { ErrorCode, MlsKind, SendStatus, type SendResult, type SessionRequest } from "../../src/gen/securechat/v1/chat.js";
import type { ResponseFrame } from "../../src/client/pending-requests.js";
import type { Outcome } from "../../src/client/types.js";
import { DsTransport, loggedLabel, mlsMessageId, mlsQueuedOf, type DsLink } from "../../src/client/mls/ds-transport.js";

type RequestFrame = NonNullable<SessionRequest["frame"]>;

/** A link whose answers a test gives, recording what was written. */
class ScriptedLink implements DsLink {
  readonly requests: RequestFrame[] = [];
  readonly sent: RequestFrame[] = [];
  connected = true;
  constructor(private readonly answer: (f: RequestFrame) => Outcome<ResponseFrame>) {}

  request(build: (requestId: number) => RequestFrame): Promise<Outcome<ResponseFrame>> {
    const f = build(42);
    this.requests.push(f);
    return Promise.resolve(this.answer(f));
  }

  sendFrame(frame: RequestFrame): Promise<boolean> {
    if (!this.connected) return Promise.resolve(false);
    this.sent.push(frame);
    return Promise.resolve(true);
  }
}

const ok = (frame: ResponseFrame): Outcome<ResponseFrame> => ({ ok: true, value: frame });
const result = (mls: Uint8Array, over: Partial<SendResult> = {}): SendResult =>
  ({ messageId: mlsMessageId(mls), status: SendStatus.SEND_STATUS_ACCEPTED, code: ErrorCode.ERROR_CODE_UNSPECIFIED, detail: "", queuedFor: [], ...over });

describe("DsTransport requests", () => {
  it("writes each request with its fields and maps the answer", async () => {
    const gid = Buffer.from("g");
    const link = new ScriptedLink((f) => {
      switch (f.$case) {
        case "publishKeyPackages": return ok({ $case: "keyPackageStatus", value: { requestId: 42, oneTimeLeft: 3, lastResortPresent: true } });
        case "claimKeyPackages": return ok({ $case: "keyPackageList", value: { requestId: 42, entries: [
          { username: "bob", keyPackage: Buffer.from("kb"), lastResort: false, deviceId: "0011223344556677" },
          { username: "mallory", keyPackage: Buffer.from("km"), lastResort: false, deviceId: "" },
        ], missing: ["carol", "zed"] } });
        case "fetchGroupInfo":
        case "publishGroupInfo": return ok({ $case: "groupInfoResult", value: { requestId: 42, groupId: gid, groupInfo: Buffer.from("gi"), groupInfoEpoch: 4, currentEpoch: 5 } });
        case "fetchCommits": return ok({ $case: "commitList", value: { requestId: 42, groupId: gid, commits: [{ epoch: 4, commit: Buffer.from("c4"), sender: "bob" }], currentEpoch: 5, more: false } });
        default: throw new Error(`unexpected ${f.$case}`);
      }
    });
    const t = new DsTransport(link);
    expect(await t.publishKeyPackages([Buffer.from("k1")], undefined)).toEqual({ ok: true, oneTimeLeft: 3, lastResortPresent: true });
    expect(link.requests[0]).toEqual({ $case: "publishKeyPackages", value: { requestId: 42, oneTime: [Buffer.from("k1")], lastResort: Buffer.alloc(0) } });
    // Only the names asked for come back, whatever the relay adds.
    expect(await t.claimKeyPackages(["bob", "carol"])).toEqual({ ok: true, entries: [{ username: "bob", deviceId: "0011223344556677", keyPackage: Buffer.from("kb"), lastResort: false }], missing: ["carol"] });
    expect(await t.fetchGroupInfo({ conversationId: "#ops" })).toEqual({ ok: true, groupId: gid, groupInfo: Buffer.from("gi"), groupInfoEpoch: 4, currentEpoch: 5 });
    expect(link.requests[2]).toEqual({ $case: "fetchGroupInfo", value: { requestId: 42, groupId: Buffer.alloc(0), conversationId: "#ops" } });
    await t.fetchGroupInfo({ groupId: gid });
    expect(link.requests[3]).toEqual({ $case: "fetchGroupInfo", value: { requestId: 42, groupId: gid, conversationId: "" } });
    expect(await t.publishGroupInfo(Buffer.from("gi"))).toMatchObject({ ok: true, currentEpoch: 5 });
    expect(await t.fetchCommits(gid, 4)).toEqual({ ok: true, commits: [{ epoch: 4, commit: Buffer.from("c4"), sender: "bob" }], currentEpoch: 5, more: false });
  });

  it("maps commits: accepted, EPOCH_TAKEN with where the group is and who won, other refusals by code name", async () => {
    const answers: ResponseFrame[] = [
      { $case: "commitResult", value: { requestId: 42, accepted: true, code: 0, detail: "", groupId: Buffer.alloc(0), epoch: 3, currentEpoch: 4, winner: "" } },
      { $case: "commitResult", value: { requestId: 42, accepted: false, code: ErrorCode.ERROR_CODE_EPOCH_TAKEN, detail: "another commit (by bob) was accepted first\nfor epoch 3", groupId: Buffer.alloc(0), epoch: 3, currentEpoch: 4, winner: "bob" } },
      { $case: "commitResult", value: { requestId: 42, accepted: false, code: ErrorCode.ERROR_CODE_NOT_A_MEMBER, detail: "you are not a member", groupId: Buffer.alloc(0), epoch: 3, currentEpoch: 0, winner: "" } },
    ];
    const link = new ScriptedLink(() => ok(answers.shift()!));
    const t = new DsTransport(link);
    const c = { commit: Buffer.from("c"), groupInfo: Buffer.from("gi"), added: ["bob"], removed: [], welcome: Buffer.from("w"), ratchetTree: Buffer.from("t") };
    expect(await t.sendCommit(c)).toEqual({ ok: true, epoch: 3, currentEpoch: 4 });
    expect(link.requests[0]).toEqual({ $case: "sendCommit", value: { requestId: 42, commit: Buffer.from("c"), groupInfo: Buffer.from("gi"), added: ["bob"], removed: [], welcome: Buffer.from("w"), ratchetTree: Buffer.from("t") } });
    // The relay's sentence is untrusted text: one line.
    expect(await t.sendCommit(c)).toEqual({ ok: false, code: "EPOCH_TAKEN", detail: "another commit (by bob) was accepted first for epoch 3", currentEpoch: 4, winner: "bob" });
    expect(await t.sendCommit({ commit: c.commit, groupInfo: c.groupInfo, added: [], removed: [] })).toEqual({ ok: false, code: "NOT_A_MEMBER", detail: "you are not a member" });
    expect(link.requests[2]).toMatchObject({ value: { welcome: Buffer.alloc(0), ratchetTree: Buffer.alloc(0) } });
  });

  it("turns refusals, lost connections and answers of another kind into DsRefused", async () => {
    const outs: Outcome<ResponseFrame>[] = [
      { ok: false, error: { kind: "refused", code: ErrorCode.ERROR_CODE_MLS_LIMIT, detail: "too many" } },
      { ok: false, error: { kind: "not-connected" } },
      { ok: false, error: { kind: "no-answer" } },
      { ok: false, error: { kind: "connection-lost" } },
      ok({ $case: "pong", value: { nonce: 1, serverTimeMs: 0 } }),
    ];
    const t = new DsTransport(new ScriptedLink(() => outs.shift()!));
    const codes = [];
    for (let i = 0; i < 5; i++) codes.push(((await t.claimKeyPackages(["bob"])) as { code: string }).code);
    expect(codes).toEqual(["MLS_LIMIT", "NOT_CONNECTED", "NO_ANSWER", "CONNECTION_LOST", "UNEXPECTED_ANSWER"]);
  });
});

describe("DsTransport SendMls", () => {
  it("is answered by the SendResult with its message id, not by others'", async () => {
    const link = new ScriptedLink(() => {
      throw new Error("no request expected");
    });
    const t = new DsTransport(link);
    const [m1, m2] = [Buffer.from("mls one"), Buffer.from("mls two")];
    const p1 = t.sendMls(m1);
    const p2 = t.sendMls(m2);
    await Promise.resolve();
    expect(link.sent).toEqual([{ $case: "sendMls", value: { mls: m1 } }, { $case: "sendMls", value: { mls: m2 } }]);
    expect(t.onSendResult(result(Buffer.from("a v1 envelope's")))).toBe(false);
    expect(t.onSendResult(result(m2, { status: SendStatus.SEND_STATUS_REFUSED, code: ErrorCode.ERROR_CODE_QUEUE_FULL, detail: "full" }))).toBe(true);
    expect(t.onSendResult(result(m1, { queuedFor: ["bob"] }))).toBe(true);
    expect(await p1).toEqual({ ok: true, queuedFor: ["bob"] });
    expect(await p2).toEqual({ ok: false, code: "QUEUE_FULL", detail: "full" });
    expect(t.pendingSends).toBe(0);
    // Answered once: a second SendResult for m1 belongs to no one.
    expect(t.onSendResult(result(m1))).toBe(false);
  });

  it("the same bytes in flight twice get one answer each, oldest first", async () => {
    const t = new DsTransport(new ScriptedLink(() => ok(undefined)));
    const m = Buffer.from("same");
    const [a, b] = [t.sendMls(m), t.sendMls(m)];
    expect(t.onSendResult(result(m, { queuedFor: ["bob"] }))).toBe(true);
    expect(t.onSendResult(result(m))).toBe(true);
    expect([await a, await b]).toEqual([{ ok: true, queuedFor: ["bob"] }, { ok: true, queuedFor: [] }]);
  });

  it("never waits forever: not sent, session ended, or no answer in time", async () => {
    const link = new ScriptedLink(() => ok(undefined));
    const t = new DsTransport(link, { sendTimeoutMs: 50 });
    link.connected = false;
    expect(await t.sendMls(Buffer.from("x"))).toMatchObject({ ok: false, code: "NOT_CONNECTED" });
    link.connected = true;
    const lost = t.sendMls(Buffer.from("y"));
    t.sessionEnded();
    expect(await lost).toMatchObject({ ok: false, code: "CONNECTION_LOST" });
    expect(await t.sendMls(Buffer.from("z"))).toMatchObject({ ok: false, code: "NO_ANSWER" });
    expect(t.pendingSends).toBe(0);
  });

  it("mlsQueuedOf takes MLS deliveries and leaves Envelope ones", () => {
    const item = { kind: MlsKind.MLS_KIND_APPLICATION, groupId: Buffer.from("g"), sender: "bob", mls: Buffer.from("m"), ratchetTree: Buffer.alloc(0), epoch: 0, senderDevice: "" };
    expect(mlsQueuedOf({ seq: 9, conversationId: "#ops", envelope: undefined, mls: item, relayTimeMs: 5 })).toEqual({ seq: 9, conversationId: "#ops", relayTimeMs: 5, item });
    expect(mlsQueuedOf({ seq: 9, conversationId: "#ops", envelope: undefined, mls: undefined, relayTimeMs: 5 })).toBeUndefined();
  });

  it("mlsQueuedOf refuses a delivery whose labels cannot be valid, naming only the well-formed ones (PROTOCOL.md §11.2)", () => {
    const item = { kind: MlsKind.MLS_KIND_APPLICATION, groupId: Buffer.from("#ops\u0000gggggggggggggggg"), sender: "bob", mls: Buffer.from("m"), ratchetTree: Buffer.alloc(0), epoch: 0, senderDevice: "0011223344556677" };
    const of = (conversationId: string, over: Partial<typeof item>) => mlsQueuedOf({ seq: 9, conversationId, envelope: undefined, mls: { ...item, ...over }, relayTimeMs: 5 });
    // Legit labels: a room, a DM, the lobby; no device (a user without a list) or a device id.
    for (const conv of ["#ops", "dm:alice:bob", "lobby"]) expect(of(conv, {})).toMatchObject({ seq: 9, conversationId: conv, item: { sender: "bob" } });
    expect(of("#ops", { senderDevice: "" })).toMatchObject({ item: { senderDevice: "" } });
    // A conversation id with ESC, a newline, upper case, a DM out of order; a sender with controls or reserved; a device id not 16 hex.
    expect(of("#ops\u001b[31m", {})).toEqual({ seq: 9, malformed: "conversation-id", conversationId: undefined, sender: "bob" });
    expect(of("#ops\n20:41 carol  hi", {})).toMatchObject({ malformed: "conversation-id", conversationId: undefined });
    expect(of("#OPS", {})).toMatchObject({ malformed: "conversation-id" });
    expect(of("dm:bob:alice", {})).toMatchObject({ malformed: "conversation-id" });
    expect(of("#ops", { sender: "bob\u001b[8m" })).toEqual({ seq: 9, malformed: "sender", conversationId: "#ops", sender: undefined });
    expect(of("#ops", { sender: "bob\n20:41 carol" })).toMatchObject({ malformed: "sender", sender: undefined });
    expect(of("#ops", { sender: "" })).toMatchObject({ malformed: "sender" });
    expect(of("#ops", { sender: "relay" })).toMatchObject({ malformed: "sender" });
    expect(of("#ops", { senderDevice: "laptop\u001b[2J" })).toMatchObject({ malformed: "sender-device", conversationId: "#ops", sender: "bob" });
    expect(of("#ops", { senderDevice: "00112233445566778" })).toMatchObject({ malformed: "sender-device" });
    expect(of("#ops", { groupId: Buffer.alloc(86, 0x61) })).toMatchObject({ malformed: "group-id" });
    expect(of("#ops", { groupId: Buffer.alloc(85, 0x61) })).toMatchObject({ item: { sender: "bob" } });
  });

  it("a malformed label is logged escaped and cut short", () => {
    expect(loggedLabel("#ops\u001b]0;t\u0007\n")).toBe(String.raw`"#ops\u001b]0;t\u0007\n"`);
    expect(loggedLabel("bob\u202egnp.exe")).toBe('"bob\uFFFDgnp.exe"');
    expect(loggedLabel("x".repeat(1000))).toHaveLength(66);
  });

  it("a fetched commit under a sender that is not a username makes the answer malformed; a claimed package under a malformed device id is no device's", async () => {
    const gid = Buffer.from("g");
    const link = new ScriptedLink((f) => {
      switch (f.$case) {
        case "fetchCommits": return ok({ $case: "commitList", value: { requestId: 42, groupId: gid, commits: [{ epoch: 4, commit: Buffer.from("c4"), sender: "bob\u001b[8m" }], currentEpoch: 5, more: false } });
        case "claimKeyPackages": return ok({ $case: "keyPackageList", value: { requestId: 42, entries: [
          { username: "bob", keyPackage: Buffer.from("kb"), lastResort: false, deviceId: "0011223344556677" },
          { username: "bob", keyPackage: Buffer.from("kx"), lastResort: false, deviceId: "phone\u001b[31m" },
        ], missing: [] } });
        default: throw new Error(`unexpected ${f.$case}`);
      }
    });
    const t = new DsTransport(link);
    const r = await t.fetchCommits(gid, 4);
    expect(r).toMatchObject({ ok: false, code: "UNEXPECTED_ANSWER" });
    expect(JSON.stringify(r)).not.toContain("\\u001b");
    expect(await t.claimKeyPackages(["bob"])).toEqual({ ok: true, entries: [{ username: "bob", deviceId: "0011223344556677", keyPackage: Buffer.from("kb"), lastResort: false }], missing: [] });
  });
});
