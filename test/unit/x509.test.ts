// The self-signed certificate builder (src/protocol/x509.ts), checked by OpenSSL through node's
// X509Certificate: it parses, its signature verifies under its own key, and it says what it should.
import { generateKeyPairSync, X509Certificate } from "node:crypto";
import { describe, expect, it } from "vitest";
import { certificateFingerprint, certificatePem, NO_EXPIRY, selfSignedCertificate } from "../../src/protocol/x509.js";

const kp = generateKeyPairSync("ec", { namedCurve: "P-256" });
const notBefore = new Date(Date.UTC(2026, 11, 6, 12, 0, 0));

describe("selfSignedCertificate", () => {
  it("is a v3 certificate OpenSSL parses, self-issued, signed by its own P-256 key, valid until 9999", () => {
    const der = selfSignedCertificate({ ...kp, commonName: "secure-chat-relay", dnsNames: ["localhost"], ipv4Addresses: ["127.0.0.1"], notBefore, serial: Buffer.from("80aa", "hex") });
    const x = new X509Certificate(der);
    expect(x.subject).toBe("CN=secure-chat-relay");
    expect(x.issuer).toBe("CN=secure-chat-relay");
    expect(x.verify(kp.publicKey)).toBe(true);
    expect(x.checkIssued(x)).toBe(true);
    expect(x.ca).toBe(true);
    expect(x.serialNumber.toLowerCase()).toBe("80aa"); // a leading 0x00 keeps it positive in DER
    expect(x.subjectAltName).toBe("DNS:secure-chat-relay, DNS:localhost, IP Address:127.0.0.1");
    expect(x.checkIP("127.0.0.1")).toBe("127.0.0.1");
    expect(new Date(x.validFrom).getTime()).toBe(notBefore.getTime()); // UTCTime before 2050
    expect(new Date(x.validTo).getTime()).toBe(NO_EXPIRY.getTime()); // GeneralizedTime from 2050
    expect(x.publicKey.export({ type: "spki", format: "der" })).toEqual(kp.publicKey.export({ type: "spki", format: "der" }));
    expect(x.raw).toEqual(der);
    expect(new X509Certificate(certificatePem(der)).raw).toEqual(der);
    expect(certificateFingerprint(der)).toBe(x.fingerprint256.replace(/:/g, "").toLowerCase());
  });

  it("is fresh each time (random serial and signature), so a regenerated certificate is a new pin", () => {
    const a = selfSignedCertificate({ ...kp, commonName: "r", notBefore });
    const b = selfSignedCertificate({ ...kp, commonName: "r", notBefore });
    expect(certificateFingerprint(a)).not.toBe(certificateFingerprint(b));
  });

  it("checks its arguments first", () => {
    const rsa = generateKeyPairSync("rsa", { modulusLength: 1024 });
    const p384 = generateKeyPairSync("ec", { namedCurve: "P-384" });
    expect(() => selfSignedCertificate({ ...rsa, commonName: "r", notBefore })).toThrow("EC private key");
    expect(() => selfSignedCertificate({ ...p384, commonName: "r", notBefore })).toThrow("P-256");
    expect(() => selfSignedCertificate({ ...kp, commonName: "", notBefore })).toThrow("commonName");
    expect(() => selfSignedCertificate({ ...kp, commonName: "r\n", notBefore })).toThrow("commonName");
    expect(() => selfSignedCertificate({ ...kp, commonName: "r", notBefore, serial: Buffer.alloc(21, 1) })).toThrow("serial");
    expect(() => selfSignedCertificate({ ...kp, commonName: "r", notBefore, notAfter: notBefore })).toThrow("notAfter");
    expect(() => selfSignedCertificate({ ...kp, commonName: "r", notBefore, ipv4Addresses: ["::1"] })).toThrow("IPv4");
  });
});
