// Linking a new device, both sides (proto/PROTOCOL.md §4.6), over the relay's Link rendezvous.
//
//   new device (chat-tui alice --link)            existing (primary) device (/link CODE)
//   device key, MLS key, code; shows the code
//   Link(NEW_DEVICE, rendezvous)  ───── relay pairs ─────  Link(EXISTING_DEVICE, rendezvous)
//   OFFER  ──────────────────────────────────────────────▶ checks it (alice's, not listed yet)
//          ◀────────────────────────────────────────────── HELLO (alice's identity)
//   shows the SAS                                          shows the SAS, asks yes/no
//          ◀────────────────────────────────────────────── yes: credential + list v+1, published
//                                                          first, then BUNDLE (no: DECLINE)
//   checks BUNDLE, writes its files, ends
//
// Every failure is one sentence (LinkError) and writes nothing: the new device writes its files
// only after every check, the MLS store under a temporary name first, so a failure in the middle
// leaves no half-linked device behind.
import { createPublicKey, generateKeyPairSync, randomBytes } from "node:crypto";
import { existsSync, linkSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { LinkRole } from "../gen/securechat/v1/chat.js";
import { checkDeviceName, MAX_DEVICES, newDeviceId, signDeviceList, verifyDeviceList, type DeviceEntry, type SignedDeviceList, type VerifiedDeviceList } from "../protocol/devices.js";
import { encodeFields } from "../protocol/encoding.js";
import { importPublicIdentity, type PrivateIdentity } from "../protocol/keys.js";
import {
  decodeHello, decodeOffer, decodeStepThree, DECLINE_PLAINTEXT, encodeBundle, encodeHello, encodeOffer, fitLinkPins, formatLinkCode, type LinkPin,
  linkKey, linkSas, LinkStep, newLinkCode, openLinkMessage, parseLinkCode, rendezvousOf, sealLinkMessage, verifyBundle, type LinkOffer,
} from "../protocol/link.js";
import { generateMlsSignatureKey, makeCredential, mlsClientFromCredential } from "../protocol/mls/index.js";
import { CREDENTIAL_LABEL } from "../protocol/mls/credential.js";
import { checkUsername } from "../protocol/names.js";
import { sanitizeLine } from "../protocol/sanitize.js";
import { ensureKeyDir, userFilePath } from "./key-store.js";
import { linkedDeviceFilesExist, linkedDevicePaths, writeLinkedDevice } from "./linked-device.js";
import { MlsKeyStore } from "./mls-store.js";
import { TrustStore } from "./trust-store.js";

import { expect, LinkError, openLinkStream, raceAbort, sendLast, STEP_TIMEOUT_MS, type LinkRelay } from "./link-stream.js";

export { BUNDLE_CONFIRM_MS, LinkError, openLinkStream, STEP_TIMEOUT_MS, type LinkRelay, type LinkStream } from "./link-stream.js";

// ---------------------------------------------------------------------------------------------
// The new device
// ---------------------------------------------------------------------------------------------

export interface NewDeviceOptions {
  readonly relay: LinkRelay;
  readonly username: string;
  readonly deviceName: string;
  /** Where `<username>_device.pem`, `_device.json` and `_mls.db` go. */
  readonly keyDir: string;
  /** Protects `<username>_device.pem` (the key file's format). */
  readonly passphrase?: string;
  /** The code to show ("XXXX-XXXX-XXXX-XXXX"), once the rendezvous is open. */
  readonly onCode: (code: string) => void;
  /** The SAS to show ("123 456"), once the other device answered. */
  readonly onSas: (sas: string) => void;
  readonly signal?: AbortSignal;
  readonly clock?: () => number;
  /** Tests: a fixed code (10 bytes). */
  readonly code?: Uint8Array;
}

export interface NewDeviceLinked {
  readonly deviceId: string;
  readonly name: string;
  readonly list: VerifiedDeviceList;
  /** The name of the device that linked this one (the primary's name in the list). */
  readonly linkedBy: string;
  /** How many of the primary's pins of contacts this device took (PROTOCOL.md §4.6). */
  readonly pinned: number;
}

/** Refuses to start when keyDir already is a device of the user (nothing is written). */
function checkFreshDir(keyDir: string, username: string): void {
  const key = userFilePath(keyDir, username, "_key.pem");
  if (existsSync(key)) throw new LinkError(`${key} exists: this machine already is ${username}'s primary device`);
  if (linkedDeviceFilesExist(keyDir, username)) {
    // After an unlink the relay tells such a device to link again: say how, or the two hints loop.
    const p = linkedDevicePaths(keyDir, username);
    const mlsDb = userFilePath(keyDir, username, "_mls.db");
    throw new LinkError(`this machine already is a linked device of ${username} (${p.json}); if it was unlinked, move ${p.pem}, ${p.json} and ${mlsDb} away, then link again`);
  }
  const mls = userFilePath(keyDir, username, "_mls.db");
  if (existsSync(mls)) throw new LinkError(`${mls} exists (left from an earlier start as ${username}?): move it away, then link again`);
}

/**
 * The new device's side (PROTOCOL.md §4.6): makes its keys and the code, waits for the user's
 * primary device, checks the BUNDLE and writes this device's files. Throws LinkError.
 */
export async function newDeviceSide(o: NewDeviceOptions): Promise<NewDeviceLinked> {
  const nameCheck = checkUsername(o.username);
  if (!nameCheck.ok) throw new LinkError(`invalid username '${o.username}': ${nameCheck.reason}`);
  const dn = checkDeviceName(o.deviceName);
  if (!dn.ok) throw new LinkError(`the device name: ${dn.reason}`);
  checkFreshDir(o.keyDir, o.username);
  const clock = o.clock ?? Date.now;
  const deviceKey = generateKeyPairSync("ed25519").privateKey;
  const deviceSpki = createPublicKey(deviceKey).export({ format: "der", type: "spki" });
  const mlsKey = await generateMlsSignatureKey();
  const offer: LinkOffer = { username: o.username, deviceId: newDeviceId(), name: o.deviceName, deviceSpki, mlsSignatureKey: Buffer.from(mlsKey.publicKey) };
  const code = o.code === undefined ? newLinkCode() : Buffer.from(o.code);
  const k = linkKey(code);
  const stream = await openLinkStream(o.relay);
  try {
    // The code is shown once the rendezvous frame is on the connection (link-stream.ts).
    await stream.sendFlushed({ rendezvous: rendezvousOf(code), role: LinkRole.LINK_ROLE_NEW_DEVICE });
    o.onCode(formatLinkCode(code));
    await expect(stream, "paired", o.signal, "the relay ended the linking before the other device came");
    const offerBytes = encodeOffer(offer);
    stream.send({ payload: sealLinkMessage(k, LinkStep.offer, offerBytes) });
    const helloMsg = await expect(stream, "payload", o.signal, "the other device left before answering: nothing was linked",
      { ms: STEP_TIMEOUT_MS, sentence: `the other device did not answer within ${STEP_TIMEOUT_MS / 1000} seconds: nothing was linked` });
    let helloBytes: Buffer;
    let hello;
    try {
      helloBytes = openLinkMessage(k, LinkStep.hello, helloMsg.payload);
      hello = decodeHello(helloBytes);
    } catch (e) {
      throw new LinkError("the other device's answer does not check (not sent with this code, or changed on the way): nothing was linked", { cause: e });
    }
    if (hello.username !== o.username) throw new LinkError(`the other device is signed in as ${hello.username}, not ${o.username}: nothing was linked`);
    o.onSas(linkSas(k, offerBytes, helloBytes));
    const third = await expect(stream, "payload", o.signal, "the other device left before confirming: nothing was linked");
    let step;
    try {
      step = decodeStepThree(openLinkMessage(k, LinkStep.bundle, third.payload));
    } catch (e) {
      throw new LinkError("the other device's last message does not check (not sent with this code, or changed on the way): nothing was linked", { cause: e });
    }
    if (step.kind === "declined") throw new LinkError("your other device did not confirm the digits (answered no, or could not add this device): nothing was linked");
    let list: VerifiedDeviceList;
    let client;
    try {
      list = verifyBundle(step.bundle, offer, hello);
      const credential = { credentialType: "basic" as const, identity: new Uint8Array(encodeFields(CREDENTIAL_LABEL, [o.username, hello.identitySpki, step.bundle.identitySig])) };
      client = mlsClientFromCredential(o.username, credential, mlsKey.publicKey, mlsKey.privateKey);
    } catch (e) {
      throw new LinkError(`what the other device sent does not check: ${e instanceof Error ? e.message : String(e)}; nothing was linked`, { cause: e });
    }
    // Every check passed: write this device's files (the MLS store first under a temporary name).
    await ensureKeyDir(o.keyDir).catch((e: unknown) => {
      throw new LinkError((e as Error).message, { cause: e });
    });
    const finalMls = userFilePath(o.keyDir, o.username, "_mls.db");
    const tmpMls = join(o.keyDir, `.${o.username}_mls.db.linking-${randomBytes(6).toString("hex")}`);
    try {
      const store = MlsKeyStore.open(tmpMls, { username: o.username, sigPrivate: deviceKey }, { linkedTo: hello.identitySpki });
      try {
        store.putClient(client);
      } finally {
        store.close();
      }
      writeLinkedDevice(o.keyDir, {
        username: o.username, deviceId: offer.deviceId, name: offer.name, identitySpki: hello.identitySpki, encSpki: hello.encSpki, encKeySig: hello.encKeySig, linkedAtMs: clock(),
        linkList: list,
      }, deviceKey, o.passphrase);
      try {
        linkSync(tmpMls, finalMls);
      } catch (e) {
        const p = linkedDevicePaths(o.keyDir, o.username);
        for (const f of [p.pem, p.json]) unlinkQuiet(f);
        throw e;
      }
    } catch (e) {
      throw new LinkError(`this device's files could not be written: ${e instanceof Error ? e.message : String(e)}; nothing was linked`, { cause: e });
    } finally {
      unlinkQuiet(tmpMls);
      unlinkQuiet(`${tmpMls}-journal`);
    }
    stream.done();
    const pinned = await adoptPins(o.keyDir, o.username, step.bundle.pins);
    const primary = list.devices.find((d) => d.primary);
    return { deviceId: offer.deviceId, name: offer.name, list, linkedBy: primary?.name ?? "your primary device", pinned };
  } finally {
    stream.close();
    mlsKey.privateKey.fill(0);
  }
}

/**
 * The primary's pins of contacts, into this device's known_peers (PROTOCOL.md §4.6, §6): each
 * whose keys check (importPublicIdentity: the key binding verifies) and that this device has not
 * pinned itself. A pin that does not check is skipped (logged by count), never fatal: the device
 * is linked already, and such a contact is trusted on first use as before.
 */
async function adoptPins(keyDir: string, username: string, pins: readonly LinkPin[]): Promise<number> {
  if (pins.length === 0) return 0;
  const trust = await TrustStore.open(userFilePath(keyDir, username, "_known_peers.json"));
  let taken = 0;
  for (const p of pins) {
    if (p.username === username) continue;
    let identity;
    try {
      identity = importPublicIdentity({ username: p.username, sigSpki: p.sigSpki, encSpki: p.encSpki, encKeySig: p.encKeySig });
    } catch {
      continue;
    }
    if (trust.adopt(identity, p.verified, p.pinnedAtMs)) taken++;
  }
  await trust.flush();
  return taken;
}

function unlinkQuiet(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // not there
  }
}

