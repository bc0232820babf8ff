// chat-tui starting as a LINKED device in a real terminal (PROTOCOL.md §4.5): its HOME holds
// alice_device.pem / alice_device.json and its MLS store (as linking leaves them), no key file.
// It connects with its device proof, says which device it is, /devices shows alice's devices,
// no key file is ever made there, and when alice's primary unlinks it the screen says so and
// it stops. The primary here is a raw session with alice's identity key (it signs the lists).
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeLinkedDevice } from "../../src/client/linked-device.js";
import { MlsKeyStore } from "../../src/client/mls-store.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { deviceListOf, makeLinkedDevice, publishDeviceListOk } from "../helpers/device-session.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { mlsPerson } from "../helpers/mls-ds.js";
import { connectV2 } from "../helpers/mls-queues.js";
import { assertBuilt, TUI_BIN } from "../helpers/relay-process.js";
import { TestRelay } from "../helpers/relay-harness.js";
import { Tmux, tmuxAvailable } from "../helpers/tmux.js";

let dir: string;
let relay: TestRelay | undefined;
let alice: PrivateIdentity;
const tmux = new Tmux();

beforeAll(async () => {
  if (!tmuxAvailable()) throw new Error("tmux is required for the end-to-end tests (.ci/run installs it)");
  assertBuilt();
  dir = mkdtempSync(join(tmpdir(), "sc-linked-e2e-"));
  alice = await fixtureIdentity("alice");
});

afterAll(async () => {
  await tmux.quitAll(["desktop"]);
  await relay?.cleanup();
  if (process.env["SC_KEEP"] === undefined) rmSync(dir, { recursive: true, force: true });
});

describe("chat-tui as a linked device", () => {
  it("starts as the device, lists alice's devices, makes no key file, and stops once unlinked", async () => {
    relay = await TestRelay.start();
    const primary = await connectV2(relay, alice);
    const laptop = await mlsPerson(alice);
    const desktop = await makeLinkedDevice(alice, "desktop");
    await publishDeviceListOk(primary, deviceListOf(alice, laptop, [desktop], 1));

    // The desktop's HOME as linking leaves it.
    const home = join(dir, "desktop");
    const keyDir = join(home, ".config", "secure-chat");
    mkdirSync(keyDir, { recursive: true, mode: 0o700 });
    writeLinkedDevice(keyDir, { username: "alice", deviceId: desktop.deviceId, name: "desktop", identitySpki: alice.sigSpki, encSpki: alice.encSpki, encKeySig: alice.encKeySig, linkedAtMs: Date.now() }, desktop.deviceKey);
    const store = MlsKeyStore.open(join(keyDir, "alice_mls.db"), { username: "alice", sigPrivate: desktop.deviceKey }, { linkedTo: alice.sigSpki });
    store.putClient(desktop.mls);
    store.close();

    tmux.start("desktop", `${process.execPath} ${TUI_BIN} alice --server ${relay.address} --log-file ${join(dir, "desktop.log")} --no-bell`, {
      width: 110, height: 36,
      env: { HOME: home, XDG_CONFIG_HOME: join(home, ".config"), XDG_STATE_HOME: join(home, ".local", "state") },
    });
    await tmux.waitForScreen("desktop", /● connected/, 60_000);
    await tmux.waitForScreen("desktop", (s) => s.includes("This is alice's linked device 'desktop'"), 30_000);
    tmux.say("desktop", "/devices");
    const listed = await tmux.waitForScreen("desktop", (s) => s.includes("devices of alice: 2") && /desktop\s+\S{8}\s+linked\s+this device/.test(s) && /laptop\s+\S{8}\s+primary/.test(s), 30_000);
    expect(listed).toContain("only the primary device can link or unlink devices");
    expect(existsSync(join(keyDir, "alice_key.pem"))).toBe(false);

    // alice's primary unlinks it: the relay ends its session; the screen says why and it stays stopped.
    await publishDeviceListOk(primary, deviceListOf(alice, laptop, [], 2));
    await tmux.waitForScreen("desktop", (s) => s.includes("this device was unlinked by alice's primary device"), 30_000);
    expect(existsSync(join(keyDir, "alice_key.pem"))).toBe(false);
    primary.end();
  }, 180_000);
});
