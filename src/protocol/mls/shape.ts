// The shape of an MLS structure, walked before ts-mls decodes it (PROTOCOL.md §8.2 "What the relay
// decodes, and at what cost", §10.1 "What a client decodes", §13.3). ts-mls's decode builds one
// object per element of every list in the structure (an extension, a proposal, an
// EncryptedGroupSecrets, a capability, a tree node), so its cost follows the number of elements,
// not the bytes: a 990 KB GroupInfo of 330,000 empty extensions (3 bytes each) took ~170 ms of an
// event loop, an honest one 0.04 ms. This walk reads only the vectors' length headers and the few
// tags that choose a structure's variant (RFC 9420 §2.1.2, §6, §7.2, §7.8, §10, §12.1, §12.4.3),
// allocates nothing, and stops at the first list longer than a secure-chat client ever makes
// (MlsProtocolError "malformed", one sentence naming the list), so the work on any MLS structure
// someone else wrote is bounded by what an honest one of the largest group costs. What the walk
// lets through is then decoded by ts-mls, whose verdict on anything malformed stands as before.
//
// One walk, two sides:
//   - the relay (src/server/mls-shape.ts) walks what a client sends it, with its own
//     max_group_devices, and turns the error into its BAD_MLS_MESSAGE refusal ("this relay takes
//     at most ...");
//   - a client (decodeReceivedMls in client.ts, decodeTree in membership.ts) walks what a relay or a peer
//     hands it (a GroupInfo to join, a Welcome and the ratchet tree beside it, a claimed
//     KeyPackage, a delivered or kept commit) with the default relay's bounds, since a hostile
//     relay can hand it the same shapes ("this client takes at most ..."). A client also walks
//     the GroupContext and GroupInfo extensions ts-mls decodes when joining (ratchet_tree,
//     required_capabilities, external_senders), which the relay never decodes.
//
// Walked: MLSMessage PublicMessage (only an external join's commit passes: anything else in clear
// is refused, and so is any of its proposals that is not an ExternalInit or Remove by value,
// since ts-mls reads a known proposal whose body fails again as a custom one and a walk cannot
// follow that; see commit()), Welcome, GroupInfo, KeyPackage; a ratchet tree (walkRatchetTree).
// Not walked: a PrivateMessage (its decode reads six opaque fields and builds no list).
//
// The bounds (mlsShapeBounds), each above what our clients make (src/protocol/mls/**):
//   - extensions in one list (GroupContext, GroupInfo, LeafNode, KeyPackage): MAX_EXTENSIONS = 32.
//     A room's GroupContext has 2 (required_capabilities, room_creator; creator.ts), a DM's or the
//     lobby's 0; a GroupInfo 2 (external_pub, ratchet_tree; group-parts.ts); a KeyPackage its
//     last_resort marker.
//   - entries in one Capabilities list: MAX_CAPABILITY_ENTRIES = 64 (ts-mls's 19 suites + 15
//     GREASE values at most; ours name 1 suite, and at most 17 extension types, 15 proposal types,
//     17 credential types: 51 entries in all).
//   - certificates in an X.509 credential: 16 (ours are basic credentials, §4.4).
//   - proposals in a commit: 2 × max_group_devices + 64 (an external join, the only commit in
//     clear, has its ExternalInit and its resync's removes, at most 16, §4.5).
//   - nodes of an UpdatePath: 32 (a tree of 2^32 leaves is 32 levels deep); HPKE ciphertexts
//     in one node: 2 × max_group_devices (a copath node's resolution, unmerged leaves
//     included, is at most every leaf twice).
//   - EncryptedGroupSecrets in a Welcome: max_group_devices (one per KeyPackage added, and a
//     commit may not take a group past max_group_devices, commit-checks.ts checkGroupSize).
//   - elements of all lists of one structure together: 4 × max_group_devices + 1024 (an
//     external join into a full group: one ciphertext per other leaf, twice with unmerged
//     leaves, its leaf's capabilities and extensions, a few proposals).
//   - a ratchet tree (beside a Welcome, or a GroupInfo's ratchet_tree extension): 2 ×
//     max_group_devices nodes (a tree of n leaves has 2n - 1 nodes and is sent without its
//     trailing blanks; ts-mls fills the leftmost blank leaf first, so no honest tree is wider
//     than the most devices its group ever held); max_group_devices unmerged leaves in one parent
//     node; 96 × max_group_devices + 1024 elements in all (each leaf's lists, at most 51 entries
//     for ours, and each leaf unmerged in at most every parent above it, 11 for 1,000 leaves).
import { MlsProtocolError } from "./errors.js";

