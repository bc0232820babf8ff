// A self-signed X.509 v3 certificate (RFC 5280) for the relay's zero-setup TLS, built with a
// small DER encoder over node:crypto's ECDSA P-256 signatures. Pure: no files, no network.
//
// Why not a library: node:crypto has no certificate builder, and the candidates (@peculiar/x509
// with its ASN.1 schema stack, selfsigned on node-forge) bring thousands of lines and several
// packages into the relay for one fixed structure of about ten fields. The structure below is the
// one `openssl req -x509 -newkey ec` writes; its output is checked in tests by node's own parser
// (X509Certificate, which is OpenSSL), by the signature verifying under the certificate's key,
// and by real TLS handshakes of grpc-js against it.
import { createHash, randomBytes, sign, type KeyObject } from "node:crypto";

// ---------------------------------------------------------------------------------------------
// DER (X.690 §8, §10): definite lengths, minimal encodings.
// ---------------------------------------------------------------------------------------------

function derLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function tlv(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag]), derLength(body.length), body]);
}

const sequence = (...items: Buffer[]): Buffer => tlv(0x30, ...items);
const set = (...items: Buffer[]): Buffer => tlv(0x31, ...items);
const octetString = (b: Buffer): Buffer => tlv(0x04, b);
const utf8String = (s: string): Buffer => tlv(0x0c, Buffer.from(s, "utf8"));
const explicit = (n: number, inner: Buffer): Buffer => tlv(0xa0 | n, inner);
const bitString = (b: Buffer, unusedBits = 0): Buffer => tlv(0x03, Buffer.from([unusedBits]), b);

/** A non-negative INTEGER from big-endian bytes (a leading 0x00 keeps it positive). */
function unsignedInteger(b: Buffer): Buffer {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  const trimmed = b.subarray(i);
  return tlv(0x02, (trimmed[0]! & 0x80) !== 0 ? Buffer.concat([Buffer.from([0]), trimmed]) : trimmed);
}

