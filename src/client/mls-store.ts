// The client's durable MLS key store (proto/PROTOCOL.md §10.4): `<username>_mls.db`
// (node:sqlite, 0600) beside the key file and `<username>_state.db`. It keeps this client's MLS
// signature key and credential, the private parts of its KeyPackages (one-time and last-resort)
// and each group's state, every one sealed at rest (AES-256-GCM under a key derived like the
// history's, at-rest.ts, from the signing key of `<username>_key.pem`): a copied file without
// the key file gives nothing.
//
// Forward secrecy needs deletion that holds ON DISK (PROTOCOL.md §10.2): with
// the key file, any sealed copy of an old group state or of a used KeyPackage still lying in a
// free page, a journal or a write-ahead log would open again. So:
// - `secure_delete = ON`: SQLite zeroes deleted cells and freed pages in the database file. It
//   does NOT reach a WAL (the old frames stay until a checkpoint) nor a rollback journal (it
//   holds the original pages until it is deleted).
// - Hence its own file, in rollback-journal mode DELETE (not the state db's WAL): the journal,
//   the only other copy of the pages a transaction changes, is unlinked when the transaction
//   commits; no -wal file ever holds an old state. On open, a file left in WAL mode is
//   checkpointed (TRUNCATE) and switched back, and the file is rebuilt (VACUUM): free pages
//   that something wrote without secure_delete do not survive.
// - A group's state is one row, replaced (UPDATE, same key) at each epoch change, never
//   appended; a one-time KeyPackage's row is deleted in the same transaction that saves the
//   group it joined.
// Tested by scanning every file of the directory (test/client/mls-store.test.ts).
//
// Concurrency: one process per file. Only the client holding the user's lock opens it
// (user-lock.ts, PROTOCOL.md §4.3): two processes saving here could not be made safe by the
// checks below (a stale state saved over a newer one of the same epoch would reuse generations
// and bring deleted keys back). What remains is belt and braces: writes wait up to 2 s for
// SQLite's lock; read-modify-writes run in BEGIN IMMEDIATE; a save never rolls a group back to
// an older epoch of the same group.
import { touchPrivate } from "./atomic-file.js";
import { hkdfSync, randomBytes } from "node:crypto";
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { encodeFields } from "../protocol/encoding.js";
import {
  createMlsClient, destroyKeyPackage, MlsGroup, restoreKeyPackage, restoreMlsClient, serializeMlsClient,
  type GeneratedKeyPackage, type GroupOptions, type IdentityKey, type MlsClient, type MlsMember, type StoredKeyPackage,
} from "../protocol/mls/index.js";
import { parseConversationId } from "../protocol/names.js";
import { checkKeptCommitParts, decodeKeptCommit, encodeKeptCommit, type KeptCommit, type KeptCommitParts } from "./kept-commit.js";
import { AES_KEY_BYTES, aesGcmDecrypt, aesGcmEncrypt, GCM_IV_BYTES, GCM_TAG_BYTES } from "../protocol/primitives.js";

/** The MLS store key: HKDF-SHA256 over the signing private key (PKCS#8), like at-rest.ts, with its own label. */
const KDF_INFO = "securechat/v1/mls-store-key";
const SCHEMA_VERSION = "1";

type Row = "client" | "key-package" | "group" | "pending-commit" | "value";

/** Why a stored item could not be used; one sentence, names no secret. */
export class MlsStoreError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "MlsStoreError";
  }
}

/** What is kept of a KeyPackage besides its sealed private part. */
export interface KeyPackageInfo {
  readonly ref: Buffer;
  readonly lastResort: boolean;
  /** Unix seconds. */
  readonly notAfter: number;
}

function checkIdentity(id: IdentityKey): void {
  if (id === null || typeof id !== "object" || typeof id.username !== "string" || id.username === "") {
    throw new TypeError("an identity (username and Ed25519 private key) is needed");
  }
  if (id.sigPrivate?.type !== "private" || id.sigPrivate.asymmetricKeyType !== "ed25519") {
    throw new TypeError("the identity key must be an Ed25519 private key");
  }
}

function checkConversation(conversationId: string): void {
  if (typeof conversationId !== "string" || parseConversationId(conversationId) === undefined) {
    throw new TypeError(`'${String(conversationId)}' is not a conversation id`);
  }
}

function checkRef(ref: Uint8Array): void {
  if (!(ref instanceof Uint8Array) || ref.length === 0 || ref.length > 64) throw new TypeError("a KeyPackageRef must be 1 to 64 bytes");
}

