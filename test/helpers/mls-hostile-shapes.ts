// Real MLS structures of our clients with one list swapped for many tiny elements (or a few of
// the honest maximum's): what a hostile client sends to make the relay's decode build one
// object per element (PROTOCOL.md §8.2 "What the relay decodes"; src/server/mls-shape.ts). The
// lists are spliced in as bytes: ts-mls's encoder recurses once per element and cannot write
// 300,000 of them. From the red team's rt4 reproductions (rt4-decode-cost.test.ts).
import { decodeMlsMessage, encodeMlsMessage, type MLSMessage } from "ts-mls";
import { MlsGroup } from "../../src/protocol/mls/index.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { makeKeyPackage, mlsPerson } from "./mls-ds.js";

/** A <V> length header of `n` (RFC 9420 §2.1.2), always the 4-byte form when n ≥ 2^14. */
export function vectorHeader(n: number): Buffer {
  if (n < 64) return Buffer.from([n]);
  if (n < 0x4000) return Buffer.from([0x40 | (n >> 8), n & 0xff]);
  const b = Buffer.alloc(4);
  b.writeUInt32BE((n | 0x80000000) >>> 0);
  return b;
}

/** `encoded` with the one-element list whose element is exactly `element` replaced by a list of `body`. */
export function spliceList(encoded: Uint8Array, element: Buffer, body: Buffer): Buffer {
  const bytes = Buffer.from(encoded);
  const one = Buffer.concat([vectorHeader(element.length), element]);
  const at = bytes.indexOf(one);
  if (at < 0 || bytes.indexOf(one, at + 1) >= 0) throw new Error("the marked list is not found exactly once");
  return Buffer.concat([bytes.subarray(0, at), vectorHeader(body.length), body, bytes.subarray(at + one.length)]);
}

/** `n` copies of `element`. */
export function repeated(element: Buffer, n: number): Buffer {
  return Buffer.concat(Array.from({ length: n }, () => element));
}

const MARK = Buffer.from("00112233445566778899aabbccddeeff", "hex");

function decoded(bytes: Uint8Array): MLSMessage {
  const d = decodeMlsMessage(bytes, 0);
  if (d === undefined) throw new Error("does not decode");
  return d[0];
}

/** `groupInfo` (a real one) whose GroupInfo extensions are `body` (elements: type u16, data<V>). */
export function groupInfoWithExtensions(groupInfo: Uint8Array, body: Buffer): Buffer {
  const msg = decoded(groupInfo) as Extract<MLSMessage, { wireformat: "mls_group_info" }>;
  const marked = encodeMlsMessage({ ...msg, groupInfo: { ...msg.groupInfo, extensions: [{ extensionType: 0x0f0f, extensionData: MARK }] } });
  return spliceList(marked, Buffer.concat([Buffer.from([0x0f, 0x0f]), vectorHeader(MARK.length), MARK]), body);
}

/** `n` empty extensions of type 0x0f0f (3 bytes each). */
export function emptyExtensions(n: number): Buffer {
  return repeated(Buffer.from([0x0f, 0x0f, 0]), n);
}

/** A real external commit (a PublicMessage, new_member_commit) of `id`'s into a scratch room of its own. */
export async function realExternalCommit(id: PrivateIdentity, room = "#shape-scratch"): Promise<Uint8Array> {
  const owner = await mlsPerson(id);
  const group = await MlsGroup.create(owner.client, room);
  const joiner = await mlsPerson(id);
  return (await MlsGroup.joinExternal(joiner.client, await group.groupInfo())).commit;
}

/** `commit` (a PublicMessage commit) whose proposals are `body` (elements: ProposalOrRef). */
export function commitWithProposals(commit: Uint8Array, body: Buffer): Buffer {
  const msg = decoded(commit) as Extract<MLSMessage, { wireformat: "mls_public_message" }>;
  const content = msg.publicMessage.content;
  if (content.contentType !== "commit") throw new Error("not a commit");
  const marked = encodeMlsMessage({
    ...msg,
    publicMessage: { ...msg.publicMessage, content: { ...content, commit: { ...content.commit, proposals: [{ proposalOrRefType: "reference", reference: MARK }] } } },
  } as MLSMessage);
  return spliceList(marked, Buffer.concat([Buffer.from([2]), vectorHeader(MARK.length), MARK]), body);
}

