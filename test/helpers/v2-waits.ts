// Conditions the client-side tests wait on in protocol v2 (PROTOCOL.md §7): a conversation is
// an MLS group, so "bob can read what alice sends to X" means bob's leaf is in alice's group of X,
// which each client learns from a membership line (an external commit into the lobby or a room,
// an Add + Welcome into a DM). Presence (the relay's directory) comes earlier and says nothing of
// the group.
import type { SessionEvent } from "../../src/client/types.js";
import type { TestClient } from "./client-harness.js";
import { waitUntil } from "./wait.js";

/** `c` has a membership line in `conv` naming `user` as the one who joined (or created) it. */
export function sawJoin(c: TestClient, conv: string, user: string): boolean {
  return c.events.some((e: SessionEvent) => e.type === "membership" && e.conversationId === conv && (e.line.kind === "joined" || e.line.kind === "created") && e.line.by === user);
}

/** Waits until `user` is a member of `c`'s group of `conv` (by the group's own member list). */
export async function waitMember(c: TestClient, conv: string, user: string, timeoutMs = 30_000): Promise<void> {
  await waitUntil(async () => {
    const m = await c.client.members(conv);
    return m.ok && m.value.includes(user);
  }, `${c.client.me} has ${user} in ${conv}`, timeoutMs);
}

/** Waits until every one of `clients` has every other one in its lobby group (a lobby message then reaches them all). */
export async function waitLobby(clients: readonly TestClient[], timeoutMs = 30_000): Promise<void> {
  for (const c of clients) for (const o of clients) if (o !== c) await waitMember(c, "lobby", o.client.me, timeoutMs);
}
