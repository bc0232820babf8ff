// Regression (red team rt-relay, "relay CPU per token"): PublishKeyPackages decoded and verified
// all 100 KeyPackages before looking at the per-device cap, so resending the same 100 cost ~27 ms
// of relay CPU per token, ending MLS_LIMIT. PROTOCOL.md §8.2, §13.2: sizes, the KeyPackages the
// device keeps already and the cap come before any decode or verification, and a publish takes a
// token per 10 KeyPackages. Asserted by the order of the checks, not by CPU time.
import { afterEach, describe, expect, it } from "vitest";
import { ErrorCode } from "../../src/gen/securechat/v1/chat.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { ask, makeKeyPackage, mlsPerson, must, sendCommit } from "../helpers/mls-ds.js";
import { TestRelay } from "../helpers/relay-harness.js";

let relay: TestRelay | undefined;
afterEach(async () => {
  await relay?.cleanup();
});

const publish = (oneTime: Buffer[], lastResort: Buffer = Buffer.alloc(0)) => ({ $case: "publishKeyPackages" as const, value: { requestId: 0, oneTime, lastResort } });

describe("PublishKeyPackages: the cap before any verification", () => {
  it("over the cap is refused MLS_LIMIT without decoding anything; the kept ones again cost no check", { timeout: 60_000 }, async () => {
    relay = await TestRelay.start({ logLevel: "warn" });
    const mallory = await fixtureIdentity("mallory");
    const m = await relay.connect(mallory);
    const p = await mlsPerson(mallory);
    const kps: Buffer[] = [];
    for (let i = 0; i < 100; i++) kps.push(await makeKeyPackage(p));
    expect(await must(m, publish(kps), "keyPackageStatus")).toMatchObject({ oneTimeLeft: 100 });
    // Bytes that are no KeyPackage at all, and a KeyPackage whose credential names another user:
    // had they been decoded or verified, the answer would be BAD_MLS_MESSAGE or FORGED_SENDER.
    const junk = Array.from({ length: 5 }, (_, i) => Buffer.alloc(200, i + 1));
    expect(await ask(m, publish(junk), "keyPackageStatus")).toMatchObject({ ok: false, value: { code: ErrorCode.ERROR_CODE_MLS_LIMIT,
      detail: "you keep 100 one-time KeyPackages here; 5 more would pass the limit of 100" } });
    const forged = await makeKeyPackage(await mlsPerson(mallory, "alice"));
    expect(await ask(m, publish([forged]), "keyPackageStatus")).toMatchObject({ ok: false, value: { code: ErrorCode.ERROR_CODE_MLS_LIMIT } });
    // The same 100 again (an answer lost): kept once, answered as kept, not refused.
    expect(await must(m, publish(kps), "keyPackageStatus")).toMatchObject({ oneTimeLeft: 100 });
    // Sizes come first too: an oversized one is refused before the cap is read.
    expect(await ask(m, publish([...kps.slice(0, 3), Buffer.alloc(9000)]), "keyPackageStatus"))
      .toMatchObject({ ok: false, value: { code: ErrorCode.ERROR_CODE_FRAME_TOO_LARGE, detail: "one-time KeyPackage #4 has 9000 bytes; the most is 8192" } });
  });

  it("under the cap, a new KeyPackage is still checked (decoded and verified) before anything is stored", async () => {
    relay = await TestRelay.start({ logLevel: "warn" });
    const mallory = await fixtureIdentity("mallory");
    const m = await relay.connect(mallory);
    const own = await makeKeyPackage(await mlsPerson(mallory));
    const forged = await makeKeyPackage(await mlsPerson(mallory, "alice"));
    expect(await ask(m, publish([own, forged]), "keyPackageStatus")).toMatchObject({ ok: false, value: { code: ErrorCode.ERROR_CODE_FORGED_SENDER,
      detail: "one-time KeyPackage #2 is for 'alice'; you may publish only your own" } });
    expect(await ask(m, publish([own, Buffer.alloc(200, 7)]), "keyPackageStatus")).toMatchObject({ ok: false, value: { code: ErrorCode.ERROR_CODE_BAD_MLS_MESSAGE } });
    expect(await must(m, publish([own]), "keyPackageStatus")).toMatchObject({ oneTimeLeft: 1 });
  });

  it("takes a token per 10 KeyPackages (relay clock held still)", async () => {
    const now = Date.now();
    relay = await TestRelay.start({ logLevel: "warn", clock: () => now, limits: { messagesPerSecond: 1, burst: 12 } });
    const mallory = await fixtureIdentity("mallory");
    const m = await relay.connect(mallory);
    const p = await mlsPerson(mallory);
    const kps: Buffer[] = [];
    for (let i = 0; i < 20; i++) kps.push(await makeKeyPackage(p));
    // 20 one-time + 1 last-resort = 21 KeyPackages: 3 tokens of 12.
    await must(m, publish(kps, await makeKeyPackage(p, true)), "keyPackageStatus");
    const claim = { $case: "claimKeyPackages" as const, value: { requestId: 0, usernames: ["ghost"], deviceIds: [] } };
    for (let i = 0; i < 9; i++) expect((await ask(m, claim, "keyPackageList")).ok).toBe(true);
    expect(await ask(m, claim, "keyPackageList")).toMatchObject({ ok: false, value: { code: ErrorCode.ERROR_CODE_RATE_LIMITED } });
  });
});

