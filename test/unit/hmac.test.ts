import { createHmac } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { hmacSha256 } from "../../src/protocol/primitives.js";

const h = (s: string) => Buffer.from(s, "hex");

describe("hmacSha256 (RFC 2104)", () => {
  // RFC 4231 §4 test cases with keys of at most one block.
  it.each([
    ["1", "0b".repeat(20), Buffer.from("Hi There").toString("hex"), "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"],
    ["2", Buffer.from("Jefe").toString("hex"), Buffer.from("what do ya want for nothing?").toString("hex"), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"],
    ["3", "aa".repeat(20), "dd".repeat(50), "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"],
    ["4", "0102030405060708090a0b0c0d0e0f10111213141516171819", "cd".repeat(50), "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"],
  ])("RFC 4231 test case %s", (_n, key, data, mac) => {
    expect(hmacSha256(h(key), h(data)).toString("hex")).toBe(mac);
  });

  it("equals node's createHmac for any key up to 64 bytes and any data", () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ maxLength: 300 }), (key, data) => {
      expect(hmacSha256(key, data).equals(createHmac("sha256", key).update(data).digest())).toBe(true);
    }), { numRuns: 300 });
  });

  it("refuses longer keys instead of hashing them silently", () => {
    expect(() => hmacSha256(Buffer.alloc(65), Buffer.alloc(1))).toThrow(/at most 64 bytes/);
  });
});
