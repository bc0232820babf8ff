// Red team (PROTOCOL.md §4.5, §4.6, §12): a hostile relay against a device linked just now. Its
// first device list comes from the relay (the BUNDLE's list is not kept at rest): a relay serving
// the list from BEFORE the link (signed, genuine, but not naming the new device) made it take that
// list, say "this device was unlinked", and refuse to start ever again (unlinkedAtStart reads the
// kept list) — a relay-made, permanent, false unlink.
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { memoryDeviceListPins, VerifiedDeviceDirectory } from "../../src/client/device-directory.js";
import { newDeviceId, signDeviceList, type DeviceEntry, type SignedDeviceList } from "../../src/protocol/devices.js";
import { encodeFields } from "../../src/protocol/encoding.js";
import { decodeOffer, LINK_OFFER_LABEL } from "../../src/protocol/link.js";
import { fixtureIdentity } from "../helpers/identities.js";

describe("a hostile relay and a newly linked device", () => {
  it("serves the new device its user's list from before the link: refused (a rollback), and the newest list naming it is taken after", async () => {
    const alice = await fixtureIdentity("alice");
    const primary: DeviceEntry = { deviceId: newDeviceId(), name: "laptop", authSpki: alice.sigSpki, mlsSignatureKey: randomBytes(32), addedAtMs: 1_000, primary: true };
    const newKey = generateKeyPairSync("ed25519").publicKey.export({ format: "der", type: "spki" });
    const desktop: DeviceEntry = { deviceId: newDeviceId(), name: "desktop", authSpki: newKey, mlsSignatureKey: randomBytes(32), addedAtMs: 2_000, primary: false };
    const sign = (version: number, devices: DeviceEntry[]): SignedDeviceList => signDeviceList({ username: "alice", version, issuedAtMs: 1_000 * version, devices }, alice.sigPrivate, alice.sigSpki);
    const before = sign(3, [primary]);
    const after = sign(4, [primary, desktop]);
    let serve: SignedDeviceList[] = [before];
    const pins = memoryDeviceListPins();
    const dir = new VerifiedDeviceDirectory({
      self: { username: "alice", deviceId: desktop.deviceId, name: "desktop", primary: false, mlsSignatureKey: desktop.mlsSignatureKey },
      ds: { fetchDeviceLists: () => Promise.resolve({ ok: true as const, lists: serve, seen: [] }) },
      pinOf: () => ({ state: "pinned", identitySpki: alice.sigSpki }),
      pins,
    });
    const refused: string[] = [];
    dir.onRefused((_u, reason) => refused.push(reason));
    await dir.refresh(["alice"]);
    expect(dir.known("alice")).toBeUndefined();
    expect(pins.rows.size).toBe(0); // nothing kept at rest: the next start is not "unlinked"
    expect(refused.some((r) => r.includes("does not name this device"))).toBe(true);
    serve = [after];
    await dir.refresh(["alice"]);
    expect(dir.known("alice")?.version).toBe(4);
    // Once it knows a list naming it, a later list without it is a real unlink and is taken.
    const unlinked = sign(5, [primary]);
    serve = [unlinked];
    await dir.refresh(["alice"]);
    expect(dir.known("alice")?.version).toBe(5);
  });
});

describe("a stranger's OFFER naming its device to spoof the SAS screen and /devices", () => {
  it("a name with bidi overrides, zero-width or escape characters, or a line break, is refused before anything is shown", () => {
    const spki = generateKeyPairSync("ed25519").publicKey.export({ format: "der", type: "spki" });
    for (const name of ["\u202Epotpal", "lap\u200Btop", "laptop\u2066", "a\u001b]0;owned\u0007", "laptop\nalice added a device: x", "\u0085laptop", "laptop\u{E0041}"]) {
      const bytes = encodeFields(LINK_OFFER_LABEL, ["alice", newDeviceId(), name, spki, randomBytes(32)]);
      expect(() => decodeOffer(bytes), JSON.stringify(name)).toThrow(/printable/);
    }
  });
});
