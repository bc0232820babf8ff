// Regression (rt2 review): the new-name limit (registrations.ts) was kept per IPv6 /64 only, so
// one host with a /48 (65,536 /64s) registered the per-source burst from each of them at once.
// Each IPv6 source now also takes from its /48's bucket (NETWORK_FACTOR sources' worth), as
// linking caps a /48 (link-rendezvous.ts); the /64 bucket still holds on its own.
import { describe, expect, it } from "vitest";
import { sourceOf } from "../../src/server/handshake-budget.js";
import { DEFAULT_RELAY_LIMITS } from "../../src/server/limits.js";
import { NETWORK_FACTOR, RegistrationLimiter } from "../../src/server/registrations.js";

const burst = DEFAULT_RELAY_LIMITS.registrationBurst;

function limiter(): RegistrationLimiter {
  // As relay.ts makes it, with the defaults.
  return new RegistrationLimiter(DEFAULT_RELAY_LIMITS.registrationBurst, DEFAULT_RELAY_LIMITS.registrationsPerHour);
}

describe("new usernames from one IPv6 /48", () => {
  it("256 /64s of one /48 register at most the /48's burst at once, not 256 times a /64's", () => {
    const l = limiter();
    const now = Date.now();
    let ok = 0;
    for (let net = 0; net < 256; net++) {
      for (let i = 0; i < 20; i++) if (l.take(sourceOf(`[2001:db8:7:${net.toString(16)}::${i + 1}]:40000`), now).ok) ok++;
    }
    expect(ok).toBe(NETWORK_FACTOR * burst);
    // Refused with a wait, like the /64 limit.
    const no = l.take(sourceOf("[2001:db8:7:ffff::1]:1"), now);
    expect(no.ok).toBe(false);
    if (!no.ok) expect(no.retryAfterMs).toBeGreaterThan(0);
  });

  it("one /64 keeps its own, smaller limit; another /48 and IPv4 addresses are not affected", () => {
    const l = limiter();
    const now = Date.now();
    let ok = 0;
    for (let i = 0; i < 3 * burst; i++) if (l.take(sourceOf(`[2001:db8:9:1::${i + 1}]:40000`), now).ok) ok++;
    expect(ok).toBe(burst);
    // A refusal by the /64 did not take the /48's tokens: its other /64s still get the rest.
    let others = 0;
    for (let i = 0; i < 10 * burst; i++) if (l.take(sourceOf(`[2001:db8:9:${(i + 2).toString(16)}::1]:40000`), now).ok) others++;
    expect(others).toBe((NETWORK_FACTOR - 1) * burst);
    expect(l.take(sourceOf("[2001:db8:a:1::1]:40000"), now).ok).toBe(true);
    let v4 = 0;
    for (let i = 0; i < 3 * burst; i++) if (l.take(sourceOf("198.51.100.7:5000"), now).ok) v4++;
    expect(v4).toBe(burst);
  });
});
