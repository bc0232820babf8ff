// Regression (red team rt-relay, "the per-session rate resets on every reconnect"): each new
// session of a device started with a full bucket, so one device got 600 writes accepted in
// 0.43 s. PROTOCOL.md §13.2: the buckets are per device (queue address) and a device's next
// session continues them (rate-buckets.ts).
import { afterEach, describe, expect, it } from "vitest";
import { ErrorCode } from "../../src/gen/securechat/v1/chat.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { ask } from "../helpers/mls-ds.js";
import { TestRelay } from "../helpers/relay-harness.js";

let relay: TestRelay | undefined;
afterEach(async () => {
  await relay?.cleanup();
});

// A valid name nobody owns: each claim is one write (§8.2) answered with it as missing.
const claim = { $case: "claimKeyPackages" as const, value: { requestId: 0, usernames: ["ghost"], deviceIds: [] } };

describe("the sending bucket across reconnects", () => {
  it("a reconnect continues the device's bucket: no fresh burst (relay clock held still)", async () => {
    let now = Date.now();
    relay = await TestRelay.start({ clock: () => now, limits: { messagesPerSecond: 2, burst: 10 } });
    const mallory = await fixtureIdentity("mallory");
    let s = await relay.connect(mallory);
    for (let i = 0; i < 10; i++) expect((await ask(s, claim, "keyPackageList")).ok).toBe(true);
    expect(await ask(s, claim, "keyPackageList")).toMatchObject({ ok: false, value: { code: ErrorCode.ERROR_CODE_RATE_LIMITED } });
    // A new session replacing the old one: still empty.
    s = await relay.connect(mallory);
    expect(await ask(s, claim, "keyPackageList")).toMatchObject({ ok: false, value: { code: ErrorCode.ERROR_CODE_RATE_LIMITED } });
    // A new session after the old one ended: still empty.
    await relay.disconnect(s, "mallory");
    s = await relay.connect(mallory);
    expect(await ask(s, claim, "keyPackageList")).toMatchObject({ ok: false, value: { code: ErrorCode.ERROR_CODE_RATE_LIMITED } });
    // Another user's bucket is its own.
    const b = await relay.connect(await fixtureIdentity("bob"));
    expect((await ask(b, claim, "keyPackageList")).ok).toBe(true);
    // Time refills it, at the rate: one second is two tokens.
    now += 1000;
    expect((await ask(s, claim, "keyPackageList")).ok).toBe(true);
    expect((await ask(s, claim, "keyPackageList")).ok).toBe(true);
    expect(await ask(s, claim, "keyPackageList")).toMatchObject({ ok: false, value: { code: ErrorCode.ERROR_CODE_RATE_LIMITED } });
  });

  it("a device reconnecting again and again gets no more than rate x time + burst (default limits)", { timeout: 60_000 }, async () => {
    relay = await TestRelay.start({ logLevel: "warn" });
    const mallory = await fixtureIdentity("mallory");
    const started = Date.now();
    let accepted = 0;
    for (let round = 0; round < 10; round++) {
      const s = await relay.connect(mallory);
      const answers = await Promise.all(Array.from({ length: 70 }, () => ask(s, claim, "keyPackageList")));
      for (const a of answers) {
        if (a.ok) accepted++;
        else expect(a.value.code).toBe(ErrorCode.ERROR_CODE_RATE_LIMITED);
      }
      s.close();
    }
    const seconds = (Date.now() - started) / 1000;
    expect(accepted).toBeLessThanOrEqual(Math.ceil(60 + 20 * seconds));
  });
});
