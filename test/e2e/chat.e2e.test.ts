// End to end with the real binaries in real terminals: a relay, a recording proxy in front of
// it, and two chat-tui in tmux. alice talks to everyone and DMs robert; robert answers; each screen
// shows the other's words; the bytes between clients and relay never contain the plaintext.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRecordingProxy, type RecordingProxy } from "../helpers/recording-proxy.js";
import { startRelayProcess, TUI_BIN, type RelayProcess } from "../helpers/relay-process.js";
import { Tmux, tmuxAvailable } from "../helpers/tmux.js";

let dir: string;
let relay: RelayProcess;
let proxy: RecordingProxy;
const tmux = new Tmux();

function tui(name: string, port: number): string {
  return `${process.execPath} ${TUI_BIN} ${name} --server 127.0.0.1:${port} --key-dir ${join(dir, "keys")} --log-file ${join(dir, `${name}.log`)} --no-bell`;
}

beforeAll(async () => {
  if (!tmuxAvailable()) throw new Error("tmux is required for the end-to-end tests (.ci/run installs it)");
  dir = mkdtempSync(join(tmpdir(), "sc-e2e-"));
  relay = await startRelayProcess(join(dir, "relay"));
  proxy = await startRecordingProxy("127.0.0.1", relay.port);
});

afterAll(async () => {
  tmux.kill();
  await proxy?.close();
  await relay?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const APPLICATION_DATA = 0x17;

/**
 * A byte stream cut into TLS records (RFC 8446 §5.1: type, legacy version, 16-bit length, body);
 * throws on anything that is not one. The last record may be cut short by a closed connection.
 */
function tlsRecords(stream: Buffer): { type: number; body: Buffer }[] {
  const records: { type: number; body: Buffer }[] = [];
  let at = 0;
  while (at < stream.length) {
    if (stream.length - at < 5) break;
    const type = stream[at]!;
    if (type < 0x14 || type > 0x17) throw new Error(`byte ${at}: record type ${type} is not TLS`);
    if (stream[at + 1] !== 0x03) throw new Error(`byte ${at}: record version ${stream[at + 1]}.${stream[at + 2]} is not TLS`);
    const length = stream.readUInt16BE(at + 3);
    if (length > 16_384 + 256) throw new Error(`byte ${at}: record of ${length} bytes is longer than TLS allows`);
    records.push({ type, body: stream.subarray(at + 5, Math.min(stream.length, at + 5 + length)) });
    at += 5 + length;
  }
  return records;
}

describe("two people chatting through the real binaries", () => {
  it("delivers lobby messages and DMs both ways, and the wire never carries plaintext", async () => {
    const env = { XDG_STATE_HOME: join(dir, "state") };
    tmux.start("alice", tui("alice", proxy.port), { env });
    // First run: keys are generated (RSA-3072), then the session connects.
    await tmux.waitForScreen("alice", /connected/, 60_000);
    // robert still has the roll-out's SECURECHAT_PROTOCOL=1 in his environment: one line says it is
    // ignored (v1 is retired), and he chats on v2 like everyone.
    tmux.start("robert", tui("robert", proxy.port), { env: { ...env, SECURECHAT_PROTOCOL: "1" } });
    await tmux.waitForScreen("robert", /connected/, 60_000);
    await tmux.waitForScreen("robert", (s) => s.replace(/\s+/g, " ").includes("SECURECHAT_PROTOCOL=1 is ignored: protocol v1 is retired"));
    // Each sees the other online in the sidebar.
    await tmux.waitForScreen("alice", /robert/);
    // A lobby line is for who is in the lobby's group when it is sent (PROTOCOL.md §7): robert's
    // client joins it just after coming online, and alice's header counts him once he is in.
    await tmux.waitForScreen("alice", /2 online · 2 can read new lines/);

    const lobbyText = "hello everyone from alice 7f3a";
    tmux.say("alice", lobbyText);
    await tmux.waitForScreen("robert", (s) => s.includes(lobbyText));
    await tmux.waitForScreen("alice", (s) => s.includes(lobbyText) && s.includes("✓"));

    const dmText = "psst robert, the secret plan 9c2e";
    tmux.say("alice", `/msg robert ${dmText}`);
    await tmux.waitForScreen("alice", (s) => s.includes(dmText));
    // robert opens the conversation with alice and sees the DM.
    tmux.say("robert", "/query alice");
    await tmux.waitForScreen("robert", (s) => s.includes(dmText));

    const reply = "got it alice, over and out 51d0";
    tmux.say("robert", reply);
    await tmux.waitForScreen("alice", (s) => s.includes(reply));

    const wire = proxy.recorded();
    expect(wire.length).toBeGreaterThan(1000);
    // TLS by default (the relay's certificate pinned on first use): not even the routing
    // metadata the relay sees (usernames, the protocol's labels) is visible on the path.
    // Every byte of every connection, both ways, is a TLS record, and only the opening handshake
    // is in the clear: the rest is application data under TLS's AEAD. The metadata is looked for
    // in that clear part. The handshake's key shares (X25519MLKEM768: ~2.3 KB of random bytes per
    // connection) are as random as ciphertext, where a 3-byte name turns up by chance about once
    // per 16 MB: the test's names are 5 letters or more (a "bob" failed CI once that way).
    const clear: Buffer[] = [];
    for (const stream of proxy.streams()) {
      if (stream.length === 0) continue;
      const records = tlsRecords(stream);
      expect(records[0]?.type, "a connection opens with a TLS handshake record").toBe(0x16);
      for (const r of records) if (r.type !== APPLICATION_DATA) clear.push(r.body);
    }
    const cleartext = Buffer.concat(clear);
    expect(cleartext.length).toBeGreaterThan(0);
    for (const metadata of ["alice", "robert", "securechat.v1.ChatService"]) {
      expect(cleartext.includes(Buffer.from(metadata)), `"${metadata}" in the clear`).toBe(false);
    }
    for (const metadata of ["alice", "securechat.v1.ChatService"]) {
      expect(wire.includes(Buffer.from(metadata)), `"${metadata}" on the wire`).toBe(false);
    }
    for (const secret of [lobbyText, dmText, reply, "secret plan", "over and out"]) {
      expect(wire.includes(Buffer.from(secret, "utf8")), `plaintext "${secret}" on the wire`).toBe(false);
    }

    tmux.say("alice", "/quit");
    expect(await tmux.waitForExit("alice")).toBe(0);
    tmux.keys("robert", "C-c");
    expect(await tmux.waitForExit("robert")).toBe(0);
  }, 180_000);
});
