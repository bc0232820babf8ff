// The MLS shape walk both sides share (src/protocol/mls/shape.ts, PROTOCOL.md §8.2 "What the relay
// decodes", §10.1 "What a client decodes"): the relay's shapes refused in a client's words too, the
// extension data a client decodes when it joins (a GroupInfo's ratchet tree, required_capabilities),
// the ratchet tree beside a Welcome (honest maximum: 1,000 leaves of GREASE-full capabilities), and
// what a Welcome holds encrypted to my KeyPackage. Each refusal happens before ts-mls decodes the
// bytes: its decoders are spied on (vi.mock), as relay-mls-decode-bounds.test.ts does.
import { beforeAll, describe, expect, it, vi } from "vitest";
import { encodeMlsMessage, type MLSMessage, type RatchetTree } from "ts-mls";
import { makeKeyPackageRef } from "ts-mls/keyPackage.js";
import { encryptWithLabel } from "ts-mls/crypto/hpke.js";
import { extractWelcomeSecret } from "ts-mls/groupInfo.js";
import { welcomeKey, welcomeNonce } from "ts-mls/welcome.js";
import { greaseValues } from "ts-mls/grease.js";
import { encodeRatchetTree } from "ts-mls/ratchetTree.js";
import { decodeKeyPackage, decodeMls, decodeReceivedMls, LAST_RESORT_EXTENSION } from "../../src/protocol/mls/client.js";
import { isMlsProtocolError, MlsGroup, ROOM_CREATOR_EXTENSION } from "../../src/protocol/mls/index.js";
import { decodeTree } from "../../src/protocol/mls/membership.js";
import { CLIENT_SHAPE_BOUNDS, mlsShapeBounds, walkMlsShape, walkRatchetTree } from "../../src/protocol/mls/shape.js";
import { suiteImpl } from "../../src/protocol/mls/suite.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { lookupOf, makeKeyPackage, mlsPerson } from "../helpers/mls-ds.js";
import {
  commitWithProposals, emptyExtensions, emptyReferences, groupInfoWithExtensions, groupInfoWithRequiredCapabilities, groupInfoWithTree, keyPackageWithProposalTypes,
  parentNode, realExternalCommit, realWelcome, repeated, treeOfBlanks, vectorHeader, welcomeWithSecrets,
} from "../helpers/mls-hostile-shapes.js";

/** Byte lengths ts-mls was asked to decode (the hostile structures are the only ones that big). */
const seen = vi.hoisted(() => ({ messages: [] as number[], trees: [] as number[], groupInfos: [] as number[], joins: 0 }));

vi.mock("ts-mls", async (importOriginal) => {
  const real = await importOriginal<typeof import("ts-mls")>();
  return {
    ...real,
    decodeMlsMessage: (b: Uint8Array, o: number) => { seen.messages.push(b.length); return real.decodeMlsMessage(b, o); },
    joinGroup: (...a: Parameters<typeof real.joinGroup>) => { seen.joins++; return real.joinGroup(...a); },
  };
});
vi.mock("ts-mls/ratchetTree.js", async (importOriginal) => {
  const real = await importOriginal<typeof import("ts-mls/ratchetTree.js")>();
  return { ...real, decodeRatchetTree: (b: Uint8Array, o: number) => { seen.trees.push(b.length); return real.decodeRatchetTree(b, o); } };
});
vi.mock("ts-mls/groupInfo.js", async (importOriginal) => {
  const real = await importOriginal<typeof import("ts-mls/groupInfo.js")>();
  return { ...real, decodeGroupInfo: (b: Uint8Array, o: number) => { seen.groupInfos.push(b.length); return real.decodeGroupInfo(b, o); } };
});

const relay = mlsShapeBounds(1_000);

function refusal(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    if (isMlsProtocolError(e, "malformed")) return e;
    throw e;
  }
  throw new Error("not refused");
}

async function refusalOf(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    if (isMlsProtocolError(e, "malformed")) return e;
    throw e;
  }
  throw new Error("not refused");
}

/** The median time of `n` runs of `fn`, in ms (printed, never asserted). */
function median(fn: () => unknown, n = 3): number {
  const xs: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    try { fn(); } catch { /* refused: its time counts */ }
    xs.push(performance.now() - t0);
  }
  return xs.sort((a, b) => a - b)[Math.floor(n / 2)]!;
}

let honestGroupInfo: Uint8Array;
let honestWelcome: { welcome: Uint8Array; ratchetTree: Uint8Array; commit: Uint8Array; groupInfo: Uint8Array };
let honestCommit: Uint8Array;
let honestKeyPackage: Buffer;

