// A linked device's files (PROTOCOL.md §4.5, §10.4): `<username>_device.pem` and
// `<username>_device.json`, written together, never beside a key file, read back with clear
// errors for every damaged state.
import { generateKeyPairSync, type KeyObject } from "node:crypto";
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { loadOrCreateIdentity } from "../../src/client/key-store.js";
import { deviceSpkiOf, linkedDeviceFilesExist, readLinkedDevice, writeLinkedDevice, type LinkedDeviceRecord } from "../../src/client/linked-device.js";
import { newDeviceId } from "../../src/protocol/devices.js";
import { signDeviceList } from "../../src/protocol/devices.js";
import { fixtureIdentity } from "../helpers/identities.js";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "sc-device-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

async function record(over: Partial<LinkedDeviceRecord> = {}): Promise<LinkedDeviceRecord> {
  const alice = await fixtureIdentity("alice");
  return { username: "alice", deviceId: newDeviceId(), name: "desktop", identitySpki: alice.sigSpki, encSpki: alice.encSpki, encKeySig: alice.encKeySig, linkedAtMs: 1_796_000_000_000, ...over };
}

function deviceKey(): KeyObject {
  return generateKeyPairSync("ed25519").privateKey;
}

function messageOf(f: () => unknown): string {
  try {
    f();
    return "no error";
  } catch (e) {
    return (e as Error).message;
  }
}

