// The handshake of one client stream (PROTOCOL.md §9): Hello -> Challenge -> Proof, the binding
// of the username, then Welcome. Before the proof the relay does only cheap work; the RSA key,
// the key binding and any durable write wait until the peer has proven its signing key.
//
// What follows the handshake (the authenticated session, session.ts) is made by a function the
// caller passes in (OpenSession), so this file does not import session.ts, which imports it.
import { randomBytes, type KeyObject } from "node:crypto";
import type { Hello, Welcome } from "../gen/securechat/v1/chat.js";
import {
  fingerprint, importPublicIdentity, importSigningKey, NONCE_BYTES, verifyProof, type PublicIdentity,
} from "../protocol/keys.js";
import { verifyDeviceProof } from "../protocol/devices.js";
import type { Logger } from "../protocol/log.js";
import { checkUsername } from "../protocol/names.js";
import type { DeviceRoutes } from "./devices.js";
import { queueAddress } from "./devices.js";
import { ownCopy, type Directory, type DirectoryUser } from "./directory.js";
import { handshakeEndOf, isStorageFailure, sessionEnd, statusOf, type SessionEnd } from "./errors.js";
import { isUnreachable } from "./cluster-store-guard.js";
import { decodeSessionRequest, encodeResponse, frameScanBoundsFor, RefusedRequest, type RequestFrame } from "./frames.js";
import type { HandshakeTicket } from "./handshake-budget.js";
import { addressBucket, keyBucket, type SessionOpenRates } from "./open-rates.js";
import { limitsToWire, MAX_ROOMS_PER_USER, PRE_AUTH_MAX_FRAME_BYTES, type RelayLimits } from "./limits.js";
import type { RegistrationLimiter } from "./registrations.js";
import type { Rooms } from "./rooms.js";
import type { RoutedSession, Router } from "./router.js";
import type { RelayStore } from "./store.js";
import type { FrameStream } from "./stream.js";

/**
 * The Hello.protocol_version values this relay accepts (PROTOCOL.md §14). Version 2 marks a
 * session that speaks MLS (SendMls, Delivery.mls); version 1 is still accepted while clients move
 * to v2. The final switch is this one line: drop 1, and a v1 client gets "this relay speaks
 * secure-chat protocol v2: upgrade your client (npm install -g secure-chat@2)" (errors.ts).
 */
export const ACCEPTED_PROTOCOL_VERSIONS: readonly number[] = [2];

/** What the handshake needs of the relay (SessionDeps, in session.ts, adds what the session needs). */
export interface HandshakeDeps {
  readonly store: RelayStore;
  readonly directory: Directory;
  /** Users' device lists and queue addresses (PROTOCOL.md §4.5). */
  readonly devices: DeviceRoutes;
  readonly router: Router;
  readonly rooms: Rooms;
  readonly limits: RelayLimits;
  readonly logger: Logger;
  readonly clock: () => number;
  readonly relayVersion: string;
  readonly handshakeTimeoutMs: number;
  /** New usernames per source address and time (§8). */
  readonly registrations: RegistrationLimiter;
  /** Session opens per proven key and per device address, across sessions (PROTOCOL.md §9.1 step 4; open-rates.ts). */
  readonly opens: SessionOpenRates;
  /**
   * What the client's proof must bind (PROTOCOL.md §9): SHA-256 of this relay's TLS certificate,
   * or empty when the relay serves plaintext.
   */
  readonly channelBinding: Uint8Array;
  /** Hello.protocol_version values accepted (default ACCEPTED_PROTOCOL_VERSIONS; tests try the v2-only relay). */
  readonly protocolVersions?: readonly number[];
}

/**
 * Makes the session of a proven, bound user (session.ts: AuthenticatedSession). The handshake
 * registers it with the router, writes Welcome, then starts its deliveries.
 */
export type OpenSession<S extends RoutedSession> = (stream: FrameStream, user: DirectoryUser, protocolVersion: number, address: string) => S;

