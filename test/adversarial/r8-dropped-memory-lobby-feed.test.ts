// rt8 (precondition of the eviction finding): a stranger who shares nothing with bob but the
// lobby puts an entry into bob's dropped-device memory with one lobby commit of her primary
// (removing her own linked device, claiming list version 2^40). Each such stranger takes one of
// the 1,024 places, for good (her claim is never reached).
import { describe, expect, it } from "vitest";
import { encodeListClaim } from "../../src/client/mls/list-claims.js";
import { deviceWorldEachTest, hostileCommit, keyOf, leafKeys, sendHostileCommit } from "../helpers/mls-devices.js";
import { waitUntil as waitFor } from "../helpers/wait.js";

const waitUntil = <T>(fn: () => T | undefined | false | Promise<T | undefined | false>, what: string, ms = 90_000): Promise<T> => waitFor(fn, what, ms);
const t = deviceWorldEachTest("sc-rt8-lobbyfeed-");

describe("review round 8: strangers feed bob's dropped-device memory through the lobby", () => {
  it("mallory's primary drops her own linked device in the lobby under a made-up claim: bob must not spend memory on it ", { timeout: 240_000 }, async () => {
    const { w, ds } = t;
    const mp = await w.device("mallory", "m-primary");
    const ml = await w.device("mallory", "m-linked");
    const bob = await w.device("bob", "bobpc");
    await w.publish("mallory", [mp, ml]);
    await w.publish("bob", [bob]);
    for (const d of [mp, ml, bob]) await w.start(d);
    await waitUntil(() => leafKeys(bob, "lobby").length === 3, "three leaves in bob's lobby");
    await w.settle();
    // mallory's own client: her primary's lobby state, every message claiming version 2^40.
    await mp.engine.idle();
    mp.engine.close();
    ds.disconnect("mallory", mp.entry.deviceId);
    const g = mp.store.loadGroup(await mp.store.loadOrCreateClient(), "lobby", { authenticatedData: () => encodeListClaim(2 ** 40, true) })!;
    const leaf = g.members().find((m) => Buffer.from(m.signatureKey).toString("hex") === keyOf(ml))!.leafIndex;
    await sendHostileCommit(ds, mp, await hostileCommit(g, [{ proposalType: "remove", remove: { removed: leaf } }], false));
    await waitUntil(() => !leafKeys(bob, "lobby").includes(keyOf(ml)), "bob accepts the primary's removal");
    const dropped = (bob.engine as unknown as { s: { dropped: { isDropped(u: string, k: Uint8Array): boolean } } }).s.dropped;
    // bob, who never shared a conversation with mallory, now spends one of 1,024 places on her, for good.
    expect(dropped.isDropped("mallory", ml.entry.mlsSignatureKey)).toBe(false);
  });
});
