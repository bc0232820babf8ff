// The relay's admission (src/server/admission.ts) without gRPC: PROTOCOL.md §13's checks on one
// SendEnvelope, in the spec's order, with a real Directory of fixture users and a fake of what
// admission does not own (room membership, presence, queue usage: the store and the router).
import { beforeAll, describe, expect, it } from "vitest";
import { Envelope, ErrorCode } from "../../src/gen/securechat/v1/chat.js";
import { envelopeToWire } from "../../src/protocol/codec.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import {
  admitEnvelope, completeAdmission, precheckEnvelope, type Admission, type AdmissionContext, type Prechecked,
} from "../../src/server/admission.js";
import { Directory } from "../../src/server/directory.js";
import { Refusal } from "../../src/server/errors.js";
import { MAX_FUTURE_SKEW_MS, resolveLimits, type RelayLimits } from "../../src/server/limits.js";
import type { QueueUsage, RelayStore, UserRecord } from "../../src/server/store.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { seal } from "../helpers/raw-session.js";

const NOW = 1_767_225_600_000;

let alice: PrivateIdentity;
let bob: PrivateIdentity;
let carol: PrivateIdentity;
let dave: PrivateIdentity;
/** Mallory's keys under the name "alice": a sender that claims a name it does not own. */
let fakeAlice: PrivateIdentity;

beforeAll(async () => {
  [alice, bob, carol, dave, fakeAlice] = await Promise.all([
    fixtureIdentity("alice"), fixtureIdentity("bob"), fixtureIdentity("carol"), fixtureIdentity("dave"), fixtureIdentity("mallory", "alice"),
  ]);
});

function recordOf(id: PrivateIdentity): UserRecord {
  return { username: id.username, sigSpki: id.sigSpki, encSpki: id.encSpki, encKeySig: id.encKeySig, sigFpr: id.sigFpr, encFpr: id.encFpr, createdAtMs: 1 };
}

const EMPTY: QueueUsage = { count: 0, bytes: 0, senderCount: 0, senderBytes: 0 };

interface Setup {
  /** Bound users (default alice, bob, carol). */
  users?: readonly PrivateIdentity[];
  rooms?: Readonly<Record<string, readonly string[]>>;
  online?: readonly string[];
  inLobby?: readonly string[];
  resend?: boolean;
  usage?: Readonly<Record<string, QueueUsage>>;
  limits?: Partial<RelayLimits>;
  nowMs?: number;
}

/** Alice's session context: a real Directory, fakes for membership, presence and queues. */
function contextFor(s: Setup = {}): AdmissionContext {
  const directory = new Directory();
  for (const u of s.users ?? [alice, bob, carol]) directory.put(recordOf(u), u.sigKey);
  const rooms = s.rooms ?? {};
  const store = {
    isMember: (room: string, u: string) => rooms[room]?.includes(u) ?? false,
    roomMembers: (room: string) => [...(rooms[room] ?? [])],
  } as Partial<RelayStore> as RelayStore;
  return {
    user: directory.get("alice")!,
    directory,
    store,
    isOnline: (u) => (s.online ?? []).includes(u),
    inLobby: (u) => (s.inLobby ?? s.online ?? []).includes(u),
    isResend: () => s.resend ?? false,
    queueUsage: (u) => s.usage?.[u] ?? EMPTY,
    limits: resolveLimits(s.limits),
    nowMs: s.nowMs ?? NOW,
  };
}

function wireOf(sender: PrivateIdentity, conversationId: string, recipients: readonly PrivateIdentity[], text = "hi", sentAtMs = NOW): Envelope {
  return envelopeToWire(seal(sender, conversationId, recipients, text, { sentAtMs }));
}

/** The refusal `fn` throws: its code and sentence. */
function refusalOf(fn: () => unknown): Refusal {
  try {
    fn();
  } catch (e) {
    if (e instanceof Refusal) return e;
    throw e;
  }
  throw new Error("expected a Refusal, nothing was thrown");
}

function accepted(a: Admission): Extract<Admission, { kind: "accept" }> {
  if (a.kind !== "accept") throw new Error(`expected accept, got ${a.kind}`);
  return a;
}