export class MlsKeyStore {
  private readonly db: DatabaseSync;
  private readonly q: Record<string, StatementSync>;
  private readonly key: Buffer;
  private readonly identity: IdentityKey;
  /**
   * A linked device (PROTOCOL.md §4.5): the identity key's SPKI its MLS client must be vouched
   * for by. `identity.sigPrivate` is then the device's own key (it seals the store); the client
   * comes from the linking (putClient) and is never created here.
   */
  private readonly linkedTo: Buffer | undefined;

  private constructor(path: string, identity: IdentityKey, linkedTo: Buffer | undefined) {
    this.identity = identity;
    this.linkedTo = linkedTo;
    const ikm = identity.sigPrivate.export({ format: "der", type: "pkcs8" });
    this.key = Buffer.from(hkdfSync("sha256", ikm, Buffer.alloc(0), KDF_INFO, AES_KEY_BYTES));
    ikm.fill(0);
    if (path !== ":memory:") touchPrivate(path, "the MLS store");
    this.db = new DatabaseSync(path, { timeout: 2_000 });
    try {
      // A file some other tool left in WAL mode: fold its log back and empty it before leaving WAL.
      this.db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
      this.db.exec(`
        PRAGMA secure_delete = ON;
        PRAGMA journal_mode = DELETE;
        PRAGMA synchronous = FULL;
        CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS mls_client (username TEXT PRIMARY KEY, sealed BLOB NOT NULL);
        CREATE TABLE IF NOT EXISTS key_packages (ref BLOB PRIMARY KEY, last_resort INTEGER NOT NULL,
          not_after INTEGER NOT NULL, sealed BLOB NOT NULL);
        CREATE TABLE IF NOT EXISTS groups (conversation_id TEXT PRIMARY KEY, group_id BLOB NOT NULL,
          epoch TEXT NOT NULL, sealed BLOB NOT NULL);
        CREATE TABLE IF NOT EXISTS pending_commits (conversation_id TEXT PRIMARY KEY, group_id BLOB NOT NULL,
          epoch TEXT NOT NULL, sealed BLOB NOT NULL);
        CREATE TABLE IF NOT EXISTS sealed_values (name TEXT PRIMARY KEY, sealed BLOB NOT NULL) WITHOUT ROWID;
        INSERT OR IGNORE INTO meta (name, value) VALUES ('schema', '${SCHEMA_VERSION}');
      `);
      const mode = this.db.prepare("PRAGMA journal_mode").get() as { journal_mode: string };
      if (mode.journal_mode !== "delete") throw new MlsStoreError(`the MLS store '${path}' could not leave journal mode ${mode.journal_mode} (another process holds it open in WAL mode)`);
      // secure_delete zeroes only what is freed while it is on: free pages written by anything
      // else (a crash between a WAL checkpoint and this open, an older writer) are dropped by
      // rebuilding the file, which is small (a few KB per group). When another chat-tui of this
      // user holds it busy, that one rebuilt it at its own open and zeroes what it frees: skip.
      try {
        this.db.exec("VACUUM");
      } catch (e) {
        if (!/locked|busy/i.test((e as Error).message)) throw e;
      }
      const schema = this.db.prepare("SELECT value FROM meta WHERE name = 'schema'").get() as { value: string };
      if (schema.value !== SCHEMA_VERSION) throw new MlsStoreError(`the MLS store '${path}' has schema ${schema.value}, this client knows ${SCHEMA_VERSION}`);
    } catch (e) {
      this.db.close();
      if (e instanceof MlsStoreError) throw e;
      throw new MlsStoreError(`cannot prepare the MLS store '${path}' (another process holds it, or it is not a database): ${(e as Error).message}`, { cause: e });
    }
    const p = (sql: string) => this.db.prepare(sql);
    this.q = {
      clientGet: p("SELECT sealed FROM mls_client WHERE username = ?"),
      clientAdd: p("INSERT OR IGNORE INTO mls_client (username, sealed) VALUES (?, ?)"),
      kpAdd: p("INSERT INTO key_packages (ref, last_resort, not_after, sealed) VALUES (?, ?, ?, ?)"),
      kpAll: p("SELECT * FROM key_packages ORDER BY rowid"),
      kpDelete: p("DELETE FROM key_packages WHERE ref = ?"),
      kpDeleteOtherLastResort: p("DELETE FROM key_packages WHERE last_resort = 1 AND ref <> ?"),
      kpDeleteExpired: p("DELETE FROM key_packages WHERE not_after < ?"),
      groupGet: p("SELECT * FROM groups WHERE conversation_id = ?"),
      groupPut: p(`INSERT INTO groups (conversation_id, group_id, epoch, sealed) VALUES (?, ?, ?, ?)
        ON CONFLICT (conversation_id) DO UPDATE SET group_id = excluded.group_id, epoch = excluded.epoch, sealed = excluded.sealed`),
      groupDelete: p("DELETE FROM groups WHERE conversation_id = ?"),
      groupAll: p("SELECT conversation_id FROM groups ORDER BY conversation_id"),
      pendingPut: p(`INSERT INTO pending_commits (conversation_id, group_id, epoch, sealed) VALUES (?, ?, ?, ?)
        ON CONFLICT (conversation_id) DO UPDATE SET group_id = excluded.group_id, epoch = excluded.epoch, sealed = excluded.sealed`),
      pendingGet: p("SELECT * FROM pending_commits WHERE conversation_id = ?"),
      pendingDelete: p("DELETE FROM pending_commits WHERE conversation_id = ?"),
      // Settled by a save past its epoch (accepted and confirmed, or another commit won it) or of another group.
      pendingSettled: p("DELETE FROM pending_commits WHERE conversation_id = ? AND (group_id <> ? OR CAST(epoch AS INTEGER) < CAST(? AS INTEGER))"),
      pendingAll: p("SELECT conversation_id FROM pending_commits ORDER BY conversation_id"),
      valueGet: p("SELECT sealed FROM sealed_values WHERE name = ?"),
      valuePut: p("INSERT OR REPLACE INTO sealed_values (name, sealed) VALUES (?, ?)"),
    };
  }