/** `n` empty proposal references (2 bytes each). */
export function emptyReferences(n: number): Buffer {
  return repeated(Buffer.from([2, 0]), n);
}

/** An ExternalInit by value with an empty kem_output: enough of one for the walk. */
export const EXTERNAL_INIT = Buffer.from([1, 0, 6, 0]);

/** `n` Removes by value (7 bytes each), as a resync's proposals are. */
export function removes(n: number): Buffer {
  return repeated(Buffer.from([1, 0, 3, 0, 0, 0, 0]), n);
}

/**
 * A proposal the walk and ts-mls once read differently (review round 5): an Update whose
 * LeafNode's source is `commit` fails ts-mls's Update decode, which then reads it again as a
 * custom proposal of type 2 whose data is the empty encryption_key, and goes on reading
 * ProposalOrRefs from the signature_key: `hidden`, inside the credential's identity, became
 * ~475,000 references while the walk counted one proposal.
 */
export function smuggledUpdate(hidden: Buffer): Buffer {
  const idHeader = Buffer.alloc(4);
  idHeader.writeUInt32BE((hidden.length | 0x80000000) >>> 0);
  return Buffer.concat([
    Buffer.from([1, 0x00, 0x02]), // ProposalOrRef: proposal, type 2 (update)
    Buffer.from([0x00]), // encryption_key<V> empty (ts-mls: the custom proposal's data)
    Buffer.from([0x02, 0x07, 0x00]), // signature_key<V> of 2 bytes (ts-mls: a 7-byte reference)
    Buffer.from([0x00, 0x01]), idHeader, // basic credential, identity<V> header
    hidden, // identity bytes (ts-mls: more ProposalOrRefs)
    Buffer.from([0, 0, 0, 0, 0]), // five empty capability lists
    Buffer.from([0x03, 0x00]), // leaf_node_source commit, parent_hash
    Buffer.from([0x00, 0x00]), // extensions, signature
  ]);
}

/** A real Welcome (alice's room adding bob's KeyPackage), its ratchet tree, and the commit beside it. */
export async function realWelcome(alice: PrivateIdentity, bob: PrivateIdentity, room = "#shape-welcome"): Promise<{ welcome: Uint8Array; ratchetTree: Uint8Array; commit: Uint8Array; groupInfo: Uint8Array }> {
  const pa = await mlsPerson(alice);
  const pb = await mlsPerson(bob);
  const group = await MlsGroup.create(pa.client, room);
  const add = await group.addMembers([await makeKeyPackage(pb)], { expectUsernames: [bob.username] });
  return { welcome: add.welcome!, ratchetTree: add.ratchetTree!, commit: add.commit, groupInfo: add.groupInfo };
}

/** `welcome` whose EncryptedGroupSecrets are `body` (elements: new_member<V>, kem_output<V>, ciphertext<V>). */
export function welcomeWithSecrets(welcome: Uint8Array, body: Buffer): Buffer {
  const msg = decoded(welcome) as Extract<MLSMessage, { wireformat: "mls_welcome" }>;
  const marked = encodeMlsMessage({ ...msg, welcome: { ...msg.welcome, secrets: [{ newMember: MARK, encryptedGroupSecrets: { kemOutput: new Uint8Array(0), ciphertext: new Uint8Array(0) } }] } });
  return spliceList(marked, Buffer.concat([vectorHeader(MARK.length), MARK, Buffer.from([0, 0])]), body);
}

