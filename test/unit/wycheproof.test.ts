// Project Wycheproof vectors against our primitives with exactly suite v1's parameters
// (src/protocol/primitives.ts is what seal/open call). Every "valid" vector must pass and every
// "invalid" one must be refused; the files have no "acceptable" vectors for these parameters.
import { createPrivateKey, createPublicKey } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { importEncryptionKey, importSigningKey } from "../../src/protocol/keys.js";
import { aesGcmDecrypt, aesGcmEncrypt, ed25519Verify, rsaOaepUnwrap } from "../../src/protocol/primitives.js";

interface Vector { tcId: number; comment: string; flags: string[]; result: "valid" | "invalid" | "acceptable"; [k: string]: unknown }
interface Group { tests: Vector[]; [k: string]: unknown }
interface VectorFile { algorithm: string; testGroups: Group[] }

const dir = join(import.meta.dirname, "..", "vectors", "wycheproof");
const load = (f: string) => JSON.parse(readFileSync(join(dir, f), "utf8")) as VectorFile;
const hex = (s: unknown) => Buffer.from(String(s), "hex");

function outcome(fn: () => Buffer | boolean): { ok: true; value: Buffer | boolean } | { ok: false } {
  try {
    return { ok: true, value: fn() };
  } catch {
    return { ok: false };
  }
}

describe("Wycheproof RSA-OAEP-3072 SHA-256/MGF1-SHA-256 (our key wrap)", () => {
  const file = load("rsa_oaep_3072_sha256_mgf1sha256_test.json");
  const cases = file.testGroups.flatMap((g) => g.tests.map((t) => ({ g, t })));

  it("has the vectors we expect", () => {
    expect(cases.length).toBe(37);
    expect(file.testGroups.every((g) => g["sha"] === "SHA-256" && g["mgfSha"] === "SHA-256" && g["keySize"] === 3072)).toBe(true);
  });

  it("the vectors' key passes our peer-key checks", () => {
    for (const g of file.testGroups) {
      const priv = createPrivateKey({ key: hex(g["privateKeyPkcs8"]), format: "der", type: "pkcs8" });
      const spki = createPublicKey(priv).export({ format: "der", type: "spki" });
      expect(importEncryptionKey(spki).asymmetricKeyDetails?.modulusLength).toBe(3072);
    }
  });

  it.each(cases.map(({ g, t }) => [t.tcId, t.comment || t.flags.join(","), g, t] as const))("tc %i %s", (_id, _c, g, t) => {
    const key = createPrivateKey({ key: hex(g["privateKeyPkcs8"]), format: "der", type: "pkcs8" });
    const r = outcome(() => rsaOaepUnwrap(key, hex(t["label"]), hex(t["ct"])));
    if (t.result === "valid") {
      expect(r.ok).toBe(true);
      if (r.ok) expect((r.value as Buffer).toString("hex")).toBe(String(t["msg"]));
    } else {
      expect(r.ok).toBe(false);
    }
  });
});

describe("Wycheproof AES-256-GCM, 96-bit IV, 128-bit tag", () => {
  const file = load("aes_gcm_test.json");
  const cases = file.testGroups
    .filter((g) => g["keySize"] === 256 && g["ivSize"] === 96 && g["tagSize"] === 128)
    .flatMap((g) => g.tests);

  it("has vectors for our parameters", () => {
    expect(cases.length).toBeGreaterThan(50);
    expect(cases.some((t) => t.result === "invalid")).toBe(true);
  });

  it.each(cases.map((t) => [t.tcId, t.comment || t.flags.join(","), t] as const))("tc %i %s", (_id, _c, t) => {
    const [key, iv, aad, msg, ct, tag] = ["key", "iv", "aad", "msg", "ct", "tag"].map((k) => hex(t[k])) as [Buffer, Buffer, Buffer, Buffer, Buffer, Buffer];
    const opened = outcome(() => aesGcmDecrypt(key, iv, aad, ct, tag));
    if (t.result === "valid") {
      expect(opened.ok).toBe(true);
      if (opened.ok) expect((opened.value as Buffer).equals(msg)).toBe(true);
      const sealed = aesGcmEncrypt(key, iv, aad, msg);
      expect(sealed.ciphertext.equals(ct) && sealed.tag.equals(tag)).toBe(true);
    } else {
      expect(opened.ok).toBe(false);
    }
  });
});

describe("Wycheproof Ed25519", () => {
  const file = load("ed25519_test.json");
  const cases = file.testGroups.flatMap((g) => g.tests.map((t) => ({ g, t })));

  it("has the vectors we expect", () => {
    expect(cases.length).toBe(151);
  });

  it.each(cases.map(({ g, t }) => [t.tcId, t.comment || t.flags.join(","), g, t] as const))("tc %i %s", (_id, _c, g, t) => {
    const key = importSigningKey(hex(g["publicKeyDer"]));
    expect(ed25519Verify(key, hex(t["msg"]), hex(t["sig"]))).toBe(t.result === "valid");
  });
});
