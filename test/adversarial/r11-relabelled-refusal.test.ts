// Review round 11: a commit every member refuses once it is authenticated (mallory changing the
// room's creator, context-changed) makes the room's creator re-create the room without its
// committer (round 10). The relay labels who sent it: relabelled as carol's, the re-creation must
// still leave out mallory, the committer MLS authenticated (MlsProtocolError.committer), never carol.
import { describe, expect, it } from "vitest";
import { MlsKind } from "../../src/gen/securechat/v1/chat.js";
import { creatorChangeProposal, deviceWorldEachTest, oneDeviceEachInRoom, type Device, hostileCommit, hostileGroup, sendHostileCommit, sendLine, textsIn } from "../helpers/mls-devices.js";
import { waitUntil } from "../helpers/wait.js";

const t = deviceWorldEachTest("sc-r11-relabel-");
const room = "#ops";

describe("review round 11: a refused change the relay labels as another member's", () => {
  it("alice re-creates #ops without mallory, who made the change, and with carol, whom the relay named", { timeout: 240_000 }, async () => {
    const { w, ds } = t;
    const [alice, , carol, mallory] = await oneDeviceEachInRoom(w, room, ["alice", "bob", "carol", "mallory"]) as [Device, Device, Device, Device];
    const g = await hostileGroup(ds, mallory, room);
    // The relay hands mallory's commit to everyone as carol's.
    ds.intercept = (_to, q) => (q.item.kind === MlsKind.MLS_KIND_COMMIT && q.item.sender === "mallory" ? { ...q, item: { ...q.item, sender: "carol", senderDevice: carol.entry.deviceId } } : q);
    await sendHostileCommit(ds, mallory, await hostileCommit(g, [creatorChangeProposal(g, mallory)], false));
    ds.intercept = undefined;
    await waitUntil(async () => { await w.settle(); const m = alice.engine.members(room) ?? []; return !m.includes("mallory") && m.includes("carol"); }, "alice re-creates #ops without mallory", 60_000);
    expect(alice.engine.creator(room)).toBe("alice");
    sendLine(alice, room, "the room goes on");
    await waitUntil(async () => { await w.settle(); return textsIn(carol, room).includes("alice: the room goes on"); }, "carol reads alice in the re-created room", 60_000);
  });
});