export interface MlsShapeBounds {
  /** Elements of all lists of one structure together (a ratchet tree aside: maxTreeItems). */
  readonly maxItems: number;
  readonly maxProposals: number;
  readonly maxWelcomeSecrets: number;
  readonly maxPathCiphertexts: number;
  /** Nodes of a ratchet tree (blank ones included). */
  readonly maxTreeNodes: number;
  /** Unmerged leaves of one parent node. */
  readonly maxUnmergedLeaves: number;
  /** Elements of all lists of one ratchet tree together (its nodes included). */
  readonly maxTreeItems: number;
}

/** Who walks: the relay refuses what a client sent it, a client what a relay or a peer handed it. */
export type MlsShapeSide = "relay" | "client";

/** A relay's default max_group_devices (src/server/limits.ts, PROTOCOL.md §13.3). */
export const DEFAULT_MAX_GROUP_DEVICES = 1_000;
/** Extensions in one list of any structure. */
export const MAX_EXTENSIONS = 32;
/** Entries of one Capabilities list (versions, cipher suites, extensions, proposals, credentials). */
export const MAX_CAPABILITY_ENTRIES = 64;
/** Certificates in one X.509 credential. */
export const MAX_CERTIFICATES = 16;
/** Nodes of one UpdatePath (the depth of a tree of 2^32 leaves). */
export const MAX_PATH_NODES = 32;
/** PreSharedKeyIDs in a Welcome's GroupSecrets (ours use none; ts-mls joins with none known). */
export const MAX_PSKS = 16;

/** The bounds for groups of at most `maxGroupDevices` devices (above). */
export function mlsShapeBounds(maxGroupDevices: number): MlsShapeBounds {
  const devices = maxGroupDevices;
  if (!Number.isSafeInteger(devices) || devices < 1) throw new RangeError("maxGroupDevices must be a positive integer");
  return {
    maxItems: 4 * devices + 1024,
    maxProposals: 2 * devices + 64,
    maxWelcomeSecrets: devices,
    maxPathCiphertexts: 2 * devices,
    maxTreeNodes: 2 * devices,
    maxUnmergedLeaves: devices,
    maxTreeItems: 96 * devices + 1024,
  };
}

/** What a client walks with (PROTOCOL.md §10.1): the bounds of a default relay. */
export const CLIENT_SHAPE_BOUNDS: MlsShapeBounds = mlsShapeBounds(DEFAULT_MAX_GROUP_DEVICES);

const MLS10 = 1;
const WIRE_PUBLIC = 1;
const WIRE_WELCOME = 3;
const WIRE_GROUP_INFO = 4;
const WIRE_KEY_PACKAGE = 5;
const EXT_RATCHET_TREE = 2;
const EXT_REQUIRED_CAPABILITIES = 3;
const EXT_EXTERNAL_SENDERS = 5;

const refuse = (sentence: string): MlsProtocolError => new MlsProtocolError("malformed", sentence);

/** The position in the structure being walked, the end of the innermost vector, the elements counted. */
class Walk {
  at = 0;
  end: number;
  items = 0;

  constructor(
    private readonly b: Uint8Array,
    private readonly what: string,
    private readonly bounds: MlsShapeBounds,
    private readonly side: MlsShapeSide,
    /** The bound of `items` (bounds.maxItems, or bounds.maxTreeItems for a ratchet tree). */
    private readonly maxItems: number,
    start = 0,
    end = b.length,
  ) {
    this.at = start;
    this.end = end;
  }

