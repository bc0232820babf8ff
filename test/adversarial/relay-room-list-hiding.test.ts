// Regression (rt2 review): ListRooms answered the first 10,000 rooms by name, so ten names from
// one address, each with its 1,000 groups (the per-user cap) named to sort first, hid every other
// room from everyone's /rooms, for good (groups are never purged). The listing is now biggest
// rooms first, then by name, with at most MAX_LISTED_ROOMS_PER_CREATOR rooms of one creator
// (PROTOCOL.md §8.2). The relay does not check a GroupInfo's signature, so one GroupInfo with
// its group id's room name rewritten registers each room.
import { generateKeyPairSync } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { identityFromPrivateKeys } from "../../src/protocol/keys.js";
import { MlsGroup } from "../../src/protocol/mls/index.js";
import { MAX_LISTED_ROOMS_PER_CREATOR } from "../../src/server/mls-ds.js";
import { fixtureIdentity, fixtureKeys } from "../helpers/identities.js";
import { mlsPerson, must } from "../helpers/mls-ds.js";
import { TestRelay } from "../helpers/relay-harness.js";

let relay: TestRelay | undefined;
afterEach(async () => { await relay?.cleanup(); relay = undefined; });

describe("ListRooms cannot be filled", () => {
  it("10 accounts x 1,000 rooms named '#0…' do not hide #ops from another user's room list", { timeout: 300_000 }, async () => {
    let now = Date.now();
    relay = await TestRelay.start({ clock: () => now, logLevel: "warn" });
    const rsa = fixtureKeys("mallory")[1]!;
    const template = await fixtureIdentity("mallory");
    const pm = await mlsPerson(template);
    const base = Buffer.from(await (await MlsGroup.create(pm.client, "#0000000")).groupInfo());
    const needle = Buffer.from("#0000000\0");
    const at = base.indexOf(needle);
    expect(at).toBeGreaterThan(0);
    const squatters = await Promise.all(Array.from({ length: 10 }, async (_, k) => {
      const id = identityFromPrivateKeys(`squat${k}`, generateKeyPairSync("ed25519").privateKey, rsa);
      const s = await relay!.connect(id);
      for (let i = 0; i < 1000; i++) {
        const gi = Buffer.from(base);
        gi.write(`#0${k}${String(i).padStart(5, "0")}`, at, "utf8");
        for (;;) {
          try {
            await must(s, { $case: "publishGroupInfo", value: { requestId: 0, groupInfo: gi } }, "groupInfoResult");
            break;
          } catch (e) {
            if (!/too many|too fast|RATE/i.test(String(e))) throw e;
            now += 5_000; // the bucket refills (the test's clock)
          }
        }
      }
      return s;
    }));
    // Honest alice makes #ops; bob lists the rooms.
    const alice = await fixtureIdentity("alice");
    const pa = await mlsPerson(alice);
    const a = await relay.connect(alice);
    await must(a, { $case: "publishGroupInfo", value: { requestId: 0, groupInfo: Buffer.from(await (await MlsGroup.create(pa.client, "#ops")).groupInfo()) } }, "groupInfoResult");
    const b = await relay.connect(await fixtureIdentity("bob"));
    now += 10_000;
    b.write({ $case: "listRooms", value: { requestId: 77 } });
    const list = await b.next("roomList", () => true, 20_000);
    const names = list.all.map((r) => r.room);
    expect(names.includes("#ops")).toBe(true);
    // Each squatter shows at most its share of the list.
    for (let k = 0; k < 10; k++) expect(names.filter((n) => n.startsWith(`#0${k}`)).length).toBeLessThanOrEqual(MAX_LISTED_ROOMS_PER_CREATOR);
    expect(names.length).toBe(10 * MAX_LISTED_ROOMS_PER_CREATOR + 1);
    // One's own rooms are always in one's listing, whatever the per-creator cap left out.
    const s0 = squatters[0]!;
    s0.write({ $case: "listRooms", value: { requestId: 80 } });
    const own = await s0.next("roomList", (v) => v.requestId === 80, 20_000);
    const ownAll = new Set(own.all.map((r) => r.room));
    expect(own.joined.length).toBeGreaterThan(MAX_LISTED_ROOMS_PER_CREATOR);
    for (const r of own.joined) expect(ownAll.has(r.room)).toBe(true);
    a.write({ $case: "listRooms", value: { requestId: 79 } });
    const mine = await a.next("roomList", (v) => v.requestId === 79, 20_000);
    expect(mine.joined.map((r) => r.room)).toEqual(["#ops"]);
    expect(mine.all.map((r) => r.room)).toEqual(names);
    // A second ListRooms is answered from the kept listing, the same.
    b.write({ $case: "listRooms", value: { requestId: 78 } });
    const again = await b.next("roomList", (v) => v.requestId === 78, 20_000);
    expect(again.all.map((r) => r.room)).toEqual(names);
  });
});