// ---------------------------------------------------------------------------------------------
// The existing (primary) device
// ---------------------------------------------------------------------------------------------

/** What publishing a device list did (DsApi.publishDeviceList's answer, in short). */
export type PublishAnswer = { readonly ok: true } | { readonly ok: false; readonly detail: string };
/** What adding a device to the list did: the list kept at the relay now, or why not. */
export type AddDeviceAnswer = { readonly ok: true; readonly list: SignedDeviceList } | { readonly ok: false; readonly detail: string };

export interface ExistingDeviceOptions {
  readonly relay: LinkRelay;
  /** The code as typed ("abcd-efgh-...") or its 10 bytes. */
  readonly code: string | Uint8Array;
  /** The primary's identity (the key file's keys: only it can sign lists and credentials). */
  readonly identity: PrivateIdentity;
  /** The user's newest verified device list (it must list this device as the primary). */
  readonly currentList: VerifiedDeviceList;
  /** Publishes the new list at the relay (PublishDeviceList); the BUNDLE goes only after it is kept. */
  readonly publish: (list: SignedDeviceList) => Promise<PublishAnswer>;
  /**
   * Instead of the list made here and `publish`: the session's own device-list keeper adds the
   * device (list v+1 from its pinned list, signed, published: OwnDevices.addDevice) and returns
   * the list the relay kept; it must name the device exactly as offered.
   */
  readonly addDevice?: (entry: DeviceEntry) => Promise<AddDeviceAnswer>;
  /** Asks the user whether the other device shows these digits ("123 456"); the new device's name is given. */
  readonly confirm: (sas: string, deviceName: string) => Promise<boolean>;
  /** My pins of contacts (the trust store's), sent in the BUNDLE as far as they fit (fitLinkPins). */
  readonly pins?: readonly LinkPin[];
  readonly signal?: AbortSignal;
  readonly clock?: () => number;
}

