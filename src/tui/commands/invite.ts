// /invite <users> [#room]: protocol v2 — a member adds one or more people to a room from their
// KeyPackages on the relay (Add commits and Welcomes, PROTOCOL.md §7; several names go in as
// few commits as fit a relay frame). The line saying it ("you added bob, carol") comes from the
// session's membership event; named from elsewhere, one line says so where it was typed.
import { errorText } from "./error-text.js";
import { nameList } from "./membership-text.js";
import { ok, roomArg, userArg, type CommandSpec, type ParseResult } from "./command.js";
import type { Outcome } from "../../client/types.js";

export type InviteCommand = { readonly kind: "invite"; readonly users: readonly string[]; readonly room?: string };

export const invite: CommandSpec<InviteCommand> = {
  name: "invite",
  usage: "/invite <users> [#room]",
  summary: "add one or more people to a room you are in (default: the current one)",
  completes: "users",
  parse({ args, usage }): ParseResult<InviteCommand> {
    if (args.length === 0) return usage("needs at least one user");
    const last = args[args.length - 1] ?? "";
    // The room is named last, with its "#"; every other word is a user.
    const roomGiven = args.length > 1 && last.startsWith("#");
    const users: string[] = [];
    for (const raw of roomGiven ? args.slice(0, -1) : args) {
      const user = userArg(raw, "invite");
      if (typeof user !== "string") return user;
      if (!users.includes(user)) users.push(user);
    }
    if (!roomGiven) return ok({ kind: "invite", users });
    const room = roomArg(last, "invite");
    return typeof room === "string" ? ok({ kind: "invite", users, room }) : room;
  },
  run(command, { state, here, say, later, session, currentRoom }) {
    const room = command.room ?? currentRoom();
    if (room === undefined) {
      say("error", "/invite without a room works inside a room — usage: /invite <users> [#room]");
      return "clear";
    }
    const { users } = command;
    if (session.invite === undefined && session.inviteMany === undefined) {
      say("error", `/invite needs secure-chat protocol v2 and this session speaks v1, where people join a room themselves (/join ${room})`);
      return "clear";
    }
    if (users.includes(state.me)) {
      say("error", `that is you: /invite adds someone else to ${room}`);
      return "clear";
    }
    const added = (): void => {
      if (room !== here) say("info", `${nameList(users, state.me)} ${users.length === 1 ? "was" : "were"} added to ${room}`);
    };
    const one = users.length === 1 ? users[0] : undefined;
    if (one !== undefined && session.invite !== undefined) {
      const inviteOne = session.invite;
      later(`/invite ${one}`, () => inviteOne.call(session, room, one), added);
      return "clear";
    }
    const inviteMany = session.inviteMany;
    if (inviteMany === undefined) {
      say("error", "this session adds one person at a time: /invite each of them");
      return "clear";
    }
    // Several at once: all or nobody, said in one line (the refusal names who stopped it).
    const asked = (): Promise<Outcome<Outcome<{ readonly commits: number }>>> =>
      inviteMany.call(session, room, users).then((r) => ({ ok: true as const, value: r }));
    later(`/invite ${users.join(" ")}`, asked, (r) => {
      if (r.ok) added();
      else say("error", `nobody was added to ${room}: ${errorText(r.error)}`);
    });
    return "clear";
  },
};
