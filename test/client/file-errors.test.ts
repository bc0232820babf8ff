// Errors of the client's small files are handled with their reason, never dropped silently
// (issue 11): a leftover temporary file that cannot be removed is named, and a pin write that
// fails is logged while the pins in memory stay authoritative.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { KeyStoreError, removeStaleFile } from "../../src/client/key-store.js";
import { TrustStore } from "../../src/client/trust-store.js";
import { jsonLineLogger } from "../../src/protocol/log.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { waitUntil } from "../helpers/wait.js";

let bob: PrivateIdentity;
const dirs: string[] = [];

beforeAll(async () => {
  bob = await fixtureIdentity("bob");
});

afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "sc-file-errors-"));
  dirs.push(d);
  return d;
}

describe("removeStaleFile", () => {
  it("is quiet when there is nothing to remove, and removes a leftover", async () => {
    const dir = tempDir();
    await expect(removeStaleFile(join(dir, "none.tmp"))).resolves.toBeUndefined();
    writeFileSync(join(dir, "left.tmp"), "x");
    await removeStaleFile(join(dir, "left.tmp"));
    await expect(removeStaleFile(join(dir, "left.tmp"))).resolves.toBeUndefined();
  });

  it("names the file and the reason when it cannot be removed", async () => {
    const dir = tempDir();
    const path = join(dir, "a-directory.tmp");
    mkdirSync(path);
    const err = await removeStaleFile(path).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(KeyStoreError);
    expect((err as Error).message).toMatch(/^cannot remove the leftover temporary file '.*a-directory\.tmp': /);
  });
});

describe("TrustStore writes", () => {
  it("logs a failed pin write and keeps the pin in memory", async () => {
    const dir = tempDir();
    const lines: string[] = [];
    // The file's directory is gone by the time the pin is written: the write fails.
    const gone = join(dir, "gone");
    mkdirSync(gone);
    const store = await TrustStore.open(join(gone, "alice_known_peers.json"), Date.now, jsonLineLogger((l) => lines.push(l), "debug"));
    rmSync(gone, { recursive: true });
    expect(store.observe(bob)).toBe("pinned-new");
    await store.flush();
    await waitUntil(() => lines.find((l) => l.includes("trust.write-failed")), "the failed write to be logged");
    expect(store.get("bob")?.identity.sigFpr.equals(bob.sigFpr)).toBe(true);
  });
});