export type FrameIterator = AsyncIterator<Buffer>;

/** The stream ended (client gone, or the relay ended it) while we waited for a frame. */
export class StreamOver extends Error {
  constructor() {
    super("stream over");
    this.name = "StreamOver";
  }
}

/**
 * A handshake frame: the stream being over (or half-closed by the client) ends the handshake.
 * Frames before the proof are small (§8); grpc-js already refuses a bigger one at its length
 * prefix (stream.ts), this check stands should that ever not be in force.
 */
async function handshakeFrame(stream: FrameStream, frames: FrameIterator, limits: RelayLimits): Promise<RequestFrame> {
  const r = await frames.next();
  if (r.done !== true) {
    if (r.value.length > PRE_AUTH_MAX_FRAME_BYTES) throw sessionEnd.preAuthFrameTooLarge(r.value.length, PRE_AUTH_MAX_FRAME_BYTES);
    // Counted on the wire first, as a session's requests are (PROTOCOL.md §13.2): a request the
    // scan refuses is out of order here anyway (its stand-in frame carries its case).
    const frame = decodeSessionRequest(r.value, frameScanBoundsFor(limits));
    return frame instanceof RefusedRequest ? frame.frame : frame;
  }
  if (stream.closed) throw new StreamOver();
  throw sessionEnd.outOfOrder("the client closed its side of the stream before the handshake completed");
}

/** Where a stream comes from, and its place in the handshake budget (handshake-budget.ts). */
export interface StreamAdmission {
  /** The source address (IPv4, or an IPv6 /64), as the budgets count it. */
  readonly source: string;
  /** Given back as soon as the handshake is over, whatever its outcome. */
  readonly ticket: HandshakeTicket;
}

/**
 * The handshake and the binding, in a frame of their own: what the Hello carried is garbage
 * once this returns, instead of living in serveSession's frame for the whole session.
 */
export async function authenticate<S extends RoutedSession>(
  stream: FrameStream, frames: FrameIterator, deps: HandshakeDeps, admission: StreamAdmission, onClaim: (name: string) => void,
  open: OpenSession<S>,
): Promise<S> {
  const claim = await handshake(stream, frames, deps, onClaim);
  // Proven: the stream leaves the handshake budget and may send full-size frames.
  admission.ticket.leave();
  stream.authenticated();
  try {
    return establish(stream, claim, deps, admission.source, open);
  } catch (e) {
    // A relay on a shared database that cannot reach it: the client tries again (or another relay).
    if (isUnreachable(e)) throw sessionEnd.storageUnreachable();
    // A full or failing storage while binding or recording the session (§13.2): not a relay bug.
    if (isStorageFailure(e)) throw sessionEnd.storageFailed();
    throw e;
  }
}

/**
 * What the relay keeps of a Hello until the Proof: the parsed fields it needs, each copied into
 * an allocation of its own (a decoded field is a view into the frame and would keep the whole
 * frame, or the 64 KiB pool slab it was cut from, alive for the handshake).
 */
interface Claim {
  readonly username: string;
  readonly sigSpki: Buffer;
  readonly encSpki: Buffer;
  readonly encKeySig: Buffer;
  /** The Ed25519 key: needed to check the proof, and cheap to parse (unlike the RSA key). */
  readonly sigKey: KeyObject;
  /** Hello.protocol_version, one of the accepted ones. */
  readonly protocolVersion: number;
  /** Hello.device_spki (PROTOCOL.md §4.5): a linked device proving with its own key; undefined for the primary. */
  readonly deviceSpki: Buffer | undefined;
  /** The open bucket (open-rates.ts) of the key the proof is made with: the device key of a linked device, else the identity key. */
  readonly openKey: string;
}