export interface ExistingDeviceLinked {
  readonly device: DeviceEntry;
  readonly list: SignedDeviceList;
  /** The new device said it is done (false: it left after the BUNDLE without saying so). */
  readonly confirmed: boolean;
}

/**
 * The existing device's side (PROTOCOL.md §4.6): pairs with the new device, checks its OFFER,
 * answers HELLO, asks the user to compare the SAS, then vouches for the new device (credential,
 * list v+1 published) and sends the BUNDLE. Throws LinkError; nothing is published on a failure
 * before the user's yes.
 */
export async function existingDeviceSide(o: ExistingDeviceOptions): Promise<ExistingDeviceLinked> {
  const code = typeof o.code === "string" ? parseLinkCode(o.code) : { ok: true as const, code: Buffer.from(o.code) };
  if (!code.ok) throw new LinkError(code.reason);
  if (code.code.length !== 10) throw new LinkError("a link code is 10 bytes");
  const me = o.identity.username;
  let current: VerifiedDeviceList;
  try {
    current = verifyDeviceList(o.currentList, me, o.identity.sigSpki);
  } catch (e) {
    throw new LinkError(`your device list does not check with your key (${(e as Error).message})`, { cause: e });
  }
  if (!current.devices.some((d) => d.primary && d.authSpki.equals(o.identity.sigSpki))) throw new LinkError("only your primary device can link devices");
  const clock = o.clock ?? Date.now;
  const k = linkKey(code.code);
  const stream = await openLinkStream(o.relay);
  try {
    stream.send({ rendezvous: rendezvousOf(code.code), role: LinkRole.LINK_ROLE_EXISTING_DEVICE });
    await expect(stream, "paired", o.signal, "the relay ended the linking before the new device answered");
    const offerMsg = await expect(stream, "payload", o.signal, "the new device left before it said which device it is",
      { ms: STEP_TIMEOUT_MS, sentence: `the new device did not answer within ${STEP_TIMEOUT_MS / 1000} seconds: nothing was linked` });
    let offerBytes: Buffer;
    let offer: LinkOffer;
    try {
      offerBytes = openLinkMessage(k, LinkStep.offer, offerMsg.payload);
      offer = decodeOffer(offerBytes);
    } catch (e) {
      throw new LinkError("the new device's message does not check (not sent with this code, or changed on the way): nothing was linked", { cause: e });
    }
    if (offer.username !== me) throw new LinkError(`the new device asks to become a device of ${offer.username}, not of ${me}: nothing was linked`);
    if (current.devices.some((d) => d.deviceId === offer.deviceId || d.authSpki.equals(offer.deviceSpki) || d.mlsSignatureKey.equals(offer.mlsSignatureKey))) {
      throw new LinkError("the new device uses an id or a key of a device already linked: nothing was linked");
    }
    if (current.devices.length >= MAX_DEVICES) throw new LinkError(`you have ${current.devices.length} devices, the most there can be: unlink one first`);
    const helloBytes = encodeHello({ username: me, identitySpki: o.identity.sigSpki, encSpki: o.identity.encSpki, encKeySig: o.identity.encKeySig });
    stream.send({ payload: sealLinkMessage(k, LinkStep.hello, helloBytes) });
    const sas = linkSas(k, offerBytes, helloBytes);
    const yes = await raceAbort(o.confirm(sas, offer.name), o.signal);
    if (!yes) {
      await sendLast(stream, sealLinkMessage(k, LinkStep.bundle, DECLINE_PLAINTEXT));
      throw new LinkError(`${offer.name} was not linked (you answered no)`);
    }
    const now = clock();
    const { identitySig } = makeCredential(me, o.identity.sigPrivate, offer.mlsSignatureKey);
    const device: DeviceEntry = { deviceId: offer.deviceId, name: offer.name, authSpki: offer.deviceSpki, mlsSignatureKey: offer.mlsSignatureKey, addedAtMs: now, primary: false };
    let list: SignedDeviceList;
    let published: PublishAnswer;
    try {
      if (o.addDevice !== undefined) {
        const added = await o.addDevice(device);
        published = added;
        list = added.ok ? added.list : current;
        if (added.ok) {
          const named = verifyDeviceList(added.list, me, o.identity.sigSpki).devices.find((d) => d.deviceId === device.deviceId);
          if (named === undefined || named.primary || !named.authSpki.equals(device.authSpki) || !named.mlsSignatureKey.equals(device.mlsSignatureKey) || named.name !== device.name) {
            published = { ok: false, detail: "the list kept does not name the new device as offered" };
          }
        }
      } else {
        list = signDeviceList({ username: me, version: current.version + 1, issuedAtMs: Math.max(now, current.issuedAtMs), devices: [...current.devices, device] }, o.identity.sigPrivate, o.identity.sigSpki);
        published = await o.publish(list);
      }
    } catch (e) {
      list = current;
      published = { ok: false, detail: e instanceof Error ? e.message : String(e) };
    }
    if (!published.ok) {
      await sendLast(stream, sealLinkMessage(k, LinkStep.bundle, DECLINE_PLAINTEXT));
      throw new LinkError(`${offer.name} was not linked: the relay did not take the new device list (${sanitizeLine(published.detail).slice(0, 200)})`);
    }
    // The new device checks the BUNDLE, writes its files and ends its side: a clean end.
    const end = await sendLast(stream, sealLinkMessage(k, LinkStep.bundle, encodeBundle({ identitySig, list, pins: fitLinkPins(o.pins ?? []) })));
    return { device, list, confirmed: end?.kind === "ended" && end.sentence === undefined };
  } finally {
    stream.close();
  }
}

