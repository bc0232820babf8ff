import { describe, expect, it } from "vitest";
import { encodeFields, hashFields } from "../../src/protocol/encoding.js";

describe("encodeFields (PROTOCOL.md Encoding)", () => {
  it("matches the known-answer bytes", () => {
    const out = encodeFields("securechat/v1/test", ["ab", Buffer.from([1, 2]), { u64: 258 }, { u32: 7 }]);
    expect(out.toString("hex")).toBe(
      "00000012" + Buffer.from("securechat/v1/test").toString("hex") +
      "00000002" + "6162" +
      "00000002" + "0102" +
      "00000008" + "0000000000000102" +
      "00000004" + "00000007",
    );
  });

  it("is unambiguous where concatenation would not be", () => {
    const a = encodeFields("securechat/v1/x", ["ab", "c"]);
    const b = encodeFields("securechat/v1/x", ["a", "bc"]);
    const c = encodeFields("securechat/v1/x", ["abc"]);
    expect(a.equals(b)).toBe(false);
    expect(a.equals(c)).toBe(false);
    expect(hashFields("securechat/v1/x", ["ab"]).equals(hashFields("securechat/v1/y", ["ab"]))).toBe(false);
  });

  it("refuses labels outside the securechat/v1/ domain", () => {
    expect(() => encodeFields("other/label", [])).toThrow(/label must start/);
  });

  it("refuses integers it cannot encode exactly", () => {
    expect(() => encodeFields("securechat/v1/x", [{ u64: -1 }])).toThrow(RangeError);
    expect(() => encodeFields("securechat/v1/x", [{ u64: 2 ** 60 }])).toThrow(RangeError);
    expect(() => encodeFields("securechat/v1/x", [{ u32: 2 ** 32 }])).toThrow(RangeError);
  });
});
