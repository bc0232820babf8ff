// RFC 9420 test vectors (MLS working group, shipped with ts-mls: test/fixtures/mls/README.md)
// run against the suite and decoder secure-chat uses (src/protocol/mls).
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { deriveSecret, deriveTreeSecret, expandWithLabel } from "ts-mls/crypto/kdf.js";
import { refhash } from "ts-mls/crypto/hash.js";
import { verifyWithLabel } from "ts-mls/crypto/signature.js";
import { expandSenderDataKey, expandSenderDataNonce } from "ts-mls/sender.js";
import { createSecretTree } from "ts-mls/secretTree.js";
import { deriveKey, deriveNonce } from "ts-mls/secretTree.js";
import { encodeMlsMessage } from "ts-mls";
import { decodeKeyPackage, isMlsProtocolError } from "../../src/protocol/mls/index.js";
import { decodeMls } from "../../src/protocol/mls/client.js";
import { suiteImpl } from "../../src/protocol/mls/suite.js";

const dir = new URL("../fixtures/mls/", import.meta.url);
const load = <T>(name: string): T => JSON.parse(readFileSync(new URL(name, dir), "utf8")) as T;
const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, "hex"));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

interface CryptoBasics {
  cipher_suite: number;
  ref_hash: { label: string; value: string; out: string };
  expand_with_label: { secret: string; label: string; context: string; length: number; out: string };
  derive_secret: { secret: string; label: string; out: string };
  derive_tree_secret: { secret: string; label: string; generation: number; length: number; out: string };
  sign_with_label: { pub: string; content: string; label: string; signature: string };
}

describe("RFC 9420 vectors with our suite's hash, KDF and signer", () => {
  const all = load<CryptoBasics[]>("crypto-basics.json");
  // Suite 5 shares SHA-512 / HKDF-SHA512 / AES-256-GCM with MLS_256_XWING_AES256GCM_SHA512_Ed25519.
  const v = all.find((x) => x.cipher_suite === 5)!;

  it("RefHash, ExpandWithLabel, DeriveSecret and DeriveTreeSecret (suite 5 values)", async () => {
    const impl = await suiteImpl();
    expect(toHex(await refhash(v.ref_hash.label, hex(v.ref_hash.value), impl.hash))).toBe(v.ref_hash.out);
    const e = v.expand_with_label;
    expect(toHex(await expandWithLabel(hex(e.secret), e.label, hex(e.context), e.length, impl.kdf))).toBe(e.out);
    expect(toHex(await deriveSecret(hex(v.derive_secret.secret), v.derive_secret.label, impl.kdf))).toBe(v.derive_secret.out);
    const t = v.derive_tree_secret;
    expect(toHex(await deriveTreeSecret(hex(t.secret), t.label, t.generation, t.length, impl.kdf))).toBe(t.out);
  });

  it("SignWithLabel of the Ed25519 suites verifies with our signer, and a flipped bit does not", async () => {
    const impl = await suiteImpl();
    const ed = all.filter((x) => x.cipher_suite === 1 || x.cipher_suite === 3);
    expect(ed.length).toBe(2);
    for (const x of ed) {
      const s = x.sign_with_label;
      expect(await verifyWithLabel(hex(s.pub), s.label, hex(s.content), hex(s.signature), impl.signature)).toBe(true);
      const bad = hex(s.signature);
      bad[0]! ^= 1;
      expect(await verifyWithLabel(hex(s.pub), s.label, hex(s.content), bad, impl.signature)).toBe(false);
    }
  });
});

interface SecretTreeVector {
  cipher_suite: number;
  encryption_secret: string;
  sender_data: { sender_data_secret: string; ciphertext: string; key: string; nonce: string };
  leaves: { generation: number; application_key: string; application_nonce: string; handshake_key: string; handshake_nonce: string }[][];
}

describe("RFC 9420 secret tree vectors (suite 5) with our suite", () => {
  const vectors = load<SecretTreeVector[]>("secret-tree-suite5.json");

  it("has the suite-5 entries", () => expect(vectors.length).toBe(3));

  it.each(vectors.map((v, i) => [i, v] as const))("sender data key/nonce and leaf keys of entry %i", async (_i, v) => {
    const impl = await suiteImpl();
    const sd = v.sender_data;
    expect(toHex(await expandSenderDataKey(impl, hex(sd.sender_data_secret), hex(sd.ciphertext)))).toBe(sd.key);
    expect(toHex(await expandSenderDataNonce(impl, hex(sd.sender_data_secret), hex(sd.ciphertext)))).toBe(sd.nonce);
    const tree = await createSecretTree(v.leaves.length, hex(v.encryption_secret), impl.kdf);
    for (const [leaf, gens] of v.leaves.entries()) {
      const node = tree[leaf * 2]!;
      for (const g of gens) {
        // Ratchet the leaf's chains to generation g (RFC 9420 §9.1) and derive key and nonce.
        let app = node.application.secret;
        let hs = node.handshake.secret;
        for (let i = 0; i < g.generation; i++) {
          app = await deriveTreeSecret(app, "secret", i, impl.kdf.size, impl.kdf);
          hs = await deriveTreeSecret(hs, "secret", i, impl.kdf.size, impl.kdf);
        }
        expect(toHex(await deriveKey(app, g.generation, impl))).toBe(g.application_key);
        expect(toHex(await deriveNonce(app, g.generation, impl))).toBe(g.application_nonce);
        expect(toHex(await deriveKey(hs, g.generation, impl))).toBe(g.handshake_key);
        expect(toHex(await deriveNonce(hs, g.generation, impl))).toBe(g.handshake_nonce);
      }
    }
  });
});

type Messages = Record<"mls_welcome" | "mls_group_info" | "mls_key_package" | "public_message_application" | "public_message_proposal" | "public_message_commit" | "private_message", string>;

describe("RFC 9420 message vectors through our decoder", () => {
  const vectors = load<Messages[]>("messages-first12.json");
  const kinds = [
    ["mls_welcome", "mls_welcome"], ["mls_group_info", "mls_group_info"], ["mls_key_package", "mls_key_package"],
    ["public_message_application", "mls_public_message"], ["public_message_proposal", "mls_public_message"],
    ["public_message_commit", "mls_public_message"], ["private_message", "mls_private_message"],
  ] as const;

  it.each(vectors.map((v, i) => [i, v] as const))("entry %i decodes to the right kind and re-encodes to the same bytes", (_i, v) => {
    for (const [field, wireformat] of kinds) {
      const bytes = hex(v[field]);
      const msg = decodeMls(bytes, field);
      expect(msg.wireformat).toBe(wireformat);
      expect(toHex(encodeMlsMessage(msg))).toBe(v[field]);
      // One byte more or one byte less is refused (no trailing bytes, no truncation).
      expect(() => decodeMls(new Uint8Array([...bytes, 0]), field)).toThrow(/trailing|decode/);
      let refused = false;
      try {
        decodeMls(bytes.subarray(0, bytes.length - 1), field);
      } catch (e) {
        refused = isMlsProtocolError(e, "malformed");
      }
      expect(refused).toBe(true);
    }
  });

  it("a vector KeyPackage (another suite) is refused as a KeyPackage for secure-chat", () => {
    let code: string | undefined;
    try {
      decodeKeyPackage(hex(vectors[0]!.mls_key_package));
    } catch (e) {
      code = isMlsProtocolError(e) ? e.code : "other";
    }
    expect(code).toBe("bad-key-package");
  });
});
