#!/usr/bin/env node
// Writes the committed test identities under test/fixtures/keys (test-only keys, never used
// for anything real). Run once; tests load them so they need no slow RSA key generation.
import { generateKeyPairSync } from "node:crypto";
import { writeFileSync, mkdirSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const dir = join(dirname(fileURLToPath(import.meta.url)), "..", "test", "fixtures", "keys");
mkdirSync(dir, { recursive: true });
const spec = { alice: 3072, bob: 3072, carol: 3072, dave: 3072, mallory: 3072, weak: 1024, small: 2048 };
for (const [name, bits] of Object.entries(spec)) {
  const sig = generateKeyPairSync("ed25519");
  const enc = generateKeyPairSync("rsa", { modulusLength: bits, publicExponent: 65537 });
  const pem = sig.privateKey.export({ format: "pem", type: "pkcs8" }) + enc.privateKey.export({ format: "pem", type: "pkcs8" });
  writeFileSync(join(dir, `${name}.pem`), `# TEST FIXTURE ONLY: ${name}, Ed25519 + RSA-${bits}\n${pem}`);
}
// An RSA key with public exponent 3 (must be refused as a peer key).
const e3 = generateKeyPairSync("rsa", { modulusLength: 2048, publicExponent: 3 });
writeFileSync(join(dir, "rsa-e3.pem"), e3.privateKey.export({ format: "pem", type: "pkcs8" }));
console.log(`fixture keys written to ${dir}`);