/** The EncryptedGroupSecrets of `welcome` as bytes, each element once (a real one, to repeat). */
export function welcomeSecretBytes(welcome: Uint8Array): Buffer {
  const msg = decoded(welcome) as Extract<MLSMessage, { wireformat: "mls_welcome" }>;
  const s = msg.welcome.secrets[0]!;
  return Buffer.concat([
    vectorHeader(s.newMember.length), Buffer.from(s.newMember),
    vectorHeader(s.encryptedGroupSecrets.kemOutput.length), Buffer.from(s.encryptedGroupSecrets.kemOutput),
    vectorHeader(s.encryptedGroupSecrets.ciphertext.length), Buffer.from(s.encryptedGroupSecrets.ciphertext),
  ]);
}

/** A real KeyPackage whose leaf's capabilities list of proposal types is `body` (u16 each). */
export function keyPackageWithProposalTypes(keyPackage: Uint8Array, body: Buffer): Buffer {
  const msg = decoded(keyPackage) as Extract<MLSMessage, { wireformat: "mls_key_package" }>;
  const leaf = msg.keyPackage.leafNode;
  const marked = encodeMlsMessage({
    ...msg,
    keyPackage: { ...msg.keyPackage, leafNode: { ...leaf, capabilities: { ...leaf.capabilities, proposals: [0x1357, 0x2468, 0x1357, 0x2468] } } },
  } as MLSMessage);
  return spliceList(marked, Buffer.from([0x13, 0x57, 0x24, 0x68, 0x13, 0x57, 0x24, 0x68]), body);
}

// --- What a hostile relay hands a client (PROTOCOL.md §10.1; src/protocol/mls/shape.ts) ---

/** `groupInfo` (a real one) whose ratchet_tree extension's data is `tree` (a whole encoded tree, its own header included). */
export function groupInfoWithTree(groupInfo: Uint8Array, tree: Buffer): Uint8Array {
  const msg = decoded(groupInfo) as Extract<MLSMessage, { wireformat: "mls_group_info" }>;
  if (!msg.groupInfo.extensions.some((e) => e.extensionType === "ratchet_tree")) throw new Error("the GroupInfo has no ratchet_tree extension");
  const extensions = msg.groupInfo.extensions.map((e) => (e.extensionType === "ratchet_tree" ? { ...e, extensionData: tree } : e));
  return encodeMlsMessage({ ...msg, groupInfo: { ...msg.groupInfo, extensions } });
}

/** `groupInfo` (a real one) whose GroupContext carries a required_capabilities extension of `n` extension types. */
export function groupInfoWithRequiredCapabilities(groupInfo: Uint8Array, n: number): Uint8Array {
  const msg = decoded(groupInfo) as Extract<MLSMessage, { wireformat: "mls_group_info" }>;
  const ctx = msg.groupInfo.groupContext;
  const types = repeated(Buffer.from([0x7a, 0x7a]), n);
  const data = Buffer.concat([vectorHeader(types.length), types, Buffer.from([0, 0])]);
  const extensions = [...ctx.extensions.filter((e) => e.extensionType !== "required_capabilities"), { extensionType: "required_capabilities" as const, extensionData: data }];
  return encodeMlsMessage({ ...msg, groupInfo: { ...msg.groupInfo, groupContext: { ...ctx, extensions } } });
}

/** A ratchet tree (its encoding: nodes<V>) of `n` blank nodes (1 byte each) and then `last` (an encoded optional<Node>). */
export function treeOfBlanks(n: number, last: Buffer): Buffer {
  const body = Buffer.concat([Buffer.alloc(n), last]);
  return Buffer.concat([vectorHeader(body.length), body]);
}

/** The encoded optional<Node> of a parent node with these unmerged leaves (empty keys). */
export function parentNode(unmerged: number[]): Buffer {
  const leaves = Buffer.concat(unmerged.map((i) => { const b = Buffer.alloc(4); b.writeUInt32BE(i); return b; }));
  return Buffer.concat([Buffer.from([1, 2, 0, 0]), vectorHeader(leaves.length), leaves]);
}