  /**
   * Opens (creating 0600) the MLS store at path for this identity (PROTOCOL.md §10.4
   * ); ":memory:" for tests. Everything in it is sealed under a key derived from
   * `identity.sigPrivate`. On a linked device (PROTOCOL.md §4.5) `identity.sigPrivate` is the
   * device's own key and `options.linkedTo` the user's identity key SPKI.
   */
  static open(path: string, identity: IdentityKey, options: { readonly linkedTo?: Uint8Array } = {}): MlsKeyStore {
    if (typeof path !== "string" || path === "") throw new TypeError("the MLS store path must be a non-empty string");
    checkIdentity(identity);
    if (options.linkedTo !== undefined && !(options.linkedTo instanceof Uint8Array && options.linkedTo.length > 0)) throw new TypeError("linkedTo must be the identity key's SPKI");
    return new MlsKeyStore(path, identity, options.linkedTo === undefined ? undefined : Buffer.from(options.linkedTo));
  }

  /** Whether this store belongs to a linked device (its MLS client comes from the linking). */
  get linked(): boolean {
    return this.linkedTo !== undefined;
  }

  // ---- this client's MLS signature key and credential (PROTOCOL.md §4.4) -----------------

  /**
   * This user's MLS client: the stored one (its credential must be vouched for by this identity
   * key, restoreMlsClient), or a new one stored first. Two processes creating at once: the first
   * stored wins and both use it.
   */
  async loadOrCreateClient(): Promise<MlsClient> {
    const stored = this.readClient();
    if (stored !== undefined) return stored;
    if (this.linkedTo !== undefined) throw new MlsStoreError(`this linked device of '${this.identity.username}' has no MLS client (its linking did not finish): link this device again`);
    const fresh = await createMlsClient(this.identity);
    const bytes = serializeMlsClient(fresh);
    this.q["clientAdd"]!.run(this.identity.username, this.seal("client", this.identity.username, bytes));
    bytes.fill(0);
    fresh.signaturePrivateKey.fill(0); // the kept one is used (another process may have stored first)
    const kept = this.readClient();
    if (kept === undefined) throw new MlsStoreError("the MLS client was not kept by the store");
    return kept;
  }

  /**
   * Stores the MLS client a linking made (PROTOCOL.md §4.6): its credential vouched for by the
   * identity key this store is linked to. Refused on a primary's store, or when one is kept.
   */
  putClient(client: MlsClient): void {
    if (this.linkedTo === undefined) throw new MlsStoreError("only a linked device's store takes an MLS client from outside");
    if (client?.username !== this.identity.username || !client.identity.identitySpki.equals(this.linkedTo)) {
      throw new MlsStoreError(`the MLS client is not one of '${this.identity.username}' vouched for by the linked identity key`);
    }
    if (this.readClient() !== undefined) throw new MlsStoreError("this device already has an MLS client");
    const bytes = serializeMlsClient(client);
    this.q["clientAdd"]!.run(this.identity.username, this.seal("client", this.identity.username, bytes));
    bytes.fill(0);
  }

