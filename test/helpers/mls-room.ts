// A real MLS group (src/protocol/mls, X-Wing suite) of K members made in-process once, and the
// bytes that register it with a fresh relay (PROTOCOL.md §8.1, §8.2): the creator's epoch-0
// GroupInfo (PublishGroupInfo registers the group, the creator its first member), then the
// commit adding everyone else (SendCommit with the new epoch's GroupInfo, the Welcome, the
// ratchet tree beside it and the membership hint). Every member joined from that Welcome here,
// so each holds its own epoch-1 state and can encrypt and open; replaying the registration to a
// new relay (a fresh data dir) gives that relay the same group at the same epoch. Used by the
// MLS relay benchmarks (scripts/bench/relay-fanout.ts, relay-catchup-mls.ts) and the
// fuzzing of MLS through the queues (test/fuzz/relay-mls-queues.test.ts).
import type { KeyObject } from "node:crypto";
import {
  createMlsClient, generateKeyPackage, MlsGroup, restoreKeyPackage, type MlsClient,
} from "../../src/protocol/mls/index.js";
import type { RawSession } from "./raw-session.js";
import { must, sendCommit } from "./mls-ds.js";

export interface MlsRoomMember {
  readonly username: string;
  readonly sigPrivate: KeyObject;
}

export interface MlsRoomRegistration {
  /** The creator's GroupInfo at epoch 0 (PublishGroupInfo). */
  readonly groupInfo0: Uint8Array;
  /** The commit adding every other member (epoch 0 -> 1), its GroupInfo, Welcome and tree. */
  readonly commit: Uint8Array;
  readonly groupInfo1: Uint8Array;
  readonly welcome: Uint8Array;
  readonly ratchetTree: Uint8Array;
  /** The membership hint: every member but the creator. */
  readonly added: readonly string[];
}

export interface MlsRoom {
  readonly conversationId: string;
  readonly groupId: Uint8Array;
  /** Each member's MLS client, in the order given (the first is the creator). */
  readonly clients: readonly MlsClient[];
  /** Each member's group at epoch 1, in the same order. */
  readonly groups: readonly MlsGroup[];
  /** Each member's epoch-1 state serialised, to restore a fresh copy (MlsGroup.restore). */
  readonly snapshots: readonly Uint8Array[];
  readonly registration: MlsRoomRegistration;
}

/**
 * Makes the group of `members` for `conversationId`: members[0] creates it and adds the rest in
 * one commit; each of the rest joins from the Welcome (the ratchet tree beside it).
 */
export async function makeMlsRoom(members: readonly MlsRoomMember[], conversationId: string): Promise<MlsRoom> {
  if (members.length < 2) throw new Error("makeMlsRoom: a group needs at least two members");
  const clients: MlsClient[] = [];
  for (const m of members) clients.push(await createMlsClient({ username: m.username, sigPrivate: m.sigPrivate }));
  const creator = await MlsGroup.create(clients[0]!, conversationId);
  const groupInfo0 = await creator.groupInfo();
  const kps = [];
  for (const c of clients.slice(1)) {
    const kp = await generateKeyPackage(c);
    kps.push({ kp, stored: await restoreKeyPackage(c, kp.stored) });
  }
  const add = await creator.addMembers(kps.map((k) => k.kp.keyPackage));
  creator.confirmCommit();
  if (add.welcome === undefined || add.ratchetTree === undefined) throw new Error("makeMlsRoom: the add gave no Welcome");
  const groupInfo1 = await creator.groupInfo();
  const groups: MlsGroup[] = [creator];
  for (let i = 1; i < clients.length; i++) {
    const { stored } = kps[i - 1]!;
    groups.push((await MlsGroup.joinFromWelcome(clients[i]!, add.welcome, add.ratchetTree, () => stored)).group);
  }
  return {
    conversationId,
    groupId: creator.groupId,
    clients,
    groups,
    snapshots: groups.map((g) => g.serialize()),
    registration: {
      groupInfo0, commit: add.commit, groupInfo1, welcome: add.welcome, ratchetTree: add.ratchetTree,
      added: members.slice(1).map((m) => m.username),
    },
  };
}

/**
 * Registers the room with a relay through the creator's session: its epoch-0 GroupInfo, then
 * the add commit with its GroupInfo, Welcome, tree and hint. The session must keep the frames
 * it receives while this runs (keepFrames), as the tests' sessions do.
 */
export async function registerMlsRoom(creator: RawSession, room: MlsRoom): Promise<void> {
  const r = room.registration;
  const keep = creator.keepFrames;
  creator.keepFrames = true;
  try {
    await must(creator, { $case: "publishGroupInfo", value: { requestId: 0, groupInfo: Buffer.from(r.groupInfo0) } }, "groupInfoResult");
    const res = await sendCommit(creator, r.commit, r.groupInfo1, { added: [...r.added], welcome: r.welcome, ratchetTree: r.ratchetTree });
    if (!res.accepted) throw new Error(`registering ${room.conversationId}: the relay refused the add commit: ${res.detail}`);
  } finally {
    creator.keepFrames = keep;
  }
}

/** The tail of an MLS message (its AEAD tag) in hex: a cheap unique key for it. */
export function mlsKey(mls: Uint8Array): string {
  return Buffer.from(mls.buffer, mls.byteOffset + mls.byteLength - 16, 16).toString("hex");
}