// Regression (relay resource gaps, "SendCommit / PublishGroupInfo decode large MLS structures for
// one token"): PROTOCOL.md §13.2, these writes take one token per started 64 KiB of the MLS bytes
// they carry (writeTokens), before any decode.
describe("SendCommit, PublishGroupInfo, RecreateRoom: a token per started 64 KiB, before any decode", () => {
  it("takes tokens by size, and refuses a write its tokens do not cover without decoding it (relay clock held still)", async () => {
    const now = Date.now();
    relay = await TestRelay.start({ logLevel: "warn", clock: () => now, limits: { messagesPerSecond: 1, burst: 20 } });
    const m = await relay.connect(await fixtureIdentity("mallory"));
    const KIB = 1024;
    const junk = (bytes: number) => Buffer.alloc(bytes, 0x5a);
    // 600 KiB over commit and Welcome: 10 tokens of 20; decoded, and refused as no MLS message.
    const c = await sendCommit(m, junk(400 * KIB), undefined, { welcome: junk(200 * KIB) });
    expect(c.accepted).toBe(false);
    expect(c.code).not.toBe(ErrorCode.ERROR_CODE_RATE_LIMITED);
    // A 400 KiB GroupInfo: 7 tokens; 3 left.
    const info = await ask(m, { $case: "publishGroupInfo", value: { requestId: 0, groupInfo: junk(400 * KIB) } }, "groupInfoResult");
    expect(info.ok).toBe(false);
    expect(info.value).not.toMatchObject({ code: ErrorCode.ERROR_CODE_RATE_LIMITED });
    // A 200 KiB re-creation would take 4: refused before its GroupInfo is decoded, taking none.
    expect(await ask(m, { $case: "recreateRoom", value: { requestId: 0, groupInfo: junk(200 * KIB) } }, "groupInfoResult"))
      .toMatchObject({ ok: false, value: { code: ErrorCode.ERROR_CODE_RATE_LIMITED } });
    // ... so the 3 tokens left are still there, and no more.
    const claim = { $case: "claimKeyPackages" as const, value: { requestId: 0, usernames: ["ghost"], deviceIds: [] } };
    for (let i = 0; i < 3; i++) expect((await ask(m, claim, "keyPackageList")).ok).toBe(true);
    expect(await ask(m, claim, "keyPackageList")).toMatchObject({ ok: false, value: { code: ErrorCode.ERROR_CODE_RATE_LIMITED } });
    // A SendCommit refused for its rate is answered by a CommitResult saying so.
    expect(await sendCommit(m, junk(10)))
      .toMatchObject({ accepted: false, code: ErrorCode.ERROR_CODE_RATE_LIMITED });
  });
});
