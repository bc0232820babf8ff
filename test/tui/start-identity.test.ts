// chat-tui's start-up identity (PROTOCOL.md §4.5): key file -> primary; device files -> that
// linked device (never a new key file beside them); neither -> first run.
import { generateKeyPairSync } from "node:crypto";
import { copyFileSync, existsSync, mkdtempSync, readdirSync, rmSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { writeLinkedDevice } from "../../src/client/linked-device.js";
import { newDeviceId } from "../../src/protocol/devices.js";
import { loadStartIdentity, startKeyPath, startKind } from "../../src/tui/start-identity.js";
import { FIXTURE_DIR, fixtureIdentity } from "../helpers/identities.js";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "sc-start-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

async function linkHere(passphrase?: string): Promise<string> {
  const alice = await fixtureIdentity("alice");
  const deviceId = newDeviceId();
  writeLinkedDevice(dir, { username: "alice", deviceId, name: "desktop", identitySpki: alice.sigSpki, encSpki: alice.encSpki, encKeySig: alice.encKeySig, linkedAtMs: 1 }, generateKeyPairSync("ed25519").privateKey, passphrase);
  return deviceId;
}

const never = (): Promise<string> => Promise.reject(new Error("no passphrase should be asked"));

describe("start-up identity (PROTOCOL.md §4.5)", () => {
  it("starts as the linked device when its files are here, and creates no key file", async () => {
    const id = await linkHere();
    expect(startKind(dir, "alice")).toBe("linked");
    expect(startKeyPath(dir, "alice")).toBe(join(dir, "alice_device.pem"));
    const s = await loadStartIdentity({ keyDir: dir, username: "alice", getPassphrase: never });
    expect(s.local.kind).toBe("linked");
    expect(s.local.kind === "linked" && s.local.deviceId).toBe(id);
    expect(s.created).toBe(false);
    expect(existsSync(join(dir, "alice_key.pem"))).toBe(false);
    expect(readdirSync(dir).sort()).toEqual(["alice_device.json", "alice_device.pem"]);
  });

  it("asks the passphrase only for a protected device key", async () => {
    await linkHere("pass phrase");
    let asked = 0;
    const s = await loadStartIdentity({ keyDir: dir, username: "alice", getPassphrase: () => { asked++; return Promise.resolve("pass phrase"); } });
    expect(asked).toBe(1);
    expect(s.local.kind).toBe("linked");
    await expect(loadStartIdentity({ keyDir: dir, username: "alice", getPassphrase: () => Promise.resolve("wrong") })).rejects.toThrow(/wrong passphrase/);
  });

  it("a half-written linking is said, and still no key file is made", async () => {
    await linkHere();
    rmSync(join(dir, "alice_device.pem"));
    expect(startKind(dir, "alice")).toBe("linked");
    await expect(loadStartIdentity({ keyDir: dir, username: "alice", getPassphrase: never })).rejects.toThrow(/linking of this device did not finish/);
    expect(existsSync(join(dir, "alice_key.pem"))).toBe(false);
  });

  it("the key file wins: the primary as before", async () => {
    copyFileSync(join(FIXTURE_DIR, "alice.pem"), join(dir, "alice_key.pem"));
    chmodSync(join(dir, "alice_key.pem"), 0o600);
    expect(startKind(dir, "alice")).toBe("primary");
    const s = await loadStartIdentity({ keyDir: dir, username: "alice", getPassphrase: never });
    expect(s.local.kind).toBe("primary");
    expect(startKind(join(dir, "empty"), "alice")).toBe("new");
  });
});
