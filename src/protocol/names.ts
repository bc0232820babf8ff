// Usernames, room names and conversation ids (PROTOCOL.md §4.1).
// Lower-case ASCII only: no homoglyphs, no path tricks. Validate before building any path.

export const USERNAME_MAX = 32;
export const ROOM_NAME_MAX = 32;

/** Names nobody may claim: they would impersonate the system or address everyone. */
export const RESERVED_USERNAMES: ReadonlySet<string> = new Set([
  "system", "relay", "server", "all", "everyone", "here", "channel", "admin", "administrator",
  "root", "operator", "moderator", "nobody", "lobby", "me", "you", "secure-chat", "securechat",
]);

const USERNAME_RE = /^[a-z][a-z0-9_-]{0,31}$/;
const ROOM_RE = /^#[a-z0-9][a-z0-9_-]{0,31}$/;

export type NameCheck = { ok: true } | { ok: false; reason: string };

/** Checks a username against the policy; the reason is a sentence for the user. */
export function checkUsername(name: unknown): NameCheck {
  if (typeof name !== "string") return { ok: false, reason: "username must be a string" };
  if (name.length === 0) return { ok: false, reason: "username is empty" };
  if (name.length > USERNAME_MAX) return { ok: false, reason: `username is longer than ${USERNAME_MAX} characters` };
  if (!USERNAME_RE.test(name)) {
    return {
      ok: false,
      reason: "username must start with a lower-case letter and contain only a-z, 0-9, '_' and '-'",
    };
  }
  if (RESERVED_USERNAMES.has(name)) return { ok: false, reason: `username '${name}' is reserved` };
  return { ok: true };
}

export function isValidUsername(name: unknown): name is string {
  return checkUsername(name).ok;
}

/** Throws an Error with the policy reason when the username is not acceptable. */
export function assertUsername(name: unknown): asserts name is string {
  const c = checkUsername(name);
  if (!c.ok) throw new Error(c.reason);
}

/** Checks a room name: '#' then 1-32 of [a-z0-9_-], starting with a letter or digit. */
export function checkRoomName(room: unknown): NameCheck {
  if (typeof room !== "string") return { ok: false, reason: "room name must be a string" };
  if (!room.startsWith("#")) return { ok: false, reason: "room names start with '#', e.g. #ops" };
  if (room.length > ROOM_NAME_MAX + 1) return { ok: false, reason: `room name is longer than ${ROOM_NAME_MAX} characters` };
  if (!ROOM_RE.test(room)) {
    return { ok: false, reason: "room names use only a-z, 0-9, '_' and '-' after the '#', e.g. #ops" };
  }
  return { ok: true };
}

export function isValidRoomName(room: unknown): room is string {
  return checkRoomName(room).ok;
}

export const LOBBY = "lobby";

export type Conversation =
  | { readonly kind: "lobby"; readonly id: "lobby" }
  | { readonly kind: "room"; readonly id: string; readonly room: string }
  | { readonly kind: "dm"; readonly id: string; readonly members: readonly [string, string] };

/** The DM conversation id of two distinct users: "dm:<a>:<b>" with a < b (byte order). */
export function dmConversationId(a: string, b: string): string {
  assertUsername(a);
  assertUsername(b);
  if (a === b) throw new Error("a direct conversation needs two different users");
  return a < b ? `dm:${a}:${b}` : `dm:${b}:${a}`;
}

/** Parses a conversation id; undefined when it is not one of the three valid forms. */
export function parseConversationId(id: unknown): Conversation | undefined {
  if (typeof id !== "string") return undefined;
  if (id === LOBBY) return { kind: "lobby", id: LOBBY };
  if (id.startsWith("#")) return isValidRoomName(id) ? { kind: "room", id, room: id } : undefined;
  if (id.startsWith("dm:")) {
    const parts = id.split(":");
    if (parts.length !== 3) return undefined;
    const [, a, b] = parts as [string, string, string];
    if (!isValidUsername(a) || !isValidUsername(b) || !(a < b)) return undefined;
    return { kind: "dm", id, members: [a, b] };
  }
  return undefined;
}

/** The other member of a DM, from my point of view. */
export function dmPeer(conv: Conversation & { kind: "dm" }, me: string): string | undefined {
  const [a, b] = conv.members;
  if (a === me) return b;
  if (b === me) return a;
  return undefined;
}