  /** The structure is not an MLS message ts-mls would take (decodeMls's words). */
  malformed(): never {
    throw refuse(`${this.what} does not decode as an MLS message`);
  }

  /** "this relay takes at most 32", "this client takes at most 32". */
  takes(max: number): string {
    return `${this.side === "relay" ? "this relay" : "this client"} takes at most ${max} (PROTOCOL.md §8.2)`;
  }

  need(n: number): void {
    if (this.at + n > this.end) this.malformed();
  }

  u8(): number {
    this.need(1);
    return this.b[this.at++]!;
  }

  u16(): number {
    this.need(2);
    const v = (this.b[this.at]! << 8) | this.b[this.at + 1]!;
    this.at += 2;
    return v;
  }

  skip(n: number): void {
    this.need(n);
    this.at += n;
  }

  /** A <V> vector's length header (RFC 9420 §2.1.2: 1, 2 or 4 bytes; ts-mls takes no 8-byte one); returns the vector's end. */
  vectorEnd(): number {
    const first = this.u8();
    const prefix = first >> 6;
    let length: number;
    if (prefix === 0) {
      length = first;
    } else if (prefix === 1) {
      length = ((first & 0x3f) << 8) | this.u8();
    } else if (prefix === 2) {
      this.need(3);
      length = (first & 0x3f) * 0x1000000 + (this.b[this.at]! << 16) + (this.b[this.at + 1]! << 8) + this.b[this.at + 2]!;
      this.at += 3;
    } else {
      this.malformed();
    }
    const after = this.at + length;
    if (after > this.end) this.malformed();
    return after;
  }

  /** opaque<V>. */
  opaque(): void {
    this.at = this.vectorEnd();
  }

  /**
   * T list<V>: each element walked inside the vector, counted against the list's bound and the
   * structure's, before it is walked. Returns the number of elements.
   */
  list(name: string, max: number, element: () => void): number {
    const end = this.vectorEnd();
    const outer = this.end;
    this.end = end;
    let n = 0;
    while (this.at < end) {
      if (++n > max) throw refuse(`${this.what} has more than ${max} ${name}; ${this.takes(max)}`);
      if (++this.items > this.maxItems) {
        throw refuse(`${this.what} has more than ${this.maxItems} list elements in all (extensions, proposals, capabilities, ciphertexts…); ${this.takes(this.maxItems)}`);
      }
      element();
    }
    this.end = outer;
    return n;
  }

  /** The walk ended exactly at the message's end (decodeMls refuses trailing bytes with its own sentence: left to it). */
  done(): void {
    if (this.at > this.b.length) this.malformed();
  }

  // --- RFC 9420 structures ---

  /**
   * §7.2 Extension: its data is opaque to the relay and to ts-mls's decode of the structure; a
   * client also walks the data ts-mls decodes when it joins (`decoded`: a GroupContext's or a
   * GroupInfo's extensions, walkDecodedExtension).
   */
  extension(decoded: boolean): void {
    const type = this.u16(); // extension_type
    const end = this.vectorEnd(); // extension_data
    if (decoded && this.side === "client") this.decodedExtension(type, this.at, end);
    this.at = end;
  }

  extensions(where: string, decoded = false): void {
    this.list(`extensions in ${where}`, MAX_EXTENSIONS, () => this.extension(decoded));
  }