describe("linked device files (PROTOCOL.md §4.5, §10.4)", () => {
  it("writes both files 0600 and reads them back: the same record and key", async () => {
    const r = await record();
    const key = deviceKey();
    writeLinkedDevice(dir, r, key);
    expect(statSync(join(dir, "alice_device.pem")).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, "alice_device.json")).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir).sort()).toEqual(["alice_device.json", "alice_device.pem"]);
    expect(linkedDeviceFilesExist(dir, "alice")).toBe(true);
    const back = readLinkedDevice(dir, "alice");
    expect(back).toBeDefined();
    expect(back!.record).toEqual(r);
    expect(deviceSpkiOf(back!.deviceKey).equals(deviceSpkiOf(key))).toBe(true);
    // The public record holds no private key.
    expect(readFileSync(join(dir, "alice_device.json"), "utf8")).not.toMatch(/PRIVATE/);
  });

  it("keeps the linking's device list with the record, and says so when it is damaged", async () => {
    const base = await record();
    const alice = await fixtureIdentity("alice");
    const primary = { deviceId: "00000000000000aa", name: "laptop", authSpki: alice.sigSpki, mlsSignatureKey: Buffer.alloc(32, 1), addedAtMs: 1, primary: true };
    const linkList = signDeviceList({ username: "alice", version: 2, issuedAtMs: 2, devices: [primary] }, alice.sigPrivate, alice.sigSpki);
    writeLinkedDevice(dir, { ...base, linkList }, deviceKey());
    const back = readLinkedDevice(dir, "alice")!;
    expect(back.record.linkList?.version).toBe(2);
    expect(back.record.linkList?.signature.equals(linkList.signature)).toBe(true);
    const json = join(dir, "alice_device.json");
    writeFileSync(json, readFileSync(json, "utf8").replace(/"linkList": "[^"]+"/, '"linkList": 7'));
    expect(messageOf(() => readLinkedDevice(dir, "alice"))).toMatch(/its linkList is not a device list/);
  });

  it("is undefined when the directory has no device files", () => {
    expect(readLinkedDevice(dir, "alice")).toBeUndefined();
    expect(linkedDeviceFilesExist(dir, "alice")).toBe(false);
  });

  it("encrypts the device key under a passphrase and refuses a missing or wrong one", async () => {
    const key = deviceKey();
    writeLinkedDevice(dir, await record(), key, "correct horse");
    const text = readFileSync(join(dir, "alice_device.pem"), "utf8");
    expect(text).toMatch(/SECURECHAT ENCRYPTED KEYS/);
    expect(text).not.toMatch(/BEGIN PRIVATE KEY/);
    expect(messageOf(() => readLinkedDevice(dir, "alice"))).toMatch(/protected by a passphrase and none was given/);
    expect(messageOf(() => readLinkedDevice(dir, "alice", "wrong"))).toMatch(/wrong passphrase/);
    expect(deviceSpkiOf(readLinkedDevice(dir, "alice", "correct horse")!.deviceKey).equals(deviceSpkiOf(key))).toBe(true);
  });

  it("refuses to write beside a key file or over device files, writing nothing", () => {
    writeFileSync(join(dir, "alice_key.pem"), "x", { mode: 0o600 });
    expect(messageOf(() => writeLinkedDevice(dir, awaited.r, deviceKey()))).toMatch(/alice_key\.pem' exists/);
    expect(existsSync(join(dir, "alice_device.pem"))).toBe(false);
    expect(existsSync(join(dir, "alice_device.json"))).toBe(false);
    unlinkSync(join(dir, "alice_key.pem"));
    writeLinkedDevice(dir, awaited.r, deviceKey());
    const before = readFileSync(join(dir, "alice_device.pem"));
    expect(messageOf(() => writeLinkedDevice(dir, awaited.r, deviceKey()))).toMatch(/already holds a linked device of alice/);
    expect(readFileSync(join(dir, "alice_device.pem")).equals(before)).toBe(true);
    expect(readdirSync(dir).filter((f) => f.endsWith(".tmp"))).toEqual([]);
  });

  it("the key store never creates a key file beside device files", async () => {
    writeLinkedDevice(dir, awaited.r, deviceKey());
    await expect(loadOrCreateIdentity({ keyDir: dir, username: "alice", rsaBits: 2048 })).rejects.toThrow(/linked device of alice/);
    expect(existsSync(join(dir, "alice_key.pem"))).toBe(false);
  });

  it("refuses bad arguments with a sentence", async () => {
    const r = awaited.r;
    const alice = await fixtureIdentity("alice");
    expect(messageOf(() => writeLinkedDevice(dir, { ...r, deviceId: "XYZ" }, deviceKey()))).toMatch(/device id/);
    expect(messageOf(() => writeLinkedDevice(dir, { ...r, name: "\u001b[31mevil" }, deviceKey()))).toMatch(/printable/);
    expect(messageOf(() => writeLinkedDevice(dir, { ...r, encKeySig: Buffer.alloc(64, 1) }, deviceKey()))).toMatch(/does not vouch/);
    expect(messageOf(() => writeLinkedDevice(dir, r, alice.sigPrivate))).toMatch(/must not be the identity key/);
    expect(messageOf(() => writeLinkedDevice(dir, r, alice.encPrivate))).toMatch(/Ed25519/);
    expect(readdirSync(dir)).toEqual([]);
  });

  it("says plainly what is wrong with damaged files", async () => {
    const r = awaited.r;
    writeLinkedDevice(dir, r, deviceKey());
    const json = join(dir, "alice_device.json");
    const pem = join(dir, "alice_device.pem");
    const goodJson = readFileSync(json, "utf8");
    const goodPem = readFileSync(pem, "utf8");

    chmodSync(pem, 0o644);
    expect(messageOf(() => readLinkedDevice(dir, "alice"))).toMatch(/too open.*chmod 600/);
    chmodSync(pem, 0o600);

    writeFileSync(json, "{not json");
    expect(messageOf(() => readLinkedDevice(dir, "alice"))).toMatch(/alice_device\.json' is damaged: it is not a device record/);
    writeFileSync(json, goodJson.replace('"username": "alice"', '"username": "bob"'));
    expect(messageOf(() => readLinkedDevice(dir, "alice"))).toMatch(/names 'bob', not 'alice'/);
    writeFileSync(json, goodJson.replace(/"identitySpki": "[^"]+"/, '"identitySpki": "!!"'));
    expect(messageOf(() => readLinkedDevice(dir, "alice"))).toMatch(/'identitySpki' is not base64/);
    const bob = await fixtureIdentity("bob");
    writeFileSync(json, goodJson.replace(/"identitySpki": "[^"]+"/, `"identitySpki": "${bob.sigSpki.toString("base64")}"`));
    expect(messageOf(() => readLinkedDevice(dir, "alice"))).toMatch(/damaged: .*does not vouch/);
    writeFileSync(json, goodJson);

    writeFileSync(pem, "garbage", { mode: 0o600 });
    expect(messageOf(() => readLinkedDevice(dir, "alice"))).toMatch(/alice_device\.pem' is damaged: expected one private key, found 0/);
    writeFileSync(pem, goodPem.replace(/-----END PRIVATE KEY-----/, "").replace(/[A-Za-z0-9]{20}/, "AAAAAAAAAAAAAAAAAAAA"));
    expect(messageOf(() => readLinkedDevice(dir, "alice"))).toMatch(/alice_device\.pem' is damaged/);

    unlinkSync(pem);
    expect(messageOf(() => readLinkedDevice(dir, "alice"))).toMatch(/without '.*alice_device\.pem': the linking of this device did not finish.*link this device again/);
    rmSync(json);
    writeFileSync(pem, goodPem, { mode: 0o600 });
    expect(messageOf(() => readLinkedDevice(dir, "alice"))).toMatch(/without '.*alice_device\.json'/);
    rmSync(pem);
    symlinkSync("/etc/passwd", pem);
    writeFileSync(json, goodJson, { mode: 0o600 });
    expect(messageOf(() => readLinkedDevice(dir, "alice"))).toMatch(/symbolic link/);
  });
});

const awaited: { r: LinkedDeviceRecord } = { r: undefined as unknown as LinkedDeviceRecord };
beforeEach(async () => {
  awaited.r = await record();
});
