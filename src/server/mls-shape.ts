// The shape of a client's MLS structure, walked before ts-mls decodes it (PROTOCOL.md §8.2
// "What the relay decodes", §13.3). ts-mls's decode builds one object per element of every list
// in the structure (an extension, a proposal, an EncryptedGroupSecrets, a capability), so its
// cost follows the number of elements, not the bytes: a 990 KB GroupInfo of 330,000 empty
// extensions (3 bytes each) took ~170 ms of the relay's event loop, an honest one 0.04 ms. This
// walk reads only the vectors' length headers and the few tags that choose a structure's
// variant (RFC 9420 §2.1.2, §6, §7.2, §10, §12.1, §12.4.3), allocates nothing, and stops at the
// first list longer than a secure-chat client ever makes (BAD_MLS_MESSAGE, one sentence naming
// the list), so the relay's work on any client-supplied MLS structure is bounded by what an
// honest one of the relay's largest size costs. What the walk lets through is then decoded by
// ts-mls (decodeMls), whose verdict on anything malformed stands as before.
//
// Walked: MLSMessage PublicMessage (only an external join's commit passes: anything else in clear
// is refused, and so is any of its proposals that is not an ExternalInit or Remove by value,
// since ts-mls reads a known proposal whose body fails again as a custom one and a walk cannot
// follow that; see commit()), Welcome, GroupInfo, KeyPackage. Not walked: a PrivateMessage (its
// decode reads six opaque fields and builds no list).
//
// The bounds (shapeBoundsFor), each above what our clients make (src/protocol/mls/**):
//   - extensions in one list (GroupContext, GroupInfo, LeafNode, KeyPackage, ReInit,
//     GroupContextExtensions): MAX_EXTENSIONS = 32. A room's GroupContext has 2
//     (required_capabilities, room_creator; creator.ts), a DM's or the lobby's 0; a GroupInfo 2
//     (external_pub, ratchet_tree; group-parts.ts); a KeyPackage its last_resort marker and
//     ts-mls's GREASE (at most 15 values, grease.ts).
//   - entries in one Capabilities list: MAX_CAPABILITY_ENTRIES = 64 (ts-mls's 19 suites + 15
//     GREASE values at most; ours name 1 suite).
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
import type { MLSMessage } from "ts-mls";
import { decodeMls } from "../protocol/mls/client.js";
import type { RelayLimits } from "./limits.js";
import { bad, mls } from "./mls-checks.js";

export interface MlsShapeBounds {
  /** Elements of all lists of one structure together. */
  readonly maxItems: number;
  readonly maxProposals: number;
  readonly maxWelcomeSecrets: number;
  readonly maxPathCiphertexts: number;
}

/** Extensions in one list of any structure. */
export const MAX_EXTENSIONS = 32;
/** Entries of one Capabilities list (versions, cipher suites, extensions, proposals, credentials). */
export const MAX_CAPABILITY_ENTRIES = 64;
/** Certificates in one X.509 credential. */
export const MAX_CERTIFICATES = 16;
/** Nodes of one UpdatePath (the depth of a tree of 2^32 leaves). */
export const MAX_PATH_NODES = 32;

/** The bounds of a relay with these limits (above). */
export function shapeBoundsFor(limits: Pick<RelayLimits, "maxGroupDevices">): MlsShapeBounds {
  const devices = limits.maxGroupDevices;
  if (!Number.isSafeInteger(devices) || devices < 1) throw new RangeError("maxGroupDevices must be a positive integer");
  return {
    maxItems: 4 * devices + 1024,
    maxProposals: 2 * devices + 64,
    maxWelcomeSecrets: devices,
    maxPathCiphertexts: 2 * devices,
  };
}

const MLS10 = 1;
const WIRE_PUBLIC = 1;
const WIRE_WELCOME = 3;
const WIRE_GROUP_INFO = 4;
const WIRE_KEY_PACKAGE = 5;

/** The position in the structure being walked, the end of the innermost vector, the elements counted. */
class Walk {
  at = 0;
  end: number;
  items = 0;

  constructor(private readonly b: Uint8Array, private readonly what: string, private readonly bounds: MlsShapeBounds) {
    this.end = b.length;
  }

