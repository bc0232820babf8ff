// MLS (protocol v2 groundwork, issue 12 "Performance"): a room of 500 on our wrapper
// (src/protocol/mls) with the X-Wing suite. Targets from the issue:
//   send one message: <= 5 ms of CPU and <= 1 KB on the wire per recipient (v1: ~52 ms, 192 KB)
//   open one: <= 3 ms;  add 499 members in one commit: <= 3 s
// The ciphertext of one application message is the same bytes for every recipient: "bytes per
// recipient" is its size. Informative rows: the Welcome and commit sizes, and the cost of the
// first full-path update after the mass add (sparse tree) and of processing it.
import { generateKeyPairSync } from "node:crypto";
import * as mls from "../../src/protocol/mls/index.js";
import type { Row, RunOptions } from "./_lib.js";

export const name = "mls";
export const description = "MLS room of 500 (X-Wing suite) on src/protocol/mls: send, open, add 499";

const MEMBERS = 500;

/** CPU milliseconds (user + system) of `fn`, which may be async. */
async function cpuMs<T>(fn: () => T | Promise<T>): Promise<{ cpu: number; wall: number; out: T }> {
  const start = process.cpuUsage();
  const t0 = performance.now();
  const out = await fn();
  const d = process.cpuUsage(start);
  return { cpu: (d.user + d.system) / 1000, wall: performance.now() - t0, out };
}

export async function run({ runs, quick, log }: RunOptions): Promise<Row[]> {
  const person = async (username: string) => {
    const { privateKey } = generateKeyPairSync("ed25519");
    return mls.createMlsClient({ username, sigPrivate: privateKey });
  };
  log(`preparing ${MEMBERS - 1} clients and KeyPackages (not measured)`);
  const creator = await person("u000");
  const others: Array<{ client: Awaited<ReturnType<typeof person>>; kp: Awaited<ReturnType<typeof mls.generateKeyPackage>>; stored: Awaited<ReturnType<typeof mls.restoreKeyPackage>> }> = [];
  for (let i = 1; i < MEMBERS; i++) {
    const client = await person(`u${String(i).padStart(3, "0")}`);
    const kp = await mls.generateKeyPackage(client);
    others.push({ client, kp, stored: await mls.restoreKeyPackage(client, kp.stored) });
  }
  const messages = quick ? 50 : 200;
  const body = new TextEncoder().encode("x".repeat(200));

  const add: number[] = [], welcome: number[] = [], tree: number[] = [], addCommit: number[] = [], send: number[] = [];
  const bytes: number[] = [], open: number[] = [], upd: number[] = [], updBytes: number[] = [], updProcess: number[] = [];
  for (let r = 0; r < runs; r++) {
    const g = await mls.MlsGroup.create(creator, "#bench");
    const a = await cpuMs(() => g.addMembers(others.map((o) => o.kp.keyPackage)));
    add.push(a.cpu);
    g.confirmCommit();
    const added = a.out;
    if (added.welcome === undefined || added.ratchetTree === undefined) throw new Error("bench: adding members gave no Welcome");
    welcome.push(added.welcome.length / 1024);
    tree.push(added.ratchetTree.length / 1024);
    addCommit.push(added.commit.length / 1024);
    // Two recipients join (the others would do the same work, each on its own machine).
    const joined: mls.MlsGroup[] = [];
    for (const o of others.slice(0, 2)) {
      const copy = { ...o.stored, privateKeys: { ...o.stored.privateKeys, initPrivateKey: new Uint8Array(o.stored.privateKeys.initPrivateKey), hpkePrivateKey: new Uint8Array(o.stored.privateKeys.hpkePrivateKey) } };
      joined.push((await mls.MlsGroup.joinFromWelcome(o.client, added.welcome, added.ratchetTree, () => copy)).group);
    }
    const sent: Uint8Array[] = [];
    const s = await cpuMs(async () => {
      for (let i = 0; i < messages; i++) sent.push(await g.encrypt(body));
    });
    send.push(s.cpu / messages);
    bytes.push(sent.reduce((n, m) => n + m.length, 0) / sent.length);
    const o = await cpuMs(async () => {
      for (const m of sent) {
        const got = await joined[0]!.process(m);
        if (got.kind !== "application") throw new Error("bench: a message did not open");
      }
    });
    open.push(o.cpu / messages);
    // The first full-path update after the mass add, by a recipient, and its processing.
    const u = await cpuMs(() => joined[0]!.selfUpdate());
    upd.push(u.cpu);
    updBytes.push(u.out.commit.length / 1024);
    joined[0]!.confirmCommit();
    const p = await cpuMs(() => joined[1]!.process(u.out.commit));
    updProcess.push(p.cpu);
    log(`run ${r + 1}: add ${a.cpu.toFixed(0)} ms, send ${(s.cpu / messages).toFixed(2)} ms, open ${(o.cpu / messages).toFixed(2)} ms, ${Math.round(bytes.at(-1) ?? 0)} B/message`);
  }
  return [
    { metric: "room of 500: send one message (CPU)", unit: "ms", values: send, better: "lower", target: 5, note: "v1: ~52 ms (500 RSA wraps)" },
    { metric: "room of 500: bytes on the wire per recipient", unit: "B", values: bytes, better: "lower", target: 1024, note: "200-byte text; v1: ~192 KB of wraps" },
    { metric: "room of 500: open one message (CPU)", unit: "ms", values: open, better: "lower", target: 3 },
    { metric: "room of 500: add 499 members in one commit (CPU)", unit: "ms", values: add, better: "lower", target: 3000 },
    { metric: "room of 500: Welcome size", unit: "KiB", values: welcome, better: "lower" },
    { metric: "room of 500: ratchet tree beside it (stored once)", unit: "KiB", values: tree, better: "lower" },
    { metric: "room of 500: commit adding 499", unit: "KiB", values: addCommit, better: "lower" },
    { metric: "room of 500: first self-update after the add (CPU)", unit: "ms", values: upd, better: "lower", note: "sparse tree: the path encrypts to many nodes" },
    { metric: "room of 500: that update's size", unit: "KiB", values: updBytes, better: "lower" },
    { metric: "room of 500: processing that update (CPU)", unit: "ms", values: updProcess, better: "lower" },
  ];
}