function oid(dotted: string): Buffer {
  const parts = dotted.split(".").map(Number);
  const out: number[] = [40 * parts[0]! + parts[1]!];
  for (const p of parts.slice(2)) {
    const chunk: number[] = [p & 0x7f];
    for (let v = Math.floor(p / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift(0x80 | (v & 0x7f));
    out.push(...chunk);
  }
  return tlv(0x06, Buffer.from(out));
}

/** RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050; always UTC, seconds, Z. */
function time(d: Date): Buffer {
  const iso = d.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
  const digits = `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
  const year = d.getUTCFullYear();
  return year >= 1950 && year < 2050 ? tlv(0x17, Buffer.from(digits.slice(2), "ascii")) : tlv(0x18, Buffer.from(digits, "ascii"));
}

const ECDSA_WITH_SHA256 = "1.2.840.10045.4.3.2";
const COMMON_NAME = "2.5.4.3";
const BASIC_CONSTRAINTS = "2.5.29.19";
const KEY_USAGE = "2.5.29.15";
const SUBJECT_ALT_NAME = "2.5.29.17";
const SUBJECT_KEY_IDENTIFIER = "2.5.29.14";

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return sequence(oid(id), ...(critical ? [tlv(0x01, Buffer.from([0xff]))] : []), octetString(value));
}

/** RFC 5280 §4.1.2.9: "no well-defined expiration date" — the pin, not the date, is what counts. */
export const NO_EXPIRY = new Date(Date.UTC(9999, 11, 31, 23, 59, 59));

export interface SelfSignedOptions {
  /** An ECDSA P-256 key pair (the only kind this builder signs with). */
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  /** Subject and issuer common name, also the certificate's DNS name. */
  readonly commonName: string;
  /** Extra DNS names for subjectAltName (e.g. "localhost"). */
  readonly dnsNames?: readonly string[];
  /** IPv4 addresses for subjectAltName (e.g. "127.0.0.1"), so a CA-style check of them passes. */
  readonly ipv4Addresses?: readonly string[];
  readonly notBefore: Date;
  readonly notAfter?: Date;
  /** 16 random bytes when absent (RFC 5280 §4.1.2.2: positive, at most 20 octets). */
  readonly serial?: Buffer;
}

/** Builds and signs a self-signed X.509 v3 certificate; returns its DER. */
export function selfSignedCertificate(o: SelfSignedOptions): Buffer {
  if (o.privateKey.type !== "private" || o.privateKey.asymmetricKeyType !== "ec") throw new TypeError("privateKey must be an EC private key");
  if (o.privateKey.asymmetricKeyDetails?.namedCurve !== "prime256v1") throw new TypeError("the key must be on P-256");
  if (o.publicKey.type !== "public") throw new TypeError("publicKey must be a public key");
  if (!/^[\x21-\x7e][\x20-\x7e]{0,62}$/.test(o.commonName)) throw new TypeError("commonName must be 1-63 printable ASCII characters");
  const serial = o.serial ?? randomBytes(16);
  if (serial.length === 0 || serial.length > 20) throw new TypeError("serial must be 1-20 bytes");
  const notAfter = o.notAfter ?? NO_EXPIRY;
  if (!(notAfter > o.notBefore)) throw new TypeError("notAfter must be after notBefore");

  const spki = o.publicKey.export({ type: "spki", format: "der" });
  const name = sequence(set(sequence(oid(COMMON_NAME), utf8String(o.commonName))));
  const algorithm = sequence(oid(ECDSA_WITH_SHA256));
  // subjectKeyIdentifier, method 1 of RFC 5280 §4.2.1.2: SHA-1 of the subjectPublicKey bits
  // (the uncompressed point is the last 65 bytes of a P-256 SPKI).
  const keyId = createHash("sha1").update(spki.subarray(spki.length - 65)).digest();
  const dns = [o.commonName, ...(o.dnsNames ?? [])];
  const ips = (o.ipv4Addresses ?? []).map((ip) => {
    const parts = ip.split(".").map(Number);
    if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) throw new TypeError(`not an IPv4 address: ${ip}`);
    return tlv(0x87, Buffer.from(parts)); // iPAddress [7]
  });
  const extensions = sequence(
    // A self-signed certificate is its own trust anchor: OpenSSL accepts it as the root given
    // to the client (the pin), which is how clients trust it.
    extension(BASIC_CONSTRAINTS, true, sequence(tlv(0x01, Buffer.from([0xff])))),
    // digitalSignature (bit 0) and keyCertSign (bit 5): 1000 0100, 2 unused bits.
    extension(KEY_USAGE, true, bitString(Buffer.from([0x84]), 2)),
    extension(SUBJECT_ALT_NAME, false, sequence(...dns.map((n) => tlv(0x82, Buffer.from(n, "ascii"))), ...ips)), // dNSName [2]
    extension(SUBJECT_KEY_IDENTIFIER, false, octetString(keyId)),
  );
  const tbs = sequence(
    explicit(0, unsignedInteger(Buffer.from([2]))), // v3
    unsignedInteger(serial),
    algorithm,
    name,
    sequence(time(o.notBefore), time(notAfter)),
    name,
    spki,
    explicit(3, extensions),
  );
  const signature = sign("sha256", tbs, { key: o.privateKey, dsaEncoding: "der" });
  return sequence(tbs, algorithm, bitString(signature));
}

/** PEM armour of a DER certificate. */
export function certificatePem(der: Buffer): string {
  const b64 = der.toString("base64").match(/.{1,64}/g)?.join("\n") ?? "";
  return `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`;
}

/** SHA-256 of a certificate's DER, as shown to people: 64 hex digits. */
export function certificateFingerprint(der: Uint8Array): string {
  return createHash("sha256").update(der).digest("hex");
}