/** The Hello's cheap checks (§8 step 4): version, username policy, the signing key's type. */
function claimOf(hello: Hello, onClaim: (name: string) => void, versions: readonly number[]): Claim {
  onClaim(hello.username.slice(0, 64));
  if (!versions.includes(hello.protocolVersion)) throw sessionEnd.badProtocolVersion(hello.protocolVersion, versions);
  const name = checkUsername(hello.username);
  if (!name.ok) throw sessionEnd.usernameInvalid(name.reason);
  let sigKey: KeyObject;
  try {
    sigKey = importSigningKey(hello.sigSpki);
    // A linked device's own key (§4.5, §9.1): as cheap to parse as the identity key; whether it
    // is listed is read from the database only after its proof verified.
    if (hello.deviceSpki.length > 0) importSigningKey(hello.deviceSpki);
  } catch (e) {
    throw handshakeEndOf(e);
  }
  return {
    username: hello.username, sigSpki: ownCopy(hello.sigSpki), encSpki: ownCopy(hello.encSpki), encKeySig: ownCopy(hello.encKeySig), sigKey,
    protocolVersion: hello.protocolVersion, deviceSpki: hello.deviceSpki.length > 0 ? ownCopy(hello.deviceSpki) : undefined,
    openKey: keyBucket(fingerprint(hello.deviceSpki.length > 0 ? hello.deviceSpki : hello.sigSpki).toString("hex")),
  };
}

/**
 * Hello -> Challenge -> Proof. Before the proof the relay does only cheap work: frame size and
 * order, username policy, parsing the 32-byte Ed25519 key, one signature check. The RSA key,
 * the key binding and any durable write wait until the peer has proven its signing key
 * (establish). The timer ends the stream after handshakeTimeoutMs.
 */
