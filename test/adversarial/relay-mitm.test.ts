// Issue 9 §4, PROTOCOL.md §9: nobody on the path can hijack a session on the default path.
// A man in the middle that terminates TLS with a certificate of its own (or speaks plaintext to
// the client, as an on-path injector without TLS) and relays frames to the real relay would,
// without the channel binding, get the victim's session accepted and then inject frames in the
// victim's name: an Ack that deletes the victim's queued MLS messages, a LeaveRoom. With the proof
// bound to the relay's certificate, the relay refuses the session before any of that. The
// victim is a protocol v2 client (TestClient), its DM and room real MLS groups.
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { KnownRelays } from "../../src/client/known-relays.js";
import type { RelayTransport } from "../../src/client/relay-transport.js";
import { FatalSessionError } from "../../src/client/session-end.js";
import { sessionEndText } from "../../src/tui/commands/error-text.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { certificateFingerprint, selfSignedCertificate } from "../../src/protocol/x509.js";
import { TestClient } from "../helpers/client-harness.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { startMitmProxy, type MitmProxy } from "../helpers/mitm-proxy.js";
import { liveGroup, type LiveGroup } from "../helpers/mls-raw-groups.js";
import { sendMlsAccepted, takeMls } from "../helpers/mls-queues.js";
import { TestRelay } from "../helpers/relay-harness.js";

const FIXTURES = join(import.meta.dirname, "..", "fixtures", "tls");
const MITM_TLS = { cert: readFileSync(join(FIXTURES, "relay-cert.pem")), key: readFileSync(join(FIXTURES, "relay-key.pem")) };

let alice: PrivateIdentity;
let bob: PrivateIdentity;
const cleanups: Array<() => Promise<void> | void> = [];

