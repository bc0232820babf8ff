// Shared set-up for the MLS tests: identities (Ed25519 only: MLS needs no RSA key), clients,
// KeyPackage stores, and a helper that delivers one message to several members.
import { generateKeyPairSync, type KeyObject } from "node:crypto";
import {
  createMlsClient, generateKeyPackage, MlsGroup, restoreKeyPackage,
  type GeneratedKeyPackage, type Incoming, type MlsClient, type StoredKeyPackage,
} from "../../src/protocol/mls/index.js";

export interface Person {
  readonly username: string;
  readonly sigPrivate: KeyObject;
  readonly client: MlsClient;
  /** This person's KeyPackage store (what the client keeps on disk), by ref hex. */
  readonly store: Map<string, StoredKeyPackage>;
}

export async function person(username: string): Promise<Person> {
  const { privateKey } = generateKeyPairSync("ed25519");
  const client = await createMlsClient({ username, sigPrivate: privateKey });
  return { username, sigPrivate: privateKey, client, store: new Map() };
}

/** Generates a KeyPackage and keeps its private part in the person's store; returns the upload bytes. */
export async function keyPackageOf(p: Person, options: { lastResort?: boolean; nowS?: number } = {}): Promise<GeneratedKeyPackage> {
  const kp = await generateKeyPackage(p.client, options);
  p.store.set(Buffer.from(kp.ref).toString("hex"), await restoreKeyPackage(p.client, kp.stored));
  return kp;
}

export function lookup(p: Person): (ref: Uint8Array) => StoredKeyPackage | undefined {
  return (ref) => p.store.get(Buffer.from(ref).toString("hex"));
}

/** A creator makes the group, adds the others with one commit; everyone joins. */
export async function groupOf(conversationId: string, creator: Person, others: readonly Person[]): Promise<MlsGroup[]> {
  const g = await MlsGroup.create(creator.client, conversationId);
  if (others.length === 0) return [g];
  const kps = await Promise.all(others.map((o) => keyPackageOf(o)));
  const pending = await g.addMembers(kps.map((k) => k.keyPackage));
  g.confirmCommit();
  const joined = [];
  for (const o of others) joined.push((await MlsGroup.joinFromWelcome(o.client, pending.welcome!, pending.ratchetTree!, lookup(o))).group);
  return [g, ...joined];
}

export async function deliver(msg: Uint8Array, to: readonly MlsGroup[]): Promise<Incoming[]> {
  const out: Incoming[] = [];
  for (const g of to) out.push(await g.process(msg));
  return out;
}

export function text(s: string): Uint8Array {
  return new TextEncoder().encode(s);
}
