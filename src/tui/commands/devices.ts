// /devices: my devices (PROTOCOL.md §4.5), from my newest verified device list: name, id prefix,
// the primary, this device, online or last seen, added. A readable table in the scrollback.
import type { DeviceView } from "../../client/types.js";
import { sanitizeLine } from "../../protocol/sanitize.js";
import { noArguments, type CommandSpec } from "./command.js";

export type DevicesCommand = { readonly kind: "devices" };

/** "just now", "5 min ago", "2h ago", "3 days ago". */
export function agoText(nowMs: number, thenMs: number): string {
  const s = Math.max(0, Math.floor((nowMs - thenMs) / 1000));
  if (s < 60) return "just now";
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ago`;
  const d = Math.floor(s / 86_400);
  return `${d} day${d === 1 ? "" : "s"} ago`;
}

/** "2026-11-25", the UTC day a device was added; a placeholder (never a throw) for a time out of Date's range. */
export function addedDay(ms: number): string {
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? "----------" : d.toISOString().slice(0, 10);
}

/** The table /devices shows. */
export function devicesTable(devices: readonly DeviceView[], nowMs: number, me: string): string {
  if (devices.length === 0) return `no devices of ${me} are listed`;
  const rows = devices.map((d) => [
    sanitizeLine(d.name),
    d.deviceId.slice(0, 8),
    d.primary ? "primary" : "linked",
    d.thisDevice ? "this device" : d.online ? "online" : d.lastSeenMs > 0 ? `last seen ${agoText(nowMs, d.lastSeenMs)}` : "never seen",
    `added ${addedDay(d.addedAtMs)}`,
  ]);
  const widths = [0, 1, 2, 3].map((i) => Math.max(...rows.map((r) => [...r[i]!].length)));
  const lines = rows.map((r) => `  ${r.map((c, i) => (i < 4 ? c + " ".repeat(widths[i]! - [...c].length) : c)).join("  ")}`);
  const primary = devices.some((d) => d.primary && d.thisDevice);
  const hint = primary ? "/unlink NAME removes a device from every conversation" : "only the primary device can link or unlink devices";
  return [`devices of ${me}: ${devices.length}`, ...lines, hint].join("\n");
}

export const devices: CommandSpec<DevicesCommand> = {
  name: "devices",
  usage: "/devices",
  summary: "list your devices: name, id, primary, this one, online or last seen, added",
  parse: noArguments({ kind: "devices" }),
  run(_command, { say, later, session, now, state }) {
    const list = session.devices;
    if (list === undefined) {
      say("error", "/devices needs secure-chat protocol v2");
      return "clear";
    }
    later("/devices", () => list.call(session), (views) => say("info", devicesTable(views, now(), state.me)));
    return "clear";
  },
};
