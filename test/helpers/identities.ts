// Committed test identities (test/fixtures/keys, made by scripts/make-fixture-keys.mjs).
import { chmodSync, copyFileSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { decodeKeyFile } from "../../src/protocol/keyfile.js";
import { importPrivateKeyPem, type PrivateIdentity } from "../../src/protocol/keys.js";
import type { KeyObject } from "node:crypto";
import { REPO_ROOT } from "./paths.js";

export const FIXTURE_DIR = join(REPO_ROOT, "test", "fixtures", "keys");

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

/**
 * Puts the committed key `fixture` into `keysDir` as chat-tui keeps the key of `name`
 * (<name>_key.pem, mode 0600; the directory is made 0700 when missing), so a real chat-tui
 * starts without making an RSA key.
 */
export function installFixtureKey(keysDir: string, name: string, fixture: string = name): void {
  mkdirSync(keysDir, { recursive: true, mode: 0o700 });
  const file = join(keysDir, `${name}_key.pem`);
  copyFileSync(join(FIXTURE_DIR, `${fixture}.pem`), file);
  chmodSync(file, 0o600);
}
