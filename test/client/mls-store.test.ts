// The client's durable MLS key store (src/client/mls-store.ts, PROTOCOL.md §10.4):
// sealed at rest, replaced per epoch, used KeyPackages deleted — and deleted ON DISK: every file
// of the client's directory is scanned for the old sealed bytes (which the key file would open).
// Forward secrecy and post-compromise security end to end at the store level.
import { createPrivateKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { MlsKeyStore, MlsStoreError } from "../../src/client/mls-store.js";
import { generateKeyPackage, isMlsProtocolError, MlsGroup, type MlsClient } from "../../src/protocol/mls/index.js";
import { directoryBytes, filesHolding } from "../helpers/sqlite-bytes.js";

let root: string;
beforeEach(() => { root = mkdtempSync(join(tmpdir(), "sc-mls-store-")); });
afterEach(() => { rmSync(root, { recursive: true, force: true }); });

interface User {
  readonly username: string;
  readonly dir: string;
  readonly sigPrivate: KeyObject;
  store: MlsKeyStore;
  client: MlsClient;
}

/** A user's key directory: the key file (`<user>_key.pem`) and the MLS store beside it. */
async function user(username: string): Promise<User> {
  const dir = join(root, username);
  mkdirSync(dir);
  const { privateKey } = generateKeyPairSync("ed25519");
  writeFileSync(join(dir, `${username}_key.pem`), privateKey.export({ format: "pem", type: "pkcs8" }), { mode: 0o600 });
  const store = MlsKeyStore.open(join(dir, `${username}_mls.db`), { username, sigPrivate: privateKey });
  return { username, dir, sigPrivate: privateKey, store, client: await store.loadOrCreateClient() };
}

/** Copies every file of a directory (what a thief takes). */
function copyDir(from: string, to: string): string {
  mkdirSync(to);
  for (const name of readdirSync(from)) if (statSync(join(from, name)).isFile()) copyFileSync(join(from, name), join(to, name));
  return to;
}

/** Opens the store of a copied directory with the key read from the copied key file. */
async function fromFiles(dir: string, username: string): Promise<{ store: MlsKeyStore; client: MlsClient }> {
  const sigPrivate = createPrivateKey(readFileSync(join(dir, `${username}_key.pem`)));
  const store = MlsKeyStore.open(join(dir, `${username}_mls.db`), { username, sigPrivate });
  return { store, client: await store.loadOrCreateClient() };
}

/** The sealed bytes of one row as they are on disk (what a deletion must remove). */
function sealedRow(dbPath: string, sql: string, ...args: (string | Uint8Array)[]): Buffer {
  const db = new DatabaseSync(dbPath, { readOnly: true });
  try {
    const row = db.prepare(sql).get(...args) as { sealed: Uint8Array } | undefined;
    if (row === undefined) throw new Error(`no row for ${sql}`);
    return Buffer.from(row.sealed);
  } finally {
    db.close();
  }
}

function groupSealed(u: User, conversationId: string): Buffer {
  return sealedRow(join(u.dir, `${u.username}_mls.db`), "SELECT sealed FROM groups WHERE conversation_id = ?", conversationId);
}

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "opened";
  } catch (e) {
    return isMlsProtocolError(e) ? e.code : `other: ${(e as Error).message}`;
  }
}

const text = (s: string) => new TextEncoder().encode(s);

/** Alice creates `conversationId` and adds Bob with one of his kept KeyPackages; both stores keep the group. */
async function pair(alice: User, bob: User, conversationId: string): Promise<[MlsGroup, MlsGroup]> {
  const kp = await generateKeyPackage(bob.client);
  bob.store.putKeyPackage(kp);
  const ga = await MlsGroup.create(alice.client, conversationId);
  const p = await ga.addMembers([kp.keyPackage]);
  ga.confirmCommit();
  alice.store.saveGroup(ga);
  const { group: gb } = await bob.store.joinFromWelcome(bob.client, p.welcome!, p.ratchetTree!);
  return [ga, gb];
}

