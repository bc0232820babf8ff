// Which device of its user sent an application message (proto/PROTOCOL.md §4.5, §11): the MLS
// sender leaf against the user's verified device list, and the relay's sender_device against
// that. A message of another device of mine is shown as mine with the device's name.
import { deviceBySignatureKey } from "../../protocol/devices.js";
import type { MlsMember } from "../../protocol/mls/index.js";
import type { EngineState } from "./engine-state.js";

/**
 * A user's device list is fetched again for an unknown sender device at most this often (a
 * hostile member or relay cannot make every message cost a round trip).
 */
export const DEVICE_REFRESH_MS = 10_000;
/** Users whose last refresh time is remembered (the oldest forgotten first). */
const REFRESHED_KEPT = 4_096;

/** Who sent an application message, as far as devices go: `name` for my other devices. */
export type SenderDevice = { readonly ok: true; readonly name?: string } | { readonly ok: false; readonly why: string };

export class SenderDevices {
  /** When each user's device list was last fetched for an unknown sender device (DEVICE_REFRESH_MS). */
  private readonly refreshed = new Map<string, number>();

  constructor(private readonly s: EngineState) {}

  /**
   * §4.5, §11: the sender leaf's device. My own user's leaf must be a device of mine in my
   * verified list (refreshed once when not: a device linked just now), and not this one; a peer's
   * leaf, when the peer has a list, a device in it. Either way the relay's sender_device must be
   * that device's id (empty for a user without a list). Without a directory, my other devices
   * cannot be told from a forgery (refused) and peers are not checked.
   */
  async check(sender: MlsMember, relayDevice: string): Promise<SenderDevice> {
    const dir = this.s.d.devices;
    const own = sender.username === this.s.d.me;
    if (dir === undefined) return own ? { ok: false, why: "another leaf of my user, and no device list to check it against" } : { ok: true };
    const find = () => {
      // Less the devices their user's primary took out under a list newer than mine (dropped-devices.ts).
      const list = this.s.dropped?.listOf(sender.username) ?? dir.known(sender.username);
      return { list, entry: list === undefined ? undefined : deviceBySignatureKey(list, sender.signatureKey) };
    };
    let { list, entry } = find();
    let unreachable = false;
    if (entry === undefined && (own || list !== undefined || relayDevice !== "")) {
      const last = this.refreshed.get(sender.username);
      const now = this.s.d.clock();
      if (last === undefined || now - last >= DEVICE_REFRESH_MS) {
        this.refreshed.set(sender.username, now);
        if (this.refreshed.size > REFRESHED_KEPT) this.refreshed.delete(this.refreshed.keys().next().value!);
        try {
          // Must answer: "no list kept" after a fetch the relay never answered (a moment offline,
          // as after a relay restart) is not "this user has no list", which refuses the message.
          await dir.refresh([sender.username], { mustAnswer: true });
        } catch (e) {
          unreachable = true;
          // Not a refresh: the next message of theirs asks again, or it would be judged on nothing.
          this.refreshed.delete(sender.username);
          this.s.d.logger.info("mls.message.device_refresh_failed", { sender: sender.username, error: (e as Error).message });
        }
        ({ list, entry } = find());
      }
    }
    if (list === undefined) {
      if (own) return { ok: false, why: "my device list is not known" };
      if (relayDevice === "" || unreachable) return { ok: true };
      return { ok: false, why: `the relay names device ${relayDevice} of ${sender.username}, who has no device list` };
    }
    if (entry === undefined) return { ok: false, why: own ? "a leaf of mine that my device list does not name (an unlinked device?)" : `a leaf of ${sender.username} that their device list does not name` };
    if (entry.deviceId !== relayDevice) return { ok: false, why: `the relay says device '${relayDevice}', the leaf is device ${entry.deviceId}` };
    if (!own) return { ok: true };
    if (entry.deviceId === dir.self.deviceId) return { ok: false, why: "this device's own key on another leaf" };
    return { ok: true, name: entry.name };
  }
}
