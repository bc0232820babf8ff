// Catch-up on protocol v2 (issue 12 "Performance": catching up 10,000 queued messages after a
// week offline). A small room: one real MLS group (X-Wing suite) of 11 members, made in-process
// and registered with a fresh relay (test/helpers/mls-room.ts). The reader connects once to take
// its Welcome, then goes offline; 10 members each send 1,000 application messages with SendMls
// (encrypted before any clock; 1,000 is the default share one sender may hold of one recipient's
// queue, 10,000 the default queue of one user), all stored in the reader's durable queue. Then
// the reader connects, and the clock runs from its connect until the last message is:
//   - drained: received from the relay (acked at once, not opened): the relay's part; and, on
//     another fresh relay with the same queue,
//   - drained and opened in order: each DeliverBatch opened with MlsGroup.process, message by
//     message in the relay's order (a fresh copy of the reader's epoch-1 state each time), then
//     acked, as a client must (ack after processing): what a client can do at best.
// Not measured here: the client's engine, content layer, key store and screen (relay-catchup-screen.ts
// measures those), and the commits the update policy (PROTOCOL.md §10: one per sender per 100
// messages) would add.
import { MlsKind } from "../../src/gen/securechat/v1/chat.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { MlsGroup } from "../../src/protocol/mls/index.js";
import { makeMlsRoom, registerMlsRoom, type MlsRoom } from "../../test/helpers/mls-room.js";
import { BenchClient, connect, encodeRequest, identities, startRelayChild, ACCEPTED, MANY_USERS_FROM_LOOPBACK, type Row, type RunOptions } from "./_lib.js";

export const name = "relay-catchup-mls";
export const description = "10,000 MLS messages queued for an offline member of a room of 11: drain, and drain + open in order";

const ROOM = "#catchup";
const SENDERS = 10;
const DEADLINE_MS = 300_000;
const SEND_WINDOW = 32;

