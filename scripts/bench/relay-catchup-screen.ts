// Catch-up on protocol v2 to the screen (issue 12 "Performance": "Catching up 10,000 queued
// messages after a week offline: time to the last one on screen"). relay-catchup-mls.ts measures
// the relay's drain and the bare MlsGroup opens; this measures what a user waits for: the real
// client (ChatClient with the v2 engine, the content layer over its state db, its MLS key store)
// and the real chat UI (runTui: the App through Ink's renderer on a fake 120x40 TTY, in this
// process), from the client's connect until the last queued message is drawn on screen.
//
// Set-up, per run: a fresh relay (child process, its defaults, durable). A room of 11 — one real
// MLS group (X-Wing suite) made in-process, in which the reader's MLS client is the one its key
// store keeps — registered with the relay (PublishGroupInfo, then the add commit with Welcome and
// tree); the reader's raw session takes its Welcome, goes offline. 10 members each send 1,000
// application messages sealed by a real content layer (the §8 chain and acknowledgements, as a
// client sends them) and encrypted ahead; the last, a marker, is sent once all others are
// accepted, so it is the last in the reader's queue. 10,000 wait — what the default caps allow.
// Then the clock starts: the reader's ChatClient connects (its store is a copy of the one that
// holds the group at epoch 1), "/join #catchup" is typed as soon as it is connected (the room is
// shown when the engine reaches that command), and the clock stops at the first frame that
// draws the marker. Every message must have been shown, in order per sender, none refused.
// Not in this figure: the commits of the update policy (§7), which senders would interleave.
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ChatClient } from "../../src/client/chat-client.js";
import { contentLayerOver } from "../../src/client/mls/content.js";
import { MlsKeyStore } from "../../src/client/mls-store.js";
import { ClientStateStore } from "../../src/client/state-store.js";
import { TrustStore } from "../../src/client/trust-store.js";
import type { SessionEvent } from "../../src/client/types.js";
import { MlsKind } from "../../src/gen/securechat/v1/chat.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { createMlsClient, generateKeyPackage, MlsGroup, restoreKeyPackage, type MlsClient } from "../../src/protocol/mls/index.js";
import { runTui } from "../../src/tui/run-tui.js";
import type { MlsRoom } from "../../test/helpers/mls-room.js";
import { registerMlsRoom } from "../../test/helpers/mls-room.js";
import { FakeStdin } from "../../test/tui/helpers/terminal.js";
import { BenchStdout } from "./_tui-terminal.js";
import { ACCEPTED, BenchClient, connect, encodeRequest, identities, MANY_USERS_FROM_LOOPBACK, startRelayChild, type Row, type RunOptions } from "./_lib.js";

export const name = "relay-catchup-screen";
export const description = "10,000 MLS messages queued for an offline member: from its client's connect to the last one drawn by its chat UI (ChatClient v2 + Ink)";

const ROOM = "#catchup";
const SENDERS = 10;
const DEADLINE_MS = 600_000;
const SEND_WINDOW = 32;
/** The last message's text: no digits, no x, no spaces, so the screen model's cell diff writes it whole. */
const MARKER = "ZQ#FINAL#MARKER#OF#THE#CATCHUP";

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, fn: () => boolean, timeoutMs = DEADLINE_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/**
 * The room, with the reader's MLS client the one in `store`: members[0] creates and adds the
 * rest in one commit; each joins from the Welcome; the reader's group is saved in its store.
 */
async function makeRoom(ids: readonly PrivateIdentity[], readerClient: MlsClient, store: MlsKeyStore): Promise<MlsRoom> {
  const clients: MlsClient[] = [];
  for (const id of ids.slice(0, -1)) clients.push(await createMlsClient({ username: id.username, sigPrivate: id.sigPrivate }));
  clients.push(readerClient);
  const creator = await MlsGroup.create(clients[0]!, ROOM);
  const groupInfo0 = await creator.groupInfo();
  const kps = [];
  for (const c of clients.slice(1)) {
    const kp = await generateKeyPackage(c);
    kps.push({ kp, stored: await restoreKeyPackage(c, kp.stored) });
  }
  const add = await creator.addMembers(kps.map((k) => k.kp.keyPackage));
  creator.confirmCommit();
  const groups: MlsGroup[] = [creator];
  for (let i = 1; i < clients.length; i++) {
    const { stored } = kps[i - 1]!;
    groups.push((await MlsGroup.joinFromWelcome(clients[i]!, add.welcome!, add.ratchetTree!, () => stored)).group);
  }
  store.saveGroup(groups.at(-1)!);
  return {
    conversationId: ROOM, groupId: creator.groupId, clients, groups, snapshots: groups.map((g) => g.serialize()),
    registration: { groupInfo0, commit: add.commit, groupInfo1: add.groupInfo, welcome: add.welcome!, ratchetTree: add.ratchetTree!, added: ids.slice(1).map((i) => i.username) },
  };
}

