// The session-open buckets (src/server/open-rates.ts, PROTOCOL.md §9.1 step 4): all or nothing
// over the buckets named, a look that takes nothing, and a bounded map whatever the keys.
import { describe, expect, it } from "vitest";
import { addressBucket, keyBucket, OPEN_SWEEP_ENTRIES, SessionOpenRates } from "../../src/server/open-rates.js";

describe("SessionOpenRates", () => {
  it("takes from every bucket named or from none, and wait() only looks", () => {
    const opens = new SessionOpenRates(6, 2, 100);
    const [k, a, b] = [keyBucket("ab"), addressBucket("alice"), addressBucket("alice/dev")];
    expect(opens.take([k, a], 0)).toEqual({ ok: true });
    expect(opens.take([a], 0)).toEqual({ ok: true });
    // a is empty: k keeps its last token.
    expect(opens.take([k, a], 0)).toEqual({ ok: false, retryAfterMs: 10_000 });
    expect(opens.wait([k], 0)).toBe(0);
    expect(opens.wait([k], 0)).toBe(0);
    expect(opens.take([k, b], 0)).toEqual({ ok: true });
    expect(opens.wait([k, b], 0)).toBe(10_000);
    // Looking at unknown buckets keeps nothing.
    expect(opens.wait([keyBucket("cd"), addressBucket("bob")], 0)).toBe(0);
    expect(opens.size).toBe(3);
    expect(opens.wait([k], 10_000)).toBe(0);
  });

  it("forgets full buckets, and beyond its bound the least recently used first", () => {
    const max = 2 * OPEN_SWEEP_ENTRIES;
    const opens = new SessionOpenRates(6, 100, max);
    const looper = addressBucket("looper");
    let looped = 0;
    // A flood of distinct keys (none refills in the 6 s it lasts); the looper opens now and then.
    for (let i = 0; i < 3 * max; i++) {
      const now = Math.floor(i / 4);
      expect(opens.take([keyBucket(`flood-${i}`)], now)).toEqual({ ok: true });
      if (i % 1_000 === 0) {
        expect(opens.take([looper], now).ok).toBe(true);
        looped++;
      }
      expect(opens.size).toBeLessThanOrEqual(max);
    }
    // The looper's bucket, recently used, was kept: it has what is left of its burst, not a fresh one.
    const end = Math.floor((3 * max) / 4);
    let left = 0;
    while (opens.take([looper], end).ok) left++;
    expect(left).toBe(100 - looped);
    // Once everything refilled, the next sweep forgets it all.
    const later = end + 20 * 60_000;
    for (let i = 0; i < OPEN_SWEEP_ENTRIES; i++) opens.take([keyBucket(`late-${i}`)], later);
    expect(opens.size).toBeLessThanOrEqual(OPEN_SWEEP_ENTRIES);
  });

  it("refuses limits that are not positive integers", () => {
    expect(() => new SessionOpenRates(0, 1, 1)).toThrow(RangeError);
    expect(() => new SessionOpenRates(1, 1.5, 1)).toThrow(RangeError);
    expect(() => new SessionOpenRates(1, 1, 0)).toThrow(RangeError);
  });
});
