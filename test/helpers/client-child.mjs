// A ChatClient in a process of its own (built code), so a test can freeze it with SIGSTOP. It
// prints one JSON line per event it cares about; stdin "send <conversation> <text>" sends.
//   node client-child.mjs <port> <fixture-name> <dir>
import { readFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const dist = (p) => import(join(root, "dist", p));
const [port, name, dir] = process.argv.slice(2);
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
client.subscribe((e) => {
  if (e.type === "message" && !e.message.own) out({ type: "message", id: e.message.id, from: e.message.from, text: e.message.text, gap: e.message.gap === true });
  if (e.type === "connection") out({ type: "connection", state: e.status.state });
});
client.start();
createInterface({ input: process.stdin }).on("line", (line) => {
  const [cmd, conv, ...rest] = line.split(" ");
  if (cmd === "send") out({ type: "sent", result: client.send(conv, rest.join(" ")) });
});
process.on("SIGTERM", async () => {
  await client.close();
  process.exit(0);
});