/** Each sender's messages sealed by its own content layer (§8) and encrypted ahead, as SendMls frames. */
function sealAll(ids: readonly PrivateIdentity[], room: MlsRoom, perSender: number): Promise<Buffer[][]> {
  return (async () => {
    const out: Buffer[][] = [];
    const members = ids.map((i) => i.username);
    for (let s = 0; s < SENDERS; s++) {
      const content = contentLayerOver(ClientStateStore.open(":memory:"), ids[s]!.username);
      content.membersChanged(ROOM, members);
      const set: Buffer[] = [];
      for (let i = 0; i < perSender; i++) {
        const last = s === 0 && i === perSender - 1;
        const text = last ? MARKER : `${s}:${i} ${"x".repeat(100)}`;
        const sealed = content.seal(ROOM, room.groupId, "text", text, Date.now());
        set.push(encodeRequest({ $case: "sendMls", value: { mls: Buffer.from(await room.groups[s]!.encrypt(sealed.app)) } }));
      }
      out.push(set);
    }
    return out;
  })();
}

/** A fresh relay with the room registered and `frames` in the reader's queue (sender 0's last frame, the marker, sent last). */
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
    const expected = frames.reduce((n, f) => n + f.length, 0);
    let accepted = 0;
    let refused: string | undefined;
    const marker = frames[0]!.at(-1)!;
    for (const [s, all] of frames.entries()) {
      const set = s === 0 ? all.slice(0, -1) : all;
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
    await waitFor(`${expected - 1} SendResults`, () => accepted === expected - 1 || refused !== undefined, 180_000);
    sessions[0]!.writeRaw(marker);
    await waitFor("the marker's SendResult", () => accepted === expected || refused !== undefined, 30_000);
    if (refused !== undefined) throw new Error(`the relay refused a message for the offline reader: ${refused}`);
    return { child, sessions };
  } catch (e) {
    for (const c of sessions) c.close();
    await child.stop();
    throw e;
  }
}

/** The reader's client and UI start; resolves with the seconds from connect to the marker on screen. */
async function catchUp(port: number, reader: PrivateIdentity, dir: string, storeTemplate: string, total: number, perSender: number) {
  const storePath = join(dir, `${reader.username}_mls.db`);
  copyFileSync(storeTemplate, storePath);
  const store = MlsKeyStore.open(storePath, { username: reader.username, sigPrivate: reader.sigPrivate });
  // How often the group is written (sealed, synchronous FULL): once per delivery batch, not per message.
  let saves = 0;
  const save = store.saveGroup.bind(store);
  store.saveGroup = (g, o) => {
    if (g.conversation.id === ROOM) saves++;
    save(g, o);
  };
  const state = ClientStateStore.open(join(dir, `${reader.username}_state.db`));
  const trust = await TrustStore.open(join(dir, `${reader.username}_known_peers.json`));
  const client = new ChatClient({ identity: reader, server: `127.0.0.1:${port}`, trust, state, reconnect: false, transport: { kind: "plaintext" }, v2: { store } });
  const stdin = new FakeStdin();
  const stdout = new BenchStdout(120, 40);
  const stderr = new BenchStdout(120, 40);
  let shown = 0;
  let refused = 0;
  let failure: string | undefined;
  const next = new Array<number>(SENDERS).fill(0);
  client.subscribe((e: SessionEvent) => {
    if (e.type === "refused") refused++;
    if (e.type !== "message" || e.message.conversationId !== ROOM || e.message.own) return;
    shown++;
    if (e.message.text === MARKER) return;
    const [s, i] = e.message.text.split(" ")[0]!.split(":").map(Number) as [number, number];
    if (i !== next[s]) failure ??= `out of order: sender ${s} message ${i} after ${next[s]! - 1}`;
    next[s] = i + 1;
  });
  const exited = runTui({ session: client, stdin: stdin.stream, stdout: stdout.stream, stderr: stderr.stream, bell: false });
  await waitFor("the first frame", () => stdout.recent.includes("secure-chat") && stdin.listening, 30_000);
  stdout.reset();
  const t0 = performance.now();
  client.start();
  await client.waitConnected(60_000);
  stdin.write(`/join ${ROOM}\r`);
  const connected = (performance.now() - t0) / 1000;
  let engineMs = 0;
  await waitFor("the marker on screen", () => {
    if (engineMs === 0 && shown === total) engineMs = performance.now() - t0;
    return stdout.recent.includes(MARKER) || failure !== undefined;
  });
  const seconds = (performance.now() - t0) / 1000;
  if (engineMs === 0) engineMs = performance.now() - t0;
  stdin.write("\u0003");
  await exited;
  store.close();
  if (failure !== undefined) throw new Error(failure);
  if (shown !== total) throw new Error(`the marker was drawn after ${shown} of ${total} messages`);
  if (refused > 0) throw new Error(`${refused} queued messages were refused by the client`);
  for (let s = 0; s < SENDERS; s++) if (next[s] !== (s === 0 ? perSender - 1 : perSender)) throw new Error(`sender ${s}: ${next[s]} of ${perSender} shown`);
  return { seconds, engineSeconds: engineMs / 1000, connected, saves };
}

