// A second (third, …) relay's store in its own process, for the PostgreSQL store's concurrency
// tests (pg-store-race.test.ts): SyncPg blocks its thread, so real concurrency needs processes.
// Started by test/server/pg-store-children.ts; prints "ready" once loaded, waits for a "go" line
// on stdin, does one thing, prints its result as one JSON line and exits.
//
//   open URL                              openPgStore: {"from":…,"to":…,"relayId":"hex"}
//   bind URL NAME KEYBYTE                 bindUser: {"kind":"bound"|"same"|"taken"}
//   enqueue URL CLOCK SENDER RECIPIENT    enqueue one 10-byte envelope: {"stored":true|false}
//   flood URL SENDER COUNT RECIPIENTS     COUNT envelopes to the comma-separated recipients, in
//                                         batches of 1 to 4: {"stored":COUNT}
//   ack URL ADDR:SEQ,ADDR:SEQ,…           one ackBatch, the acks in this order: {"acked":N}
//   release URL NAME                      releaseUser: {"released":true|false}
//   claim URL COUNT ADDRESSES             COUNT mls.claimKeyPackages of the comma-separated
//                                         addresses: {"oneTime":[hex…],"lastResort":N}
//   purge URL COUNT                       COUNT purgeOlderThan(0) (drops nothing old, only idle
//                                         queue heads), one after the other: {"purged":COUNT}
import { createInterface } from "node:readline";
import { openPgStore } from "../../src/server/store/pg/pg-store.js";

const [op, url, ...rest] = process.argv.slice(2);

function run(): unknown {
  if (url === undefined) throw new Error("usage: pg-store-child.ts open|bind|enqueue URL …");
  if (op === "open") {
    const store = openPgStore(url);
    try {
      return { ...store.migrate, relayId: store.relayId.toString("hex") };
    } finally {
      store.close();
    }
  }
  if (op === "bind") {
    const [name, keyByte] = rest;
    const store = openPgStore(url);
    try {
      const b = (n: number) => Buffer.alloc(32, Number(keyByte) + n);
      return { kind: store.bindUser({ username: name!, sigSpki: b(0), encSpki: b(1), encKeySig: b(2), sigFpr: b(3), encFpr: b(4) }).kind };
    } finally {
      store.close();
    }
  }
  if (op === "enqueue") {
    const [clock, sender, recipient] = rest;
    const store = openPgStore(url, { clock: () => Number(clock) });
    try {
      const stored = store.enqueue({
        sender: sender!, messageId: Buffer.from(`${sender}-${clock}`.padEnd(16, ".")), conversationId: "lobby",
        envelope: Buffer.alloc(10, 7), recipients: [recipient!],
      });
      return { stored };
    } finally {
      store.close();
    }
  }
  if (op === "flood") {
    const [sender, count, recipients] = rest;
    const store = openPgStore(url);
    try {
      let stored = 0;
      while (stored < Number(count)) {
        const n = Math.min(Number(count) - stored, 1 + (stored % 4));
        const reqs = Array.from({ length: n }, (_, i) => ({
          sender: sender!, messageId: Buffer.from(`${sender}-${stored + i}`.padEnd(16, ".")), conversationId: "lobby",
          envelope: Buffer.alloc(10, 7), recipients: recipients!.split(","),
        }));
        stored += store.enqueueBatch(reqs).filter((o) => o === "stored").length;
      }
      return { stored };
    } finally {
      store.close();
    }
  }
  if (op === "ack") {
    const store = openPgStore(url);
    try {
      const acks = rest[0]!.split(",").map((a) => {
        const i = a.lastIndexOf(":");
        return { recipient: a.slice(0, i), seqs: [Number(a.slice(i + 1))] };
      });
      return { acked: store.ackBatch(acks) };
    } finally {
      store.close();
    }
  }
  if (op === "release") {
    const store = openPgStore(url);
    try {
      return { released: store.releaseUser(rest[0]!) };
    } finally {
      store.close();
    }
  }
  if (op === "claim") {
    const [count, addresses] = rest;
    const store = openPgStore(url);
    try {
      const oneTime: string[] = [];
      let lastResort = 0;
      for (let i = 0; i < Number(count); i++) {
        for (const kp of store.mls.claimKeyPackages(addresses!.split(",")).values()) {
          if (kp.lastResort) lastResort++;
          else oneTime.push(kp.keyPackage.toString("hex"));
        }
      }
      return { oneTime, lastResort };
    } finally {
      store.close();
    }
  }
  if (op === "purge") {
    const store = openPgStore(url);
    try {
      for (let i = 0; i < Number(rest[0]); i++) store.purgeOlderThan(0);
      return { purged: Number(rest[0]) };
    } finally {
      store.close();
    }
  }
  throw new Error(`unknown op ${op}`);
}

const lines = createInterface({ input: process.stdin });
lines.once("line", () => {
  try {
    process.stdout.write(`${JSON.stringify(run())}\n`);
    process.exitCode = 0;
  } catch (e) {
    process.stdout.write(`${JSON.stringify({ error: (e as Error).message })}\n`);
    process.exitCode = 1;
  }
  lines.close();
});
process.stdout.write("ready\n");
