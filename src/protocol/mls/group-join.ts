// How one conversation's MLS group comes to exist (proto/PROTOCOL.md §7
// , §7.3, §7.5): created, joined from a Welcome, joined by external commit,
// or restored from its serialised state. The bodies of MlsGroup.create, joinFromWelcome,
// joinExternal and restore (group.ts), which delegate here with a GroupMaker: MlsGroup's
// private constructor and the checks a joined group's members must pass. What a group does
// once it exists is in group.ts.
import {
  createGroup, decodeGroupState, defaultCapabilities, emptyPskIndex, encodeGroupState, encodeMlsMessage,
  generateKeyPackageWithKey, joinGroup, joinGroupExternal,
  type ClientState,
} from "ts-mls";
import type { CiphersuiteImpl } from "ts-mls/crypto/ciphersuite.js";
import { decryptWithLabel } from "ts-mls/crypto/hpke.js";
import { decodeGroupInfo, extractWelcomeSecret, ratchetTreeFromExtension } from "ts-mls/groupInfo.js";
import { welcomeKey, welcomeNonce, type Welcome } from "ts-mls/welcome.js";
import { encodeFields } from "../encoding.js";
import type { Conversation } from "../names.js";
import { decodeReceivedMls, destroyKeyPackage, LAST_RESORT_EXTENSION, type MlsClient, type StoredKeyPackage } from "./client.js";
import { contextExtensionsFor, ROOM_CREATOR_EXTENSION } from "./creator.js";
import { CredentialChecker } from "./credential.js";
import { MlsProtocolError, wrap } from "./errors.js";
import { decodeFields } from "./fields.js";
import type { GroupOptions, MlsGroup } from "./group.js";
import { conversationOfGroupId, makeGroupId } from "./group-id.js";
import { decodeTree, leafAt, memberOf, type MlsMember } from "./membership.js";
import { CLIENT_SHAPE_BOUNDS, walkBareGroupInfo, walkGroupSecrets } from "./shape.js";
import { clientConfig, MLS_SUITE, suiteImpl } from "./suite.js";

export const STATE_LABEL = "securechat/v1/mls-group-state";
export const STATE_VERSION = "1";

/** What only MlsGroup can do, handed over by its statics (its constructor is private). */
export interface GroupMaker {
  /** MlsGroup's constructor: reads the room's creator strictly ("bad-group-context"). */
  construct(client: MlsClient, state: ClientState, checker: CredentialChecker, conversation: Conversation, aad: (() => Uint8Array) | undefined): MlsGroup;
  /** A joined group holds only a DM's two users, and nobody but the creator holds the creator's name. */
  checkJoined(group: MlsGroup): void;
}

/** MlsGroup.create. */
export async function createGroupFor(make: GroupMaker, client: MlsClient, conversationId: string, options: GroupOptions): Promise<MlsGroup> {
  checkClient(client);
  const groupId = makeGroupId(conversationId);
  const conv = conversationOfGroupId(groupId);
  if (conv.kind === "dm" && !conv.members.includes(client.username)) throw new MlsProtocolError("bad-argument", `${client.username} is not a member of ${conv.id}`);
  const checker = new CredentialChecker(options.trust);
  const impl = await suiteImpl();
  const { publicPackage, privatePackage } = await ownLeafPackage(client, impl);
  // A room names its creator in the GroupContext (PROTOCOL.md §7.4).
  const extensions = contextExtensionsFor(conv, client.identity);
  const state = await wrap(checker, "bad-credential", "the group could not be created", () =>
    createGroup(groupId, publicPackage, privatePackage, extensions, impl, clientConfig(checker)));
  privatePackage.initPrivateKey.fill(0);
  return make.construct(client, state, checker, conv, options.authenticatedData);
}

