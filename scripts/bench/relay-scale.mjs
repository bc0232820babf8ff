// Scale: memory of the relay per idle connected session at 1,000 and 5,000 sessions (target
// under 100 KB each) and the time for all of them to connect. The relay runs in its own process;
// memory is read there after forced GCs (RSS, and live heap + external).
//
// Each run measures two storms on one data dir: the first, where every user registers (binds
// their name durably: an fsync each, and V8's heap grows to hold the storm and keeps that size),
// and then, on a relay restarted on that data dir, the storm of users it knows: the steady
// state. A fresh process for the second storm, because the first one's closed connections are
// still being released when everyone has left, which once made the second storm's live-heap
// figure come out near zero or negative.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, identities, MANY_USERS_FROM_LOOPBACK, startRelayChild } from "./_lib.mjs";

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

async function storm(relay, ids) {
  const before = await relay.mem();
  const t0 = performance.now();
  const sessions = await connectAll(relay.port, ids);
  const seconds = (performance.now() - t0) / 1000;
  const after = await relay.mem();
  const n = ids.length;
  return {
    sessions,
    seconds,
    rss: (after.rss - before.rss) / n / 1024,
    live: (after.heapUsed + after.external - before.heapUsed - before.external) / n / 1024,
  };
}

async function untilEmpty(relay) {
  const deadline = Date.now() + 60_000;
  while ((await relay.stats()).stats.online > 0) {
    if (Date.now() > deadline) throw new Error("sessions did not close");
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function run({ runs, quick, log }) {
  const rows = [];
  for (const n of quick ? [1000] : [1000, 5000]) {
    const ids = identities(n);
    const m = { firstRss: [], firstLive: [], firstS: [], againRss: [], againLive: [], againS: [] };
    for (let r = 0; r < runs; r++) {
      const dataDir = mkdtempSync(join(tmpdir(), "sc-bench-scale-"));
      const opts = { dataDir, limits: { maxSessions: 20_000, ...MANY_USERS_FROM_LOOPBACK } };
      const relay = await startRelayChild("relay", opts, { gc: true });
      const first = await storm(relay, ids);
      for (const s of first.sessions) s.close();
      await untilEmpty(relay);
      await relay.stop();
      const restarted = await startRelayChild("relay", opts, { gc: true });
      const again = await storm(restarted, ids);
      for (const s of again.sessions) s.close();
      await restarted.stop();
      rmSync(dataDir, { recursive: true, force: true });
      m.firstRss.push(first.rss); m.firstLive.push(first.live); m.firstS.push(first.seconds);
      m.againRss.push(again.rss); m.againLive.push(again.live); m.againS.push(again.seconds);
      log(`${n} sessions: first storm ${first.seconds.toFixed(1)} s, +${first.rss.toFixed(0)} KB RSS / +${first.live.toFixed(1)} KB live per session; ` +
        `known users' storm (relay restarted) ${again.seconds.toFixed(1)} s, +${again.rss.toFixed(0)} KB RSS / +${again.live.toFixed(1)} KB live per session`);
    }
    const note = `${CONCURRENCY} handshakes in flight at a time`;
    rows.push({ metric: `${n} sessions, users known: RSS per idle session`, unit: "KB", values: m.againRss, better: "lower", target: 100 });
    rows.push({ metric: `${n} sessions, users known: live heap+external per session`, unit: "KB", values: m.againLive, better: "lower", target: 100 });
    rows.push({ metric: `${n} sessions, users known: time for all to connect`, unit: "s", values: m.againS, better: "lower", note });
    rows.push({ metric: `${n} sessions, all registering: RSS per session`, unit: "KB", values: m.firstRss, better: "lower",
      note: "includes binding every name durably and the heap V8 grows to for the storm and keeps" });
    rows.push({ metric: `${n} sessions, all registering: live heap+external per session`, unit: "KB", values: m.firstLive, better: "lower" });
    rows.push({ metric: `${n} sessions, all registering: time for all to connect`, unit: "s", values: m.firstS, better: "lower", note });
  }
  return rows;
}