describe("MlsKeyStore: what is kept, sealed at rest", () => {
  it("keeps one MLS client per user, restored after a restart and by a second process", async () => {
    const alice = await user("alice");
    const again = await alice.store.loadOrCreateClient();
    expect(Buffer.from(again.signaturePublicKey).equals(Buffer.from(alice.client.signaturePublicKey))).toBe(true);
    const second = MlsKeyStore.open(join(alice.dir, "alice_mls.db"), { username: "alice", sigPrivate: alice.sigPrivate });
    const other = await second.loadOrCreateClient();
    expect(Buffer.from(other.signaturePublicKey).equals(Buffer.from(alice.client.signaturePublicKey))).toBe(true);
    second.close();
    alice.store.close();
    // Only sealed bytes reach the disk: no piece of the MLS signature private key.
    expect(filesHolding(alice.dir, alice.client.signaturePrivateKey, 16)).toEqual([]);
    expect(statSync(join(alice.dir, "alice_mls.db")).mode & 0o777).toBe(0o600);
    // A file others could read (copied in, a loose umask) is tightened when it is opened.
    chmodSync(join(alice.dir, "alice_mls.db"), 0o640);
    MlsKeyStore.open(join(alice.dir, "alice_mls.db"), { username: "alice", sigPrivate: alice.sigPrivate }).close();
    expect(statSync(join(alice.dir, "alice_mls.db")).mode & 0o777).toBe(0o600);
  });

  it("the files with another key file give nothing: every read is refused in one sentence", async () => {
    const alice = await user("alice");
    const bob = await user("bob");
    await pair(alice, bob, "#ops");
    alice.store.close();
    const { privateKey: stranger } = generateKeyPairSync("ed25519");
    const thief = MlsKeyStore.open(join(alice.dir, "alice_mls.db"), { username: "alice", sigPrivate: stranger });
    await expect(thief.loadOrCreateClient()).rejects.toThrow(MlsStoreError);
    await expect(thief.loadOrCreateClient()).rejects.toThrow(/does not open with this key file/);
    expect(() => thief.loadGroup(alice.client, "#ops")).toThrow(/does not open with this key file/);
    thief.close();
  });

  it("checks its arguments first", async () => {
    const alice = await user("alice");
    expect(() => MlsKeyStore.open("", { username: "alice", sigPrivate: alice.sigPrivate })).toThrow(TypeError);
    const { privateKey: rsa } = generateKeyPairSync("rsa", { modulusLength: 1024 });
    expect(() => MlsKeyStore.open(join(alice.dir, "x.db"), { username: "alice", sigPrivate: rsa })).toThrow(/Ed25519/);
    expect(() => alice.store.loadGroup(alice.client, "not a conversation")).toThrow(/not a conversation id/);
    expect(() => alice.store.deleteKeyPackage(new Uint8Array(0))).toThrow(TypeError);
    expect(() => alice.store.putKeyPackage({} as never)).toThrow(TypeError);
    expect(() => alice.store.saveGroup({} as never)).toThrow(TypeError);
    expect(() => alice.store.deleteExpiredKeyPackages(-1)).toThrow(TypeError);
    const bob = await user("bob");
    expect(() => alice.store.loadGroup(bob.client, "#ops")).toThrow(/MlsClient of 'alice'/);
    const gb = await MlsGroup.create(bob.client, "#ops");
    expect(() => alice.store.saveGroup(gb)).toThrow(/belongs to 'bob'/);
    await gb.selfUpdate();
    expect(() => bob.store.saveGroup(gb)).toThrow(/waiting for the relay's answer/);
  });

  it("refuses to save an older epoch of a group another process moved on; a new group replaces", async () => {
    const alice = await user("alice");
    const second = MlsKeyStore.open(join(alice.dir, "alice_mls.db"), { username: "alice", sigPrivate: alice.sigPrivate });
    const g = await MlsGroup.create(alice.client, "#ops");
    alice.store.saveGroup(g);
    const stale = second.loadGroup(alice.client, "#ops")!;
    await g.selfUpdate();
    g.confirmCommit();
    alice.store.saveGroup(g);
    expect(() => second.saveGroup(stale)).toThrow(/newer than this state's epoch/);
    expect(second.loadGroup(alice.client, "#ops")!.epoch).toBe(g.epoch);
    const fresh = await MlsGroup.create(alice.client, "#ops");
    second.saveGroup(fresh);
    expect(Buffer.from(alice.store.loadGroup(alice.client, "#ops")!.groupId).equals(Buffer.from(fresh.groupId))).toBe(true);
    expect(alice.store.conversations()).toEqual(["#ops"]);
    expect(alice.store.deleteGroup("#ops")).toBe(true);
    expect(alice.store.loadGroup(alice.client, "#ops")).toBeUndefined();
    second.close();
  });
});

describe("MlsKeyStore: a commit in flight (PROTOCOL.md §8.1)", () => {
  const keep = (store: MlsKeyStore, g: MlsGroup, p: { commit: Uint8Array; groupInfo: Uint8Array; welcome?: Uint8Array | undefined; ratchetTree?: Uint8Array | undefined }) =>
    store.savePendingCommit(g, {
      commit: p.commit, groupInfo: p.groupInfo, nextGroupInfo: p.groupInfo, added: ["bob"], removed: [], lines: '[{"kind":"added"}]',
      ...(p.welcome === undefined ? {} : { welcome: p.welcome }), ...(p.ratchetTree === undefined ? {} : { ratchetTree: p.ratchetTree }),
    });

  it("is kept sealed before it is sent, restored after a restart, and confirmed from the kept state", async () => {
    const alice = await user("alice");
    const bob = await user("bob");
    const kp = await generateKeyPackage(bob.client);
    bob.store.putKeyPackage(kp);
    const g = await MlsGroup.create(alice.client, "#ops");
    alice.store.saveGroup(g);
    const p = await g.addMembers([kp.keyPackage]);
    keep(alice.store, g, p);
    expect(alice.store.pendingCommits()).toEqual(["#ops"]);
    // A restart (the process quit before the answer): the store and the group come back.
    alice.store.close();
    const again = await fromFiles(alice.dir, "alice");
    const k = again.store.loadPendingCommit("#ops")!;
    expect({ epoch: k.epoch, added: k.added, removed: k.removed, lines: k.lines }).toEqual({ epoch: 0n, added: ["bob"], removed: [], lines: '[{"kind":"added"}]' });
    for (const [a, b] of [[k.commit, p.commit], [k.groupInfo, p.groupInfo], [k.welcome, p.welcome], [k.ratchetTree, p.ratchetTree]] as const) expect(Buffer.from(a!).equals(Buffer.from(b!))).toBe(true);
    // Nothing of it in the clear on disk: not the commit, not the Welcome.
    for (const part of [p.commit, p.welcome!]) expect(filesHolding(alice.dir, Buffer.from(part).subarray(-64))).toEqual([]);
    const restored = again.store.loadGroup(again.client, "#ops")!;
    restored.resumePending(k.nextState);
    restored.confirmCommit();
    expect(restored.epoch).toBe(1n);
    again.store.saveGroup(restored); // past the kept commit's epoch: it goes with the save
    expect(again.store.pendingCommits()).toEqual([]);
    // The state it confirmed is the one the Welcome was made for: bob reads alice.
    const { group: gb } = await bob.store.joinFromWelcome(bob.client, p.welcome!, p.ratchetTree!);
    const r = await gb.process(await restored.encrypt(text("after the restart")));
    expect(r.kind === "application" && Buffer.from(r.plaintext).toString()).toBe("after the restart");
    again.store.close();
  });

  it("a save at the same epoch keeps it (not settled yet); deleteGroup and deletePendingCommit remove it, on disk too", async () => {
    const alice = await user("alice");
    const g = await MlsGroup.create(alice.client, "#ops");
    alice.store.saveGroup(g);
    const p = await g.selfUpdate();
    keep(alice.store, g, p);
    g.discardCommit();
    alice.store.saveGroup(g); // e.g. a message read at the old epoch while the connection is down
    expect(alice.store.pendingCommits()).toEqual(["#ops"]);
    const sealed = sealedRow(join(alice.dir, "alice_mls.db"), "SELECT sealed FROM pending_commits WHERE conversation_id = ?", "#ops");
    alice.store.deletePendingCommit("#ops");
    expect(alice.store.loadPendingCommit("#ops")).toBeUndefined();
    expect(filesHolding(alice.dir, sealed)).toEqual([]);
    await g.selfUpdate();
    keep(alice.store, g, p);
    g.discardCommit();
    alice.store.deleteGroup("#ops");
    expect(alice.store.pendingCommits()).toEqual([]);
  });

  it("a kept commit changed on disk, or moved to another conversation's row, does not open", async () => {
    const alice = await user("alice");
    const ops = await MlsGroup.create(alice.client, "#ops");
    const dev = await MlsGroup.create(alice.client, "#dev");
    for (const g of [ops, dev]) {
      alice.store.saveGroup(g);
      keep(alice.store, g, await g.selfUpdate());
      g.discardCommit();
    }
    alice.store.close();
    const path = join(alice.dir, "alice_mls.db");
    const db = new DatabaseSync(path);
    const sealed = Buffer.from((db.prepare("SELECT sealed FROM pending_commits WHERE conversation_id = '#ops'").get() as { sealed: Uint8Array }).sealed);
    // #dev's row now holds #ops's sealed commit (the additional data names the conversation).
    db.prepare("UPDATE pending_commits SET sealed = ? WHERE conversation_id = '#dev'").run(sealed);
    // #ops's row: one bit flipped.
    sealed[sealed.length - 1]! ^= 1;
    db.prepare("UPDATE pending_commits SET sealed = ? WHERE conversation_id = '#ops'").run(sealed);
    db.close();
    const again = await fromFiles(alice.dir, "alice");
    for (const conv of ["#ops", "#dev"]) expect(() => again.store.loadPendingCommit(conv)).toThrow(/does not open with this key file/);
    again.store.close();
  });

  it("a kept state of another group or epoch is refused; arguments are checked first", async () => {
    const alice = await user("alice");
    const g = await MlsGroup.create(alice.client, "#ops");
    const other = await MlsGroup.create(alice.client, "#dev");
    await other.selfUpdate();
    const otherNext = other.serializePending();
    await expect(code((async () => g.resumePending(otherNext))())).resolves.toBe("bad-state");
    await g.selfUpdate();
    g.confirmCommit();
    const p = await g.selfUpdate();
    const next = g.serializePending();
    g.discardCommit();
    await g.selfUpdate();
    g.confirmCommit(); // the group moved past the epoch the kept commit was made in
    await expect(code((async () => g.resumePending(next))())).resolves.toBe("bad-state");
    expect(() => g.serializePending()).toThrow(/no commit waiting/);
    expect(() => alice.store.savePendingCommit(g, { commit: new Uint8Array(0), groupInfo: p.groupInfo, nextGroupInfo: p.groupInfo, added: [], removed: [], lines: "[]" })).toThrow(TypeError);
    expect(() => alice.store.loadPendingCommit("not a conversation")).toThrow(TypeError);
  });
});

describe("MlsKeyStore: deletion that holds on disk", () => {
  it("a group's state is replaced at each epoch: the old sealed state is in no file of the directory", async () => {
    const alice = await user("alice");
    const bob = await user("bob");
    const [ga, gb] = await pair(alice, bob, "#ops");
    const olds: Buffer[] = [groupSealed(bob, "#ops")];
    for (let i = 0; i < 3; i++) {
      const u = await ga.selfUpdate();
      ga.confirmCommit();
      alice.store.saveGroup(ga);
      await gb.process(u.commit);
      gb.forgetPastEpochs();
      bob.store.saveGroup(gb);
      olds.push(groupSealed(bob, "#ops"));
    }
    const current = olds.pop()!;
    expect(olds[0]!.length).toBeGreaterThan(4096); // the state spans overflow pages
    expect(filesHolding(bob.dir, current)).toEqual(["bob_mls.db"]); // the scan finds what is there
    for (const old of olds) expect(filesHolding(bob.dir, old)).toEqual([]);
    // Rollback-journal mode: no -wal and no journal are left beside the database.
    expect([...directoryBytes(bob.dir).keys()].sort()).toEqual(["bob_key.pem", "bob_mls.db"]);
    const deleted = groupSealed(bob, "#ops");
    expect(bob.store.deleteGroup("#ops")).toBe(true);
    expect(filesHolding(bob.dir, deleted)).toEqual([]);
  });

  it("a one-time KeyPackage is deleted when it is used to join (on disk too); a second Welcome to it is not for me", async () => {
    const alice = await user("alice");
    const bob = await user("bob");
    const kp = await generateKeyPackage(bob.client);
    const spare = await generateKeyPackage(bob.client);
    bob.store.putKeyPackage(kp);
    bob.store.putKeyPackage(spare);
    const dbPath = join(bob.dir, "bob_mls.db");
    const sealed = sealedRow(dbPath, "SELECT sealed FROM key_packages WHERE ref = ?", Buffer.from(kp.ref));
    expect(filesHolding(bob.dir, sealed)).toEqual(["bob_mls.db"]);
    const ga = await MlsGroup.create(alice.client, "#ops");
    const p = await ga.addMembers([kp.keyPackage]);
    ga.confirmCommit();
    const { group, lastResort } = await bob.store.joinFromWelcome(bob.client, p.welcome!, p.ratchetTree!);
    expect(lastResort).toBe(false);
    expect(group.epoch).toBe(1n);
    expect(bob.store.keyPackages().map((k) => k.ref.toString("hex"))).toEqual([Buffer.from(spare.ref).toString("hex")]);
    expect(filesHolding(bob.dir, sealed)).toEqual([]);
    // A relay serving the used KeyPackage again: its Welcome names nothing Bob keeps.
    const gx = await MlsGroup.create(alice.client, "#dev");
    const p2 = await gx.addMembers([kp.keyPackage]);
    expect(await code(bob.store.joinFromWelcome(bob.client, p2.welcome!, p2.ratchetTree!))).toBe("not-for-me");
    expect(bob.store.conversations()).toEqual(["#ops"]);
    // Deleted on its own (the relay dropped it): its freed pages are zeroed, not left as they were.
    const spareSealed = sealedRow(dbPath, "SELECT sealed FROM key_packages WHERE ref = ?", Buffer.from(spare.ref));
    expect(bob.store.deleteKeyPackage(spare.ref)).toBe(true);
    expect(bob.store.deleteKeyPackage(spare.ref)).toBe(false);
    expect(filesHolding(bob.dir, spareSealed)).toEqual([]);
  });

  it("a last-resort KeyPackage is kept after use and replaced (on disk) by the next one", async () => {
    const alice = await user("alice");
    const bob = await user("bob");
    const lr = await generateKeyPackage(bob.client, { lastResort: true });
    bob.store.putKeyPackage(lr);
    const dbPath = join(bob.dir, "bob_mls.db");
    const sealed = sealedRow(dbPath, "SELECT sealed FROM key_packages WHERE ref = ?", Buffer.from(lr.ref));
    for (const conv of ["#ops", "#dev"]) {
      const g = await MlsGroup.create(alice.client, conv);
      const p = await g.addMembers([lr.keyPackage]);
      g.confirmCommit();
      expect((await bob.store.joinFromWelcome(bob.client, p.welcome!, p.ratchetTree!)).lastResort).toBe(true);
    }
    expect(bob.store.keyPackages()).toHaveLength(1);
    const next = await generateKeyPackage(bob.client, { lastResort: true });
    bob.store.putKeyPackage(next);
    expect(bob.store.keyPackages().map((k) => [k.ref.toString("hex"), k.lastResort])).toEqual([[Buffer.from(next.ref).toString("hex"), true]]);
    expect(filesHolding(bob.dir, sealed)).toEqual([]);
    // Expired ones go too.
    expect(bob.store.deleteExpiredKeyPackages(next.notAfter + 1)).toBe(1);
    expect(bob.store.keyPackages()).toEqual([]);
  });

  it("why the store is its own rollback-journal file: SQLite keeps replaced bytes without it", () => {
    const secret1 = Buffer.alloc(6000, 0xa5);
    const secret2 = Buffer.alloc(6000, 0x5a);
    const scan = (dir: string) => filesHolding(dir, secret1);
    // secure_delete OFF: a deleted value stays in the database file's free pages (an UPDATE of
    // the same size happens to overwrite in place; a store cannot count on sizes).
    const plain = join(root, "plain");
    mkdirSync(plain);
    let db = new DatabaseSync(join(plain, "x.db"));
    db.exec("PRAGMA secure_delete = OFF; CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB)");
    db.prepare("INSERT INTO t VALUES (1, ?)").run(secret1);
    db.prepare("INSERT INTO t VALUES (2, ?)").run(secret2);
    db.prepare("DELETE FROM t WHERE k = 1").run();
    db.close();
    expect(scan(plain)).toEqual(["x.db"]);
    // secure_delete ON but WAL (as the state db): the old frames stay in the -wal until a
    // TRUNCATE checkpoint, which secure_delete does not do.
    const wal = join(root, "wal");
    mkdirSync(wal);
    db = new DatabaseSync(join(wal, "x.db"));
    db.exec("PRAGMA journal_mode = WAL; PRAGMA secure_delete = ON; CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB)");
    db.prepare("INSERT INTO t VALUES (1, ?)").run(secret1);
    db.prepare("UPDATE t SET v = ? WHERE k = 1").run(secret2);
    expect(scan(wal)).toEqual(["x.db-wal"]);
    db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
    expect(scan(wal)).toEqual([]);
    db.close();
    // The store's setting: secure_delete ON, journal_mode DELETE — nothing is left.
    const del = join(root, "delete");
    mkdirSync(del);
    db = new DatabaseSync(join(del, "x.db"));
    db.exec("PRAGMA journal_mode = DELETE; PRAGMA secure_delete = ON; CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB)");
    db.prepare("INSERT INTO t VALUES (1, ?)").run(secret1);
    db.prepare("UPDATE t SET v = ? WHERE k = 1").run(secret2);
    expect(scan(del)).toEqual([]);
    db.close();
  });

  it("a store file another writer left with free pages or in WAL mode: refused while held, rebuilt on open", async () => {
    const dir = join(root, "foreign");
    mkdirSync(dir);
    const path = join(dir, "carol_mls.db");
    const old = Buffer.alloc(6000, 0xc3);
    const db = new DatabaseSync(path);
    db.exec("PRAGMA journal_mode = WAL; PRAGMA secure_delete = OFF; CREATE TABLE junk (v BLOB)");
    db.prepare("INSERT INTO junk VALUES (?)").run(old);
    db.exec("DELETE FROM junk");
    expect(filesHolding(dir, old)).toContain("carol_mls.db-wal");
    const { privateKey } = generateKeyPairSync("ed25519");
    // Held open in WAL mode by another process: the store cannot leave WAL and says so.
    expect(() => MlsKeyStore.open(path, { username: "carol", sigPrivate: privateKey })).toThrow(MlsStoreError);
    db.close(); // checkpoints: the deleted value is now in a free page of the database file
    expect(filesHolding(dir, old)).toEqual(["carol_mls.db"]);
    const store = MlsKeyStore.open(path, { username: "carol", sigPrivate: privateKey });
    await store.loadOrCreateClient();
    expect(filesHolding(dir, old)).toEqual([]);
    expect(readdirSync(dir).sort()).toEqual(["carol_mls.db"]);
    store.close();
  });
});

describe("MlsKeyStore: forward secrecy and post-compromise security from the files", () => {
  it("every file of a client taken after it updated does not open what was recorded before", async () => {
    const alice = await user("alice");
    const bob = await user("bob");
    const [ga, gb] = await pair(alice, bob, "#ops");
    const recorded: Uint8Array[] = [];
    const oldStates: Buffer[] = [];
    for (const t of ["one", "two", "three"]) {
      const m = await ga.encrypt(text(t));
      alice.store.saveGroup(ga);
      recorded.push(m);
      expect((await gb.process(m)).kind).toBe("application");
      bob.store.saveGroup(gb);
      oldStates.push(groupSealed(bob, "#ops"));
    }
    // Bob answers, and one message of Alice's is still in flight when the update comes.
    const reply = await gb.encrypt(text("four"));
    bob.store.saveGroup(gb);
    await ga.process(reply);
    recorded.push(reply);
    const inFlight = await ga.encrypt(text("sent concurrently with the update"));
    recorded.push(inFlight);
    oldStates.push(groupSealed(bob, "#ops"));

    // Bob updates; Alice processes it; Bob deletes the past epoch once Alice is heard from (§10).
    const upd = await gb.selfUpdate();
    gb.confirmCommit();
    bob.store.saveGroup(gb);
    await ga.process(upd.commit);
    alice.store.saveGroup(ga);
    const hello = await ga.encrypt(text("heard from in the new epoch"));
    await gb.process(hello);
    gb.forgetPastEpochs();
    bob.store.saveGroup(gb);
    bob.store.close();

    // The thief takes every file of Bob's directory, his key file included.
    const stolen = copyDir(bob.dir, join(root, "stolen"));
    for (const s of oldStates) expect(filesHolding(stolen, s)).toEqual([]);
    const thief = await fromFiles(stolen, "bob");
    for (const m of recorded) {
      const g = thief.store.loadGroup(thief.client, "#ops")!; // a fresh restore for each try
      expect(["decrypt-failed", "epoch-expired", "wrong-epoch"]).toContain(await code(g.process(m)));
    }
    // The restored state is Bob's real one (it reads what comes next): the failures are deletion.
    const next = await ga.encrypt(text("after"));
    const g = thief.store.loadGroup(thief.client, "#ops")!;
    expect((await g.process(next)).kind).toBe("application");
    thief.store.close();
  });

  it("files copied before an update do not read what follows it", async () => {
    const alice = await user("alice");
    const bob = await user("bob");
    const carol = await user("carol");
    const kpB = await generateKeyPackage(bob.client);
    const kpC = await generateKeyPackage(carol.client);
    bob.store.putKeyPackage(kpB);
    carol.store.putKeyPackage(kpC);
    const ga = await MlsGroup.create(alice.client, "#ops");
    const p = await ga.addMembers([kpB.keyPackage, kpC.keyPackage]);
    ga.confirmCommit();
    const { group: gb } = await bob.store.joinFromWelcome(bob.client, p.welcome!, p.ratchetTree!);
    const { group: gc } = await carol.store.joinFromWelcome(carol.client, p.welcome!, p.ratchetTree!);

    const stolen = copyDir(bob.dir, join(root, "stolen-before"));
    const before = await ga.encrypt(text("before the update"));
    const thief = await fromFiles(stolen, "bob");
    // With the copy the thief reads the current epoch (that is what the update heals)...
    expect((await thief.store.loadGroup(thief.client, "#ops")!.process(before)).kind).toBe("application");
    await gb.process(before);
    await gc.process(before);

    const upd = await gb.selfUpdate();
    gb.confirmCommit();
    bob.store.saveGroup(gb);
    await ga.process(upd.commit);
    await gc.process(upd.commit);
    const after = await ga.encrypt(text("after the update"));
    expect((await gc.process(after)).kind).toBe("application");
    expect((await gb.process(after)).kind).toBe("application");
    // ...and not what follows Bob's update, nor the update itself.
    expect(await code(thief.store.loadGroup(thief.client, "#ops")!.process(after))).toBe("wrong-epoch");
    expect(await code(thief.store.loadGroup(thief.client, "#ops")!.process(upd.commit))).not.toBe("opened");
    thief.store.close();
  });
});
