// Test-only worker thread: one "relay" (its own PgParts over its own SyncPg connection) racing
// the others on one database (test/server/pg-mls-race.test.ts). All racers wait at a shared
// barrier before each contested step, so their transactions really overlap. Loaded by Node
// itself (type stripping), not by vitest: see startRacer in pg-mls-race.test.ts.
import { parentPort, workerData } from "node:worker_threads";
import { SyncPg } from "../../src/server/store/pg/sync-client.js";
import { PgParts } from "./mls-pg-parts.js";

export interface RacerInput {
  readonly url: string;
  readonly mode: "commit" | "claim" | "list" | "create";
  /** Int32Array over it: [arrived, generation]. */
  readonly barrier: SharedArrayBuffer;
  readonly parties: number;
  /** commit: the group, its epochs 0..rounds-1, who commits and the commit's bytes tag. */
  readonly groupId?: Uint8Array;
  readonly rounds?: number;
  readonly sender?: string;
  readonly tag?: string;
  /** create: this racer's group ids are [index, round, 0…]; conversation `#c<round>` for all. */
  readonly index?: number;
  /** claim: whose KeyPackages. list: the versions this racer publishes, in order. */
  readonly address?: string;
  readonly versions?: readonly number[];
}

export type RacerResult =
  | { readonly mode: "commit"; readonly outcomes: ReadonlyArray<{ kind: string; epoch?: number; current?: number; winner?: string | undefined; queued?: number }> }
  | { readonly mode: "claim"; readonly claimed: readonly string[]; readonly endedWith: "last-resort" | "none" }
  | { readonly mode: "list"; readonly accepted: readonly number[] }
  | { readonly mode: "create"; readonly outcomes: readonly string[] };

const BARRIER_WAIT_MS = 20_000;

/** Waits until all `parties` racers arrived (reusable: one generation per round). */
function barrierWait(state: Int32Array, parties: number): void {
  const generation = Atomics.load(state, 1);
  if (Atomics.add(state, 0, 1) === parties - 1) {
    Atomics.store(state, 0, 0);
    Atomics.add(state, 1, 1);
    Atomics.notify(state, 1);
    return;
  }
  const deadline = Date.now() + BARRIER_WAIT_MS;
  while (Atomics.load(state, 1) === generation) {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error("the other racers did not arrive at the barrier");
    Atomics.wait(state, 1, generation, left);
  }
}

function run(input: RacerInput): RacerResult {
  const db = new SyncPg({ url: input.url, applicationName: "pg-mls-racer" });
  const parts = new PgParts(db, Date.now);
  const state = new Int32Array(input.barrier);
  try {
    db.query("SELECT 1"); // connected before the first barrier, so the start is even
    if (input.mode === "commit") {
      const groupId = Buffer.from(input.groupId!);
      const sender = input.sender!;
      const outcomes: Array<{ kind: string; epoch?: number; current?: number; winner?: string | undefined; queued?: number }> = [];
      for (let epoch = 0; epoch < input.rounds!; epoch++) {
        barrierWait(state, input.parties);
        const bytes = Buffer.from(`${input.tag!}@${epoch}`);
        const out = parts.mls.acceptCommit(groupId, epoch, sender, bytes, Buffer.from(`gi ${input.tag!}@${epoch + 1}`),
          { external: false, added: [], removed: [] },
          (before) => [{ sender, messageId: bytes, conversationId: "#race", envelope: bytes, payload: "mls", recipients: before.filter((u) => u !== sender) }]);
        const { queued, ...rest } = out as { queued?: readonly unknown[] };
        outcomes.push({ ...(rest as { kind: string }), ...(queued === undefined ? {} : { queued: queued.length }) });
      }
      return { mode: "commit", outcomes };
    }
    if (input.mode === "claim") {
      const claimed: string[] = [];
      barrierWait(state, input.parties);
      for (;;) {
        const kp = parts.mls.claimKeyPackage(input.address!);
        if (kp === undefined) return { mode: "claim", claimed, endedWith: "none" };
        if (kp.lastResort) return { mode: "claim", claimed, endedWith: "last-resort" };
        claimed.push(kp.keyPackage.toString());
      }
    }
    if (input.mode === "create") {
      const outcomes: string[] = [];
      for (let round = 0; round < input.rounds!; round++) {
        barrierWait(state, input.parties);
        const groupId = Buffer.alloc(20);
        groupId.writeUInt16BE(input.index!, 0);
        groupId.writeUInt16BE(round, 2);
        outcomes.push(parts.mls.createGroup({
          groupId, conversationId: `#c${round}`, creator: input.sender!, epoch: 0, groupInfo: Buffer.from("gi"), groupInfoEpoch: 0,
        }));
      }
      return { mode: "create", outcomes };
    }
    const accepted: number[] = [];
    barrierWait(state, input.parties);
    for (const v of input.versions!) {
      if (db.transaction(() => parts.devices.putListLocked(input.address!, v, Buffer.from(`list v${v}`)))) accepted.push(v);
    }
    return { mode: "list", accepted };
  } finally {
    db.close();
  }
}

if (parentPort !== null && workerData !== null) {
  try {
    parentPort.postMessage({ ok: true, result: run(workerData as RacerInput) });
  } catch (e) {
    parentPort.postMessage({ ok: false, error: e instanceof Error ? `${e.name}: ${e.message}` : String(e) });
  }
}
