// Red team (PROTOCOL.md §4.6, §11.2, §12): a stranger's OFFER naming its device to spoof what the
// primary's SAS screen and /devices show.
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { memoryDeviceListPins, VerifiedDeviceDirectory } from "../../src/client/device-directory.js";
import { newDeviceId, signDeviceList } from "../../src/protocol/devices.js";
import { fixtureIdentity } from "../helpers/identities.js";
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

describe("a hostile relay and a newly linked device (PROTOCOL.md §4.6: the linking's list is the floor)", () => {
  it("serves the new device its user's list from before the link: refused as a rollback; a later list without it (a real unlink) is taken", async () => {
    const alice = await fixtureIdentity("alice");
    const primary = { deviceId: newDeviceId(), name: "laptop", authSpki: alice.sigSpki, mlsSignatureKey: randomBytes(32), addedAtMs: 1_000, primary: true };
    const desktopSpki = generateKeyPairSync("ed25519").publicKey.export({ format: "der", type: "spki" });
    const desktop = { deviceId: newDeviceId(), name: "desktop", authSpki: desktopSpki, mlsSignatureKey: randomBytes(32), addedAtMs: 2_000, primary: false };
    const sign = (version: number, devices: (typeof primary)[]) => signDeviceList({ username: "alice", version, issuedAtMs: 1_000 * version, devices }, alice.sigPrivate, alice.sigSpki);
    const before = sign(3, [primary]);
    const atLink = sign(4, [primary, desktop]);
    let serve = [before];
    const pins = memoryDeviceListPins();
    const dir = new VerifiedDeviceDirectory({
      self: { username: "alice", deviceId: desktop.deviceId, name: "desktop", primary: false, mlsSignatureKey: desktop.mlsSignatureKey },
      ds: { fetchDeviceLists: () => Promise.resolve({ ok: true as const, lists: serve, seen: [] }) },
      pinOf: () => ({ state: "pinned", identitySpki: alice.sigSpki }),
      pins,
    });
    // What ChatClient does for a linked device whose record keeps the linking's list.
    expect(dir.seed(atLink)).toBe(true);
    const refused: string[] = [];
    dir.onRefused((_u, reason) => refused.push(reason));
    await dir.refresh(["alice"]);
    expect(dir.known("alice")?.version).toBe(4);
    expect(dir.known("alice")?.devices.some((d) => d.deviceId === desktop.deviceId)).toBe(true);
    expect(refused.some((r) => /older/.test(r))).toBe(true);
    // A genuine unlink after the link is newer than the floor: taken (the device then stops).
    serve = [sign(5, [primary])];
    await dir.refresh(["alice"]);
    expect(dir.known("alice")?.version).toBe(5);
  });
});
