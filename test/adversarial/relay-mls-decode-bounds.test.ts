// The red team's rt4 finding at the relay (PROTOCOL.md §8.2 "What the relay decodes"): a
// PublishGroupInfo of ~990 KB made of 330,000 empty extensions took ~170 ms of the relay's event
// loop to decode (ts-mls builds one object per element), and one session sending it in a loop
// pushed another user's Ping to hundreds of ms. The same held for SendCommit's GroupInfo, commit
// (a PublicMessage with ~485,000 proposal references) and Welcome (330,000 EncryptedGroupSecrets),
// RecreateRoom, and SendMls's general path. Each is now refused by the walk of mls-shape.ts
// (BAD_MLS_MESSAGE, one sentence naming the list) before ts-mls sees it, the session goes on, and
// honest ones still pass. ts-mls's decode is watched: it is never called on the hostile bytes.
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { ErrorCode, SendStatus } from "../../src/gen/securechat/v1/chat.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { MlsGroup } from "../../src/protocol/mls/index.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { ask, makeKeyPackage, mlsPerson, must, sendCommit } from "../helpers/mls-ds.js";
import {
  commitWithProposals, emptyExtensions, emptyReferences, groupInfoWithExtensions, smuggledUpdate, keyPackageWithProposalTypes, realExternalCommit, repeated, welcomeWithSecrets,
} from "../helpers/mls-hostile-shapes.js";
import { TestRelay } from "../helpers/relay-harness.js";
import type { RawSession } from "../helpers/raw-session.js";

/** The sizes of everything ts-mls's decode was asked to decode, relay-side and test-side alike. */
const decoded = vi.hoisted(() => [] as number[]);
vi.mock("../../src/protocol/mls/client.js", async (importOriginal) => {
  const real = await importOriginal<typeof import("../../src/protocol/mls/client.js")>();
  return {
    ...real,
    decodeMls: (bytes: Uint8Array, what: string) => {
      decoded.push(bytes.length);
      return real.decodeMls(bytes, what);
    },
  };
});

/** Whether ts-mls decoded anything of `n` bytes (the hostile structures are the only ones that big). */
const decodedAny = (n: number): boolean => decoded.includes(n);

let alice: PrivateIdentity;
let bob: PrivateIdentity;
let mallory: PrivateIdentity;
let relay: TestRelay;

beforeAll(async () => {
  [alice, bob, mallory] = await Promise.all([fixtureIdentity("alice"), fixtureIdentity("bob"), fixtureIdentity("mallory")]);
});
afterEach(async () => {
  await relay?.cleanup();
});

const TOO_MANY_GI_EXTENSIONS = "the GroupInfo has more than 32 extensions in the GroupInfo; this relay takes at most 32 (PROTOCOL.md §8.2)";

/** The session still answers (and the relay's loop is free): a Ping is answered. */
async function stillServes(s: RawSession, nonce: number): Promise<void> {
  s.write({ $case: "ping", value: { nonce } });
  await s.next("pong", (p) => p.nonce === nonce);
}