beforeAll(async () => {
  const [alice, bob, mallory] = await Promise.all([fixtureIdentity("alice"), fixtureIdentity("bob"), fixtureIdentity("mallory")]);
  const p = await mlsPerson(mallory);
  honestGroupInfo = await (await MlsGroup.create(p.client, "#shape")).groupInfo();
  honestWelcome = await realWelcome(alice, bob);
  honestCommit = await realExternalCommit(mallory);
  honestKeyPackage = await makeKeyPackage(p);
}, 60_000);

describe("the shared walk, in a client's words (PROTOCOL.md §10.1)", () => {
  it("refuses the relay's hostile shapes before ts-mls decodes them; honest ones decode", () => {
    const cases: Array<[string, Uint8Array, string]> = [
      ["GroupInfo", groupInfoWithExtensions(honestGroupInfo, emptyExtensions(330_000)), "GroupInfo has more than 32 extensions in the GroupInfo; this client takes at most 32 (PROTOCOL.md §8.2)"],
      ["MLS message", commitWithProposals(honestCommit, emptyReferences(490_000)), "MLS message is an external join with a proposal by reference; an external commit carries its proposals by value (RFC 9420 §12.4.3.2)"],
      ["Welcome", welcomeWithSecrets(honestWelcome.welcome, repeated(Buffer.from([0, 0, 0]), 330_000)), "Welcome has more than 1000 EncryptedGroupSecrets (one per member it adds); this client takes at most 1000 (PROTOCOL.md §8.2)"],
      ["KeyPackage", keyPackageWithProposalTypes(honestKeyPackage, repeated(Buffer.from([0x7a, 0x7a]), 2_500)), "KeyPackage has more than 64 proposal types in a leaf's capabilities; this client takes at most 64 (PROTOCOL.md §8.2)"],
    ];
    for (const [what, hostile, sentence] of cases) {
      seen.messages.length = 0;
      expect(refusal(() => decodeReceivedMls(hostile, what)).message).toBe(sentence);
      expect(seen.messages).toEqual([]);
      // The same walk in the relay's words (its wrapper, src/server/mls-shape.ts, makes it BAD_MLS_MESSAGE).
      expect(refusal(() => walkMlsShape(hostile, what, relay, "relay")).message).toBe(sentence.replace("this client", "this relay"));
    }
    seen.messages.length = 0;
    expect(refusal(() => decodeKeyPackage(cases[3]![1])).message).toBe(cases[3]![2]);
    expect(seen.messages).toEqual([]);
    for (const honest of [honestGroupInfo, honestCommit, honestWelcome.welcome, honestWelcome.groupInfo, honestKeyPackage]) decodeReceivedMls(honest, "honest");
    expect(decodeKeyPackage(honestKeyPackage).leafNode).toBeDefined();
  });

  it("refuses any PublicMessage but an external join's commit (a member's commit in clear)", () => {
    const msg = decodeMls(honestCommit, "commit") as Extract<MLSMessage, { wireformat: "mls_public_message" }>;
    const asMember = encodeMlsMessage({ ...msg, publicMessage: { ...msg.publicMessage, content: { ...msg.publicMessage.content, sender: { senderType: "member", leafIndex: 0 } } } } as MLSMessage);
    seen.messages.length = 0;
    expect(refusal(() => decodeReceivedMls(asMember, "the commit")).message)
      .toBe("the commit is a PublicMessage from a member: a client takes only an external join's commit in clear (PROTOCOL.md §8.2, §10.1)");
    expect(seen.messages).toEqual([]);
  });

  it("walks the extension data a join decodes: a GroupInfo's ratchet tree and required_capabilities (the relay leaves them opaque)", () => {
    const treeBomb = groupInfoWithTree(honestGroupInfo, treeOfBlanks(330_000, parentNode([])));
    const capsBomb = groupInfoWithRequiredCapabilities(honestGroupInfo, 100_000);
    walkMlsShape(treeBomb, "the GroupInfo", relay, "relay"); // opaque to the relay, which never decodes it
    seen.messages.length = 0;
    expect(refusal(() => decodeReceivedMls(treeBomb, "the GroupInfo")).message)
      .toBe("the GroupInfo's ratchet tree has more than 2000 nodes in a ratchet tree; this client takes at most 2000 (PROTOCOL.md §8.2)");
    expect(refusal(() => decodeReceivedMls(capsBomb, "the GroupInfo")).message)
      .toBe("the GroupInfo has more than 64 extension types in required_capabilities; this client takes at most 64 (PROTOCOL.md §8.2)");
    expect(seen.messages).toEqual([]);
    // A room's own required_capabilities (creator.ts) and its tree pass.
    decodeReceivedMls(honestWelcome.groupInfo, "the GroupInfo");
    decodeReceivedMls(groupInfoWithRequiredCapabilities(honestGroupInfo, 64), "the GroupInfo");
  });
});