/** MlsGroup.joinFromWelcome. */
export async function joinFromWelcome(make: GroupMaker, client: MlsClient, welcomeBytes: Uint8Array, ratchetTreeBytes: Uint8Array, lookup: (ref: Uint8Array) => StoredKeyPackage | undefined, options: GroupOptions): Promise<{ group: MlsGroup; usedKeyPackage: Uint8Array; lastResort: boolean; addedBy: MlsMember }> {
  checkClient(client);
  if (typeof lookup !== "function") throw new MlsProtocolError("bad-argument", "a KeyPackage lookup function is needed");
  const ratchetTree = decodeTree(ratchetTreeBytes);
  const msg = decodeReceivedMls(welcomeBytes, "Welcome");
  if (msg.wireformat !== "mls_welcome") throw new MlsProtocolError("malformed", `expected a Welcome, got ${msg.wireformat}`);
  if (msg.welcome.cipherSuite !== MLS_SUITE) throw new MlsProtocolError("malformed", `Welcome uses ${msg.welcome.cipherSuite}, not ${MLS_SUITE}`);
  let kp: StoredKeyPackage | undefined;
  for (const s of msg.welcome.secrets) {
    kp = lookup(s.newMember);
    if (kp !== undefined) break;
  }
  if (kp === undefined) throw new MlsProtocolError("not-for-me", "this Welcome is for none of my KeyPackages (nobody added me with it)");
  const checker = new CredentialChecker(options.trust);
  const impl = await suiteImpl();
  const found = kp;
  // ts-mls keeps the HPKE private key it is given as the group's leaf key (same Uint8Array):
  // hand it copies, so overwriting the store's copy (destroyKeyPackage) cannot break the group.
  const privateKeys = {
    initPrivateKey: new Uint8Array(found.privateKeys.initPrivateKey),
    hpkePrivateKey: new Uint8Array(found.privateKeys.hpkePrivateKey),
    signaturePrivateKey: client.signaturePrivateKey,
  };
  // Who added me (PROTOCOL.md §12): the committer, whose leaf signed the GroupInfo inside the
  // Welcome. ts-mls checks that signature against the signer's leaf of the (tree-hash-bound)
  // tree but does not return the signer: the Welcome is opened here first for it, and so that
  // what it holds is walked before ts-mls decodes it (§10.1: anyone who holds my KeyPackage,
  // the relay included, can encrypt any GroupSecrets and GroupInfo to it).
  let signer: number | undefined;
  let state: ClientState;
  try {
    signer = await openWelcome(msg.welcome, found.ref, privateKeys.initPrivateKey, impl);
    state = await wrap(checker, "decrypt-failed", "the Welcome does not open with my KeyPackage", () =>
      joinGroup(msg.welcome, found.keyPackage, privateKeys, emptyPskIndex, impl, ratchetTree, undefined, clientConfig(checker)));
  } finally {
    privateKeys.initPrivateKey.fill(0);
  }
  const signerLeaf = signer === undefined ? undefined : leafAt(state.ratchetTree, signer);
  if (signer === undefined || signerLeaf === undefined) throw new MlsProtocolError("decrypt-failed", "the Welcome's GroupInfo names no signer in the tree");
  const addedBy = memberOf(signerLeaf, signer);
  const conv = conversationOfGroupId(state.groupContext.groupId);
  const group = make.construct(client, state, checker, conv, options.authenticatedData);
  make.checkJoined(group);
  if (!found.lastResort) destroyKeyPackage(found);
  return { group, usedKeyPackage: found.ref, lastResort: found.lastResort, addedBy };
}

/**
 * Opens my GroupSecrets and the GroupInfo of a Welcome (RFC 9420 §12.4.3.1) as ts-mls's joinGroup
 * will, walking each before it is decoded (shape.ts, PROTOCOL.md §10.1): the GroupSecrets' PSK
 * list, the GroupInfo's extension lists and the ratchet tree or required_capabilities inside them.
 * A list past the bounds is MlsProtocolError("malformed"). Returns the GroupInfo's signer, or
 * undefined when it does not open (joinGroup then gives its verdict) or has PSKs (ours use none,
 * and joinGroup, given none, refuses it before opening the GroupInfo).
 */
async function openWelcome(welcome: Welcome, ref: Uint8Array, initPrivateKey: Uint8Array, impl: CiphersuiteImpl): Promise<number | undefined> {
  const mine = welcome.secrets.find((s) => Buffer.from(s.newMember).equals(Buffer.from(ref)));
  if (mine === undefined) return undefined;
  let secrets: Uint8Array;
  try {
    const key = await impl.hpke.importPrivateKey(initPrivateKey);
    secrets = await decryptWithLabel(key, "Welcome", welcome.encryptedGroupInfo, mine.encryptedGroupSecrets.kemOutput, mine.encryptedGroupSecrets.ciphertext, impl.hpke);
  } catch {
    return undefined;
  }
  try {
    const { joinerSecret, psks } = walkGroupSecrets(secrets, "the Welcome's GroupSecrets", CLIENT_SHAPE_BOUNDS, "client");
    if (psks !== 0) return undefined;
    let groupInfo: Uint8Array;
    try {
      const welcomeSecret = await extractWelcomeSecret(joinerSecret, new Uint8Array(impl.kdf.size), impl.kdf);
      groupInfo = await impl.hpke.decryptAead(await welcomeKey(welcomeSecret, impl), await welcomeNonce(welcomeSecret, impl), undefined, welcome.encryptedGroupInfo);
      welcomeSecret.fill(0);
    } catch {
      return undefined;
    }
    walkBareGroupInfo(groupInfo, "the Welcome's GroupInfo", CLIENT_SHAPE_BOUNDS, "client");
    return decodeGroupInfo(groupInfo, 0)?.[0].signer;
  } finally {
    secrets.fill(0);
  }
}

