import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { defaultKeyDir, loadOrCreateIdentity, userFilePath } from "../../src/client/key-store.js";
import { encodeKeyFile } from "../../src/protocol/keyfile.js";
import { fixtureIdentity, fixturePem } from "../helpers/identities.js";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "sc-keys-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe("key store (PROTOCOL.md §4.3)", () => {
  it("creates <username>_key.pem 0600 in a 0700 directory on first use and reloads it", async () => {
    const keyDir = join(dir, "keys");
    const first = await loadOrCreateIdentity({ keyDir, username: "zoe", rsaBits: 2048 });
    expect(first.created).toBe(true);
    expect(first.path).toBe(join(keyDir, "zoe_key.pem"));
    expect(statSync(keyDir).mode & 0o777).toBe(0o700);
    expect(statSync(first.path).mode & 0o777).toBe(0o600);
    const again = await loadOrCreateIdentity({ keyDir, username: "zoe" });
    expect(again.created).toBe(false);
    expect(again.identity.sigFpr.equals(first.identity.sigFpr)).toBe(true);
    expect(again.identity.encKey.asymmetricKeyDetails?.modulusLength).toBe(2048);
  });

  it("refuses a key file readable by group or others, naming the fix", async () => {
    const path = join(dir, "alice_key.pem");
    writeFileSync(path, fixturePem("alice"), { mode: 0o600 });
    chmodSync(dir, 0o700);
    chmodSync(path, 0o644);
    await expect(loadOrCreateIdentity({ keyDir: dir, username: "alice" })).rejects.toThrow(
      /permissions 0644 for '.*alice_key\.pem' are too open.*chmod 600/,
    );
    chmodSync(path, 0o640);
    await expect(loadOrCreateIdentity({ keyDir: dir, username: "alice" })).rejects.toThrow(/too open/);
    chmodSync(path, 0o600);
    await expect(loadOrCreateIdentity({ keyDir: dir, username: "alice" })).resolves.toMatchObject({ created: false });
  });

  it("refuses a symlinked key file and a world-writable directory", async () => {
    chmodSync(dir, 0o700);
    const real = join(dir, "real.pem");
    writeFileSync(real, fixturePem("alice"), { mode: 0o600 });
    symlinkSync(real, join(dir, "alice_key.pem"));
    await expect(loadOrCreateIdentity({ keyDir: dir, username: "alice" })).rejects.toThrow(/symbolic link/);
    const open = join(dir, "open");
    await loadOrCreateIdentity({ keyDir: open, username: "bob", rsaBits: 2048 });
    chmodSync(open, 0o777);
    await expect(loadOrCreateIdentity({ keyDir: open, username: "bob" })).rejects.toThrow(/writable by others.*chmod 700/);
  });

  it("validates the username before building any path", async () => {
    expect(() => userFilePath(dir, "../../etc/passwd", "_key.pem")).toThrow(/invalid username/);
    await expect(loadOrCreateIdentity({ keyDir: dir, username: "../x" })).rejects.toThrow(/invalid username/);
    await expect(loadOrCreateIdentity({ keyDir: dir, username: "root" })).rejects.toThrow(/reserved/);
  });

  it("asks for the passphrase of an encrypted key and reports a wrong one clearly", async () => {
    chmodSync(dir, 0o700);
    const alice = await fixtureIdentity("alice");
    writeFileSync(join(dir, "alice_key.pem"), await encodeKeyFile(alice, { passphrase: "s3cret" }), { mode: 0o600 });
    let asked = 0;
    const ok = await loadOrCreateIdentity({ keyDir: dir, username: "alice", getPassphrase: async () => { asked++; return "s3cret"; } });
    expect(asked).toBe(1);
    expect(ok.identity.encFpr.equals(alice.encFpr)).toBe(true);
    await expect(loadOrCreateIdentity({ keyDir: dir, username: "alice", getPassphrase: async () => "nope" })).rejects.toThrow(/wrong passphrase/);
    await expect(loadOrCreateIdentity({ keyDir: dir, username: "alice" })).rejects.toThrow(/protected by a passphrase/);
  });

  it("never overwrites an existing key file", async () => {
    chmodSync(dir, 0o700);
    writeFileSync(join(dir, "carol_key.pem"), "garbage", { mode: 0o600 });
    await expect(loadOrCreateIdentity({ keyDir: dir, username: "carol" })).rejects.toThrow(/cannot use/);
    expect(readFileSync(join(dir, "carol_key.pem"), "utf8")).toBe("garbage");
  });

  it("defaults to the XDG config dir", () => {
    expect(defaultKeyDir({ XDG_CONFIG_HOME: "/x/cfg" })).toBe("/x/cfg/secure-chat");
    expect(defaultKeyDir({})).toMatch(/\.config\/secure-chat$/);
    expect(defaultKeyDir({ XDG_CONFIG_HOME: "relative" })).toMatch(/\.config\/secure-chat$/);
  });
});