  /**
   * A client's walk of the extension data ts-mls decodes when it joins a group (PROTOCOL.md
   * §10.1): ratchet_tree (groupInfo.js ratchetTreeFromExtension, joinGroupExternal), with the
   * tree's own bounds; required_capabilities (three lists, clientState.js, decoded once per leaf
   * checked); external_senders (a credential). ts-mls decodes each from its start and ignores what
   * follows, so only the part it reads is walked.
   */
  decodedExtension(type: number, start: number, end: number): void {
    if (type === EXT_RATCHET_TREE) {
      const tree = new Walk(this.b, `${this.what}'s ratchet tree`, this.bounds, this.side, this.bounds.maxTreeItems, start, end);
      tree.ratchetTree();
    } else if (type === EXT_REQUIRED_CAPABILITIES || type === EXT_EXTERNAL_SENDERS) {
      const inner = new Walk(this.b, this.what, this.bounds, this.side, this.maxItems, start, end);
      inner.items = this.items;
      if (type === EXT_REQUIRED_CAPABILITIES) {
        for (const name of ["extension types", "proposal types", "credential types"]) {
          inner.list(`${name} in required_capabilities`, MAX_CAPABILITY_ENTRIES, () => inner.skip(2));
        }
      } else {
        inner.opaque(); // signature_key
        inner.credential();
      }
      this.items = inner.items;
    }
  }

  /** §5.3 Credential: basic (identity<V>) or x509 (certificates<V>); ts-mls takes no other. */
  credential(): void {
    const type = this.u16();
    if (type === 1) this.opaque();
    else if (type === 2) this.list("certificates in a credential", MAX_CERTIFICATES, () => this.opaque());
    else this.malformed();
  }

  capabilities(): void {
    for (const name of ["protocol versions", "cipher suites", "extension types", "proposal types", "credential types"]) {
      this.list(`${name} in a leaf's capabilities`, MAX_CAPABILITY_ENTRIES, () => this.skip(2));
    }
  }

  /** §7.2 LeafNode. */
  leafNode(): void {
    this.opaque(); // encryption_key
    this.opaque(); // signature_key
    this.credential();
    this.capabilities();
    const source = this.u8();
    if (source === 1) this.skip(16); // key_package: Lifetime (not_before, not_after)
    else if (source === 3) this.opaque(); // commit: parent_hash
    else if (source !== 2) this.malformed(); // update: nothing
    this.extensions("a leaf node");
    this.opaque(); // signature
  }

  /** §10 KeyPackage. */
  keyPackage(): void {
    this.skip(4); // version, cipher_suite
    this.opaque(); // init_key
    this.leafNode();
    this.extensions("a KeyPackage");
    this.opaque(); // signature
  }

  /**
   * §12.4 Commit: proposals<V> of ProposalOrRef, optional<UpdatePath>. Only an external join's
   * commit is ever in clear here (publicMessage): RFC 9420 §12.4.3.2, its proposals are by value,
   * one ExternalInit and the Removes of a resync. Nothing else is walked as a proposal list: ts-mls
   * reads a known proposal type whose body fails its decode again as a custom proposal (an opaque
   * after the type) and goes on from there, so a walk that follows the known body can be told one
   * list while ts-mls builds another (review round 5); ExternalInit and Remove bodies cannot fail
   * that way (an opaque<V>, a u32) without the whole message failing.
   */
  commit(): void {
    let inits = 0;
    this.list("proposals", this.bounds.maxProposals, () => {
      const kind = this.u8();
      if (kind !== 1) throw refuse(`${this.what} is an external join with a proposal by reference; an external commit carries its proposals by value (RFC 9420 §12.4.3.2)`);
      const type = this.u16();
      if (type === 6) { inits++; this.opaque(); } // external_init: kem_output
      else if (type === 3) this.skip(4); // remove (a resync): removed
      else throw refuse(`${this.what} is an external join with a proposal of type ${type}; an external commit carries one ExternalInit and a resync's Removes (RFC 9420 §12.4.3.2)`);
    });
    if (inits !== 1) throw refuse(`${this.what} is an external join with ${inits} ExternalInit proposals, not one (RFC 9420 §12.4.3.2)`);
    const present = this.u8();
    if (present === 0) return;
    if (present !== 1) this.malformed();
    this.leafNode();
    this.list("nodes in its update path", MAX_PATH_NODES, () => {
      this.opaque(); // encryption_key
      this.list("HPKE ciphertexts in one update path node", this.bounds.maxPathCiphertexts, () => { this.opaque(); this.opaque(); });
    });
  }

