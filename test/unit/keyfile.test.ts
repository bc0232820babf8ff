import { describe, expect, it } from "vitest";
import { isProtocolError } from "../../src/protocol/errors.js";
import { checkKeyFileParameters, decodeKeyFile, encodeKeyFile, keyFileIsEncrypted } from "../../src/protocol/keyfile.js";
import { fixtureIdentity, fixturePem } from "../helpers/identities.js";

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "ok";
  } catch (e) {
    return isProtocolError(e) ? e.code : `other: ${String(e)}`;
  }
}

describe("key file format (PROTOCOL.md Key file)", () => {
  it("round-trips as plain PEM", async () => {
    const alice = await fixtureIdentity("alice");
    const text = await encodeKeyFile(alice);
    expect(text).toMatch(/^# secure-chat identity of alice/);
    expect(text.match(/-----BEGIN PRIVATE KEY-----/g)?.length).toBe(2);
    expect(keyFileIsEncrypted(text)).toBe(false);
    const back = await decodeKeyFile("alice", text);
    expect(back.sigFpr.equals(alice.sigFpr)).toBe(true);
    expect(back.encFpr.equals(alice.encFpr)).toBe(true);
  });

  it("round-trips with a passphrase (scrypt N=2^17) and refuses the wrong one", async () => {
    const alice = await fixtureIdentity("alice");
    const text = await encodeKeyFile(alice, { passphrase: "correct horse" });
    expect(keyFileIsEncrypted(text)).toBe(true);
    expect(text).not.toContain("BEGIN PRIVATE KEY");
    expect((await decodeKeyFile("alice", text, { passphrase: "correct horse" })).encFpr.equals(alice.encFpr)).toBe(true);
    expect(await code(decodeKeyFile("alice", text, { passphrase: "wrong" }))).toBe("bad-passphrase");
    expect(await code(decodeKeyFile("alice", text))).toBe("bad-passphrase");
    // Altering the stored parameters is caught by the AEAD (they are associated data).
    const b64 = text.split("\n").filter((l) => /^[A-Za-z0-9+/=]+$/.test(l)).join("");
    const blob = Buffer.from(b64, "base64");
    blob[8] = 9; // r: 8 -> 9, still in range, so only the AEAD can notice
    const altered = text.replace(/-----BEGIN SECURECHAT ENCRYPTED KEYS-----[\s\S]*-----END SECURECHAT ENCRYPTED KEYS-----/,
      `-----BEGIN SECURECHAT ENCRYPTED KEYS-----\n${blob.toString("base64")}\n-----END SECURECHAT ENCRYPTED KEYS-----`);
    expect(await code(decodeKeyFile("alice", altered, { passphrase: "correct horse" }))).toBe("bad-passphrase");
  });

  it("refuses weak scrypt parameters and empty passphrases", async () => {
    const alice = await fixtureIdentity("alice");
    await expect(encodeKeyFile(alice, { passphrase: "x", scryptLogN: 14 })).rejects.toThrow(/between 17 and 20/);
    expect(await code(encodeKeyFile(alice, { passphrase: "" }))).toBe("bad-passphrase");
  });

  it("refuses damaged files with a clear error", async () => {
    expect(await code(decodeKeyFile("alice", "not a key"))).toBe("bad-keyfile");
    const one = fixturePem("alice").replace(/-----BEGIN PRIVATE KEY-----[\s\S]*?-----END PRIVATE KEY-----/, "");
    expect(await code(decodeKeyFile("alice", one))).toBe("bad-keyfile");
    expect(await code(decodeKeyFile("alice", fixturePem("weak")))).toBe("bad-keyfile");
    expect(await code(decodeKeyFile("alice", "-----BEGIN SECURECHAT ENCRYPTED KEYS-----\nAAAA\n-----END SECURECHAT ENCRYPTED KEYS-----", { passphrase: "x" }))).toBe("bad-keyfile");
  });

  it("refuses scrypt parameters a tampered file uses to demand huge memory or time, before deriving (PROTOCOL.md §4.3)", async () => {
    const alice = await fixtureIdentity("alice");
    const text = await encodeKeyFile(alice, { passphrase: "correct horse" });
    const withParams = (logN: number, r: number, p: number): string => {
      const b64 = text.split("\n").filter((l) => /^[A-Za-z0-9+/=]+$/.test(l)).join("");
      const blob = Buffer.from(b64, "base64");
      blob.writeUInt8(logN, 4);
      blob.writeUInt32BE(r, 5);
      blob.writeUInt32BE(p, 9);
      return text.replace(/-----BEGIN SECURECHAT ENCRYPTED KEYS-----[\s\S]*-----END SECURECHAT ENCRYPTED KEYS-----/,
        `-----BEGIN SECURECHAT ENCRYPTED KEYS-----\n${blob.toString("base64")}\n-----END SECURECHAT ENCRYPTED KEYS-----`);
    };
    // 16 GiB (N = 2^22, r = 32): refused at once with a sentence, no derivation attempted.
    const huge = withParams(22, 32, 1);
    expect(() => checkKeyFileParameters(huge)).toThrow(
      "the key file asks scrypt for N = 2^22, r = 32, p = 1 (16384 MiB of memory); at most N = 2^20, r = 16, p = 4 and 1024 MiB are accepted, so the file was damaged or tampered with");
    const started = Date.now();
    expect(await code(decodeKeyFile("alice", huge, { passphrase: "correct horse" }))).toBe("bad-keyfile");
    expect(Date.now() - started).toBeLessThan(5_000); // nothing was derived (a 16 GiB scrypt would fail or run for minutes)
    for (const [logN, r, p] of [[21, 8, 1], [20, 16, 1], [17, 8, 5], [17, 17, 1], [17, 0, 1], [17, 8, 0], [16, 8, 1]] as const) {
      expect(() => checkKeyFileParameters(withParams(logN, r, p)), `${logN} ${r} ${p}`).toThrow(/scrypt/);
    }
    // Within the limits: accepted (then the AEAD decides).
    expect(() => checkKeyFileParameters(withParams(20, 8, 1))).not.toThrow();
    expect(() => checkKeyFileParameters(withParams(17, 8, 4))).not.toThrow();
  });
});