  /** The structure is not an MLS message ts-mls would take (decodeMls's words). */
  malformed(): never {
    throw bad(`${this.what} does not decode as an MLS message`);
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
      if (++n > max) throw bad(`${this.what} has more than ${max} ${name}; this relay takes at most ${max} (PROTOCOL.md §8.2)`);
      if (++this.items > this.bounds.maxItems) {
        throw bad(`${this.what} has more than ${this.bounds.maxItems} list elements in all (extensions, proposals, capabilities, ciphertexts…); this relay takes at most ${this.bounds.maxItems} (PROTOCOL.md §8.2)`);
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

  extension(): void {
    this.skip(2); // extension_type
    this.opaque(); // extension_data (opaque to ts-mls too: a ratchet_tree is decoded only by who uses it)
  }

  extensions(where: string): void {
    this.list(`extensions in ${where}`, MAX_EXTENSIONS, () => this.extension());
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
      if (kind !== 1) throw bad(`${this.what} is an external join with a proposal by reference; an external commit carries its proposals by value (RFC 9420 §12.4.3.2)`);
      const type = this.u16();
      if (type === 6) { inits++; this.opaque(); } // external_init: kem_output
      else if (type === 3) this.skip(4); // remove (a resync): removed
      else throw bad(`${this.what} is an external join with a proposal of type ${type}; an external commit carries one ExternalInit and a resync's Removes (RFC 9420 §12.4.3.2)`);
    });
    if (inits !== 1) throw bad(`${this.what} is an external join with ${inits} ExternalInit proposals, not one (RFC 9420 §12.4.3.2)`);
    const present = this.u8();
    if (present === 0) return;
    if (present !== 1) this.malformed();
    this.leafNode();
    this.list("nodes in its update path", MAX_PATH_NODES, () => {
      this.opaque(); // encryption_key
      this.list("HPKE ciphertexts in one update path node", this.bounds.maxPathCiphertexts, () => { this.opaque(); this.opaque(); });
    });
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
    if (sender !== 4) throw bad(`${this.what} is a PublicMessage from a ${sender === 1 ? "member" : sender === 2 ? "external sender" : sender === 3 ? "new member's proposal" : "sender of an unknown kind"}: on this relay only an external join's commit is sent in clear (PROTOCOL.md §8.2)`);
    this.opaque(); // authenticated_data
    const content = this.u8();
    if (content !== 3) throw bad(`${this.what} is a PublicMessage that is not a commit: on this relay only an external join's commit is sent in clear (PROTOCOL.md §8.2)`);
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

  /** §12.4.3 GroupInfo with its §8.1 GroupContext. */
  groupInfo(): void {
    this.skip(4); // version, cipher_suite
    this.opaque(); // group_id
    this.skip(8); // epoch
    this.opaque(); // tree_hash
    this.opaque(); // confirmed_transcript_hash
    this.extensions("its GroupContext");
    this.extensions("the GroupInfo");
    this.opaque(); // confirmation_tag
    this.skip(4); // signer
    this.opaque(); // signature
  }
}

/**
 * Walks the MLSMessage in `bytes` (named `what` in a refusal) and refuses, with BAD_MLS_MESSAGE,
 * a list longer than `bounds` allow or bytes the walk cannot follow; what it lets through is
 * for decodeMls to judge. Cost: at most one step per length header up to the bounds.
 */
export function checkMlsShape(bytes: Uint8Array, what: string, bounds: MlsShapeBounds): void {
  if (!(bytes instanceof Uint8Array)) throw bad(`${what} must be bytes`);
  if (bytes.length < 4) return; // decodeMls's own sentence
  const w = new Walk(bytes, what, bounds);
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
 * A client's MLSMessage decoded by the relay: the shape walk first (bounded, above), then
 * ts-mls's strict decode (decodeMls: size cap, no trailing bytes, MLS 1.0), whose error is a
 * BAD_MLS_MESSAGE refusal with its sentence. Every MLS structure the relay decodes from a client
 * (PublishGroupInfo, RecreateRoom, SendCommit's commit, GroupInfo and Welcome, PublishKeyPackages,
 * SendMls's general path) comes through here.
 */
export function decodeClientMls(bytes: Uint8Array, what: string, bounds: MlsShapeBounds): MLSMessage {
  checkMlsShape(bytes, what, bounds);
  return mls(() => decodeMls(bytes, what));
}