  /** Why a PublicMessage other than an external join's commit is refused, in the walker's voice. */
  inClear(): string {
    return this.side === "relay"
      ? "on this relay only an external join's commit is sent in clear (PROTOCOL.md §8.2)"
      : "a client takes only an external join's commit in clear (PROTOCOL.md §8.2, §10.1)";
  }

  /**
   * §6.2 PublicMessage: FramedContent, FramedContentAuthData. Our clients send every message of a
   * member as a PrivateMessage (application data, proposals and commits alike); the one message
   * in clear is an external join's commit (sender new_member_commit, §8.2 "External commits").
   * Anything else in clear is refused here, before any decode (review round 5: see commit()).
   */
  publicMessage(): void {
    this.opaque(); // group_id
    this.skip(8); // epoch
    const sender = this.u8();
    if (sender !== 4) throw refuse(`${this.what} is a PublicMessage from a ${sender === 1 ? "member" : sender === 2 ? "external sender" : sender === 3 ? "new member's proposal" : "sender of an unknown kind"}: ${this.inClear()}`);
    this.opaque(); // authenticated_data
    const content = this.u8();
    if (content !== 3) throw refuse(`${this.what} is a PublicMessage that is not a commit: ${this.inClear()}`);
    this.commit();
    this.opaque(); // signature
    this.opaque(); // confirmation_tag
  }

  /** §12.4.3 Welcome. */
  welcome(): void {
    this.skip(2); // cipher_suite
    this.list("EncryptedGroupSecrets (one per member it adds)", this.bounds.maxWelcomeSecrets, () => {
      this.opaque(); // new_member
      this.opaque(); // kem_output
      this.opaque(); // ciphertext
    });
    this.opaque(); // encrypted_group_info
  }

  /** §12.4.3 GroupInfo with its §8.1 GroupContext (without the MLSMessage header: a Welcome's GroupInfo is bare). */
  groupInfo(): void {
    this.skip(4); // version, cipher_suite
    this.opaque(); // group_id
    this.skip(8); // epoch
    this.opaque(); // tree_hash
    this.opaque(); // confirmed_transcript_hash
    this.extensions("its GroupContext", true);
    this.extensions("the GroupInfo", true);
    this.opaque(); // confirmation_tag
    this.skip(4); // signer
    this.opaque(); // signature
  }

  /**
   * §12.4.3.1 GroupSecrets (inside a Welcome, HPKE-encrypted to one KeyPackage): joiner_secret<V>,
   * optional<path_secret<V>>, PreSharedKeyID psks<V> (§8.4: psktype external with psk_id<V>, or
   * resumption with usage, psk_group_id<V>, psk_epoch; then psk_nonce<V>). Returns where the
   * joiner_secret is and how many PSKs there are.
   */
  groupSecrets(): { joinerSecret: Uint8Array; psks: number } {
    const end = this.vectorEnd();
    const joinerSecret = this.b.subarray(this.at, end);
    this.at = end;
    const present = this.u8();
    if (present === 1) this.opaque(); // path_secret (ts-mls reads any other octet as absent)
    else if (present !== 0) this.malformed();
    const psks = this.list("pre-shared keys in its GroupSecrets", MAX_PSKS, () => {
      const type = this.u8();
      if (type === 1) this.opaque(); // external: psk_id
      else if (type === 2) { this.skip(1); this.opaque(); this.skip(8); } // resumption: usage, psk_group_id, psk_epoch
      else this.malformed();
      this.opaque(); // psk_nonce
    });
    return { joinerSecret, psks };
  }

