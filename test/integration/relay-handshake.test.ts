// The session handshake against a real relay (PROTOCOL.md §9): frame order, username policy,
// key strength and binding, proof of possession, durable first-key-wins binding, replacement,
// the handshake deadline and the session cap.
import { createPublicKey, randomBytes, sign, type KeyObject } from "node:crypto";
import { status as GrpcStatus } from "@grpc/grpc-js";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode, SendStatus } from "../../src/gen/securechat/v1/chat.js";
import { keyTag, proofBytes, signProof, type PrivateIdentity } from "../../src/protocol/keys.js";
import { fixtureIdentity, fixtureKeys } from "../helpers/identities.js";
import { MlsTalk } from "../helpers/mls-talk.js";
import { handMadeHello, seal, type EndStatus, type RawSession } from "../helpers/raw-session.js";
import { TestRelay } from "../helpers/relay-harness.js";

let alice: PrivateIdentity;
let bob: PrivateIdentity;
let carol: PrivateIdentity;
let malloryAsAlice: PrivateIdentity;
let relay: TestRelay;

beforeAll(async () => {
  [alice, bob, carol, malloryAsAlice] = await Promise.all([
    fixtureIdentity("alice"), fixtureIdentity("bob"), fixtureIdentity("carol"), fixtureIdentity("mallory", "alice"),
  ]);
});

afterEach(async () => {
  await relay?.cleanup();
});

function expectEnd(s: EndStatus, code: GrpcStatus, details: RegExp, errorCode?: string): void {
  expect({ code: GrpcStatus[s.code], details: s.details }).toEqual({ code: GrpcStatus[code], details: expect.stringMatching(details) });
  if (errorCode !== undefined) expect(s.errorCode).toBe(errorCode);
}

/** The handshake up to the proof, with a proof of the caller's making. */
async function proveWith(s: RawSession, id: PrivateIdentity, makeProof: (relayId: Buffer, nonce: Buffer) => Buffer): Promise<void> {
  s.hello(id);
  const ch = await s.next("challenge");
  s.write({ $case: "proof", value: { signature: makeProof(ch.relayId, ch.nonce) } });
}