export async function run({ runs, quick, log }: RunOptions): Promise<Row[]> {
  const perSender = quick ? 100 : 1000;
  const total = perSender * SENDERS;
  const ids = identities(SENDERS + 1, "s");
  const reader = ids[SENDERS]!;
  const base = mkdtempSync(join(tmpdir(), "sc-bench-catchup-screen-"));
  try {
    const t0 = performance.now();
    // The reader's key store holding its MLS client and the room at epoch 1: copied for each run.
    const template = join(base, "template_mls.db");
    const templateStore = MlsKeyStore.open(template, { username: reader.username, sigPrivate: reader.sigPrivate });
    const room = await makeRoom(ids, await templateStore.loadOrCreateClient(), templateStore);
    templateStore.close();
    const frames = await sealAll(ids, room, perSender);
    log(`room of ${SENDERS + 1} made in-process, ${total} messages sealed (content layer) and encrypted ahead (${frames[0]![0]!.length} B per SendMls) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const screen: number[] = [], engine: number[] = [], rate: number[] = [], connect: number[] = [], saves: number[] = [];
    for (let r = 0; r < runs; r++) {
      const { child, sessions } = await fill(ids, room, frames);
      const dir = join(base, `run${r}`);
      mkdirSync(dir);
      try {
        const x = await catchUp(child.port, reader, dir, template, total, perSender);
        screen.push(x.seconds);
        engine.push(x.engineSeconds);
        rate.push(total / x.seconds);
        connect.push(x.connected);
        saves.push(x.saves);
        log(`run ${r + 1}: connected in ${x.connected.toFixed(2)} s; the client emitted all ${total} in ${x.engineSeconds.toFixed(2)} s; the last on screen at ${x.seconds.toFixed(2)} s (${(total / x.seconds).toFixed(0)}/s); the room's group saved ${x.saves} times`);
      } finally {
        for (const c of sessions) c.close();
        await child.stop();
      }
    }
    const what = `${total.toLocaleString("en")} MLS messages (${SENDERS} senders x ${perSender}, sealed by the content layer) queued for an offline member of a room of ${SENDERS + 1}; the real ChatClient v2 and chat UI (Ink, 120x40 fake TTY) in one process`;
    return [
      { metric: `catch-up ${total} to the screen: connect to the last one drawn`, unit: "s", values: screen, better: "lower", note: `${what}; the clock starts as the client starts connecting` },
      { metric: `catch-up ${total} to the screen: rate`, unit: "msg/s", values: rate, better: "higher" },
      { metric: `catch-up ${total} to the screen: connect to the last one emitted by the client`, unit: "s", values: engine, better: "lower", note: "the engine and content layer's part (opened, checked, history written, event emitted)" },
      { metric: `catch-up ${total} to the screen: connect to connected`, unit: "s", values: connect, better: "lower" },
      { metric: `catch-up ${total} to the screen: writes of the room's MLS state`, unit: "saves", values: saves, better: "lower", note: "sealed, synchronous FULL (mls-store.ts): once per delivery batch of up to 128 (PROTOCOL.md §10.4), not per message" },
    ];
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
}