  /**
   * §12.4.3.3 ratchet_tree: optional<Node> nodes<V>, a Node a LeafNode or a §7.1 ParentNode
   * (encryption_key<V>, parent_hash<V>, uint32 unmerged_leaves<V>). ts-mls reads a presence
   * octet other than 1 as a blank node; the walk refuses one that is not 0 or 1 (ours never write it).
   */
  ratchetTree(): void {
    this.list("nodes in a ratchet tree", this.bounds.maxTreeNodes, () => {
      const present = this.u8();
      if (present === 0) return;
      if (present !== 1) this.malformed();
      const type = this.u8();
      if (type === 1) {
        this.leafNode();
      } else if (type === 2) {
        this.opaque(); // encryption_key
        this.opaque(); // parent_hash
        this.list("unmerged leaves in one parent node", this.bounds.maxUnmergedLeaves, () => this.skip(4));
      } else {
        this.malformed();
      }
    });
  }
}

/**
 * Walks the MLSMessage in `bytes` (named `what` in a refusal) and refuses, with
 * MlsProtocolError("malformed") and one sentence, a list longer than `bounds` allow or bytes the
 * walk cannot follow; what it lets through is for ts-mls's decode to judge. Cost: at most one step
 * per length header up to the bounds. `side` (above): the relay's words, or a client's, which
 * also walks the extension data a join decodes.
 */
export function walkMlsShape(bytes: Uint8Array, what: string, bounds: MlsShapeBounds, side: MlsShapeSide): void {
  if (!(bytes instanceof Uint8Array)) throw new MlsProtocolError("bad-argument", `${what} must be bytes`);
  if (bytes.length < 4) return; // decodeMls's own sentence
  const w = new Walk(bytes, what, bounds, side, bounds.maxItems);
  if (w.u16() !== MLS10) return; // "not MLS 1.0" or undecodable: ts-mls stops at the version
  switch (w.u16()) {
    case WIRE_PUBLIC: w.publicMessage(); break;
    case WIRE_WELCOME: w.welcome(); break;
    case WIRE_GROUP_INFO: w.groupInfo(); break;
    case WIRE_KEY_PACKAGE: w.keyPackage(); break;
    default: return; // a PrivateMessage (no list), or a wire format ts-mls refuses at once
  }
  w.done();
}

/**
 * Walks a ratchet tree (the one sent beside a Welcome, §8.2 SendCommit) before decodeRatchetTree
 * builds it: at most bounds.maxTreeNodes nodes, each leaf's lists as walkMlsShape bounds them,
 * bounds.maxUnmergedLeaves per parent, bounds.maxTreeItems elements in all. MlsProtocolError("malformed").
 */
export function walkRatchetTree(bytes: Uint8Array, what: string, bounds: MlsShapeBounds, side: MlsShapeSide): void {
  if (!(bytes instanceof Uint8Array)) throw new MlsProtocolError("bad-argument", `${what} must be bytes`);
  new Walk(bytes, what, bounds, side, bounds.maxTreeItems).ratchetTree();
}

/**
 * Walks a bare GroupInfo (not in an MLSMessage: the one a Welcome carries encrypted, RFC 9420
 * §12.4.3.1), with its extensions' data as a client decodes them.
 */
export function walkBareGroupInfo(bytes: Uint8Array, what: string, bounds: MlsShapeBounds, side: MlsShapeSide): void {
  if (!(bytes instanceof Uint8Array)) throw new MlsProtocolError("bad-argument", `${what} must be bytes`);
  const w = new Walk(bytes, what, bounds, side, bounds.maxItems);
  w.groupInfo();
  w.done();
}

/**
 * Walks a Welcome's GroupSecrets once opened (RFC 9420 §12.4.3.1), before ts-mls decodes them:
 * its PSK list bounded (MAX_PSKS). Returns its joiner_secret (a view of `bytes`) and its PSK count.
 */
export function walkGroupSecrets(bytes: Uint8Array, what: string, bounds: MlsShapeBounds, side: MlsShapeSide): { readonly joinerSecret: Uint8Array; readonly psks: number } {
  if (!(bytes instanceof Uint8Array)) throw new MlsProtocolError("bad-argument", `${what} must be bytes`);
  const w = new Walk(bytes, what, bounds, side, bounds.maxItems);
  return w.groupSecrets();
}
