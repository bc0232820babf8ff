// Talking protocol v2 through a relay with raw sessions (PROTOCOL.md §8.3): a real MLS group
// for a conversation (a DM, a room or the lobby), made in-process (mls-room.ts) and registered
// with the relay through its creator's session; each member's epoch-1 group encrypts what it
// sends and opens what it gets, so a test also shows the relay never altered what it carried.
// What the relay-messaging, refusals, lifecycle... tests use where v1 sealed envelopes.
import type { MlsDelivery, SendResult, Welcome } from "../../src/gen/securechat/v1/chat.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import type { MlsGroup } from "../../src/protocol/mls/index.js";
import { sendMls, sendMlsAccepted, takeMls, waitForEmptyQueue } from "./mls-queues.js";
import { makeMlsRoom, registerMlsRoom, type MlsRoom } from "./mls-room.js";
import type { RawSession } from "./raw-session.js";
import type { TestRelay } from "./relay-harness.js";

export class MlsTalk {
  private constructor(readonly relay: TestRelay, readonly room: MlsRoom, private readonly names: readonly string[]) {}

  /**
   * The group of `members` (members[0] creates it) for `conversationId`, registered through
   * `creator` (members[0]'s session). The Welcome is queued for every other member: `online`
   * sessions of members take it and ack it here, and their queues are empty (the acks committed)
   * when this resolves.
   */
  static async start(
    relay: TestRelay, creator: RawSession, members: readonly PrivateIdentity[], conversationId: string,
    online: readonly (RawSession & { readonly welcome: Welcome })[] = [],
  ): Promise<MlsTalk> {
    const room = await makeMlsRoom(members.map((m) => ({ username: m.username, sigPrivate: m.sigPrivate })), conversationId);
    await registerMlsRoom(creator, room);
    const talk = new MlsTalk(relay, room, members.map((m) => m.username));
    for (const s of online) await takeMls(s, 1);
    for (const s of online) await waitForEmptyQueue(relay, s.welcome.username);
    return talk;
  }

  get conversationId(): string {
    return this.room.conversationId;
  }

  /** `username`'s group (epoch 1 on). */
  group(username: string): MlsGroup {
    const i = this.names.indexOf(username);
    if (i < 0) throw new Error(`${username} is not a member of ${this.conversationId}`);
    return this.room.groups[i]!;
  }

  /** An application message of `from` carrying `text`. */
  async encrypt(from: string, text: string): Promise<Buffer> {
    return Buffer.from(await this.group(from).encrypt(Buffer.from(text, "utf8")));
  }

  /** Encrypts `text` as `from` and sends it through `s`; resolves with the SendResult (accepted or not). */
  async send(s: RawSession, from: string, text: string): Promise<SendResult> {
    return sendMls(s, await this.encrypt(from, text));
  }

  /** send() that must be ACCEPTED. */
  async sendAccepted(s: RawSession, from: string, text: string): Promise<SendResult> {
    return sendMlsAccepted(s, await this.encrypt(from, text));
  }

  /** Opens MLS application deliveries as `me`, in the order given; returns their texts. Fails on anything else. */
  async open(me: string, items: readonly { readonly conversationId: string; readonly mls?: MlsDelivery | undefined }[]): Promise<string[]> {
    const out: string[] = [];
    for (const i of items) {
      if (i.mls === undefined) throw new Error("a delivery that is not an MLS message came where one was expected");
      if (i.conversationId !== this.conversationId) throw new Error(`a delivery for ${i.conversationId} came where ${this.conversationId} was expected`);
      const m = await this.group(me).process(i.mls.mls);
      if (m.kind !== "application") throw new Error(`expected an application message, got ${m.kind}`);
      out.push(m.plaintext.toString("utf8"));
    }
    return out;
  }

  /** Takes `count` deliveries of `s` (acked unless told not to), opens them as `me`: their texts. */
  async receive(s: RawSession, me: string, count: number, options: { ack?: boolean; timeoutMs?: number } = {}): Promise<string[]> {
    return this.open(me, await takeMls(s, count, options));
  }
}

/** Waits until the relay's queues for these users are empty (Welcomes acked and committed). */
export async function waitForEmptyQueues(relay: TestRelay, usernames: readonly string[]): Promise<void> {
  for (const u of usernames) await waitForEmptyQueue(relay, u);
}
