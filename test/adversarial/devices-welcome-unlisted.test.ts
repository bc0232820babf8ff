// Review round 8, finding 1 (HIGH): the memory of devices a primary dropped (dropped-devices.ts) is read by commits
// and external joins only. A Welcome (onWelcome) checks no device list at all, and a DM's group
// "may still be replaced by its peer's Welcome" (PROTOCOL §7.6 / §7.2 race). So the stolen desktop,
// taken out by alice's primary and remembered as dropped by bob, makes a NEW group for
// dm:alice:bob holding only itself and bob, and a hostile relay hands bob its Welcome: bob drops
// the DM he shares with alice's laptop, takes the thief's group, shows what the thief writes as
// alice's, and seals what he writes next to the thief alone.
import { describe, expect, it } from "vitest";
import { MlsKind } from "../../src/gen/securechat/v1/chat.js";
import { MlsGroup } from "../../src/protocol/mls/index.js";
import type { SignedDeviceList } from "../../src/protocol/devices.js";
import { deviceWorldEachTest, hostileGroup, type Device, keyOf, leafKeys, sendLine, textsIn, injectLine, aliceTwoAndBob } from "../helpers/mls-devices.js";
import { waitUntil as waitFor } from "../helpers/wait.js";

const waitUntil = <T>(fn: () => T | undefined | false | Promise<T | undefined | false>, what: string, ms = 90_000): Promise<T> => waitFor(fn, what, ms);
const t = deviceWorldEachTest("sc-rt8-welcome-");
const dm = "dm:alice:bob";

async function setup(withhold: boolean): Promise<{ laptop: Device; desktop: Device; bob: Device; before: SignedDeviceList }> {
  const w = t.w;
  const { laptop, desktop, bob, before } = await aliceTwoAndBob(w);
  sendLine(bob, dm, "hi");
  await waitUntil(() => textsIn(desktop, dm).includes("bob: hi") && textsIn(laptop, dm).includes("bob: hi"), "both of alice's devices read bob");
  await w.settle();
  await hostileGroup(t.ds, desktop, dm); // the thief's own client from here on
  if (withhold) t.ds.serveList = (viewer: string, u: string) => (viewer === "bob" && u === "alice" ? before : undefined);
  await w.publish("alice", [laptop]); // /unlink of the desktop: v2
  await laptop.directory.refresh(["alice"]);
  if (!withhold) await bob.directory.refresh(["alice"]);
  await waitUntil(() => !leafKeys(bob, dm).includes(keyOf(desktop)), "the primary's self-heal takes the desktop out of bob's DM");
  await w.settle();
  return { laptop, desktop, bob, before };
}

/** The thief: a fresh group for dm:alice:bob (itself and bob), its Welcome handed to bob by the relay. */
async function thiefWelcomesBob(desktop: Device): Promise<MlsGroup> {
  const client = await desktop.store.loadOrCreateClient();
  const g = await MlsGroup.create(client, dm, {});
  const claimed = await t.ds.api("alice", desktop.entry.deviceId).claimKeyPackages(["bob"]);
  if (!claimed.ok) throw new Error(claimed.detail);
  const p = await g.addMembers(claimed.entries.map((e) => e.keyPackage), { expectUsernames: claimed.entries.map((e) => e.username) });
  g.confirmCommit();
  t.ds.inject("bob", dm, { kind: MlsKind.MLS_KIND_WELCOME, groupId: Buffer.from(g.groupId), sender: "alice", mls: Buffer.from(p.welcome!), ratchetTree: Buffer.from(p.ratchetTree!), epoch: 0, senderDevice: desktop.entry.deviceId });
  return g;
}

