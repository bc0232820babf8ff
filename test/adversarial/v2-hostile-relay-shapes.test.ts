// A hostile relay hands a client the MLS shapes the relay itself refuses from clients (PROTOCOL.md
// §8.2 "What the relay decodes", §10.1 "What a client decodes"): ts-mls builds one object per list
// element, so a 990 KB GroupInfo of 330,000 empty extensions, a Welcome of 330,000 empty secrets, a
// ratchet tree of 990,000 blank nodes or a commit of 490,000 empty proposal references each froze
// the client's event loop for up to ~1 s. Real ChatClients in v2 mode behind the operator's man in
// the middle (mls-hostile-proxy.ts): each hostile structure is refused by the shared walk
// (src/protocol/mls/shape.ts) before ts-mls decodes it (its decoders are spied on, vi.mock), on the
// path's usual terms (a failed join, a notice, a failed invite, a refused delivery), and the
// client goes on.
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { MlsKind } from "../../src/gen/securechat/v1/chat.js";
import {
  cleanupWorlds, deliveryTo, isKind, keepTalking, loadIdentities, notices, processed, room, T, world,
} from "../helpers/v2-hostile-world.js";
import { fixtureIdentity } from "../helpers/identities.js";
import {
  commitWithProposals, emptyExtensions, emptyReferences, groupInfoWithExtensions, groupInfoWithTree, keyPackageWithProposalTypes, parentNode, realExternalCommit,
  repeated, treeOfBlanks, welcomeWithSecrets,
} from "../helpers/mls-hostile-shapes.js";
import { waitUntil } from "../helpers/wait.js";

/** Byte lengths ts-mls was asked to decode as an MLSMessage or a ratchet tree (the hostile ones are the only ones that big). */
const seen = vi.hoisted(() => ({ lengths: new Set<number>() }));

vi.mock("ts-mls", async (importOriginal) => {
  const real = await importOriginal<typeof import("ts-mls")>();
  return { ...real, decodeMlsMessage: (b: Uint8Array, o: number) => { seen.lengths.add(b.length); return real.decodeMlsMessage(b, o); } };
});
vi.mock("ts-mls/ratchetTree.js", async (importOriginal) => {
  const real = await importOriginal<typeof import("ts-mls/ratchetTree.js")>();
  return { ...real, decodeRatchetTree: (b: Uint8Array, o: number) => { seen.lengths.add(b.length); return real.decodeRatchetTree(b, o); } };
});

/** Whether ts-mls decoded anything of exactly these bytes' length. */
const decoded = (b: Uint8Array): boolean => seen.lengths.has(b.length);

beforeAll(loadIdentities);
afterEach(cleanupWorlds);

