// Raw-session helpers for the relay's MLS Delivery Service (PROTOCOL.md §8.2): an MLS client
// on a fixture identity (its Ed25519 key is the identity key the relay has bound), KeyPackages
// made with the real wrapper, and one request/answer per call.
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import {
  createMlsClient, generateKeyPackage, restoreKeyPackage, type MlsClient, type StoredKeyPackage,
} from "../../src/protocol/mls/index.js";
import type { RawSession, RequestFrame, ResponseOf } from "./raw-session.js";
import { waitUntil } from "./wait.js";

export interface MlsPerson {
  readonly username: string;
  readonly client: MlsClient;
  /** Private parts of the KeyPackages made, by ref hex (what a client keeps on disk). */
  readonly keyPackages: Map<string, StoredKeyPackage>;
}

export async function mlsPerson(id: PrivateIdentity, username: string = id.username): Promise<MlsPerson> {
  return { username, client: await createMlsClient({ username, sigPrivate: id.sigPrivate }), keyPackages: new Map() };
}

/** A KeyPackage's upload bytes; its private part stays in the person's map. */
export async function makeKeyPackage(p: MlsPerson, lastResort = false): Promise<Buffer> {
  const kp = await generateKeyPackage(p.client, { lastResort });
  p.keyPackages.set(Buffer.from(kp.ref).toString("hex"), await restoreKeyPackage(p.client, kp.stored));
  return Buffer.from(kp.keyPackage);
}

export function lookupOf(p: MlsPerson): (ref: Uint8Array) => StoredKeyPackage | undefined {
  return (ref) => p.keyPackages.get(Buffer.from(ref).toString("hex"));
}

let nextRequestId = 1;

type Answer = "keyPackageStatus" | "keyPackageList" | "groupInfoResult" | "commitList" | "keyList" | "deviceListResult";

/** Writes one DS request; resolves with its answer, or with the RequestError for it. */
export async function ask<C extends Answer>(
  s: RawSession, frame: RequestFrame, answer: C,
): Promise<{ ok: true; value: ResponseOf<C> } | { ok: false; value: ResponseOf<"error"> }> {
  const requestId = nextRequestId++;
  s.write({ ...frame, value: { ...frame.value, requestId } } as RequestFrame);
  // Whichever comes: the answer or the RequestError with this request id.
  const f = await waitUntil(() => {
    if (s.isEnded) throw new Error(`the stream ended while waiting for the answer to ${frame.$case}`);
    const i = s.inbox.findIndex((x) => (x.$case === answer || x.$case === "error") && (x.value as { requestId: number }).requestId === requestId);
    return i < 0 ? undefined : s.inbox.splice(i, 1)[0]!;
  }, `the answer to ${frame.$case}`, 10_000, 5);
  return f.$case === "error" ? { ok: false, value: f.value } : { ok: true, value: f.value as ResponseOf<C> };
}

/** ask() that must succeed. */
export async function must<C extends Answer>(s: RawSession, frame: RequestFrame, answer: C): Promise<ResponseOf<C>> {
  const r = await ask(s, frame, answer);
  if (!r.ok) throw new Error(`${frame.$case} refused: ${r.value.detail}`);
  return r.value;
}

/** Sends a commit (with the new epoch's GroupInfo, the Welcome and its tree when given); resolves with its CommitResult. */
export async function sendCommit(
  s: RawSession, commit: Uint8Array, groupInfo: Uint8Array = new Uint8Array(0),
  hint: { added?: string[]; removed?: string[]; welcome?: Uint8Array | undefined; ratchetTree?: Uint8Array | undefined } = {},
): Promise<ResponseOf<"commitResult">> {
  const requestId = nextRequestId++;
  s.write({
    $case: "sendCommit",
    value: {
      requestId, commit: Buffer.from(commit), groupInfo: Buffer.from(groupInfo), added: hint.added ?? [], removed: hint.removed ?? [],
      welcome: Buffer.from(hint.welcome ?? new Uint8Array(0)), ratchetTree: Buffer.from(hint.ratchetTree ?? new Uint8Array(0)),
    },
  });
  return s.next("commitResult", (r) => r.requestId === requestId);
}
