// Shared pieces of the relay benchmarks: the relay in a child process, many identities from the
// five fixture key pairs, and a lean raw protocol client (pre-encoded frames, no trust store).
import { fork } from "node:child_process";
import { readFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { once } from "node:events";

export const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const dist = (p) => import(join(root, "dist", p));

/** Starts the relay (or the ceiling) in a child process; resolves with {port, mem(), stop()}. */
export async function startRelayChild(mode, opts = {}) {
  const child = fork(join(root, "scripts", "bench", "_relay-host.mjs"), [mode, JSON.stringify(opts)], {
    execArgv: ["--expose-gc"], stdio: ["ignore", "pipe", "inherit", "ipc"],
  });
  let buf = "";
  const port = await new Promise((resolve, reject) => {
    child.stdout.on("data", (d) => {
      buf += d;
      const nl = buf.indexOf("\n");
      if (nl >= 0) resolve(JSON.parse(buf.slice(0, nl)).port);
    });
    child.on("exit", (c) => reject(new Error(`relay host exited ${c}`)));
  });
  return {
    port,
    pid: child.pid,
    async mem() {
      child.send({ cmd: "mem" });
      const [m] = await once(child, "message");
      return m;
    },
    async stop() {
      child.send({ cmd: "stop" });
      await once(child, "exit");
    },
  };
}

/** n identities named u0000.. from the fixture key pairs (a key may own several names). */
export async function identities(n, prefix = "u") {
  const { importPrivateKeyPem, identityFromPrivateKeys } = await dist("protocol/keys.js");
  const pairs = ["alice", "bob", "carol", "dave", "mallory"].map((f) => {
    const pem = readFileSync(join(root, "test", "fixtures", "keys", `${f}.pem`), "utf8");
    const [sig, enc] = [...pem.matchAll(/-----BEGIN PRIVATE KEY-----[\s\S]*?-----END PRIVATE KEY-----/g)].map((m) => importPrivateKeyPem(m[0]));
    return { sig, enc };
  });
  return Array.from({ length: n }, (_, i) => {
    const p = pairs[i % pairs.length];
    return identityFromPrivateKeys(`${prefix}${String(i).padStart(4, "0")}`, p.sig, p.enc);
  });
}

/** A lean session: raw bytes out, decoded frames to onFrame; handshake() resolves with Welcome. */
export async function benchSession(port, identity, onFrame = () => {}) {
  const grpc = await import("@grpc/grpc-js");
  const { SessionRequest, SessionResponse } = await dist("gen/securechat/v1/chat.js");
  const { signProof } = await dist("protocol/keys.js");
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), {
    "grpc.use_local_subchannel_pool": 1, "grpc.max_receive_message_length": 64 * 1024 * 1024,
  });
  // grpc-js wants Buffers, and encode().finish() gives a Uint8Array.
  const call = client.makeBidiStreamRequest("/securechat.v1.ChatService/Session", (b) => Buffer.from(b.buffer, b.byteOffset, b.length), (b) => b, new grpc.Metadata());
  call.on("error", () => {});
  let welcomeResolve;
  const welcome = new Promise((r) => (welcomeResolve = r));
  const write = async (bytes) => {
    if (!call.write(bytes)) await once(call, "drain");
  };
  call.on("data", (raw) => {
    const f = SessionResponse.decode(raw).frame;
    if (f?.$case === "challenge") {
      void write(SessionRequest.encode({ frame: { $case: "proof", value: { signature: signProof(identity, f.value.relayId, f.value.nonce) } } }).finish());
    } else if (f?.$case === "welcome") {
      welcomeResolve(f.value);
    } else if (f) {
      onFrame(f, raw.length);
    }
  });
  void write(SessionRequest.encode({
    frame: { $case: "hello", value: { username: identity.username, sigSpki: identity.sigSpki, encSpki: identity.encSpki, encKeySig: identity.encKeySig, clientVersion: "bench", protocolVersion: 1 } },
  }).finish());
  return {
    welcome,
    write,
    encode: (frame) => SessionRequest.encode({ frame }).finish(),
    close() {
      call.cancel();
      client.close();
    },
  };
}