describe("a hostile relay's element-heavy MLS structures are refused by the client before ts-mls decodes them (§10.1)", () => {
  it("a GroupInfo of 330,000 extensions, or whose ratchet tree has 990,000 nodes, served to a joiner: the join fails, then works", { timeout: 240_000 }, async () => {
    const w = await world("alice", "bob");
    expect((await w.c.alice!.client.joinRoom("#ops")).ok).toBe(true);
    let hostile: Uint8Array | undefined;
    let served = 0;
    w.proxy.onResponse = (user, f) => {
      if (user !== "bob" || f.$case !== "groupInfoResult" || f.value.groupInfo.length === 0) return undefined;
      served++;
      return [{ $case: "groupInfoResult", value: { ...f.value, groupInfo: Buffer.from(hostile ??= served === 1 ? groupInfoWithExtensions(f.value.groupInfo, emptyExtensions(330_000)) : groupInfoWithTree(f.value.groupInfo, treeOfBlanks(990_000, parentNode([])))) } }];
    };
    seen.lengths.clear();
    const first = await w.c.bob!.client.joinRoom("#ops");
    expect(first.ok).toBe(false);
    expect(served).toBeGreaterThan(0);
    expect(hostile!.length).toBeGreaterThan(980_000);
    expect(decoded(hostile!)).toBe(false);

    hostile = undefined;
    const second = await w.c.bob!.client.joinRoom("#ops");
    expect(second.ok).toBe(false);
    expect(hostile!.length).toBeGreaterThan(980_000);
    expect(decoded(hostile!)).toBe(false);
    expect((await w.c.bob!.client.members("#ops")).ok).toBe(false);

    w.proxy.onResponse = undefined;
    expect((await w.c.bob!.client.joinRoom("#ops")).ok).toBe(true);
    await waitUntil(async () => {
      const m = await w.c.alice!.client.members("#ops");
      return m.ok && m.value.length === 2;
    }, "alice sees bob join", T);
    await keepTalking(w, "#ops", ["alice", "bob"], "after the hostile GroupInfos");
  });

  it("a Welcome of 330,000 secrets, and a ratchet tree of 990,000 nodes beside a Welcome: the invitation does not open (a notice); the members talk on", { timeout: 240_000 }, async () => {
    const w = await world("alice", "bob", "carol", "dave");
    await room(w, "#ops", "alice", "bob");
    const hostileWelcome = new Map<string, Buffer>();
    const hostileTree = treeOfBlanks(990_000, parentNode([]));
    w.proxy.onDelivery = (user, d) => {
      if (d.mls?.kind !== MlsKind.MLS_KIND_WELCOME) return undefined;
      if (user === "carol") {
        const bad = welcomeWithSecrets(d.mls.mls, repeated(Buffer.from([0, 0, 0]), 330_000));
        hostileWelcome.set(user, bad);
        return [{ ...d, mls: { ...d.mls, mls: bad } }];
      }
      if (user === "dave") return [{ ...d, mls: { ...d.mls, ratchetTree: hostileTree } }];
      return undefined;
    };
    seen.lengths.clear();
    expect((await w.c.alice!.client.invite!("#ops", "carol")).ok).toBe(true);
    expect((await w.c.alice!.client.invite!("#ops", "dave")).ok).toBe(true);
    for (const who of ["carol", "dave"]) {
      await waitUntil(() => notices(w.c[who]!).includes("an invitation to #ops from alice could not be opened; nothing was joined (ask to be added again)"), `${who} told the invitation did not open`, T);
      expect((await w.c[who]!.client.members("#ops")).ok).toBe(false);
    }
    expect(hostileWelcome.get("carol")!.length).toBeGreaterThan(980_000);
    expect(decoded(hostileWelcome.get("carol")!)).toBe(false);
    expect(decoded(hostileTree)).toBe(false);
    w.proxy.onDelivery = undefined;
    await keepTalking(w, "#ops", ["alice", "bob"], "after the hostile Welcomes");
    await keepTalking(w, "dm:alice:carol", ["alice", "carol"], "carol after the hostile Welcome");
    await keepTalking(w, "dm:alice:dave", ["alice", "dave"], "dave after the hostile tree");
  });

  it("a claimed KeyPackage of 2,500 capability entries: the invite fails; served honestly it works", { timeout: 240_000 }, async () => {
    const w = await world("alice", "bob");
    expect((await w.c.alice!.client.joinRoom("#ops")).ok).toBe(true);
    let hostile: Buffer | undefined;
    w.proxy.onResponse = (user, f) => {
      if (user !== "alice" || f.$case !== "keyPackageList") return undefined;
      return [{ $case: "keyPackageList", value: { ...f.value, entries: f.value.entries.map((e) => ({ ...e, keyPackage: (hostile = keyPackageWithProposalTypes(e.keyPackage, repeated(Buffer.from([0x7a, 0x7a]), 2_500))) })) } }];
    };
    seen.lengths.clear();
    expect((await w.c.alice!.client.invite!("#ops", "bob")).ok).toBe(false);
    expect(hostile).toBeDefined();
    expect(decoded(hostile!)).toBe(false);
    expect((w.proxy.requests.get("alice") ?? []).some((f) => f.$case === "sendCommit" && f.value.added.includes("bob"))).toBe(false);
    w.proxy.onResponse = undefined;
    expect((await w.c.alice!.client.invite!("#ops", "bob")).ok).toBe(true);
    await keepTalking(w, "#ops", ["alice", "bob"], "after the hostile KeyPackage");
  });

  it("a delivered commit of 490,000 proposal references is refused unread; the member reads the next message", { timeout: 240_000 }, async () => {
    const w = await world("alice", "bob", "carol");
    await room(w, "#ops", "alice", "bob", "carol");
    const commit = await deliveryTo(w, "bob", isKind(MlsKind.MLS_KIND_COMMIT, "#ops"), "carol's join commit queued for bob");
    const hostile = commitWithProposals(await realExternalCommit(await fixtureIdentity("mallory")), emptyReferences(490_000));
    seen.lengths.clear();
    const [copy] = w.proxy.inject("bob", { ...commit, mls: { ...commit.mls!, mls: hostile } });
    await processed(w, "bob", copy!.seq);
    expect(decoded(hostile)).toBe(false);
    const m = await w.c.bob!.client.members("#ops");
    expect(m.ok && [...m.value].sort()).toEqual(["alice", "bob", "carol"]);
    await keepTalking(w, "#ops", ["alice", "bob", "carol"], "after the hostile commit");
  });
});
