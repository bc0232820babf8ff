// A protocol v2 ChatClient in a process of its own (built code) that can die on cue: with a
// fourth argument, it kills itself with SIGKILL the moment a message with that text is shown
// (after the history kept it, before the engine saved the group or acked: the crash a catch-up
// must survive, test/system/mls-catchup-crash.test.ts). One JSON line per event on stdout (a
// pipe: written synchronously on Linux, so every line printed before the kill arrives).
//   node client-crash-child.mjs <port> <fixture-name> <dir> [kill-at-text]
import { readFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const dist = (p) => import(join(root, "dist", p));
const [port, name, dir, killAt] = process.argv.slice(2);
const { decodeKeyFile } = await dist("protocol/keyfile.js");
const { ChatClient } = await dist("client/chat-client.js");
const { TrustStore } = await dist("client/trust-store.js");
const { ClientStateStore } = await dist("client/state-store.js");
const { MlsKeyStore } = await dist("client/mls-store.js");

const identity = await decodeKeyFile(name, readFileSync(join(root, "test", "fixtures", "keys", `${name}.pem`), "utf8"));
const client = new ChatClient({
  identity, server: `127.0.0.1:${port}`,
  trust: await TrustStore.open(join(dir, `${name}_known_peers.json`)),
  state: ClientStateStore.open(join(dir, `${name}_state.db`)),
  reconnect: { initialMs: 50, maxMs: 300 },
  v2: { store: MlsKeyStore.open(join(dir, `${name}_mls.db`), { username: name, sigPrivate: identity.sigPrivate }) },
});
const out = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
// What the history kept from earlier runs (before this one receives anything).
out({ type: "backlog", texts: client.backlog().filter((m) => !m.own).map((m) => m.text) });
// Subscribed after the history (the ChatClient's first subscriber): a message is kept, then this runs.
client.subscribe((e) => {
  if (e.type === "message" && !e.message.own) {
    out({ type: "message", text: e.message.text, gap: e.message.gap === true });
    if (killAt !== undefined && e.message.text === killAt) process.kill(process.pid, "SIGKILL");
  }
  if (e.type === "refused") out({ type: "refused", conversationId: e.conversationId, from: e.from });
  if (e.type === "notice" && e.level !== "info") out({ type: "notice", text: e.text });
  if (e.type === "connection") out({ type: "connection", state: e.status.state });
});
client.start();
process.on("SIGTERM", async () => {
  await client.close();
  process.exit(0);
});
