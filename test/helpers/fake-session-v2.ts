// A FakeSession that speaks protocol v2 where the TUI can tell (PROTOCOL.md §7): rooms have a
// creator who alone removes members (kick), a member adds someone who has a KeyPackage on the
// relay (invite), and every change is a `membership` event naming who made it, as the v2 engine
// emits them. Refusals are the ClientErrors the engine returns.
import type { ClientError } from "../../src/client/errors.js";
import type { MembershipLine, Outcome } from "../../src/client/types.js";
import { FakeSession, type FakeSessionOptions } from "./fake-session.js";

export interface FakeV2Options extends FakeSessionOptions {
  /** Each room's creator (default: its first member). */
  readonly creators?: Readonly<Record<string, string>>;
  /** Users the relay holds no KeyPackage for (invite refuses them). */
  readonly withoutKeyPackage?: readonly string[];
}

/** `username`: the names asked for, joined by "," for inviteMany. */
export type MembershipCall = { readonly method: "kick" | "invite" | "inviteMany"; readonly room: string; readonly username: string };

export class FakeV2Session extends FakeSession {
  readonly membershipCalls: MembershipCall[] = [];
  private readonly creators = new Map<string, string>();
  private readonly withoutKeyPackage: ReadonlySet<string>;

  constructor(options: FakeV2Options = {}) {
    super(options);
    for (const [room, members] of Object.entries(options.rooms ?? {})) {
      const creator = options.creators?.[room] ?? members[0];
      if (creator !== undefined) this.creators.set(room, creator);
    }
    this.withoutKeyPackage = new Set(options.withoutKeyPackage ?? []);
  }

  /** A membership change made by someone (a commit every member processed), as the engine emits it. */
  membership(conversationId: string, line: Omit<MembershipLine, "atMs"> & { readonly atMs?: number }): void {
    if (conversationId.startsWith("#")) {
      const members = new Set(this.rooms.get(conversationId) ?? []);
      if (line.kind === "created" || line.kind === "joined") members.add(line.by);
      if (line.kind === "added") line.users.forEach((u) => members.add(u));
      if (line.kind === "removed") line.users.forEach((u) => members.delete(u));
      if (line.kind === "left") members.delete(line.by);
      if (line.kind === "created") this.creators.set(conversationId, line.by);
      this.rooms.set(conversationId, [...members].sort());
    }
    this.emit({ type: "membership", conversationId, line: { ...line, atMs: line.atMs ?? this.now() } });
  }

  async kick(room: string, username: string): Promise<Outcome> {
    this.membershipCalls.push({ method: "kick", room, username });
    const members = this.rooms.get(room) ?? [];
    if (!members.includes(this.me)) return refuse({ kind: "not-a-member", room, action: "send" });
    const creator = this.creators.get(room);
    if (creator !== this.me) return refuse(creator === undefined ? { kind: "not-the-creator", room } : { kind: "not-the-creator", room, creator });
    if (!members.includes(username)) return refuse({ kind: "not-in-room", room, username });
    this.membership(room, { kind: "removed", by: this.me, users: [username], creator: this.me });
    return { ok: true, value: undefined };
  }

  async invite(room: string, username: string): Promise<Outcome> {
    this.membershipCalls.push({ method: "invite", room, username });
    const members = this.rooms.get(room) ?? [];
    if (!members.includes(this.me)) return refuse({ kind: "not-a-member", room, action: "send" });
    if (members.includes(username)) return refuse({ kind: "already-in-room", room, username });
    if (this.withoutKeyPackage.has(username)) return refuse({ kind: "no-key-package", username });
    this.membership(room, { kind: "added", by: this.me, users: [username] });
    return { ok: true, value: undefined };
  }

  /** Several at once, all or nobody, one line (as the engine's inviteMany when they fit one commit). */
  async inviteMany(room: string, usernames: readonly string[]): Promise<Outcome<{ readonly commits: number }>> {
    this.membershipCalls.push({ method: "inviteMany", room, username: usernames.join(",") });
    const members = this.rooms.get(room) ?? [];
    if (!members.includes(this.me)) return refuse({ kind: "not-a-member", room, action: "send" });
    for (const u of usernames) if (members.includes(u)) return refuse({ kind: "already-in-room", room, username: u });
    for (const u of usernames) if (this.withoutKeyPackage.has(u)) return refuse({ kind: "no-key-package", username: u });
    this.membership(room, { kind: "added", by: this.me, users: [...usernames] });
    return { ok: true, value: { commits: 1 } };
  }
}

function refuse(error: ClientError): { readonly ok: false; readonly error: ClientError } {
  return { ok: false, error };
}
