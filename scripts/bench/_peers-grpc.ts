// The peers suite's gRPC side (scripts/bench/peers.ts): the same workload as the IRC peers
// through the project's relay and through the bare grpc-js forwarder (_relay-host.ts's ceiling),
// each on a fresh child process (_lib.ts startRelayChild).
//
// The K clients are the members of one real MLS group (test/helpers/mls-room.ts, made once per
// K) and send SendMls application messages whose plaintext is the harness's 300-byte payload
// "<phase> <sender> <seq> xxxx…", encrypted and encoded before any clock starts. The send time
// cannot be inside an encrypted payload made ahead, so the load records when each message was
// written (same process, same clock as the IRC clients' embedded time). Each delivery is
// recognised by its AEAD tag (mlsKey) among the frames of the run, which gives its phase,
// sender and sequence number; against the relay the receivers also check the sender the relay
// names (walking each DeliverBatch for seq, kind, sender and tag: _deliver-walk.ts) and ack
// every DeliverBatch, as a client does, and the phase waits
// for every sender's SendResult (a refusal fails the run). The forwarder gets exactly the same
// SendMls frames and passes them on as opaque bytes.
import { mkdirSync } from "node:fs";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { makeMlsRoom, mlsKey, type MlsRoom } from "../../test/helpers/mls-room.js";
import {
  BenchClient, connect, encodeRequest, identities, registerRoom, startRelayChild, waitFor, ACCEPTED, MANY_USERS_FROM_LOOPBACK,
  type RelayChild,
} from "./_lib.js";
import { MlsKind } from "../../src/gen/securechat/v1/chat.js";
import { walkDeliverBatch } from "./_deliver-walk.js";
import { padPayload, type PeerWriter, type RingLoad } from "./_peers-load.js";

/** A message of the run: where it belongs, for the receivers' checks. */
interface Tagged {
  readonly phase: number;
  readonly sender: number;
  readonly seq: number;
}

/** One room size's MLS group and its messages, encrypted once and replayed to every fresh child. */
export interface MlsWorkload {
  readonly ids: readonly PrivateIdentity[];
  readonly room: MlsRoom;
  /** frames[phase - 1][sender][seq]: the encoded SendMls frames (phase 1 warm-up, 2 timed). */
  readonly frames: readonly (readonly (readonly Buffer[])[])[];
  readonly byTag: ReadonlyMap<string, Tagged>;
  /** Bytes of one SendMls frame (they are all the same size). */
  readonly frameBytes: number;
}

/** Makes the group of k members and encrypts `warm` then `m` messages of each, `size`-byte plaintexts. */
export async function mlsWorkload(k: number, warm: number, m: number, size: number): Promise<MlsWorkload> {
  const ids = identities(k, "p");
  const room = await makeMlsRoom(ids.map((id) => ({ username: id.username, sigPrivate: id.sigPrivate })), "#peers");
  const byTag = new Map<string, Tagged>();
  const frames: Buffer[][][] = [];
  let frameBytes = 0;
  for (const [p, n] of [warm, m].entries()) {
    const phase = p + 1;
    // Each member's messages in order (its ratchet), the members side by side: WebCrypto's
    // calls overlap, about 3 times faster than one message after another on 2 cores.
    const perSender = await Promise.all(room.groups.map(async (g, sender) => {
      const set: Buffer[] = [];
      for (let seq = 0; seq < n; seq++) {
        const mls = await g.encrypt(Buffer.from(padPayload(`${phase} ${sender} ${seq} `, size), "latin1"));
        const frame = encodeRequest({ $case: "sendMls", value: { mls: Buffer.from(mls) } });
        const tag = mlsKey(mls);
        if (byTag.has(tag)) throw new Error(`two messages with one AEAD tag ${tag}`);
        byTag.set(tag, { phase, sender, seq });
        frameBytes = frame.length;
        set.push(frame);
      }
      return set;
    }));
    frames.push(perSender);
  }
  return { ids, room, frames, byTag, frameBytes };
}

export interface GrpcRun {
  readonly child: RelayChild;
  readonly writer: PeerWriter;
  /** Wires the receive paths to the load (after set-up traffic such as the Welcomes is over). */
  attach(load: () => RingLoad): void;
  close(): Promise<void>;
}

/** The writer both gRPC servers share: frames[phase - 1][sender][seq] through each sender's client, with backpressure. */
function frameWriter(clients: readonly BenchClient[], work: MlsWorkload, load: () => RingLoad): PeerWriter {
  return {
    send(s, phase, seq) {
      const drained = clients[s]!.writeFrame(work.frames[phase - 1]![s]![seq]!);
      if (drained === undefined) return true;
      drained.then(() => load().drained(s), (e: Error) => load().fail(e));
      return false;
    },
  };
}

/** A call that ends while the load runs fails it. */
function watchEnds(clients: readonly BenchClient[], what: string, load: () => RingLoad, closing: () => boolean): void {
  for (const [i, c] of clients.entries()) {
    void c.ended.then((s) => {
      if (!closing()) load().fail(new Error(`${what} client ${i}: the call ended: ${s.details}`));
    });
  }
}

