// Committed test identities (test/fixtures/keys, made by scripts/make-fixture-keys.mjs).
import { readFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { decodeKeyFile } from "../../src/protocol/keyfile.js";
import { importPrivateKeyPem, type PrivateIdentity } from "../../src/protocol/keys.js";
import type { KeyObject } from "node:crypto";

export const FIXTURE_DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "fixtures", "keys");

export type FixtureName = "alice" | "bob" | "carol" | "dave" | "mallory";

export function fixturePem(name: string): string {
  return readFileSync(join(FIXTURE_DIR, `${name}.pem`), "utf8");
}

const cache = new Map<string, PrivateIdentity>();

/** The fixture identity `name`, optionally under another username (same keys). */
export async function fixtureIdentity(name: FixtureName, username: string = name): Promise<PrivateIdentity> {
  const key = `${name}/${username}`;
  let id = cache.get(key);
  if (id === undefined) {
    id = await decodeKeyFile(username, fixturePem(name));
    cache.set(key, id);
  }
  return id;
}

/** The raw private keys of a fixture file (also for the deliberately weak ones). */
export function fixtureKeys(name: string): KeyObject[] {
  const text = fixturePem(name);
  return [...text.matchAll(/-----BEGIN PRIVATE KEY-----[\s\S]*?-----END PRIVATE KEY-----/g)].map((m) => importPrivateKeyPem(m[0]));
}