// ---------------------------------------------------------------------------------------------
// /link CODE on a running primary (ChatClient.linkDevice)
// ---------------------------------------------------------------------------------------------

/** What /link says when it ends: the device linked, or why not (one sentence). */
export type LinkOutcome =
  | { readonly ok: true; readonly name: string; readonly deviceId: string; readonly version: number; readonly confirmed: boolean }
  | { readonly ok: false; readonly reason: string };

/** What the primary's session offers the linking (DsApi's device-list calls, in short). */
export interface PrimaryLinkDeps {
  readonly relay: LinkRelay;
  readonly identity: PrivateIdentity;
  /** The relay's kept lists of these users, not verified (DsApi.fetchDeviceLists). */
  readonly fetchLists: (usernames: readonly string[]) => Promise<{ readonly ok: true; readonly lists: readonly SignedDeviceList[] } | { readonly ok: false; readonly detail: string }>;
  readonly publish: (list: SignedDeviceList) => Promise<PublishAnswer>;
  /** The session's own list keeper, when it has one: its pinned list, and its way of adding a device. */
  readonly own?: {
    readonly currentList: () => Promise<VerifiedDeviceList | undefined>;
    readonly addDevice: (entry: DeviceEntry) => Promise<AddDeviceAnswer>;
  };
  /** This device's MLS signature public key (for a first list naming the primary). */
  readonly mlsSignatureKey: () => Promise<Uint8Array>;
  /** This device's name in a first list (the host name). */
  readonly deviceName: string;
  /** My pins of contacts, for the BUNDLE (PROTOCOL.md §4.6). */
  readonly pins?: () => readonly LinkPin[];
  readonly clock?: () => number;
}

