// Pins across the relays of one server list (relay-transport.ts, cluster-design.md §3): a first
// contact that shows the certificate already pinned for another address of the list is that
// service's relay (pinned without a new first use, even when --accept-relay-cert names another
// certificate); a changed pin is refused as always, never re-pinned from a sibling.
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:tls";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KnownRelays } from "../../src/client/known-relays.js";
import { prepareChannel, RelayCertificateRefused } from "../../src/client/relay-transport.js";
import { loadOrCreateTlsIdentity, type RelayTlsIdentity } from "../../src/server/tls-identity.js";

let dir: string;
let shared: RelayTlsIdentity;
let other: RelayTlsIdentity;
let server: Server;
let address: string;

function identity(name: string): RelayTlsIdentity {
  const d = join(dir, name);
  mkdirSync(d, { mode: 0o700 });
  return loadOrCreateTlsIdentity(d);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "sc-failover-pins-"));
  shared = identity("shared");
  other = identity("other");
  // A TLS server showing the service's certificate (the probe only needs the handshake).
  server = createServer({ cert: shared.certPem, key: shared.keyPem, ALPNProtocols: ["h2"] }, (s) => s.end());
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const a = server.address();
  if (a === null || typeof a === "string") throw new Error("no port");
  address = `127.0.0.1:${a.port}`;
});
afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  rmSync(dir, { recursive: true, force: true });
});

describe("pins shared by the relays of one list", () => {
  it("a first contact showing a sibling's pinned certificate is pinned, even against --accept-relay-cert", async () => {
    const pins = KnownRelays.inMemory();
    await pins.pin("a.example:50051", shared.certDer);
    const transport = { kind: "pinned" as const, pins, acceptSha256: other.fingerprint };
    // Without the list's sibling this is a certificate the user did not accept.
    await expect(prepareChannel(transport, address)).rejects.toMatchObject({ end: { kind: "certificate-not-accepted" } });
    expect(pins.get(address)).toBeUndefined();
    await prepareChannel(transport, address, ["a.example:50051"]);
    expect(pins.get(address)?.sha256).toBe(shared.fingerprint);
  });

  it("an address whose own pin changed is refused, even when it shows a sibling's certificate", async () => {
    const pins = KnownRelays.inMemory();
    await pins.pin("a.example:50051", shared.certDer);
    await pins.pin(address, other.certDer);
    const transport = { kind: "pinned" as const, pins };
    // Connecting straight on the pin (it is not asked again), the changed certificate shows
    // in the refusal the session asks for when the connection fails.
    const channel = await prepareChannel(transport, address, ["a.example:50051"]);
    const refusal = await channel.refusal();
    expect(refusal).toMatchObject({ kind: "certificate-changed", address, pinnedSha256: other.fingerprint, presentedSha256: shared.fingerprint });
    expect(pins.get(address)?.sha256).toBe(other.fingerprint); // never re-pinned
    // With --accept-relay-cert for yet another certificate, the pin is checked first: refused too.
    const accepting = { kind: "pinned" as const, pins, acceptSha256: "0".repeat(64) };
    await expect(prepareChannel(accepting, address, ["a.example:50051"])).rejects.toBeInstanceOf(RelayCertificateRefused);
    expect(pins.get(address)?.sha256).toBe(other.fingerprint);
  });
});
