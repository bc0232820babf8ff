// Scale: memory of the relay per idle connected session at 1,000 and 5,000 sessions (target
// under 100 KB each) and the time for all of them to connect. The relay runs in its own process;
// memory is read there after forced GCs (RSS and live heap + external, both reported).
import { connect, identities, startRelayChild } from "./_lib.mjs";

export const name = "relay-scale";
export const description = "relay memory per idle session, connect time for 1,000 and 5,000 sessions";

const CONCURRENCY = 200;

async function connectAll(port, ids) {
  const sessions = [];
  let next = 0;
  const worker = async () => {
    while (next < ids.length) {
      const id = ids[next++];
      const s = await connect(port, id);
      // Idle from here: the load generator neither decodes directory updates nor keeps the
      // Welcome (each lists everyone online: N clients holding them is O(N^2) here, not there).
      s.onRaw = () => {};
      s.welcome = undefined;
      sessions.push(s);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return sessions;
}

export async function run({ runs, quick, log }) {
  const rows = [];
  for (const n of quick ? [1000] : [1000, 5000]) {
    const ids = identities(n);
    const rss = [];
    const live = [];
    const seconds = [];
    for (let r = 0; r < runs; r++) {
      const relay = await startRelayChild("relay", { limits: { maxSessions: 20_000 } }, { gc: true });
      const before = await relay.mem();
      const t0 = performance.now();
      const sessions = await connectAll(relay.port, ids);
      seconds.push((performance.now() - t0) / 1000);
      const after = await relay.mem();
      rss.push((after.rss - before.rss) / n / 1024);
      live.push((after.heapUsed + after.external - before.heapUsed - before.external) / n / 1024);
      log(`${n} sessions: connected in ${seconds.at(-1).toFixed(1)} s, +${rss.at(-1).toFixed(1)} KB RSS and +${live.at(-1).toFixed(1)} KB live per session`);
      for (const s of sessions) s.close();
      await relay.stop();
    }
    rows.push({ metric: `${n} idle sessions: RSS per session`, unit: "KB", values: rss, better: "lower", target: 100 });
    rows.push({ metric: `${n} idle sessions: live heap+external per session`, unit: "KB", values: live, better: "lower", target: 100 });
    rows.push({ metric: `${n} sessions: time for all to connect`, unit: "s", values: seconds, better: "lower", note: `${CONCURRENCY} handshakes in flight at a time` });
  }
  return rows;
}
