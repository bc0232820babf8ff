// The relay's life around the sessions: orderly shutdown, startup failures as sentences, the
// operator's users commands, retention, and TLS.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { status as GrpcStatus } from "@grpc/grpc-js";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode, SendStatus } from "../../src/gen/securechat/v1/chat.js";
import { keyTag, type PrivateIdentity } from "../../src/protocol/keys.js";
import { nullLogger } from "../../src/protocol/log.js";
import { defaultRelayDataDir, RelayStartError, startRelay } from "../../src/server/relay.js";
import { formatUserList, listBoundUsers, releaseUsername } from "../../src/server/users-command.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { makeKeyPackage, mlsPerson, must, sendCommit } from "../helpers/mls-ds.js";
import { queuedRows, sendMls, takeMls } from "../helpers/mls-queues.js";
import { MlsTalk } from "../helpers/mls-talk.js";
import { RawSession } from "../helpers/raw-session.js";
import { TestRelay } from "../helpers/relay-harness.js";

let alice: PrivateIdentity;
let bob: PrivateIdentity;
let malloryAsBob: PrivateIdentity;
let relay: TestRelay;
const scratch: string[] = [];

beforeAll(async () => {
  [alice, bob, malloryAsBob] = await Promise.all([fixtureIdentity("alice"), fixtureIdentity("bob"), fixtureIdentity("mallory", "bob")]);
});

afterEach(async () => {
  await relay?.cleanup();
  for (const d of scratch.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** The built bin (npm test builds first). */
const RELAY_BIN = fileURLToPath(new URL("../../dist/server/main.js", import.meta.url));

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "sc-relay-life-"));
  scratch.push(d);
  return d;
}