describe("review round 8: the dropped (stolen) desktop's Welcome into a new group for the DM", () => {
  it("relay withholding v2 (bob remembers the desktop as dropped): bob must keep the DM with alice's laptop and never show the thief's line", { timeout: 240_000 }, async () => {
    const { w } = t;
    const { laptop, desktop, bob } = await setup(true);
    expect(bob.directory.known("alice")?.version).toBe(1);
    const laptopKey = keyOf(laptop);
    const g = await thiefWelcomesBob(desktop);
    await bob.engine.idle();
    await w.settle();
    const after = leafKeys(bob, dm);
    await injectLine(w, bob, dm, g, desktop, "new number, send the code here", "55");
    await bob.engine.idle();
    // What a secure client does: the laptop stays in bob's DM, the desktop is not in it, its line is never shown.
    expect({ laptopIn: after.includes(laptopKey), desktopIn: after.includes(keyOf(desktop)), shown: textsIn(bob, dm).filter((x) => x.includes("send the code")) })
      .toEqual({ laptopIn: true, desktopIn: false, shown: [] });
    expect(bob.events.some((e) => e.type === "notice" && e.text === "an invitation to dm:alice:bob from alice holding a device of alice that is not in their device list (an unlinked device?); nothing was joined")).toBe(true);
  });

  it("even with NO withholding (bob holds v2, the desktop plainly unlisted): bob must not swap the DM to a group holding the unlisted desktop", { timeout: 240_000 }, async () => {
    const { w } = t;
    const { laptop, desktop, bob } = await setup(false);
    expect(bob.directory.known("alice")?.version).toBe(2);
    const g = await thiefWelcomesBob(desktop);
    await bob.engine.idle();
    await w.settle();
    const after = leafKeys(bob, dm);
    // Anything bob writes now is sealed to whoever is in his DM group: the relay registers the
    // thief's group as the DM's, and the thief opens what bob writes next.
    const ds = t.ds as unknown as { byConversation: Map<string, string>; groups: Map<string, { members: Set<string> }> };
    const gid = Buffer.from(g.groupId).toString("hex");
    ds.byConversation.delete(dm);
    const reg = await t.ds.api("alice", desktop.entry.deviceId).publishGroupInfo(await g.groupInfo());
    expect(reg.ok).toBe(true);
    ds.groups.get(gid)!.members.add("bob");
    const seen: Uint8Array[] = [];
    t.ds.intercept = (_to, q) => { if (q.item.sender === "bob" && q.conversationId === dm && q.item.kind === MlsKind.MLS_KIND_APPLICATION) seen.push(q.item.mls); return q; };
    sendLine(bob, dm, "the code is 424242");
    await waitUntil(() => seen.length > 0, "bob's line leaves");
    let read = "";
    try { const inc = await g.process(seen[0]!); if (inc.kind === "application") read = new TextDecoder().decode(inc.plaintext); } catch { read = ""; }
    expect({ laptopIn: after.includes(keyOf(laptop)), desktopIn: after.includes(keyOf(desktop)), thiefRead: read.includes("424242") }).toEqual({ laptopIn: true, desktopIn: false, thiefRead: false });
  });
});

describe("review round 8: the dropped (stolen) desktop of a room's creator 're-creates' the room", () => {
  it("bob (v2 withheld, the desktop remembered as dropped) must not follow a re-creation signed by the desktop", { timeout: 240_000 }, async () => {
    const { w } = t;
    const room = "#ops";
    const { laptop, desktop, bob, before } = await aliceTwoAndBob(w);
    expect((await laptop.engine.joinRoom(room)).ok).toBe(true); // alice creates #ops
    await waitUntil(() => leafKeys(laptop, room).includes(keyOf(desktop)), "the self-heal adds the desktop");
    expect((await bob.engine.joinRoom(room)).ok).toBe(true);
    await waitUntil(() => [laptop, desktop, bob].every((d) => leafKeys(d, room).length === 3), "three leaves everywhere");
    await w.settle();
    await hostileGroup(t.ds, desktop, room);
    t.ds.serveList = (viewer: string, u: string) => (viewer === "bob" && u === "alice" ? before : undefined);
    await w.publish("alice", [laptop]);
    await laptop.directory.refresh(["alice"]);
    await waitUntil(() => !leafKeys(bob, room).includes(keyOf(desktop)), "the primary's self-heal takes the desktop out of #ops");
    await w.settle();
    // The thief: a new group for #ops (it names alice, by her identity key, as its creator) with bob only.
    const client = await desktop.store.loadOrCreateClient();
    const g = await MlsGroup.create(client, room, {});
    const claimed = await t.ds.api("alice", desktop.entry.deviceId).claimKeyPackages(["bob"]);
    if (!claimed.ok) throw new Error(claimed.detail);
    const p = await g.addMembers(claimed.entries.map((e) => e.keyPackage), { expectUsernames: ["bob"] });
    g.confirmCommit();
    t.ds.inject("bob", room, { kind: MlsKind.MLS_KIND_WELCOME, groupId: Buffer.from(g.groupId), sender: "alice", mls: Buffer.from(p.welcome!), ratchetTree: Buffer.from(p.ratchetTree!), epoch: 0, senderDevice: desktop.entry.deviceId });
    await bob.engine.idle();
    await injectLine(w, bob, room, g, desktop, "new number, send the code here", "56");
    await bob.engine.idle();
    const after = leafKeys(bob, room);
    expect({ laptopIn: after.includes(keyOf(laptop)), desktopIn: after.includes(keyOf(desktop)), shown: textsIn(bob, room).filter((x) => x.includes("send the code")) })
      .toEqual({ laptopIn: true, desktopIn: false, shown: [] });
  });
});
