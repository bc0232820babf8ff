// A hostile protocol v2 peer (PROTOCOL.md §7, §11): a raw v2 session with a real MLS client
// of its own, which makes a DM's group with an honest client (claiming its KeyPackage and
// adding it: the honest client joins from the Welcome), joins the lobby by external commit, and
// encrypts application data of its own choosing through those real groups. Its application data
// is built by hand (the real encoder refuses a kind outside the conversations it belongs to), so
// the honest client's own checks are what a test exercises: what MLS authenticates as sent by
// this member, the receiving client must still refuse when the content breaks the rules.
import { randomBytes } from "node:crypto";
import { encodeFields, type Field } from "../../src/protocol/encoding.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { APP_LABEL_V2 } from "../../src/protocol/mls/app-data.js";
import { appHash, MlsGroup, ZERO_APP_HASH, type AppKind } from "../../src/protocol/mls/index.js";
import { mlsPerson, must, sendCommit, type MlsPerson } from "./mls-ds.js";
import { connectV2, sendMlsAccepted } from "./mls-queues.js";
import type { RawSession } from "./raw-session.js";
import type { TestRelay } from "./relay-harness.js";

/** The wire codes of the application data's kinds (app-data.ts). */
const KIND_CODES: Record<AppKind, number> = { text: 1, action: 2, topic: 3, away: 4 };

export class HostileMlsPeer {
  private readonly groups = new Map<string, MlsGroup>();
  /** My chain's head per conversation (§11 `prev`), so my honest-looking messages continue it. */
  private readonly heads = new Map<string, Uint8Array>();

  private constructor(readonly session: RawSession, readonly person: MlsPerson) {}

  static async connect(relay: TestRelay, id: PrivateIdentity): Promise<HostileMlsPeer> {
    return new HostileMlsPeer(await connectV2(relay, id), await mlsPerson(id));
  }

  get username(): string {
    return this.person.username;
  }

  group(conversationId: string): MlsGroup {
    const g = this.groups.get(conversationId);
    if (g === undefined) throw new Error(`${this.username} has no group for ${conversationId}`);
    return g;
  }

  /** Makes the DM's group with `peer` (claims one of its KeyPackages, adds it, registers it): the peer's client joins from the Welcome. */
  async dmWith(peer: string, conversationId: string): Promise<MlsGroup> {
    const s = this.session;
    const kps = await must(s, { $case: "claimKeyPackages", value: { requestId: 0, usernames: [peer], deviceIds: [] } }, "keyPackageList");
    const kp = kps.entries.find((e) => e.username === peer);
    if (kp === undefined) throw new Error(`the relay holds no KeyPackage for ${peer}`);
    const g = await MlsGroup.create(this.person.client, conversationId);
    await must(s, { $case: "publishGroupInfo", value: { requestId: 0, groupInfo: Buffer.from(await g.groupInfo()) } }, "groupInfoResult");
    const add = await g.addMembers([kp.keyPackage], { expectUsernames: [peer] });
    g.confirmCommit();
    const r = await sendCommit(s, add.commit, await g.groupInfo(), { added: [peer], welcome: add.welcome, ratchetTree: add.ratchetTree });
    if (!r.accepted) throw new Error(`the relay refused ${this.username}'s add of ${peer}: ${r.detail}`);
    this.groups.set(conversationId, g);
    return g;
  }

  /** Joins the lobby's group by external commit from the relay's GroupInfo. */
  async joinLobby(): Promise<MlsGroup> {
    const s = this.session;
    const gi = await must(s, { $case: "fetchGroupInfo", value: { requestId: 0, groupId: Buffer.alloc(0), conversationId: "lobby" } }, "groupInfoResult");
    const j = await MlsGroup.joinExternal(this.person.client, gi.groupInfo, { expectConversation: "lobby" });
    const r = await sendCommit(s, j.commit, await j.group.groupInfo(), { added: [this.username] });
    if (!r.accepted) throw new Error(`the relay refused ${this.username}'s join of the lobby: ${r.detail}`);
    this.groups.set("lobby", j.group);
    return j.group;
  }

  /**
   * Sends application data of any kind, built by hand in the §11 format (label app2, kind, text,
   * a fresh id, my clock, my chain's head, nothing seen, no views), through the conversation's
   * real group; the relay must accept it (it cannot see the kind).
   */
  async send(conversationId: string, kind: AppKind, text: string): Promise<Uint8Array> {
    const g = this.group(conversationId);
    const prev = this.heads.get(conversationId) ?? ZERO_APP_HASH;
    const fields: Field[] = [new Uint8Array([KIND_CODES[kind]]), text, randomBytes(16), { u64: Date.now() }, prev, { u32: 0 }, { u32: 0 }];
    const app = new Uint8Array(encodeFields(APP_LABEL_V2, fields));
    this.heads.set(conversationId, appHash(g.groupId, this.username, app));
    const mls = await g.encrypt(app);
    await sendMlsAccepted(this.session, mls);
    return app;
  }
}
