// Raw protocol v2 sessions for the relay's MLS queues (PROTOCOL.md §8.3): a Hello with
// protocol_version 2, SendMls answered by its SendResult, and the MLS deliveries of a session
// collected in queue order (acked, or not, as a test says).
import { createHash } from "node:crypto";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { SendStatus, type Delivery, type MlsDelivery, type SendResult, type Welcome } from "../../src/gen/securechat/v1/chat.js";
import { signProof, type PrivateIdentity } from "../../src/protocol/keys.js";
import type { RawSession } from "./raw-session.js";
import type { TestRelay } from "./relay-harness.js";
import { waitUntil } from "./wait.js";

/** A session that completed the handshake as `id`, saying protocol_version 2. */
export async function connectV2(relay: TestRelay, id: PrivateIdentity): Promise<RawSession & { welcome: Welcome }> {
  const s = relay.open();
  s.hello(id, { protocolVersion: 2 });
  const challenge = await s.next("challenge");
  s.write({ $case: "proof", value: { signature: signProof(id, challenge.relayId, challenge.nonce, s.channelBinding) } });
  const welcome = await s.next("welcome");
  return Object.assign(s, { welcome });
}

/** SHA-256(mls)[0..16]: the id the relay gives an MLS message. */
export function mlsId(mls: Uint8Array): Buffer {
  return createHash("sha256").update(mls).digest().subarray(0, 16);
}

/** Writes a SendMls; resolves with the SendResult for its id. */
export async function sendMls(s: RawSession, mls: Uint8Array): Promise<SendResult> {
  s.write({ $case: "sendMls", value: { mls: Buffer.from(mls) } });
  const id = mlsId(mls);
  return s.next("sendResult", (r) => Buffer.from(r.messageId).equals(id));
}

/** sendMls that must be ACCEPTED. */
export async function sendMlsAccepted(s: RawSession, mls: Uint8Array): Promise<SendResult> {
  const r = await sendMls(s, mls);
  if (r.status !== SendStatus.SEND_STATUS_ACCEPTED) throw new Error(`SendMls refused (code ${r.code}): ${r.detail}`);
  return r;
}

export interface MlsItem {
  readonly seq: number;
  readonly conversationId: string;
  readonly mls: MlsDelivery;
}

/** The MLS deliveries of a Delivery list (others are left out). */
export function mlsItems(items: readonly Delivery[]): MlsItem[] {
  return items.flatMap((d) => (d.mls === undefined ? [] : [{ seq: d.seq, conversationId: d.conversationId, mls: d.mls }]));
}

/**
 * Collects `count` MLS deliveries from the session's DeliverBatch frames, in order; acks them
 * unless told not to. Fails when an Envelope delivery comes in between.
 */
export async function takeMls(s: RawSession, count: number, options: { ack?: boolean; timeoutMs?: number } = {}): Promise<MlsItem[]> {
  const out: MlsItem[] = [];
  while (out.length < count) {
    const batch = await s.next("deliver", () => true, options.timeoutMs ?? 10_000);
    for (const d of batch.items) {
      if (d.mls === undefined) throw new Error(`an Envelope delivery (seq ${d.seq}) came where MLS ones were expected`);
      out.push({ seq: d.seq, conversationId: d.conversationId, mls: d.mls });
    }
    if (options.ack !== false) s.ack(batch.items.map((d) => d.seq));
  }
  if (out.length > count) throw new Error(`expected ${count} MLS deliveries, got ${out.length}`);
  return out;
}

/** After a round trip: no delivery waits in the session's inbox (nothing more was queued for it by then). */
export async function expectNoDelivery(s: RawSession): Promise<void> {
  await s.barrier();
  const pending = s.inbox.filter((f) => f.$case === "deliver");
  if (pending.length > 0) throw new Error(`expected no delivery, got ${pending.length} batch(es)`);
}

/** Waits until the relay logged `n` accepted SendMls (or commits) overall. */
export async function waitForLogCount(relay: TestRelay, event: string, n: number, pred: (l: Record<string, unknown>) => boolean = () => true): Promise<void> {
  await waitUntil(() => relay.events(event).filter(pred).length >= n || undefined, `${n} ${event} log lines`, 10_000, 10);
}

/** Queue rows waiting for `username` in the relay's store now (read beside the running relay, either store). */
export function queuedRows(relay: TestRelay, username: string): number {
  return relay.queuedRows(username);
}

/** Waits until the relay's queue for `username` is empty (its acks are committed). */
export async function waitForEmptyQueue(relay: TestRelay, username: string): Promise<void> {
  await waitUntil(() => queuedRows(relay, username) === 0, `an empty queue for ${username}`, 10_000, 20);
}

/** How many queues still hold each stored MLS delivery (one `envelopes` row each, payload kind 1; the `queue` view's rows), oldest first. */
export function storedMlsRefs(relay: TestRelay): number[] {
  const db = new DatabaseSync(join(relay.dataDir, "relay.db"), { readOnly: true });
  try {
    return (db.prepare(`SELECT (SELECT COUNT(*) FROM queue q WHERE q.envelope_id = e.id) AS refs
                        FROM envelopes e WHERE e.payload_kind = 1 ORDER BY e.id`).all() as { refs: number | bigint }[]).map((r) => Number(r.refs));
  } finally {
    db.close();
  }
}

/** MLS <V> vector header (RFC 9420 §2.1.2) for a length below 2^30. */
function vlen(n: number): Buffer {
  if (n < 64) return Buffer.from([n]);
  if (n < 16384) return Buffer.from([0x40 | (n >> 8), n & 0xff]);
  const b = Buffer.alloc(4);
  b.writeUInt32BE((n | 0x80000000) >>> 0);
  return b;
}

/**
 * A PrivateMessage of `contentType` (1 application, 3 commit) whose sender data and ciphertext
 * are `bytes` of junk filled with `fill`: to the relay, a clear header and opaque bytes (what a
 * hostile member sends to cost it storage, with no MLS work).
 */
export function fakePrivateMessage(groupId: Uint8Array, epoch: number, contentType: 1 | 3, bytes: number, fill = 0x5a): Buffer {
  const e = Buffer.alloc(8);
  e.writeBigUInt64BE(BigInt(epoch));
  return Buffer.concat([
    Buffer.from([0x00, 0x01, 0x00, 0x02]), vlen(groupId.length), Buffer.from(groupId), e, Buffer.from([contentType]),
    vlen(0), vlen(16), Buffer.alloc(16, fill === 0x5a ? 7 : fill), vlen(bytes), Buffer.alloc(bytes, fill),
  ]);
}

/** A commit (content type 3) of `ciphertextBytes` junk bytes: fakePrivateMessage. */
export const fakePrivateCommit = (groupId: Uint8Array, epoch: number, ciphertextBytes: number): Buffer => fakePrivateMessage(groupId, epoch, 3, ciphertextBytes);