describe("precheckEnvelope (shape, suite, sender)", () => {
  it("refuses a missing envelope as malformed", () => {
    const r = refusalOf(() => precheckEnvelope(undefined, contextFor()));
    expect(r.code).toBe(ErrorCode.ERROR_CODE_BAD_ENVELOPE);
    expect(r.message).toMatch(/missing/);
  });

  it("reports too many recipients as such, before any other shape error", () => {
    const w = wireOf(alice, "#ops", [alice, bob, carol]);
    const r = refusalOf(() => precheckEnvelope({ ...w, ciphertext: Buffer.alloc(1) }, contextFor({ limits: { maxRecipients: 2 } })));
    expect(r.code).toBe(ErrorCode.ERROR_CODE_TOO_MANY_RECIPIENTS);
    expect(r.message).toContain("3 recipients, more than this relay's limit of 2");
    // At the limit it passes.
    expect(precheckEnvelope(w, contextFor({ limits: { maxRecipients: 3 } })).conversation.id).toBe("#ops");
  });

  it("names the text limit, not the padded size, for a body too large", () => {
    const w = wireOf(alice, "dm:alice:bob", [alice, bob], "x".repeat(2000));
    const r = refusalOf(() => precheckEnvelope(w, contextFor({ limits: { maxTextBytes: 1000 } })));
    expect(r.code).toBe(ErrorCode.ERROR_CODE_TEXT_TOO_LARGE);
    expect(r.message).toContain("at most 1000 bytes of text");
  });

  it("refuses another suite (no negotiation, no downgrade)", () => {
    const w = wireOf(alice, "dm:alice:bob", [alice, bob]);
    const r = refusalOf(() => precheckEnvelope({ ...w, header: { ...w.header!, suite: "securechat/v0/none" } }, contextFor()));
    expect(r.code).toBe(ErrorCode.ERROR_CODE_BAD_ENVELOPE);
    expect(r.message).toBe("unsupported suite 'securechat/v0/none'");
  });

  it("refuses an envelope from another sender than the session's user", () => {
    const r = refusalOf(() => precheckEnvelope(wireOf(bob, "dm:alice:bob", [alice, bob]), contextFor()));
    expect(r.code).toBe(ErrorCode.ERROR_CODE_FORGED_SENDER);
    expect(r.message).toContain("claims sender 'bob' but this session is 'alice'");
  });

  it("refuses the session's name with a signing key that is not the bound one", () => {
    const r = refusalOf(() => precheckEnvelope(wireOf(fakeAlice, "dm:alice:bob", [fakeAlice, bob]), contextFor()));
    expect(r.code).toBe(ErrorCode.ERROR_CODE_FORGED_SENDER);
    expect(r.message).toContain("not the one bound to 'alice'");
  });
});

describe("admitEnvelope (the signature)", () => {
  it("accepts a well-signed envelope and refuses one whose bytes changed after signing", () => {
    const w = wireOf(alice, "dm:alice:bob", [alice, bob]);
    expect(admitEnvelope(w, contextFor()).kind).toBe("accept");
    const tampered = Buffer.from(w.ciphertext);
    tampered[0]! ^= 1;
    const r = refusalOf(() => admitEnvelope({ ...w, ciphertext: tampered }, contextFor()));
    expect(r.code).toBe(ErrorCode.ERROR_CODE_BAD_ENVELOPE);
    expect(r.message).toBe("the envelope's signature does not verify");
  });
});

