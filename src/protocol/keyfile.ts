// The key file's contents (PROTOCOL.md §4.3). Pure: the caller reads and writes the file
// and enforces its permissions (src/client/key-store.ts).
//
// Without a passphrase: two standard PKCS#8 PEM blocks (Ed25519 signing key, RSA encryption
// key), like an unencrypted SSH key.
// With a passphrase: one "SECURECHAT ENCRYPTED KEYS" PEM block holding
//   "SCK1" || u8 log2(N) || u32be r || u32be p || salt(16) || iv(12) || tag(16) || ciphertext
// where the ciphertext is AES-256-GCM of the two PEM blocks under scrypt(passphrase, salt,
// N, r, p) and the associated data is every byte before the tag's position except the tag
// (magic, parameters, salt, iv).
import { createCipheriv, createDecipheriv, randomBytes, scrypt, scryptSync, type KeyObject } from "node:crypto";
import { ProtocolError } from "./errors.js";
import { identityFromPrivateKeys, importPrivateKeyPem, type PrivateIdentity } from "./keys.js";

const MAGIC = Buffer.from("SCK1", "ascii");
const ENCRYPTED_LABEL = "SECURECHAT ENCRYPTED KEYS";
/** scrypt cost: N = 2^17 (128 MiB with r = 8), the floor PROTOCOL.md sets. */
export const SCRYPT_LOG_N = 17;
const SCRYPT_R = 8;
const SCRYPT_P = 1;
const SALT_BYTES = 16;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const HEADER_BYTES = 4 + 1 + 4 + 4 + SALT_BYTES + IV_BYTES;

interface ScryptParams { readonly logN: number; readonly r: number; readonly p: number }

/**
 * Bounds on the scrypt parameters a key file may ask for (PROTOCOL.md §4.3): the file is input,
 * and scrypt needs 128 * N * r bytes of memory and time in proportion to N * r * p, so a
 * tampered file could otherwise demand up to 16 GiB and minutes of CPU before the passphrase
 * is even checked. log2(N) 17-20, r 1-16, p 1-4, and 128 * N * r at most 1 GiB.
 */
export const SCRYPT_LIMITS = { minLogN: 17, maxLogN: 20, maxR: 16, maxP: 4, maxMemoryBytes: 2 ** 30 } as const;

/** Throws a ProtocolError with a sentence when the parameters are outside SCRYPT_LIMITS. */
function checkScryptParams(params: ScryptParams): void {
  const { logN, r, p } = params;
  const memoryMiB = (128 * 2 ** logN * r) / 2 ** 20;
  if (logN < SCRYPT_LIMITS.minLogN) {
    throw new ProtocolError("bad-keyfile", `the key file's scrypt cost N = 2^${logN} is below the minimum 2^${SCRYPT_LIMITS.minLogN}: refusing a weakly protected key`);
  }
  if (logN > SCRYPT_LIMITS.maxLogN || r < 1 || r > SCRYPT_LIMITS.maxR || p < 1 || p > SCRYPT_LIMITS.maxP || 128 * 2 ** logN * r > SCRYPT_LIMITS.maxMemoryBytes) {
    throw new ProtocolError("bad-keyfile",
      `the key file asks scrypt for N = 2^${logN}, r = ${r}, p = ${p} (${memoryMiB >= 1 ? Math.round(memoryMiB) : memoryMiB.toFixed(2)} MiB of memory); ` +
      `at most N = 2^${SCRYPT_LIMITS.maxLogN}, r = ${SCRYPT_LIMITS.maxR}, p = ${SCRYPT_LIMITS.maxP} and ${SCRYPT_LIMITS.maxMemoryBytes / 2 ** 20} MiB are accepted, so the file was damaged or tampered with`);
  }
}

/** The scrypt parameters of an encrypted key file's text, checked, without deriving anything. */
export function checkKeyFileParameters(text: string): void {
  if (!keyFileIsEncrypted(text)) return;
  const block = parsePemBlocks(text).find((b) => b.label === ENCRYPTED_LABEL);
  if (block === undefined || block.der.length < HEADER_BYTES + TAG_BYTES + 1 || !block.der.subarray(0, 4).equals(MAGIC)) {
    throw new ProtocolError("bad-keyfile", "the encrypted key block is damaged");
  }
  checkScryptParams({ logN: block.der.readUInt8(4), r: block.der.readUInt32BE(5), p: block.der.readUInt32BE(9) });
}

function deriveKey(passphrase: string, salt: Buffer, params: ScryptParams): Promise<Buffer> {
  const N = 2 ** params.logN;
  // scrypt needs 128 * N * r bytes; allow that plus headroom (Node's default cap is 32 MiB).
  const maxmem = 128 * N * params.r + 32 * 1024 * 1024;
  return new Promise((resolve, reject) => {
    scrypt(passphrase.normalize("NFC"), salt, 32, { N, r: params.r, p: params.p, maxmem }, (err, key) => {
      if (err) reject(err);
      else resolve(key);
    });
  });
}

