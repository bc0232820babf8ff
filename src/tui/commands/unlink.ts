// /unlink NAME [yes]: removes one of my devices (PROTOCOL.md §4.5; the primary only). Asks first:
// the device is removed from every conversation and cannot read what follows; "/unlink NAME yes"
// does it (a new device list without it, signed by the identity key, published).
import { ok, type CommandSpec } from "./command.js";

export type UnlinkCommand = { readonly kind: "unlink"; readonly device: string; readonly confirmed: boolean };

export const unlink: CommandSpec<UnlinkCommand> = {
  name: "unlink",
  usage: "/unlink <device> [yes]",
  summary: "remove one of your devices (name or id prefix, see /devices) from every conversation; asks to confirm",
  parse({ args, usage }) {
    if (args.length === 0) return usage("needs a device: its name or id prefix, as /devices shows");
    const confirmed = args.length > 1 && args[args.length - 1] === "yes";
    const device = (confirmed ? args.slice(0, -1) : args).join(" ");
    return ok({ kind: "unlink", device, confirmed });
  },
  run(command, { say, later, session }) {
    const unlinkDevice = session.unlink;
    if (unlinkDevice === undefined) {
      say("error", "/unlink needs secure-chat protocol v2");
      return "clear";
    }
    if (!command.confirmed) {
      // The refusals first (no such device, ambiguous, this device, not the primary), then the question.
      later(`/unlink ${command.device}`, () => unlinkDevice.call(session, command.device, { check: true }), (r) => {
        say("warn", `/unlink ${command.device} removes ${r.name} (${r.deviceId.slice(0, 8)}) from every conversation: it cannot read anything sent after, and it stops at once (or at its next connection, if it is offline). To do it: /unlink ${command.device} yes`);
      });
      return "clear";
    }
    later(`/unlink ${command.device}`, () => unlinkDevice.call(session, command.device), (r) => {
      say("info", `unlinked ${r.name} (${r.deviceId.slice(0, 8)}): your device list is now version ${r.version}; it is being removed from every conversation and cannot read what follows`);
    });
    return "clear";
  },
};
