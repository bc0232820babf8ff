// The relay's zero-setup TLS (issue 9 §4): a self-signed certificate and key created 0600 in the
// data dir on first start, reused after (clients' pins stay valid), and clear refusals when the
// files are damaged, half missing, too open, or a symlink.
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { nullLogger } from "../../src/protocol/log.js";
import { startRelay } from "../../src/server/relay.js";
import { CERT_FILE, KEY_FILE, loadOrCreateTlsIdentity } from "../../src/server/tls-identity.js";
import { TestClient } from "../helpers/client-harness.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { TestRelay } from "../helpers/relay-harness.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "sc-tlsid-"));
  dirs.push(d);
  return d;
}

describe("the relay's own certificate", () => {
  it("is created 0600 on first start, served, and the same after a restart", async () => {
    const relay = await TestRelay.start();
    try {
      const first = relay.running.tls!;
      expect(first.created).toBe(true);
      for (const f of [CERT_FILE, KEY_FILE]) expect(statSync(join(relay.dataDir, f)).mode & 0o777).toBe(0o600);
      expect(relay.events("relay.start")[0]).toMatchObject({ tls: true, certSha256: first.fingerprint, certCreated: true });
      await relay.restart();
      expect(relay.running.tls!.fingerprint).toBe(first.fingerprint);
      expect(relay.running.tls!.created).toBe(false);
      expect((await relay.connect(await fixtureIdentity("alice"))).welcome.username).toBe("alice");
    } finally {
      await relay.cleanup();
    }
  });

  it("can also be checked as a CA (chat-tui --ca relay-cert.pem) on 127.0.0.1", async () => {
    const relay = await TestRelay.start();
    try {
      const c = await TestClient.start(await fixtureIdentity("alice"), relay.running.port, {
        transport: { kind: "ca", ca: readFileSync(join(relay.dataDir, CERT_FILE)) },
      });
      await c.close();
    } finally {
      await relay.cleanup();
    }
  });

  it("serves plaintext only when asked, and then binds nothing", async () => {
    const relay = await TestRelay.start({ plaintext: true });
    try {
      expect(relay.running.tls).toBeUndefined();
      expect(relay.events("relay.plaintext")).toHaveLength(1);
      expect(relay.transport.channelBinding.length).toBe(0);
      const alice = await fixtureIdentity("alice");
      expect((await relay.connect(alice)).welcome.username).toBe("alice");
    } finally {
      await relay.cleanup();
    }
  });

  it("refuses, in one sentence, a key without its certificate, loose permissions, a symlink, and a key that does not match", async () => {
    const dir = tempDir();
    loadOrCreateTlsIdentity(dir);
    const cert = join(dir, CERT_FILE);
    const key = join(dir, KEY_FILE);
    const certText = readFileSync(cert);
    unlinkSync(cert);
    expect(() => loadOrCreateTlsIdentity(dir)).toThrow(`${cert} is missing beside ${key}: restore it, or remove ${key} to create a new certificate`);
    writeFileSync(cert, certText, { mode: 0o600 });
    chmodSync(key, 0o644);
    expect(() => loadOrCreateTlsIdentity(dir)).toThrow(`run chmod 600 '${key}'`);
    chmodSync(key, 0o600);
    const elsewhere = join(tempDir(), "cert.pem");
    writeFileSync(elsewhere, certText, { mode: 0o600 });
    unlinkSync(cert);
    symlinkSync(elsewhere, cert);
    expect(() => loadOrCreateTlsIdentity(dir)).toThrow("it is a symbolic link");
    unlinkSync(cert);
    const other = tempDir();
    loadOrCreateTlsIdentity(other);
    writeFileSync(cert, readFileSync(join(other, CERT_FILE)), { mode: 0o600 });
    expect(() => loadOrCreateTlsIdentity(dir)).toThrow("the private key does not belong to the certificate");
    // startRelay says the same as a RelayStartError, and leaves nothing open.
    await expect(startRelay({ host: "127.0.0.1", port: 0, dataDir: dir, logger: nullLogger })).rejects.toThrow("does not belong");
  });
});