/** A tree of `leaves` leaves each with the most capabilities ts-mls's GREASE gives ours, every parent present and each leaf unmerged in all its parents. */
function maximalTree(leaves: number): Uint8Array {
  const tree = decodeTree(honestWelcome.ratchetTree);
  const leaf = tree.find((n) => n?.nodeType === "leaf");
  if (leaf?.nodeType !== "leaf") throw new Error("no leaf");
  const capabilities = {
    ...leaf.leaf.capabilities,
    extensions: [...greaseValues, LAST_RESORT_EXTENSION, ROOM_CREATOR_EXTENSION],
    proposals: [...greaseValues],
    credentials: ["basic", "x509", ...greaseValues.map(String)],
  } as typeof leaf.leaf.capabilities;
  const width = 2 * leaves - 1;
  const unmerged: number[][] = Array.from({ length: width }, () => []);
  const level = (x: number): number => { let k = 0; while ((x >> k) & 1) k++; return k; };
  let full = 1;
  while (full < leaves) full *= 2;
  const root = full - 1; // the root of the full tree of `full` leaves (RFC 9420 Appendix C)
  for (let i = 0; i < leaves; i++) {
    let x = 2 * i;
    while (x !== root) {
      const k = level(x);
      const b = (x >> (k + 1)) & 1;
      x = (x | (1 << k)) ^ (b << (k + 1));
      if (x < width) unmerged[x]!.push(i);
    }
  }
  const nodes: RatchetTree = Array.from({ length: width }, (_, x) => (x % 2 === 0
    ? { nodeType: "leaf" as const, leaf: { ...leaf.leaf, capabilities } }
    : { nodeType: "parent" as const, parent: { hpkePublicKey: leaf.leaf.hpkePublicKey, parentHash: new Uint8Array(32), unmergedLeaves: unmerged[x]! } }));
  return encodeRatchetTree(nodes);
}

describe("the ratchet tree beside a Welcome (decodeTree)", () => {
  it("an honest tree of max_group_devices leaves passes and decodes; the hostile ones are refused before decodeRatchetTree", { timeout: 60_000 }, () => {
    const full = maximalTree(1_000);
    walkRatchetTree(full, "the ratchet tree", CLIENT_SHAPE_BOUNDS, "client");
    seen.trees.length = 0;
    const honestMs = median(() => decodeTree(full));
    expect(decodeTree(full).filter((n) => n?.nodeType === "leaf")).toHaveLength(1_000);
    expect(seen.trees).toContain(full.length);

    const blanks = treeOfBlanks(990_000, parentNode([]));
    const tooWide = Buffer.concat([Buffer.from([1, 2, 0, 0]), vectorHeader(4 * 1_001), Buffer.alloc(4 * 1_001)]);
    // A leaf of 320 capability entries (64 in each list), again and again: past the tree's 97,024 elements in all.
    const leafBytes = (() => {
      const caps = Buffer.concat(Array.from({ length: 5 }, () => Buffer.concat([vectorHeader(128), Buffer.alloc(128, 0x7a)])));
      return Buffer.concat([Buffer.from([1, 1, 0, 0, 0, 1, 0]), caps, Buffer.from([2, 0, 0])]);
    })();
    const heavy = Buffer.concat(Array.from({ length: 999 }, () => Buffer.concat([leafBytes, Buffer.from([0])])));
    const cases: Array<[Buffer, string]> = [
      [blanks, "the ratchet tree has more than 2000 nodes in a ratchet tree; this client takes at most 2000 (PROTOCOL.md §8.2)"],
      [Buffer.concat([vectorHeader(tooWide.length), tooWide]), "the ratchet tree has more than 1000 unmerged leaves in one parent node; this client takes at most 1000 (PROTOCOL.md §8.2)"],
      [Buffer.concat([vectorHeader(heavy.length), heavy]), "the ratchet tree has more than 97024 list elements in all (extensions, proposals, capabilities, ciphertexts…); this client takes at most 97024 (PROTOCOL.md §8.2)"],
    ];
    seen.trees.length = 0;
    for (const [hostile, sentence] of cases) expect(refusal(() => decodeTree(hostile)).message).toBe(sentence);
    expect(seen.trees).toEqual([]);
    const hostileMs = median(() => decodeTree(blanks));
    console.log(`ratchet tree: honest 1,000 leaves ${full.length} B decode ${honestMs.toFixed(1)} ms; 990,000 blank nodes refused by the walk in ${hostileMs.toFixed(3)} ms`);
  });
});