describe("relay handshake", () => {
  it("refuses a second key for a bound name with ALREADY_EXISTS, also after a restart", async () => {
    relay = await TestRelay.start();
    const first = await relay.connect(alice);
    const relayId = relay.running.relayId;

    const thief = relay.open();
    await thief.handshake(malloryAsAlice).catch(() => undefined);
    expectEnd(await thief.status(), GrpcStatus.ALREADY_EXISTS, /^username 'alice' is taken by another key$/, "ERROR_CODE_USERNAME_TAKEN");
    expect(relay.events("handshake.refused").at(-1)).toMatchObject({ user: "alice", reason: "ERROR_CODE_USERNAME_TAKEN" });
    // The owner's session was not disturbed.
    await first.barrier();

    await relay.restart();
    expect(relay.running.relayId.equals(relayId)).toBe(true);
    const again = relay.open();
    await again.handshake(malloryAsAlice).catch(() => undefined);
    expectEnd(await again.status(), GrpcStatus.ALREADY_EXISTS, /taken by another key/);
    const owner = await relay.connect(alice);
    expect(owner.welcome.username).toBe("alice");
    expect(owner.welcome.directory.map((e) => e.username)).toEqual(["alice"]);
    // Light entries: the key tag of the bound keys, the keys themselves only on request.
    expect(owner.welcome.directory[0]!.keyTag.equals(keyTag(alice.sigFpr, alice.encFpr))).toBe(true);
    expect(owner.welcome.directory[0]!.sigSpki.length).toBe(0);
    const [keys] = await owner.lookupKeys(["alice"]);
    expect(keys!.sigSpki.equals(alice.sigSpki)).toBe(true);
  });

  it("ends the stream with INVALID_ARGUMENT on frames out of order", async () => {
    relay = await TestRelay.start();
    const cases: Array<[string, (s: RawSession) => Promise<void>, RegExp]> = [
      ["a send before Hello", async (s) => s.write({ $case: "send", value: { envelope: undefined } }), /first frame of a session must be Hello/],
      ["a Proof first", async (s) => s.write({ $case: "proof", value: { signature: randomBytes(64) } }), /first frame of a session must be Hello/],
      ["Hello twice", async (s) => {
        s.hello(alice);
        await s.next("challenge");
        s.hello(alice);
      }, /second frame of a session must be Proof/],
      ["an Ack instead of the Proof", async (s) => {
        s.hello(alice);
        await s.next("challenge");
        s.ack([1]);
      }, /second frame of a session must be Proof/],
      ["Hello after the Welcome", async (s) => {
        await s.handshake(alice);
        s.hello(alice);
      }, /Hello is only valid at the start of a session/],
      ["Proof after the Welcome", async (s) => {
        await s.handshake(bob);
        s.write({ $case: "proof", value: { signature: randomBytes(64) } });
      }, /Proof is only valid at the start of a session/],
      ["a half-close before the Proof", async (s) => {
        s.hello(alice);
        await s.next("challenge");
        s.end();
      }, /closed its side of the stream before the handshake completed/],
    ];
    for (const [what, act, details] of cases) {
      const s = relay.open();
      await act(s);
      const end = await s.status();
      expect({ what, code: GrpcStatus[end.code], details: end.details })
        .toEqual({ what, code: "INVALID_ARGUMENT", details: expect.stringMatching(details) });
      expect(end.errorCode).toBe("ERROR_CODE_BAD_FRAME");
    }
  });

  it("refuses a bad proof with UNAUTHENTICATED", async () => {
    relay = await TestRelay.start();
    const binding = relay.transport.channelBinding;
    const proofs: Array<[string, (relayId: Buffer, nonce: Buffer) => Buffer]> = [
      ["random bytes", () => randomBytes(64)],
      ["a proof for another relay", (_r, nonce) => signProof(alice, randomBytes(16), nonce, binding)],
      ["a proof for another challenge", (relayId) => signProof(alice, relayId, randomBytes(32), binding)],
      ["bob's key signing alice's challenge", (relayId, nonce) => signProof(bob, relayId, nonce, binding)],
      ["a truncated signature", (relayId, nonce) => signProof(alice, relayId, nonce, binding).subarray(0, 63)],
      // PROTOCOL.md §9: the proof binds the certificate the client saw; a man in the middle's
      // certificate, or a plaintext path, gives another binding.
      ["a proof over another certificate", (relayId, nonce) => signProof(alice, relayId, nonce, randomBytes(32))],
      ["a proof over plaintext", (relayId, nonce) => signProof(alice, relayId, nonce, Buffer.alloc(0))],
    ];
    for (const [what, makeProof] of proofs) {
      const s = relay.open();
      await proveWith(s, alice, makeProof);
      const end = await s.status();
      expect({ what, code: GrpcStatus[end.code], details: end.details })
        .toEqual({ what, code: "UNAUTHENTICATED", details: "the proof of possession does not verify for this relay's challenge and certificate" });
      expect(end.errorCode).toBe("ERROR_CODE_PROOF_INVALID");
    }
    // Nothing was bound by the failed attempts: alice can still claim her name.
    expect((await relay.connect(alice)).welcome.username).toBe("alice");
  });

  it("refuses weak or wrong keys with INVALID_ARGUMENT and a broken key binding with UNAUTHENTICATED", async () => {
    relay = await TestRelay.start();
    const [weakSig, weakRsa] = fixtureKeys("weak");
    const [e3Rsa] = fixtureKeys("rsa-e3");
    const spki = (k: Parameters<typeof createPublicKey>[0]) => createPublicKey(k).export({ format: "der", type: "spki" });
    // The last element: the private signing key that signs the proof. PROTOCOL.md §9: the RSA key
    // and the key binding are looked at only once the proof verified, so those cases prove
    // first; a signing key that is not Ed25519 is refused at the Hello (no challenge).
    const cases: Array<[string, ReturnType<typeof handMadeHello>, GrpcStatus, RegExp, string, KeyObject | undefined]> = [
      ["RSA-1024", handMadeHello("weakling", weakSig!, spki(weakSig!), spki(weakRsa!)), GrpcStatus.INVALID_ARGUMENT, /1024 bits is too weak/, "ERROR_CODE_BAD_KEY", weakSig],
      ["RSA with e = 3", handMadeHello("exponent", weakSig!, spki(weakSig!), spki(e3Rsa!)), GrpcStatus.INVALID_ARGUMENT, /exponent must be 65537/, "ERROR_CODE_BAD_KEY", weakSig],
      ["an RSA key as the signing key", handMadeHello("swapped", weakSig!, spki(weakRsa!), spki(weakRsa!)), GrpcStatus.INVALID_ARGUMENT, /signing key must be Ed25519/, "ERROR_CODE_BAD_KEY", undefined],
      ["garbage SPKI", { ...handMadeHello("garbage", weakSig!, spki(weakSig!), spki(weakRsa!)), encSpki: randomBytes(300) }, GrpcStatus.INVALID_ARGUMENT, /not a valid SubjectPublicKeyInfo/, "ERROR_CODE_BAD_KEY", weakSig],
      // alice's signing key never vouched for bob's encryption key.
      ["a key binding that does not verify", { ...handMadeHello("alice", alice.sigPrivate, alice.sigSpki, alice.encSpki), encSpki: bob.encSpki },
        GrpcStatus.UNAUTHENTICATED, /does not vouch for this encryption key/, "ERROR_CODE_PROOF_INVALID", alice.sigPrivate],
    ];
    for (const [what, hello, code, details, errorCode, prover] of cases) {
      const s = relay.open();
      s.hello(hello);
      if (prover !== undefined) {
        const ch = await s.next("challenge");
        const bytes = proofBytes({ relayId: ch.relayId, nonce: ch.nonce, username: hello.username, sigSpki: hello.sigSpki, encSpki: hello.encSpki, channelBinding: s.channelBinding });
        s.write({ $case: "proof", value: { signature: sign(null, bytes, prover) } });
      }
      const end = await s.status();
      expect({ what, code: GrpcStatus[end.code], details: end.details, errorCode: end.errorCode })
        .toEqual({ what, code: GrpcStatus[code], details: expect.stringMatching(details), errorCode });
      if (prover === undefined) expect(s.has("challenge")).toBe(false);
    }
    // Nothing was bound by the refused keys: alice can still claim her name.
    expect((await relay.connect(alice)).welcome.username).toBe("alice");
  });

  it("refuses reserved, malformed and path-traversal usernames before looking at keys", async () => {
    relay = await TestRelay.start();
    const names: Array<[string, RegExp]> = [
      ["admin", /'admin' is reserved/],
      ["system", /'system' is reserved/],
      ["../alice", /must start with a lower-case letter/],
      ["alice/../../etc", /must start with a lower-case letter|only a-z/],
      ["Alice", /must start with a lower-case letter/],
      ["", /username is empty/],
      ["a".repeat(33), /longer than 32/],
      ["аlice", /must start with a lower-case letter/], // Cyrillic а
    ];
    for (const [username, details] of names) {
      const s = relay.open();
      s.hello(alice, { username });
      const end = await s.status();
      expect({ username, code: GrpcStatus[end.code], details: end.details })
        .toEqual({ username, code: "INVALID_ARGUMENT", details: expect.stringMatching(details) });
      expect(end.errorCode).toBe("ERROR_CODE_USERNAME_INVALID");
    }
  });

  it("refuses a protocol version other than 2, telling a v1 client to upgrade in one sentence (PROTOCOL.md §14)", async () => {
    relay = await TestRelay.start();
    const s = relay.open();
    s.hello(alice, { protocolVersion: 3 });
    expectEnd(await s.status(), GrpcStatus.INVALID_ARGUMENT, /^protocol version 3 is not supported: this relay speaks version 2$/, "ERROR_CODE_BAD_FRAME");
    const v1 = relay.open();
    v1.hello(alice, { protocolVersion: 1 });
    expectEnd(await v1.status(), GrpcStatus.INVALID_ARGUMENT,
      /^this relay speaks secure-chat protocol v2: upgrade your client \(npm install -g secure-chat@2\)$/, "ERROR_CODE_BAD_FRAME");
    expect(v1.has("challenge")).toBe(false);
    // Nothing was bound by the refused Hellos: alice can still claim her name, in v2.
    expect((await relay.connect(alice)).welcome.username).toBe("alice");
  });

  it("a relay told to accept versions 1 and 2 (protocolVersions) refuses 3 naming both, and greets a v1 Hello", async () => {
    relay = await TestRelay.start({ protocolVersions: [1, 2] });
    const s = relay.open();
    s.hello(alice, { protocolVersion: 3 });
    expectEnd(await s.status(), GrpcStatus.INVALID_ARGUMENT, /^protocol version 3 is not supported: this relay speaks versions 1 and 2$/, "ERROR_CODE_BAD_FRAME");
    const v1 = relay.open();
    expect((await v1.handshake(alice, undefined, { protocolVersion: 1 })).username).toBe("alice");
    expect(relay.events("session.open").at(-1)).toMatchObject({ user: "alice", protocol: 1 });
    // Even there, protocol v1's send is gone (issue 12): a SendEnvelope is refused with one
    // sentence and nothing is stored; the session goes on.
    const b = await relay.connect(bob);
    const r = await v1.send(seal(alice, "dm:alice:bob", [bob], "a v1 envelope"));
    expect({ status: r.status, code: r.code, detail: r.detail }).toEqual({
      status: SendStatus.SEND_STATUS_REFUSED, code: ErrorCode.ERROR_CODE_BAD_FRAME,
      detail: "this session speaks protocol v2: send MLS messages with SendMls; SendEnvelope is protocol v1",
    });
    await v1.barrier();
    await b.barrier();
    expect(b.has("deliver")).toBe(false);
    expect(relay.events("send.accepted")).toEqual([]);
  });

  it("ends a handshake that does not complete in time with DEADLINE_EXCEEDED", async () => {
    relay = await TestRelay.start({ handshakeTimeoutMs: 300 });
    const silent = relay.open();
    const stalled = relay.open();
    stalled.hello(alice);
    await stalled.next("challenge");
    expectEnd(await silent.status(), GrpcStatus.DEADLINE_EXCEEDED, /handshake not completed within 0.3 seconds/);
    expectEnd(await stalled.status(), GrpcStatus.DEADLINE_EXCEEDED, /handshake not completed/);
    expect(relay.events("handshake.refused").map((l) => l.reason)).toEqual(["handshake-timeout", "handshake-timeout"]);
    // A prompt client is unaffected by the timer.
    expect((await relay.connect(bob)).welcome.username).toBe("bob");
  });

  it("replaces an older session of the same user: it is told so and ends with ABORTED; peers see no flicker", async () => {
    relay = await TestRelay.start();
    const b = await relay.connect(bob);
    const old = await relay.connect(alice);
    await b.nextPresence("alice", true);
    const dm = await MlsTalk.start(relay, old, [alice, bob], "dm:alice:bob", [b]);

    const fresh = await relay.connect(alice);
    const notice = await old.next("error");
    expect(notice.code).toBe(ErrorCode.ERROR_CODE_SESSION_REPLACED);
    expectEnd(await old.status(), GrpcStatus.ABORTED, /^replaced by a newer session$/, "ERROR_CODE_SESSION_REPLACED");
    expect(fresh.welcome.directory.find((e) => e.username === "alice")?.online).toBe(true);

    // The new session works, and bob never saw alice go offline.
    await dm.sendAccepted(fresh, "alice", "new device, same me");
    expect(await dm.receive(b, "bob", 1)).toEqual(["new device, same me"]);
    await b.barrier();
    expect(b.sawPresence("alice", false)).toBe(false);
    await relay.waitForLog("session.close", (l) => l.user === "alice" && l.reason === "replaced");
  });

  it("refuses streams beyond maxSessions with RESOURCE_EXHAUSTED, serves the others meanwhile, and admits again once one closes", async () => {
    relay = await TestRelay.start({ limits: { maxSessions: 2 } });
    const a = await relay.connect(alice);
    const b = await relay.connect(bob);
    const dm = await MlsTalk.start(relay, a, [alice, bob], "dm:alice:bob", [b]);
    // A third user is refused once it has proven its key (a stream in its handshake takes no
    // session slot: PROTOCOL.md §9); nothing of it is bound.
    const third = relay.open();
    await expect(third.handshake(carol)).rejects.toThrow(/relay is full/);
    expectEnd(await third.status(), GrpcStatus.RESOURCE_EXHAUSTED, /^relay is full: too many sessions, try again later$/, "ERROR_CODE_TOO_MANY_SESSIONS");
    // A user replacing its own session takes no new slot.
    const again = await relay.connect(bob);
    await b.next("error");
    // Alice's session never noticed.
    await dm.sendAccepted(a, "alice", "still two of us");
    expect(await dm.receive(again, "bob", 1)).toEqual(["still two of us"]);
    await relay.disconnect(a, "alice");
    expect((await relay.connect(carol)).welcome.username).toBe("carol");
  });
});