  private readClient(): MlsClient | undefined {
    const row = this.q["clientGet"]!.get(this.identity.username) as { sealed: Uint8Array } | undefined;
    if (row === undefined) return undefined;
    const bytes = this.open("client", this.identity.username, row.sealed);
    try {
      return restoreMlsClient(bytes, this.identity, this.linkedTo);
    } finally {
      bytes.fill(0);
    }
  }

  // ---- KeyPackages (PROTOCOL.md §8.1) ---------------------------------------

  /**
   * Keeps a generated KeyPackage's private part; call BEFORE uploading it (a package the relay
   * hands out must open). A last-resort one replaces any older last-resort one.
   */
  putKeyPackage(kp: GeneratedKeyPackage): void {
    if (kp === null || typeof kp !== "object" || !(kp.stored instanceof Uint8Array) || kp.stored.length === 0) throw new TypeError("a GeneratedKeyPackage is needed");
    checkRef(kp.ref);
    if (!Number.isSafeInteger(kp.notAfter) || kp.notAfter < 0) throw new TypeError("notAfter must be a non-negative integer");
    const ref = Buffer.from(kp.ref);
    this.write(() => {
      this.q["kpAdd"]!.run(ref, kp.lastResort ? 1 : 0, kp.notAfter, this.seal("key-package", ref.toString("hex"), kp.stored));
      if (kp.lastResort) this.q["kpDeleteOtherLastResort"]!.run(ref);
    });
  }

  /** The KeyPackages kept (no private part): to count what to top up. */
  keyPackages(): KeyPackageInfo[] {
    return (this.q["kpAll"]!.all() as Record<string, unknown>[]).map((r) => ({
      ref: Buffer.from(r["ref"] as Uint8Array),
      lastResort: Number(r["last_resort"]) === 1,
      notAfter: Number(r["not_after"]),
    }));
  }

  /** Deletes one KeyPackage's private part (used, or the relay dropped it). Returns whether it was kept. */
  deleteKeyPackage(ref: Uint8Array): boolean {
    checkRef(ref);
    let changes = 0;
    this.write(() => { changes = Number(this.q["kpDelete"]!.run(Buffer.from(ref)).changes); });
    return changes > 0;
  }

  /** Deletes the KeyPackages whose lifetime ended before nowS (the relay dropped them too). */
  deleteExpiredKeyPackages(nowS: number): number {
    if (!Number.isSafeInteger(nowS) || nowS < 0) throw new TypeError("nowS must be a non-negative integer");
    let changes = 0;
    this.write(() => { changes = Number(this.q["kpDeleteExpired"]!.run(nowS).changes); });
    return changes;
  }

  /**
   * Joins a group from a Welcome with a kept KeyPackage (PROTOCOL.md §7.3) and keeps
   * the group; a one-time KeyPackage's row is deleted in the same transaction (a last-resort one
   * is kept: the caller generates a new one, `putKeyPackage` replaces it). The private keys
   * decrypted for the lookup are overwritten afterwards, used or not.
   */
  async joinFromWelcome(client: MlsClient, welcome: Uint8Array, ratchetTree: Uint8Array, options: GroupOptions = {}): Promise<{ group: MlsGroup; lastResort: boolean; addedBy: MlsMember }> {
    this.checkClient(client);
    const loaded = new Map<string, StoredKeyPackage>();
    // The decoded KeyPackages are views into these bytes: they are overwritten after the join.
    const opened: Buffer[] = [];
    try {
      for (const r of this.q["kpAll"]!.all() as Record<string, unknown>[]) {
        const ref = Buffer.from(r["ref"] as Uint8Array).toString("hex");
        const bytes = this.open("key-package", ref, r["sealed"] as Uint8Array);
        opened.push(bytes);
        loaded.set(ref, await restoreKeyPackage(client, bytes));
      }
      const res = await MlsGroup.joinFromWelcome(client, welcome, ratchetTree, (ref) => loaded.get(Buffer.from(ref).toString("hex")), options);
      this.saveGroup(res.group, { deleteKeyPackage: res.lastResort ? undefined : res.usedKeyPackage });
      return { group: res.group, lastResort: res.lastResort, addedBy: res.addedBy };
    } finally {
      for (const kp of loaded.values()) destroyKeyPackage(kp);
      for (const b of opened) b.fill(0);
    }
  }