/**
 * The clients of one run at `child`, made by `open`; `close` closes them and stops the child
 * (also when `open` fails), after which their streams' ends are no failure (`closing`).
 */
async function clientsAt(child: RelayChild, open: (clients: BenchClient[]) => Promise<void>): Promise<{ clients: BenchClient[]; close: () => Promise<void>; closing: () => boolean }> {
  const clients: BenchClient[] = [];
  let closing = false;
  const close = async (): Promise<void> => {
    closing = true;
    for (const c of clients) c.close();
    await child.stop();
  };
  try {
    await open(clients);
  } catch (e) {
    await close();
    throw e;
  }
  return { clients, close, closing: () => closing };
}

/**
 * A fresh relay child with its defaults (durable: synchronous=FULL, group commit; the embedded
 * store on a fresh data dir), its rate limits raised for one address's load; K clients
 * connected (protocol v2 handshake) and the group registered, every Welcome through the queues.
 */
export async function relayRun(work: MlsWorkload, pin: (pid: number) => void, load: () => RingLoad): Promise<GrpcRun> {
  // BENCH_RELAY_PROF=<dir>: a V8 CPU profile (--cpu-prof) of each relay child, written to <dir> (as relay-fanout).
  const prof = process.env.BENCH_RELAY_PROF;
  if (prof) mkdirSync(prof, { recursive: true });
  const child = await startRelayChild("relay", { limits: { messagesPerSecond: 1_000_000, burst: 1_000_000, ...MANY_USERS_FROM_LOOPBACK } }, {
    execArgv: prof ? ["--cpu-prof", "--cpu-prof-dir", prof] : [],
  });
  pin(child.pid);
  const { clients, close, closing } = await clientsAt(child, async (clients) => {
    for (const id of work.ids) clients.push(await connect(child.port, id));
    await registerRoom(clients, work.room);
  });
  const names = work.ids.map((id) => id.username);
  return {
    child,
    writer: frameWriter(clients, work, load),
    attach(loadNow) {
      watchEnds(clients, "relay", loadNow, closing);
      for (const [to, c] of clients.entries()) {
        // DeliverBatches are walked for what is checked (_deliver-walk.ts), and acked as a
        // client does; every other frame (SendResults) goes to the generic decoder.
        const generic = c.onRaw;
        const seqs: number[] = [];
        c.onRaw = (raw, at) => {
          const l = loadNow();
          seqs.length = 0;
          let bad: Error | undefined;
          let walked: boolean;
          try {
            walked = walkDeliverBatch(raw, (item) => {
              seqs.push(item.seq);
              if (bad !== undefined || item.kind !== MlsKind.MLS_KIND_APPLICATION) return;
              const t = work.byTag.get(item.tag);
              if (t === undefined) bad = new Error(`relay client ${to}: a delivery that is no message of this run`);
              else if (item.sender !== names[t.sender]) bad = new Error(`relay client ${to}: message ${t.seq} of ${names[t.sender]} delivered as from ${item.sender}`);
              else l.deliver(to, t.phase, t.sender, t.seq, at);
            });
          } catch (e) {
            l.fail(new Error(`relay client ${to}: ${(e as Error).message}`));
            return;
          }
          if (!walked) return generic(raw, at);
          if (bad !== undefined) return l.fail(bad);
          c.writeRaw(encodeRequest({ $case: "ack", value: { seqs } }));
        };
        c.onSendResult = (r) => loadNow().result(r.status === ACCEPTED, `code ${r.code}: ${r.detail}`, performance.now());
      }
    },
    close,
  };
}

/** A fresh forwarder child (the ceiling) and K streams open at it. */
export async function forwarderRun(work: MlsWorkload, pin: (pid: number) => void, load: () => RingLoad): Promise<GrpcRun> {
  const child = await startRelayChild("ceiling");
  pin(child.pid);
  const k = work.ids.length;
  const { clients, close, closing } = await clientsAt(child, async (clients) => {
    for (let i = 0; i < k; i++) clients.push(new BenchClient(child.port));
    await waitFor(`${k} streams at the forwarder`, async () => (await child.stats()).stats.sessions === k, 30_000);
  });
  return {
    child,
    writer: frameWriter(clients, work, load),
    attach(loadNow) {
      watchEnds(clients, "forwarder", loadNow, closing);
      for (const [to, c] of clients.entries()) {
        // The forwarder passes the senders' SessionRequest bytes on as they are: a SendMls
        // frame with only its mls field set ends with the message's AEAD tag.
        c.onRaw = (raw, at) => {
          const t = work.byTag.get(raw.toString("hex", raw.length - 16));
          if (t === undefined) {
            loadNow().fail(new Error(`forwarder client ${to}: a frame that is no message of this run`));
            return;
          }
          loadNow().deliver(to, t.phase, t.sender, t.seq, at);
        };
      }
    },
    close,
  };
}
