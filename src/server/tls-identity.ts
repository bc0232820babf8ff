// The relay's TLS certificate with zero setup, as sshd has its host key: on first start the relay
// creates an ECDSA P-256 key and a self-signed certificate in its data dir (both 0600) and uses
// them from then on. Clients pin the certificate on first use (src/client/known-relays.ts) and
// bind it into their proof of possession (PROTOCOL.md §9), so a man in the middle with another
// certificate can neither read the session nor get it accepted.
import { createPrivateKey, generateKeyPairSync, randomBytes, X509Certificate } from "node:crypto";
import { closeSync, constants as fsConstants, fstatSync, fsyncSync, linkSync, lstatSync, openSync, readFileSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";
import { certificateFingerprint, certificatePem, selfSignedCertificate } from "../protocol/x509.js";

export const CERT_FILE = "relay-cert.pem";
export const KEY_FILE = "relay-key.pem";

/** What the relay serves TLS with, and what clients must bind their proofs to. */
export interface RelayTlsIdentity {
  readonly certPem: Buffer;
  readonly keyPem: Buffer;
  /** DER of the leaf certificate (the first of the chain). */
  readonly certDer: Buffer;
  /** SHA-256 of certDer in hex: what clients pin and show. */
  readonly fingerprint: string;
  /** True when this start created the pair. */
  readonly created: boolean;
}

/** A problem with the certificate files, as one sentence for the operator. */
export class TlsIdentityError extends Error {}

/** Parses a PEM chain and key (e.g. --tls-cert/--tls-key) into an identity; checks they match. */
export function tlsIdentityFromPem(certPem: Buffer, keyPem: Buffer, where: string, created = false): RelayTlsIdentity {
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(certPem);
  } catch (e) {
    throw new TlsIdentityError(`${where}: the certificate is not a PEM X.509 certificate (${(e as Error).message})`);
  }
  let matches: boolean;
  try {
    matches = leaf.checkPrivateKey(createPrivateKey(keyPem));
  } catch (e) {
    throw new TlsIdentityError(`${where}: the key is not a PEM private key (${(e as Error).message})`);
  }
  if (!matches) throw new TlsIdentityError(`${where}: the private key does not belong to the certificate`);
  return { certPem, keyPem, certDer: leaf.raw, fingerprint: certificateFingerprint(leaf.raw), created };
}

function describe(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === "EACCES" || code === "EPERM") return "permission denied";
  if (code === "ELOOP") return "it is a symbolic link";
  return e instanceof Error ? e.message : String(e);
}

/** Reads a file of ours: a regular file, not a symlink, mode 0600 or stricter, owned by us. */
function readPrivate(path: string): Buffer {
  let fd: number;
  try {
    fd = openSync(path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
  } catch (e) {
    throw new TlsIdentityError(`cannot read ${path}: ${describe(e)}`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new TlsIdentityError(`${path} is not a regular file`);
    if ((st.mode & 0o077) !== 0) {
      throw new TlsIdentityError(`${path} is readable by others (mode ${(st.mode & 0o777).toString(8)}): run chmod 600 '${path}'`);
    }
    if (typeof process.getuid === "function" && st.uid !== process.getuid()) throw new TlsIdentityError(`${path} belongs to another user (uid ${st.uid})`);
    return readFileSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Writes a new 0600 file atomically without ever replacing one: temp file, fsync, link. */
function createPrivate(path: string, contents: string): boolean {
  const tmp = `${path}.${randomBytes(6).toString("hex")}.tmp`;
  const fd = openSync(tmp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW, 0o600);
  try {
    writeSync(fd, contents);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    linkSync(tmp, path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") return false; // another relay got there first
    throw e;
  } finally {
    unlinkSync(tmp);
  }
}

function exists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== "ENOENT";
  }
}

/**
 * Loads relay-cert.pem and relay-key.pem from the data dir, creating them on the first start.
 * The data dir must exist (the relay creates it 0700 before).
 */
export function loadOrCreateTlsIdentity(dataDir: string, clock: () => number = Date.now): RelayTlsIdentity {
  const certPath = join(dataDir, CERT_FILE);
  const keyPath = join(dataDir, KEY_FILE);
  const haveKey = exists(keyPath);
  const haveCert = exists(certPath);
  if (haveKey !== haveCert) {
    const [present, missing] = haveKey ? [keyPath, certPath] : [certPath, keyPath];
    throw new TlsIdentityError(
      `${missing} is missing beside ${present}: restore it, or remove ${present} to create a new certificate (clients that pinned the old one will refuse the new one until they accept it)`,
    );
  }
  let created = false;
  if (!haveKey) {
    const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    // Valid from an hour ago: a client whose clock is a little behind must not see "not yet valid".
    const der = selfSignedCertificate({ privateKey, publicKey, commonName: "secure-chat-relay", dnsNames: ["localhost"], ipv4Addresses: ["127.0.0.1"], notBefore: new Date(clock() - 3600_000) });
    try {
      // The key first: a certificate without its key is useless; a key without a certificate
      // is reported above with what to do.
      if (createPrivate(keyPath, privateKey.export({ type: "pkcs8", format: "pem" }).toString())) {
        created = createPrivate(certPath, certificatePem(der));
      }
    } catch (e) {
      throw new TlsIdentityError(`cannot create the relay's TLS certificate in ${dataDir}: ${describe(e)}`);
    }
  }
  return tlsIdentityFromPem(readPrivate(certPath), readPrivate(keyPath), `${dataDir}/${CERT_FILE}`, created);
}