  // ---- groups (PROTOCOL.md §7, §10) -------------------------------------------------------

  /**
   * Keeps a group's state, replacing the one kept for its conversation (one row per
   * conversation, overwritten: the old epoch's secrets are not left on disk). Call after every
   * change of the group's state (a commit confirmed or processed, a message opened or sent,
   * forgetPastEpochs). Refuses to go back to an older epoch of the same group (a check only: one
   * process per file, user-lock.ts).
   */
  saveGroup(group: MlsGroup, options: { deleteKeyPackage?: Uint8Array | undefined } = {}): void {
    if (!(group instanceof MlsGroup)) throw new TypeError("an MlsGroup is needed");
    if (group.client.username !== this.identity.username) throw new TypeError(`the group belongs to '${group.client.username}', not '${this.identity.username}'`);
    if (options.deleteKeyPackage !== undefined) checkRef(options.deleteKeyPackage);
    if (group.hasPendingCommit) throw new MlsStoreError("a group with a commit waiting for the relay's answer is saved after confirmCommit or discardCommit");
    const conversationId = group.conversation.id;
    const groupId = Buffer.from(group.groupId);
    const epoch = group.epoch;
    const bytes = group.serialize();
    const sealed = this.seal("group", conversationId, bytes);
    bytes.fill(0);
    this.write(() => {
      const old = this.q["groupGet"]!.get(conversationId) as Record<string, unknown> | undefined;
      if (old !== undefined && groupId.equals(Buffer.from(old["group_id"] as Uint8Array)) && BigInt(String(old["epoch"])) > epoch) {
        throw new MlsStoreError(`${conversationId} is kept at epoch ${String(old["epoch"])}, newer than this state's epoch ${epoch} (another process of ${this.identity.username} moved it on)`);
      }
      this.q["groupPut"]!.run(conversationId, groupId, epoch.toString(), sealed);
      this.q["pendingSettled"]!.run(conversationId, groupId, epoch.toString());
      if (options.deleteKeyPackage !== undefined) this.q["kpDelete"]!.run(Buffer.from(options.deleteKeyPackage));
    });
  }

  /** The kept group of a conversation, restored for this client (undefined when none is kept). */
  loadGroup(client: MlsClient, conversationId: string, options: GroupOptions = {}): MlsGroup | undefined {
    this.checkClient(client);
    checkConversation(conversationId);
    const row = this.q["groupGet"]!.get(conversationId) as Record<string, unknown> | undefined;
    if (row === undefined) return undefined;
    const bytes = this.open("group", conversationId, row["sealed"] as Uint8Array);
    try {
      const group = MlsGroup.restore(client, bytes, options);
      if (group.conversation.id !== conversationId) throw new MlsStoreError(`the state kept for ${conversationId} is of ${group.conversation.id}`);
      return group;
    } catch (e) {
      if (e instanceof MlsStoreError) throw e;
      throw new MlsStoreError(`the MLS state kept for ${conversationId} does not restore: ${(e as Error).message}`, { cause: e });
    } finally {
      bytes.fill(0);
    }
  }

  /** Deletes a conversation's group state (left, removed, or the conversation forgotten), and a commit kept for it. */
  deleteGroup(conversationId: string): boolean {
    checkConversation(conversationId);
    let changes = 0;
    this.write(() => {
      changes = Number(this.q["groupDelete"]!.run(conversationId).changes);
      this.q["pendingDelete"]!.run(conversationId);
    });
    return changes > 0;
  }

  // ---- a commit in flight (PROTOCOL.md §8.1) ----------------------------------------------

  /**
   * Keeps the group's pending commit before it is sent (one per conversation, replacing any):
   * sealed like a group state, deleted once settled (deletePendingCommit, or a saveGroup past
   * its epoch). The next epoch's state in it is a group state like any other (§10.2: overwritten
   * and zeroed on disk like one).
   */
  savePendingCommit(group: MlsGroup, c: KeptCommitParts): void {
    if (!(group instanceof MlsGroup)) throw new TypeError("an MlsGroup is needed");
    if (group.client.username !== this.identity.username) throw new TypeError(`the group belongs to '${group.client.username}', not '${this.identity.username}'`);
    checkKeptCommitParts(c);
    const conversationId = group.conversation.id;
    const next = group.serializePending();
    const bytes = encodeKeptCommit(next, c);
    next.fill(0);
    const sealed = this.seal("pending-commit", conversationId, bytes);
    bytes.fill(0);
    this.write(() => { this.q["pendingPut"]!.run(conversationId, Buffer.from(group.groupId), group.epoch.toString(), sealed); });
  }

