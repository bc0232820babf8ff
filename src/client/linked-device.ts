// A linked device's files (PROTOCOL.md §4.5, §4.6 step 3, §10.4), beside where the primary keeps
// `<username>_key.pem`:
// - `<username>_device.pem`: the device's own Ed25519 key (PKCS#8 PEM, mode 0600), encrypted with
//   the passphrase in the key file's format (keyfile.ts) when one is given. It proves this device
//   to the relay (Hello.device_spki, the device proof) and seals this device's local stores.
// - `<username>_device.json`: the public record: who the user is (their identity SPKI, the
//   encryption SPKI and the binding signature, as the primary's Hello carries them), this
//   device's id and name, and when it was linked.
// A directory holds either a key file (the primary) or device files (a linked device), never
// both: writing refuses when either exists, and the start-up never creates a key file beside
// device files. Both files are written to temporary files first and then put in place with
// link(2), which never replaces an existing file; a reader finding only one of the two says the
// linking did not finish.
import { createPublicKey, randomBytes, type KeyObject } from "node:crypto";
import { closeSync, constants, fsyncSync, linkSync, lstatSync, mkdirSync, openSync, readFileSync, statSync, unlinkSync, writeSync, type Stats } from "node:fs";
import { join } from "node:path";
import { DeviceList as WireDeviceList } from "../gen/securechat/v1/chat.js";
import { checkDeviceName, fromWireDeviceList, isDeviceId, toWireDeviceList, type SignedDeviceList } from "../protocol/devices.js";
import { ProtocolError } from "../protocol/errors.js";
import { decryptPemTextSync, encryptPemTextSync, keyFileIsEncrypted } from "../protocol/keyfile.js";
import { importPrivateKeyPem, importPublicIdentity } from "../protocol/keys.js";
import { checkUsername } from "../protocol/names.js";
import { checkPrivateFileMode, KeyStoreError } from "./key-store.js";

/** The public record of a linked device (`<username>_device.json`). */
export interface LinkedDeviceRecord {
  readonly username: string;
  /** This device's id in the user's device list (16 hex). */
  readonly deviceId: string;
  readonly name: string;
  /** The user's identity key (Ed25519 SPKI): what every device list of the user is signed by. */
  readonly identitySpki: Buffer;
  /** The user's encryption key (SPKI) and the identity key's signature over it (Hello's enc_spki, enc_key_sig). */
  readonly encSpki: Buffer;
  readonly encKeySig: Buffer;
  /** ms since the Unix epoch. */
  readonly linkedAtMs: number;
  /**
   * The user's device list as the linking delivered it (verified then, naming this device): the
   * floor of this device's own list (PROTOCOL.md §4.6), so a relay cannot serve it the list from
   * before its linking at its first connect. Absent in records written before it was kept.
   */
  readonly linkList?: SignedDeviceList;
}

export interface LinkedDevice {
  readonly record: LinkedDeviceRecord;
  /** The device's Ed25519 private key. */
  readonly deviceKey: KeyObject;
}

const RECORD_FORMAT = 1;
const MAX_RECORD_BYTES = 16 * 1024;
const MAX_PEM_BYTES = 64 * 1024;

/** The record's `linkList`: a wire DeviceList in base64 (verified where it is used, against the identity key). */
function linkListField(o: Record<string, unknown>, path: string): SignedDeviceList {
  const v = o["linkList"];
  try {
    if (typeof v !== "string" || v.length > MAX_RECORD_BYTES) throw new Error("not base64 text");
    return fromWireDeviceList(WireDeviceList.decode(Buffer.from(v, "base64")));
  } catch (e) {
    throw new KeyStoreError(`'${path}' is damaged: its linkList is not a device list (${(e as Error).message})`, { cause: e });
  }
}