describe("client MLS structures with lists no client makes are refused before ts-mls decodes them (§8.2)", () => {
  it("a GroupInfo of 330,000 empty extensions: at PublishGroupInfo and RecreateRoom", async () => {
    relay = await TestRelay.start();
    const m = await relay.connect(mallory);
    const pm = await mlsPerson(mallory);
    const room = await MlsGroup.create(pm.client, "#mine");
    const honest = await room.groupInfo();
    const hostile = groupInfoWithExtensions(honest, emptyExtensions(330_000));
    decoded.length = 0;
    for (const $case of ["publishGroupInfo", "recreateRoom"] as const) {
      const r = await ask(m, { $case, value: { requestId: 0, groupInfo: hostile } }, "groupInfoResult");
      expect(r, $case).toMatchObject({ ok: false, value: { code: ErrorCode.ERROR_CODE_BAD_MLS_MESSAGE, detail: TOO_MANY_GI_EXTENSIONS } });
    }
    expect(decodedAny(hostile.length)).toBe(false);
    await stillServes(m, 1);
    // The honest GroupInfo registers the group, and re-creating it with another honest one works.
    await must(m, { $case: "publishGroupInfo", value: { requestId: 0, groupInfo: Buffer.from(honest) } }, "groupInfoResult");
    const again = await MlsGroup.create(pm.client, "#mine");
    await must(m, { $case: "recreateRoom", value: { requestId: 0, groupInfo: Buffer.from(await again.groupInfo()) } }, "groupInfoResult");
  });

  it("SendCommit: a hostile GroupInfo, Welcome or commit is refused; the honest commit is then accepted", async () => {
    relay = await TestRelay.start();
    const a = await relay.connect(alice);
    const b = await relay.connect(bob);
    const pa = await mlsPerson(alice);
    const pb = await mlsPerson(bob);
    await must(b, { $case: "publishKeyPackages", value: { requestId: 0, oneTime: [await makeKeyPackage(pb)], lastResort: Buffer.alloc(0) } }, "keyPackageStatus");
    const group = await MlsGroup.create(pa.client, "#ops");
    await must(a, { $case: "publishGroupInfo", value: { requestId: 0, groupInfo: Buffer.from(await group.groupInfo()) } }, "groupInfoResult");
    const kp = await must(a, { $case: "claimKeyPackages", value: { requestId: 0, usernames: ["bob"], deviceIds: [] } }, "keyPackageList");
    const add = await group.addMembers([kp.entries[0]!.keyPackage], { expectUsernames: ["bob"] });
    const hint = { added: ["bob"], welcome: add.welcome, ratchetTree: add.ratchetTree };
    decoded.length = 0;

    const badInfo = groupInfoWithExtensions(add.groupInfo, emptyExtensions(330_000));
    expect(await sendCommit(a, add.commit, badInfo, hint))
      .toMatchObject({ accepted: false, code: ErrorCode.ERROR_CODE_BAD_MLS_MESSAGE, detail: TOO_MANY_GI_EXTENSIONS });

    const badWelcome = welcomeWithSecrets(add.welcome!, repeated(Buffer.from([0, 0, 0]), 330_000));
    expect(await sendCommit(a, add.commit, add.groupInfo, { ...hint, welcome: badWelcome })).toMatchObject({
      accepted: false, code: ErrorCode.ERROR_CODE_BAD_MLS_MESSAGE,
      detail: "the Welcome has more than 1000 EncryptedGroupSecrets (one per member it adds); this relay takes at most 1000 (PROTOCOL.md §8.2)",
    });

    const badCommit = commitWithProposals(await realExternalCommit(alice), emptyReferences(485_000));
    expect(await sendCommit(a, badCommit, add.groupInfo, hint)).toMatchObject({
      accepted: false, code: ErrorCode.ERROR_CODE_BAD_MLS_MESSAGE,
      detail: "the commit is an external join with a proposal by reference; an external commit carries its proposals by value (RFC 9420 §12.4.3.2)",
    });
    expect(decodedAny(badInfo.length) || decodedAny(badWelcome.length) || decodedAny(badCommit.length)).toBe(false);

    await stillServes(a, 2);
    expect(await sendCommit(a, add.commit, add.groupInfo, hint)).toMatchObject({ accepted: true, epoch: 0, currentEpoch: 1 });
  });

  it("a proposal ts-mls would read again as a custom one, hiding a list the walk did not count, is refused undecoded (review round 5)", async () => {
    relay = await TestRelay.start();
    const a = await relay.connect(mallory);
    decoded.length = 0;
    // An Update whose leaf says `commit`: ts-mls's Update decode fails and it reads the bytes again
    // as a custom proposal, then ~475,000 references from inside the credential. In a SendCommit,
    // and (128 KiB) in a SendMls: both refused by the walk, never decoded.
    const base = await realExternalCommit(mallory);
    const smuggled = commitWithProposals(base, smuggledUpdate(emptyReferences(475_000)));
    expect(await sendCommit(a, smuggled)).toMatchObject({
      accepted: false, code: ErrorCode.ERROR_CODE_BAD_MLS_MESSAGE,
      detail: "the commit is an external join with a proposal of type 2; an external commit carries one ExternalInit and a resync's Removes (RFC 9420 §12.4.3.2)",
    });
    const small = commitWithProposals(base, smuggledUpdate(emptyReferences(62_000)));
    expect(small.length).toBeLessThanOrEqual(131_072);
    a.write({ $case: "sendMls", value: { mls: small } });
    expect(await a.next("sendResult", () => true)).toMatchObject({
      status: SendStatus.SEND_STATUS_REFUSED, code: ErrorCode.ERROR_CODE_BAD_MLS_MESSAGE,
      detail: "the MLS message is an external join with a proposal of type 2; an external commit carries one ExternalInit and a resync's Removes (RFC 9420 §12.4.3.2)",
    });
    expect(decodedAny(smuggled.length) || decodedAny(small.length)).toBe(false);
    await stillServes(a, 1);
  });

  it("SendMls's general path and PublishKeyPackages walk before decoding too", async () => {
    relay = await TestRelay.start();
    const m = await relay.connect(mallory);
    const pm = await mlsPerson(mallory);
    const room = await MlsGroup.create(pm.client, "#mine");
    // A GroupInfo of 128 KiB's worth of empty extensions, sent as an MLS message.
    const hostile = groupInfoWithExtensions(await room.groupInfo(), emptyExtensions(40_000));
    decoded.length = 0;
    m.write({ $case: "sendMls", value: { mls: hostile } });
    expect(await m.next("sendResult", () => true)).toMatchObject({
      status: SendStatus.SEND_STATUS_REFUSED, code: ErrorCode.ERROR_CODE_BAD_MLS_MESSAGE,
      detail: "the MLS message has more than 32 extensions in the GroupInfo; this relay takes at most 32 (PROTOCOL.md §8.2)",
    });
    // A KeyPackage whose leaf names 2,500 proposal types (within the 8 KiB of one).
    const kp = keyPackageWithProposalTypes(await makeKeyPackage(pm), repeated(Buffer.from([0x7a, 0x7a]), 2_500));
    const r = await ask(m, { $case: "publishKeyPackages", value: { requestId: 0, oneTime: [kp], lastResort: Buffer.alloc(0) } }, "keyPackageStatus");
    expect(r).toMatchObject({ ok: false, value: {
      code: ErrorCode.ERROR_CODE_BAD_MLS_MESSAGE,
      detail: "one-time KeyPackage #1 has more than 64 proposal types in a leaf's capabilities; this relay takes at most 64 (PROTOCOL.md §8.2)",
    } });
    expect(decodedAny(hostile.length) || decodedAny(kp.length)).toBe(false);
    await stillServes(m, 3);
    expect(await must(m, { $case: "publishKeyPackages", value: { requestId: 0, oneTime: [await makeKeyPackage(pm)], lastResort: Buffer.alloc(0) } }, "keyPackageStatus"))
      .toMatchObject({ oneTimeLeft: 1 });
  });
});
