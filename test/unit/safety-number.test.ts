import { describe, expect, it } from "vitest";
import { displayableFingerprint, formatSafetyNumber, safetyNumber, safetyNumberDigits } from "../../src/protocol/safety-number.js";

describe("safety numbers (PROTOCOL.md Safety numbers)", () => {
  it("reproduces libsignal's published displayable-fingerprint vector", () => {
    // From libsignal's fingerprint tests: two Curve25519 identity keys and phone-number ids.
    const aliceKey = Buffer.from("0506863bc66d02b40d27b8d49ca7c09e9239236f9d7d25d6fcca5ce13c7064d868", "hex");
    const bobKey = Buffer.from("05f781b6fb32fed9ba1cf2de978d4d5da28dc34046ae814402b5c0dbd96fda907b", "hex");
    const expected = "300354477692869396892869876765458257569162576843440918079131";
    expect(displayableFingerprint(aliceKey, Buffer.from("+14152222222"), bobKey, Buffer.from("+14153333333"))).toBe(expected);
    expect(displayableFingerprint(bobKey, Buffer.from("+14153333333"), aliceKey, Buffer.from("+14152222222"))).toBe(expected);
  });

  // Computed by an independent Python implementation over our key encoding.
  const a = {
    username: "alice",
    sigSpki: Buffer.from("302a300506032b65700321008a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c", "hex"),
    encSpki: Buffer.alloc(20, 0x0a),
  };
  const b = { username: "bob", sigSpki: Buffer.alloc(44, 0x0b), encSpki: Buffer.alloc(20, 0x0c) };

  it("matches our known-answer vector and is symmetric", () => {
    expect(safetyNumberDigits(a, b)).toBe("710650411779282998244273894434722445885844754773609484689331");
    expect(safetyNumberDigits(b, a)).toBe(safetyNumberDigits(a, b));
    expect(safetyNumber(a, b)).toBe("71065 04117 79282 99824 42738 94434 72244 58858 44754 77360 94846 89331");
  });

  it("changes when either key changes (so a swapped key shows)", () => {
    const n = safetyNumberDigits(a, b);
    expect(safetyNumberDigits({ ...a, encSpki: Buffer.alloc(20, 0x0d) }, b)).not.toBe(n);
    expect(safetyNumberDigits(a, { ...b, sigSpki: Buffer.alloc(44, 0x0e) })).not.toBe(n);
    expect(safetyNumberDigits(a, { ...b, username: "bobby" })).not.toBe(n);
  });

  it("formats only 60 digits", () => {
    expect(() => formatSafetyNumber("123")).toThrow(/60 digits/);
  });
});