function paths(keyDir: string, username: string): { key: string; pem: string; json: string } {
  const c = checkUsername(username);
  if (!c.ok) throw new KeyStoreError(`invalid username '${String(username)}': ${c.reason}`);
  return { key: join(keyDir, `${username}_key.pem`), pem: join(keyDir, `${username}_device.pem`), json: join(keyDir, `${username}_device.json`) };
}

function lstatOrUndefined(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new KeyStoreError(`cannot read '${path}': ${(e as Error).message}`, { cause: e });
  }
}

/** True when `<username>_device.pem` or `<username>_device.json` is in keyDir (a linked device, or its leftovers). */
export function linkedDeviceFilesExist(keyDir: string, username: string): boolean {
  const p = paths(keyDir, username);
  return lstatOrUndefined(p.pem) !== undefined || lstatOrUndefined(p.json) !== undefined;
}

/** The record's checks: every field present and well formed, the binding signature true. Throws a sentence. */
function checkRecord(r: LinkedDeviceRecord): void {
  if (r === null || typeof r !== "object") throw new TypeError("a device record is needed");
  const name = checkUsername(r.username);
  if (!name.ok) throw new TypeError(`invalid username '${String(r.username)}': ${name.reason}`);
  if (!isDeviceId(r.deviceId)) throw new TypeError("the device id must be 16 lowercase hex characters");
  const dn = checkDeviceName(r.name);
  if (!dn.ok) throw new TypeError(dn.reason);
  if (!Number.isSafeInteger(r.linkedAtMs) || r.linkedAtMs < 0) throw new TypeError("linkedAtMs must be a whole number of ms");
  // The identity keys as a contact would check them (§4.2): an Ed25519 key vouching for the RSA key.
  importPublicIdentity({ username: r.username, sigSpki: r.identitySpki, encSpki: r.encSpki, encKeySig: r.encKeySig });
}

function checkDeviceKey(deviceKey: KeyObject, identitySpki: Uint8Array): Buffer {
  if (deviceKey?.type !== "private" || deviceKey.asymmetricKeyType !== "ed25519") throw new TypeError("the device key must be an Ed25519 private key");
  const spki = createPublicKey(deviceKey).export({ format: "der", type: "spki" });
  if (spki.equals(Buffer.from(identitySpki))) throw new TypeError("a linked device's key must not be the identity key");
  return spki;
}

/** The device key's SPKI (what Hello.device_spki and the device list's auth_spki carry). */
export function deviceSpkiOf(deviceKey: KeyObject): Buffer {
  return createPublicKey(deviceKey).export({ format: "der", type: "spki" });
}

function writeTemp(path: string, text: string, mode: number): string {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode);
  try {
    const buf = Buffer.from(text, "utf8");
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return tmp;
}

function unlinkQuiet(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}

