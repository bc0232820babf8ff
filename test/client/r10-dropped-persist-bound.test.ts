// rt10 (round 9, 5338a8f): the per-conversation budgets bound the dropped-devices memory at
// 4,096 conversations x 64 users x 64 keys (keys per user are really bounded by the list, 15
// non-primary devices): ~3.9M entries, ~300 MB of JSON. Every remember() re-serializes and
// re-seals the WHOLE memory (save()), once per key a commit removes (noteCommit loops), so
// sybil primaries in rooms shared with bob (a hostile relay registers names for free; r9's own
// model) make each later self-heal commit cost a full re-serialization of everything, and a
// "small value" of hundreds of MB in the MLS store. Here a quarter of the budget (1,024
// conversations) is read back, then ONE ordinary commit dropping 15 devices is noted.
import { describe, expect, it } from "vitest";
import type { DeviceDirectory } from "../../src/client/devices-api.js";
import { DroppedDevices } from "../../src/client/mls/dropped-devices.js";
import { encodeListClaim } from "../../src/client/mls/list-claims.js";
import type { DeviceEntry, VerifiedDeviceList } from "../../src/protocol/devices.js";
import type { MembershipChange, MlsMember } from "../../src/protocol/mls/index.js";
import { nullLogger } from "../../src/protocol/log.js";

const CONVS = 1_024;
const USERS = 64;
const KEYS = 15;
const key = (u: number, n: number) => { const b = Buffer.alloc(32, n); b.writeUInt32BE(u, 0); return b; };
const entry = (u: number, n: number, primary = false): DeviceEntry => ({ deviceId: (u * 16 + n).toString(16).padStart(16, "0"), name: `d${n}`, authSpki: Buffer.alloc(44, n), mlsSignatureKey: key(u, n), addedAtMs: 0, primary });
const nameOf = (u: number) => `sybil${u}`;
const fpr = (u: number) => { const b = Buffer.alloc(32); b.writeUInt32BE(u, 0); return b; };
const leaf = (u: number, n: number, leafIndex: number): MlsMember => ({ username: nameOf(u), identitySpki: Buffer.alloc(44), identityFpr: fpr(u), signatureKey: key(u, n), leafIndex });

describe("review round 10: the dropped-devices memory at its budgets", () => {
  it("one self-heal commit saves once, and what is kept stays within DROPPED_ENTRIES_MAX", { timeout: 240_000 }, () => {
    const lists = new Map<string, VerifiedDeviceList>();
    for (let u = 0; u <= USERS; u++) lists.set(nameOf(u), { username: nameOf(u), version: 1, issuedAtMs: 0, devices: [entry(u, 0, true), ...Array.from({ length: KEYS }, (_, i) => entry(u, i + 1))] } as unknown as VerifiedDeviceList);
    // What the memory would be after the sybils' commits (built directly: filling it through noteCommit is itself quadratic).
    const rows = Array.from({ length: CONVS }, (_, c) => [`#r${c}`, Array.from({ length: USERS }, (_, u) => [nameOf(u), Array.from({ length: KEYS }, (_, k) => [key(u, k + 1).toString("hex"), 2])])]);
    const kept = new Map<string, Uint8Array>([["dropped-devices", Buffer.from(JSON.stringify(rows), "utf8")]]);
    const writes: number[] = [];
    const keep = { value: (n: string) => kept.get(n), putValue: (n: string, b: Uint8Array) => { writes.push(b.length); kept.set(n, b); } };
    const d = new DroppedDevices({ known: (u: string) => lists.get(u) } as unknown as DeviceDirectory, nullLogger, keep);
    // Read back within the bound: a lookup still answers.
    expect(d.listOf(nameOf(0))).toBeDefined();
    // One honest-looking commit: user 64's primary drops its 15 devices in one more room.
    const by = leaf(USERS, 0, 0);
    const change: MembershipChange = { committer: by, added: [], removed: Array.from({ length: KEYS }, (_, i) => leaf(USERS, i + 1, i + 1)), left: [], external: false };
    d.noteCommit("#one-more", change, encodeListClaim(2, true));
    // One save for the commit (not one per key), of the bounded memory (DROPPED_ENTRIES_MAX keys: ~1.5 MB at most).
    expect({ saves: writes.length, underTwoMB: (writes.at(-1) ?? Infinity) < 2e6 }).toEqual({ saves: 1, underTwoMB: true });
    expect(d.isDropped(nameOf(USERS), key(USERS, 1))).toBe(true);
  });
});