describe("what a Welcome holds encrypted to my KeyPackage (anyone with it can write any)", () => {
  /** A Welcome to bob's KeyPackage whose GroupSecrets are `secrets` and GroupInfo `groupInfo` (bare), as a hostile relay writes one. */
  async function forgedWelcome(kp: Uint8Array, groupSecrets: (joiner: Uint8Array) => Buffer, groupInfo: Buffer): Promise<Uint8Array> {
    const impl = await suiteImpl();
    const keyPackage = decodeKeyPackage(kp);
    const joiner = new Uint8Array(impl.kdf.size).fill(7);
    const welcomeSecret = await extractWelcomeSecret(joiner, new Uint8Array(impl.kdf.size), impl.kdf);
    const encryptedGroupInfo = await impl.hpke.encryptAead(await welcomeKey(welcomeSecret, impl), await welcomeNonce(welcomeSecret, impl), undefined, groupInfo);
    const sealed = await encryptWithLabel(await impl.hpke.importPublicKey(keyPackage.initKey), "Welcome", encryptedGroupInfo, groupSecrets(joiner), impl.hpke);
    const real = decodeMls(honestWelcome.welcome, "Welcome") as Extract<MLSMessage, { wireformat: "mls_welcome" }>;
    return encodeMlsMessage({
      ...real,
      welcome: { ...real.welcome, encryptedGroupInfo, secrets: [{ newMember: await makeKeyPackageRef(keyPackage, impl.hash), encryptedGroupSecrets: { kemOutput: sealed.enc, ciphertext: sealed.ct } }] },
    });
  }
  const secretsOf = (psks: Buffer) => (joiner: Uint8Array): Buffer => Buffer.concat([vectorHeader(joiner.length), Buffer.from(joiner), Buffer.from([0]), vectorHeader(psks.length), psks]);
  /** The bare GroupInfo inside an MLSMessage (after its version and wire format). */
  const bare = (groupInfo: Uint8Array): Buffer => Buffer.from(groupInfo).subarray(4);

  it("a GroupInfo of 330,000 extensions, or GroupSecrets of 200,000 PSKs, is refused before joinGroup decodes it", { timeout: 60_000 }, async () => {
    const bob = await mlsPerson(await fixtureIdentity("bob"));
    const kp = await makeKeyPackage(bob);
    const hostileInfo = bare(groupInfoWithExtensions(honestGroupInfo, emptyExtensions(330_000)));
    seen.joins = 0;
    seen.groupInfos.length = 0;
    const w1 = await forgedWelcome(kp, secretsOf(Buffer.alloc(0)), hostileInfo);
    expect((await refusalOf(MlsGroup.joinFromWelcome(bob.client, w1, honestWelcome.ratchetTree, lookupOf(bob)))).message)
      .toBe("the Welcome's GroupInfo has more than 32 extensions in the GroupInfo; this client takes at most 32 (PROTOCOL.md §8.2)");
    const psks = repeated(Buffer.from([1, 0, 0]), 200_000); // external PSK ids, empty id and nonce
    const w2 = await forgedWelcome(kp, secretsOf(psks), bare(honestGroupInfo));
    expect((await refusalOf(MlsGroup.joinFromWelcome(bob.client, w2, honestWelcome.ratchetTree, lookupOf(bob)))).message)
      .toBe("the Welcome's GroupSecrets has more than 16 pre-shared keys in its GroupSecrets; this client takes at most 16 (PROTOCOL.md §8.2)");
    expect(seen.joins).toBe(0);
    expect(seen.groupInfos).toEqual([]);
  });

  it("an honest Welcome still joins (the signer read from the GroupInfo opened before the join)", { timeout: 60_000 }, async () => {
    const [alice, bobId] = await Promise.all([fixtureIdentity("alice"), fixtureIdentity("bob")]);
    const pa = await mlsPerson(alice);
    const pb = await mlsPerson(bobId);
    const group = await MlsGroup.create(pa.client, "#shape-join");
    const add = await group.addMembers([await makeKeyPackage(pb)], { expectUsernames: ["bob"] });
    const joined = await MlsGroup.joinFromWelcome(pb.client, add.welcome!, add.ratchetTree!, lookupOf(pb));
    expect(joined.addedBy.username).toBe("alice");
  });
});
