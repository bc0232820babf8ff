// The handshake budget and the registration bucket (PROTOCOL.md §9.1 step 4), without sockets:
// what counts as one source, the caps, giving places back, refills.
import { describe, expect, it } from "vitest";
import { HandshakeBudget, sourceOf } from "../../src/server/handshake-budget.js";
import { RegistrationLimiter } from "../../src/server/registrations.js";

describe("sourceOf", () => {
  it("is the address without its port; IPv4-mapped IPv6 is the IPv4 address; IPv6 counts per /64", () => {
    expect(sourceOf("127.0.0.1:54321")).toBe("127.0.0.1");
    expect(sourceOf("::ffff:10.1.2.3:443")).toBe("10.1.2.3");
    expect(sourceOf("2001:db8:1:2:aaaa:bbbb:cccc:dddd:5000")).toBe("2001:db8:1:2::/64");
    expect(sourceOf("2001:db8:1:2::7:5000")).toBe("2001:db8:1:2::/64");
    expect(sourceOf("2001:DB8:0001:0002::9:1")).toBe("2001:db8:1:2::/64");
    expect(sourceOf("::1:40000")).toBe("0:0:0:0::/64");
    expect(sourceOf("[2001:db8::1]:443")).toBe("2001:db8:0:0::/64");
    expect(sourceOf("unknown")).toBe("unknown");
  });
});

describe("HandshakeBudget", () => {
  it("caps each source, then the relay; a place given back (once) can be taken again", () => {
    const b = new HandshakeBudget(3, 2);
    const a1 = b.enter("a");
    const a2 = b.enter("a");
    expect([a1.kind, a2.kind]).toEqual(["admitted", "admitted"]);
    expect(b.enter("a")).toEqual({ kind: "source-busy", limit: 2 });
    const c1 = b.enter("c");
    expect(c1.kind).toBe("admitted");
    expect(b.enter("d")).toEqual({ kind: "relay-busy", limit: 3 });
    if (a1.kind !== "admitted") throw new Error("unreachable");
    a1.ticket.leave();
    a1.ticket.leave(); // idempotent: the second call gives back nothing more
    expect(b.pending).toBe(2);
    expect(b.pendingFrom("a")).toBe(1);
    expect(b.enter("d").kind).toBe("admitted");
    expect(b.enter("e")).toEqual({ kind: "relay-busy", limit: 3 });
  });

  it("refuses nonsense sizes", () => {
    expect(() => new HandshakeBudget(0, 1)).toThrow(RangeError);
    expect(() => new HandshakeBudget(1, 1.5)).toThrow(RangeError);
  });
});

describe("RegistrationLimiter", () => {
  it("allows a burst per source, then one per refill interval, and says how long to wait", () => {
    const r = new RegistrationLimiter(2, 60); // one a minute
    const t = 1_000_000;
    expect(r.take("a", t)).toEqual({ ok: true });
    expect(r.take("a", t)).toEqual({ ok: true });
    expect(r.take("a", t)).toEqual({ ok: false, retryAfterMs: 60_000 });
    expect(r.take("b", t)).toEqual({ ok: true }); // another source, its own bucket
    expect(r.take("a", t + 30_000)).toEqual({ ok: false, retryAfterMs: 30_000 });
    expect(r.take("a", t + 60_000)).toEqual({ ok: true });
  });
});
