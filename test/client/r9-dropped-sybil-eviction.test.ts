// rt9: round 8 stopped the lobby feeding the dropped-device memory, but any other conversation
// still feeds it, and a stranger needs no consent of bob's to share one (a DM or a room invite
// is joined on its Welcome). A hostile relay registers names for free: 1,024 made-up users, each
// a primary with one linked device, each removing its own linked device in ONE self-heal commit
// (tag 0x02, claim = its list + 1, which is true: it did publish that list) in a room with bob,
// push alice's entry out while alice's DM is quiet. The thief's next external join is then
// taken (alice's withheld list still names it): round 7's fix undone.
import { describe, expect, it } from "vitest";
import type { DeviceDirectory } from "../../src/client/devices-api.js";
import { DroppedDevices } from "../../src/client/mls/dropped-devices.js";
import { encodeListClaim } from "../../src/client/mls/list-claims.js";
import type { DeviceEntry, VerifiedDeviceList } from "../../src/protocol/devices.js";
import type { MembershipChange, MlsMember } from "../../src/protocol/mls/index.js";
import { nullLogger } from "../../src/protocol/log.js";

const SYBILS = 1_024;

const key = (u: number, n: number) => { const b = Buffer.alloc(32, n); b.writeUInt32BE(u, 0); return b; };
const entry = (u: number, n: number, primary = false): DeviceEntry => ({ deviceId: (u * 16 + n).toString(16).padStart(16, "0"), name: `d${n}`, authSpki: Buffer.alloc(44, n), mlsSignatureKey: key(u, n), addedAtMs: 0, primary });
const nameOf = (u: number) => (u === 0 ? "alice" : `sybil${u}`);
const fpr = (u: number) => { const b = Buffer.alloc(32); b.writeUInt32BE(u, 0); return b; };
const leaf = (u: number, n: number, leafIndex: number): MlsMember => ({ username: nameOf(u), identitySpki: Buffer.alloc(44), identityFpr: fpr(u), signatureKey: key(u, n), leafIndex });
const change = (committer: MlsMember, removed: MlsMember[]): MembershipChange => ({ committer, added: [], removed, left: [], external: false });

describe("review round 9: strangers evict alice from bob's dropped-device memory", () => {
  it("1,024 sybil primaries' own removals (in rooms, not the lobby) must not make bob forget alice's stolen desktop", () => {
    const lists = new Map<string, VerifiedDeviceList>();
    for (let u = 0; u <= SYBILS; u++) lists.set(nameOf(u), { username: nameOf(u), version: 1, issuedAtMs: 0, devices: [entry(u, 1, true), entry(u, 2)] } as unknown as VerifiedDeviceList);
    const d = new DroppedDevices({ known: (u: string) => lists.get(u) } as unknown as DeviceDirectory, nullLogger);
    // alice's primary took her desktop (device 2) out under v2 (bob is served v1).
    d.noteCommit("dm:alice:bob", change(leaf(0, 1, 0), [leaf(0, 2, 1)]), encodeListClaim(2, true));
    expect(d.isDropped("alice", key(0, 2))).toBe(true);
    // The sybils, one commit each in a room bob was invited to.
    for (let u = 1; u <= SYBILS; u++) d.noteCommit("#party", change(leaf(u, 1, 2 * u), [leaf(u, 2, 2 * u + 1)]), encodeListClaim(2, true));
    expect(d.isDropped("alice", key(0, 2))).toBe(true);
  });
});