/** MlsGroup.joinExternal. */
export async function joinExternal(make: GroupMaker, client: MlsClient, groupInfoBytes: Uint8Array, options: GroupOptions & { resync?: boolean; expectConversation?: string }): Promise<{ group: MlsGroup; commit: Uint8Array }> {
  checkClient(client);
  const msg = decodeReceivedMls(groupInfoBytes, "GroupInfo");
  if (msg.wireformat !== "mls_group_info") throw new MlsProtocolError("malformed", `expected a GroupInfo, got ${msg.wireformat}`);
  if (msg.groupInfo.groupContext.cipherSuite !== MLS_SUITE) throw new MlsProtocolError("malformed", `GroupInfo uses ${msg.groupInfo.groupContext.cipherSuite}, not ${MLS_SUITE}`);
  const conv = conversationOfGroupId(msg.groupInfo.groupContext.groupId);
  if (options.expectConversation !== undefined && conv.id !== options.expectConversation) {
    throw new MlsProtocolError("wrong-group", `GroupInfo is for ${conv.id}, not ${options.expectConversation}`);
  }
  const checker = new CredentialChecker(options.trust);
  const impl = await suiteImpl();
  const { publicPackage, privatePackage } = await ownLeafPackage(client, impl);
  // Resync only when the tree holds a former leaf of mine: ts-mls looks it up with findIndex
  // and, finding none (-1), never returns from removing "leaf -1". Without one this is a plain join.
  const config = clientConfig(checker);
  const tree = ratchetTreeFromExtension(msg.groupInfo) ?? [];
  const resync = options.resync === true && tree.some((n) => n?.nodeType === "leaf" && config.keyPackageEqualityConfig.compareKeyPackageToLeafNode(publicPackage, n.leaf));
  const res = await wrap(checker, "bad-credential", "the GroupInfo could not be joined", () =>
    joinGroupExternal(msg.groupInfo, publicPackage, privatePackage, resync, impl, undefined, config, options.authenticatedData?.()));
  privatePackage.initPrivateKey.fill(0);
  const group = make.construct(client, res.newState, checker, conv, options.authenticatedData);
  make.checkJoined(group);
  return { group, commit: encodeMlsMessage({ version: "mls10", wireformat: "mls_public_message", publicMessage: res.publicMessage }) };
}


/** A group state as serialize() keeps it (restoreGroup reads it back): label, version, ts-mls's encoding. */
export function encodeState(state: ClientState): Uint8Array {
  return new Uint8Array(encodeFields(STATE_LABEL, [STATE_VERSION, encodeGroupState(state)]));
}
/** MlsGroup.restore. */
export function restoreGroup(make: GroupMaker, client: MlsClient, bytes: Uint8Array, options: GroupOptions): MlsGroup {
  checkClient(client);
  let f: Buffer[];
  try {
    f = decodeFields(bytes, STATE_LABEL, 2, "MLS group state");
  } catch (e) {
    throw new MlsProtocolError("bad-state", (e as Error).message, { cause: e });
  }
  const [version, encoded] = f as [Buffer, Buffer];
  if (version.toString() !== STATE_VERSION) throw new MlsProtocolError("bad-state", `MLS group state version ${version.toString()} is not supported`);
  let decoded: ReturnType<typeof decodeGroupState>;
  try {
    decoded = decodeGroupState(new Uint8Array(encoded), 0);
  } catch (e) {
    throw new MlsProtocolError("bad-state", "MLS group state does not decode", { cause: e });
  }
  if (decoded === undefined || decoded[1] !== encoded.length) throw new MlsProtocolError("bad-state", "MLS group state does not decode");
  const checker = new CredentialChecker(options.trust);
  const state: ClientState = { ...decoded[0], clientConfig: clientConfig(checker) };
  const me = leafAt(state.ratchetTree, state.privatePath.leafIndex);
  if (state.groupActiveState.kind === "active" && (me === undefined || !Buffer.from(me.signaturePublicKey).equals(Buffer.from(client.signaturePublicKey)))) {
    throw new MlsProtocolError("bad-state", "MLS group state belongs to another MLS client");
  }
  // The creator is read strictly here too (the constructor). The tree's names were checked
  // against it on join and at every commit; not again here (it would verify every credential).
  try {
    return make.construct(client, state, checker, conversationOfGroupId(state.groupContext.groupId), options.authenticatedData);
  } catch (e) {
    if (e instanceof MlsProtocolError && e.code !== "bad-state") throw new MlsProtocolError("bad-state", `MLS group state refused: ${e.message}`, { cause: e });
    throw e;
  }
}

/**
 * The key package this client's own leaf starts from when it creates a group or joins one by
 * external commit (never published, so its lifetime does not matter).
 */
async function ownLeafPackage(client: MlsClient, impl: Awaited<ReturnType<typeof suiteImpl>>): ReturnType<typeof generateKeyPackageWithKey> {
  const caps = defaultCapabilities();
  return generateKeyPackageWithKey(
    client.credential, { ...caps, ciphersuites: [MLS_SUITE], extensions: [...caps.extensions, LAST_RESORT_EXTENSION, ROOM_CREATOR_EXTENSION] },
    { notBefore: 0n, notAfter: 1n }, [], { signKey: client.signaturePrivateKey, publicKey: client.signaturePublicKey }, impl,
  );
}

function checkClient(client: MlsClient): void {
  if (client?.credential?.credentialType !== "basic" || !(client.signaturePrivateKey instanceof Uint8Array)) {
    throw new MlsProtocolError("bad-argument", "an MlsClient is needed");
  }
}
