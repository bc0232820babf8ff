// A re-join (PROTOCOL.md §12 "a re-join") takes a GroupInfo the relay chooses. Held messages
// past their bound and no commits to fetch make the client re-join; a hostile relay then serves:
// - an OLD GroupInfo of the same group, from before a member (mallory) was kicked: joined, the
//   kicked member would process the external commit from her own old state and read what is
//   sent next (§1 "a relay cannot add a reader or keep a removed one reading");
// - a GroupInfo of a fork the kicked member made from her old state, at a later epoch: nothing
//   in it tells it from the room's present state (anyone may join a room, so its newest
//   GroupInfo is often signed by a newcomer); bob is told who is in it that was not before, and
//   once bob changed his own leaf since the fork's start (only his commits change it), refused;
// - another group for the room, made by the relay's own account (§7.3: only the room's creator
//   may re-create it).
// The first and the last are refused: bob stays in the group he holds, says why, and what he
// sends next is read by alice, never by mallory. (Found by a red-team review; the refusal is commit.ts `unvouched`.)
import { copyFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { encodeMlsMessage } from "ts-mls";
import { MlsKind, type Delivery } from "../../src/gen/securechat/v1/chat.js";
import { MlsKeyStore } from "../../src/client/mls-store.js";
import { decodeMls } from "../../src/protocol/mls/client.js";
import { MlsGroup } from "../../src/protocol/mls/index.js";
import { fixtureIdentity } from "../helpers/identities.js";
import type { ProxiedSession, RequestFrame } from "../helpers/mls-hostile-proxy.js";
import { cleanupWorlds, isKind, keepTalking, lines, loadIdentities, logged, notices, room, shown, T, world, worldWith, type World } from "../helpers/v2-hostile-world.js";
import { UPDATE_AFTER_MS } from "../../src/client/mls/content.js";
import { waitUntil } from "../helpers/wait.js";

beforeAll(loadIdentities);
afterEach(cleanupWorlds);

/** Mallory's MLS store as it is now (her own files: she may keep a copy of them). */
async function copyOfMallory(w: World): Promise<{ store: MlsKeyStore; group: () => Promise<MlsGroup | undefined> }> {
  const copy = join(w.dirOf("mallory"), "copy_mls.db");
  // Her client saves a group at the end of each operation: wait until #ops is on disk.
  await waitUntil(() => {
    copyFileSync(join(w.dirOf("mallory"), "mallory_mls.db"), copy);
    const s = MlsKeyStore.open(copy, { username: "mallory", sigPrivate: ids.mallory!.sigPrivate });
    try {
      return s.conversations().includes("#ops");
    } finally {
      s.close();
    }
  }, "mallory's #ops on disk", T);
  const store = MlsKeyStore.open(copy, { username: "mallory", sigPrivate: ids.mallory!.sigPrivate });
  const client = await store.loadOrCreateClient();
  return { store, group: async () => store.loadGroup(client, "#ops") };
}

const ids: Record<string, Awaited<ReturnType<typeof fixtureIdentity>>> = {};

/**
 * The hostile relay's part for bob: no commits to fetch, `groupInfo` served for #ops, and an
 * external commit of bob's answered as accepted by the proxy itself (it would never reach the
 * real relay's order). Then 1,000 copies of an #ops message relabelled 5 epochs ahead: held
 * past their bound, they make bob re-join. Returns bob's external commit, if he sent one.
 */
async function forceRejoin(w: World, groupInfo: Buffer): Promise<{ joined: () => Buffer | undefined }> {
  let bobJoin: Buffer | undefined;
  w.proxy.onRequest = (user: string, f: RequestFrame, s: ProxiedSession) => {
    if (user !== "bob") return undefined;
    if (f.$case === "fetchCommits") {
      s.toClient({ $case: "commitList", value: { requestId: f.value.requestId, groupId: f.value.groupId, commits: [], currentEpoch: f.value.fromEpoch, more: false } });
      return [];
    }
    if (f.$case === "fetchGroupInfo" && f.value.conversationId === "#ops") {
      const m = decodeMls(groupInfo, "GroupInfo");
      const epoch = m.wireformat === "mls_group_info" ? Number(m.groupInfo.groupContext.epoch) : 0;
      const groupId = m.wireformat === "mls_group_info" ? Buffer.from(m.groupInfo.groupContext.groupId) : Buffer.alloc(0);
      s.toClient({ $case: "groupInfoResult", value: { requestId: f.value.requestId, groupId, groupInfo, groupInfoEpoch: epoch, currentEpoch: epoch } });
      return [];
    }
    if (f.$case === "sendCommit") {
      const fr = decodeMls(f.value.commit, "commit");
      if (fr.wireformat === "mls_public_message" && fr.publicMessage.content.sender.senderType === "new_member_commit") {
        bobJoin = Buffer.from(f.value.commit);
        const epoch = Number(fr.publicMessage.content.epoch);
        s.toClient({ $case: "commitResult", value: { requestId: f.value.requestId, accepted: true, code: 0, detail: "", groupId: Buffer.from(fr.publicMessage.content.groupId), epoch, currentEpoch: epoch + 1, winner: "" } });
        return [];
      }
    }
    return undefined;
  };
  const real = w.proxy.deliveredTo("bob", isKind(MlsKind.MLS_KIND_APPLICATION, "#ops")).at(-1)!;
  const m = decodeMls(real.mls!.mls, "msg");
  if (m.wireformat !== "mls_private_message") throw new Error("expected a PrivateMessage");
  const future = encodeMlsMessage({ ...m, privateMessage: { ...m.privateMessage, epoch: m.privateMessage.epoch + 5n } });
  const fake: Delivery = { ...real, mls: { ...real.mls!, mls: Buffer.from(future) } };
  w.proxy.inject("bob", ...Array.from({ length: 1000 }, () => fake));
  await waitUntil(() => notices(w.c["bob"]!).some((t) => t.includes("missing changes in #ops")), "bob's recovery of #ops", T);
  w.proxy.onRequest = undefined;
  return { joined: () => bobJoin };
}

/** Bob stayed in the room as it is: mallory is not a member in his view, and alice reads his next line. */
async function bobStayed(w: World, line: string, joinedLines: number): Promise<void> {
  const members = await w.c["bob"]!.client.members("#ops");
  expect(members.ok && [...members.value].sort()).toEqual(["alice", "bob"]);
  expect(w.c["bob"]!.client.send("#ops", line).ok).toBe(true);
  await waitUntil(() => shown(w.c["alice"]!, "#ops").includes(line), `alice reads "${line}"`, T);
  expect(lines(w.c["bob"]!, "#ops").filter((l) => l.startsWith("bob joined"))).toHaveLength(joinedLines);
}

/** The newest #ops GroupInfo alice or bob sent to the relay so far (with a commit or alone). */
function newestGroupInfo(w: World): Buffer {
  const all = ["alice", "bob", "mallory"].flatMap((u) => w.proxy.requests.get(u) ?? []).flatMap((f) =>
    f.$case === "sendCommit" && f.value.groupInfo.length > 0 ? [Buffer.from(f.value.groupInfo)] : f.$case === "publishGroupInfo" ? [Buffer.from(f.value.groupInfo)] : []);
  const ofOps = all.flatMap((g) => {
    const m = decodeMls(g, "GroupInfo");
    return m.wireformat === "mls_group_info" && Buffer.from(m.groupInfo.groupContext.groupId).toString().startsWith("#ops\u0000") ? [{ g, epoch: m.groupInfo.groupContext.epoch }] : [];
  });
  return ofOps.sort((a, b) => Number(a.epoch - b.epoch)).at(-1)!.g;
}

describe("a re-join takes only a GroupInfo the group vouches for (§12)", () => {
  beforeAll(async () => {
    for (const n of ["alice", "bob", "mallory"] as const) ids[n] = await fixtureIdentity(n);
  });

  it("an old GroupInfo, from before mallory was kicked: refused as not later than bob's epoch", { timeout: 300_000 }, async () => {
    const w = await world("alice", "bob", "mallory");
    await room(w, "#ops", "alice", "bob", "mallory");
    await keepTalking(w, "#ops", ["alice", "bob", "mallory"], "all three");
    const old = newestGroupInfo(w);
    expect((await w.c["alice"]!.client.kick!("#ops", "mallory")).ok).toBe(true);
    await waitUntil(async () => { const m = await w.c["bob"]!.client.members("#ops"); return m.ok && !m.value.includes("mallory"); }, "bob sees mallory gone", T);
    await keepTalking(w, "#ops", ["alice", "bob"], "without mallory");

    const joins = lines(w.c["bob"]!, "#ops").filter((l) => l.startsWith("bob joined")).length;
    const r = await forceRejoin(w, old);
    expect(r.joined()).toBeUndefined();
    expect(notices(w.c["bob"]!).find((t) => t.includes("missing changes in #ops"))).toMatch(/joining it again failed: the relay offered #ops as it was at epoch \d+, not later than yours \(\d+\); you stay where you are$/);
    expect(logged("bob", "mls.join.unvouched")).toBeGreaterThan(0);
    await bobStayed(w, "the vault code is 4711", joins);
  });

  it("a fork mallory made from her state before the kick, at a later epoch: bob follows it (nothing tells it from a newcomer's join) and is told mallory is in #ops now", { timeout: 300_000 }, async () => {
    const w = await world("alice", "bob", "mallory");
    await room(w, "#ops", "alice", "bob", "mallory");
    await keepTalking(w, "#ops", ["alice", "bob", "mallory"], "all three");
    const copy = await copyOfMallory(w);
    expect((await w.c["alice"]!.client.kick!("#ops", "mallory")).ok).toBe(true);
    await waitUntil(async () => { const m = await w.c["bob"]!.client.members("#ops"); return m.ok && !m.value.includes("mallory"); }, "bob sees mallory gone", T);
    await keepTalking(w, "#ops", ["alice", "bob"], "without mallory");

    // Mallory's fork: self-updates from her old state until it is ahead of the room.
    const fork = (await copy.group())!;
    for (let i = 0; i < 4; i++) {
      await fork.selfUpdate();
      fork.confirmCommit();
    }
    const r = await forceRejoin(w, Buffer.from(await fork.groupInfo()));
    copy.store.close();
    // A residual risk (PROTOCOL.md §12): a removed member's fork at a later epoch is joined like
    // the room's present state; what bob is told is that mallory is in #ops now.
    expect(r.joined()).toBeDefined();
    expect(notices(w.c["bob"]!)).toContain("while you were out of step with #ops: mallory is in it now (changes you did not see made)");
  });

  it("the same fork after bob changed his own leaf (his daily update): refused, his place in it is older than his", { timeout: 300_000 }, async () => {
    const skew = { ms: 0 };
    const w = await worldWith({ clocks: { bob: () => Date.now() + skew.ms } }, "alice", "bob", "mallory");
    await room(w, "#ops", "alice", "bob", "mallory");
    await keepTalking(w, "#ops", ["alice", "bob", "mallory"], "all three");
    const copy = await copyOfMallory(w);
    expect((await w.c["alice"]!.client.kick!("#ops", "mallory")).ok).toBe(true);
    await waitUntil(async () => { const m = await w.c["bob"]!.client.members("#ops"); return m.ok && !m.value.includes("mallory"); }, "bob sees mallory gone", T);
    // A day on, bob's next message first commits an update of his leaf (§10.3).
    skew.ms = UPDATE_AFTER_MS + 60_000;
    const commits = (w.proxy.requests.get("bob") ?? []).filter((f) => f.$case === "sendCommit").length;
    await keepTalking(w, "#ops", ["alice", "bob"], "without mallory");
    expect((w.proxy.requests.get("bob") ?? []).filter((f) => f.$case === "sendCommit").length).toBeGreaterThan(commits);

    const fork = (await copy.group())!;
    for (let i = 0; i < 6; i++) {
      await fork.selfUpdate();
      fork.confirmCommit();
    }
    const joins = lines(w.c["bob"]!, "#ops").filter((l) => l.startsWith("bob joined")).length;
    const r = await forceRejoin(w, Buffer.from(await fork.groupInfo()));
    copy.store.close();
    expect(r.joined()).toBeUndefined();
    expect(notices(w.c["bob"]!).find((t) => t.includes("missing changes in #ops"))).toMatch(/joining it again failed: the relay offered a state of #ops made from one older than yours \(your own place in it is as it was before your last change\); you stay where you are$/);
    await bobStayed(w, "the deploy window is at 6", joins);
  });

  it("another group for #ops made by the relay's own account: refused, only alice (its creator) may re-create it", { timeout: 300_000 }, async () => {
    const w = await world("alice", "bob", "mallory");
    await room(w, "#ops", "alice", "bob");
    await keepTalking(w, "#ops", ["alice", "bob"], "alice and bob");
    const store = MlsKeyStore.open(join(w.dirOf("mallory"), "mallory_mls.db"), { username: "mallory", sigPrivate: ids.mallory!.sigPrivate });
    const evil = await MlsGroup.create(await store.loadOrCreateClient(), "#ops");
    const joins = lines(w.c["bob"]!, "#ops").filter((l) => l.startsWith("bob joined")).length;
    const r = await forceRejoin(w, Buffer.from(await evil.groupInfo()));
    store.close();
    expect(r.joined()).toBeUndefined();
    expect(notices(w.c["bob"]!).find((t) => t.includes("missing changes in #ops"))).toMatch(/joining it again failed: the relay offered another group for #ops, signed by mallory; only alice, who created #ops, may re-create it; you stay in the current one$/);
    await bobStayed(w, "alice, the deploy key is hunter2", joins);
  });
});
