// What a client-supplied MLS structure costs the relay to decode (PROTOCOL.md §8.2 "What the
// relay decodes"; src/server/mls-shape.ts), from the red team's rt4 finding: ts-mls builds one
// object per list element, so a ~990 KB GroupInfo of 330,000 empty extensions took ~170 ms of
// the event loop (an honest one 0.04 ms). A microbenchmark, not a timed assertion: the numbers
// are printed; what is asserted is the path taken (the shape walk refuses the hostile structure,
// honest ones of the relay's largest shape pass it) and the walk's element count.
import { describe, expect, it } from "vitest";
import { decodeMls } from "../../src/protocol/mls/client.js";
import { MlsGroup } from "../../src/protocol/mls/index.js";
import { DEFAULT_RELAY_LIMITS } from "../../src/server/limits.js";
import { Refusal } from "../../src/server/errors.js";
import { checkMlsShape, shapeBoundsFor } from "../../src/server/mls-shape.js";
import { ErrorCode } from "../../src/gen/securechat/v1/chat.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { makeKeyPackage, mlsPerson } from "../helpers/mls-ds.js";
import {
  commitWithProposals, emptyExtensions, emptyReferences, EXTERNAL_INIT, groupInfoWithExtensions, keyPackageWithProposalTypes, realExternalCommit, realWelcome, removes, smuggledUpdate,
  repeated, welcomeSecretBytes, welcomeWithSecrets,
} from "../helpers/mls-hostile-shapes.js";

const bounds = shapeBoundsFor(DEFAULT_RELAY_LIMITS);

/** The median of `n` runs of `fn`, in ms (printed, never asserted). */
function median(fn: () => void, n = 5): number {
  const xs: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    try { fn(); } catch { /* a refusal: its time is what is measured */ }
    xs.push(performance.now() - t0);
  }
  xs.sort((a, b) => a - b);
  return xs[Math.floor(n / 2)]!;
}

function refusal(fn: () => void): Refusal {
  try {
    fn();
  } catch (e) {
    if (e instanceof Refusal) return e;
    throw e;
  }
  throw new Error("not refused");
}

function report(name: string, honest: Uint8Array, hostile: Uint8Array): void {
  const h = median(() => decodeMls(honest, name));
  const before = median(() => decodeMls(hostile, name));
  const after = median(() => checkMlsShape(hostile, name, bounds));
  const walkHonest = median(() => checkMlsShape(honest, name, bounds));
  console.log(`${name}: honest ${honest.length} B decode ${h.toFixed(3)} ms (+ walk ${walkHonest.toFixed(3)} ms); hostile ${hostile.length} B: decodeMls ${before.toFixed(1)} ms before, refused by the walk in ${after.toFixed(3)} ms after`);
}