beforeAll(async () => {
  [alice, bob] = await Promise.all([fixtureIdentity("alice"), fixtureIdentity("bob")]);
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "sc-mitm-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

interface Scene {
  readonly relay: TestRelay;
  readonly ops: LiveGroup;
  readonly dm: LiveGroup;
}

/** alice is in #ops (its MLS group, with bob) and away; bob left a DM (an MLS message of their group) queued for her. */
async function sceneWithQueuedDm(): Promise<Scene> {
  const relay = await TestRelay.start();
  cleanups.push(() => relay.cleanup());
  const a = await relay.connect(alice);
  const b = await relay.connect(bob);
  const ops = await liveGroup(relay, a, [alice, bob], "#ops", { bob: b });
  const dm = await liveGroup(relay, b, [bob, alice], "dm:alice:bob", { alice: a });
  await relay.disconnect(a, "alice");
  await sendMlsAccepted(b, await dm.say("bob", "queued for alice"));
  await relay.disconnect(b, "bob");
  return { relay, ops, dm };
}

/** What the real relay still holds for alice: her queued DM, and her place in #ops (the relay takes her message to its members: bob, away). */
async function aliceLostNothing({ relay, ops, dm }: Scene): Promise<void> {
  const a = await relay.connect(alice);
  expect(a.welcome.queued).toBe(1);
  const [d] = await takeMls(a, 1);
  expect(d!.conversationId).toBe("dm:alice:bob");
  expect(await dm.read("alice", d!.mls.mls)).toEqual({ from: "bob", text: "queued for alice" });
  expect((await sendMlsAccepted(a, await ops.say("alice", "still in #ops"))).queuedFor).toEqual(["bob"]);
}

async function mitm(relay: TestRelay, serve: "plaintext" | "tls"): Promise<MitmProxy> {
  const proxy = await startMitmProxy({
    relayAddress: relay.address, relayTransport: relay.transport, serve: serve === "tls" ? MITM_TLS : "plaintext", room: "#ops",
  });
  cleanups.push(() => proxy.close());
  return proxy;
}

/** The sentence chat-tui shows for the refusal a start failed with (the client gives it as data). */
async function shownRefusal(start: Promise<unknown>): Promise<string> {
  const e = await start.then(() => undefined, (err: unknown) => err);
  if (!(e instanceof FatalSessionError)) throw new Error(`expected a session refused for good, got ${String(e)}`);
  return sessionEndText(e.end);
}

describe("a man in the middle between a client and the relay", () => {
  it("terminating TLS with its own certificate: the client (first contact, so it pins the proxy) is refused by the relay; nothing is injected", async () => {
    const scene = await sceneWithQueuedDm();
    const { relay } = scene;
    const proxy = await mitm(relay, "tls");
    // The default path: TLS, pinned on first use — here the attacker's certificate gets pinned.
    await expect(TestClient.start(alice, proxy.port, { dir: tempDir() }))
      .rejects.toThrow("the proof of possession does not verify for this relay's challenge and certificate");
    expect(proxy.upstreamEnds).toEqual(["the proof of possession does not verify for this relay's challenge and certificate"]);
    expect(proxy.fromRelay).toEqual(["challenge"]); // never a Welcome, never a delivery
    expect(proxy.injected).toEqual([]);
    await aliceLostNothing(scene);
  });

  it("speaking plaintext to a client that asked for it: the relay (on TLS) refuses the proof; the queue and rooms are intact", async () => {
    const scene = await sceneWithQueuedDm();
    const proxy = await mitm(scene.relay, "plaintext");
    const plaintext: RelayTransport = { kind: "plaintext" };
    await expect(TestClient.start(alice, proxy.port, { dir: tempDir(), transport: plaintext }))
      .rejects.toThrow("the proof of possession does not verify for this relay's challenge and certificate");
    expect(proxy.fromRelay).toEqual(["challenge"]);
    expect(proxy.injected).toEqual([]);
    await aliceLostNothing(scene);
  });

  it("a client that pinned the relay refuses the proxy's certificate before any frame, with the sentence that says how to accept a real change", async () => {
    const scene = await sceneWithQueuedDm();
    const { relay } = scene;
    const proxy = await mitm(relay, "tls");
    const dir = tempDir();
    const pins = await KnownRelays.open(join(dir, "alice_known_relays.json"));
    // alice pinned the real relay at this address earlier; now the attacker answers there.
    await pins.pin(`127.0.0.1:${proxy.port}`, relay.running.tls!.certDer);
    const attackerSha = certificateFingerprint(Buffer.from(MITM_TLS.cert.toString().replace(/-----[^-]+-----|\s/g, ""), "base64"));
    const refused = TestClient.start(alice, proxy.port, { dir, transport: { kind: "pinned", pins } });
    await expect(refused).rejects.toThrow(`presented a certificate (SHA-256 ${attackerSha}) other than the one pinned`);
    await expect(refused).rejects.toMatchObject({ end: { kind: "certificate-changed", presentedSha256: attackerSha } });
    expect(await shownRefusal(refused)).toContain(`accept it with --accept-relay-cert ${attackerSha}`);
    expect(proxy.fromRelay).toEqual([]); // the gRPC stream was never opened
    expect(pins.get(`127.0.0.1:${proxy.port}`)!.sha256).toBe(relay.running.tls!.fingerprint); // the pin stands
    await aliceLostNothing(scene);
  });
});

describe("known_relays (trust on first use of the relay's certificate)", () => {
  it("pins on first use (0600), connects again on the pin, refuses another certificate, and accepts it only with its exact SHA-256", async () => {
    const relay = await TestRelay.start();
    cleanups.push(() => relay.cleanup());
    const dir = tempDir();
    const file = join(dir, "alice_known_relays.json");
    const first = await TestClient.start(alice, relay.running.port, { dir });
    await first.close();
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect((await KnownRelays.open(file)).get(relay.address)!.sha256).toBe(relay.running.tls!.fingerprint);
    const again = await TestClient.start(alice, relay.running.port, { dir });
    await again.close();

    // The pin names another certificate (say the operator regenerated it): refused.
    const other = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const otherCert = selfSignedCertificate({ ...other, commonName: "secure-chat-relay", notBefore: new Date() });
    await (await KnownRelays.open(file)).pin(relay.address, otherCert);
    expect(await shownRefusal(TestClient.start(alice, relay.running.port, { dir }))).toContain(`--accept-relay-cert ${relay.running.tls!.fingerprint}`);
    // Accepting some other fingerprint than the one shown is refused too.
    const wrong = { kind: "pinned" as const, pins: await KnownRelays.open(file), acceptSha256: "ab".repeat(32) };
    await expect(TestClient.start(alice, relay.running.port, { dir, transport: wrong })).rejects.toThrow("presented a certificate");
    // The exact fingerprint (as chat-relay fingerprint prints it): connects, and re-pins.
    const accept = { kind: "pinned" as const, pins: await KnownRelays.open(file), acceptSha256: relay.running.tls!.fingerprint };
    const accepted = await TestClient.start(alice, relay.running.port, { dir, transport: accept });
    await accepted.close();
    expect((await KnownRelays.open(file)).get(relay.address)!.sha256).toBe(relay.running.tls!.fingerprint);
  });

  it("pins a relay whose certificate a CA issued (not self-signed) just the same", async () => {
    const relay = await TestRelay.start({ tls: { cert: readFileSync(join(FIXTURES, "ca-issued-chain.pem")), key: readFileSync(join(FIXTURES, "ca-issued-key.pem")) } });
    cleanups.push(() => relay.cleanup());
    const dir = tempDir();
    for (let i = 0; i < 2; i++) await (await TestClient.start(alice, relay.running.port, { dir })).close(); // pin, then on the pin
    expect((await KnownRelays.open(join(dir, "alice_known_relays.json"))).get(relay.address)!.sha256).toBe(relay.running.tls!.fingerprint);
  });

  it("a default client facing a plaintext relay says so instead of connecting in the clear", async () => {
    const relay = await TestRelay.start({ plaintext: true });
    cleanups.push(() => relay.cleanup());
    expect(await shownRefusal(TestClient.start(alice, relay.running.port, { dir: tempDir() })))
      .toContain(`${relay.address} does not speak TLS: if it is a relay started with --insecure-plaintext, start chat-tui with --insecure-plaintext too`);
  });

  it("refuses a known_relays file others can read, and one whose hash was edited", async () => {
    const dir = tempDir();
    const file = join(dir, "alice_known_relays.json");
    const kp = generateKeyPairSync("ec", { namedCurve: "P-256" });
    await (await KnownRelays.open(file)).pin("relay.example.org:50051", selfSignedCertificate({ ...kp, commonName: "x", notBefore: new Date() }));
    const { chmodSync, writeFileSync } = await import("node:fs");
    chmodSync(file, 0o644);
    await expect(KnownRelays.open(file)).rejects.toThrow("chmod 600");
    chmodSync(file, 0o600);
    const text = readFileSync(file, "utf8").replace(/"sha256": "[0-9a-f]{64}"/, `"sha256": "${"00".repeat(32)}"`);
    writeFileSync(file, text);
    await expect(KnownRelays.open(file)).rejects.toThrow("does not match its SHA-256");
  });
});
