// Red team (PROTOCOL.md §4.6, §11.2, §12): a stranger's OFFER naming its device to spoof what the
// primary's SAS screen and /devices show.
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { newDeviceId } from "../../src/protocol/devices.js";
import { encodeFields } from "../../src/protocol/encoding.js";
import { decodeOffer, LINK_OFFER_LABEL } from "../../src/protocol/link.js";

describe("a stranger's OFFER naming its device to spoof the SAS screen and /devices", () => {
  it("a name with bidi overrides, zero-width or escape characters, or a line break, is refused before anything is shown", () => {
    const spki = generateKeyPairSync("ed25519").publicKey.export({ format: "der", type: "spki" });
    for (const name of ["\u202Epotpal", "lap\u200Btop", "laptop\u2066", "a\u001b]0;owned\u0007", "laptop\nalice added a device: x", "\u0085laptop", "laptop\u{E0041}"]) {
      const bytes = encodeFields(LINK_OFFER_LABEL, ["alice", newDeviceId(), name, spki, randomBytes(32)]);
      expect(() => decodeOffer(bytes), JSON.stringify(name)).toThrow(/printable/);
    }
  });
});