async function handshake(
  stream: FrameStream, frames: FrameIterator, deps: HandshakeDeps, onClaim: (name: string) => void,
): Promise<Claim> {
  const timeout = sessionEnd.handshakeTimeout(deps.handshakeTimeoutMs);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    stream.end(statusOf(timeout));
  }, deps.handshakeTimeoutMs);
  try {
    const first = await handshakeFrame(stream, frames, deps.limits);
    if (first.$case !== "hello") throw sessionEnd.outOfOrder("the first frame of a session must be Hello");
    const claim = claimOf(first.value, onClaim, deps.protocolVersions ?? ACCEPTED_PROTOCOL_VERSIONS);
    // §9.1 step 4.3: a key (or a primary's address) that opened too many sessions lately is
    // refused here, before the signature check. Only a look: nothing is taken before the proof.
    const wait = deps.opens.wait(claim.deviceSpki === undefined ? [claim.openKey, addressBucket(claim.username)] : [claim.openKey], deps.clock());
    if (wait > 0) throw opensLimited(wait, deps);

    const nonce = randomBytes(NONCE_BYTES);
    await stream.send(encodeResponse({ $case: "challenge", value: { relayId: deps.store.relayId, nonce } }));

    const second = await handshakeFrame(stream, frames, deps.limits);
    if (second.$case !== "proof") throw sessionEnd.outOfOrder("the second frame of a session must be Proof");
    const proven = claim.deviceSpki === undefined
      ? verifyProof(claim, deps.store.relayId, nonce, deps.channelBinding, second.value.signature)
      // A linked device signs with its own key, naming it and the identity key (§4.5, §9.1).
      : verifyDeviceProof({
        relayId: deps.store.relayId, nonce, username: claim.username, identitySpki: claim.sigSpki, deviceSpki: claim.deviceSpki,
        channelBinding: deps.channelBinding,
      }, second.value.signature);
    if (!proven) {
      // Also what a client sees behind a TLS-terminating man in the middle: it signed the
      // certificate it was shown, which is not this relay's.
      throw sessionEnd.proofInvalid("the proof of possession does not verify for this relay's challenge and certificate");
    }
    return claim;
  } catch (e) {
    // The timer ended the stream under a pending read: report the timeout, not "stream over".
    throw timedOut && e instanceof StreamOver ? timeout : e;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * After a valid proof: the session cap, then the binding (bindName), announce a new binding to
 * everyone online before this user can send, register the session (replacing an older one),
 * Welcome, then start deliveries.
 */
function establish<S extends RoutedSession>(stream: FrameStream, claim: Claim, deps: HandshakeDeps, source: string, open: OpenSession<S>): S {
  const { router, limits } = deps;
  if (stream.closed) throw new StreamOver(); // e.g. the handshake timer fired during the proof check
  // §9.1 step 4.4: the proven key's open token, before any database read or write. The prover
  // owns this key, so only its owner spends its bucket (whatever follows: every proven handshake
  // cost the relay a verification).
  const keyOpen = deps.opens.take([claim.openKey], deps.clock());
  if (!keyOpen.ok) throw opensLimited(keyOpen.retryAfterMs, deps);
  // A linked device: its user bound and its key listed (database reads, after the proof).
  const linked = claim.deviceSpki === undefined ? undefined : linkedDevice(claim, claim.deviceSpki, deps);
  const address = linked?.address ?? claim.username;
  // A device replacing its own session takes no new slot; max_sessions counts sessions (devices).
  if (router.sessionAt(address) === undefined && router.onlineCount >= limits.maxSessions) throw sessionEnd.relayFull();
  const user = linked?.user ?? bindName(claim, deps, source);
  // §9.1 step 4.6-4.7: the address's open token, now that the prover is known to own the address
  // (its bound keys, or its listed device key), so a stranger never spends another's; before
  // the session is attached and its last-seen written.
  const addressOpen = deps.opens.take([addressBucket(address)], deps.clock());
  if (!addressOpen.ok) throw opensLimited(addressOpen.retryAfterMs, deps);

  const session = open(stream, user, claim.protocolVersion, address);
  router.attach(session);
  try {
    const deviceId = deps.devices.deviceIdOf(address);
    deps.store.devices.noteSeen(user.username, deviceId, deps.clock());
    deps.logger.info("session.open", { user: user.username, ...(deviceId === "" ? {} : { device: deviceId, linked: linked !== undefined }), peer: stream.peer, online: router.onlineCount, protocol: claim.protocolVersion });
    void stream.send(encodeResponse({ $case: "welcome", value: welcomeFor(user, deps, claim.protocolVersion, address) }));
  } catch (e) {
    // Not started after all (the store failed): the session leaves the router it just entered.
    router.detach(session);
    throw e;
  }
  session.pump.start();
  return session;
}

function opensLimited(retryAfterMs: number, deps: HandshakeDeps): SessionEnd {
  return sessionEnd.opensLimited(retryAfterMs, deps.limits.sessionOpenBurst, deps.limits.sessionOpensPerMinute);
}

/**
 * A linked device's Hello (PROTOCOL.md §4.5, §9.1), after its proof: the name must be bound to
 * the identity keys the Hello names (USERNAME_TAKEN otherwise, as for a primary), and the
 * device key must be a non-primary device's auth key in the user's kept list (DEVICE_UNKNOWN
 * otherwise). A linked device never binds a name.
 */
function linkedDevice(claim: Claim, deviceSpki: Buffer, deps: HandshakeDeps): { user: DirectoryUser; address: string } {
  const existing = deps.store.getUser(claim.username);
  if (existing === undefined) throw sessionEnd.deviceUnknown(claim.username);
  if (!existing.sigSpki.equals(claim.sigSpki) || !existing.encSpki.equals(claim.encSpki)) throw sessionEnd.usernameTaken(claim.username);
  const device = deps.devices.linkedByAuth(claim.username, deviceSpki);
  if (device === undefined) throw sessionEnd.deviceUnknown(claim.username);
  return { user: deps.directory.put(existing, claim.sigKey), address: queueAddress(claim.username, device) };
}

/**
 * The binding of the username (§8 step 4), cheapest refusals first: a returning user's keys are
 * compared with the bound ones (checked when they were bound: no RSA work again); a name owned
 * by another key is refused; a new name is refused when this key already owns its share of
 * names, or this source registered too many lately; only then are the RSA key and the key
 * binding checked, and the name bound durably (first key wins). All synchronous: no other
 * handshake can bind between the checks and the write.
 */
function bindName(claim: Claim, deps: HandshakeDeps, source: string): DirectoryUser {
  const { store, directory, router, limits } = deps;
  const existing = store.getUser(claim.username);
  if (existing !== undefined) {
    if (!existing.sigSpki.equals(claim.sigSpki) || !existing.encSpki.equals(claim.encSpki)) throw sessionEnd.usernameTaken(claim.username);
    return directory.put(existing, claim.sigKey);
  }
  const owned = store.namesOfKey(fingerprint(claim.sigSpki));
  if (owned.length >= limits.maxNamesPerKey) throw sessionEnd.keyNameLimit(owned, limits.maxNamesPerKey);
  const registration = deps.registrations.take(source, deps.clock());
  if (!registration.ok) throw sessionEnd.registrationLimited(registration.retryAfterMs);
  let identity: PublicIdentity;
  try {
    identity = importPublicIdentity(claim);
  } catch (e) {
    throw handshakeEndOf(e);
  }
  const outcome = store.bindUser({
    username: identity.username, sigSpki: identity.sigSpki, encSpki: identity.encSpki,
    encKeySig: identity.encKeySig, sigFpr: identity.sigFpr, encFpr: identity.encFpr,
  });
  if (outcome.kind === "taken") throw sessionEnd.usernameTaken(identity.username);
  if (outcome.kind === "bound") {
    // Relays sharing one database (issue 14) check the key's names and bind in two steps, and
    // another relay may bind a name of the same key in between: a key found owning more names
    // than it may once this one is stored backs out (the last of racing bindings to look always
    // sees them all, so the limit holds service-wide; racing claims may all back out).
    const names = store.namesOfKey(identity.sigFpr);
    if (names.length > limits.maxNamesPerKey) {
      store.releaseUser(identity.username);
      throw sessionEnd.keyNameLimit(names.filter((n) => n !== identity.username), limits.maxNamesPerKey);
    }
  }
  const user = directory.put(outcome.user, identity.sigKey);
  if (outcome.kind === "bound") {
    // A name bound anew (after an operator's release): nothing routed for the old key stays.
    deps.devices.forget(user.username);
    deps.logger.info("user.bound", { user: user.username, source });
    router.announceBinding(user, true);
  }
  return user;
}

/**
 * Welcome lists light entries (no keys) for everyone online and every member of my rooms:
 * O(online) small entries, where full keys for every bound user made a connect storm O(N^2)
 * in bytes. Clients fetch keys with LookupKeys when they need them.
 */
function welcomeFor(user: DirectoryUser, deps: HandshakeDeps, protocolVersion: number, address: string): Welcome {
  const { directory, router, store, limits } = deps;
  // v2: the rooms whose MLS group counts me by the relay's record (PROTOCOL.md §8.2),
  // never the v1 room tables.
  const rooms = protocolVersion === 2 ? store.mls.roomsOfMember(user.username, MAX_ROOMS_PER_USER) : deps.rooms.infoFor(user.username);
  const names = new Set<string>(router.onlineNames());
  names.add(user.username);
  for (const r of rooms) for (const m of r.members) names.add(m);
  const found = directory.getMany(names);
  return {
    username: user.username,
    directory: [...names].flatMap((n) => {
      const u = found.get(n);
      return u === undefined ? [] : [u.toLightWire(router.isOnline(n))];
    }),
    rooms,
    // This device's queue (PROTOCOL.md §4.5).
    queued: store.queueDepth(address),
    limits: limitsToWire(limits),
    serverTimeMs: deps.clock(),
    relayVersion: deps.relayVersion,
    deviceId: deps.devices.deviceIdOf(address),
    deviceListVersion: deps.devices.version(user.username),
  };
}