function ensureKeyDirSync(keyDir: string): void {
  try {
    mkdirSync(keyDir, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw new KeyStoreError(`cannot create key directory '${keyDir}': ${(e as Error).message}`, { cause: e });
  }
  const st = statSync(keyDir);
  if (!st.isDirectory()) throw new KeyStoreError(`'${keyDir}' is not a directory`);
  if ((st.mode & 0o022) !== 0) throw new KeyStoreError(`key directory '${keyDir}' is writable by others. Run: chmod 700 '${keyDir}'`);
}

/**
 * Writes this device's two files (PROTOCOL.md §4.6 step 3). Refuses, writing nothing, when the
 * user's key file or either device file already exists in keyDir (this directory already is a
 * device of that user). Throws KeyStoreError (files) or TypeError (bad arguments) with a sentence.
 */
export function writeLinkedDevice(keyDir: string, record: LinkedDeviceRecord, deviceKey: KeyObject, passphrase?: string): void {
  checkRecord(record);
  checkDeviceKey(deviceKey, record.identitySpki);
  if (passphrase !== undefined && (typeof passphrase !== "string" || passphrase.length === 0)) throw new TypeError("an empty passphrase protects nothing");
  const p = paths(keyDir, record.username);
  ensureKeyDirSync(keyDir);
  if (lstatOrUndefined(p.key) !== undefined) throw new KeyStoreError(`'${p.key}' exists: this directory holds ${record.username}'s primary device; it cannot also be a linked device`);
  for (const f of [p.pem, p.json]) {
    if (lstatOrUndefined(f) !== undefined) throw new KeyStoreError(`'${f}' exists: this directory already holds a linked device of ${record.username}`);
  }
  const plainPem = deviceKey.export({ format: "pem", type: "pkcs8" }).toString();
  const comment =
    `# secure-chat linked device '${record.name}' (${record.deviceId}) of ${record.username}: its Ed25519 device key.\n` +
    `# Keep it private (mode 0600). Whoever has this file can read ${record.username}'s messages on this device until it is unlinked.\n`;
  let pemText: string;
  try {
    pemText = comment + (passphrase === undefined ? plainPem : encryptPemTextSync(plainPem, passphrase));
  } catch (e) {
    throw new KeyStoreError(`cannot protect the device key: ${(e as Error).message}`, { cause: e });
  }
  const json = JSON.stringify({
    format: RECORD_FORMAT,
    username: record.username,
    deviceId: record.deviceId,
    name: record.name,
    identitySpki: record.identitySpki.toString("base64"),
    encSpki: record.encSpki.toString("base64"),
    encKeySig: record.encKeySig.toString("base64"),
    linkedAtMs: record.linkedAtMs,
    ...(record.linkList === undefined ? {} : { linkList: Buffer.from(WireDeviceList.encode(toWireDeviceList(record.linkList)).finish()).toString("base64") }),
  }, null, 2) + "\n";
  const temps: string[] = [];
  const placed: string[] = [];
  try {
    temps.push(writeTemp(p.json, json, 0o600), writeTemp(p.pem, pemText, 0o600));
    // link(2) fails with EEXIST instead of replacing: two linkings racing cannot mix their files.
    linkSync(temps[0]!, p.json);
    placed.push(p.json);
    linkSync(temps[1]!, p.pem);
    placed.push(p.pem);
    // The key file may have appeared meanwhile (a chat-tui started as primary): back out.
    if (lstatOrUndefined(p.key) !== undefined) throw new KeyStoreError(`'${p.key}' appeared while the device files were written: this directory holds ${record.username}'s primary device`);
  } catch (e) {
    for (const f of placed) unlinkQuiet(f);
    if (e instanceof KeyStoreError) throw e;
    if ((e as NodeJS.ErrnoException).code === "EEXIST") throw new KeyStoreError(`a device file of ${record.username} appeared in '${keyDir}' while this one was written; nothing was written`, { cause: e });
    throw new KeyStoreError(`cannot write the device files in '${keyDir}': ${(e as Error).message}`, { cause: e });
  } finally {
    for (const t of temps) unlinkQuiet(t);
  }
  try {
    const dfd = openSync(keyDir, constants.O_RDONLY);
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  } catch {
    // Some file systems refuse fsync on a directory; the files themselves are synced.
  }
}

function readPrivateText(path: string, max: number): string {
  const st = lstatOrUndefined(path);
  if (st === undefined) throw new KeyStoreError(`'${path}' is missing`);
  if (st.isSymbolicLink()) throw new KeyStoreError(`'${path}' is a symbolic link; refusing to follow it for a private key`);
  checkPrivateFileMode(path, st);
  if (st.size > max) throw new KeyStoreError(`'${path}' is damaged: it is ${st.size} bytes, far more than a device file`);
  return readFileSync(path, "utf8");
}

function b64Field(o: Record<string, unknown>, field: string, path: string): Buffer {
  const v = o[field];
  if (typeof v !== "string" || !/^[A-Za-z0-9+/]*={0,2}$/.test(v) || v.length === 0) throw new KeyStoreError(`'${path}' is damaged: '${field}' is not base64`);
  return Buffer.from(v, "base64");
}

/**
 * This directory's linked device of `username`, or undefined when it has no device files.
 * Throws KeyStoreError with one sentence for a damaged or half-written pair, loose permissions,
 * a missing or wrong passphrase, or a key that does not belong to the record.
 */
export function readLinkedDevice(keyDir: string, username: string, passphrase?: string): LinkedDevice | undefined {
  const p = paths(keyDir, username);
  const pemSt = lstatOrUndefined(p.pem);
  const jsonSt = lstatOrUndefined(p.json);
  if (pemSt === undefined && jsonSt === undefined) return undefined;
  if (pemSt === undefined || jsonSt === undefined) {
    const [have, lack] = pemSt === undefined ? [p.json, p.pem] : [p.pem, p.json];
    throw new KeyStoreError(`'${have}' is here without '${lack}': the linking of this device did not finish; remove '${have}' and link this device again`);
  }
  const jsonText = readPrivateText(p.json, MAX_RECORD_BYTES);
  let o: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(jsonText);
    if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) throw new Error("not an object");
    o = parsed as Record<string, unknown>;
  } catch (e) {
    throw new KeyStoreError(`'${p.json}' is damaged: it is not a device record (${(e as Error).message})`, { cause: e });
  }
  if (o["format"] !== RECORD_FORMAT) throw new KeyStoreError(`'${p.json}' has format ${String(o["format"])}; this client knows format ${RECORD_FORMAT}`);
  if (o["username"] !== username) throw new KeyStoreError(`'${p.json}' is damaged: it names '${String(o["username"])}', not '${username}'`);
  const record: LinkedDeviceRecord = {
    username,
    deviceId: String(o["deviceId"]),
    name: typeof o["name"] === "string" ? o["name"] : "",
    identitySpki: b64Field(o, "identitySpki", p.json),
    encSpki: b64Field(o, "encSpki", p.json),
    encKeySig: b64Field(o, "encKeySig", p.json),
    linkedAtMs: typeof o["linkedAtMs"] === "number" ? o["linkedAtMs"] : -1,
    ...(o["linkList"] === undefined ? {} : { linkList: linkListField(o, p.json) }),
  };
  try {
    checkRecord(record);
  } catch (e) {
    throw new KeyStoreError(`'${p.json}' is damaged: ${(e as Error).message}`, { cause: e });
  }
  const pemText = readPrivateText(p.pem, MAX_PEM_BYTES);
  let plain = pemText;
  if (keyFileIsEncrypted(pemText)) {
    if (passphrase === undefined) throw new KeyStoreError(`'${p.pem}' is protected by a passphrase and none was given`);
    try {
      plain = decryptPemTextSync(pemText, passphrase);
    } catch (e) {
      if (e instanceof ProtocolError && e.code === "bad-passphrase") throw new KeyStoreError(`wrong passphrase for '${p.pem}'`, { cause: e });
      throw new KeyStoreError(`cannot use '${p.pem}': ${(e as Error).message}`, { cause: e });
    }
  }
  const blocks = plain.match(/-----BEGIN PRIVATE KEY-----\r?\n[A-Za-z0-9+/=\r\n]*?-----END PRIVATE KEY-----/g) ?? [];
  if (blocks.length !== 1) throw new KeyStoreError(`'${p.pem}' is damaged: expected one private key, found ${blocks.length}`);
  let deviceKey: KeyObject;
  try {
    deviceKey = importPrivateKeyPem(blocks[0]!);
    checkDeviceKey(deviceKey, record.identitySpki);
  } catch (e) {
    throw new KeyStoreError(`'${p.pem}' is damaged: ${(e as Error).message}`, { cause: e });
  }
  return { record, deviceKey };
}

/** Paths of the two device files (for messages and the start-up's checks). */
export function linkedDevicePaths(keyDir: string, username: string): { readonly pem: string; readonly json: string } {
  const p = paths(keyDir, username);
  return { pem: p.pem, json: p.json };
}
