// Each device's token buckets (PROTOCOL.md §13.2, rate-buckets.ts): kept across its sessions,
// forgotten once full and unused, bounded.
import { describe, expect, it } from "vitest";
import { DeviceRates } from "../../src/server/rate-buckets.js";

describe("DeviceRates", () => {
  it("continues a device's buckets across its sessions, and forgets them once full and unused", () => {
    let now = 1_000_000;
    const live = new Set<string>();
    const rates = new DeviceRates(20, 60, 100, (a) => live.has(a));
    const first = rates.open("mallory", now);
    live.add("mallory");
    for (let i = 0; i < 60; i++) expect(first.send.take(now)).toBe(true);
    expect(first.send.take(now)).toBe(false);
    // The session ends; the next one (a reconnect) continues the empty bucket.
    live.delete("mallory");
    rates.closed("mallory", now);
    const second = rates.open("mallory", now);
    expect(second.send.take(now)).toBe(false);
    expect(second).toBe(first);
    // Another device of the same user has its own (queue address, §4.5).
    expect(rates.open("mallory/0123456789abcdef", now).send.take(now)).toBe(true);
    // Refilled completely and unused: forgotten at the session's end.
    now += 3_000;
    rates.closed("mallory", now);
    expect(rates.size).toBe(1);
  });

  it("keeps a live session's bucket however full, and bounds the rest", () => {
    const now = 5_000;
    const live = new Set<string>(["a0"]);
    const rates = new DeviceRates(20, 60, 16, (a) => live.has(a));
    const a0 = rates.open("a0", now);
    rates.closed("a0", now); // a replaced session ending while its successor is live: kept
    expect(rates.open("a0", now)).toBe(a0);
    for (let i = 1; i < 200; i++) rates.open(`a${i}`, now).send.take(now);
    expect(rates.size).toBeLessThanOrEqual(16 + 1);
    expect(rates.open("a0", now)).toBe(a0);
  });
});
