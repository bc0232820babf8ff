// Real MLS groups (src/protocol/mls, X-Wing suite) spoken through raw v2 sessions, for the
// relay-side hostile tests converted from protocol v1 (relay-abuse, relay-flood, relay-mitm,
// fuzz/relay-frames): where a v1 test sealed an envelope to a DM or the lobby, the v2 test
// makes the conversation's group once (mls-room.ts), registers it with the relay through the
// creator's session (PROTOCOL.md §8.2), lets every member online take and ack its Welcome
// (so the queues start empty, as the v1 tests' did), then encrypts and opens application
// messages with the members' own group states.
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { must, sendCommit } from "./mls-ds.js";
import { makeMlsRoom, type MlsRoom } from "./mls-room.js";
import { takeMls, waitForEmptyQueue } from "./mls-queues.js";
import type { RawSession } from "./raw-session.js";
import type { TestRelay } from "./relay-harness.js";

export interface LiveGroup {
  readonly room: MlsRoom;
  /** An application message of `who` (a member) carrying `text` as UTF-8. */
  say(who: string, text: string): Promise<Uint8Array>;
  /** What `who` reads in an application message of this group (its group state advances). */
  read(who: string, mls: Uint8Array): Promise<{ from: string; text: string }>;
}

/**
 * The group of `members` for `conversationId` (members[0] creates it and registers it through
 * `creator`, its session). Each member in `online` (username -> session) takes and acks the
 * Welcome the relay queued for it; then its queue is empty. `beforeRequest` runs before each of
 * the two requests that register the group (each takes a token of the creator's sending bucket:
 * a test with a frozen clock and a bucket of one moves its clock there).
 */
export async function liveGroup(
  relay: TestRelay, creator: RawSession, members: readonly PrivateIdentity[], conversationId: string,
  online: Readonly<Record<string, RawSession>> = {}, beforeRequest: () => void = () => {},
): Promise<LiveGroup> {
  const room = await makeMlsRoom(members.map((m) => ({ username: m.username, sigPrivate: m.sigPrivate })), conversationId);
  const r = room.registration;
  beforeRequest();
  await must(creator, { $case: "publishGroupInfo", value: { requestId: 0, groupInfo: Buffer.from(r.groupInfo0) } }, "groupInfoResult");
  beforeRequest();
  const res = await sendCommit(creator, r.commit, r.groupInfo1, { added: [...r.added], welcome: r.welcome, ratchetTree: r.ratchetTree });
  if (!res.accepted) throw new Error(`registering ${conversationId}: the relay refused the add commit: ${res.detail}`);
  for (const [username, s] of Object.entries(online)) {
    if (username === members[0]!.username) continue;
    await takeMls(s, 1);
    await waitForEmptyQueue(relay, username);
  }
  const index = (who: string): number => {
    const i = members.findIndex((m) => m.username === who);
    if (i < 0) throw new Error(`${who} is not a member of ${conversationId}`);
    return i;
  };
  return {
    room,
    say: (who, text) => room.groups[index(who)]!.encrypt(Buffer.from(text, "utf8")),
    read: async (who, mls) => {
      const got = await room.groups[index(who)]!.process(mls);
      if (got.kind !== "application") throw new Error(`${who} expected an application message in ${conversationId}, got a ${got.kind}`);
      return { from: got.sender.username, text: got.plaintext.toString("utf8") };
    },
  };
}