// A self-signed test certificate for localhost / 127.0.0.1 (P-256, valid until 2126). Test only.
const TEST_CERT = `-----BEGIN CERTIFICATE-----
MIIBnDCCAUGgAwIBAgIUXhp9XtCITlqP+vfUw0iUap34bk0wCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTEyNTIwMDM0MloYDzIxMjYxMTAx
MjAwMzQyWjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAARoMGB1zSViRik8SBb/HX9LPHdlwl7+hY7qqeeGo9DE1r/+SakLhYj6
+HInGvQTZjVQFYMpWoP792+BqrxgKnbZo28wbTAdBgNVHQ4EFgQUX2UsKIYpIDBA
8by+7rfw1eTGUkQwHwYDVR0jBBgwFoAUX2UsKIYpIDBA8by+7rfw1eTGUkQwDwYD
VR0TAQH/BAUwAwEB/zAaBgNVHREEEzARgglsb2NhbGhvc3SHBH8AAAEwCgYIKoZI
zj0EAwIDSQAwRgIhAKmA1/Svr6UUXUXlQh8p4qNaJuKGv/OcA2OtOCVwt0q9AiEA
t3JUjhc8DXhWc/M4Ekg1Ga3r5SlQg4ZdWUGwe/Osi5s=
-----END CERTIFICATE-----
`;
const TEST_KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgJr0Cp5GTNZlijZCD
UaUPjEwmKm5P3mHEUveo+yaXDbWhRANCAARoMGB1zSViRik8SBb/HX9LPHdlwl7+
hY7qqeeGo9DE1r/+SakLhYj6+HInGvQTZjVQFYMpWoP792+BqrxgKnbZ
-----END PRIVATE KEY-----
`;

describe("relay lifecycle", () => {
  it("shuts down in order: a Notice, then UNAVAILABLE for live and handshaking streams; new ones are refused", async () => {
    relay = await TestRelay.start();
    const a = await relay.connect(alice);
    const half = relay.open();
    half.hello(bob);
    await half.next("challenge");
    const address = relay.address;
    const transport = relay.transport;

    await relay.stop();
    expect((await a.next("notice")).text).toBe("it is shutting down; you will be reconnected when it is back (messages are kept)");
    const end = await a.status();
    expect({ code: GrpcStatus[end.code], details: end.details, errorCode: end.errorCode })
      .toEqual({ code: "UNAVAILABLE", details: "relay shutting down", errorCode: "ERROR_CODE_SHUTTING_DOWN" });
    expect(GrpcStatus[(await half.status()).code]).toBe("UNAVAILABLE");
    expect(relay.events("relay.stop")).toHaveLength(1);
    expect(relay.events("relay.force_shutdown")).toHaveLength(0);
    expect(relay.logs.map((l) => l.event).filter((e) => e.startsWith("relay."))).toEqual(["relay.start", "relay.stopping", "relay.stop"]);

    const late = new RawSession(address, transport);
    late.hello(alice);
    expect(GrpcStatus[(await late.status()).code]).toBe("UNAVAILABLE");
    late.close();
  });

  it("keeps the queue across a restart: accepted means stored", async () => {
    relay = await TestRelay.start();
    expect(statSync(join(relay.dataDir, "relay.db")).mode & 0o777).toBe(0o600);
    const b0 = await relay.connect(bob);
    const a = await relay.connect(alice);
    const dm = await MlsTalk.start(relay, a, [alice, bob], "dm:alice:bob", [b0]);
    await relay.disconnect(b0, "bob");
    expect((await dm.sendAccepted(a, "alice", "survives restarts")).queuedFor).toEqual(["bob"]);
    await relay.restart();
    const b = await relay.connect(bob);
    expect(b.welcome.queued).toBe(1);
    expect(await dm.open("bob", await b.deliveries(1))).toEqual(["survives restarts"]);
  });

  it("reports startup problems as one sentence: port in use, unusable data dir", async () => {
    relay = await TestRelay.start();
    const dir = tempDir();
    await expect(startRelay({ host: "127.0.0.1", port: relay.running.port, dataDir: join(dir, "second"), logger: nullLogger }))
      .rejects.toThrow(new RelayStartError(`cannot listen on 127.0.0.1:${relay.running.port}: the port is already in use`));
    const file = join(dir, "not-a-dir");
    writeFileSync(file, "x");
    await expect(startRelay({ host: "127.0.0.1", port: 0, dataDir: join(file, "relay"), logger: nullLogger }))
      .rejects.toThrow(new RelayStartError(`cannot use data directory ${join(file, "relay")}: a part of the path is not a directory`));
    await expect(startRelay({ host: "127.0.0.1", port: 0, dataDir: join(dir, "x"), logger: nullLogger, limits: { burst: 0 } }))
      .rejects.toThrow(/limit burst must be a positive integer/);
  });

  it("lists bound users and releases a name: a new key may claim it, without the old key's queue, rooms, groups or KeyPackages", async () => {
    relay = await TestRelay.start();
    const oldBob = await relay.connect(bob);
    const a = await relay.connect(alice);
    // The old key is in alice's DM group and a room's group, and left a KeyPackage.
    const dm = await MlsTalk.start(relay, a, [alice, bob], "dm:alice:bob", [oldBob]);
    const room = await MlsTalk.start(relay, a, [alice, bob], "#ops", [oldBob]);
    await must(oldBob, { $case: "publishKeyPackages", value: { requestId: 0, oneTime: [await makeKeyPackage(await mlsPerson(bob))], lastResort: Buffer.alloc(0) } }, "keyPackageStatus");
    await relay.disconnect(oldBob, "bob");
    expect((await dm.sendAccepted(a, "alice", "for the old key")).queuedFor).toEqual(["bob"]);

    // Beside the running relay (WAL lets both open the database).
    const users = listBoundUsers(relay.dataDir);
    expect(users.map((u) => u.username)).toEqual(["alice", "bob"]);
    expect(users[1]!.sigFpr.equals(bob.sigFpr)).toBe(true);
    const table = formatUserList(users);
    expect(table).toContain(bob.sigFpr.toString("hex"));
    expect(table).toContain(alice.encFpr.toString("hex"));
    expect(table.split("\n")[0]).toMatch(/^USERNAME/);

    expect(releaseUsername(relay.dataDir, "bob")).toBe(true);
    expect(releaseUsername(relay.dataDir, "bob")).toBe(false);
    expect(() => releaseUsername(relay.dataDir, "../bob")).toThrow(/must start with a lower-case letter/);

    const newBob = await relay.connect(malloryAsBob);
    expect(newBob.welcome.queued).toBe(0);
    expect(newBob.welcome.rooms).toEqual([]);
    // Nor the old key's MLS groups (PROTOCOL.md §8.2): the new key gets none of their traffic,
    // may not send into them or commit, and nobody can add the name with the old KeyPackage.
    const toDm = await dm.encrypt("alice", "after the release");
    expect((await sendMls(a, toDm)).queuedFor).toEqual([]);
    const toRoom = await room.encrypt("alice", "in the room after the release");
    expect((await sendMls(a, toRoom)).queuedFor).toEqual([]);
    await newBob.barrier();
    expect(newBob.has("deliver")).toBe(false);
    expect(queuedRows(relay, "bob")).toBe(0);
    for (const replay of [toDm, toRoom]) {
      expect(await sendMls(newBob, replay)).toMatchObject({ status: SendStatus.SEND_STATUS_REFUSED, code: ErrorCode.ERROR_CODE_NOT_A_MEMBER });
    }
    const upd = await room.group("bob").selfUpdate();
    expect(await sendCommit(newBob, upd.commit)).toMatchObject({ accepted: false, code: ErrorCode.ERROR_CODE_NOT_A_MEMBER });
    const claim = await must(a, { $case: "claimKeyPackages", value: { requestId: 0, usernames: ["bob"], deviceIds: [] } }, "keyPackageList");
    expect(claim.missing).toEqual(["bob"]);
    // Peers see a new key tag for bob; the keys they then fetch are the new ones, and the client's
    // key-change flow takes it from there.
    const changed = await a.next("directoryUpdate", (u) => u.entries.some((e) => e.username === "bob" && e.keyTag.equals(keyTag(malloryAsBob.sigFpr, malloryAsBob.encFpr))));
    expect(changed.entries.find((e) => e.username === "bob")!.sigSpki.length).toBe(0);
    const [fetched] = await a.lookupKeys(["bob"]);
    expect(fetched!.sigSpki.equals(malloryAsBob.sigSpki)).toBe(true);
    // The old key is now the stranger.
    const old = relay.open();
    await old.handshake(bob).catch(() => undefined);
    expect(GrpcStatus[(await old.status()).code]).toBe("ALREADY_EXISTS");
    expect(listBoundUsers(relay.dataDir)[1]!.sigFpr.equals(malloryAsBob.sigFpr)).toBe(true);
    expect(() => listBoundUsers(join(tempDir(), "nothing-here"))).toThrow(/no relay database in/);
  });

  it("drops undelivered envelopes older than the retention", async () => {
    let now = Date.now();
    relay = await TestRelay.start({ clock: () => now, limits: { retentionMs: 60_000 } });
    const b0 = await relay.connect(bob);
    const a = await relay.connect(alice);
    const dm = await MlsTalk.start(relay, a, [alice, bob], "dm:alice:bob", [b0]);
    await relay.disconnect(b0, "bob");
    now += 1; // the group's registration is older than what follows
    const purgedBefore = relay.running.purgeExpired();
    const old = await dm.encrypt("alice", "too late");
    await sendMls(a, old);
    now += 30_000;
    await dm.sendAccepted(a, "alice", "just in time");
    now += 40_000; // the first is 70 s old, the second 40 s

    // The first message's queue row, its stored copy and its accepted id, and the accepted ids
    // of the registration's commit and Welcome (70 s old too; the Welcome was delivered and acked).
    expect(relay.running.purgeExpired()).toEqual({ queueRows: 1, envelopes: 1, acceptedIds: 3 });
    expect(purgedBefore).toEqual({ queueRows: 0, envelopes: 0, acceptedIds: 0 });
    const b = await relay.connect(bob);
    expect(b.welcome.queued).toBe(1);
    expect(b.welcome.limits?.retentionMs).toBe(60_000);
    expect(await dm.open("bob", await b.deliveries(1))).toEqual(["just in time"]);
    // The purged id is not answered as a duplicate (that answer comes before any check): sent
    // again, it is checked as new. MLS messages carry no date the relay can read; what bounds
    // a resurrected message is its epoch (PROTOCOL.md §8.3: the current one or the one
    // before). Once the group moved on two epochs, it is refused with that sentence.
    for (let i = 0; i < 2; i++) {
      const u = await dm.group("bob").selfUpdate();
      expect(await sendCommit(b, u.commit)).toMatchObject({ accepted: true });
      dm.group("bob").confirmCommit();
      await dm.group("alice").process((await takeMls(a, 1))[0]!.mls.mls);
    }
    const again = await sendMls(a, old);
    expect([again.status, again.code]).toEqual([SendStatus.SEND_STATUS_REFUSED, ErrorCode.ERROR_CODE_BAD_MLS_MESSAGE]);
    expect(again.detail).toBe("the message is for epoch 1, but the group of dm:alice:bob is at epoch 3; only messages for epoch 3 or 2 are accepted");
    expect(relay.events("send.duplicate")).toEqual([]);
  });

  it("serves TLS when given a certificate and key", async () => {
    relay = await TestRelay.start({ tls: { cert: Buffer.from(TEST_CERT), key: Buffer.from(TEST_KEY) } });
    const a = await relay.connect(alice);
    const b = await relay.connect(bob);
    const dm = await MlsTalk.start(relay, a, [alice, bob], "dm:alice:bob", [b]);
    await dm.sendAccepted(a, "alice", "over TLS");
    expect(await dm.receive(b, "bob", 1)).toEqual(["over TLS"]);
    expect(relay.events("relay.start")[0]).toMatchObject({ tls: true });
    // A plaintext client cannot talk to it.
    const plain = new RawSession(relay.address);
    plain.hello(alice);
    expect(GrpcStatus[(await plain.status()).code]).toBe("UNAVAILABLE");
    plain.close();
  });

  it("chat-relay --help shows every limit flag with its default: 30 days of retention, 10,000 per queue", () => {
    const help = execFileSync(process.execPath, [RELAY_BIN, "--help"], { encoding: "utf8" }).replace(/\s+/g, " ");
    for (const [flag, dflt] of [
      ["--retention-days", "30"], ["--max-queue", "10000"], ["--max-frame-bytes", "1048576"], ["--max-recipients", "500"],
      ["--max-text-bytes", "65536"], ["--rate", "20"], ["--burst", "60"], ["--max-sessions", "10000"], ["--max-outgoing", "1024"],
      ["--max-queue-mb", "256"], ["--max-queue-per-sender", "1000"], ["--max-queue-per-sender-mb", "32"],
    ] as const) {
      expect(help).toMatch(new RegExp(`${flag} (?:(?!--).)*\\[default: ${dflt}\\]`));
    }
    expect(help).toMatch(/--max-db-mb cap the relay database \(with its write-ahead log\) at this many MiB; .* \(default: half the disk's free space at start plus what the database takes, at least 64 MiB, at most 8 GiB\)/);
    // A bad value is one sentence and exit code 2 (a bad invocation), before anything starts.
    const bad = spawnSync(process.execPath, [RELAY_BIN, "--max-db-mb", "-3", "--data-dir", tempDir()], { encoding: "utf8" });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--max-db-mb must be a positive number of MiB/);
  });

  it("puts its data under $XDG_STATE_HOME, else ~/.local/state", () => {
    expect(defaultRelayDataDir({ XDG_STATE_HOME: "/xdg/state" }, "/home/u")).toBe("/xdg/state/secure-chat/relay");
    expect(defaultRelayDataDir({}, "/home/u")).toBe("/home/u/.local/state/secure-chat/relay");
    expect(defaultRelayDataDir({ XDG_STATE_HOME: "relative/path" }, "/home/u")).toBe("/home/u/.local/state/secure-chat/relay");
  });
});