  /** The commit kept for a conversation (undefined when none is). */
  loadPendingCommit(conversationId: string): KeptCommit | undefined {
    checkConversation(conversationId);
    const row = this.q["pendingGet"]!.get(conversationId) as Record<string, unknown> | undefined;
    if (row === undefined) return undefined;
    const bytes = this.open("pending-commit", conversationId, row["sealed"] as Uint8Array);
    try {
      return decodeKeptCommit(bytes, conversationId, BigInt(String(row["epoch"])));
    } catch (e) {
      throw new MlsStoreError((e as Error).message, { cause: e });
    } finally {
      bytes.fill(0);
    }
  }

  /** Forgets the commit kept for a conversation (answered: refused, or the answer handled). */
  deletePendingCommit(conversationId: string): void {
    checkConversation(conversationId);
    this.write(() => { this.q["pendingDelete"]!.run(conversationId); });
  }

  /** The conversations a commit is kept for. */
  pendingCommits(): string[] {
    return (this.q["pendingAll"]!.all() as Record<string, unknown>[]).map((r) => String(r["conversation_id"]));
  }

  /** The conversations a group state is kept for. */
  conversations(): string[] {
    return (this.q["groupAll"]!.all() as Record<string, unknown>[]).map((r) => String(r["conversation_id"]));
  }

  /** A small value of the engine's (dropped-devices.ts), sealed like the rest and bound to its name. */
  putValue(name: string, bytes: Uint8Array): void {
    this.q["valuePut"]!.run(name, this.seal("value", name, bytes));
  }

  /** The value kept under `name`, or undefined; MlsStoreError when it does not open. */
  value(name: string): Buffer | undefined {
    const row = this.q["valueGet"]!.get(name) as { sealed: Uint8Array } | undefined;
    return row === undefined ? undefined : this.open("value", name, row.sealed);
  }

  close(): void {
    this.key.fill(0);
    if (this.db.isOpen) this.db.close();
  }

  // ---- internals -----------------------------------------------------------------------------

  private checkClient(client: MlsClient): void {
    if (client === null || typeof client !== "object" || client.username !== this.identity.username) {
      throw new TypeError(`an MlsClient of '${this.identity.username}' is needed`);
    }
  }

  /** One write transaction (BEGIN IMMEDIATE: it waits for the other process's lock, then holds it). */
  private write(f: () => void): void {
    this.db.exec("BEGIN IMMEDIATE");
    try {
      f();
      this.db.exec("COMMIT");
    } catch (e) {
      this.db.exec("ROLLBACK");
      throw e;
    }
  }

  /** iv ‖ tag ‖ ciphertext; the additional data binds it to the user, the table and the row. */
  private seal(row: Row, name: string, plaintext: Uint8Array): Buffer {
    const iv = randomBytes(GCM_IV_BYTES);
    const { ciphertext, tag } = aesGcmEncrypt(this.key, iv, this.aad(row, name), plaintext);
    return Buffer.concat([iv, tag, ciphertext]);
  }

  private open(row: Row, name: string, sealed: Uint8Array): Buffer {
    if (!(sealed instanceof Uint8Array) || sealed.length < GCM_IV_BYTES + GCM_TAG_BYTES) throw new MlsStoreError(`the stored MLS ${row} '${name}' is damaged`);
    try {
      return aesGcmDecrypt(this.key, sealed.subarray(0, GCM_IV_BYTES), this.aad(row, name),
        sealed.subarray(GCM_IV_BYTES + GCM_TAG_BYTES), sealed.subarray(GCM_IV_BYTES, GCM_IV_BYTES + GCM_TAG_BYTES));
    } catch (e) {
      throw new MlsStoreError(`the stored MLS ${row} '${name}' does not open with this key file (another key, or damaged)`, { cause: e });
    }
  }

  private aad(row: Row, name: string): Buffer {
    return encodeFields(`securechat/v1/mls-store/${row}`, [this.identity.username, name]);
  }
}
