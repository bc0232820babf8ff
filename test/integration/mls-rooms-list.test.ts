// /rooms on protocol v2 (PROTOCOL.md §8.2): ChatClient.listRooms() gives every room on
// the relay (`all`: the rooms' MLS groups with their member counts by the relay's record, never
// DMs or the lobby) and the rooms whose group this client holds (`joined`, members from the tree),
// with real v2 ChatClients over a real relay.
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { cleanupWorlds, loadIdentities, room, say, T, world } from "../helpers/v2-hostile-world.js";

beforeAll(loadIdentities);
afterEach(cleanupWorlds);

describe("/rooms on protocol v2", () => {
  it("lists every room on the relay with its size, also rooms I am not in; marks mine; never DMs or the lobby", { timeout: 240_000 }, async () => {
    const w = await world("alice", "bob", "carol");
    await room(w, "#ops", "alice", "bob");
    expect((await w.c.carol!.client.joinRoom("#dev")).ok).toBe(true);
    await say(w.c.alice!, "dm:alice:carol", "a DM makes a group too"); // never listed
    await w.c.carol!.waitForMessage("a DM makes a group too", T);

    const atBob = await w.c.bob!.client.listRooms();
    expect(atBob).toEqual({ ok: true, value: { joined: [{ room: "#ops", members: ["alice", "bob"] }], all: [{ room: "#ops", memberCount: 2 }, { room: "#dev", memberCount: 1 }] } });
    const atCarol = await w.c.carol!.client.listRooms();
    expect(atCarol).toEqual({ ok: true, value: { joined: [{ room: "#dev", members: ["carol"] }], all: [{ room: "#ops", memberCount: 2 }, { room: "#dev", memberCount: 1 }] } });

    // carol leaves #dev (its last member): the group stays on the relay with no member by its record.
    expect((await w.c.carol!.client.leaveRoom("#dev")).ok).toBe(true);
    const after = await w.c.carol!.client.listRooms();
    expect(after.ok && after.value.joined).toEqual([]);
    // The last member leaves without a commit (nobody is left to commit her removal): the relay
    // still counts her (PROTOCOL.md §17).
    expect(after.ok && after.value.all).toEqual([{ room: "#ops", memberCount: 2 }, { room: "#dev", memberCount: 1 }]);
  });
});