function pemBlock(label: string, der: Buffer): string {
  const b64 = der.toString("base64").match(/.{1,64}/g)?.join("\n") ?? "";
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

interface PemBlock { readonly label: string; readonly der: Buffer }

function parsePemBlocks(text: string): PemBlock[] {
  const blocks: PemBlock[] = [];
  const re = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([A-Za-z0-9+/=\r\n]*?)-----END \1-----/g;
  for (const m of text.matchAll(re)) {
    blocks.push({ label: m[1]!, der: Buffer.from(m[2]!.replace(/[\r\n]/g, ""), "base64") });
  }
  return blocks;
}

function privateKeysPem(identity: PrivateIdentity): string {
  const sig = identity.sigPrivate.export({ format: "der", type: "pkcs8" });
  const enc = identity.encPrivate.export({ format: "der", type: "pkcs8" });
  return pemBlock("PRIVATE KEY", sig) + pemBlock("PRIVATE KEY", enc);
}

function identityFromPlainPem(username: string, text: string): PrivateIdentity {
  const blocks = parsePemBlocks(text).filter((b) => b.label === "PRIVATE KEY");
  if (blocks.length !== 2) throw new ProtocolError("bad-keyfile", `expected 2 private keys in the key file, found ${blocks.length}`);
  let sig: KeyObject | undefined;
  let enc: KeyObject | undefined;
  for (const b of blocks) {
    let key: KeyObject;
    try {
      key = importPrivateKeyPem(pemBlock("PRIVATE KEY", b.der));
    } catch (e) {
      throw new ProtocolError("bad-keyfile", "a private key in the key file cannot be parsed", { cause: e });
    }
    if (key.asymmetricKeyType === "ed25519" && sig === undefined) sig = key;
    else if (key.asymmetricKeyType === "rsa" && enc === undefined) enc = key;
    else throw new ProtocolError("bad-keyfile", `unexpected ${key.asymmetricKeyType ?? "unknown"} key in the key file`);
  }
  if (sig === undefined || enc === undefined) throw new ProtocolError("bad-keyfile", "the key file needs one Ed25519 and one RSA key");
  try {
    return identityFromPrivateKeys(username, sig, enc);
  } catch (e) {
    throw new ProtocolError("bad-keyfile", `the keys in the key file are not usable: ${(e as Error).message}`, { cause: e });
  }
}

/** True when the key file text is passphrase-protected. */
export function keyFileIsEncrypted(text: string): boolean {
  return text.includes(`-----BEGIN ${ENCRYPTED_LABEL}-----`);
}

/** Serialises an identity into key file text, encrypted when a passphrase is given. */
export async function encodeKeyFile(identity: PrivateIdentity, options: { passphrase?: string; scryptLogN?: number } = {}): Promise<string> {
  const comment =
    `# secure-chat identity of ${identity.username}: Ed25519 signing key and RSA encryption key.\n` +
    `# Keep it private (mode 0600). Whoever has this file can read ${identity.username}'s messages and sign as ${identity.username}.\n`;
  const plain = privateKeysPem(identity);
  if (options.passphrase === undefined) return comment + plain;
  if (options.passphrase.length === 0) throw new ProtocolError("bad-passphrase", "an empty passphrase protects nothing");
  const head = newBlockHeader(options.scryptLogN);
  const key = await deriveKey(options.passphrase, head.salt, head.params);
  return comment + sealBlock(plain, head, key);
}

/** A fresh header of the encrypted block (format above): scrypt parameters, salt and IV. */
function newBlockHeader(scryptLogN: number | undefined): { readonly header: Buffer; readonly params: ScryptParams; readonly salt: Buffer; readonly iv: Buffer } {
  const logN = scryptLogN ?? SCRYPT_LOG_N;
  if (logN < SCRYPT_LOG_N || logN > SCRYPT_LIMITS.maxLogN) throw new RangeError(`scrypt log2(N) must be between ${SCRYPT_LOG_N} and ${SCRYPT_LIMITS.maxLogN}`);
  const params: ScryptParams = { logN, r: SCRYPT_R, p: SCRYPT_P };
  checkScryptParams(params);
  const salt = randomBytes(SALT_BYTES);
  const iv = randomBytes(IV_BYTES);
  const header = Buffer.alloc(HEADER_BYTES);
  MAGIC.copy(header, 0);
  header.writeUInt8(params.logN, 4);
  header.writeUInt32BE(params.r, 5);
  header.writeUInt32BE(params.p, 9);
  salt.copy(header, 13);
  iv.copy(header, 13 + SALT_BYTES);
  return { header, params, salt, iv };
}

/** The PEM block of `plain` sealed under `key` (zeroed here) with this header. */
function sealBlock(plain: string, head: { readonly header: Buffer; readonly iv: Buffer }, key: Buffer): string {
  const cipher = createCipheriv("aes-256-gcm", key, head.iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(head.header);
  const ct = Buffer.concat([cipher.update(plain, "utf8"), cipher.final()]);
  key.fill(0);
  return pemBlock(ENCRYPTED_LABEL, Buffer.concat([head.header, cipher.getAuthTag(), ct]));
}

/** The encrypted block of `text` and its scrypt parameters (bounded), or ProtocolError "bad-keyfile". */
function encryptedBlockOf(text: string): { readonly der: Buffer; readonly params: ScryptParams; readonly salt: Buffer } {
  const block = parsePemBlocks(text).find((b) => b.label === ENCRYPTED_LABEL);
  if (block === undefined || block.der.length < HEADER_BYTES + TAG_BYTES + 1 || !block.der.subarray(0, 4).equals(MAGIC)) {
    throw new ProtocolError("bad-keyfile", "the encrypted key block is damaged");
  }
  const der = block.der;
  const params: ScryptParams = { logN: der.readUInt8(4), r: der.readUInt32BE(5), p: der.readUInt32BE(9) };
  // Bound the work a crafted file can demand, and refuse parameters below the N >= 2^17 floor.
  checkScryptParams(params);
  return { der, params, salt: Buffer.from(der.subarray(13, 13 + SALT_BYTES)) };
}

/** The plaintext of an encrypted block under `key` (zeroed here); ProtocolError "bad-passphrase" when it does not open. */
function openBlock(der: Buffer, key: Buffer): string {
  try {
    const decipher = createDecipheriv("aes-256-gcm", key, der.subarray(13 + SALT_BYTES, HEADER_BYTES), { authTagLength: TAG_BYTES });
    decipher.setAAD(der.subarray(0, HEADER_BYTES));
    decipher.setAuthTag(der.subarray(HEADER_BYTES, HEADER_BYTES + TAG_BYTES));
    return Buffer.concat([decipher.update(der.subarray(HEADER_BYTES + TAG_BYTES)), decipher.final()]).toString("utf8");
  } catch (e) {
    throw new ProtocolError("bad-passphrase", "wrong passphrase (or the key file was altered)", { cause: e });
  } finally {
    key.fill(0);
  }
}

/**
 * Parses key file text into the identity of `username`. Throws ProtocolError "bad-keyfile"
 * for a damaged file and "bad-passphrase" when the passphrase is missing or wrong.
 */
export async function decodeKeyFile(username: string, text: string, options: { passphrase?: string } = {}): Promise<PrivateIdentity> {
  if (typeof text !== "string" || text.length > 64 * 1024) throw new ProtocolError("bad-keyfile", "the key file is not a plausible key file");
  if (!keyFileIsEncrypted(text)) return identityFromPlainPem(username, text);
  if (options.passphrase === undefined) throw new ProtocolError("bad-passphrase", "this key file is protected by a passphrase");
  const { der, params, salt } = encryptedBlockOf(text);
  const plain = openBlock(der, await deriveKey(options.passphrase, salt, params));
  return identityFromPlainPem(username, plain);
}

// ---------------------------------------------------------------------------------------------
// The same encrypted block for other private keys kept beside the key file (a linked device's
// `<username>_device.pem`, PROTOCOL.md §4.5/§10.4): any PEM text sealed under a passphrase in
// exactly the format above. Synchronous (scryptSync): used once at linking and at start-up.
// ---------------------------------------------------------------------------------------------

/** `plainPem` sealed under `passphrase` as one "SECURECHAT ENCRYPTED KEYS" block (format above). */
export function encryptPemTextSync(plainPem: string, passphrase: string, options: { scryptLogN?: number } = {}): string {
  if (typeof plainPem !== "string" || plainPem.length === 0) throw new TypeError("nothing to encrypt");
  if (typeof passphrase !== "string" || passphrase.length === 0) throw new ProtocolError("bad-passphrase", "an empty passphrase protects nothing");
  const head = newBlockHeader(options.scryptLogN);
  return sealBlock(plainPem, head, deriveKeySync(passphrase, head.salt, head.params));
}

/**
 * The PEM text inside an encrypted block made by encryptPemTextSync (or the key file's).
 * Throws ProtocolError "bad-keyfile" (damaged, parameters out of bounds) or "bad-passphrase".
 */
export function decryptPemTextSync(text: string, passphrase: string): string {
  if (typeof text !== "string" || text.length > 64 * 1024) throw new ProtocolError("bad-keyfile", "the file is not a plausible key file");
  const { der, params, salt } = encryptedBlockOf(text);
  if (typeof passphrase !== "string" || passphrase.length === 0) throw new ProtocolError("bad-passphrase", "this key file is protected by a passphrase");
  return openBlock(der, deriveKeySync(passphrase, salt, params));
}

function deriveKeySync(passphrase: string, salt: Buffer, params: ScryptParams): Buffer {
  const N = 2 ** params.logN;
  return scryptSync(passphrase.normalize("NFC"), salt, 32, { N, r: params.r, p: params.p, maxmem: 128 * N * params.r + 32 * 1024 * 1024 });
}