async function waitFor(what: string, fn: () => boolean, timeoutMs = DEADLINE_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** senders x perSender messages, encrypted ahead: [sender][i], the text naming both. */
async function encryptAll(room: MlsRoom, perSender: number): Promise<Buffer[][]> {
  const out: Buffer[][] = [];
  for (let s = 0; s < SENDERS; s++) {
    const set: Buffer[] = [];
    for (let i = 0; i < perSender; i++) {
      const text = `${s}:${i} ${"x".repeat(100)}`;
      set.push(encodeRequest({ $case: "sendMls", value: { mls: Buffer.from(await room.groups[s]!.encrypt(Buffer.from(text))) } }));
    }
    out.push(set);
  }
  return out;
}

/**
 * A fresh relay holding `frames` in the reader's queue: everyone connects, the group is
 * registered, the reader takes its Welcome and leaves, the senders send (waiting for every
 * SendResult). Returns the child and the senders' sessions (closed by the caller).
 */
async function fill(ids: readonly PrivateIdentity[], room: MlsRoom, frames: readonly Buffer[][]) {
  const child = await startRelayChild("relay", { limits: { messagesPerSecond: 1_000_000, burst: 1_000_000, ...MANY_USERS_FROM_LOOPBACK } });
  const sessions: BenchClient[] = [];
  try {
    for (const id of ids) sessions.push(await connect(child.port, id, 2));
    const reader = sessions.at(-1)!;
    let welcomed = false;
    reader.onDeliver = (items) => {
      if (items.some((i) => i.mls?.kind === MlsKind.MLS_KIND_WELCOME)) welcomed = true;
    };
    await registerMlsRoom(sessions[0]!, room);
    await waitFor("the reader's Welcome", () => welcomed, 30_000);
    reader.close();
    await reader.ended;
    // Each sender keeps at most SEND_WINDOW messages unanswered, as a client's outbox does (all
    // at once would put more frames in its session's outgoing buffer than the relay allows a
    // reader: it would be disconnected as a slow consumer).
    const expected = frames.reduce((n, f) => n + f.length, 0);
    let accepted = 0;
    let refused: string | undefined;
    for (const [s, set] of frames.entries()) {
      const c = sessions[s]!;
      let next = 0;
      const send = (): void => {
        if (next < set.length) c.writeRaw(set[next++]!);
      };
      c.onSendResult = (r) => {
        if (r.status === ACCEPTED) accepted++;
        else refused ??= `code ${r.code}: ${r.detail}`;
        send();
      };
      for (let i = 0; i < SEND_WINDOW; i++) send();
    }
    await waitFor(`${expected} SendResults`, () => accepted === expected || refused !== undefined, 120_000).catch(async (e: Error) => {
      const ended = await Promise.all(sessions.slice(0, -1).map(async (c, i) => (c.isEnded ? `${i}: ${(await c.ended).details}` : "")));
      throw new Error(`${e.message}: ${accepted} accepted; sessions ended: ${ended.filter(Boolean).join("; ") || "none"}`, { cause: e });
    });
    if (refused !== undefined) throw new Error(`the relay refused a message for the offline reader: ${refused}`);
    return { child, sessions };
  } catch (e) {
    for (const c of sessions) c.close();
    await child.stop();
    throw e;
  }
}

/** The reader connects; resolves when the last of `expected` messages is drained (and opened, with `group`). */
async function catchUp(port: number, reader: PrivateIdentity, expected: number, group: MlsGroup | undefined, perSender: number) {
  const t0 = performance.now();
  let received = 0;
  let opened = 0;
  let openMs = 0;
  let failure: Error | undefined;
  const next = new Array<number>(SENDERS).fill(0);
  let chain = Promise.resolve();
  // The handlers are set before the handshake: DeliverBatches may follow the Welcome in the
  // same read, before the handshake's promise resumes.
  const c = new BenchClient(port);
  c.autoAck = group === undefined;
  c.onDeliver = (items) => {
    const apps = items.filter((i) => i.mls?.kind === MlsKind.MLS_KIND_APPLICATION);
    received += apps.length;
    if (group === undefined) return;
    // Opened in the relay's order, one batch after the other, then acked.
    chain = chain.then(async () => {
      const o0 = performance.now();
      for (const item of apps) {
        const got = await group.process(item.mls!.mls);
        if (got.kind !== "application") throw new Error(`a queued message opened as ${got.kind}`);
        const [s, i] = got.plaintext.toString("utf8").split(" ")[0]!.split(":").map(Number) as [number, number];
        if (i !== next[s]) throw new Error(`out of order: sender ${s} message ${i} after ${next[s]! - 1}`);
        next[s] = i + 1;
        opened++;
      }
      openMs += performance.now() - o0;
      c.writeRaw(encodeRequest({ $case: "ack", value: { seqs: items.map((i) => i.seq) } }));
    }).catch((e: Error) => {
      failure ??= e;
    });
  };
  await c.handshake(reader, c.waitMs, { protocolVersion: 2 });
  await waitFor(`${expected} messages ${group ? "opened" : "drained"}`, () => failure !== undefined || (group ? opened : received) === expected);
  const seconds = (performance.now() - t0) / 1000;
  c.close();
  if (failure) throw failure;
  if (group) for (let s = 0; s < SENDERS; s++) if (next[s] !== perSender) throw new Error(`sender ${s}: ${next[s]} of ${perSender} opened`);
  return { seconds, openMs };
}

export async function run({ runs, quick, log }: RunOptions): Promise<Row[]> {
  const perSender = quick ? 100 : 1000;
  const total = perSender * SENDERS;
  const ids = identities(SENDERS + 1, "c");
  const t0 = performance.now();
  const room = await makeMlsRoom(ids.map((id) => ({ username: id.username, sigPrivate: id.sigPrivate })), ROOM);
  const frames = await encryptAll(room, perSender);
  log(`room of ${SENDERS + 1} made in-process, ${total} messages encrypted ahead (${frames[0]![0]!.length} B per SendMls) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const readerIndex = SENDERS;
  const drain: number[] = [], drainRate: number[] = [], relayCpu: number[] = [], both: number[] = [], bothRate: number[] = [], openPer: number[] = [];
  for (let r = 0; r < runs; r++) {
    for (const withOpen of [false, true]) {
      const filled0 = performance.now();
      const { child, sessions } = await fill(ids, room, frames);
      const filled = (performance.now() - filled0) / 1000;
      try {
        const group = withOpen ? MlsGroup.restore(room.clients[readerIndex]!, room.snapshots[readerIndex]!) : undefined;
        const before = await child.stats();
        const x = await catchUp(child.port, ids[readerIndex]!, total, group, perSender);
        const after = await child.stats();
        if (withOpen) {
          both.push(x.seconds);
          bothRate.push(total / x.seconds);
          openPer.push(x.openMs / total);
        } else {
          drain.push(x.seconds);
          drainRate.push(total / x.seconds);
          relayCpu.push(((after.cpuMs - before.cpuMs) * 1000) / total);
        }
        log(`run ${r + 1} ${withOpen ? "drain + open" : "drain only  "}: queue filled in ${filled.toFixed(1)} s; ${total} messages in ${x.seconds.toFixed(2)} s `
          + `(${(total / x.seconds).toFixed(0)}/s)${withOpen ? `, opening ${(x.openMs / total).toFixed(2)} ms each (wall)` : ""}; relay CPU ${(after.cpuMs - before.cpuMs).toFixed(0)} ms`);
      } finally {
        for (const c of sessions) c.close();
        await child.stop();
      }
    }
  }
  const what = `${total.toLocaleString("en")} MLS messages (${SENDERS} senders x ${perSender}) queued for an offline member of a room of ${SENDERS + 1}`;
  return [
    { metric: `catch-up ${total}: drained (relay -> client, acked at once)`, unit: "s", values: drain, better: "lower", note: `${what}; from the reader's connect to the last one received` },
    { metric: `catch-up ${total}: drain rate`, unit: "msg/s", values: drainRate, better: "higher" },
    { metric: `catch-up ${total}: relay CPU per message drained`, unit: "µs", values: relayCpu, better: "lower" },
    {
      metric: `catch-up ${total}: drained + opened in order (MlsGroup.process)`, unit: "s", values: both, better: "lower",
      note: "each batch opened in order, then acked; not measured: the time to show them on screen (the v2 client engine and TUI are being built) and the commits of the update policy",
    },
    { metric: `catch-up ${total}: drained + opened rate`, unit: "msg/s", values: bothRate, better: "higher" },
    { metric: `catch-up ${total}: open one (wall, in the catch-up)`, unit: "ms", values: openPer, better: "lower" },
  ];
}
