// What a user's own devices say of their device list (PROTOCOL.md §4.5, src/client/mls/list-claims.ts):
// the claim's bytes, and when a claim newer than the list the relay serves becomes one warning.
import { describe, expect, it } from "vitest";
import { DeviceListsUnanswered, type DeviceDirectory } from "../../src/client/devices-api.js";
import { CLAIM_REFRESH_MS, CLAIM_WARN_EVERY_MS, claimsUnlinks, decodeListClaim, encodeListClaim, ListClaims } from "../../src/client/mls/list-claims.js";
import type { VerifiedDeviceList } from "../../src/protocol/devices.js";
import { nullLogger } from "../../src/protocol/log.js";

describe("list claims: bytes", () => {
  it("round-trips a version; nothing for none; any other authenticated_data is no claim", () => {
    expect(decodeListClaim(encodeListClaim(7))).toBe(7);
    expect(decodeListClaim(encodeListClaim(Number.MAX_SAFE_INTEGER))).toBe(Number.MAX_SAFE_INTEGER);
    expect(encodeListClaim(undefined)).toHaveLength(0);
    expect(encodeListClaim(0)).toHaveLength(0);
    expect(decodeListClaim(new Uint8Array(0))).toBeUndefined();
    const c = Buffer.from(encodeListClaim(3));
    expect(decodeListClaim(Buffer.concat([c, Buffer.from([0])]))).toBeUndefined(); // too long
    expect(decodeListClaim(Buffer.from([3, ...c.subarray(1)]))).toBeUndefined(); // another tag
    // A self-heal's commit: the same version, and the mark that it takes out unlinked devices.
    const heal = encodeListClaim(3, true);
    expect([heal[0], decodeListClaim(heal), claimsUnlinks(heal), claimsUnlinks(c)]).toEqual([2, 3, true, false]);
    expect(claimsUnlinks(Buffer.from([2, 0, 0, 0, 0, 0, 0, 0, 0]))).toBe(false); // version 0: no claim at all
    const big = Buffer.alloc(9);
    big[0] = 1;
    big.writeBigUInt64BE(2n ** 63n, 1);
    expect(decodeListClaim(big)).toBeUndefined(); // past what a number holds exactly
    expect(decodeListClaim(Buffer.from([1, 0, 0, 0, 0, 0, 0, 0, 0]))).toBeUndefined(); // version 0
  });
});

describe("list claims: a newer version than the relay serves", () => {
  function world(served: number) {
    let version = served;
    let answer: "list" | "unanswered" = "list";
    const fetched: string[] = [];
    const devices = {
      known: (u: string) => (u === "alice" ? ({ username: "alice", version } as unknown as VerifiedDeviceList) : undefined),
      refresh: (us: readonly string[]) => {
        fetched.push(...us);
        return answer === "list" ? Promise.resolve(new Map()) : Promise.reject(new DeviceListsUnanswered("CONNECTION_LOST"));
      },
    } as unknown as DeviceDirectory;
    let now = 1_000_000;
    const warnings: string[] = [];
    const claims = new ListClaims({ devices, clock: () => now, logger: nullLogger, warn: (t, conv) => warnings.push(`${conv}: ${t}`) });
    return {
      claims, fetched, warnings,
      serve: (v: number) => (version = v),
      unanswered: () => (answer = "unanswered"),
      answered: () => (answer = "list"),
      later: (ms: number) => (now += ms),
    };
  }

  it("fetches the list once, and warns once per version the relay does not serve", async () => {
    const w = world(1);
    // Not newer than what I hold: nothing.
    expect(w.claims.heard("alice", encodeListClaim(1), "dm:alice:bob")).toBeUndefined();
    expect(w.claims.heard("alice", new Uint8Array(0), "dm:alice:bob")).toBeUndefined();
    expect(w.fetched).toEqual([]);
    await w.claims.heard("alice", encodeListClaim(2), "dm:alice:bob");
    expect(w.fetched).toEqual(["alice"]);
    expect(w.warnings).toEqual(["dm:alice:bob: alice's own device says alice's device list is at version 2, but the relay serves version 1: the relay may be hiding a change of alice's devices (one unlinked), so a device alice no longer uses may still write as alice here"]);
    // The same claim again, within the minute: no fetch, no second warning.
    expect(w.claims.heard("alice", encodeListClaim(2), "#ops")).toBeUndefined();
    w.later(CLAIM_REFRESH_MS);
    await w.claims.heard("alice", encodeListClaim(2), "#ops");
    expect(w.fetched).toHaveLength(2);
    expect(w.warnings).toHaveLength(1);
    // A newer claim is fetched, but warned about at most once a day per user (a user whose own
    // messages claim v3, v4, … must not make readers blame the relay every minute).
    w.later(CLAIM_REFRESH_MS);
    await w.claims.heard("alice", encodeListClaim(3), "#ops");
    expect(w.fetched).toHaveLength(3);
    expect(w.warnings).toHaveLength(1);
    w.later(CLAIM_WARN_EVERY_MS);
    await w.claims.heard("alice", encodeListClaim(4), "#ops");
    expect(w.warnings).toHaveLength(2);
    expect(w.warnings[1]).toMatch(/^#ops: .* at version 4, but the relay serves version 1/);
  });

  it("one absurd claim does not stand for good: a day later, a real newer version is warned about again (review round 6)", async () => {
    const w = world(1);
    await w.claims.heard("alice", encodeListClaim(Number.MAX_SAFE_INTEGER), "dm:alice:bob");
    expect(w.warnings).toHaveLength(1);
    for (let day = 1; day <= 2; day++) {
      w.later(CLAIM_WARN_EVERY_MS);
      await w.claims.heard("alice", encodeListClaim(2), "dm:alice:bob");
      expect(w.warnings).toHaveLength(1 + day);
      expect(w.warnings[day]).toMatch(/at version 2, but the relay serves version 1/);
    }
  });

  it("a relay that never answers the fetch a claim starts is told about after ten minutes (it cannot silence the warning)", async () => {
    const w = world(1);
    w.unanswered();
    await w.claims.heard("alice", encodeListClaim(2), "dm:alice:bob");
    expect(w.warnings).toEqual([]);
    for (let i = 0; i < 9; i++) {
      w.later(CLAIM_REFRESH_MS);
      await w.claims.heard("alice", encodeListClaim(2), "dm:alice:bob");
    }
    expect(w.fetched).toHaveLength(10);
    expect(w.warnings).toEqual([]);
    w.later(CLAIM_REFRESH_MS);
    await w.claims.heard("alice", encodeListClaim(2), "dm:alice:bob");
    expect(w.warnings).toEqual(["dm:alice:bob: alice's own device says alice's device list is at version 2, but the relay has not answered for it for 10 minutes: it may be hiding a change of alice's devices (one unlinked)"]);
  });

  it("no warning when the fetch brings the newer list, nor when the relay did not answer", async () => {
    const w = world(1);
    w.serve(1);
    w.unanswered();
    await w.claims.heard("alice", encodeListClaim(2), "dm:alice:bob");
    expect(w.warnings).toEqual([]);
    w.later(CLAIM_REFRESH_MS);
    w.answered();
    w.serve(2);
    // Held now: nothing to fetch.
    expect(w.claims.heard("alice", encodeListClaim(2), "dm:alice:bob")).toBeUndefined();
    w.serve(1);
    const fetch = w.claims.heard("alice", encodeListClaim(2), "dm:alice:bob");
    w.serve(2); // the fetch brings it
    await fetch;
    expect(w.warnings).toEqual([]);
  });
});
