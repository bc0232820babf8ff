// Strangers racing for names across a SERVICE of relay PROCESSES on one PostgreSQL (issue 14).
// Relays in one process cannot race (each handshake binds in one synchronous turn), so these
// run two chat-relay processes with --store on a fresh database and fire the claims at both at
// once. A name: exactly one key wins everywhere, the other is told it is taken, and every relay
// serves the winner's keys. One key claiming a name on each relay at once: the per-key name limit
// (maxNamesPerKey, 1 by default) holds service-wide.
import { generateKeyPairSync, X509Certificate, type KeyObject } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { status as GrpcStatus } from "@grpc/grpc-js";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { identityFromPrivateKeys, type PrivateIdentity } from "../../src/protocol/keys.js";
import { fixtureIdentity, fixtureKeys } from "../helpers/identities.js";
import { freshDatabase, pgQuery, type TestDatabase } from "../helpers/pg.js";
import { pinnedTransport, RawSession, type EndStatus, type RawTransport } from "../helpers/raw-session.js";
import { startRelayProcess, type RelayProcess } from "../helpers/relay-process.js";

const TLS_DIR = join(import.meta.dirname, "..", "fixtures", "tls");
const ROUNDS = 8;

let db: TestDatabase;
let root: string;
let relays: RelayProcess[] = [];
let transport: RawTransport;
let rsa: KeyObject;
let watchers: PrivateIdentity[];
const sessions: RawSession[] = [];

beforeAll(async () => {
  db = await freshDatabase();
  root = mkdtempSync(join(tmpdir(), "sc-rt-names-"));
  const certPem = readFileSync(join(TLS_DIR, "relay-cert.pem"));
  transport = pinnedTransport(certPem, new X509Certificate(certPem).raw);
  rsa = fixtureKeys("carol")[1]!;
  watchers = await Promise.all([fixtureIdentity("bob"), fixtureIdentity("dave")]);
}, 60_000);
// Fresh relay processes per test (on the same database): registrations are rate-limited per
// source address per relay (10 at once), and every claim here comes from 127.0.0.1.
let started = 0;
beforeEach(async () => {
  const tls = ["--tls-cert", join(TLS_DIR, "relay-cert.pem"), "--tls-key", join(TLS_DIR, "relay-key.pem")];
  // One after the other: the first creates the schema.
  for (let i = 0; i < 2; i++) relays.push(await startRelayProcess(join(root, `relay-${started++}`), ["--store", db.url, ...tls]));
}, 60_000);
afterEach(async () => {
  for (const s of sessions.splice(0)) s.close();
  await Promise.allSettled(relays.map((r) => r.stop("SIGKILL")));
  relays = [];
});
afterAll(async () => {
  rmSync(root, { recursive: true, force: true });
  await db.drop();
});

/** A stranger with a signing key of its own (the RSA key is shared: the signing key decides). */
function stranger(username: string, sig: KeyObject = generateKeyPairSync("ed25519").privateKey): PrivateIdentity {
  return identityFromPrivateKeys(username, sig, rsa);
}

function open(i: number): RawSession {
  const s = new RawSession(`127.0.0.1:${relays[i]!.port}`, transport);
  sessions.push(s);
  return s;
}

/** Claims the name on relay i: the Welcome, or how the stream ended. */
async function claim(i: number, id: PrivateIdentity): Promise<{ ok: true } | { ok: false; end: EndStatus }> {
  const s = open(i);
  try {
    await s.handshake(id, 15_000, { protocolVersion: 2 });
    return { ok: true };
  } catch {
    return { ok: false, end: await s.status() };
  }
}

async function boundKey(name: string): Promise<Buffer | undefined> {
  return (await pgQuery(db.url, "SELECT sig_spki FROM users WHERE username = $1", [name])).rows[0]?.sig_spki as Buffer | undefined;
}

describe("name squatting across relays", () => {
  it("two strangers claim one name on two relays at the same moment: one key wins everywhere, the other is told it is taken", { timeout: 120_000 }, async () => {
    const eyes = await Promise.all([0, 1].map(async (i) => {
      const s = open(i);
      await s.handshake(watchers[i]!, 15_000, { protocolVersion: 2 });
      return s;
    }));
    for (let round = 0; round < ROUNDS; round++) {
      const name = `squat${round}`;
      const [a, b] = [stranger(name), stranger(name)];
      const [ra, rb] = await Promise.all([claim(0, a), claim(1, b)]);
      const outcomes = [ra, rb];
      expect(outcomes.filter((o) => o.ok)).toHaveLength(1);
      const lost = outcomes.find((o) => !o.ok) as { ok: false; end: EndStatus };
      expect({ code: lost.end.code, details: lost.end.details, errorCode: lost.end.errorCode }).toEqual({
        code: GrpcStatus.ALREADY_EXISTS, details: `username '${name}' is taken by another key`, errorCode: "ERROR_CODE_USERNAME_TAKEN",
      });
      const winner = ra.ok ? a : b;
      expect((await boundKey(name))?.equals(winner.sigSpki)).toBe(true);
      // Both relays serve the winner's keys, and nobody's session was disturbed.
      for (const e of eyes) {
        const [entry] = await e.lookupKeys([name], 1000 + round);
        expect(Buffer.from(entry!.sigSpki).equals(winner.sigSpki)).toBe(true);
      }
    }
    expect(eyes.every((e) => !e.isEnded)).toBe(true);
  });

  it("one key claims a different name on each relay at the same moment: it owns one name service-wide (maxNamesPerKey)", { timeout: 120_000 }, async () => {
    const outcomes: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const sig = generateKeyPairSync("ed25519").privateKey;
      const [ra, rb] = await Promise.all([claim(0, stranger(`hoga${round}`, sig)), claim(1, stranger(`hogb${round}`, sig))]);
      const bound = [await boundKey(`hoga${round}`), await boundKey(`hogb${round}`)].filter((k) => k !== undefined);
      // At most one name; claims that raced may both back out (the key's owner never races itself).
      // Exactly the claims that got a Welcome hold their name, and the others were told why.
      expect(bound.length).toBeLessThanOrEqual(1);
      expect([ra.ok, rb.ok].filter(Boolean).length).toBe(bound.length);
      for (const lost of [ra, rb].filter((o) => !o.ok) as Array<{ ok: false; end: EndStatus }>) {
        expect([lost.end.code, lost.end.errorCode]).toEqual([GrpcStatus.PERMISSION_DENIED, "ERROR_CODE_KEY_NAME_LIMIT"]);
      }
      outcomes.push(bound.length);
    }
    // Measured: 1 or 0 names per racing round (e.g. 1,0,1,1,1,1,1,0), never 2 (2 in some rounds before the fix).
    expect(outcomes.every((n) => n <= 1)).toBe(true);
    // Without a race: a key's one name through relay 0, a second name through relay 1 refused.
    const sig = generateKeyPairSync("ed25519").privateKey;
    expect(await claim(0, stranger("calm0", sig))).toEqual({ ok: true });
    const second = await claim(1, stranger("calm1", sig));
    expect(second.ok ? undefined : [second.end.code, second.end.errorCode]).toEqual([GrpcStatus.PERMISSION_DENIED, "ERROR_CODE_KEY_NAME_LIMIT"]);
    expect(await boundKey("calm1")).toBeUndefined();
  });
});