/** The user's newest list at the relay, verified; when there is none yet, v1 naming this primary, published first. */
async function currentListOf(d: PrimaryLinkDeps): Promise<VerifiedDeviceList> {
  const me = d.identity.username;
  if (d.own !== undefined) {
    // The list pinned by this session (verified, never rolled back); its upkeep publishes the first one at connect.
    const pinned = await d.own.currentList();
    if (pinned === undefined) throw new LinkError("no device list of yours is known yet: wait until you are connected, then try again");
    return pinned;
  }
  for (let attempt = 0; attempt < 2; attempt++) {
    const fetched = await d.fetchLists([me]);
    if (!fetched.ok) throw new LinkError(`the relay did not give your device list: ${sanitizeLine(fetched.detail).slice(0, 200)}`);
    const kept = fetched.lists.find((l) => l.username === me);
    if (kept !== undefined) {
      try {
        return verifyDeviceList(kept, me, d.identity.sigSpki);
      } catch (e) {
        throw new LinkError(`the relay served a device list of yours that your key did not sign (${(e as Error).message}): nothing was linked`, { cause: e });
      }
    }
    const name = checkDeviceName(d.deviceName).ok ? d.deviceName : "primary";
    const now = (d.clock ?? Date.now)();
    const first = signDeviceList({
      username: me, version: 1, issuedAtMs: now,
      devices: [{ deviceId: newDeviceId(), name, authSpki: d.identity.sigSpki, mlsSignatureKey: Buffer.from(await d.mlsSignatureKey()), addedAtMs: now, primary: true }],
    }, d.identity.sigPrivate, d.identity.sigSpki);
    const published = await d.publish(first);
    if (published.ok) return verifyDeviceList(first, me, d.identity.sigSpki);
    // Another session of mine published one meanwhile: read it again.
  }
  throw new LinkError("your device list could not be published at the relay: try again");
}

/** /link CODE (PROTOCOL.md §4.6) from a running primary: never throws. */
export async function linkFromPrimary(d: PrimaryLinkDeps, code: string, confirm: (sas: string, deviceName: string) => Promise<boolean>, signal?: AbortSignal): Promise<LinkOutcome> {
  try {
    const parsed = parseLinkCode(code);
    if (!parsed.ok) return { ok: false, reason: parsed.reason };
    const currentList = await currentListOf(d);
    const r = await existingDeviceSide({
      relay: d.relay, code: parsed.code, identity: d.identity, currentList, publish: d.publish, confirm, pins: d.pins?.() ?? [],
      ...(d.own === undefined ? {} : { addDevice: d.own.addDevice }),
      ...(signal === undefined ? {} : { signal }), ...(d.clock === undefined ? {} : { clock: d.clock }),
    });
    return { ok: true, name: r.device.name, deviceId: r.device.deviceId, version: r.list.version, confirmed: r.confirmed };
  } catch (e) {
    return { ok: false, reason: e instanceof LinkError ? e.message : `the linking failed: ${e instanceof Error ? e.message : String(e)}` };
  }
}
