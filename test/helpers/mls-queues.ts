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
