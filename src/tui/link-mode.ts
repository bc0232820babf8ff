// chat-tui <username> --link [--device-name NAME] (PROTOCOL.md §4.6): this machine becomes a
// linked device of the user. A small start-mode screen of plain lines, before any full-screen UI:
// the code and what to do on the other device (and what to do without one), then the digits to
// compare, then the outcome. Nothing is written unless the linking succeeds (linking.ts).
import { hostname } from "node:os";
import { LinkError, newDeviceSide, type LinkRelay } from "../client/linking.js";
import { checkDeviceName, DEVICE_NAME_MAX_CHARS } from "../protocol/devices.js";
import type { Logger } from "../protocol/log.js";

/** The default device name: this machine's host name (its first label), as a device name may be. */
export function defaultDeviceName(host: string = hostname()): string {
  const first = [...(host.split(".")[0] ?? "")].filter((c) => /[\x21-\x7e]/.test(c)).slice(0, DEVICE_NAME_MAX_CHARS).join("");
  return checkDeviceName(first).ok ? first : "device";
}

export interface LinkModeOptions {
  readonly username: string;
  readonly deviceName: string;
  readonly keyDir: string;
  readonly relay: LinkRelay;
  /** Protects `<username>_device.pem` when given. */
  readonly passphrase?: string;
  readonly out: NodeJS.WritableStream;
  readonly logger: Logger;
  readonly signal: AbortSignal;
}

/** The lines of the first screen (exported for tests). */
export function codeScreen(username: string, deviceName: string, code: string): string {
  return [
    "",
    `Linking this machine as a device of ${username}, named "${deviceName}".`,
    "",
    `    ${code}`,
    "",
    `On a device where ${username} is signed in (the primary: the one holding ${username}_key.pem), type:`,
    "",
    `    /link ${code}`,
    "",
    "Both screens then show the same 6 digits: compare them before answering there. The code works once,",
    "for up to 10 minutes. Ctrl-C cancels.",
    "",
    `No such device at hand? Only the primary device can link others: restore ${username}_key.pem from your`,
    `backup onto a machine and run chat-tui ${username} there (that machine becomes the primary), or choose`,
    "another name for a fresh start (your contacts will see a new person).",
    "",
    "Waiting for the other device…",
    "",
  ].join("\n");
}

/** Runs the linking; the exit status (0: linked). Every failure is one line. */
export async function runLinkMode(o: LinkModeOptions): Promise<number> {
  const say = (s: string): void => void o.out.write(`${s}\n`);
  try {
    const linked = await newDeviceSide({
      relay: o.relay, username: o.username, deviceName: o.deviceName, keyDir: o.keyDir, signal: o.signal,
      ...(o.passphrase === undefined ? {} : { passphrase: o.passphrase }),
      onCode: (code) => {
        o.logger.info("link.code-shown", { username: o.username });
        o.out.write(codeScreen(o.username, o.deviceName, code));
      },
      onSas: (sas) => {
        say(`Compare: ${sas}`);
        say(`Your other device asks whether this machine shows ${sas}. If it does, answer /link yes there; if not, /link no.`);
        say("");
      },
    });
    o.logger.info("link.done", { username: o.username, deviceId: linked.deviceId, version: linked.list.version });
    say(`Linked: this machine is ${o.username}'s device "${linked.name}" (linked by ${linked.linkedBy}; device list v${linked.list.version}).`);
    if (linked.pinned > 0) say(`It knows the keys of ${linked.pinned} of your contacts, as ${linked.linkedBy} pinned them.`);
    say("Earlier messages are not on this device; it receives what is sent from now on.");
    say(`Starting the chat as this device… (next time: chat-tui ${o.username})`);
    return 0;
  } catch (e) {
    const sentence = e instanceof LinkError ? e.message : `the linking failed: ${e instanceof Error ? e.message : String(e)}`;
    o.logger.warn("link.failed", { username: o.username, reason: sentence });
    say("");
    say(`chat-tui: ${sentence}`);
    if (/this machine already is .* (primary|linked) device/.test(sentence)) say(`To chat as ${o.username} here: chat-tui ${o.username}`);
    return 1;
  }
}