describe("completeAdmission", () => {
  const pre = (w: Envelope, ctx: AdmissionContext): Prechecked => precheckEnvelope(w, ctx);

  it("answers a resend as a duplicate before the clock, recipient and queue checks", () => {
    const full: QueueUsage = { count: 1e9, bytes: 1e12, senderCount: 1e9, senderBytes: 1e12 };
    const ctx = contextFor({ resend: true, users: [alice], usage: { bob: full }, nowMs: NOW + 365 * 86_400_000 });
    const a = completeAdmission(pre(wireOf(alice, "dm:alice:bob", [alice, bob]), contextFor()), ctx);
    expect(a.kind).toBe("duplicate");
  });

  it("refuses a date beyond the allowed skew ahead of the relay's clock, and takes one at the skew", () => {
    const ctx = contextFor();
    const ahead = wireOf(alice, "dm:alice:bob", [alice, bob], "hi", NOW + MAX_FUTURE_SKEW_MS + 1);
    const r = refusalOf(() => completeAdmission(pre(ahead, ctx), ctx));
    expect(r.code).toBe(ErrorCode.ERROR_CODE_BAD_TIMESTAMP);
    expect(r.message).toContain("ahead of the relay's clock (at most 10 minutes are allowed)");
    const atSkew = wireOf(alice, "dm:alice:bob", [alice, bob], "hi", NOW + MAX_FUTURE_SKEW_MS);
    expect(completeAdmission(pre(atSkew, ctx), ctx).kind).toBe("accept");
  });

  it("refuses a date older than the retention, and takes one exactly as old", () => {
    const ctx = contextFor({ limits: { retentionMs: 3 * 3_600_000 } });
    const old = wireOf(alice, "dm:alice:bob", [alice, bob], "hi", NOW - 3 * 3_600_000 - 1);
    const r = refusalOf(() => completeAdmission(pre(old, ctx), ctx));
    expect(r.code).toBe(ErrorCode.ERROR_CODE_BAD_TIMESTAMP);
    expect(r.message).toContain("older than the 3 hours this relay keeps messages");
    const edge = wireOf(alice, "dm:alice:bob", [alice, bob], "hi", NOW - 3 * 3_600_000);
    expect(completeAdmission(pre(edge, ctx), ctx).kind).toBe("accept");
  });

  it("refuses a recipient nobody bound", () => {
    const ctx = contextFor({ users: [alice, bob] });
    const r = refusalOf(() => completeAdmission(pre(wireOf(alice, "#ops", [alice, bob, carol]), ctx), ctx));
    expect(r.code).toBe(ErrorCode.ERROR_CODE_UNKNOWN_RECIPIENT);
    expect(r.message).toBe("no user 'carol' is known to this relay");
  });

  it("refuses a recipient sealed to under a key the name no longer has", async () => {
    // "bob" is bound to Dave's keys here; the envelope was sealed to Bob's.
    const ctx = contextFor({ users: [alice, await fixtureIdentity("dave", "bob")] });
    const r = refusalOf(() => completeAdmission(pre(wireOf(alice, "dm:alice:bob", [alice, bob]), ctx), ctx));
    expect(r.code).toBe(ErrorCode.ERROR_CODE_STALE_RECIPIENT_KEY);
    expect(r.message).toContain("'bob' no longer has");
  });

  it("refuses a key wrap that is not exactly the recipient's modulus length", () => {
    const ctx = contextFor();
    const p = pre(wireOf(alice, "dm:alice:bob", [alice, bob]), ctx);
    const wraps = p.envelope.wraps.map((w, i) => (i === 1 ? { ...w, wrappedKey: Buffer.concat([w.wrappedKey, Buffer.alloc(128)]) } : w));
    const r = refusalOf(() => completeAdmission({ ...p, envelope: { ...p.envelope, wraps } }, ctx));
    expect(r.code).toBe(ErrorCode.ERROR_CODE_BAD_ENVELOPE);
    expect(r.message).toContain("is 512 bytes, but an RSA-OAEP wrap for their 3072-bit key is exactly 384 bytes");
  });

  it("stores a DM for the peer only, queued when the peer is offline", () => {
    const ctx = contextFor();
    const w = wireOf(alice, "dm:alice:bob", [alice, bob]);
    const a = accepted(completeAdmission(pre(w, ctx), ctx));
    expect(a.rows).toEqual(["bob"]);
    expect(a.queuedFor).toEqual(["bob"]);
    expect(a.conversation.kind).toBe("dm");
    expect(Buffer.from(a.bytes).equals(Buffer.from(Envelope.encode(w).finish()))).toBe(true);
    const online = contextFor({ online: ["bob"] });
    expect(accepted(completeAdmission(pre(w, online), online)).queuedFor).toEqual([]);
  });

  it("refuses a room message from a non-member, or naming a non-member", () => {
    const notMine = contextFor({ rooms: { "#ops": ["bob", "carol"] } });
    let r = refusalOf(() => completeAdmission(pre(wireOf(alice, "#ops", [alice, bob]), notMine), notMine));
    expect(r.code).toBe(ErrorCode.ERROR_CODE_NOT_A_MEMBER);
    expect(r.message).toBe("you are not a member of #ops");

    const stranger = contextFor({ rooms: { "#ops": ["alice", "bob"] } });
    r = refusalOf(() => completeAdmission(pre(wireOf(alice, "#ops", [alice, bob, carol]), stranger), stranger));
    expect(r.code).toBe(ErrorCode.ERROR_CODE_BAD_RECIPIENTS);
    expect(r.message).toContain("'carol' is not a member of #ops");
  });

  it("lets a sender leave a member out of a room message (a key change waiting for a decision)", () => {
    const ctx = contextFor({ rooms: { "#ops": ["alice", "bob", "carol"] }, online: ["carol"] });
    const a = accepted(completeAdmission(pre(wireOf(alice, "#ops", [alice, bob]), ctx), ctx));
    expect(a.rows).toEqual(["bob"]);
    const all = accepted(completeAdmission(pre(wireOf(alice, "#ops", [alice, bob, carol]), ctx), ctx));
    expect(all.rows).toEqual(["bob", "carol"]);
    expect(all.queuedFor).toEqual(["bob"]);
  });

  it("stores a lobby message only for those in the lobby, skipping (not refusing) the others", () => {
    const ctx = contextFor({ inLobby: ["carol"], online: ["carol"] });
    const a = accepted(completeAdmission(pre(wireOf(alice, "lobby", [alice, bob, carol]), ctx), ctx));
    expect(a.rows).toEqual(["carol"]);
    expect(a.queuedFor).toEqual([]);
    // Seen within the grace period but not online now: stored, and queued.
    const grace = contextFor({ inLobby: ["bob"], online: [] });
    const g = accepted(completeAdmission(pre(wireOf(alice, "lobby", [alice, bob, carol]), grace), grace));
    expect(g.rows).toEqual(["bob"]);
    expect(g.queuedFor).toEqual(["bob"]);
  });

  describe("queue caps", () => {
    const limits: Partial<RelayLimits> = { maxQueuePerSender: 5, maxQueueBytesPerSender: 100_000, maxQueuePerUser: 50, maxQueueBytesPerUser: 1_000_000 };
    const attempt = (usage: QueueUsage) => {
      const ctx = contextFor({ limits, usage: { bob: usage } });
      return () => completeAdmission(pre(wireOf(alice, "dm:alice:bob", [alice, bob]), ctx), ctx);
    };

    it("refuses at the sender's share by count and by bytes, and takes one below it", () => {
      expect(attempt({ count: 4, bytes: 0, senderCount: 4, senderBytes: 0 })().kind).toBe("accept");
      let r = refusalOf(attempt({ count: 5, bytes: 0, senderCount: 5, senderBytes: 0 }));
      expect(r.code).toBe(ErrorCode.ERROR_CODE_QUEUE_FULL);
      expect(r.message).toContain("you already have 5 messages (0 bytes) waiting for 'bob'");
      r = refusalOf(attempt({ count: 1, bytes: 99_999, senderCount: 1, senderBytes: 99_999 }));
      expect(r.message).toContain("you already have 1 messages (98 KiB) waiting for 'bob'");
    });

    it("refuses at the whole queue's count and bytes", () => {
      let r = refusalOf(attempt({ count: 50, bytes: 0, senderCount: 0, senderBytes: 0 }));
      expect(r.code).toBe(ErrorCode.ERROR_CODE_QUEUE_FULL);
      expect(r.message).toContain("the queue for 'bob' is full (50 messages wait");
      r = refusalOf(attempt({ count: 1, bytes: 999_999, senderCount: 0, senderBytes: 0 }));
      expect(r.message).toContain("the queue for 'bob' is full (977 KiB wait for delivery");
      expect(attempt({ count: 49, bytes: 0, senderCount: 0, senderBytes: 0 })().kind).toBe("accept");
    });

    it("tells a flooder about its own share first when both are full", () => {
      const r = refusalOf(attempt({ count: 50, bytes: 999_999, senderCount: 5, senderBytes: 0 }));
      expect(r.message).toMatch(/^you already have 5 messages/);
    });

    it("checks the queue of every recipient that gets a row, not of those skipped", () => {
      const full: QueueUsage = { count: 50, bytes: 0, senderCount: 0, senderBytes: 0 };
      // Carol's queue is full but she is not in the lobby: no row for her, nothing to refuse.
      const skip = contextFor({ limits, inLobby: ["bob"], usage: { carol: full } });
      expect(completeAdmission(pre(wireOf(alice, "lobby", [alice, bob, carol]), skip), skip).kind).toBe("accept");
      const both = contextFor({ limits, inLobby: ["bob", "carol"], usage: { carol: full } });
      const r = refusalOf(() => completeAdmission(pre(wireOf(alice, "lobby", [alice, bob, carol]), both), both));
      expect(r.message).toContain("the queue for 'carol' is full");
    });
  });

  it("never gives the sender a row of its own", () => {
    const ctx = contextFor({ rooms: { "#ops": ["alice", "bob", "carol", "dave"] }, users: [alice, bob, carol, dave] });
    const a = accepted(completeAdmission(pre(wireOf(alice, "#ops", [alice, bob, carol, dave]), ctx), ctx));
    expect(a.rows).toEqual(["bob", "carol", "dave"]);
  });
});
