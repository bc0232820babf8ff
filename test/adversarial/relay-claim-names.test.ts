// Regression (red team rt-relay, "unbounded relay memory from ClaimKeyPackages names"): a claim's
// names were never validated and each was loaded into the relay's per-user device cache
// (DeviceRoutes), so 400 claims each naming one ~1 MB junk name pinned ~470 MiB. PROTOCOL.md
// §8.2: every name is checked against the username rules (§4.1) before any lookup, and a name
// that is not bound is never cached (devices.ts). Asserted on the cache's own size, not on RSS.
import { afterEach, describe, expect, it } from "vitest";
import { ErrorCode } from "../../src/gen/securechat/v1/chat.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { ask, makeKeyPackage, mlsPerson, must } from "../helpers/mls-ds.js";
import { TestRelay } from "../helpers/relay-harness.js";

let relay: TestRelay | undefined;
afterEach(async () => {
  await relay?.cleanup();
});

const claim = (usernames: string[]) => ({ $case: "claimKeyPackages" as const, value: { requestId: 0, usernames, deviceIds: [] } });

describe("ClaimKeyPackages names", () => {
  it("refuses a name that is not a username, in one sentence, before any lookup: the device cache does not grow", async () => {
    relay = await TestRelay.start({ logLevel: "warn" });
    const mallory = await fixtureIdentity("mallory");
    const bob = await fixtureIdentity("bob");
    const b = await relay.connect(bob);
    await must(b, { $case: "publishKeyPackages", value: { requestId: 0, oneTime: [await makeKeyPackage(await mlsPerson(bob))], lastResort: Buffer.alloc(0) } }, "keyPackageStatus");
    const m = await relay.connect(mallory);
    const before = relay.running.stats().deviceRoutes;
    for (let i = 0; i < 20; i++) {
      const r = await ask(m, claim([`${i}-`.padEnd(1_000_000, "x")]), "keyPackageList");
      expect(r).toMatchObject({ ok: false, value: { code: ErrorCode.ERROR_CODE_BAD_FRAME,
        detail: "ClaimKeyPackages name #1 is not a valid username: username is longer than 32 characters" } });
    }
    // Upper case, reserved, empty: refused likewise; a valid name beside them claims nothing.
    for (const bad of ["Bob", "nobody", ""]) {
      const r = await ask(m, claim(["bob", bad]), "keyPackageList");
      expect(r).toMatchObject({ ok: false, value: { code: ErrorCode.ERROR_CODE_BAD_FRAME,
        detail: expect.stringMatching(/^ClaimKeyPackages name #2 is not a valid username: username /) as unknown } });
    }
    expect(relay.running.stats().deviceRoutes).toEqual(before);
    // bob's KeyPackage is still there: the refused claims took nothing.
    expect((await must(m, claim(["bob"]), "keyPackageList")).entries).toHaveLength(1);
  });

  it("answers valid names nobody owns as missing, without caching an entry for them", async () => {
    relay = await TestRelay.start({ logLevel: "warn" });
    const m = await relay.connect(await fixtureIdentity("mallory"));
    const before = relay.running.stats().deviceRoutes;
    for (let i = 0; i < 5; i++) {
      const names = Array.from({ length: 10 }, (_, j) => `ghost${i}x${j}`);
      expect((await must(m, claim(names), "keyPackageList")).missing).toEqual(names);
    }
    const after = relay.running.stats().deviceRoutes;
    expect(after.users).toBe(before.users);
    expect(after.bytes).toBe(before.bytes);
    expect(after.unbound).toBeLessThanOrEqual(before.unbound + 50);
  });
});
