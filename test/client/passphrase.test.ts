// SECURECHAT_PASSPHRASE and --passphrase do what README says (issue 9 §5), and a key file's
// scrypt parameters are checked before anyone is asked for a passphrase (PROTOCOL.md §4.3).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { KeyStoreError, loadOrCreateIdentity } from "../../src/client/key-store.js";
import { encodeKeyFile, keyFileIsEncrypted } from "../../src/protocol/keyfile.js";
import { planPassphrase } from "../../src/tui/startup.js";
import { fixtureIdentity } from "../helpers/identities.js";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "sc-pass-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A terminal that records what it was asked and answers from a list. */
function terminal(answers: string[]): { asked: string[]; ask: (q: string) => Promise<string> } {
  const asked: string[] = [];
  return { asked, ask: async (q) => { asked.push(q); return answers.shift() ?? ""; } };
}

describe("where the passphrase comes from", () => {
  it("SECURECHAT_PASSPHRASE alone protects a new key; the terminal is never asked", async () => {
    const t = terminal([]);
    const plan = await planPassphrase({ creating: true, flag: false, env: "correct horse", keyPath: "k", ask: t.ask });
    expect(plan.ok && plan.plan.newPassphrase).toBe("correct horse");
    if (!plan.ok) return;
    const loaded = await loadOrCreateIdentity({ keyDir: dir, username: "alice", rsaBits: 2048, ...(plan.plan.newPassphrase ? { newPassphrase: plan.plan.newPassphrase } : {}), getPassphrase: plan.plan.unlock });
    expect(loaded.created).toBe(true);
    expect(keyFileIsEncrypted(readFileSync(loaded.path, "utf8"))).toBe(true);
    // It also opens it, without the terminal.
    const again = await loadOrCreateIdentity({ keyDir: dir, username: "alice", getPassphrase: plan.plan.unlock });
    expect(again.identity.sigFpr.equals(loaded.identity.sigFpr)).toBe(true);
    expect(t.asked).toEqual([]);
  });

  it("with --passphrase and the variable set, the terminal is not asked either", async () => {
    const t = terminal(["from the terminal", "from the terminal"]);
    const plan = await planPassphrase({ creating: true, flag: true, env: "from the env", keyPath: "k", ask: t.ask });
    expect(plan.ok && plan.plan.newPassphrase).toBe("from the env");
    expect(t.asked).toEqual([]);
  });

  it("a set but empty variable is refused with a sentence, never an unprotected key", async () => {
    const plan = await planPassphrase({ creating: true, flag: false, env: "", keyPath: "k", ask: terminal([]).ask });
    expect(plan).toEqual({ ok: false, error: "SECURECHAT_PASSPHRASE is set but empty: an empty passphrase protects nothing (unset it to be asked, or to create an unprotected key)" });
  });

  it("without the variable: --passphrase asks twice; without either, a new key is unprotected and nothing is asked", async () => {
    const t = terminal(["s3cret", "s3cret"]);
    const plan = await planPassphrase({ creating: true, flag: true, env: undefined, keyPath: "k", ask: t.ask });
    expect(plan.ok && plan.plan.newPassphrase).toBe("s3cret");
    expect(t.asked).toEqual(["New passphrase for k: ", "Repeat it: "]);
    const differ = await planPassphrase({ creating: true, flag: true, env: undefined, keyPath: "k", ask: terminal(["a", "b"]).ask });
    expect(differ).toEqual({ ok: false, error: "the two passphrases differ; nothing was created" });
    const none = terminal([]);
    const plain = await planPassphrase({ creating: true, flag: false, env: undefined, keyPath: "k", ask: none.ask });
    expect(plain.ok && plain.plan.newPassphrase).toBeUndefined();
    expect(none.asked).toEqual([]);
  });
});

describe("a tampered key file", () => {
  it("demanding 16 GiB of scrypt memory is refused with a sentence before the passphrase is asked", async () => {
    const alice = await fixtureIdentity("alice");
    const text = await encodeKeyFile(alice, { passphrase: "correct horse" });
    const b64 = text.split("\n").filter((l) => /^[A-Za-z0-9+/=]+$/.test(l)).join("");
    const blob = Buffer.from(b64, "base64");
    blob.writeUInt8(22, 4);
    blob.writeUInt32BE(32, 5);
    const tampered = text.replace(/-----BEGIN SECURECHAT ENCRYPTED KEYS-----[\s\S]*-----END SECURECHAT ENCRYPTED KEYS-----/,
      `-----BEGIN SECURECHAT ENCRYPTED KEYS-----\n${blob.toString("base64")}\n-----END SECURECHAT ENCRYPTED KEYS-----`);
    const path = join(dir, "alice_key.pem");
    writeFileSync(path, tampered, { mode: 0o600 });
    let asked = false;
    const load = loadOrCreateIdentity({ keyDir: dir, username: "alice", getPassphrase: async () => { asked = true; return "correct horse"; } });
    await expect(load).rejects.toBeInstanceOf(KeyStoreError);
    await expect(load).rejects.toThrow(/asks scrypt for N = 2\^22, r = 32, p = 1 \(16384 MiB of memory\)/);
    expect(asked).toBe(false);
  });
});