describe("the relay's decode of client MLS structures is bounded before ts-mls (PROTOCOL.md §8.2)", () => {
  it("a GroupInfo of 330,000 empty extensions is refused by the walk; an honest one passes", async () => {
    const p = await mlsPerson(await fixtureIdentity("mallory"));
    const room = await MlsGroup.create(p.client, "#shape");
    const honest = await room.groupInfo();
    const hostile = groupInfoWithExtensions(honest, emptyExtensions(330_000));
    expect(hostile.length).toBeGreaterThan(980_000);
    checkMlsShape(honest, "the GroupInfo", bounds);
    const r = refusal(() => checkMlsShape(hostile, "the GroupInfo", bounds));
    expect(r.code).toBe(ErrorCode.ERROR_CODE_BAD_MLS_MESSAGE);
    expect(r.message).toBe("the GroupInfo has more than 32 extensions in the GroupInfo; this relay takes at most 32 (PROTOCOL.md §8.2)");
    // 32 extensions still pass (no client sets more than 2 beside ts-mls's GREASE).
    checkMlsShape(groupInfoWithExtensions(honest, emptyExtensions(32)), "the GroupInfo", bounds);
    report("GroupInfo", honest, hostile);
  });

  it("a commit of 490,000 empty proposal references, or 140,000 removes, is refused by the walk; an honest external join passes", async () => {
    const honest = await realExternalCommit(await fixtureIdentity("mallory"));
    const hostile = commitWithProposals(honest, emptyReferences(490_000));
    expect(hostile.length).toBeGreaterThan(980_000);
    checkMlsShape(honest, "the commit", bounds);
    // An external join carries its proposals by value: the first reference is refused.
    const r = refusal(() => checkMlsShape(hostile, "the commit", bounds));
    expect(r.message).toBe("the commit is an external join with a proposal by reference; an external commit carries its proposals by value (RFC 9420 §12.4.3.2)");
    const many = commitWithProposals(honest, Buffer.concat([EXTERNAL_INIT, removes(140_000)]));
    expect(refusal(() => checkMlsShape(many, "the commit", bounds)).message).toBe(`the commit has more than ${bounds.maxProposals} proposals; this relay takes at most ${bounds.maxProposals} (PROTOCOL.md §8.2)`);
    checkMlsShape(commitWithProposals(honest, Buffer.concat([EXTERNAL_INIT, removes(bounds.maxProposals - 1)])), "the commit", bounds);
    report("PublicMessage commit", honest, hostile);
    report("PublicMessage commit of removes", honest, many);
  });

  it("a proposal ts-mls would read again as a custom one (an Update with a commit leaf) is refused by the walk (review round 5)", async () => {
    const honest = await realExternalCommit(await fixtureIdentity("mallory"));
    const hostile = commitWithProposals(honest, smuggledUpdate(emptyReferences(475_000)));
    expect(hostile.length).toBeGreaterThan(940_000);
    expect(refusal(() => checkMlsShape(hostile, "the commit", bounds)).message)
      .toBe("the commit is an external join with a proposal of type 2; an external commit carries one ExternalInit and a resync's Removes (RFC 9420 §12.4.3.2)");
    report("PublicMessage commit with a smuggled list", honest, hostile);
  });

  it("a Welcome of 330,000 empty secrets is refused by the walk; one of max_group_devices real-sized secrets passes", async () => {
    const [alice, bob] = await Promise.all([fixtureIdentity("alice"), fixtureIdentity("bob")]);
    const { welcome } = await realWelcome(alice, bob);
    const hostile = welcomeWithSecrets(welcome, repeated(Buffer.from([0, 0, 0]), 330_000));
    checkMlsShape(welcome, "the Welcome", bounds);
    const r = refusal(() => checkMlsShape(hostile, "the Welcome", bounds));
    expect(r.message).toBe(`the Welcome has more than ${DEFAULT_RELAY_LIMITS.maxGroupDevices} EncryptedGroupSecrets (one per member it adds); this relay takes at most ${DEFAULT_RELAY_LIMITS.maxGroupDevices} (PROTOCOL.md §8.2)`);
    // The honest maximum: one secret per device of a full group, each of a real secret's size.
    const full = welcomeWithSecrets(welcome, repeated(welcomeSecretBytes(welcome), DEFAULT_RELAY_LIMITS.maxGroupDevices));
    checkMlsShape(full, "the Welcome", bounds);
    report("Welcome", full, hostile);
  });

  it("a KeyPackage of 2,500 capability entries is refused by the walk; a real one passes", async () => {
    const p = await mlsPerson(await fixtureIdentity("mallory"));
    const honest = await makeKeyPackage(p);
    const hostile = keyPackageWithProposalTypes(honest, repeated(Buffer.from([0x7a, 0x7a]), 2_500));
    expect(hostile.length).toBeLessThanOrEqual(8 * 1024);
    checkMlsShape(honest, "one-time KeyPackage #1", bounds);
    const r = refusal(() => checkMlsShape(hostile, "one-time KeyPackage #1", bounds));
    expect(r.message).toBe("one-time KeyPackage #1 has more than 64 proposal types in a leaf's capabilities; this relay takes at most 64 (PROTOCOL.md §8.2)");
    report("KeyPackage (one of up to 101 per PublishKeyPackages)", honest, hostile);
  });
});
